r"""The sparsity term's part of the backprop: the tutorial's per-unit delta, exact at saturation.

The penalty :math:`\beta\sum_j\mathrm{KL}(\rho\Vert\hat\rho_j)` enters every sample's hidden delta
as the per-unit :func:`sparsity_delta` :math:`\beta(-\rho/\hat\rho_j + (1-\rho)/(1-\hat\rho_j))`
(times :math:`f'(z^{(2)})`). That plain formula is exact on the *fast path*
(:func:`sae_jax._src.cost.exact_on_fast_path`: every :math:`\hat\rho_j` a normal float away from 1, the
delta finite; nearly always). Where a unit saturates, :func:`sparsity_terms_and_delta` switches
(``lax.cond``, one per call) to the log-domain :func:`exact_sparsity_delta`, whose sums
(:func:`exact_sparsity_sums`) add to the other δ-sums before the one :math:`1/m`
(:mod:`sae_jax._src.backprop`). Every gradient path (full batch, chunked, sharded, minibatch EMA)
takes its sparsity part from here; the cost side is :func:`sae_jax._src.cost.sparsity_and_rho_hat`.

Examples:
  >>> import jax.numpy as jnp
  >>> from sae_jax import sparsity_delta
  >>> d = sparsity_delta(jnp.array([0.01, 0.1]), rho=0.01, beta=3.0)
  >>> [round(float(v), 4) for v in d]                # zero where rho_hat == rho
  [0.0, 3.0]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from .cost import (
    exact_on_fast_path,
    kl_divergence,
    kl_divergence_from_logs,
    log_hidden_sums,
    running_estimate,
    running_estimate_logs,
)
from .forward import hidden_pre_activation
from .params import Params

__all__ = [
    "sparsity_delta",
    "exact_sparsity_delta",
    "exact_sparsity_sums",
    "sparsity_terms_and_delta",
    "log_psum",
]


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
    """
    dtype = rho_hat.dtype
    rho = jnp.asarray(rho, dtype)
    beta = jnp.asarray(beta, dtype)
    return beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))


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
      log_rho_hat, log1m_rho_hat: ``(n_hidden,)``, from :func:`sae_jax.log_rho_hat`.
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

    On the fast path (:func:`sae_jax._src.cost.exact_on_fast_path`: nearly always) the tutorial's
    per-unit :func:`sparsity_delta`, which :func:`hidden_delta` adds to every sample's delta; the
    extra sums are zero. Otherwise (``lax.cond``) a zero per-unit delta and the exact
    :func:`exact_sparsity_sums`. With ``rho_prev``/``ema_decay`` the penalty is at the running
    estimate and its delta carries the factor :math:`1-\alpha` (:mod:`sae_jax._src.minibatch`).

    Args:
      params, x: as :func:`cost_and_grad` (``x`` may be one piece of the data: see below).
      rho_hat: ``(n_hidden,)`` the float mean of the hidden activations over *all* the data.
      mask: ``(rows,)`` 0/1 row weights of padding rows, if any.
      m: the global number of samples (default ``x.shape[0]``).
      axis_name: inside ``shard_map``, the mesh axis the rows are split over: the exact path's
        log-sums are combined over it (``pmax`` + ``psum``), so :math:`\log\hat\rho` is global.
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
        est = jnp.where(o["fast"], o["est"], jnp.asarray(0.5, dtype))  # no-op unless vmapped (cost.py)
        zeros = (jnp.zeros_like(o["params"].W1), jnp.zeros_like(o["params"].b1))
        if axis_name is not None:  # the exact branch's sums are this device's own: same type here
            zeros = lax.pcast(zeros, axis_name, to="varying")
        return o["beta"] * jnp.sum(kl_divergence(o["rho"], est)), est, zeros, jnp.ones((), bool)

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
        sp = o["beta"] * jnp.sum(kl_divergence_from_logs(o["rho"], log_est, log1m_est))
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


def log_psum(log_v: jax.Array, axis_name: str) -> jax.Array:
    r""":math:`\log\sum_d e^{v_d}` over a mapped axis: ``pmax``, then ``psum`` of the rescaled terms."""
    top = lax.pmax(lax.stop_gradient(log_v), axis_name)  # a shift only: no derivative (pmax has none)
    top = jnp.where(jnp.isfinite(top), top, 0)
    return top + jnp.log(lax.psum(jnp.exp(log_v - top), axis_name))

