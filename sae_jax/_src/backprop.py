r"""The tutorial's backpropagation, vectorised and jit-compiled, and the autodiff reference.

With samples as rows (:mod:`sae_jax._src.params`), the UFLDL equations read

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

**One core for every path.** The gradient is always assembled the same way: per-block *sums*
(:func:`hidden_sum` :math:`S=\sum_i w_i a^{(2)(i)}`, then :func:`delta_sums`: the reconstruction
sum :math:`R` and the δ-products :math:`G`, with 0/1 row weights :math:`w` for padding rows), the
global :math:`\hat\rho = S/m` (:func:`backprop`), and :func:`terms_and_grads_from_sums`, the one
place that divides by the global :math:`m` and adds :math:`\lambda W`. The full batch
(:func:`cost_and_grad`: one block, no weights), the sharded paths (:mod:`sae_jax._src.sharded`: sums
``psum``-ed over devices), the chunked path (:mod:`sae_jax._src.chunked`: sums accumulated over chunks)
and the minibatch EMA (:mod:`sae_jax._src.minibatch`) differ only in where the sums come from.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax import init_params
  >>> from sae_jax._src.backprop import backprop, pad_rows
  >>> p = init_params(jax.random.key(0), 4, 2)
  >>> x = jax.random.uniform(jax.random.key(1), (3, 4))
  >>> xp, mask = pad_rows(x, 5)                      # two zero rows, weight 0
  >>> xp.shape, mask.tolist()
  ((5, 4), [1.0, 1.0, 1.0, 0.0, 0.0])
  >>> hp = dict(lam=1e-4, beta=3.0, rho=0.1)
  >>> kernel = jax.jit(backprop)                      # the bare math, compiled
  >>> t, g = kernel(p, x, **hp)
  >>> tp, gp = kernel(p, xp, mask=mask, m=3, **hp)    # padding changes nothing
  >>> bool(jnp.allclose(t.cost, tp.cost)) and bool(jnp.allclose(g.W1, gp.W1, atol=1e-7))
  True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from . import checked, validate
from .cost import CostTerms, cost, terms_from_parts
from .forward import Activations, Output, forward, sigmoid_prime
from .params import Params, decoder_weights, is_tied
from .sparsity_backprop import sparsity_delta, sparsity_terms_and_delta

__all__ = [
    "sparsity_delta",
    "output_delta",
    "hidden_delta",
    "pad_rows",
    "hidden_sum",
    "reconstruction_sum",
    "delta_sums",
    "terms_and_grads_from_sums",
    "backprop",
    "cost_and_grad",
    "cost_terms_and_grad",
    "autodiff_cost_and_grad",
]


def output_delta(x_hat: jax.Array, x: jax.Array, *, output: Output = "sigmoid") -> jax.Array:
    r""":math:`\delta^{(3)} = (\hat x - x) \odot g'(z^{(3)})`, shape ``(m, n_visible)`` (no :math:`1/m`)."""
    if output == "sigmoid":
        return (x_hat - x) * sigmoid_prime(x_hat)
    if output == "linear":
        return x_hat - x
    validate.check_output(output)
    raise AssertionError("unreachable")


def hidden_delta(delta3: jax.Array, W2: jax.Array, a2: jax.Array, sparsity_delta: jax.Array) -> jax.Array:
    r""":math:`\delta^{(2)} = (\delta^{(3)} W_2 + \texttt{sparsity\_delta}) \odot f'(z^{(2)})`, shape ``(m, n_hidden)``.

    ``sparsity_delta`` ``(n_hidden,)`` is every per-unit term: the KL one (:func:`sparsity_delta`)
    plus, with an L1 activation penalty, :math:`\gamma` (the derivative of
    :math:`\gamma\lvert a\rvert` for :math:`a > 0`)."""
    return (delta3 @ W2 + sparsity_delta[None, :]) * sigmoid_prime(a2)


# ---------------------------------------------------------------------------------------------
# The shared core: masked sums, then one division by the global m
# ---------------------------------------------------------------------------------------------


def pad_rows(x, rows: int, *, dtype=None):
    """``x`` ``(m, ...)`` padded with zero rows to ``rows`` rows, and the ``(rows,)`` 0/1 row weights.

    The weights (``mask``: 1 for ``x``'s rows, 0 for padding; ``dtype``, default ``x``'s) are what
    :func:`hidden_sum`, :func:`delta_sums` and :func:`backprop` take, so padded rows add nothing.
    NumPy in, NumPy out (host blocks: :mod:`sae_jax._src.streaming`, :func:`sae_jax.scale.shard_batch`);
    a JAX array (also a tracer) in, JAX out.
    """
    xp = jnp if isinstance(x, jax.Array) else np
    m = x.shape[0]
    dtype = x.dtype if dtype is None else dtype
    mask = (xp.arange(rows) < m).astype(dtype)
    if rows > m:
        x = xp.concatenate([x, xp.zeros((rows - m,) + tuple(x.shape[1:]), x.dtype)])
    return x, mask


def _column_sum(a: jax.Array, mask: jax.Array | None) -> jax.Array:
    return jnp.sum(a, axis=0) if mask is None else mask @ a


def hidden_sum(params: Params, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    r"""Weighted column sum of the hidden activations, :math:`S = \sum_i w_i\, a^{(2)}(x^{(i)})`, ``(n_hidden,)``.

    ``mask`` (``(rows,)``, 0 or 1, ``x``'s dtype; default all ones) drops padding rows. Summed
    over all chunks (or devices) and divided by the global m it is :math:`\hat\rho`.
    """
    return _column_sum(forward(params, x).a2, mask)


def reconstruction_sum(x_hat: jax.Array, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    r""":math:`R = \sum_i w_i \tfrac12 \lVert \hat x^{(i)} - x^{(i)} \rVert^2` (no :math:`1/m`), a scalar.

    ``mask``: ``(rows,)`` 0/1 row weights (padded rows add nothing); ``None``: every row.
    """
    if mask is not None:
        x_hat = jnp.where(mask[:, None] > 0, x_hat, x)  # padded rows reconstruct themselves
    # Written (x - x_hat), not (x_hat - x): the same value bit for bit, but XLA then no longer
    # shares one (m, n) difference between the cost and delta3, so it fuses each difference into
    # its consumer instead of writing it out and reading it back (6-9 % at 784x196x10k;
    # benchmarks/NOTES.md #7).
    return 0.5 * jnp.sum(jnp.square(x - x_hat))


def delta_sums(
    params: Params,
    x: jax.Array,
    mask: jax.Array | None,
    sparsity_delta: jax.Array,
    *,
    output: Output = "sigmoid",
    acts: Activations | None = None,
    x_input: jax.Array | None = None,
) -> tuple[jax.Array, Params]:
    r"""One block's reconstruction sum and δ-products, given the *global* ``sparsity_delta``.

    .. math::
        R = \sum_i w_i \tfrac12\lVert\hat x^{(i)} - x^{(i)}\rVert^2, \quad
        (\delta^{(2)\top} x,\ \textstyle\sum_i \delta^{(2)(i)},\ \delta^{(3)\top} a^{(2)},\ \textstyle\sum_i \delta^{(3)(i)})

    with padded rows (``w_i = 0``) contributing nothing. No ``1/m`` and no weight decay: those
    are applied once, to the totals, by :func:`terms_and_grads_from_sums`.

    Args:
      params: :class:`~sae_jax.Params`.
      x: ``(rows, n_visible)``.
      mask: ``(rows,)`` row weights, 1 for data and 0 for padding, ``x``'s dtype; ``None``: all rows.
      sparsity_delta: ``(n_hidden,)``, :func:`sparsity_delta` at the global :math:`\hat\rho`.
      output: ``"sigmoid"`` or ``"linear"`` (static).
      acts: ``forward(params, x_input, output=output)`` if already computed.
      x_input: denoising: the corrupted input the network reads (``x`` is then the target);
        ``None``: ``x``.

    Tied parameters (``W2=None``): :math:`W_2 = W_1^\top` in :math:`\delta^{(2)}`, and the two
    contributions to :math:`W_1` summed, :math:`G_{W_1} = \delta^{(2)\top}\tilde x + (\delta^{(3)\top} a^{(2)})^\top`
    (``G_W2`` is ``None``).

    Returns:
      ``(R, Params(G_W1, G_b1, G_W2, G_b2))`` (unnormalised sums).
    """
    x_in = x if x_input is None else x_input
    acts = forward(params, x_in, output=output) if acts is None else acts
    delta3 = output_delta(acts.a3, x, output=output)
    W2 = decoder_weights(params)
    if mask is None:
        delta2 = hidden_delta(delta3, W2, acts.a2, sparsity_delta)
    else:
        w = mask[:, None]
        delta3 = delta3 * w
        delta2 = hidden_delta(delta3, W2, acts.a2, sparsity_delta) * w
    G_W1 = delta2.T @ x_in
    if is_tied(params):  # W2 = W1.T: the decoder's contribution (delta3' a2)' = a2' delta3 joins W1's
        G_W1, G_W2 = G_W1 + acts.a2.T @ delta3, None
    else:
        G_W2 = delta3.T @ acts.a2
    return reconstruction_sum(acts.a3, x, mask), Params(
        W1=G_W1, b1=jnp.sum(delta2, axis=0), W2=G_W2, b2=jnp.sum(delta3, axis=0)
    )


def terms_and_grads_from_sums(
    params: Params,
    rec_sum: jax.Array,
    grad_sums: Params | None,
    m: ArrayLike,
    *,
    lam: ArrayLike,
    sparsity: jax.Array,
    rho_hat: jax.Array,
    l1_sum: jax.Array | None = None,
) -> tuple[CostTerms, Params | None]:
    r"""Totals → :class:`~sae_jax.CostTerms` and gradient: the one division by the global ``m``.

    :math:`J = R/m + \tfrac\lambda2(\lVert W_1\rVert^2 + \lVert W_2\rVert^2) + \text{sparsity}
    [+ \gamma S/m]`, :math:`\nabla_{W} = G_W/m + \lambda W`, :math:`\nabla_b = G_b/m`. ``sparsity`` and ``rho_hat``
    are the penalty and the estimate penalised (global: :func:`sparsity_terms_and_delta` at
    :math:`\hat\rho = S/m`). ``grad_sums=None``: the terms only (gradient ``None``).
    ``l1_sum``: :math:`\gamma S` of the L1 activation penalty (sigmoid activations: :math:`\lvert a\rvert = a`),
    if any. Tied parameters: the decay's gradient is :math:`\lambda W_1 + (\lambda W_1^\top)^\top = 2\lambda W_1`.
    """
    dtype = params.W1.dtype
    m = jnp.asarray(m, dtype)
    l1 = None if l1_sum is None else l1_sum / m
    terms = terms_from_parts(
        params, reconstruction=rec_sum / m, sparsity=sparsity, rho_hat=rho_hat, lam=lam, l1=l1
    )
    if grad_sums is None:
        return terms, None
    lam = jnp.asarray(lam, dtype)
    tied = is_tied(params)
    grads = Params(
        W1=grad_sums.W1 / m + (2 * lam if tied else lam) * params.W1,
        b1=grad_sums.b1 / m,
        W2=None if tied else grad_sums.W2 / m + lam * params.W2,
        b2=grad_sums.b2 / m,
    )
    return terms, grads


def backprop(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
    mask: jax.Array | None = None,
    m: ArrayLike | None = None,
    axis_name: str | None = None,
    rho_prev: jax.Array | None = None,
    ema_decay: ArrayLike | None = None,
    l1: ArrayLike | None = None,
    x_input: jax.Array | None = None,
) -> tuple[CostTerms, Params]:
    r"""``(CostTerms, grads)`` by the tutorial's backprop over one block of rows: the shared core.

    One forward pass; :math:`S` (:func:`hidden_sum`) and :math:`\hat\rho = S/m`; the sparsity
    term and its delta (:func:`~sae_jax._src.sparsity_backprop.sparsity_terms_and_delta`, exact at
    saturation); :func:`delta_sums`; :func:`terms_and_grads_from_sums`. Inputs as for
    :func:`cost_terms_and_grad`, whose traced body this is, plus:

    Args:
      mask: ``(rows,)`` 0/1 row weights of padding rows (:func:`pad_rows`).
      m: the global number of samples (default ``x.shape[0]``).
      axis_name: inside ``shard_map``, the mesh axis the rows are split over: :math:`S`, :math:`R`
        and :math:`G` are ``psum``-ed over it (global :math:`\hat\rho`, global m).
      rho_prev, ema_decay: penalise the running estimate :math:`\alpha\,\hat\rho_\text{prev} +
        (1-\alpha)\hat\rho` instead (:mod:`sae_jax._src.minibatch`).
      l1, x_input: the L1 activation penalty's :math:`\gamma` (its per-unit delta :math:`\gamma`
        joins the sparsity delta: :math:`\delta^{(2)} \mathrel{+}= \gamma f'(z^{(2)})`) and the
        denoising input (:func:`sae_jax.cost`); tied parameters as there.

    Shapes only are checked (:func:`sae_jax._src.validate.check_layer_input`, at trace time).
    """
    x_in = x if x_input is None else x_input
    acts = forward(params, x_in, output=output)
    m_global = x.shape[0] if m is None else m
    a2_sum = _column_sum(acts.a2, mask)
    if axis_name is not None:
        a2_sum = lax.psum(a2_sum, axis_name)  # S = sum_d S_d: the global rho_hat is S/m
    sp, rh, sd, extra = sparsity_terms_and_delta(
        params, x_in, a2_sum / m_global, rho=rho, beta=beta, rho_prev=rho_prev, ema_decay=ema_decay,
        mask=mask, m=m, axis_name=axis_name,
    )
    l1_sum = None
    if l1 is not None:  # gamma (1/m) sum_i ||a_i||_1 = gamma S / m (sigmoid: a > 0); delta + gamma
        l1 = jnp.asarray(l1, sd.dtype)
        sd, l1_sum = sd + l1, l1 * jnp.sum(a2_sum)
    rec_sum, sums = delta_sums(params, x, mask, sd, output=output, acts=acts, x_input=x_input)
    sums = sums._replace(W1=sums.W1 + extra[0], b1=sums.b1 + extra[1])
    if axis_name is not None:
        rec_sum, sums = lax.psum((rec_sum, sums), axis_name)
    return terms_and_grads_from_sums(
        params, rec_sum, sums, m_global, lam=lam, sparsity=sp, rho_hat=rh, l1_sum=l1_sum
    )


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def cost_and_grad(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
    l1: ArrayLike | None = None,
    x_input: jax.Array | None = None,
) -> tuple[jax.Array, Params]:
    r"""Cost and gradient by the tutorial's backprop; a drop-in for ``jax.value_and_grad(cost)``.

    Same arguments as :func:`sae_jax.cost` (the variants too: tied parameters, ``l1=``,
    ``x_input=``) and the same result structure as
    ``jax.value_and_grad(cost)(params, x, lam=..., beta=..., rho=..., output=...)``:
    ``(J, Params(dW1, db1, dW2, db2))``. Called on values it runs compiled (``output`` static;
    hyperparameters traced, so a sweep over them compiles once), its inputs checked as
    :func:`sae_jax.cost` checks them, the array values inside the same compiled call
    (:func:`sae_jax._src.checked.checked_call`). Under the caller's ``jit``/``vmap`` it is the bare
    math (:func:`backprop`) with its shapes checked at trace time: the unchecked kernel is
    ``jax.jit(cost_and_grad, static_argnames="output")``.

    Examples:
      >>> import jax
      >>> from sae_jax import init_params, cost, cost_and_grad
      >>> p = init_params(jax.random.key(0), 64, 25)
      >>> x = jax.random.uniform(jax.random.key(1), (100, 64))
      >>> hp = dict(lam=1e-4, beta=3.0, rho=0.01)
      >>> J, g = cost_and_grad(p, x, **hp)
      >>> J_ad, g_ad = jax.jit(jax.value_and_grad(cost))(p, x, **hp)
      >>> bool(jax.numpy.allclose(g.W1, g_ad.W1, rtol=1e-4, atol=1e-7))
      True
    """
    opts = dict(l1=l1, x_input=x_input)
    if checked.all_concrete(params, x, lam, beta, rho, l1, x_input):
        return checked.checked_call(cost_and_grad, params, x, lam=lam, beta=beta, rho=rho, output=output, **opts)
    terms, grads = cost_terms_and_grad(params, x, lam=lam, beta=beta, rho=rho, output=output, **opts)
    return terms.cost, grads


def cost_terms_and_grad(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
    l1: ArrayLike | None = None,
    x_input: jax.Array | None = None,
) -> tuple[CostTerms, Params]:
    """Like :func:`cost_and_grad` but returns ``(CostTerms, grads)``, as ``jax.value_and_grad(..., has_aux=True)`` would allow; for logging."""
    opts = dict(l1=l1, x_input=x_input)
    if checked.all_concrete(params, x, lam, beta, rho, l1, x_input):
        return checked.checked_call(cost_terms_and_grad, params, x, lam=lam, beta=beta, rho=rho, output=output, **opts)
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output, **opts)
    return backprop(params, x, lam=lam, beta=beta, rho=rho, output=output, **opts)


def autodiff_cost_and_grad(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
    l1: ArrayLike | None = None,
    x_input: jax.Array | None = None,
) -> tuple[jax.Array, Params]:
    """The reference: ``jax.value_and_grad(cost)``, compiled, with the same checks and signature as :func:`cost_and_grad`."""
    opts = dict(l1=l1, x_input=x_input)
    if checked.all_concrete(params, x, lam, beta, rho, l1, x_input):
        return checked.checked_call(autodiff_cost_and_grad, params, x, lam=lam, beta=beta, rho=rho, output=output, **opts)
    return jax.value_and_grad(lambda p: cost(p, x, lam=lam, beta=beta, rho=rho, output=output, **opts))(params)

