r"""The KL sparsity term, forward and backward, exact at saturation (UFLDL / CS294A, "Sparse autoencoder").

In the order the notes derive it. The **average activation** of hidden unit :math:`j` over the
training set (:func:`rho_hat`),

.. math::
    \hat\rho_j = \frac1m \sum_{i=1}^m a^{(2)}_j(x^{(i)}),

is held near a target :math:`\rho` by the **penalty** (:func:`sparsity`)

.. math::
    \beta \sum_{j=1}^{h} \mathrm{KL}(\rho \,\Vert\, \hat\rho_j), \qquad
    \mathrm{KL}(\rho\Vert\hat\rho_j) = \rho \log\frac{\rho}{\hat\rho_j}
      + (1-\rho) \log\frac{1-\rho}{1-\hat\rho_j}
    \quad (:func:`kl_divergence`).

Its derivative with respect to :math:`\hat\rho_j` joins every sample's hidden delta in
backpropagation as the **sparsity delta** (:func:`sparsity_delta`),

.. math::
    \delta^{(2)}_j = \Big( \textstyle\sum_k W^{(2)}_{kj} \delta^{(3)}_k
      + \beta\big( -\tfrac{\rho}{\hat\rho_j} + \tfrac{1-\rho}{1-\hat\rho_j} \big) \Big) f'(z^{(2)}_j),

without the :math:`1/m` of :math:`\partial\hat\rho_j/\partial a^{(2)}_j`, which the weight
gradient's single average supplies (the 1/m question: :mod:`sae_jax._src.backprop`).

Saturation
----------
A hidden unit that no sample activates (every :math:`z^{(2)}_j \ll 0`, a *dead* unit) has a
tiny :math:`\hat\rho_j`; one that every sample saturates (*always on*) has a tiny
:math:`1-\hat\rho_j`. The penalty's pull back toward :math:`\rho` is largest exactly there:
:math:`\partial J/\partial b^{(1)}_j \to -\beta\rho` for a dead unit, however small
:math:`\hat\rho_j` is, because :math:`f'(z)/\hat\rho_j` stays of order 1. sae-jax evaluates
the sparsity term and its gradient **exactly wherever the true value is a finite float**, with
no clipping:

* the fast path (:func:`exact_on_fast_path`: every unit with :math:`\hat\rho_j` a normal float,
  :math:`\hat\rho_j \le 1 - 2^{-10}` and a finite sparsity delta; nearly always) is the plain
  formula, in which every factor is then accurate (relative error of :math:`1 - \hat\rho` at
  most :math:`2^{10}\epsilon`);
* otherwise (checked per call, by ``lax.cond``) the term is computed from the pre-activations in
  the log domain: :math:`\log\hat\rho_j = \operatorname{logsumexp}_i \log f(z^{(2)}_{ij}) - \log m`
  and :math:`\log(1-\hat\rho_j) = \operatorname{logsumexp}_i \log f(-z^{(2)}_{ij}) - \log m`
  (:func:`log_rho_hat`), :math:`\mathrm{KL}` from these logs (:func:`kl_divergence_from_logs`),
  and each :math:`f'(z_{ij})/\hat\rho_j` as the ratio of exponentials
  :math:`f(-z_{ij})\, e^{\log f(z_{ij}) - \log\hat\rho_j}` (:func:`exact_sparsity_delta`; never
  :math:`\infty \cdot 0`).

So a :math:`\hat\rho_j` of :math:`10^{-80}` in float64, or one that underflows to 0 because
:math:`f(z)` itself underflows, still gives the right KL and the right restoring gradient.
Nothing is clipped: the term is finite for every finite input (for finite data and parameters,
:math:`z` is finite and so are both logs). :func:`kl_divergence`, :func:`sparsity` and
:func:`sparsity_delta` take :math:`\hat\rho` as a float and are the plain formulas (infinite at
:math:`\hat\rho \in \{0, 1\}`, where the float has lost the information).

Where it is used
----------------
The forward, :func:`sparsity_and_rho_hat`, is the cost's (:mod:`sae_jax._src.cost`, hence
``jax.grad``); forward and backward together, :func:`sparsity_terms_and_delta`, are the manual
backprop's (:mod:`sae_jax._src.backprop`). The chunked, sharded, minibatch (EMA) paths and
:func:`~sae_jax.kl_sparsity_penalty` take their pieces from here: the log-sums combine over chunks
by :func:`add_log_sums` and over devices by :func:`log_psum`. The tests hold all of them against
a 50-digit mpmath transcription of the UFLDL formulas (``tests/test_saturation.py``).

Contents, in the notes' order: :func:`rho_hat`; :func:`kl_divergence`,
:func:`kl_divergence_from_logs`; :func:`sparsity` (:func:`sparsity_from_logs`);
:func:`sparsity_delta`; at saturation :func:`log_hidden_sums`, :func:`log_rho_hat`,
:func:`exact_sparsity_delta`, :func:`exact_sparsity_sums`; over pieces :func:`add_log_sums`,
:func:`log_psum`, :func:`sparsity_from_log_sums`; the switch :data:`FAST_PATH_MAX_RHO_HAT`,
:func:`exact_on_fast_path`; the minibatch's :func:`running_estimate`,
:func:`running_estimate_logs`; and the term assembled, :func:`sparsity_and_rho_hat`,
:func:`sparsity_terms_and_delta`.

Examples:
  >>> import jax.numpy as jnp
  >>> from sae_jax import kl_divergence, sparsity_delta
  >>> float(kl_divergence(0.1, jnp.asarray(0.1)))
  0.0
  >>> d = sparsity_delta(jnp.array([0.01, 0.1]), rho=0.01, beta=3.0)
  >>> [round(float(v), 4) for v in d]                # zero where rho_hat == rho
  [0.0, 3.0]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from .forward import hidden_pre_activation
from .params import Params

__all__ = [
    "rho_hat",
    "kl_divergence",
    "kl_divergence_from_logs",
    "sparsity",
    "sparsity_from_logs",
    "sparsity_delta",
    "log_hidden_sums",
    "log_rho_hat",
    "exact_sparsity_delta",
    "exact_sparsity_sums",
    "add_log_sums",
    "log_psum",
    "sparsity_from_log_sums",
    "FAST_PATH_MAX_RHO_HAT",
    "exact_on_fast_path",
    "running_estimate",
    "running_estimate_logs",
    "sparsity_and_rho_hat",
    "sparsity_terms_and_delta",
]


# 1. The average activation
# ---------------------------------------------------------------------------------------------


def rho_hat(a2: jax.Array) -> jax.Array:
    r"""Average activation of each hidden unit, :math:`\hat\rho_j = \frac1m \sum_i a^{(2)}_j(x^{(i)})`.

    Args:
      a2: hidden activations, shape ``(m, n_hidden)``.

    Returns:
      ``(n_hidden,)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from sae_jax import rho_hat
      >>> rho_hat(jnp.array([[0.0, 1.0], [0.5, 1.0]])).tolist()
      [0.25, 1.0]
    """
    return jnp.mean(a2, axis=0)


# 2. The KL divergence between Bernoulli(rho) and Bernoulli(rho_hat)
# ---------------------------------------------------------------------------------------------


def kl_divergence(rho: ArrayLike, rho_hat: jax.Array) -> jax.Array:
    r"""Bernoulli KL divergence, elementwise.

    .. math::
        \mathrm{KL}(\rho \,\Vert\, \hat\rho) = \rho \log\frac{\rho}{\hat\rho}
          + (1-\rho) \log\frac{1-\rho}{1-\hat\rho}

    The plain formula on a float :math:`\hat\rho` (arguments in the order of the notation
    :math:`\mathrm{KL}(\rho\Vert\hat\rho)`): infinite at :math:`\hat\rho \in \{0, 1\}`. The cost
    evaluates it exactly at saturation through :func:`kl_divergence_from_logs` (module docstring).

    Examples:
      >>> import jax.numpy as jnp
      >>> from sae_jax import kl_divergence
      >>> float(kl_divergence(0.1, jnp.asarray(0.1)))
      0.0
    """
    # Written as differences of logs so that its derivative is formed as rho / rho_hat (never
    # rho / rho_hat**2, which overflows float32 for rho_hat below ~1e-20).
    return kl_divergence_from_logs(rho, jnp.log(rho_hat), jnp.log1p(-rho_hat))


def kl_divergence_from_logs(rho: ArrayLike, log_rho_hat: jax.Array, log1m_rho_hat: jax.Array) -> jax.Array:
    r""":math:`\mathrm{KL}(\rho\Vert\hat\rho) = \rho(\log\rho - \log\hat\rho) + (1-\rho)(\log(1-\rho) - \log(1-\hat\rho))`, elementwise.

    From :math:`\log\hat\rho` and :math:`\log(1-\hat\rho)` (:func:`log_rho_hat`): finite
    wherever both logs are, i.e. for every :math:`\hat\rho` whose logs are floats, including
    :math:`\hat\rho` far below the smallest float.

    Examples:
      >>> import jax.numpy as jnp
      >>> from sae_jax import kl_divergence_from_logs
      >>> kl = kl_divergence_from_logs(0.05, jnp.asarray(-500.0), jnp.asarray(0.0))  # rho_hat = e^-500
      >>> round(float(kl), 4)                         # 0.05 * (log 0.05 + 500) + 0.95 log 0.95
      24.8015
    """
    return rho * (jnp.log(rho) - log_rho_hat) + (1 - rho) * (jnp.log1p(-rho) - log1m_rho_hat)


# 3. The penalty
# ---------------------------------------------------------------------------------------------


def sparsity(rho_hat: jax.Array, *, rho: ArrayLike, beta: ArrayLike) -> jax.Array:
    r""":math:`\beta \sum_j \mathrm{KL}(\rho \Vert \hat\rho_j)` of a float :math:`\hat\rho` (the plain formula).

    Examples:
      >>> import jax.numpy as jnp
      >>> from sae_jax import sparsity
      >>> float(sparsity(jnp.array([0.1, 0.1]), rho=0.1, beta=3.0))
      0.0
    """
    rho = jnp.asarray(rho, rho_hat.dtype)
    beta = jnp.asarray(beta, rho_hat.dtype)
    return beta * jnp.sum(kl_divergence(rho, rho_hat))


def sparsity_from_logs(log_rho_hat: jax.Array, log1m_rho_hat: jax.Array, *, rho: jax.Array, beta: jax.Array) -> jax.Array:
    r""":math:`\beta \sum_j \mathrm{KL}(\rho \Vert \hat\rho_j)` from :math:`\log\hat\rho_j` and
    :math:`\log(1-\hat\rho_j)` (:func:`kl_divergence_from_logs`): exact at saturation. ``rho`` and
    ``beta`` already arrays in the logs' dtype."""
    return beta * jnp.sum(kl_divergence_from_logs(rho, log_rho_hat, log1m_rho_hat))


# 4. Its delta in backpropagation
# ---------------------------------------------------------------------------------------------


def sparsity_delta(rho_hat: jax.Array, *, rho: ArrayLike, beta: ArrayLike) -> jax.Array:
    r"""The sparsity term added to every sample's hidden delta: :math:`\beta\left(-\frac{\rho}{\hat\rho_j} + \frac{1-\rho}{1-\hat\rho_j}\right)`.

    This is :math:`m \cdot \partial(\beta \sum_k \mathrm{KL}(\rho\Vert\hat\rho_k)) / \partial a^{(2)}_j(x^{(i)})`:
    the derivative of the penalty with respect to :math:`\hat\rho_j`, without the
    :math:`1/m` of :math:`\partial\hat\rho_j/\partial a^{(2)}_j`, which the weight
    gradient's average supplies. The plain formula of a float :math:`\hat\rho` (infinite at 0
    and 1); where a unit saturates, the backprop uses :func:`exact_sparsity_delta` instead
    (:func:`sparsity_terms_and_delta`).

    Args:
      rho_hat: ``(n_hidden,)`` mean hidden activations.
      rho: target activation, scalar.
      beta: sparsity weight, scalar.

    Returns:
      ``(n_hidden,)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from sae_jax import sparsity_delta
      >>> d = sparsity_delta(jnp.array([0.01, 0.1]), rho=0.01, beta=3.0)
      >>> [round(float(v), 4) for v in d]                # zero where rho_hat == rho
      [0.0, 3.0]
    """
    dtype = rho_hat.dtype
    rho = jnp.asarray(rho, dtype)
    beta = jnp.asarray(beta, dtype)
    return beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))


# 5. At saturation: the same quantities from the pre-activations, in the log domain
# ---------------------------------------------------------------------------------------------


def log_hidden_sums(z2: jax.Array, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    r""":math:`\log \sum_i w_i f(z_{ij})` and :math:`\log \sum_i w_i f(-z_{ij})`, exact for any finite ``z2``.

    ``logsumexp`` over the samples of :math:`\log f(\pm z) = -\operatorname{softplus}(\mp z)`,
    so neither underflows. ``mask`` (``(m,)``, 0/1 row weights) drops padding rows. Partial
    sums over chunks or devices combine with ``logaddexp`` (the log of a sum of sums:
    :func:`add_log_sums`, :func:`log_psum`).

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

    Examples:
      >>> import jax.numpy as jnp
      >>> from sae_jax import log_rho_hat
      >>> log_rh, log1m_rh = log_rho_hat(jnp.full((4, 1), -800.0, jnp.float32))  # rho_hat = e^-800 underflows
      >>> float(log_rh[0]), float(log1m_rh[0])
      (-800.0, 0.0)
    """
    m = z2.shape[0] if m is None else m
    log_m = jnp.log(jnp.asarray(m, z2.dtype))
    pos, neg = log_hidden_sums(z2)
    return pos - log_m, neg - log_m


def exact_sparsity_delta(
    z2: jax.Array, log_rho_hat: jax.Array, log1m_rho_hat: jax.Array, *, rho: ArrayLike, beta: ArrayLike
) -> jax.Array:
    r"""The sparsity part of :math:`\delta^{(2)}`, ``sparsity_delta * f'(z2)``, per sample and exact.

    .. math::
        \beta\Big(-\rho\, f(-z_{ij})\, e^{\log f(z_{ij}) - \log\hat\rho_j}
          + (1-\rho)\, f(z_{ij})\, e^{\log f(-z_{ij}) - \log(1-\hat\rho_j)}\Big)

    the same number as :math:`\beta(-\rho/\hat\rho_j + (1-\rho)/(1-\hat\rho_j))\, f(z_{ij}) f(-z_{ij})`
    with each :math:`f(\pm z)/\hat\rho`-type ratio formed as one exponential of a difference of
    logs (at most :math:`m`), so it is finite and accurate even where :math:`\hat\rho_j` or
    :math:`f(z_{ij})` underflows.

    Args:
      z2: ``(m, n_hidden)`` hidden pre-activations.
      log_rho_hat, log1m_rho_hat: ``(n_hidden,)``, from :func:`log_rho_hat`.
      rho, beta: scalars.

    Returns:
      ``(m, n_hidden)``.
    """
    dtype = z2.dtype
    rho = jnp.asarray(rho, dtype)
    beta = jnp.asarray(beta, dtype)
    a, b = jax.nn.sigmoid(z2), jax.nn.sigmoid(-z2)
    on = jnp.exp(jax.nn.log_sigmoid(z2) - log_rho_hat[None, :])  # f(z_ij) / rho_hat_j
    off = jnp.exp(jax.nn.log_sigmoid(-z2) - log1m_rho_hat[None, :])  # f(-z_ij) / (1 - rho_hat_j)
    return beta * (-rho * b * on + (1 - rho) * a * off)


def exact_sparsity_sums(
    params: Params,
    x: jax.Array,
    log_rho_hat: jax.Array,
    log1m_rho_hat: jax.Array,
    *,
    rho: ArrayLike,
    beta: ArrayLike,
    mask: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    r"""The sparsity part of :math:`(\delta^{(2)\top} x,\ \sum_i \delta^{(2)(i)})` by :func:`exact_sparsity_delta`.

    Unnormalised sums (no :math:`1/m`), so they add to the other δ-sums before the one average;
    ``mask`` (``(m,)`` row weights) drops padding rows. Returns ``((n_hidden, n_visible), (n_hidden,))``.
    """
    s = exact_sparsity_delta(hidden_pre_activation(params, x), log_rho_hat, log1m_rho_hat, rho=rho, beta=beta)
    if mask is not None:
        s = s * mask[:, None]
    return s.T @ x, jnp.sum(s, axis=0)


# 6. Over pieces of the data: chunks and devices
# ---------------------------------------------------------------------------------------------


def add_log_sums(
    acc: tuple[jax.Array, jax.Array], log_sums: tuple[jax.Array, jax.Array]
) -> tuple[jax.Array, jax.Array]:
    r"""Two chunks' :func:`log_hidden_sums` combined: :math:`\log(e^{u} + e^{v})` (``logaddexp``), elementwise.

    Start from :math:`-\infty` (the log of an empty sum)."""
    return tuple(jnp.logaddexp(a, b) for a, b in zip(acc, log_sums))


def log_psum(log_v: jax.Array, axis_name: str) -> jax.Array:
    r""":math:`\log\sum_d e^{v_d}` over a mapped axis: ``pmax``, then ``psum`` of the rescaled terms."""
    top = lax.pmax(lax.stop_gradient(log_v), axis_name)  # a shift only: no derivative (pmax has none)
    top = jnp.where(jnp.isfinite(top), top, 0)
    return top + jnp.log(lax.psum(jnp.exp(log_v - top), axis_name))


def sparsity_from_log_sums(
    log_sums: tuple[jax.Array, jax.Array], m: ArrayLike, *, rho: ArrayLike, beta: ArrayLike
) -> tuple[jax.Array, jax.Array]:
    r"""``(sparsity, rho_hat)`` from the global :math:`\log\sum_i f(\pm z_{ij})` (exact at saturation).

    :math:`\log\hat\rho = \log\sum_i f(z_{ij}) - \log m` and likewise :math:`\log(1-\hat\rho)`,
    then :func:`sparsity_from_logs`; the estimate reported is :math:`e^{\log\hat\rho}`."""
    log_m = jnp.log(jnp.asarray(m, log_sums[0].dtype))
    log_rh, log1m_rh = log_sums[0] - log_m, log_sums[1] - log_m
    rho = jnp.asarray(rho, log_rh.dtype)
    return sparsity_from_logs(log_rh, log1m_rh, rho=rho, beta=jnp.asarray(beta, log_rh.dtype)), jnp.exp(log_rh)


# 7. Which path: the plain formulas where they are exact, the log domain elsewhere
# ---------------------------------------------------------------------------------------------

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


def _cond_any_under_vmap(pred, true_fun, false_fun, operand):
    """``lax.cond(pred, true_fun, false_fun, operand)``, but under ``vmap`` still one cond.

    ``vmap`` turns a cond with a batched predicate into a select that runs *both* branches for
    every member. Here the batch takes ``false_fun`` (the exact path, right for every member)
    when any member needs it, and only ``true_fun`` (the fast path) otherwise, so a vmapped
    hyperparameter sweep pays for the exact path only where some setting saturates.

    Only the predicate is customised (:func:`_every_member`: all members' ``pred``, unbatched); the
    cond itself is JAX's, whose ``vmap`` with an unbatched predicate batches the branches and
    keeps one cond, and whose ``jvp``, linearisation and transpose are JAX's, so the manual
    gradient differentiates again (``jax.grad`` of it, Hessian-vector products, ``jax.hessian``),
    also vmapped or under ``vmap``. (A ``custom_vmap`` around the whole cond, as before, has no
    reverse mode: linearisation cannot split it into known primal and unknown tangent parts.
    The predicate is a boolean, so its tangent is a symbolic zero and ``custom_vmap`` only ever
    sees primal values.)
    """
    return lax.cond(_every_member(pred), true_fun, false_fun, operand)


@jax.custom_batching.custom_vmap
def _every_member(pred: jax.Array) -> jax.Array:
    """``pred`` (a boolean scalar); under ``vmap``, ``all`` of the members' values, unbatched."""
    return pred


@_every_member.def_vmap
def _every_member_vmap(axis_size, in_batched, pred):
    # Reduce this vmap's axis and hand the rest to an enclosing vmap, if any (nested sweeps).
    return (_every_member(jnp.all(pred, axis=0)) if in_batched[0] else pred), False


# 8. Minibatches: the penalty at a running estimate
# ---------------------------------------------------------------------------------------------


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


# 9. The term assembled: forward (the cost's), forward and backward (the backprop's)
# ---------------------------------------------------------------------------------------------


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
    fast = exact_on_fast_path(lax.stop_gradient(est), lax.stop_gradient(sparsity_delta(est, rho=rho, beta=beta)))

    def plain(z2, est, fast):
        # A no-op select unless vmap turned the cond into a select of both branches: then it
        # keeps this (discarded) branch's value and derivative finite, so no 0 * inf = NaN.
        est = jnp.where(fast, est, jnp.asarray(0.5, dtype))
        return sparsity(est, rho=rho, beta=beta), est

    @jax.checkpoint
    def exact(z2, est, fast):
        log_est, log1m_est = running_estimate_logs(*log_rho_hat(z2), rho_prev, ema_decay)
        return sparsity_from_logs(log_est, log1m_est, rho=rho, beta=beta), jnp.exp(log_est)

    return lax.cond(fast, plain, exact, z2, est, fast)


def sparsity_terms_and_delta(
    params: Params,
    x: jax.Array,
    rho_hat: jax.Array,
    *,
    rho: ArrayLike,
    beta: ArrayLike,
    rho_prev: jax.Array | None = None,
    ema_decay: ArrayLike | None = None,
    mask: jax.Array | None = None,
    m: ArrayLike | None = None,
    axis_name: str | None = None,
):
    r"""Everything the backprop needs of the sparsity term, exact at saturation.

    On the fast path (:func:`exact_on_fast_path`: nearly always) the tutorial's per-unit
    :func:`sparsity_delta`, which :func:`~sae_jax._src.backprop.hidden_delta` adds to every
    sample's delta; the extra sums are zero. Otherwise (``lax.cond``, :func:`_cond_any_under_vmap`)
    a zero per-unit delta and the exact :func:`exact_sparsity_sums`. With ``rho_prev``/``ema_decay``
    the penalty is at the running estimate and its delta carries the factor :math:`1-\alpha`
    (:mod:`sae_jax._src.minibatch`).

    Args:
      params, x: as :func:`~sae_jax.cost_and_grad` (``x`` may be one piece of the data: see below).
      rho_hat: ``(n_hidden,)`` the float mean of the hidden activations over *all* the data.
      mask: ``(rows,)`` 0/1 row weights of padding rows, if any.
      m: the global number of samples (default ``x.shape[0]``).
      axis_name: inside ``shard_map``, the mesh axis the rows are split over: the exact path's
        log-sums are combined over it (:func:`log_psum`), so :math:`\log\hat\rho` is global.
        The returned extra sums stay this piece's own (sum them with the other δ-sums).

    Returns:
      ``(sparsity, rho_hat, sparsity_delta, (G_W1, G_b1))``: the penalty (scalar), the estimate
      penalised ``(n_hidden,)``, the per-unit delta ``(n_hidden,)`` and the extra unnormalised
      δ-sums ``(n_hidden, n_visible)``, ``(n_hidden,)``.
    """
    dtype = rho_hat.dtype
    ops = dict(
        params=params, x=x, mask=mask, rho_prev=rho_prev,
        rho=jnp.asarray(rho, dtype), beta=jnp.asarray(beta, dtype),
        ema_decay=None if ema_decay is None else jnp.asarray(ema_decay, dtype),
        log_m=jnp.log(jnp.asarray(x.shape[0] if m is None else m, dtype)),
    )
    ops["est"] = running_estimate(rho_hat, rho_prev, ops["ema_decay"])
    ops["fast"] = exact_on_fast_path(
        lax.stop_gradient(ops["est"]),
        sparsity_delta(lax.stop_gradient(ops["est"]), rho=ops["rho"], beta=ops["beta"]),
    )

    def scale(o):  # the running estimate's factor 1 - alpha on the delta
        return 1 if o["rho_prev"] is None else 1 - o["ema_decay"]

    def plain(o):
        est = jnp.where(o["fast"], o["est"], jnp.asarray(0.5, dtype))  # no-op unless vmapped (as above)
        zeros = (jnp.zeros_like(o["params"].W1), jnp.zeros_like(o["params"].b1))
        if axis_name is not None:  # the exact branch's sums are this device's own: same type here
            zeros = lax.pcast(zeros, axis_name, to="varying")
        return sparsity(est, rho=o["rho"], beta=o["beta"]), est, zeros, jnp.ones((), bool)

    def exact(o):
        logs = log_hidden_sums(hidden_pre_activation(o["params"], o["x"]), o["mask"])
        if axis_name is not None:
            logs = tuple(log_psum(v, axis_name) for v in logs)
        log_est, log1m_est = running_estimate_logs(
            logs[0] - o["log_m"], logs[1] - o["log_m"], o["rho_prev"], o["ema_decay"]
        )
        gW1, gb1 = exact_sparsity_sums(
            o["params"], o["x"], log_est, log1m_est, rho=o["rho"], beta=o["beta"], mask=o["mask"]
        )
        sp = sparsity_from_logs(log_est, log1m_est, rho=o["rho"], beta=o["beta"])
        return sp, jnp.exp(log_est), (scale(o) * gW1, scale(o) * gb1), jnp.zeros((), bool)

    sp, est, extra, took_fast = _cond_any_under_vmap(ops["fast"], plain, exact, ops)
    # The per-unit delta outside the cond, so XLA fuses it into the hidden delta as before (a
    # cond output would cost ~8 % at 64x25x10k). ``took_fast``, not ``fast``: under vmap a member
    # on the fast path still takes the exact branch when another member needs it. Formed at a
    # finite stand-in where the fast path is off (``took_fast`` is then off too), so the
    # discarded value's derivative (rho / rho_hat**2 = inf at an underflowed rho_hat) never
    # meets the select's zero cotangent as 0 * inf = NaN in reverse mode.
    safe = jnp.where(ops["fast"], ops["est"], jnp.asarray(0.5, dtype))
    sd = scale(ops) * jnp.where(took_fast, sparsity_delta(safe, rho=ops["rho"], beta=ops["beta"]), 0)
    return sp, est, sd, extra
