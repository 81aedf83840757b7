r"""The KL sparsity penalty on anyone's activations: a pure, checked function for your own network.

.. math::
    \beta \sum_j \mathrm{KL}(\rho \,\Vert\, \hat\rho_j), \qquad
    \hat\rho_j = \frac1m \sum_i a_{ij}, \qquad
    \mathrm{KL}(\rho\Vert\hat\rho) = \rho\log\frac{\rho}{\hat\rho} + (1-\rho)\log\frac{1-\rho}{1-\hat\rho},

where :math:`a_{ij}` is unit :math:`j`'s activation on sample :math:`i`. The KL divergence
between Bernoulli distributions needs every :math:`\hat\rho_j` in :math:`(0, 1)`: the activations
must be probabilities, such as sigmoid outputs. For ReLU or tanh units the penalty is undefined
(an activation above 1 makes :math:`1-\hat\rho` negative): use an L1 penalty on the activations,
or rescale tanh to :math:`(1 + \tanh)/2`.

Two ways in:

* ``kl_sparsity_penalty(a, rho=..., beta=...)`` with activations ``a`` in [0, 1]. Exact as long as
  each :math:`\hat\rho_j` and :math:`1-\hat\rho_j` is a positive float; a unit whose activations
  all rounded to exactly 0 (or 1) gives an infinite penalty, since the float has lost the
  information.
* ``kl_sparsity_penalty(z, rho=..., beta=..., logits=True)`` with the *pre-activations* of sigmoid
  units: exact for every finite ``z`` (``logsumexp`` of :math:`\log f(\pm z)`, the definition the
  sparse autoencoder's own cost uses at saturation; see :mod:`sae_jax.cost`), and so is its
  gradient: a dead unit keeps its pull of about :math:`-\beta\rho` back toward :math:`\rho`.

``axis`` names the sample (batch) axes averaged over; every other axis is a unit, summed over.
Activations of shape ``(batch, time, units)`` with ``axis=(0, 1)`` average over batch and time.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax.penalty import kl_sparsity_penalty
  >>> z = jnp.array([[-2.0, 0.5], [-3.0, 1.0], [-1.0, -0.5]])        # (batch, units) pre-activations
  >>> p = kl_sparsity_penalty(jax.nn.sigmoid(z), rho=0.05, beta=3.0)
  >>> q = kl_sparsity_penalty(z, rho=0.05, beta=3.0, logits=True)
  >>> bool(jnp.allclose(p, q, rtol=1e-6))
  True
  >>> g = jax.grad(lambda z: kl_sparsity_penalty(z - 100.0, rho=0.05, beta=3.0, logits=True))(z)
  >>> bool(jnp.all(jnp.isfinite(g)))                               # dead units: finite, and a real pull
  True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import validate
from .cost import kl_divergence_from_logs
from .validate import InputError

__all__ = ["kl_sparsity_penalty"]


def _axes(axis, ndim: int) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, int) else tuple(axis) if isinstance(axis, Sequence) else None
    if axes is None or not all(isinstance(a, int) for a in axes) or not axes:
        raise InputError(f"axis must be an int or a non-empty tuple of ints, got {axis!r}")
    norm = tuple(a % ndim if -ndim <= a < ndim else None for a in axes)
    if None in norm:
        raise InputError(f"axis {axis!r} is out of range for activations with {ndim} dimension(s)")
    if len(set(norm)) != len(norm):
        raise InputError(f"axis {axis!r} repeats an axis")
    if len(norm) == ndim:
        raise InputError(
            f"axis {axis!r} leaves no unit axis: activations of shape (samples, units) average over axis=0"
        )
    return norm


def _check(activations, *, rho, beta, logits: bool) -> None:
    if not hasattr(activations, "shape") or not hasattr(activations, "dtype"):
        raise InputError(f"activations must be an array, got {type(activations).__name__}")
    if not jnp.issubdtype(activations.dtype, jnp.floating):
        raise InputError(f"activations must be floating point, got dtype {activations.dtype}")
    if activations.ndim < 2:
        raise InputError(
            f"activations must have a sample axis and a unit axis (e.g. (m, n_units)), got shape {tuple(activations.shape)}"
        )
    if any(d == 0 for d in activations.shape):
        raise InputError(f"activations must not be empty, got shape {tuple(activations.shape)}")
    validate.check_hyperparams(lam=0.0, beta=beta, rho=rho)
    if validate.is_concrete(rho):
        r = np.asarray(rho, activations.dtype)
        if not 0 < r < 1:
            raise InputError(f"rho = {float(rho)!r} rounds to {float(r)} in {activations.dtype}; it must be in (0, 1)")
    if not validate.is_concrete(activations):
        return
    with jax.ensure_compile_time_eval():
        finite = bool(jnp.all(jnp.isfinite(activations)))
        lo, hi = (float(v) for v in (jnp.min(activations), jnp.max(activations)))
    if not finite:
        raise InputError("activations must be finite")
    if not logits and (lo < 0 or hi > 1):
        raise InputError(
            f"activations must lie in [0, 1] (probabilities, e.g. sigmoid outputs) for a KL sparsity penalty, "
            f"got values in [{lo:.6g}, {hi:.6g}]; pass sigmoid pre-activations with logits=True, "
            "or use an L1 penalty for ReLU/tanh units"
        )


def kl_sparsity_penalty(
    activations: jax.Array,
    *,
    rho: ArrayLike,
    beta: ArrayLike = 1.0,
    axis: int | tuple[int, ...] = 0,
    logits: bool = False,
) -> jax.Array:
    r""":math:`\beta\sum_j \mathrm{KL}(\rho\Vert\hat\rho_j)` with :math:`\hat\rho` the mean of ``activations`` over ``axis``.

    Args:
      activations: any floating array with at least a sample axis and a unit axis; values in
        [0, 1], or sigmoid pre-activations (any finite value) with ``logits=True``.
      rho: target mean activation, in (0, 1) (checked in the activations' dtype when concrete).
      beta: weight :math:`\beta \ge 0` (default 1).
      axis: the sample axes averaged over (default 0); the other axes are units, summed over.
      logits: ``activations`` are pre-activations :math:`z` of sigmoid units; the penalty and its
        gradient are then exact for every finite ``z`` (module docstring).

    Returns:
      a scalar in ``activations``' dtype. Pure and differentiable (``jax.grad``, ``jit``, ``vmap``).
      Shapes and dtypes are checked at trace time, values whenever they are concrete.
    """
    _check(activations, rho=rho, beta=beta, logits=logits)
    axes = _axes(axis, activations.ndim)
    dtype = activations.dtype
    rho = jnp.asarray(rho, dtype)
    beta = jnp.asarray(beta, dtype)
    if logits:
        log_m = jnp.asarray(math.log(math.prod(activations.shape[a] for a in axes)), dtype)
        log_rh = jax.nn.logsumexp(jax.nn.log_sigmoid(activations), axis=axes) - log_m
        log1m_rh = jax.nn.logsumexp(jax.nn.log_sigmoid(-activations), axis=axes) - log_m
        return beta * jnp.sum(kl_divergence_from_logs(rho, log_rh, log1m_rh))
    # 1 - rho_hat as the mean of 1 - a (exact for a >= 1/2), not 1 - mean(a).
    log_rh, log1m_rh = jnp.log(jnp.mean(activations, axis=axes)), jnp.log(jnp.mean(1 - activations, axis=axes))
    return beta * jnp.sum(kl_divergence_from_logs(rho, log_rh, log1m_rh))
