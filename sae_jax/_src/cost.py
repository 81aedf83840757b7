r"""The sparse-autoencoder cost and its terms (UFLDL / CS294A notes, section "Sparse autoencoder").

For data :math:`x^{(1)}, \dots, x^{(m)}` (rows of ``x``),

.. math::
    J(W, b) = \underbrace{\frac{1}{m} \sum_{i=1}^m \tfrac12 \lVert \hat x^{(i)} - x^{(i)} \rVert^2}_{\text{reconstruction}}
      + \underbrace{\frac{\lambda}{2} \left( \lVert W_1 \rVert_F^2 + \lVert W_2 \rVert_F^2 \right)}_{\text{weight decay}}
      + \underbrace{\beta \sum_{j=1}^{h} \mathrm{KL}(\rho \,\Vert\, \hat\rho_j)}_{\text{sparsity}},
    \qquad \hat\rho_j = \frac{1}{m} \sum_{i=1}^m a^{(2)}_j(x^{(i)}).

Weight decay acts on the weights only (not the biases) and is not divided by
:math:`m`: the published UFLDL convention.

Variants
--------
Tied weights (``Params(W1, b1, None, b2)``: :math:`W_2 = W_1^\top`), an L1 activation penalty
(``l1=``) and denoising (``x_input=``) are options of the same functions: :mod:`sae_jax._src.variants`.

The sparsity term
-----------------
:math:`\hat\rho`, the KL divergence, the penalty and its delta, exact at saturation (a
``lax.cond`` between the plain formulas and the log domain), live in one module,
:mod:`sae_jax._src.sparsity`; this module assembles the cost from them
(:func:`~sae_jax._src.sparsity.sparsity_and_rho_hat`).

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax import cost_terms, init_params, kl_divergence
  >>> p = init_params(jax.random.key(0), 4, 2)
  >>> t = cost_terms(p, jnp.full((3, 4), 0.5), lam=1e-4, beta=3.0, rho=0.1)
  >>> bool(jnp.isclose(t.cost, t.reconstruction + t.weight_decay + t.sparsity))
  True
  >>> float(kl_divergence(0.1, jnp.asarray(0.1)))
  0.0
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .checks.fused import AUTOENCODER, entry
from .forward import Activations, Output, forward
from .params import Params, decoder_weights
from .sparsity import rho_hat, sparsity_and_rho_hat
from .variants import activation_l1

__all__ = [
    "CostTerms",
    "reconstruction",
    "weight_decay",
    "terms_from_parts",
    "terms_from_activations",
    "cost_terms",
    "cost",
]


class CostTerms(NamedTuple):
    """The cost split into its parts, for logging (``cost == reconstruction + weight_decay + sparsity + l1``)."""

    cost: jax.Array  # shape=(), the total J
    reconstruction: jax.Array  # shape=(), (1/m) sum_i 1/2 ||x_hat - x||^2
    weight_decay: jax.Array  # shape=(), (lam/2)(||W1||^2 + ||W2||^2)
    sparsity: jax.Array  # shape=(), beta * sum_j KL(rho || rho_hat_j)
    rho_hat: jax.Array  # shape=(n_hidden,), mean hidden activation
    l1: jax.Array = 0.0  # shape=(), gamma (1/m) sum_i ||a2_i||_1 (0 without l1=)


def reconstruction(x_hat: jax.Array, x: jax.Array) -> jax.Array:
    r"""Mean squared-error term :math:`\frac{1}{m} \sum_i \tfrac12 \lVert \hat x^{(i)} - x^{(i)} \rVert^2` for ``(m, n)`` arrays."""
    m = x.shape[0]
    return 0.5 * jnp.sum(jnp.square(x_hat - x)) / m


def weight_decay(params: Params, *, lam: ArrayLike) -> jax.Array:
    r""":math:`\frac{\lambda}{2} (\lVert W_1 \rVert_F^2 + \lVert W_2 \rVert_F^2)`; biases are not decayed.

    Tied parameters (``W2=None``): at :math:`W_2 = W_1^\top`, i.e. :math:`\lambda\lVert W_1\rVert_F^2`."""
    lam = jnp.asarray(lam, params.W1.dtype)
    return 0.5 * lam * (jnp.sum(jnp.square(params.W1)) + jnp.sum(jnp.square(decoder_weights(params))))


def terms_from_parts(
    params: Params, *, reconstruction: jax.Array, sparsity: jax.Array, rho_hat: jax.Array, lam: ArrayLike,
    l1: jax.Array | None = None,
) -> CostTerms:
    r""":class:`CostTerms` from the reconstruction term and the penalties: adds the weight decay and the total.

    The one place the terms are assembled (the cost, the backprop core, the EMA objective).
    ``l1``: the L1 activation term's value (:func:`~sae_jax.activation_l1`), if any.
    """
    wd = weight_decay(params, lam=lam)
    total = reconstruction + wd + sparsity
    total, l1 = (total, jnp.zeros((), total.dtype)) if l1 is None else (total + l1, l1)
    return CostTerms(total, reconstruction, wd, sparsity, rho_hat, l1)


def terms_from_activations(
    params: Params, x: jax.Array, acts: Activations, *, lam: ArrayLike, beta: ArrayLike, rho: ArrayLike,
    rho_prev: jax.Array | None = None, ema_decay: ArrayLike | None = None, l1: ArrayLike | None = None,
) -> CostTerms:
    """:class:`CostTerms` from an already computed forward pass ``acts`` with target ``x`` (with ``rho_prev``,
    ``ema_decay``: the penalty at the running estimate, :mod:`sae_jax._src.minibatch`; ``l1``: :func:`~sae_jax.activation_l1`)."""
    sp, rh = sparsity_and_rho_hat(
        acts.z2, rho_hat(acts.a2), rho=rho, beta=beta, rho_prev=rho_prev, ema_decay=ema_decay
    )
    l1_term = None if l1 is None else activation_l1(acts.a2, l1=l1)
    return terms_from_parts(
        params, reconstruction=reconstruction(acts.a3, x), sparsity=sp, rho_hat=rh, lam=lam, l1=l1_term
    )


@entry(AUTOENCODER)
def cost_terms(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
    l1: ArrayLike | None = None,
    x_input: jax.Array | None = None,
) -> CostTerms:
    r"""The cost and each of its terms, plus :math:`\hat\rho` (see :func:`cost`).

    Called on values it runs compiled, its inputs checked (the array values inside the same
    compiled call: :func:`sae_jax._src.checks.fused.checked_call`); under the caller's ``jit``/``vmap``/``grad``
    it is the bare math with its shapes checked at trace time.

    Returns:
      :class:`CostTerms` ``(cost, reconstruction, weight_decay, sparsity, rho_hat, l1)``.
    """
    acts = forward(params, x if x_input is None else x_input, output=output)
    return terms_from_activations(params, x, acts, lam=lam, beta=beta, rho=rho, l1=l1)


@entry()
def cost(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
    l1: ArrayLike | None = None,
    x_input: jax.Array | None = None,
) -> jax.Array:
    r"""The sparse-autoencoder cost :math:`J_\text{sparse}(W, b)`.

    .. math::
        J = \frac{1}{m} \sum_{i=1}^m \tfrac12 \lVert \hat x^{(i)} - x^{(i)} \rVert^2
          + \frac{\lambda}{2} (\lVert W_1 \rVert_F^2 + \lVert W_2 \rVert_F^2)
          + \beta \sum_{j} \mathrm{KL}(\rho \Vert \hat\rho_j)

    A pure function of ``params`` (first argument, so ``jax.grad(cost)``
    differentiates it) composable with ``jit``, ``vmap``, ``grad`` and sharding.
    Hyperparameters are ordinary (traceable) arrays, so one compiled function
    serves a sweep: ``jax.vmap(lambda b: cost(p, x, lam=l, beta=b, rho=r))(betas)``.

    Shapes and dtypes are checked at trace time. Values (``rho`` in (0, 1),
    ``beta, lam >= 0``, finite ``x``, ``x`` in [0, 1] for a sigmoid output) are
    checked whenever they are concrete, i.e. not under the caller's ``jit``/``vmap``;
    call :func:`sae_jax._src.checks.args.check_call` yourself before tracing to check them there.

    Args:
      params: :class:`~sae_jax.Params` (UFLDL shapes).
      x: data, shape ``(m, n_visible)``, samples as rows, same dtype as ``params``.
      lam: weight decay :math:`\lambda \ge 0`, scalar.
      beta: sparsity weight :math:`\beta \ge 0`, scalar.
      rho: target activation :math:`\rho \in (0, 1)`, scalar.
      output: ``"sigmoid"`` (default; data in [0, 1]) or ``"linear"`` (linear decoder). Static.
      l1, x_input: the L1 activation penalty's weight and the denoising input (``x`` is then the
        target); with tied parameters (``W2=None``), the variants of :mod:`sae_jax._src.variants`.

    Returns:
      scalar, in ``params``' dtype.

    Examples:
      >>> import jax
      >>> from sae_jax import init_params, cost
      >>> p = init_params(jax.random.key(0), 64, 25)
      >>> x = jax.random.uniform(jax.random.key(1), (100, 64))
      >>> J = cost(p, x, lam=1e-4, beta=3.0, rho=0.01)
      >>> J.shape, J.dtype
      ((), dtype('float32'))

    References:
      A. Ng, *Sparse autoencoder*, CS294A lecture notes (2011), sections 2.2 and 3;
      UFLDL tutorial, "Autoencoders and Sparsity".
    """
    return cost_terms(params, x, lam=lam, beta=beta, rho=rho, output=output, l1=l1, x_input=x_input).cost

