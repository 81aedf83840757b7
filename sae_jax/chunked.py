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

dividing by the **global** m once. Every piece is :mod:`sae_jax`'s own
(:func:`~sae_jax.forward.encode`, :func:`~sae_jax.forward.forward`,
:func:`~sae_jax.backprop.output_delta`, :func:`~sae_jax.backprop.hidden_delta`,
:func:`~sae_jax.backprop.sparsity_delta`, :func:`~sae_jax.cost.reconstruction`,
:func:`~sae_jax.cost.weight_decay`, :func:`~sae_jax.cost.sparsity`); this module only sums
them over chunks. The result equals :func:`sae_jax.cost_and_grad` on all the data at once
(float64: ≤ 1e-12 relative; only the summation order differs).

Compilation: every chunk has the same shape ``(chunk_size, n_visible)``. The last chunk, when
``m`` is not a multiple of ``chunk_size``, is **padded with zero rows and a 0/1 row weight**
(``mask``), so each per-chunk kernel compiles exactly once per ``(chunk_size, n_visible,
n_hidden, dtype, output)``, whatever m is. (When m is known and smaller than ``chunk_size``,
the chunk size shrinks to m: one chunk, no padding.)

Data sources (:func:`chunks`): an array ``(m, n_visible)`` (numpy, ``np.memmap``, jax), the
path of a ``.npy`` file (read a chunk at a time with plain file reads, so the process never
holds more than one chunk of it), a list of 2-D arrays, or a callable returning a fresh
iterable of 2-D arrays (called once per pass; a bare iterator cannot be read twice and is
refused). Blocks of any sizes are regrouped into ``chunk_size`` rows.

Training: a chunked pass is a Python loop, so it cannot be traced into a jitted training
loop directly. :func:`traceable` wraps any Python ``params -> (value, grads)`` function as a
differentiable JAX function (``jax.pure_callback`` + ``jax.custom_vjp``), which optax's
L-BFGS line search can call inside ``jit``; :func:`lbfgs` drives :func:`sae_jax.lbfgs.lbfgs` one jitted step
at a time from Python with it.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from . import validate
from .backprop import exact_sparsity_sums, hidden_delta, output_delta, sparsity_delta
from .cost import (
    CostTerms,
    exact_on_fast_path,
    kl_divergence_from_logs,
    log_hidden_sums,
    reconstruction,
    sparsity,
    weight_decay,
)
from .forward import Output, _encode as encode, _forward as forward, hidden_pre_activation  # unchecked: inputs checked here
from .lbfgs import lbfgs as compact_lbfgs
from .params import Params
from .validate import InputError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "chunk_size_for_budget",
    "chunks",
    "num_rows",
    "hidden_sum",
    "delta_sums",
    "terms_and_grads_from_sums",
    "sparsity_from_log_sums",
    "chunked_cost_terms",
    "chunked_cost",
    "chunked_cost_terms_and_grad",
    "chunked_cost_and_grad",
    "make_chunked_value_and_grad",
    "traceable",
    "value_with_grad",
    "LbfgsResult",
    "lbfgs",
]

DEFAULT_CHUNK_SIZE = 4096

# ---------------------------------------------------------------------------------------------
# Masked per-chunk sums: the only new code is the 0/1 row weight w (mask) and the sums.
# ---------------------------------------------------------------------------------------------


def hidden_sum(params: Params, x: jax.Array, mask: jax.Array) -> jax.Array:
    r"""Weighted column sum of the hidden activations, :math:`\sum_i w_i\, a^{(2)}(x^{(i)})`, shape ``(n_hidden,)``.

    ``mask`` (``(rows,)``, 0 or 1, ``x``'s dtype) drops padding rows. Summed over all chunks
    (or shards) and divided by the global m it is :math:`\hat\rho`.
    """
    return mask @ encode(params, x)


def delta_sums(
    params: Params, x: jax.Array, mask: jax.Array, sparsity_delta: jax.Array, *, output: Output = "sigmoid"
) -> tuple[jax.Array, Params]:
    r"""One chunk's reconstruction sum and δ-products, given the *global* ``sparsity_delta``.

    .. math::
        R = \sum_i w_i \tfrac12\lVert\hat x^{(i)} - x^{(i)}\rVert^2, \quad
        (\delta^{(2)\top} x,\ \textstyle\sum_i \delta^{(2)(i)},\ \delta^{(3)\top} a^{(2)},\ \textstyle\sum_i \delta^{(3)(i)})

    with padded rows (``w_i = 0``) contributing nothing. No ``1/m`` and no weight decay: those
    are applied once, to the totals, by :func:`terms_and_grads_from_sums`.

    Args:
      params: :class:`~sae_jax.Params`.
      x: ``(rows, n_visible)``.
      mask: ``(rows,)`` row weights, 1 for data and 0 for padding, ``x``'s dtype.
      sparsity_delta: ``(n_hidden,)``, :func:`sae_jax.sparsity_delta` at the global :math:`\hat\rho`.
      output: ``"sigmoid"`` or ``"linear"`` (static).

    Returns:
      ``(R, Params(G_W1, G_b1, G_W2, G_b2))`` (unnormalised sums).
    """
    acts = forward(params, x, output=output)
    w = mask[:, None]
    # Padded rows reconstruct themselves exactly, so they add 0 to the reconstruction sum.
    x_hat = jnp.where(w > 0, acts.a3, x)
    rec_sum = reconstruction(x_hat, x) * x.shape[0]
    delta3 = output_delta(acts.a3, x, output=output) * w
    delta2 = hidden_delta(delta3, params.W2, acts.a2, sparsity_delta) * w
    return rec_sum, Params(
        W1=delta2.T @ x,
        b1=jnp.sum(delta2, axis=0),
        W2=delta3.T @ acts.a2,
        b2=jnp.sum(delta3, axis=0),
    )


def terms_and_grads_from_sums(
    params: Params,
    a2_sum: jax.Array,
    rec_sum: jax.Array,
    grad_sums: Params | None,
    m: ArrayLike,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    sparsity_terms: tuple[jax.Array, jax.Array] | None = None,
) -> tuple[CostTerms, Params | None]:
    r"""Totals → :class:`~sae_jax.CostTerms` and gradient, dividing by the global ``m`` once.

    :math:`\hat\rho = S/m`, :math:`J = R/m + \text{weight decay} + \text{sparsity}(\hat\rho)`,
    :math:`\nabla_{W} = G_W/m + \lambda W`, :math:`\nabla_b = G_b/m`. ``sparsity_terms``:
    the penalty and :math:`\hat\rho` when already computed exactly at saturation
    (:func:`sae_jax.backprop.sparsity_terms_and_delta`, :func:`sparsity_from_log_sums`);
    by default the plain :func:`~sae_jax.cost.sparsity` of :math:`S/m`.
    """
    dtype = params.W1.dtype
    m = jnp.asarray(m, dtype)
    lam_ = jnp.asarray(lam, dtype)
    rec = rec_sum / m
    wd = weight_decay(params, lam=lam)
    if sparsity_terms is None:
        rh = a2_sum / m
        sp = sparsity(rh, rho=rho, beta=beta)
    else:
        sp, rh = sparsity_terms
    terms = CostTerms(rec + wd + sp, rec, wd, sp, rh)
    if grad_sums is None:
        return terms, None
    grads = Params(
        W1=grad_sums.W1 / m + lam_ * params.W1,
        b1=grad_sums.b1 / m,
        W2=grad_sums.W2 / m + lam_ * params.W2,
        b2=grad_sums.b2 / m,
    )
    return terms, grads


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
def _log_sums_kernel(acc, params, x, mask):
    # Only where some unit saturates (see _sparsity_plan): log-sums combine by logaddexp.
    logs = log_hidden_sums(hidden_pre_activation(params, x), mask)
    return tuple(jnp.logaddexp(a, b) for a, b in zip(acc, logs))


@jax.jit
def _sparsity_delta_and_fast(a2_sum, m, rho, beta):
    sd = sparsity_delta(a2_sum / m, rho=rho, beta=beta)
    return sd, exact_on_fast_path(a2_sum / m, sd)


def _pass2(acc, params, x, mask, sdelta, logs, rho, beta, *, output):
    rec_sum, g = delta_sums(params, x, mask, sdelta, output=output)
    if logs is not None:  # the exact sparsity part (saturated units), in place of sdelta
        gW1, gb1 = exact_sparsity_sums(params, x, *logs, rho=rho, beta=beta, mask=mask)
        g = g._replace(W1=g.W1 + gW1, b1=g.b1 + gb1)
    acc_rec, acc_g = acc
    return acc_rec + rec_sum, jax.tree.map(jnp.add, acc_g, g)


_pass2_kernel = jax.jit(_pass2, static_argnames=("output",))
_sparsity_from_log_sums = jax.jit(sparsity_from_log_sums)


def _sparsity_plan(params, data, size, a2_sum, m_arr, rho, beta, *, output, mesh):
    r"""``(sdelta, logs, sparsity_terms)``: on the fast path the global sparsity delta and no more;
    where a unit saturates, a zero delta, one extra pass for the global log-sums (exact
    :math:`\log\hat\rho`, :math:`\log(1-\hat\rho)`), and the exact penalty."""
    sd, fast = _sparsity_delta_and_fast(a2_sum, m_arr, rho, beta)
    if bool(fast):
        return sd, None, None
    acc = (jnp.full_like(a2_sum, -jnp.inf), jnp.full_like(a2_sum, -jnp.inf))
    for x, mask, _ in _device_chunks(data, params, size, output=output, check_values=False, mesh=mesh):
        acc = _log_sums_kernel(acc, params, x, mask)
    log_m = jnp.log(m_arr)
    logs = (acc[0] - log_m, acc[1] - log_m)
    return jnp.zeros_like(sd), logs, _sparsity_from_log_sums(acc, m_arr, rho=rho, beta=beta)


def _terms_pass(acc, params, x, mask, *, output):
    # Value only: Σa2 and the reconstruction sum need no ρ̂, so one pass suffices.
    acts = forward(params, x, output=output)
    x_hat = jnp.where(mask[:, None] > 0, acts.a3, x)
    a2_acc, rec_acc = acc
    return a2_acc + mask @ acts.a2, rec_acc + reconstruction(x_hat, x) * x.shape[0]


_terms_kernel = jax.jit(_terms_pass, static_argnames=("output",))
_finish = jax.jit(terms_and_grads_from_sums)


# ---------------------------------------------------------------------------------------------
# Data sources
# ---------------------------------------------------------------------------------------------


class _NpyFile:
    """A C-ordered 2-D ``.npy`` file read ``rows`` at a time with plain reads (no mmap, no full load)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                self.offset = f.tell()
        except (OSError, ValueError) as e:
            raise InputError(f"data must be a readable .npy file, could not read {self.path!r}: {e}") from e
        if len(shape) != 2 or fortran or dtype.hasobject:
            raise InputError(
                f"data file {self.path!r} must hold a C-ordered 2-D numeric array (m, n_visible), "
                f"got shape {shape}, fortran_order={fortran}, dtype {dtype}"
            )
        self.shape, self.dtype = tuple(shape), dtype

    def blocks(self, rows: int) -> Iterator[np.ndarray]:
        m, n = self.shape
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            for start in range(0, m, rows):
                k = min(rows, m - start)
                block = np.fromfile(f, dtype=self.dtype, count=k * n)
                if block.size != k * n:
                    raise InputError(f"data file {self.path!r} is truncated at row {start}")
                yield block.reshape(k, n)


def _is_array(data) -> bool:
    return hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__")


def num_rows(data) -> int | None:
    """m for an array or a ``.npy`` path (read from the header), ``None`` for other sources."""
    if isinstance(data, (str, os.PathLike)):
        return _NpyFile(data).shape[0]
    if _is_array(data):
        return int(data.shape[0]) if len(data.shape) >= 1 else None
    if isinstance(data, (list, tuple)):
        return int(sum(np.shape(b)[0] for b in data))
    return None


def _blocks(data, rows: int) -> Iterator[Any]:
    """Raw blocks of the source, each meant to be at most ``rows`` rows (arrays and files)."""
    if isinstance(data, (str, os.PathLike)):
        yield from _NpyFile(data).blocks(rows)
    elif _is_array(data):
        if isinstance(data, jax.Array):
            data = np.asarray(data)  # chunking is for host data: one device->host copy per pass
        if data.ndim != 2:
            raise InputError(f"data must be 2-D (m, n_visible) with samples as rows, got shape {tuple(data.shape)}")
        for start in range(0, data.shape[0], rows):
            yield data[start : start + rows]
    elif isinstance(data, (list, tuple)):
        yield from data
    elif callable(data):
        it = data()
        if not isinstance(it, Iterable):
            raise InputError(f"data() must return an iterable of 2-D arrays, got {type(it).__name__}")
        yield from it
    elif isinstance(data, Iterable):
        raise InputError(
            "data must be re-readable (two passes): an array, a .npy path, a list of arrays, or a "
            f"callable returning a fresh iterable of arrays, got a one-shot {type(data).__name__}"
        )
    else:
        raise InputError(
            "data must be an array (m, n_visible), a .npy path, a list of 2-D arrays, or a callable "
            f"returning an iterable of 2-D arrays, got {type(data).__name__}"
        )


def chunks(data, chunk_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Regroup a data source into host blocks of exactly ``chunk_size`` rows.

    Yields ``(block, rows)``: ``block`` is a ``(chunk_size, n_visible)`` host array whose first
    ``rows`` rows are data and the rest (last block only) zero padding.
    """
    buf: list[np.ndarray] = []
    have = 0
    for k, b in enumerate(_blocks(data, chunk_size)):
        b = np.asarray(b)
        if b.ndim != 2:
            raise InputError(f"data block {k} must be 2-D (rows, n_visible), got shape {b.shape}")
        if buf and (b.shape[1] != buf[0].shape[1] or b.dtype != buf[0].dtype):
            raise InputError(
                f"data block {k} has shape {b.shape} and dtype {b.dtype}, but earlier blocks have "
                f"{buf[0].shape[1]} columns and dtype {buf[0].dtype}"
            )
        if b.shape[0] == 0:
            continue
        if not buf and b.shape[0] == chunk_size:
            yield b, chunk_size
            continue
        buf.append(b)
        have += b.shape[0]
        while have >= chunk_size:
            cat = np.concatenate(buf) if len(buf) > 1 else buf[0]
            yield cat[:chunk_size], chunk_size
            rest = cat[chunk_size:]
            buf, have = ([rest] if rest.shape[0] else []), rest.shape[0]
    if have:
        cat = np.concatenate(buf) if len(buf) > 1 else buf[0]
        pad = np.zeros((chunk_size - have, cat.shape[1]), cat.dtype)
        yield np.concatenate([cat, pad]), have


def chunk_size_for_budget(memory_bytes: int, *, n_visible: int, n_hidden: int, dtype=jnp.float32) -> int:
    r"""The largest chunk whose working set fits ``memory_bytes`` (approximately; at least 1 row).

    Per row, pass 2 holds ``x``, ``a3`` and ``δ3`` (n_visible each), ``z2``/``a2`` and ``δ2``
    (n_hidden each), plus the host block and its device copy: about
    :math:`(5 n_\text{visible} + 3 n_\text{hidden}) \times \text{itemsize}` bytes, doubled for
    XLA temporaries. Parameters and gradient sums (a few ``n_visible × n_hidden`` arrays) come on top.
    """
    if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int) or memory_bytes < 1:
        raise InputError(f"memory_bytes must be a positive integer, got {memory_bytes!r}")
    per_row = 2 * (5 * n_visible + 3 * n_hidden) * jnp.dtype(dtype).itemsize
    return max(1, memory_bytes // per_row)


def _resolve_chunk_size(data, params: Params, chunk_size, memory_bytes, mesh=None) -> int:
    if chunk_size is not None and memory_bytes is not None:
        raise InputError("give chunk_size or memory_bytes, not both")
    if memory_bytes is not None:
        chunk_size = chunk_size_for_budget(
            memory_bytes, n_visible=params.n_visible, n_hidden=params.n_hidden, dtype=params.dtype
        )
    elif chunk_size is None:
        chunk_size = DEFAULT_CHUNK_SIZE
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise InputError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    m = num_rows(data)
    if m is not None and 0 < m < chunk_size:
        chunk_size = m  # one chunk, no padding
    if mesh is not None:  # each chunk splits evenly over the devices (padding rows are masked)
        chunk_size = -(-chunk_size // mesh.size) * mesh.size
    return int(chunk_size)


def _device_chunks(data, params: Params, chunk_size: int, *, output: str, check_values: bool, mesh=None):
    """Yield ``(x, mask, rows)`` device arrays, checking each block's shape, dtype (and values).

    With a ``mesh``, each chunk's rows are split over its devices (``NamedSharding``), and the
    kernels, unchanged, run data-parallel: XLA all-reduces each chunk's sums.
    """
    n, dtype = params.n_visible, jnp.dtype(params.dtype)
    ones = None
    if mesh is None:
        put_x = put_mask = jnp.asarray
    else:
        axis = mesh.axis_names[0]
        x_sharding, mask_sharding = NamedSharding(mesh, P(axis, None)), NamedSharding(mesh, P(axis))

        def put_x(a):
            return jax.device_put(a, x_sharding)

        def put_mask(a):
            return jax.device_put(a, mask_sharding)

    for k, (block, rows) in enumerate(chunks(data, chunk_size)):
        if block.shape[1] != n:
            raise InputError(
                f"data must have shape (m, {n}) to match params (n_visible={n}), got a block of shape "
                f"{(rows, block.shape[1])} at chunk {k}"
            )
        if jnp.dtype(block.dtype) != dtype:
            raise InputError(
                f"data must have the same dtype as params ({dtype}), got {block.dtype} at chunk {k}; "
                f"convert one of them (e.g. x.astype({dtype.name!r}))"
            )
        if check_values:
            validate.check_data_values(block[:rows], output=output, name=f"data (chunk {k})")
        if rows == chunk_size:
            if ones is None:
                ones = put_mask(np.ones((chunk_size,), dtype))
            mask = ones
        else:
            mask = put_mask((np.arange(chunk_size) < rows).astype(dtype))
        yield put_x(block), mask, rows


class _Backpressure:
    """Bound the chunks in flight. JAX dispatches asynchronously, so without a wait the Python loop
    would read and transfer every chunk before the first kernel finished (all the data at once).
    Waiting for the accumulator of the chunk *before* the newest keeps two chunks in flight:
    reading chunk k+1 overlaps computing chunk k, and memory stays at about two chunks."""

    def __init__(self):
        self.prev = None

    def __call__(self, acc):
        if self.prev is not None:
            jax.block_until_ready(self.prev)
        self.prev = acc
        return acc


def _place(params: Params, mesh) -> Params:
    if mesh is None:
        return params
    if len(mesh.axis_names) != 1:
        raise InputError(f"mesh must be 1-D (one batch axis), got axes {mesh.axis_names}")
    return jax.device_put(params, NamedSharding(mesh, P()))


def _check(params, *, lam, beta, rho, output):
    validate.check_output(output)
    validate.check_params(params)
    validate.check_hyperparams(lam=lam, beta=beta, rho=rho, dtype=params.W1.dtype)


def _empty(m):
    if m == 0:
        raise InputError("data must have at least one sample (row), got none")


# ---------------------------------------------------------------------------------------------
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
      mesh: a 1-D device mesh (:func:`sae_jax.sharded.batch_mesh`): split every chunk's rows over
        its devices too (chunk size rounded up to a multiple of the device count, padding masked);
        results replicated. Past memory *and* past one device.

    Returns:
      ``(CostTerms, Params)``.

    Examples:
      >>> import jax, numpy as np
      >>> from sae_jax import init_params, cost_terms_and_grad
      >>> from sae_jax.chunked import chunked_cost_terms_and_grad
      >>> p = init_params(jax.random.key(0), 8, 3)
      >>> x = np.random.default_rng(0).uniform(size=(10, 8)).astype(np.float32)
      >>> hp = dict(lam=1e-4, beta=3.0, rho=0.1)
      >>> terms, g = chunked_cost_terms_and_grad(p, x, chunk_size=4, **hp)  # chunks of 4, 4, 2 (+2 padding)
      >>> want, g1 = cost_terms_and_grad(p, jax.numpy.asarray(x), **hp)
      >>> bool(jax.numpy.allclose(terms.rho_hat, want.rho_hat, rtol=1e-6))
      True
    """
    _check(params, lam=lam, beta=beta, rho=rho, output=output)
    size = _resolve_chunk_size(data, params, chunk_size, memory_bytes, mesh)
    params = _place(params, mesh)
    dtype = params.dtype
    # Pass 1: S = Σ a2 over every sample, hence the global ρ̂ and sparsity delta.
    a2_sum, m = jnp.zeros((params.n_hidden,), dtype), 0
    _in_flight = _Backpressure()
    for x, mask, rows in _device_chunks(data, params, size, output=output, check_values=check_values, mesh=mesh):
        a2_sum = _in_flight(_pass1_kernel(a2_sum, params, x, mask))
        m += rows
    _empty(m)
    m_arr = jnp.asarray(m, dtype)
    rho_, beta_ = jnp.asarray(rho, dtype), jnp.asarray(beta, dtype)
    sdelta, logs, sp_terms = _sparsity_plan(params, data, size, a2_sum, m_arr, rho_, beta_, output=output, mesh=mesh)
    # Pass 2: reconstruction sum and δ-products, every chunk using the same global sparsity delta.
    acc = (jnp.zeros((), dtype), jax.tree.map(jnp.zeros_like, params))
    m2 = 0
    _in_flight = _Backpressure()
    for x, mask, rows in _device_chunks(data, params, size, output=output, check_values=False, mesh=mesh):
        acc = _in_flight(_pass2_kernel(acc, params, x, mask, sdelta, logs, rho_, beta_, output=output))
        m2 += rows
    if m2 != m:
        raise InputError(f"data changed between the two passes: {m} rows in pass 1, {m2} in pass 2")
    rec_sum, grad_sums = acc
    return _finish(params, a2_sum, rec_sum, grad_sums, m_arr, lam=lam, beta=beta, rho=rho, sparsity_terms=sp_terms)


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
) -> tuple[jax.Array, Params]:
    """``(J, grads)`` like :func:`sae_jax.cost_and_grad`, over chunks; see :func:`chunked_cost_terms_and_grad`."""
    terms, grads = chunked_cost_terms_and_grad(
        params, data, lam=lam, beta=beta, rho=rho, output=output,
        chunk_size=chunk_size, memory_bytes=memory_bytes, check_values=check_values, mesh=mesh,
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
) -> CostTerms:
    r"""Full-batch :class:`~sae_jax.CostTerms` in **one** pass (the value needs no :math:`\hat\rho` per sample)."""
    _check(params, lam=lam, beta=beta, rho=rho, output=output)
    size = _resolve_chunk_size(data, params, chunk_size, memory_bytes, mesh)
    params = _place(params, mesh)
    dtype = params.dtype
    acc, m = (jnp.zeros((params.n_hidden,), dtype), jnp.zeros((), dtype)), 0
    _in_flight = _Backpressure()
    for x, mask, rows in _device_chunks(data, params, size, output=output, check_values=check_values, mesh=mesh):
        acc = _in_flight(_terms_kernel(acc, params, x, mask, output=output))
        m += rows
    _empty(m)
    m_arr = jnp.asarray(m, dtype)
    rho_, beta_ = jnp.asarray(rho, dtype), jnp.asarray(beta, dtype)
    _, _, sp_terms = _sparsity_plan(params, data, size, acc[0], m_arr, rho_, beta_, output=output, mesh=mesh)
    terms, _ = _finish(params, acc[0], acc[1], None, m_arr, lam=lam, beta=beta, rho=rho, sparsity_terms=sp_terms)
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
) -> Callable[[Params], tuple[jax.Array, Params]]:
    """``params -> (J, grads)`` over chunked ``data``, a Python function (see :func:`traceable`).

    The data values are checked once, here (if ``check_values``), not on every call.
    """
    validate.check_output(output)
    validate.check_hyperparams(lam=lam, beta=beta, rho=rho)
    if check_values:
        for k, (block, rows) in enumerate(chunks(data, chunk_size or DEFAULT_CHUNK_SIZE)):
            validate.check_data_values(block[:rows], output=output, name=f"data (chunk {k})")

    def value_and_grad(params: Params) -> tuple[jax.Array, Params]:
        return chunked_cost_and_grad(
            params, data, lam=lam, beta=beta, rho=rho, output=output,
            chunk_size=chunk_size, memory_bytes=memory_bytes, check_values=False, mesh=mesh,
        )

    return value_and_grad


# ---------------------------------------------------------------------------------------------
# Training adapters
# ---------------------------------------------------------------------------------------------


def traceable(
    value_and_grad: Callable[[Params], tuple[jax.Array, Params]], like: Params
) -> Callable[[Params], jax.Array]:
    r"""Wrap a Python ``params -> (J, grads)`` function as a differentiable, jit-able JAX value function.

    Returns ``value(params) -> J`` such that, under ``jit``, ``jax.value_and_grad(value)`` calls
    ``value_and_grad`` **once** on the host (``jax.pure_callback``) and returns its ``(J, grads)``
    (``jax.custom_vjp``). This is what lets a chunked full-batch pass, a Python loop over data
    that never sits in memory at once, serve optax's L-BFGS and its zoom line search, which call
    ``jax.value_and_grad(value_fn)`` inside ``lax.while_loop``.

    Only first derivatives are available (the backward pass returns the host gradient).
    The host function itself runs JAX computations; that works on the CPU backend and is how
    :func:`lbfgs` uses it.

    Args:
      value_and_grad: e.g. :func:`make_chunked_value_and_grad`'s result.
      like: parameters with the shapes and dtype the function will be called with.
    """
    shapes = (
        jax.ShapeDtypeStruct((), like.W1.dtype),
        jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), like),
    )

    def host(params):
        J, g = value_and_grad(Params(*params))
        return jnp.asarray(J), Params(*g)

    def both(params):
        return jax.pure_callback(host, shapes, params, vmap_method="sequential")

    return value_with_grad(both)


def value_with_grad(value_and_grad: Callable[[Params], tuple[jax.Array, Params]]) -> Callable[[Params], jax.Array]:
    """``value(params) -> J`` whose ``jax.grad`` is the ``grads`` of ``value_and_grad`` (``jax.custom_vjp``).

    With a jit-able ``value_and_grad`` such as the manual backprop, ``jax.value_and_grad(value)``
    then runs the manual backprop (not autodiff through it) wherever optax differentiates ``value``.
    """

    @jax.custom_vjp
    def value(params):
        return value_and_grad(params)[0]

    def fwd(params):
        return value_and_grad(params)

    def bwd(grads, ct):
        return (jax.tree.map(lambda g: ct * g, grads),)

    value.defvjp(fwd, bwd)
    return value


# Host functions for the cached L-BFGS step, looked up by an integer token passed as a traced
# argument: the compiled step depends only on shapes, so every run with the same shapes reuses it.
_HOST_FUNCTIONS: dict[int, Callable] = {}
_TOKENS = itertools.count()


def _host_by_token(token, params):
    params = Params(*params)
    J, g = _HOST_FUNCTIONS[int(token)](params)
    return jnp.asarray(J, params.W1.dtype), Params(*(jnp.asarray(a, params.W1.dtype) for a in g))


@jax.custom_vjp
def _token_value(params, token):
    return _token_value_fwd(params, token)[0]


def _token_value_fwd(params, token):
    shapes = (
        jax.ShapeDtypeStruct((), params.W1.dtype),
        jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params),
    )
    return jax.pure_callback(_host_by_token, shapes, token, params, vmap_method="sequential")


def _token_value_bwd(grads, ct):
    return jax.tree.map(lambda g: ct * g, grads), None


_token_value.defvjp(_token_value_fwd, _token_value_bwd)


@functools.lru_cache(maxsize=None)
def _default_lbfgs(memory_size: int):
    # One object per memory size, so the cached compiled step (keyed on it) is reused.
    return compact_lbfgs(memory_size=memory_size)


def _lbfgs_step(value_fn, params, state, opt):
    # optax's own recipe: the line search stores the accepted point's value and gradient in the
    # state, so each iteration evaluates the objective only inside the line search.
    with jax.numpy_dtype_promotion("standard"):
        J, g = optax.value_and_grad_from_state(value_fn)(params, state=state)
        updates, state = opt.update(g, state, params, value=J, grad=g, value_fn=value_fn)
        new = optax.apply_updates(params, updates)
        stored = (optax.tree.get(state, "value"), optax.tree.norm(optax.tree.get(state, "grad")))
    return new, state, (J, optax.tree.norm(g)), stored


@functools.partial(jax.jit, static_argnames=("optimizer",))
def _host_lbfgs_step(params, state, token, *, optimizer):
    return _lbfgs_step(lambda q: _token_value(q, token), params, state, optimizer)


class LbfgsResult(NamedTuple):
    """What :func:`lbfgs` returns."""

    params: Params
    values: list  # J at each iterate, values[0] at the start
    grad_norms: list  # ||grad J|| at each iterate


def lbfgs(
    value_and_grad: Callable[[Params], tuple[jax.Array, Params]],
    params: Params,
    *,
    num_steps: int,
    memory_size: int = 10,
    optimizer: optax.GradientTransformationExtraArgs | None = None,
    tol: float = 0.0,
    callback: Callable[[int, Params, float], None] | None = None,
    traced: bool = False,
) -> LbfgsResult:
    r"""Minimise with :func:`sae_jax.lbfgs.lbfgs` (``optax.lbfgs``'s algorithm, zoom line search), one jitted step per Python iteration.

    ``value_and_grad`` is any ``params -> (J, grads)``: a jit-able one (e.g. ``partial`` of
    :func:`sae_jax.cost_and_grad`) is traced into the step with ``traced=True``; a Python one (e.g.
    :func:`make_chunked_value_and_grad` over a ``.npy`` file) is wrapped with :func:`traceable`.
    Same algorithm either way, so a chunked run follows the in-memory run's trajectory.

    Args:
      value_and_grad: ``params -> (J, grads)``.
      params: starting point.
      num_steps: maximum number of L-BFGS iterations.
      memory_size: L-BFGS history length (for the default ``sae_jax.lbfgs.lbfgs(memory_size=...)``).
      optimizer: another optax transformation taking ``value``, ``grad``, ``value_fn``, e.g.
        :func:`sae_jax.training.make_optimizer` of a ``TrainConfig``, to follow the trainer's exact
        L-BFGS (its memory and line-search settings).
      tol: stop when :math:`\lVert\nabla J\rVert \le` ``tol``.
      callback: called as ``callback(step, params, J)`` after each step.
      traced: ``True``: ``value_and_grad`` is jit-able (in-memory data) and is traced into the step;
        ``False`` (default): it is a Python function (e.g. chunked) called from the host through
        :func:`traceable`. Never pass ``True`` for a chunked function: tracing it would bake the
        whole dataset into the program as constants.

    Returns:
      :class:`LbfgsResult` ``(params, values, grad_norms)``.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
        raise InputError(f"num_steps must be an integer >= 0, got {num_steps!r}")
    validate.check_params(params)
    opt = _default_lbfgs(int(memory_size)) if optimizer is None else optimizer
    with jax.numpy_dtype_promotion("standard"):
        state = opt.init(params)
    if num_steps == 0:
        J, g = value_and_grad(params)
        return LbfgsResult(params, [float(J)], [float(optax.tree.norm(g))])
    if traced:
        value_fn = value_with_grad(value_and_grad)
        step = jax.jit(lambda p, s: _lbfgs_step(value_fn, p, s, opt))
    else:
        token = next(_TOKENS)
        _HOST_FUNCTIONS[token] = value_and_grad
        token_arr = jnp.asarray(token, jnp.int32)

        def step(p, s):
            return _host_lbfgs_step(p, s, token_arr, optimizer=opt)

    values: list = []
    norms: list = []
    try:
        for k in range(num_steps):
            new_params, state, (J, gn), (J_new, gn_new) = step(params, state)
            if k == 0:
                values.append(float(J))
                norms.append(float(gn))
                if norms[0] <= tol:
                    break
            params = new_params
            values.append(float(J_new))
            norms.append(float(gn_new))
            if callback is not None:
                callback(k + 1, params, values[-1])
            if norms[-1] <= tol:
                break
    finally:
        if not traced:
            del _HOST_FUNCTIONS[token]
    return LbfgsResult(params, values, norms)
