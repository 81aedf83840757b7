r"""Optimisers over any pytree: :func:`lbfgs` (optax's L-BFGS with the compact-form direction) and
:func:`minimize_lbfgs` (a jitted L-BFGS loop with a zoom line search).

Examples:
  >>> import jax.numpy as jnp
  >>> from sae_jax.optim import minimize_lbfgs
  >>> def vg(p, c):                                   # J = ||p - c||^2 and its gradient
  ...     return jnp.sum((p - c) ** 2), 2 * (p - c)
  >>> r = minimize_lbfgs(vg, jnp.zeros(3), (jnp.array([1.0, 2.0, 3.0]),), steps=20)
  >>> [round(float(v), 4) for v in r.params]
  [1.0, 2.0, 3.0]
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
