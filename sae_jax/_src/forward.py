r"""The forward pass: encode, decode, reconstruct.

Samples are rows: ``x.shape == (m, n_visible)`` (UFLDL stores them as columns;
see :mod:`sae_jax._src.params`). With :math:`f` the logistic sigmoid,

.. math::
    z^{(2)} = x W_1^\top + b_1, \quad a^{(2)} = f(z^{(2)}), \qquad
    z^{(3)} = a^{(2)} W_2^\top + b_2, \quad \hat x = a^{(3)} = g(z^{(3)}),

where the output nonlinearity :math:`g` is the sigmoid (``output="sigmoid"``,
the default, for data in :math:`[0, 1]`) or the identity (``output="linear"``,
UFLDL's *linear decoder* for unbounded data such as whitened patches). Tied parameters
(``W2=None``, :mod:`sae_jax._src.params`) decode with :math:`W_2 = W_1^\top`.

Every public function checks its inputs' shapes and dtypes (at trace time under ``jit``, so
for free) and, called on values, that the parameters are finite; sae-jax's own compiled code
calls these same functions inside its ``jit``.

Examples:
  >>> import jax, numpy as np
  >>> from sae_jax import init_params, forward, reconstruct
  >>> p = init_params(jax.random.key(0), 4, 3)
  >>> x = np.full((2, 4), 0.5, np.float32)
  >>> acts = forward(p, x)
  >>> acts.z2.shape, acts.a2.shape, acts.a3.shape
  ((2, 3), (2, 3), (2, 4))
  >>> bool((reconstruct(p, x) == acts.a3).all())
  True
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from . import validate
from .params import Params, decoder_weights
from .validate import OUTPUTS

__all__ = [
    "OUTPUTS",
    "Activations",
    "sigmoid",
    "sigmoid_prime",
    "add_bias",
    "hidden_pre_activation",
    "output_activation",
    "encode",
    "decode",
    "forward",
    "reconstruct",
]

Output = Literal["sigmoid", "linear"]


class Activations(NamedTuple):
    """Every intermediate of the forward pass, for backprop and inspection."""

    z2: jax.Array  # shape=(m, n_hidden), hidden pre-activation
    a2: jax.Array  # shape=(m, n_hidden), hidden activation f(z2)
    z3: jax.Array  # shape=(m, n_visible), output pre-activation
    a3: jax.Array  # shape=(m, n_visible), reconstruction x_hat = g(z3)


def sigmoid(z: jax.Array) -> jax.Array:
    r""":math:`f(z) = 1 / (1 + e^{-z})`, overflow-free for any :math:`z` (``jax.nn.sigmoid``)."""
    return jax.nn.sigmoid(z)


def sigmoid_prime(a: jax.Array) -> jax.Array:
    r"""The sigmoid's derivative written in terms of its *output*: :math:`f'(z) = a(1 - a)`, :math:`a = f(z)`.

    This is the tutorial's form and exactly what ``jax.grad`` of ``jax.nn.sigmoid`` computes.
    """
    return a * (1 - a)


def _check(params, x, fn: str) -> None:
    validate.check_params(params)
    if fn == "decode":
        validate.check_layer_input(params, x, width=params[0].shape[0], name="a2", what="n_hidden")
    else:
        validate.check_layer_input(params, x, width=params[0].shape[1])


def add_bias(y: jax.Array, b: jax.Array) -> jax.Array:
    """``y + b`` with the bias ``(k,)`` broadcast explicitly over ``y``'s leading (sample) axes
    (so it works under ``jax_numpy_rank_promotion="raise"``)."""
    return y + jnp.reshape(b, (1,) * (y.ndim - 1) + b.shape)


def hidden_pre_activation(params: Params, x: jax.Array) -> jax.Array:
    r"""Hidden pre-activations :math:`z^{(2)} = x W_1^\top + b_1`, ``(m, n_hidden)`` (or ``(n_hidden,)``).

    The bare product and bias: no input check (a building block of the checked functions)."""
    return add_bias(x @ params.W1.T, params.b1)


def encode(params: Params, x: jax.Array) -> jax.Array:
    r"""Hidden activations :math:`a^{(2)} = f(x W_1^\top + b_1)`.

    Args:
      params: :class:`~sae_jax.Params`.
      x: data, shape ``(m, n_visible)`` (or a single sample ``(n_visible,)``), in params' dtype
        (nothing is converted: a float64 ``x`` with float32 params is an :class:`~sae_jax.InputError`,
        as is a list or a wrong width; see :func:`sae_jax._src.validate.check_layer_input`).

    Returns:
      ``(m, n_hidden)`` (or ``(n_hidden,)``), in params' dtype.

    Examples:
      >>> import jax, numpy as np
      >>> from sae_jax import init_params, encode
      >>> p = init_params(jax.random.key(0), 4, 3)                    # float32
      >>> encode(p, np.full((2, 4), 0.5, np.float32)).shape
      (2, 3)
      >>> encode(p, np.full((2, 4), 0.5))                            # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      sae_jax.InputError: x must have the same dtype as params (float32), got float64; ...
    """
    _check(params, x, "encode")
    return sigmoid(hidden_pre_activation(params, x))


def decode(params: Params, a2: jax.Array, *, output: Output = "sigmoid") -> jax.Array:
    r"""Reconstruction :math:`\hat x = g(a^{(2)} W_2^\top + b_2)` from hidden activations ``(m, n_hidden)``
    (in params' dtype, as for :func:`encode`)."""
    _check(params, a2, "decode")
    z3 = add_bias(a2 @ decoder_weights(params).T, params.b2)
    return output_activation(z3, output)


def output_activation(z3: jax.Array, output: Output) -> jax.Array:
    """The output nonlinearity :math:`g(z^{(3)})`: the sigmoid or, for ``output="linear"``, the identity."""
    if output == "sigmoid":
        return sigmoid(z3)
    if output == "linear":
        return z3
    raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")


def forward(params: Params, x: jax.Array, *, output: Output = "sigmoid") -> Activations:
    """The whole forward pass, returning every intermediate as :class:`Activations`.

    Args:
      params: :class:`~sae_jax.Params`.
      x: data, shape ``(m, n_visible)`` (or ``(n_visible,)``), in params' dtype (as for :func:`encode`).
      output: ``"sigmoid"`` or ``"linear"`` (static).
    """
    _check(params, x, "forward")
    z2 = hidden_pre_activation(params, x)
    a2 = sigmoid(z2)
    z3 = add_bias(a2 @ decoder_weights(params).T, params.b2)
    a3 = output_activation(z3, output)
    return Activations(z2, a2, z3, a3)


def reconstruct(params: Params, x: jax.Array, *, output: Output = "sigmoid") -> jax.Array:
    r""":math:`\hat x = \operatorname{decode}(\operatorname{encode}(x))`, same shape as ``x``."""
    return forward(params, x, output=output).a3
