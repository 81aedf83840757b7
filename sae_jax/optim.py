r"""Optimisers over any pytree: :func:`lbfgs` (optax's L-BFGS with the compact-form direction) and
:func:`minimize_lbfgs` (a jitted L-BFGS loop with a zoom line search).

Examples:
  >>> import jax.numpy as jnp
  >>> from sae_jax.optim import minimize_lbfgs
  >>> res = minimize_lbfgs(lambda p: jnp.sum((p - 3.0) ** 2), jnp.zeros(2), max_steps=20)
  >>> [round(float(v), 4) for v in res.params]
  [3.0, 3.0]
"""

from sae_jax._src.lbfgs import (
    lbfgs as lbfgs,
    scale_by_compact_lbfgs as scale_by_compact_lbfgs,
    ScaleByCompactLBFGSState as ScaleByCompactLBFGSState,
)
from sae_jax._src.minimize import (
    minimize_lbfgs as minimize_lbfgs,
    MinimizeResult as MinimizeResult,
)

__all__ = [
    "lbfgs",
    "scale_by_compact_lbfgs",
    "ScaleByCompactLBFGSState",
    "minimize_lbfgs",
    "MinimizeResult",
]
