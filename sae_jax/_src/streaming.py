r"""Data streamed in fixed-size chunks: the sources the chunked paths read, and how they are read.

A data source (:func:`chunks`) is an array ``(m, n_visible)`` (numpy, ``np.memmap``, jax), the
path of a ``.npy`` file (read a chunk at a time with plain file reads, so the process never
holds more than one chunk of it), a list of 2-D arrays, or a callable returning a fresh
iterable of 2-D arrays (called once per pass; a bare iterator cannot be read twice and is
refused). Blocks of any sizes are regrouped into ``chunk_size`` rows; the last chunk is padded
with zero rows and a 0/1 row weight (:func:`sae_jax._src.backprop.pad_rows`), so every chunk has one
shape and each per-chunk kernel compiles once. :func:`device_chunks` moves them to the device(s),
checking shapes, dtypes (and values), and :class:`Backpressure` keeps about two chunks in flight.
A denoising input (``x_input=``) is a second source of the same kind (:func:`source_kind`) and
rows, read in lockstep: regrouped into the same chunks, padded alike, compared chunk by chunk.

Examples:
  >>> import numpy as np
  >>> from sae_jax._src.streaming import chunks, num_rows
  >>> x = np.arange(10.0).reshape(5, 2)
  >>> [(block.shape, rows) for block, rows in chunks([x[:3], x[3:]], 2)]
  [((2, 2), 2), ((2, 2), 2), ((2, 2), 1)]
  >>> num_rows([x[:3], x[3:]])
  5
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from . import validate
from .backprop import pad_rows
from .params import Params
from .validate import InputError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "source_kind",
    "num_rows",
    "chunks",
    "check_pair",
    "check_source_values",
    "chunk_size_for_budget",
    "resolve_chunk_size",
    "device_chunks",
    "Backpressure",
]

DEFAULT_CHUNK_SIZE = 4096


class _NpyFile:
    """A C-ordered 2-D ``.npy`` file read ``rows`` at a time with plain reads (no mmap, no full load)."""

    def __init__(self, path, name: str = "data"):
        self.path, self.name = os.fspath(path), name
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                self.offset = f.tell()
        except (OSError, ValueError) as e:
            raise InputError(f"{name} must be a readable .npy file, could not read {self.path!r}: {e}") from e
        if len(shape) != 2 or fortran or dtype.hasobject:
            raise InputError(
                f"{name} file {self.path!r} must hold a C-ordered 2-D numeric array (m, n_visible), "
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
                    raise InputError(f"{self.name} file {self.path!r} is truncated at row {start}")
                yield block.reshape(k, n)


def _is_array(data) -> bool:
    return hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__")


def source_kind(data) -> str:
    """What kind of source ``data`` is: ``"array"``, ``"npy file"``, ``"list"``, ``"callable"`` (else ``"other"``)."""
    if isinstance(data, (str, os.PathLike)):
        return "npy file"
    if _is_array(data):
        return "array"
    if isinstance(data, (list, tuple)):
        return "list"
    return "callable" if callable(data) else "other"


def num_rows(data, name: str = "data") -> int | None:
    """m for an array or a ``.npy`` path (read from the header), ``None`` for other sources."""
    if isinstance(data, (str, os.PathLike)):
        return _NpyFile(data, name).shape[0]
    if _is_array(data):
        return int(data.shape[0]) if len(data.shape) >= 1 else None
    if isinstance(data, (list, tuple)):
        return int(sum(np.shape(b)[0] for b in data))
    return None


def _blocks(data, rows: int, name: str) -> Iterator[Any]:
    """Raw blocks of the source, each meant to be at most ``rows`` rows (arrays and files)."""
    if isinstance(data, (str, os.PathLike)):
        yield from _NpyFile(data, name).blocks(rows)
    elif _is_array(data):
        if isinstance(data, jax.Array):
            data = np.asarray(data)  # chunking is for host data: one device->host copy per pass
        if data.ndim != 2:
            raise InputError(f"{name} must be 2-D (m, n_visible) with samples as rows, got shape {tuple(data.shape)}")
        for start in range(0, data.shape[0], rows):
            yield data[start : start + rows]
    elif isinstance(data, (list, tuple)):
        yield from data
    elif callable(data):
        it = data()
        if not isinstance(it, Iterable):
            raise InputError(f"{name}() must return an iterable of 2-D arrays, got {type(it).__name__}")
        yield from it
    elif isinstance(data, Iterable):
        raise InputError(
            f"{name} must be re-readable (two passes): an array, a .npy path, a list of arrays, or a "
            f"callable returning a fresh iterable of arrays, got a one-shot {type(data).__name__}"
        )
    else:
        raise InputError(
            f"{name} must be an array (m, n_visible), a .npy path, a list of 2-D arrays, or a callable "
            f"returning an iterable of 2-D arrays, got {type(data).__name__}"
        )


def _regrouped(data, chunk_size: int, name: str = "data") -> Iterator[np.ndarray]:
    """The source's rows as host blocks of exactly ``chunk_size`` rows (the last one possibly shorter)."""
    buf: list[np.ndarray] = []
    have = 0
    for k, b in enumerate(_blocks(data, chunk_size, name)):
        b = np.asarray(b)
        if b.ndim != 2:
            raise InputError(f"{name} block {k} must be 2-D (rows, n_visible), got shape {b.shape}")
        if buf and (b.shape[1] != buf[0].shape[1] or b.dtype != buf[0].dtype):
            raise InputError(
                f"{name} block {k} has shape {b.shape} and dtype {b.dtype}, but earlier blocks have "
                f"{buf[0].shape[1]} columns and dtype {buf[0].dtype}"
            )
        if b.shape[0] == 0:
            continue
        if not buf and b.shape[0] == chunk_size:
            yield b
            continue
        buf.append(b)
        have += b.shape[0]
        while have >= chunk_size:
            cat = np.concatenate(buf) if len(buf) > 1 else buf[0]
            yield cat[:chunk_size]
            rest = cat[chunk_size:]
            buf, have = ([rest] if rest.shape[0] else []), rest.shape[0]
    if have:
        yield np.concatenate(buf) if len(buf) > 1 else buf[0]


def check_pair(data, x_input) -> None:
    """A denoising source ``x_input`` is of ``data``'s kind, and of its row count where both are known
    (the rows are compared chunk by chunk as they are read, too)."""
    kind, kind_in = source_kind(data), source_kind(x_input)
    if kind_in != kind:
        raise InputError(
            f"x_input (the corrupted input) must be a source of data's kind ({kind}), read in lockstep "
            f"with it, got {kind_in} ({type(x_input).__name__})"
        )
    m, m_in = num_rows(data), num_rows(x_input, "x_input")
    if m is not None and m_in is not None and m != m_in:
        raise InputError(f"x_input (the corrupted input) must have data's {m} rows, got {m_in}")


def _paired(data, x_input, chunk_size: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """``(block, block_in)`` of ``data`` and ``x_input`` read in lockstep (``block_in`` None without)."""
    if x_input is None:
        for block in _regrouped(data, chunk_size):
            yield block, None
        return
    pairs = itertools.zip_longest(_regrouped(data, chunk_size), _regrouped(x_input, chunk_size, "x_input"))
    for k, (block, block_in) in enumerate(pairs):
        if block is None or block_in is None or block_in.shape != block.shape:
            got = "no rows" if block_in is None else f"shape {block_in.shape}"
            want = "no rows" if block is None else f"shape {block.shape}"
            raise InputError(
                f"x_input (the corrupted input) must match data row for row: at chunk {k} data has "
                f"{want}, x_input {got}"
            )
        yield block, block_in


def chunks(data, chunk_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Regroup a data source into host blocks of exactly ``chunk_size`` rows.

    Yields ``(block, rows)``: ``block`` is a ``(chunk_size, n_visible)`` host array whose first
    ``rows`` rows are data and the rest (last block only) zero padding.
    """
    for block in _regrouped(data, chunk_size):
        yield pad_rows(block, chunk_size)[0], block.shape[0]


def check_source_values(data, chunk_size: int, *, output: str, x_input=None) -> None:
    """One host pass checking every chunk's values: ``data`` finite (in [0, 1] for a sigmoid
    output), ``x_input`` (denoising, read in lockstep) finite."""
    if x_input is not None:
        check_pair(data, x_input)
    for k, (block, block_in) in enumerate(_paired(data, x_input, chunk_size)):
        validate.check_data_values(block, output=output, name=f"data (chunk {k})")
        if block_in is not None:
            validate.check_data_values(block_in, output="linear", name=f"x_input (chunk {k})")


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


def resolve_chunk_size(data, params: Params, chunk_size, memory_bytes, mesh=None) -> int:
    """The chunk size a chunked call uses: ``chunk_size`` (default :data:`DEFAULT_CHUNK_SIZE`) or the
    :func:`chunk_size_for_budget` of ``memory_bytes``; at most m (one chunk, no padding) when m is
    known; with a ``mesh``, rounded up to a multiple of its device count."""
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


def device_chunks(data, params: Params, chunk_size: int, *, output: str, check_values: bool, mesh=None,
                  x_input=None):
    """Yield ``(x, x_in, mask, rows)`` device arrays, checking each block's shape, dtype (and values).

    ``x_input`` (denoising): a source of ``data``'s kind read in lockstep, chunk for chunk, padded
    alike (values: finite); ``x_in`` is ``None`` without it. With a ``mesh``, each chunk's rows are
    split over its devices (``NamedSharding``), and the kernels, unchanged, run data-parallel:
    XLA all-reduces each chunk's sums.
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

    if x_input is not None:
        check_pair(data, x_input)
    for k, (block, block_in) in enumerate(_paired(data, x_input, chunk_size)):
        rows = block.shape[0]
        for name, b in (("data", block), ("x_input", block_in)):
            if b is None:
                continue
            if b.shape[1] != n:
                raise InputError(
                    f"{name} must have shape (m, {n}) to match params (n_visible={n}), got a block of shape "
                    f"{(rows, b.shape[1])} at chunk {k}"
                )
            if jnp.dtype(b.dtype) != dtype:
                raise InputError(
                    f"{name} must have the same dtype as params ({dtype}), got {b.dtype} at chunk {k}; "
                    f"convert one of them (e.g. x.astype({dtype.name!r}))"
                )
            if check_values:
                validate.check_data_values(b, output=output if b is block else "linear", name=f"{name} (chunk {k})")
        if rows == chunk_size:
            if ones is None:
                ones = put_mask(np.ones((chunk_size,), dtype))
            mask = ones
        else:
            block, mask = pad_rows(block, chunk_size)
            block_in = None if block_in is None else pad_rows(block_in, chunk_size)[0]
            mask = put_mask(mask)
        yield put_x(block), None if block_in is None else put_x(block_in), mask, rows


class Backpressure:
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


