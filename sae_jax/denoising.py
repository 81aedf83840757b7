r"""Denoising autoencoders: a keyed corruption of the input, the clean input as the target.

A denoising autoencoder (Vincent et al., 2008) reads a corrupted copy :math:`\tilde x` of each
sample and is trained to reconstruct the clean :math:`x`:

.. math::
    J = \frac1m \sum_i \tfrac12 \lVert \hat x(\tilde x^{(i)}) - x^{(i)} \rVert^2
      + \frac\lambda2 \lVert W \rVert^2 + \beta \sum_j \mathrm{KL}(\rho \Vert \hat\rho_j),
    \qquad \hat\rho_j = \frac1m \sum_i a^{(2)}_j(\tilde x^{(i)}).

The corruption is a pure function of a ``jax.random`` key, :func:`corrupt`, and the cost takes
the corrupted input as data: ``sae_jax.cost(params, x, x_input=corrupt(key, x, kind=, level=), ...)``
(likewise ``cost_and_grad``, ``autodiff_cost_and_grad``, ``cost_terms``). Keeping the
randomness out of the cost keeps the cost a deterministic function of its arguments, so its
gradient (manual or ``jax.grad``), finite differences and sympy all see the same function; any
corruption of your own works the same way; and a trainer decides how keys are drawn (``sae-jax
train --corruption mask``: a fresh key per step, ``fold_in(key(seed), step)``, so a resumed run
draws the same corruptions). The corruption does not depend on the parameters, so the gradient
is the plain autoencoder's with :math:`\tilde x` in the forward pass and in
:math:`\delta^{(2)\top}\tilde x`, and :math:`x` in :math:`\delta^{(3)} = (\hat x - x)\odot g'`.

Kinds (:data:`CORRUPTIONS`):

* ``"mask"`` (masking noise): each entry zeroed independently with probability ``level`` :math:`= p \in [0, 1)`,
  the others kept as they are (no :math:`1/(1-p)` rescaling: the classic denoising autoencoder's).
* ``"gaussian"`` (additive isotropic Gaussian noise): :math:`\tilde x = x + \sigma\,\mathcal N(0, 1)`,
  ``level`` :math:`= \sigma \ge 0`. The result may leave [0, 1]: it is an input, not a target.
* ``"none"``: ``x`` itself.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax import init_params, cost_and_grad
  >>> from sae_jax.denoising import corrupt
  >>> x = jnp.full((4, 6), 0.5)
  >>> x_tilde = corrupt(jax.random.key(0), x, kind="mask", level=0.5)
  >>> sorted(set(x_tilde.ravel().tolist())) == [0.0, 0.5]     # entries kept or zeroed
  True
  >>> p = init_params(jax.random.key(1), 6, 3)
  >>> J, g = cost_and_grad(p, x, x_input=x_tilde, lam=1e-4, beta=3.0, rho=0.1)
  >>> g.W1.shape
  (3, 6)
  >>> corrupt(jax.random.key(0), x, kind="mask", level=1.0)    # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ...
  sae_jax.validate.InputError: corruption level must be in [0, 1) for kind='mask' ...
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .params import check_key
from .validate import InputError, is_concrete

__all__ = ["CORRUPTIONS", "check_corruption", "corrupt"]

#: The corruption kinds :func:`corrupt` knows (``"none"``: no corruption).
CORRUPTIONS: tuple[str, ...] = ("none", "mask", "gaussian")


def check_corruption(kind, level) -> None:
    """``kind`` is one of :data:`CORRUPTIONS`; ``level`` a finite real scalar, in [0, 1) for
    ``"mask"`` (the probability of zeroing an entry) and ``>= 0`` for ``"gaussian"`` (σ).
    Values are checked when concrete (under ``jit`` a traced level is taken as given)."""
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
    check_corruption(kind, level)
    if not hasattr(x, "dtype") or not jnp.issubdtype(x.dtype, jnp.floating):
        raise InputError(f"x must be a floating array, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if kind == "none":
        return x
    level = jnp.asarray(level, x.dtype)
    if kind == "mask":
        keep = jax.random.uniform(key, jnp.shape(x), x.dtype) >= level
        return jnp.where(keep, x, jnp.zeros((), x.dtype))
    return x + level * jax.random.normal(key, jnp.shape(x), x.dtype)
