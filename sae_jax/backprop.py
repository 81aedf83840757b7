r"""The tutorial's backpropagation, vectorised and jit-compiled, and the autodiff reference.

With samples as rows (:mod:`sae_jax.params`), the UFLDL equations read

.. math::
    \delta^{(3)} &= (\hat x - x) \odot g'(z^{(3)})
        \qquad (g' = a^{(3)}(1-a^{(3)}) \text{ for a sigmoid output, } 1 \text{ for a linear one}) \\
    \delta^{(2)} &= \Big( \delta^{(3)} W_2
        + \underbrace{\beta \big( -\tfrac{\rho}{\hat\rho} + \tfrac{1-\rho}{1-\hat\rho} \big)}_{\texttt{sparsity\_delta}} \Big)
        \odot f'(z^{(2)}) \\
    \frac{\partial J}{\partial W_1} &= \frac{1}{m} \delta^{(2)\top} x + \lambda W_1, \qquad
    \frac{\partial J}{\partial b_1} = \frac{1}{m} \sum_i \delta^{(2)(i)} \\
    \frac{\partial J}{\partial W_2} &= \frac{1}{m} \delta^{(3)\top} a^{(2)} + \lambda W_2, \qquad
    \frac{\partial J}{\partial b_2} = \frac{1}{m} \sum_i \delta^{(3)(i)}

(UFLDL's column-layout :math:`\frac1m \delta^{(2)} x^\top` is the same array.)

**The 1/m question.** The sparsity term in :math:`\delta^{(2)}` carries no
:math:`1/m`, although :math:`\partial\hat\rho_j / \partial a^{(2)}_j(x^{(i)}) = 1/m`.
That is not a missing factor: :math:`\delta^{(2)(i)}` is *m times*
:math:`\partial J / \partial z^{(2)}(x^{(i)})`, for the reconstruction part (whose
:math:`1/m` is also left out of :math:`\delta^{(3)}`) and the sparsity part alike,
and the single :math:`1/m` that averages :math:`\delta^{(2)\top} x` is exactly the
:math:`1/m` of :math:`\partial\hat\rho/\partial a`. The tests check this gradient
against ``jax.grad``, finite differences and (in ``derivations/``) sympy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import validate
from jax import lax

from .cost import (
    CostTerms,
    _cost_terms,
    exact_on_fast_path,
    kl_divergence,
    kl_divergence_from_logs,
    log_hidden_sums,
    reconstruction,
    rho_hat,
    running_estimate,
    running_estimate_logs,
    weight_decay,
)
from .forward import Output, _forward as forward, hidden_pre_activation, sigmoid_prime  # unchecked: inputs checked here
from .params import Params

__all__ = [
    "sparsity_delta",
    "exact_sparsity_delta",
    "exact_sparsity_sums",
    "sparsity_terms_and_delta",
    "log_psum",
    "output_delta",
    "hidden_delta",
    "weight_gradients",
    "cost_and_grad",
    "cost_terms_and_grad",
    "autodiff_cost_and_grad",
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
      log_rho_hat, log1m_rho_hat: ``(n_hidden,)``, from :func:`sae_jax.cost.log_rho_hat`.
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

    On the fast path (:func:`sae_jax.cost.exact_on_fast_path`: nearly always) the tutorial's
    per-unit :func:`sparsity_delta`, which :func:`hidden_delta` adds to every sample's delta; the
    extra sums are zero. Otherwise (``lax.cond``) a zero per-unit delta and the exact
    :func:`exact_sparsity_sums`. With ``rho_prev``/``ema_decay`` the penalty is at the running
    estimate and its delta carries the factor :math:`1-\alpha` (:mod:`sae_jax.minibatch`).

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
    ops["sd"] = sparsity_delta(ops["est"], rho=ops["rho"], beta=ops["beta"])
    ops["fast"] = exact_on_fast_path(ops["est"], ops["sd"])

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
    # on the fast path still takes the exact branch when another member needs it.
    sd = scale(ops) * jnp.where(took_fast, ops["sd"], 0)
    return sp, est, sd, extra


def _cond_any_under_vmap(pred, true_fun, false_fun, operand):
    """``lax.cond(pred, true_fun, false_fun, operand)``, but under ``vmap`` still one cond.

    ``vmap`` turns a cond with a batched predicate into a select that runs *both* branches for
    every member. Here the batch takes ``false_fun`` (the exact path, right for every member)
    when any member needs it, and only ``true_fun`` (the fast path) otherwise, so a vmapped
    hyperparameter sweep pays for the exact path only where some setting saturates.
    """

    @jax.custom_batching.custom_vmap
    def cond(pred, operand):
        return lax.cond(pred, true_fun, false_fun, operand)

    @cond.def_vmap
    def _rule(axis_size, in_batched, pred, operand):
        pred_batched, operand_batched = in_batched
        axes = jax.tree.map(lambda b: 0 if b else None, operand_batched)
        everyone = jnp.all(pred) if pred_batched else pred
        out = lax.cond(
            everyone,
            lambda o: jax.vmap(true_fun, in_axes=(axes,), axis_size=axis_size)(o),
            lambda o: jax.vmap(false_fun, in_axes=(axes,), axis_size=axis_size)(o),
            operand,
        )
        return out, jax.tree.map(lambda _: True, out)

    return cond(pred, operand)


def log_psum(log_v: jax.Array, axis_name: str) -> jax.Array:
    r""":math:`\log\sum_d e^{v_d}` over a mapped axis: ``pmax``, then ``psum`` of the rescaled terms."""
    top = lax.stop_gradient(lax.pmax(log_v, axis_name))
    top = jnp.where(jnp.isfinite(top), top, 0)
    return top + jnp.log(lax.psum(jnp.exp(log_v - top), axis_name))


def output_delta(x_hat: jax.Array, x: jax.Array, *, output: Output = "sigmoid") -> jax.Array:
    r""":math:`\delta^{(3)} = (\hat x - x) \odot g'(z^{(3)})`, shape ``(m, n_visible)`` (no :math:`1/m`)."""
    if output == "sigmoid":
        return (x_hat - x) * sigmoid_prime(x_hat)
    if output == "linear":
        return x_hat - x
    validate.check_output(output)
    raise AssertionError("unreachable")


def hidden_delta(delta3: jax.Array, W2: jax.Array, a2: jax.Array, sparsity_delta: jax.Array) -> jax.Array:
    r""":math:`\delta^{(2)} = (\delta^{(3)} W_2 + \texttt{sparsity\_delta}) \odot f'(z^{(2)})`, shape ``(m, n_hidden)``."""
    return (delta3 @ W2 + sparsity_delta[None, :]) * sigmoid_prime(a2)


def weight_gradients(params: Params, x, a2, delta2, delta3, *, lam, hidden_sums=None) -> Params:
    r"""The averaged gradient from the deltas, with the one :math:`1/m`.

    .. math::
        \frac1m \delta^{(2)\top} x + \lambda W_1, \quad \frac1m \sum_i \delta^{(2)(i)}, \quad
        \frac1m \delta^{(3)\top} a^{(2)} + \lambda W_2, \quad \frac1m \sum_i \delta^{(3)(i)}

    ``hidden_sums``: optional extra :math:`(\delta^{(2)\top}x, \sum_i\delta^{(2)(i)})` parts (the exact
    sparsity sums of :func:`sparsity_terms_and_delta`), added before the average.
    """
    m = x.shape[0]
    lam = jnp.asarray(lam, params.W1.dtype)
    gW1, gb1 = delta2.T @ x, jnp.sum(delta2, axis=0)
    if hidden_sums is not None:
        gW1, gb1 = gW1 + hidden_sums[0], gb1 + hidden_sums[1]
    return Params(
        W1=gW1 / m + lam * params.W1,
        b1=gb1 / m,
        W2=(delta3.T @ a2) / m + lam * params.W2,
        b2=jnp.sum(delta3, axis=0) / m,
    )


def _cost_terms_and_grad(params: Params, x, *, lam, beta, rho, output="sigmoid"):
    acts = forward(params, x, output=output)
    sp, rh, sd, extra = sparsity_terms_and_delta(params, x, rho_hat(acts.a2), rho=rho, beta=beta)
    # The reconstruction is written reconstruction(x, x_hat): the same value bit for bit
    # ((x - x_hat)^2 == (x_hat - x)^2 exactly), but XLA then no longer shares one (m, n) array
    # x_hat - x between the cost and delta3, so it fuses each difference into its consumer
    # instead of writing it out and reading it back (6-9 % at 784x196x10k; benchmarks/NOTES.md).
    rec = reconstruction(x, acts.a3)
    wd = weight_decay(params, lam=lam)
    terms = CostTerms(rec + wd + sp, rec, wd, sp, rh)
    delta3 = output_delta(acts.a3, x, output=output)
    delta2 = hidden_delta(delta3, params.W2, acts.a2, sd)
    return terms, weight_gradients(params, x, acts.a2, delta2, delta3, lam=lam, hidden_sums=extra)


_cost_terms_and_grad_jit = jax.jit(_cost_terms_and_grad, static_argnames=("output",))


def _with_value_stats(fn, *, data: bool):
    def f(params, x, *, lam, beta, rho, output="sigmoid"):
        stats = validate.value_stats(params, x if data else None)
        return fn(params, x, lam=lam, beta=beta, rho=rho, output=output), stats

    return jax.jit(f, static_argnames=("output",))


_CHECKED: dict = {}


def _checked_call(kernel, params, x, *, lam, beta, rho, output):
    """Run a jitted entry point with its inputs checked at almost no cost.

    Shapes, dtypes and hyperparameters are checked first, in Python. The array values (finite
    parameters; finite data in the output's range, for a ``jax.Array`` only the first time it is
    seen: :func:`sae_jax.validate.data_checked`) are reduced *inside the same compiled call*
    (:func:`sae_jax.validate.value_stats`) and read back in one transfer, instead of separate eager
    reductions before it; a failure raises the same :class:`~sae_jax.InputError` and the result is
    never returned. Under the caller's own ``jit``/``vmap`` the values are not concrete: as before,
    the shapes are checked and the concrete parts' values eagerly.
    """
    if not (isinstance(params, tuple) and validate.all_concrete(params, x, lam, beta, rho)):
        validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output)
        return kernel(params, x, lam=lam, beta=beta, rho=rho, output=output)
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output, values=False)
    data = not validate.data_checked(x, output)
    checked = _CHECKED.get((kernel, data))
    if checked is None:
        checked = _CHECKED[(kernel, data)] = _with_value_stats(kernel, data=data)
    out, stats = checked(params, x, lam=lam, beta=beta, rho=rho, output=output)
    validate.raise_for_value_stats(stats, params, x, output=output)
    if data:
        validate.remember_checked_data(x, output)
    return out


def _cost_and_grad(params, x, *, lam, beta, rho, output="sigmoid"):
    terms, grads = _cost_terms_and_grad(params, x, lam=lam, beta=beta, rho=rho, output=output)
    return terms.cost, grads


_cost_and_grad_jit = jax.jit(_cost_and_grad, static_argnames=("output",))


def cost_and_grad(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
) -> tuple[jax.Array, Params]:
    r"""Cost and gradient by the tutorial's backprop; a drop-in for ``jax.value_and_grad(cost)``.

    Same arguments as :func:`sae_jax.cost` and the same result structure as
    ``jax.value_and_grad(cost)(params, x, lam=..., beta=..., rho=..., output=...)``:
    ``(J, Params(dW1, db1, dW2, db2))``. jit-compiled (``output`` static;
    hyperparameters traced, so a sweep over them compiles once). Inputs are
    checked as :func:`sae_jax.cost` checks them.

    Examples:
      >>> import jax
      >>> from sae_jax import init_params, cost, cost_and_grad
      >>> p = init_params(jax.random.key(0), 64, 25)
      >>> x = jax.random.uniform(jax.random.key(1), (100, 64))
      >>> hp = dict(lam=1e-4, beta=3.0, rho=0.01)
      >>> J, g = cost_and_grad(p, x, **hp)
      >>> J_ad, g_ad = jax.value_and_grad(cost)(p, x, **hp)
      >>> bool(jax.numpy.allclose(g.W1, g_ad.W1, rtol=1e-4, atol=1e-7))
      True
    """
    return _checked_call(_cost_and_grad_jit, params, x, lam=lam, beta=beta, rho=rho, output=output)


def cost_terms_and_grad(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
):
    """Like :func:`cost_and_grad` but returns ``(CostTerms, grads)``, as ``jax.value_and_grad(..., has_aux=True)`` would allow; for logging."""
    return _checked_call(_cost_terms_and_grad_jit, params, x, lam=lam, beta=beta, rho=rho, output=output)


def _autodiff_cost_and_grad(params, x, *, lam, beta, rho, output="sigmoid"):
    return jax.value_and_grad(lambda p: _cost_terms(p, x, lam=lam, beta=beta, rho=rho, output=output).cost)(
        params
    )


_autodiff_cost_and_grad_jit = jax.jit(_autodiff_cost_and_grad, static_argnames=("output",))


def autodiff_cost_and_grad(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
) -> tuple[jax.Array, Params]:
    """The reference: ``jax.value_and_grad(cost)``, jit-compiled, with the same checks and signature as :func:`cost_and_grad`."""
    return _checked_call(_autodiff_cost_and_grad_jit, params, x, lam=lam, beta=beta, rho=rho, output=output)
