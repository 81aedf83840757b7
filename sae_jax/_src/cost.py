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

Saturation
----------
A hidden unit that no sample activates (every :math:`z^{(2)}_j \ll 0`, a *dead* unit) has a
tiny :math:`\hat\rho_j`; one that every sample saturates (*always on*) has a tiny
:math:`1-\hat\rho_j`. The penalty's pull back toward :math:`\rho` is largest exactly there:
:math:`\partial J/\partial b^{(1)}_j \to -\beta\rho` for a dead unit, however small
:math:`\hat\rho_j` is, because :math:`f'(z)/\hat\rho_j` stays of order 1. sae-jax evaluates
the sparsity term and its gradient **exactly wherever the true value is a finite float**, with
no clipping:

* the fast path (every unit with :math:`\hat\rho_j` a normal float, :math:`\hat\rho_j \le 1 - 2^{-10}`
  and a finite sparsity delta; nearly always) is the plain formula, in which every factor is
  then accurate (relative error of :math:`1 - \hat\rho` at most :math:`2^{10}\epsilon`);
* otherwise (checked per call, by ``lax.cond``) the term is computed from the pre-activations in
  the log domain: :math:`\log\hat\rho_j = \operatorname{logsumexp}_i \log f(z^{(2)}_{ij}) - \log m`
  and :math:`\log(1-\hat\rho_j) = \operatorname{logsumexp}_i \log f(-z^{(2)}_{ij}) - \log m`
  (:func:`log_rho_hat`), :math:`\mathrm{KL}` from these logs (:func:`kl_divergence_from_logs`),
  and each :math:`f'(z_{ij})/\hat\rho_j` as the ratio of exponentials
  :math:`f(-z_{ij})\, e^{\log f(z_{ij}) - \log\hat\rho_j}` (never :math:`\infty \cdot 0`).

So a :math:`\hat\rho_j` of :math:`10^{-80}` in float64, or one that underflows to 0 because
:math:`f(z)` itself underflows, still gives the right KL and the right restoring gradient.
The cost (hence ``jax.grad``), :func:`cost_terms`, the manual backprop, and the chunked, sharded,
minibatch and EMA paths share these definitions; the tests hold them against a 50-digit mpmath
transcription of the UFLDL formulas (``tests/test_saturation.py``). Nothing is clipped: the
term is finite for every finite input (for finite data and parameters, :math:`z` is finite and
so are both logs). :func:`kl_divergence`, :func:`sparsity` and
:func:`~sae_jax.sparsity_delta` take :math:`\hat\rho` as a float and are the plain
formulas (infinite at :math:`\hat\rho \in \{0, 1\}`, where the float has lost the information).

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax import init_params
  >>> from sae_jax import cost_terms, kl_divergence
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
from jax import lax
from jax.typing import ArrayLike

from . import checked, validate
from .forward import Activations, Output, forward
from .params import Params, decoder_weights
from .variants import activation_l1

__all__ = [
    "CostTerms",
    "rho_hat",
    "kl_divergence",
    "kl_divergence_from_logs",
    "log_hidden_sums",
    "log_rho_hat",
    "exact_on_fast_path",
    "FAST_PATH_MAX_RHO_HAT",
    "running_estimate",
    "running_estimate_logs",
    "sparsity_and_rho_hat",
    "reconstruction",
    "weight_decay",
    "sparsity",
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


def rho_hat(a2: jax.Array) -> jax.Array:
    r"""Average activation of each hidden unit, :math:`\hat\rho_j = \frac1m \sum_i a^{(2)}_j(x^{(i)})`.

    Args:
      a2: hidden activations, shape ``(m, n_hidden)``.

    Returns:
      ``(n_hidden,)``.
    """
    return jnp.mean(a2, axis=0)


def kl_divergence(rho: ArrayLike, rho_hat: jax.Array) -> jax.Array:
    r"""Bernoulli KL divergence, elementwise.

    .. math::
        \mathrm{KL}(\rho \,\Vert\, \hat\rho) = \rho \log\frac{\rho}{\hat\rho}
          + (1-\rho) \log\frac{1-\rho}{1-\hat\rho}

    The plain formula on a float :math:`\hat\rho` (arguments in the order of the notation
    :math:`\mathrm{KL}(\rho\Vert\hat\rho)`): infinite at :math:`\hat\rho \in \{0, 1\}`. The cost
    evaluates it exactly at saturation through :func:`kl_divergence_from_logs` (module docstring).
    """
    # Written as differences of logs so that its derivative is formed as rho / rho_hat (never
    # rho / rho_hat**2, which overflows float32 for rho_hat below ~1e-20).
    return kl_divergence_from_logs(rho, jnp.log(rho_hat), jnp.log1p(-rho_hat))


def kl_divergence_from_logs(rho: ArrayLike, log_rho_hat: jax.Array, log1m_rho_hat: jax.Array) -> jax.Array:
    r""":math:`\mathrm{KL}(\rho\Vert\hat\rho) = \rho(\log\rho - \log\hat\rho) + (1-\rho)(\log(1-\rho) - \log(1-\hat\rho))`, elementwise.

    From :math:`\log\hat\rho` and :math:`\log(1-\hat\rho)` (:func:`log_rho_hat`): finite
    wherever both logs are, i.e. for every :math:`\hat\rho` whose logs are floats, including
    :math:`\hat\rho` far below the smallest float.
    """
    return rho * (jnp.log(rho) - log_rho_hat) + (1 - rho) * (jnp.log1p(-rho) - log1m_rho_hat)


def log_hidden_sums(z2: jax.Array, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    r""":math:`\log \sum_i w_i f(z_{ij})` and :math:`\log \sum_i w_i f(-z_{ij})`, exact for any finite ``z2``.

    ``logsumexp`` over the samples of :math:`\log f(\pm z) = -\operatorname{softplus}(\mp z)`,
    so neither underflows. ``mask`` (``(m,)``, 0/1 row weights) drops padding rows. Partial
    sums over chunks or devices combine with ``logaddexp`` (the log of a sum of sums).

    Args:
      z2: hidden pre-activations, ``(m, n_hidden)``.
      mask: optional ``(m,)`` row weights.

    Returns:
      two ``(n_hidden,)`` arrays.
    """
    where = None if mask is None else jnp.broadcast_to(mask[:, None] > 0, z2.shape)
    pos = jax.nn.logsumexp(jax.nn.log_sigmoid(z2), axis=0, where=where)
    neg = jax.nn.logsumexp(jax.nn.log_sigmoid(-z2), axis=0, where=where)
    return pos, neg


def log_rho_hat(z2: jax.Array, m: ArrayLike | None = None) -> tuple[jax.Array, jax.Array]:
    r""":math:`(\log\hat\rho_j,\ \log(1-\hat\rho_j))` from the pre-activations, exact for any finite ``z2``.

    :math:`\log\hat\rho_j = \operatorname{logsumexp}_i \log f(z_{ij}) - \log m`; likewise
    :math:`1-\hat\rho_j = \frac1m\sum_i f(-z_{ij})`, never formed as :math:`1 - \hat\rho_j`.

    Args:
      z2: ``(m, n_hidden)``.
      m: the number of samples (default ``z2.shape[0]``).

    Returns:
      two ``(n_hidden,)`` arrays.
    """
    m = z2.shape[0] if m is None else m
    log_m = jnp.log(jnp.asarray(m, z2.dtype))
    pos, neg = log_hidden_sums(z2)
    return pos - log_m, neg - log_m


#: Largest :math:`\hat\rho` on the fast path: there :math:`1 - \hat\rho` loses at most 10 bits.
FAST_PATH_MAX_RHO_HAT = 1 - 2.0**-10


def exact_on_fast_path(rho_hat: jax.Array, sparsity_delta: jax.Array) -> jax.Array:
    r"""Whether the plain float formulas are exact for every unit (a scalar bool).

    True when every :math:`\hat\rho_j` is a normal float no larger than
    :data:`FAST_PATH_MAX_RHO_HAT` and the sparsity delta
    :math:`\beta(-\rho/\hat\rho + (1-\rho)/(1-\hat\rho))` is finite. Otherwise the sparsity
    term is computed in the log domain (module docstring).
    """
    tiny = jnp.finfo(rho_hat.dtype).tiny
    ok = (rho_hat >= tiny) & (rho_hat <= FAST_PATH_MAX_RHO_HAT) & jnp.isfinite(sparsity_delta)
    return jnp.all(ok)


def reconstruction(x_hat: jax.Array, x: jax.Array) -> jax.Array:
    r"""Mean squared-error term :math:`\frac{1}{m} \sum_i \tfrac12 \lVert \hat x^{(i)} - x^{(i)} \rVert^2` for ``(m, n)`` arrays."""
    m = x.shape[0]
    return 0.5 * jnp.sum(jnp.square(x_hat - x)) / m


def weight_decay(params: Params, *, lam: ArrayLike) -> jax.Array:
    r""":math:`\frac{\lambda}{2} (\lVert W_1 \rVert_F^2 + \lVert W_2 \rVert_F^2)`; biases are not decayed.

    Tied parameters (``W2=None``): at :math:`W_2 = W_1^\top`, i.e. :math:`\lambda\lVert W_1\rVert_F^2`."""
    lam = jnp.asarray(lam, params.W1.dtype)
    return 0.5 * lam * (jnp.sum(jnp.square(params.W1)) + jnp.sum(jnp.square(decoder_weights(params))))


def sparsity(rho_hat: jax.Array, *, rho: ArrayLike, beta: ArrayLike) -> jax.Array:
    r""":math:`\beta \sum_j \mathrm{KL}(\rho \Vert \hat\rho_j)` of a float :math:`\hat\rho` (the plain formula)."""
    rho = jnp.asarray(rho, rho_hat.dtype)
    beta = jnp.asarray(beta, rho_hat.dtype)
    return beta * jnp.sum(kl_divergence(rho, rho_hat))


def running_estimate(rho_hat: jax.Array, rho_prev: jax.Array | None, ema_decay: ArrayLike | None) -> jax.Array:
    r"""The estimate the penalty is evaluated at: :math:`\hat\rho` itself, or with a previous running
    estimate :math:`\alpha\,\operatorname{sg}(\hat\rho_{\text{prev}}) + (1-\alpha)\hat\rho` (:mod:`sae_jax._src.minibatch`)."""
    if rho_prev is None:
        return rho_hat
    alpha = jnp.asarray(ema_decay, rho_hat.dtype)
    return alpha * lax.stop_gradient(rho_prev) + (1 - alpha) * rho_hat


def running_estimate_logs(
    log_rho_hat: jax.Array, log1m_rho_hat: jax.Array, rho_prev: jax.Array | None, ema_decay: ArrayLike | None
) -> tuple[jax.Array, jax.Array]:
    r""":func:`running_estimate` in the log domain: ``logaddexp`` of the two weighted parts, for
    :math:`\hat\rho` and for :math:`1-\hat\rho` (the latter from :math:`1-\hat\rho_{\text{prev}}`)."""
    if rho_prev is None:
        return log_rho_hat, log1m_rho_hat
    dtype = log_rho_hat.dtype
    alpha = jnp.asarray(ema_decay, dtype)
    prev = lax.stop_gradient(rho_prev)
    log_new = jnp.log1p(-alpha)
    pos = jnp.logaddexp(jnp.log(alpha * prev), log_new + log_rho_hat)
    neg = jnp.logaddexp(jnp.log(alpha * (1 - prev)), log_new + log1m_rho_hat)
    return pos, neg


def sparsity_and_rho_hat(
    z2: jax.Array,
    rho_hat: jax.Array,
    *,
    rho: ArrayLike,
    beta: ArrayLike,
    rho_prev: jax.Array | None = None,
    ema_decay: ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array]:
    r"""The penalty :math:`\beta\sum_j\mathrm{KL}(\rho\Vert\hat\rho_j)`, exact at saturation, and :math:`\hat\rho`.

    ``z2`` are the hidden pre-activations ``(m, n_hidden)`` and ``rho_hat`` the float mean of
    their sigmoids (with ``rho_prev``/``ema_decay``, the penalty is at the
    :func:`running_estimate`). On the fast path (:func:`exact_on_fast_path`) the plain
    :func:`sparsity`; otherwise (``lax.cond``) :func:`kl_divergence_from_logs` of
    :func:`log_rho_hat` of ``z2``, and ``exp(log_rho_hat)`` as the reported estimate.
    Differentiable on both paths (``jax.grad`` of the cost goes through here; the exact branch
    is rematerialised, so under ``jax.grad`` the fast path carries no per-sample residuals of it).

    Returns:
      ``(sparsity, rho_hat)``: a scalar and ``(n_hidden,)`` (the estimate penalised).
    """
    dtype = rho_hat.dtype
    rho = jnp.asarray(rho, dtype)
    beta = jnp.asarray(beta, dtype)
    est = running_estimate(rho_hat, rho_prev, ema_decay)
    sd = beta * (-rho / est + (1 - rho) / (1 - est))
    fast = exact_on_fast_path(lax.stop_gradient(est), lax.stop_gradient(sd))

    def plain(z2, est, fast):
        # A no-op select unless vmap turned the cond into a select of both branches: then it
        # keeps this (discarded) branch's value and derivative finite, so no 0 * inf = NaN.
        est = jnp.where(fast, est, jnp.asarray(0.5, dtype))
        return beta * jnp.sum(kl_divergence(rho, est)), est

    @jax.checkpoint
    def exact(z2, est, fast):
        log_est, log1m_est = running_estimate_logs(*log_rho_hat(z2), rho_prev, ema_decay)
        return beta * jnp.sum(kl_divergence_from_logs(rho, log_est, log1m_est)), jnp.exp(log_est)

    return lax.cond(fast, plain, exact, z2, est, fast)


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
    compiled call: :func:`sae_jax._src.checked.checked_call`); under the caller's ``jit``/``vmap``/``grad``
    it is the bare math with its shapes checked at trace time.

    Returns:
      :class:`CostTerms` ``(cost, reconstruction, weight_decay, sparsity, rho_hat, l1)``.
    """
    opts = dict(l1=l1, x_input=x_input)
    if checked.all_concrete(params, x, lam, beta, rho, l1, x_input):
        return checked.checked_call(cost_terms, params, x, lam=lam, beta=beta, rho=rho, output=output, **opts)
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output, **opts)
    acts = forward(params, x if x_input is None else x_input, output=output)
    return terms_from_activations(params, x, acts, lam=lam, beta=beta, rho=rho, l1=l1)


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
    call :func:`sae_jax._src.validate.check_call` yourself before tracing to check them there.

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

