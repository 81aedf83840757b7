r"""Optimisers over any pytree: :func:`lbfgs` (optax's L-BFGS with the compact-form direction),
:func:`minimize_lbfgs` (a jitted L-BFGS loop with a zoom line search) and :func:`lbfgs_loop` (one
jitted step per Python iteration, for objectives evaluated on the host, such as data streamed from
disk with :func:`sae_jax.scale.make_chunked_value_and_grad`).

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
    lbfgs_loop as lbfgs_loop,
    LbfgsResult as LbfgsResult,
    minimize_lbfgs as minimize_lbfgs,
    MinimizeResult as MinimizeResult,
)

__all__ = [
    "lbfgs",
    "scale_by_compact_lbfgs",
    "ScaleByCompactLBFGSState",
    "lbfgs_loop",
    "LbfgsResult",
    "minimize_lbfgs",
    "MinimizeResult",
]
