r"""Parameters of the sparse autoencoder and their UFLDL initialisation.

Layout
------
The weights keep the shapes of the UFLDL / CS294A notes, so a parameter set is
interchangeable with any UFLDL port (``W1`` is ``hiddenSize × visibleSize``):

=====  ======================  =========================================
field  shape                   meaning
=====  ======================  =========================================
W1     (n_hidden, n_visible)   encoder weights; row j is hidden unit j's filter
b1     (n_hidden,)             encoder bias
W2     (n_visible, n_hidden)   decoder weights (``None``: tied, :math:`W_2 = W_1^\top`)
b2     (n_visible,)            decoder bias
=====  ======================  =========================================

Tied weights (:math:`W_2 = W_1^\top`) are ``Params(W1, b1, None, b2)``: the decoder weights are
absent, so gradients, optimizer states and checkpoints hold only the free parameters
(:mod:`sae_jax._src.variants`; :func:`tie`, :func:`untie`, :func:`decoder_weights`).

Only the *data* layout differs from the notes: sae-jax stores samples as rows,
``x.shape == (m, n_visible)``, where UFLDL stores them as columns
(``data`` is ``visibleSize × m``). So UFLDL's ``W1 * data + b1`` is
``x @ W1.T + b1`` here, and every gradient array has the same shape and values
as UFLDL's ``W1grad``, ``b1grad``, ``W2grad``, ``b2grad``.

Examples:
  >>> import jax
  >>> from sae_jax import init_params, params_to_theta, theta_to_params, is_tied, decoder_weights
  >>> p = init_params(jax.random.key(0), 4, 3)
  >>> theta = params_to_theta(p)                      # UFLDL's theta, column-major
  >>> theta.shape
  (31,)
  >>> q = theta_to_params(theta, 4, 3)
  >>> all(bool((a == b).all()) for a, b in zip(p, q))
  True
  >>> t = init_params(jax.random.key(0), 4, 3, tied=True)     # W2 absent: W2 = W1.T
  >>> t.W2 is None, is_tied(t), bool((decoder_weights(t) == t.W1.T).all())
  (True, True, True)
  >>> bool((t.W1 == p.W1).all())                           # the same W1 as the untied init
  True
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .validate import InputError, check_fits_in_memory, check_params, check_sizes

__all__ = [
    "Params",
    "init_params",
    "init_radius",
    "check_key",
    "is_tied",
    "decoder_weights",
    "tie",
    "untie",
    "params_to_theta",
    "theta_to_params",
]


class Params(NamedTuple):
    r"""Sparse-autoencoder parameters, a pytree (UFLDL shapes).

    Being a ``NamedTuple``, ``jax.grad``, ``jax.tree.map`` and ``optax`` return
    the same type. Never use ``+`` or ``*`` on two ``Params``: tuple arithmetic
    concatenates or repeats; use ``jax.tree.map``.

    ``W2=None`` is a tied autoencoder (:math:`W_2 = W_1^\top`; module docstring): ``None`` is an
    empty pytree node, so gradients and optimizer states of tied parameters have no ``W2`` either.
    """

    W1: jax.Array  # shape=(n_hidden, n_visible)
    b1: jax.Array  # shape=(n_hidden,)
    W2: jax.Array | None  # shape=(n_visible, n_hidden), or None: tied (W2 = W1.T)
    b2: jax.Array  # shape=(n_visible,)

    @property
    def n_visible(self) -> int:
        return int(self.W1.shape[1])

    @property
    def n_hidden(self) -> int:
        return int(self.W1.shape[0])

    @property
    def dtype(self):
        return self.W1.dtype


def init_radius(n_visible: int, n_hidden: int) -> float:
    r"""UFLDL's initialisation radius :math:`r = \sqrt{6 / (n_\text{visible} + n_\text{hidden} + 1)}`."""
    return math.sqrt(6.0 / (n_visible + n_hidden + 1))


def is_tied(params: Params) -> bool:
    r"""Whether ``params`` are a tied autoencoder's (``W2 is None``: :math:`W_2 = W_1^\top`)."""
    return params.W2 is None


def decoder_weights(params: Params) -> jax.Array:
    r"""The decoder weights :math:`W_2`, ``(n_visible, n_hidden)``: ``params.W2``, or :math:`W_1^\top` when tied."""
    return params.W1.T if params.W2 is None else params.W2


def tie(params: Params) -> Params:
    """``params`` without their decoder weights: the tied autoencoder with the same encoder (``W2 = W1.T``)."""
    return params._replace(W2=None)


def untie(params: Params) -> Params:
    r"""``params`` with :math:`W_2` written out (:math:`W_1^\top` when tied; untied ones unchanged).

    The untied point a tied autoencoder *is*: same cost, same reconstructions (for an untied
    consumer, a UFLDL port, or an untied warm start). Its untied gradient splits the tied one:
    :math:`\nabla_{W_1}^\text{tied} = \nabla_{W_1} + \nabla_{W_2}^\top`.
    """
    params = _as_params(params, "untie")
    return params._replace(W2=decoder_weights(params))


def init_params(
    key: jax.Array, n_visible: int, n_hidden: int, *, dtype=jnp.float32, tied: bool = False
) -> Params:
    r"""UFLDL ``initializeParameters``: weights uniform in :math:`(-r, r)`, biases zero.

    .. math::
        r = \sqrt{\frac{6}{n_\text{visible} + n_\text{hidden} + 1}}

    Args:
      key: a ``jax.random`` key.
      n_visible: number of input (and output) units, ``>= 1``.
      n_hidden: number of hidden units, ``>= 1``.
      dtype: floating dtype of every array (``float32`` or, with x64 on, ``float64``).
      tied: a tied autoencoder: ``W2=None`` (:math:`W_2 = W_1^\top`). ``W1`` is the same array
        as the untied initialisation's with the same key.

    Returns:
      ``Params`` with ``W1: (n_hidden, n_visible)``, ``W2: (n_visible, n_hidden)`` (or ``None``),
      zero biases.

    Examples:
      >>> import jax
      >>> p = init_params(jax.random.key(0), 64, 25)
      >>> p.W1.shape, p.W2.shape, p.b1.shape, p.b2.shape
      ((25, 64), (64, 25), (25,), (64,))
    """
    check_key(key)
    check_sizes(n_visible=n_visible, n_hidden=n_hidden)
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        raise InputError(f"dtype must be a floating dtype such as 'float32', got {dtype!r}") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise InputError(f"dtype must be a floating dtype, got {dtype}")
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise InputError(
            f"dtype={dtype.name!r} needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) "
            f"first, or use dtype='float32'"
        )
    if not isinstance(tied, bool):
        raise InputError(f"tied must be True or False, got {tied!r}")
    n_weights = 1 if tied else 2
    check_fits_in_memory(
        f"init_params(n_visible={n_visible}, n_hidden={n_hidden}{', tied' if tied else ''}) in {dtype.name}",
        (n_weights * n_hidden * n_visible + n_hidden + n_visible) * dtype.itemsize,
        device=_default_device(), hint="; use fewer units",
    )
    r = init_radius(n_visible, n_hidden)
    k1, k2 = jax.random.split(key)
    W1 = jax.random.uniform(k1, (n_hidden, n_visible), dtype, minval=-r, maxval=r)
    W2 = None if tied else jax.random.uniform(k2, (n_visible, n_hidden), dtype, minval=-r, maxval=r)
    return Params(W1, jnp.zeros((n_hidden,), dtype), W2, jnp.zeros((n_visible,), dtype))


def _default_device():
    try:
        return jax.devices()[0]
    except RuntimeError:  # pragma: no cover
        return None


def _as_params(params, who: str) -> Params:
    """``params`` for :func:`untie` / :func:`params_to_theta`: a :class:`Params` of arrays (InputError else)."""
    try:
        check_params(params, values=False)
    except InputError as e:
        raise InputError(f"{who}: {e}") from None
    return params


def check_key(key, name: str = "key") -> None:
    """``key`` (an argument called ``name``) is a ``jax.random.key(seed)`` (typed, shape ``()``) or a legacy raw ``PRNGKey`` (uint32)."""
    dt = getattr(key, "dtype", None)
    ok = False
    if dt is not None and hasattr(key, "shape"):
        if jax.dtypes.issubdtype(dt, jax.dtypes.prng_key):
            ok = tuple(key.shape) == ()
        else:
            ok = np.dtype(dt) == np.uint32 and len(key.shape) == 1 and key.shape[0] in (2, 4)
    if not ok:
        what = type(key).__name__
        if dt is not None and hasattr(key, "shape"):
            what += f" of dtype {dt} and shape {tuple(key.shape)}"
        raise InputError(
            f"{name} must be one jax.random key (jax.random.key(seed) or jax.random.PRNGKey(seed)), got {what}"
        )


def params_to_theta(params: Params) -> np.ndarray:
    """Flatten to UFLDL's ``theta = [W1(:); W2(:); b1(:); b2(:)]`` (column-major).

    For exchanging parameters and gradients with MATLAB/Octave code and UFLDL ports. Tied
    parameters flatten to ``[W1(:); b1(:); b2(:)]`` (their free parameters).
    """
    params = _as_params(params, "params_to_theta")
    W1, b1, W2, b2 = (None if a is None else np.asarray(a) for a in params)
    weights = [W1.ravel(order="F")] + ([] if W2 is None else [W2.ravel(order="F")])
    return np.concatenate(weights + [b1.ravel(), b2.ravel()])


def theta_to_params(theta, n_visible: int, n_hidden: int, *, tied: bool = False) -> Params:
    """Inverse of :func:`params_to_theta` (UFLDL's unpacking in ``sparseAutoencoderCost``);
    ``tied=True`` for a tied ``theta`` ``[W1(:); b1(:); b2(:)]``."""
    check_sizes(n_visible=n_visible, n_hidden=n_hidden)
    if not isinstance(tied, bool):
        raise InputError(f"tied must be True or False, got {tied!r}")
    theta = np.asarray(theta)
    if not np.issubdtype(theta.dtype, np.floating):
        raise InputError(f"theta must be a floating 1-D array, got dtype {theta.dtype}")
    hv = n_hidden * n_visible
    n_weights = 1 if tied else 2
    expected = n_weights * hv + n_hidden + n_visible
    if theta.shape != (expected,):
        raise InputError(
            f"theta must have shape ({expected},) for n_visible={n_visible}, "
            f"n_hidden={n_hidden}{', tied' if tied else ''}, got {theta.shape}"
        )
    W1 = theta[:hv].reshape((n_hidden, n_visible), order="F")
    if tied:
        b1, b2 = theta[hv : hv + n_hidden], theta[hv + n_hidden :]
        return Params(jnp.asarray(W1), jnp.asarray(b1), None, jnp.asarray(b2))
    W2 = theta[hv : 2 * hv].reshape((n_visible, n_hidden), order="F")
    b1 = theta[2 * hv : 2 * hv + n_hidden]
    b2 = theta[2 * hv + n_hidden :]
    return Params(*(jnp.asarray(a) for a in (W1, b1, W2, b2)))
