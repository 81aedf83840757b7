r"""The sparse-autoencoder cost and its terms (UFLDL / CS294A notes, section "Sparse autoencoder").

For data :math:`x^{(1)}, \dots, x^{(m)}` (rows of ``x``),

.. math::
    J(W, b) = \underbrace{\frac{1}{m} \sum_{i=1}^m \tfrac12 \lVert \hat x^{(i)} - x^{(i)} \rVert^2}_{\text{reconstruction}}
      + \underbrace{\frac{\lambda}{2} \left( \lVert W_1 \rVert_F^2 + \lVert W_2 \rVert_F^2 \right)}_{\text{weight decay}}
      + \underbrace{\beta \sum_{j=1}^{h} \mathrm{KL}(\rho \,\Vert\, \hat\rho_j)}_{\text{sparsity}},
    \qquad \hat\rho_j = \frac{1}{m} \sum_{i=1}^m a^{(2)}_j(x^{(i)}).

Weight decay acts on the weights only (not the biases) and is not divided by
:math:`m`: the published UFLDL convention.

Saturation
----------
In floating point, :math:`\hat\rho_j` can round to exactly 0 or 1 (every sample
saturates unit :math:`j`'s sigmoid), where the KL term and its derivative are
infinite. sae-jax evaluates the sparsity term at :func:`safe_rho_hat`, which
equals :math:`\hat\rho_j` strictly inside :math:`(\epsilon, 1-\epsilon)`
(:math:`\epsilon` = the dtype's machine epsilon, 1.19e-7 for float32, 2.2e-16
for float64) and is the constant clipped value, with zero derivative, outside.
So cost and gradient are always finite; outside the interval the sparsity
penalty is a finite plateau and contributes no gradient (the unit's
:math:`f'(z)` is then at most :math:`m\epsilon` anyway). The manual gradient
(:mod:`sae_jax.backprop`) uses the same definition, so it equals ``jax.grad``
there too. Inside the interval nothing changes.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from . import validate
from .forward import Activations, Output, _forward as forward  # unchecked: inputs checked here
from .params import Params

__all__ = [
    "CostTerms",
    "rho_hat",
    "safe_rho_hat",
    "kl_divergence",
    "reconstruction",
    "weight_decay",
    "sparsity",
    "cost_terms",
    "cost",
]


class CostTerms(NamedTuple):
    """The cost split into its parts, for logging (``cost == reconstruction + weight_decay + sparsity``)."""

    cost: jax.Array  # shape=(), the total J
    reconstruction: jax.Array  # shape=(), (1/m) sum_i 1/2 ||x_hat - x||^2
    weight_decay: jax.Array  # shape=(), (lam/2)(||W1||^2 + ||W2||^2)
    sparsity: jax.Array  # shape=(), beta * sum_j KL(rho || rho_hat_j)
    rho_hat: jax.Array  # shape=(n_hidden,), mean hidden activation


def rho_hat(a2: jax.Array) -> jax.Array:
    r"""Average activation of each hidden unit, :math:`\hat\rho_j = \frac1m \sum_i a^{(2)}_j(x^{(i)})`.

    Args:
      a2: hidden activations, shape ``(m, n_hidden)``.

    Returns:
      ``(n_hidden,)``.
    """
    return jnp.mean(a2, axis=0)


def safe_rho_hat(rho_hat: jax.Array) -> tuple[jax.Array, jax.Array]:
    r""":math:`\hat\rho` kept inside :math:`[\epsilon, 1-\epsilon]`, and the mask where it was already inside.

    Returns ``(rho_hat_safe, inside)``: ``rho_hat_safe`` is ``rho_hat`` where
    ``inside`` (strictly within :math:`(\epsilon, 1 - \epsilon)`), else the
    clipped value as a constant (``stop_gradient``), so its derivative is exactly
    ``inside``. Both branches are finite, so ``jnp.where`` has no NaN-gradient trap.
    """
    eps = jnp.finfo(rho_hat.dtype).eps
    lo, hi = eps, 1 - eps
    inside = (rho_hat > lo) & (rho_hat < hi)
    clipped = lax.stop_gradient(jnp.clip(rho_hat, lo, hi))
    return jnp.where(inside, rho_hat, clipped), inside


def kl_divergence(rho: ArrayLike, rho_hat: jax.Array) -> jax.Array:
    r"""Bernoulli KL divergence, elementwise.

    .. math::
        \mathrm{KL}(\rho \,\Vert\, \hat\rho) = \rho \log\frac{\rho}{\hat\rho}
          + (1-\rho) \log\frac{1-\rho}{1-\hat\rho}

    The plain formula: infinite at :math:`\hat\rho \in \{0, 1\}` (the cost
    passes :func:`safe_rho_hat` instead).
    """
    return rho * jnp.log(rho / rho_hat) + (1 - rho) * jnp.log((1 - rho) / (1 - rho_hat))


def reconstruction(x_hat: jax.Array, x: jax.Array) -> jax.Array:
    r"""Mean squared-error term :math:`\frac{1}{m} \sum_i \tfrac12 \lVert \hat x^{(i)} - x^{(i)} \rVert^2` for ``(m, n)`` arrays."""
    m = x.shape[0]
    return 0.5 * jnp.sum(jnp.square(x_hat - x)) / m


def weight_decay(params: Params, *, lam: ArrayLike) -> jax.Array:
    r""":math:`\frac{\lambda}{2} (\lVert W_1 \rVert_F^2 + \lVert W_2 \rVert_F^2)`; biases are not decayed."""
    lam = jnp.asarray(lam, params.W1.dtype)
    return 0.5 * lam * (jnp.sum(jnp.square(params.W1)) + jnp.sum(jnp.square(params.W2)))


def sparsity(rho_hat: jax.Array, *, rho: ArrayLike, beta: ArrayLike) -> jax.Array:
    r""":math:`\beta \sum_j \mathrm{KL}(\rho \Vert \hat\rho_j)`, with :math:`\hat\rho` made safe by :func:`safe_rho_hat`."""
    rho = jnp.asarray(rho, rho_hat.dtype)
    beta = jnp.asarray(beta, rho_hat.dtype)
    return beta * jnp.sum(kl_divergence(rho, safe_rho_hat(rho_hat)[0]))


def terms_from_activations(
    params: Params, x: jax.Array, acts: Activations, *, lam: ArrayLike, beta: ArrayLike, rho: ArrayLike
) -> CostTerms:
    """:class:`CostTerms` from an already computed forward pass (shared by the cost and the backprop)."""
    rh = rho_hat(acts.a2)
    rec = reconstruction(acts.a3, x)
    wd = weight_decay(params, lam=lam)
    sp = sparsity(rh, rho=rho, beta=beta)
    return CostTerms(rec + wd + sp, rec, wd, sp, rh)


def _cost_terms(params, x, *, lam, beta, rho, output="sigmoid") -> CostTerms:
    return terms_from_activations(
        params, x, forward(params, x, output=output), lam=lam, beta=beta, rho=rho
    )


def cost_terms(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
) -> CostTerms:
    r"""The cost and each of its terms, plus :math:`\hat\rho` (see :func:`cost`).

    Returns:
      :class:`CostTerms` ``(cost, reconstruction, weight_decay, sparsity, rho_hat)``.
    """
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output)
    return _cost_terms(params, x, lam=lam, beta=beta, rho=rho, output=output)


def cost(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
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
    call :func:`sae_jax.validate.check_call` yourself before tracing to check them there.

    Args:
      params: :class:`~sae_jax.Params` (UFLDL shapes).
      x: data, shape ``(m, n_visible)``, samples as rows, same dtype as ``params``.
      lam: weight decay :math:`\lambda \ge 0`, scalar.
      beta: sparsity weight :math:`\beta \ge 0`, scalar.
      rho: target activation :math:`\rho \in (0, 1)`, scalar.
      output: ``"sigmoid"`` (default; data in [0, 1]) or ``"linear"`` (linear decoder). Static.

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
    return cost_terms(params, x, lam=lam, beta=beta, rho=rho, output=output).cost
