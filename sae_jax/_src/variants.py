r"""The autoencoder's classic variants, as options of the same pure functions (issue 15).

Each is an option of :func:`sae_jax.cost`, :func:`~sae_jax.cost_terms`,
:func:`~sae_jax.cost_and_grad`, :func:`~sae_jax.cost_terms_and_grad` and
:func:`~sae_jax.autodiff_cost_and_grad` (the manual backprop covers each, equal to ``jax.grad``),
and they combine freely. The chunked and sharded paths take all three: there ``x_input=`` is a
second data source read in lockstep with ``data`` (:mod:`sae_jax._src.chunked`), or padded and split
over the devices like the batch (:func:`sae_jax.scale.shard_batch`).

**Tied weights** (:math:`W_2 = W_1^\top`): parameters ``Params(W1, b1, None, b2)``
(``init_params(..., tied=True)``, :func:`sae_jax.tie`, :func:`sae_jax.untie`). The decoder
weights are *absent*, not a second copy kept in sync, so ``jax.grad``, optax, the trainer and
the checkpoints (``W1 b1 b2``) see exactly the free parameters and no option can disagree with
the parameters. The cost is the untied cost at :math:`W_2 = W_1^\top`, so the weight decay counts
both copies, :math:`\tfrac\lambda2(\lVert W_1\rVert^2 + \lVert W_1^\top\rVert^2) = \lambda\lVert W_1\rVert^2`
(a tied model's J is comparable with an untied one's; ``untie`` gives the very same point), and
the gradient sums the two contributions:

.. math::
    \nabla_{W_1} J = \tfrac1m\delta^{(2)\top}x + \lambda W_1 + \big(\tfrac1m\delta^{(3)\top}a^{(2)} + \lambda W_1^\top\big)^\top .

**L1 activation penalty** ``l1=`` :math:`\gamma \ge 0`: adds
:math:`\gamma\frac1m\sum_i\lVert a^{(2)(i)}\rVert_1` (:func:`activation_l1`, ``CostTerms.l1``)
beside the KL term. Sigmoid activations are positive, so :math:`|a| = a`: the term is
:math:`\gamma\sum_j\hat\rho_j`, smooth, and its delta is :math:`+\gamma f'(z^{(2)})` per sample in
:math:`\delta^{(2)}` (the per-unit :math:`\gamma` joins the KL term's, with the tutorial's one
:math:`1/m` outside). For activations that can be 0 the subgradient convention is
:math:`\operatorname{sign}(0) = 0`.

**Denoising** (Vincent et al., 2008): ``x_input=`` :math:`\tilde x`, a corrupted copy of the data
(:func:`corrupt`), is what the network reads; ``x`` is the clean target:

.. math::
    J = \frac1m \sum_i \tfrac12 \lVert \hat x(\tilde x^{(i)}) - x^{(i)} \rVert^2 + \dots,
    \qquad \hat\rho_j = \frac1m \sum_i a^{(2)}_j(\tilde x^{(i)}),

so :math:`\tilde x` enters the forward pass and :math:`\delta^{(2)\top}\tilde x`, and :math:`x`
only :math:`\delta^{(3)}`. The corruption is a separate pure function of a ``jax.random`` key:
the cost stays a deterministic function of its arguments (its gradient, finite differences and
sympy all see one function), any corruption of your own plugs in, and the caller decides how keys
are drawn (the trainer: a fresh key per step from the seed, so a resumed run draws the same
corruptions). Only the target must lie in [0, 1] for a sigmoid output; ``x_input`` must be
finite, of ``x``'s shape and dtype (Gaussian noise may take it outside [0, 1]).
Kinds (:data:`CORRUPTIONS`): ``"mask"``, each entry zeroed with probability ``level`` :math:`= p \in [0, 1)`
(no :math:`1/(1-p)` rescaling: the classic denoising autoencoder's masking noise);
``"gaussian"``, :math:`\tilde x = x + \sigma\,\mathcal N(0, 1)` with ``level`` :math:`= \sigma \ge 0`;
``"none"``, ``x`` itself.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax import init_params, cost_and_grad, cost_terms
  >>> from sae_jax import corrupt
  >>> x = jnp.full((4, 6), 0.5)
  >>> x_tilde = corrupt(jax.random.key(0), x, kind="mask", level=0.5)
  >>> sorted(set(x_tilde.ravel().tolist())) == [0.0, 0.5]     # entries kept or zeroed
  True
  >>> tied = init_params(jax.random.key(1), 6, 3, tied=True)   # Params(W1, b1, None, b2)
  >>> J, g = cost_and_grad(tied, x, x_input=x_tilde, l1=0.1, lam=1e-4, beta=3.0, rho=0.1)
  >>> g.W1.shape, g.W2                                          # the gradient is tied too
  ((3, 6), None)
  >>> t = cost_terms(tied, x, x_input=x_tilde, l1=0.1, lam=1e-4, beta=3.0, rho=0.1)
  >>> bool(jnp.isclose(t.cost, t.reconstruction + t.weight_decay + t.sparsity + t.l1))
  True
  >>> corrupt(jax.random.key(0), x, kind="mask", level=1.0)    # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ...
  sae_jax.InputError: corruption level must be in [0, 1) for kind='mask' ...
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from .params import check_key
from .validate import InputError, is_concrete

__all__ = ["CORRUPTIONS", "activation_l1", "check_corruption", "corrupt"]

#: The corruption kinds :func:`corrupt` knows (``"none"``: no corruption).
CORRUPTIONS: tuple[str, ...] = ("none", "mask", "gaussian")


def activation_l1(a2: jax.Array, *, l1: ArrayLike, m: ArrayLike | None = None) -> jax.Array:
    r"""The L1 activation penalty :math:`\gamma\,\frac1m\sum_i \lVert a^{(2)(i)}\rVert_1`, a scalar.

    ``a2``: ``(m, n_hidden)`` activations; ``l1``: :math:`\gamma \ge 0`; ``m``: the number of
    samples (default ``a2.shape[0]``). Its derivative is :math:`\gamma\operatorname{sign}(a)/m`
    with the subgradient convention :math:`\operatorname{sign}(0) = 0` (written
    :math:`\sum a\operatorname{sign}(\operatorname{sg}(a))`: ``jnp.abs`` would give 1 at 0). For
    sigmoid activations (:math:`> 0` unless :math:`f(z)` underflows, where :math:`f'(z) = 0` too)
    it is :math:`\gamma\sum_j\hat\rho_j`, with the per-sample hidden delta :math:`\gamma f'(z^{(2)})`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> a = jnp.array([[0.0, 0.5], [0.0, -0.25]])
      >>> float(activation_l1(a, l1=2.0))                    # 2 * (0.5 + 0.25) / 2
      0.75
      >>> jax.grad(lambda a: activation_l1(a, l1=2.0))(a).tolist()   # sign(0) = 0
      [[0.0, 1.0], [0.0, -1.0]]
    """
    m = a2.shape[0] if m is None else m
    abs_a = a2 * jnp.sign(lax.stop_gradient(a2))  # |a|, with d|a|/da = sign(a), sign(0) = 0
    return jnp.asarray(l1, a2.dtype) * jnp.sum(abs_a) / jnp.asarray(m, a2.dtype)


def check_corruption(kind, level, dtype=None) -> None:
    """``kind`` is one of :data:`CORRUPTIONS`; ``level`` a finite real scalar, in [0, 1) for
    ``"mask"`` (the probability of zeroing an entry) and ``>= 0`` for ``"gaussian"`` (σ).
    Values are checked when concrete (under ``jit`` a traced level is taken as given).

    With ``dtype`` (the data's, in which :func:`corrupt` uses the level), also as cast to it: a
    gaussian σ must stay finite (``1e39`` is ``inf`` in float32) and a mask probability below 1
    (``0.99999999`` rounds to 1 in float32: every entry would be zeroed)."""
    if kind not in CORRUPTIONS:
        raise InputError(f"corruption kind must be one of {CORRUPTIONS}, got {kind!r}")
    if isinstance(level, (bool, str, bytes)) or level is None:
        raise InputError(f"corruption level must be a real number, got {level!r}")
    if not isinstance(level, numbers.Real):
        if not hasattr(level, "dtype") or jnp.shape(level) != ():
            raise InputError(f"corruption level must be a real scalar, got {type(level).__name__} {jnp.shape(level)}")
        if not is_concrete(level):
            return
    f = float(level)
    if not math.isfinite(f):
        raise InputError(f"corruption level must be finite, got {f}")
    if kind == "mask" and not 0 <= f < 1:
        raise InputError(
            f"corruption level must be in [0, 1) for kind='mask' (the probability of zeroing an input), got {f}"
        )
    if kind == "gaussian" and f < 0:
        raise InputError(f"corruption level must be >= 0 for kind='gaussian' (the noise's sigma), got {f}")
    if dtype is None or kind == "none" or not jnp.issubdtype(dtype, jnp.floating):
        return
    dt = jnp.dtype(dtype)
    with np.errstate(over="ignore"):
        c = float(np.asarray(f, dt))
    if kind == "gaussian" and not math.isfinite(c):
        raise InputError(
            f"corruption level={f:g} overflows {dt.name} (largest finite value {float(jnp.finfo(dt).max):g}); "
            f"use a smaller sigma or float64"
        )
    if kind == "mask" and not c < 1:
        raise InputError(
            f"corruption level={f!r} rounds to {c!r} in {dt.name}, where kind='mask' needs a probability "
            f"below 1 (at most {1 - float(jnp.finfo(dt).epsneg):.9g}); use such a level or float64"
        )


def corrupt(key: jax.Array, x: jax.Array, *, kind: str, level: ArrayLike) -> jax.Array:
    r"""A corrupted copy :math:`\tilde x` of ``x`` (same shape and dtype), drawn with ``key``.

    Args:
      key: a ``jax.random`` key (the same key gives the same corruption).
      x: ``(m, n_visible)`` (any shape), floating.
      kind: ``"mask"`` (each entry zeroed with probability ``level``), ``"gaussian"``
        (:math:`x + \text{level}\cdot\mathcal N(0, 1)`) or ``"none"`` (``x``).
      level: :math:`p \in [0, 1)` for ``"mask"``, :math:`\sigma \ge 0` for ``"gaussian"``
        (traceable: a sweep over levels compiles once).

    Returns:
      an array of ``x``'s shape and dtype.
    """
    check_key(key)
    if not hasattr(x, "dtype") or not jnp.issubdtype(x.dtype, jnp.floating):
        raise InputError(f"x must be a floating array, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    check_corruption(kind, level, x.dtype)
    if kind == "none":
        return x
    level_ = jnp.asarray(level, x.dtype)
    if kind == "mask":
        keep = jax.random.uniform(key, jnp.shape(x), x.dtype) >= level_
        return jnp.where(keep, x, jnp.zeros((), x.dtype))
    out = x + level_ * jax.random.normal(key, jnp.shape(x), x.dtype)
    if is_concrete(out) and is_concrete(x) and not bool(jnp.all(jnp.isfinite(out))):  # eager only: jit sees the math
        if bool(jnp.all(jnp.isfinite(x))):
            raise InputError(
                f"corruption level={float(level):g}: x + level * N(0, 1) overflows {jnp.dtype(x.dtype).name} "
                f"(x up to {float(jnp.max(jnp.abs(x))):g}); use a smaller sigma or float64"
            )
    return out
