r"""The forward pass: encode, decode, reconstruct.

Samples are rows: ``x.shape == (m, n_visible)`` (UFLDL stores them as columns;
see :mod:`sae_jax.params`). With :math:`f` the logistic sigmoid,

.. math::
    z^{(2)} = x W_1^\top + b_1, \quad a^{(2)} = f(z^{(2)}), \qquad
    z^{(3)} = a^{(2)} W_2^\top + b_2, \quad \hat x = a^{(3)} = g(z^{(3)}),

where the output nonlinearity :math:`g` is the sigmoid (``output="sigmoid"``,
the default, for data in :math:`[0, 1]`) or the identity (``output="linear"``,
UFLDL's *linear decoder* for unbounded data such as whitened patches).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from .params import Params

__all__ = [
    "OUTPUTS",
    "Activations",
    "sigmoid",
    "sigmoid_prime",
    "hidden_pre_activation",
    "encode",
    "decode",
    "forward",
    "reconstruct",
]

Output = Literal["sigmoid", "linear"]
OUTPUTS: tuple[str, ...] = ("sigmoid", "linear")


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
    from .validate import check_layer_input, check_params

    check_params(params)
    if fn == "decode":
        check_layer_input(params, x, width=params[0].shape[0], name="a2", what="n_hidden")
    else:
        check_layer_input(params, x, width=params[0].shape[1])


def _add_bias(y: jax.Array, b: jax.Array) -> jax.Array:
    # Explicit broadcast of a bias over the leading (sample) axes; works under
    # jax_numpy_rank_promotion="raise".
    return y + jnp.reshape(b, (1,) * (y.ndim - 1) + b.shape)


def hidden_pre_activation(params: Params, x: jax.Array) -> jax.Array:
    r"""Hidden pre-activations :math:`z^{(2)} = x W_1^\top + b_1`, ``(m, n_hidden)`` (or ``(n_hidden,)``)."""
    return _add_bias(x @ params.W1.T, params.b1)


def encode(params: Params, x: jax.Array) -> jax.Array:
    r"""Hidden activations :math:`a^{(2)} = f(x W_1^\top + b_1)`.

    Args:
      params: :class:`~sae_jax.Params`.
      x: data, shape ``(m, n_visible)`` (or a single sample ``(n_visible,)``), in params' dtype
        (nothing is converted: a float64 ``x`` with float32 params is an :class:`~sae_jax.InputError`,
        as is a list or a wrong width; see :func:`sae_jax.validate.check_layer_input`).

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
      sae_jax.validate.InputError: x must have the same dtype as params (float32), got float64; ...
    """
    _check(params, x, "encode")
    return _encode(params, x)


def _encode(params: Params, x: jax.Array) -> jax.Array:
    """:func:`encode` without the input check (sae-jax's own traced code, inputs checked upstream)."""
    return sigmoid(hidden_pre_activation(params, x))


def decode(params: Params, a2: jax.Array, *, output: Output = "sigmoid") -> jax.Array:
    r"""Reconstruction :math:`\hat x = g(a^{(2)} W_2^\top + b_2)` from hidden activations ``(m, n_hidden)``
    (in params' dtype, as for :func:`encode`)."""
    _check(params, a2, "decode")
    z3 = _add_bias(a2 @ params.W2.T, params.b2)
    return _output_activation(z3, output)


def _output_activation(z3: jax.Array, output: str) -> jax.Array:
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
    return _forward(params, x, output=output)


def _forward(params: Params, x: jax.Array, *, output: Output = "sigmoid") -> Activations:
    """:func:`forward` without the input check: sae-jax's own traced code (the cost, backprop, the
    chunked paths) calls this on inputs checked upstream; optax's line searches may hand it
    parameters promoted to float64 under x64 while the data stay float32, which must keep working."""
    z2 = hidden_pre_activation(params, x)
    a2 = sigmoid(z2)
    z3 = _add_bias(a2 @ params.W2.T, params.b2)
    a3 = _output_activation(z3, output)
    return Activations(z2, a2, z3, a3)


def reconstruct(params: Params, x: jax.Array, *, output: Output = "sigmoid") -> jax.Array:
    r""":math:`\hat x = \operatorname{decode}(\operatorname{encode}(x))`, same shape as ``x``."""
    return forward(params, x, output=output).a3
