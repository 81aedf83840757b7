r"""Full-batch cost and gradient over data streamed in chunks (data larger than memory).

The sparsity penalty depends on :math:`\hat\rho_j = \frac1m \sum_{i=1}^m a^{(2)}_j(x^{(i)})`, a
mean over **all** m samples, and every sample's hidden delta needs it. So the full-batch
gradient of data that does not fit at once takes two passes over the chunks
:math:`C_1, \dots, C_K` (:math:`\bigcup_k C_k` = the m samples):

.. math::
    \text{pass 1:}\quad & S_j = \sum_k \sum_{i \in C_k} a^{(2)}_j(x^{(i)}), \qquad
        \hat\rho = S / m, \qquad s = \texttt{sparsity\_delta}(\hat\rho) \\
    \text{pass 2:}\quad & R = \sum_k \sum_{i \in C_k} \tfrac12 \lVert \hat x^{(i)} - x^{(i)} \rVert^2, \quad
        G_{W_1} = \sum_k \delta^{(2)\top}_{C_k} x_{C_k}, \quad
        G_{b_1} = \sum_k \textstyle\sum_{i \in C_k} \delta^{(2)(i)}, \\
      & G_{W_2} = \sum_k \delta^{(3)\top}_{C_k} a^{(2)}_{C_k}, \quad
        G_{b_2} = \sum_k \textstyle\sum_{i \in C_k} \delta^{(3)(i)}
        \qquad (\delta^{(2)} \text{ built with the global } s) \\
    \text{then:}\quad & J = R/m + \tfrac\lambda2(\lVert W_1\rVert^2 + \lVert W_2\rVert^2)
        + \beta \textstyle\sum_j \mathrm{KL}(\rho \Vert \hat\rho_j), \quad
        \nabla_{W_1} J = G_{W_1}/m + \lambda W_1, \ \dots

dividing by the **global** m once. Every piece is the package's one backprop core
(:mod:`sae_jax._src.backprop`: :func:`~sae_jax._src.backprop.hidden_sum`, :func:`~sae_jax._src.backprop.delta_sums`,
:func:`~sae_jax._src.backprop.terms_and_grads_from_sums`, the sparsity delta exact at saturation); this
module only sums them over chunks. The result equals :func:`sae_jax.cost_and_grad` on all the data
at once (float64: ≤ 1e-12 relative; only the summation order differs).

Compilation: every chunk has the same shape ``(chunk_size, n_visible)``. The last chunk, when
``m`` is not a multiple of ``chunk_size``, is **padded with zero rows and a 0/1 row weight**
(``mask``), so each per-chunk kernel compiles exactly once per ``(chunk_size, n_visible,
n_hidden, dtype, output)``, whatever m is. (When m is known and smaller than ``chunk_size``,
the chunk size shrinks to m: one chunk, no padding.)

Data sources and how they are read (an array, a ``.npy`` path read a chunk at a time, a list of
blocks, a callable returning a fresh iterable): :mod:`sae_jax._src.streaming`.

Denoising (:mod:`sae_jax._src.variants`): ``x_input=`` :math:`\tilde x`, a second source of ``data``'s
kind and rows, read in lockstep with it (same chunks, same padding and mask). The network reads
:math:`\tilde x` (pass 1's :math:`S`, hence :math:`\hat\rho`, and :math:`G_{W_1} = \sum_k
\delta^{(2)\top}_{C_k}\tilde x_{C_k}`); ``data`` is the clean target in :math:`R` and
:math:`\delta^{(3)}`.

Training: a chunked pass is a Python loop, so it cannot be traced into a jitted training
loop directly. :func:`sae_jax._src.objective.traceable` wraps any Python ``params -> (value, grads)``
function as a differentiable JAX function (``jax.pure_callback`` + ``jax.custom_vjp``), which
optax's L-BFGS line search can call inside ``jit``; :func:`sae_jax._src.host_lbfgs.lbfgs` drives
:func:`sae_jax.optim.lbfgs` one jitted step at a time from Python with it. (Both, and the
streaming helpers, are also reachable here as ``sae_jax._src.chunked.<name>``.)

Examples:
  >>> import jax, numpy as np
  >>> from sae_jax import init_params
  >>> from sae_jax.scale import chunked_cost, chunked_cost_and_grad
  >>> p = init_params(jax.random.key(0), 8, 3)
  >>> x = np.random.default_rng(0).uniform(size=(10, 8)).astype(np.float32)
  >>> hp = dict(lam=1e-4, beta=3.0, rho=0.1)
  >>> J, g = chunked_cost_and_grad(p, x, chunk_size=4, **hp)   # two passes over 3 chunks
  >>> bool(np.isclose(J, chunked_cost(p, x, chunk_size=4, **hp)))  # the value alone: one pass
  True
  >>> J_dn, g_dn = chunked_cost_and_grad(p, x, x_input=x + 0.1, chunk_size=4, **hp)  # denoising: x the target
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from . import validate
from .backprop import delta_sums, hidden_sum, reconstruction_sum, terms_and_grads_from_sums
from .cost import CostTerms, exact_on_fast_path, kl_divergence_from_logs, log_hidden_sums, sparsity
from .forward import Output, forward, hidden_pre_activation
from .host_lbfgs import LbfgsResult, lbfgs
from .objective import traceable, value_with_grad
from .params import Params
from .sparsity_backprop import exact_sparsity_sums, sparsity_delta
from .streaming import (
    DEFAULT_CHUNK_SIZE,
    Backpressure,
    check_pair,
    check_source_values,
    chunk_size_for_budget,
    chunks,
    device_chunks,
    num_rows,
    resolve_chunk_size,
)
from .validate import InputError

__all__ = [
    "DEFAULT_CHUNK_SIZE", "chunk_size_for_budget", "chunks", "num_rows",
    "hidden_sum", "delta_sums", "terms_and_grads_from_sums", "sparsity_from_log_sums",
    "chunked_cost_terms", "chunked_cost", "chunked_cost_terms_and_grad", "chunked_cost_and_grad",
    "make_chunked_value_and_grad", "traceable", "value_with_grad", "LbfgsResult", "lbfgs",
]


def sparsity_from_log_sums(
    log_sums: tuple[jax.Array, jax.Array], m: ArrayLike, *, rho: ArrayLike, beta: ArrayLike
) -> tuple[jax.Array, jax.Array]:
    r"""``(sparsity, rho_hat)`` from the global :math:`\log\sum_i f(\pm z_{ij})` (exact at saturation)."""
    log_m = jnp.log(jnp.asarray(m, log_sums[0].dtype))
    log_rh, log1m_rh = log_sums[0] - log_m, log_sums[1] - log_m
    rho = jnp.asarray(rho, log_rh.dtype)
    return jnp.asarray(beta, log_rh.dtype) * jnp.sum(kl_divergence_from_logs(rho, log_rh, log1m_rh)), jnp.exp(log_rh)


# Per-chunk kernels: each adds one chunk's contribution to an accumulator (one dispatch per chunk).


@jax.jit
def _pass1_kernel(acc, params, x, mask):
    return acc + hidden_sum(params, x, mask)


@jax.jit
def _log_sums_kernel(acc, params, x, mask):  # x: what the network reads (x_input if denoising)
    # Only where some unit saturates (see _sparsity_plan): log-sums combine by logaddexp.
    logs = log_hidden_sums(hidden_pre_activation(params, x), mask)
    return tuple(jnp.logaddexp(a, b) for a, b in zip(acc, logs))


@jax.jit
def _sparsity_delta_and_fast(a2_sum, m, rho, beta):
    sd = sparsity_delta(a2_sum / m, rho=rho, beta=beta)
    return sd, exact_on_fast_path(a2_sum / m, sd)


def _pass2(acc, params, x, x_in, mask, sdelta, logs, rho, beta, *, output):
    rec_sum, g = delta_sums(params, x, mask, sdelta, output=output, x_input=x_in)
    if logs is not None:  # the exact sparsity part (saturated units), in place of sdelta
        gW1, gb1 = exact_sparsity_sums(params, x if x_in is None else x_in, *logs, rho=rho, beta=beta, mask=mask)
        g = g._replace(W1=g.W1 + gW1, b1=g.b1 + gb1)
    acc_rec, acc_g = acc
    return acc_rec + rec_sum, jax.tree.map(jnp.add, acc_g, g)


_pass2_kernel = jax.jit(_pass2, static_argnames=("output",))
_sparsity_from_log_sums = jax.jit(sparsity_from_log_sums)


def _sparsity_plan(params, data, size, a2_sum, m_arr, rho, beta, *, output, mesh, x_input):
    r"""``(sdelta, logs, sparsity_terms)``: on the fast path the global sparsity delta and no more;
    where a unit saturates, a zero delta, one extra pass for the global log-sums (exact
    :math:`\log\hat\rho`, :math:`\log(1-\hat\rho)`), and the exact penalty."""
    sd, fast = _sparsity_delta_and_fast(a2_sum, m_arr, rho, beta)
    if bool(fast):
        return sd, None, None
    acc = (jnp.full_like(a2_sum, -jnp.inf), jnp.full_like(a2_sum, -jnp.inf))
    for x, x_in, mask, _ in _read(data, params, size, output, False, mesh, x_input):
        acc = _log_sums_kernel(acc, params, x if x_in is None else x_in, mask)
    log_m = jnp.log(m_arr)
    logs = (acc[0] - log_m, acc[1] - log_m)
    return jnp.zeros_like(sd), logs, _sparsity_from_log_sums(acc, m_arr, rho=rho, beta=beta)


def _terms_pass(acc, params, x, x_in, mask, *, output):
    # Value only: S and the reconstruction sum need no rho_hat, so one pass suffices.
    acts = forward(params, x if x_in is None else x_in, output=output)
    a2_acc, rec_acc = acc
    return a2_acc + mask @ acts.a2, rec_acc + reconstruction_sum(acts.a3, x, mask)


_terms_kernel = jax.jit(_terms_pass, static_argnames=("output",))


@jax.jit
def _finish(params, a2_sum, rec_sum, grad_sums, m, lam, beta, rho, sparsity_terms, l1):
    if sparsity_terms is None:  # the fast path: the plain penalty of rho_hat = S/m
        rh = a2_sum / m
        sparsity_terms = (sparsity(rh, rho=rho, beta=beta), rh)
    sp, rh = sparsity_terms
    l1_sum = None if l1 is None else l1 * jnp.sum(a2_sum)  # gamma sum_i ||a_i||_1 (sigmoid: a > 0)
    return terms_and_grads_from_sums(
        params, rec_sum, grad_sums, m, lam=lam, sparsity=sp, rho_hat=rh, l1_sum=l1_sum
    )


def _place(params: Params, mesh) -> Params:
    if mesh is None:
        return params
    if len(mesh.axis_names) != 1:
        raise InputError(f"mesh must be 1-D (one batch axis), got axes {mesh.axis_names}")
    return jax.device_put(params, NamedSharding(mesh, P()))


def _check(params, *, lam, beta, rho, output, l1=None):
    validate.check_output(output)
    validate.check_params(params)
    validate.check_hyperparams(lam=lam, beta=beta, rho=rho, dtype=params.W1.dtype, l1=l1)


def _read(data, params, size, output, check_values, mesh, x_input):
    return device_chunks(data, params, size, output=output, check_values=check_values, mesh=mesh, x_input=x_input)


def _empty(m):
    if m == 0:
        raise InputError("data must have at least one sample (row), got none")


# Public chunked functions
# ---------------------------------------------------------------------------------------------


def chunked_cost_terms_and_grad(
    params: Params,
    data,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
    chunk_size: int | None = None,
    memory_bytes: int | None = None,
    check_values: bool = True,
    mesh: Mesh | None = None,
    l1: ArrayLike | None = None,
    x_input=None,
) -> tuple[CostTerms, Params]:
    r"""Full-batch :class:`~sae_jax.CostTerms` and gradient, streaming ``data`` in chunks (two passes).

    Equal to :func:`sae_jax.cost_terms_and_grad` on all of ``data`` at once (global m, global
    :math:`\hat\rho`; float64 ≤ 1e-12 relative), for any m, chunk size 1 and chunk size ≥ m included.

    Args:
      params: :class:`~sae_jax.Params`.
      data: an array ``(m, n_visible)`` (numpy, ``np.memmap``, jax), a ``.npy`` path, a list of 2-D
        arrays, or a callable returning a fresh iterable of 2-D arrays. Same dtype as ``params``.
      lam, beta, rho, output: as for :func:`sae_jax.cost`.
      chunk_size: rows per chunk (default :data:`DEFAULT_CHUNK_SIZE`), or
      memory_bytes: a working-set budget instead (:func:`chunk_size_for_budget`).
      check_values: check every chunk is finite (and in [0, 1] for a sigmoid output) during pass 1.
        Turn off inside optimisation loops once the data has been checked.
      mesh: a 1-D device mesh (:func:`sae_jax.scale.batch_mesh`): split every chunk's rows over
        its devices too (chunk size rounded up to a multiple of the device count, padding masked);
        results replicated. Past memory *and* past one device.
      l1: the L1 activation penalty's weight (:func:`sae_jax.cost`); tied parameters work as there.
      x_input: denoising: the corrupted input :math:`\tilde x` the network reads (``data`` is then the
        clean target), a source of ``data``'s kind and rows read in lockstep with it (same chunks,
        padding and mask; a callable must give the same values on every call); values checked
        finite, any range. A different kind, row count or block shape is an :class:`~sae_jax.InputError`.

    Returns:
      ``(CostTerms, Params)``.

    Examples:
      >>> import jax, numpy as np
      >>> from sae_jax import init_params, cost_terms_and_grad
      >>> from sae_jax.scale import chunked_cost_terms_and_grad
      >>> p = init_params(jax.random.key(0), 8, 3)
      >>> x = np.random.default_rng(0).uniform(size=(10, 8)).astype(np.float32)
      >>> hp = dict(lam=1e-4, beta=3.0, rho=0.1)
      >>> terms, g = chunked_cost_terms_and_grad(p, x, chunk_size=4, **hp)  # chunks of 4, 4, 2 (+2 padding)
      >>> want, g1 = cost_terms_and_grad(p, jax.numpy.asarray(x), **hp)
      >>> bool(jax.numpy.allclose(terms.rho_hat, want.rho_hat, rtol=1e-6))
      True
    """
    _check(params, lam=lam, beta=beta, rho=rho, output=output, l1=l1)
    size = resolve_chunk_size(data, params, chunk_size, memory_bytes, mesh)
    params = _place(params, mesh)
    dtype = params.dtype
    l1 = None if l1 is None else jnp.asarray(l1, dtype)
    # Pass 1: S = Σ a2 over every sample, hence the global ρ̂ and sparsity delta.
    a2_sum, m = jnp.zeros((params.n_hidden,), dtype), 0
    _in_flight = Backpressure()
    for x, x_in, mask, rows in _read(data, params, size, output, check_values, mesh, x_input):
        a2_sum = _in_flight(_pass1_kernel(a2_sum, params, x if x_in is None else x_in, mask))
        m += rows
    _empty(m)
    m_arr = jnp.asarray(m, dtype)
    rho_, beta_ = jnp.asarray(rho, dtype), jnp.asarray(beta, dtype)
    sdelta, logs, sp_terms = _sparsity_plan(
        params, data, size, a2_sum, m_arr, rho_, beta_, output=output, mesh=mesh, x_input=x_input
    )
    if l1 is not None:  # the L1 penalty's per-unit delta gamma joins the sparsity delta
        sdelta = sdelta + l1
    # Pass 2: reconstruction sum and δ-products, every chunk using the same global sparsity delta.
    acc = (jnp.zeros((), dtype), jax.tree.map(jnp.zeros_like, params))
    m2 = 0
    _in_flight = Backpressure()
    for x, x_in, mask, rows in _read(data, params, size, output, False, mesh, x_input):
        acc = _in_flight(_pass2_kernel(acc, params, x, x_in, mask, sdelta, logs, rho_, beta_, output=output))
        m2 += rows
    if m2 != m:
        raise InputError(f"data changed between the two passes: {m} rows in pass 1, {m2} in pass 2")
    rec_sum, grad_sums = acc
    return _finish(params, a2_sum, rec_sum, grad_sums, m_arr, lam, beta, rho, sp_terms, l1)


def chunked_cost_and_grad(
    params: Params,
    data,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
    chunk_size: int | None = None,
    memory_bytes: int | None = None,
    check_values: bool = True,
    mesh: Mesh | None = None,
    l1: ArrayLike | None = None,
    x_input=None,
) -> tuple[jax.Array, Params]:
    """``(J, grads)`` like :func:`sae_jax.cost_and_grad`, over chunks; see :func:`chunked_cost_terms_and_grad`."""
    terms, grads = chunked_cost_terms_and_grad(
        params, data, lam=lam, beta=beta, rho=rho, output=output,
        chunk_size=chunk_size, memory_bytes=memory_bytes, check_values=check_values, mesh=mesh,
        l1=l1, x_input=x_input,
    )
    return terms.cost, grads


def chunked_cost_terms(
    params: Params,
    data,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
    chunk_size: int | None = None,
    memory_bytes: int | None = None,
    check_values: bool = True,
    mesh: Mesh | None = None,
    l1: ArrayLike | None = None,
    x_input=None,
) -> CostTerms:
    r"""Full-batch :class:`~sae_jax.CostTerms` in **one** pass (the value needs no :math:`\hat\rho` per sample)."""
    _check(params, lam=lam, beta=beta, rho=rho, output=output, l1=l1)
    size = resolve_chunk_size(data, params, chunk_size, memory_bytes, mesh)
    params = _place(params, mesh)
    dtype = params.dtype
    l1 = None if l1 is None else jnp.asarray(l1, dtype)
    acc, m = (jnp.zeros((params.n_hidden,), dtype), jnp.zeros((), dtype)), 0
    _in_flight = Backpressure()
    for x, x_in, mask, rows in _read(data, params, size, output, check_values, mesh, x_input):
        acc = _in_flight(_terms_kernel(acc, params, x, x_in, mask, output=output))
        m += rows
    _empty(m)
    m_arr = jnp.asarray(m, dtype)
    rho_, beta_ = jnp.asarray(rho, dtype), jnp.asarray(beta, dtype)
    _, _, sp_terms = _sparsity_plan(
        params, data, size, acc[0], m_arr, rho_, beta_, output=output, mesh=mesh, x_input=x_input
    )
    terms, _ = _finish(params, acc[0], acc[1], None, m_arr, lam, beta, rho, sp_terms, l1)
    return terms


def chunked_cost(params: Params, data, **kwargs) -> jax.Array:
    """The full-batch cost :math:`J` over chunks (one pass); keywords as :func:`chunked_cost_terms`."""
    return chunked_cost_terms(params, data, **kwargs).cost


def make_chunked_value_and_grad(
    data,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
    chunk_size: int | None = None,
    memory_bytes: int | None = None,
    check_values: bool = True,
    mesh: Mesh | None = None,
    l1: ArrayLike | None = None,
    x_input=None,
) -> Callable[[Params], tuple[jax.Array, Params]]:
    """``params -> (J, grads)`` over chunked ``data`` (and ``x_input``), a Python function (see :func:`traceable`).

    The data values (and ``x_input``'s) are checked once, here (if ``check_values``), not on every call.
    """
    validate.check_output(output)
    validate.check_hyperparams(lam=lam, beta=beta, rho=rho, l1=l1)
    if x_input is not None:
        check_pair(data, x_input)
    if check_values:
        check_source_values(data, chunk_size or DEFAULT_CHUNK_SIZE, output=output, x_input=x_input)

    def value_and_grad(params: Params) -> tuple[jax.Array, Params]:
        return chunked_cost_and_grad(
            params, data, lam=lam, beta=beta, rho=rho, output=output,
            chunk_size=chunk_size, memory_bytes=memory_bytes, check_values=False, mesh=mesh, l1=l1,
            x_input=x_input,
        )

    return value_and_grad
