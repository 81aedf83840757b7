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
  each :math:`\hat\rho_j` and :math:`1-\hat\rho_j` is a positive float. A unit whose activations
  all rounded to exactly 0 (or 1) has an infinite penalty (the float has lost the information):
  called on values, that is an :class:`~sae_jax.InputError` naming the unit (as is a penalty
  that overflows the dtype, e.g. a huge ``beta``), never a silent ``inf``; under your own
  ``jit``/``grad`` nothing can be raised and the value is ``inf``.
* ``kl_sparsity_penalty(z, rho=..., beta=..., logits=True)`` with the *pre-activations* of sigmoid
  units: exact for every finite ``z`` (``logsumexp`` of :math:`\log f(\pm z)`, the definition the
  sparse autoencoder's own cost uses at saturation; see :mod:`sae_jax.cost`), and so is its
  gradient: a dead unit keeps its pull of about :math:`-\beta\rho` back toward :math:`\rho`.

``axis`` names the sample (batch) axes averaged over; every other axis is a unit, summed over.
Activations of shape ``(batch, time, units)`` with ``axis=(0, 1)`` average over batch and time.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax import kl_sparsity_penalty
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
    # In the activations' dtype, where the penalty uses them: beta must not overflow (1e39 is inf
    # in float32), rho must stay a normal number below 1 (a subnormal rho makes the KL term NaN).
    validate.check_hyperparams(lam=0.0, beta=beta, rho=rho, dtype=activations.dtype)
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
    rho_ = jnp.asarray(rho, dtype)
    beta_ = jnp.asarray(beta, dtype)
    if logits:
        log_m = jnp.asarray(math.log(math.prod(activations.shape[a] for a in axes)), dtype)
        log_rh = jax.nn.logsumexp(jax.nn.log_sigmoid(activations), axis=axes) - log_m
        log1m_rh = jax.nn.logsumexp(jax.nn.log_sigmoid(-activations), axis=axes) - log_m
    else:
        # 1 - rho_hat as the mean of 1 - a (exact for a >= 1/2), not 1 - mean(a).
        log_rh, log1m_rh = jnp.log(jnp.mean(activations, axis=axes)), jnp.log(jnp.mean(1 - activations, axis=axes))
    out = beta_ * jnp.sum(kl_divergence_from_logs(rho_, log_rh, log1m_rh))
    if validate.is_concrete(out) and not bool(jnp.isfinite(out)):  # called on values: say why, never return inf
        _raise_not_finite(out, log_rh, log1m_rh, beta=beta, logits=logits)
    return out


def _raise_not_finite(out, log_rh, log1m_rh, *, beta, logits: bool) -> None:
    """The penalty computed on values is not a finite float: one line saying why."""
    dt = jnp.dtype(out.dtype).name
    dead = np.flatnonzero(~np.isfinite(np.ravel(np.asarray(log_rh))))
    full = np.flatnonzero(~np.isfinite(np.ravel(np.asarray(log1m_rh))))
    if not logits and (dead.size or full.size):
        j, v = (int(dead[0]), 0) if dead.size else (int(full[0]), 1)
        raise InputError(
            f"the KL sparsity penalty is +inf: unit {j}'s mean activation is exactly {v} in {dt} "
            f"({dead.size + full.size} such unit(s)), where KL(rho || rho_hat) is infinite; pass the "
            "sigmoid pre-activations with logits=True for the exact finite penalty"
        )
    raise InputError(
        f"the KL sparsity penalty overflows {dt} (beta={float(beta):g} times the summed KL divergence "
        f"is {float(out)}); use a smaller beta or float64"
    )
