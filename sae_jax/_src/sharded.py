r"""Data parallelism over devices (and hosts) with a global :math:`\hat\rho` and a global m.

The batch ``x (m, n_visible)`` is split by rows over a 1-D device mesh (axis ``"batch"``); the
parameters are replicated. The sparsity penalty needs
:math:`\hat\rho_j = \frac1m\sum_{i=1}^m a^{(2)}_j(x^{(i)})` over **all** devices' rows before
any device can form its hidden deltas, so each evaluation is

.. math::
    S = \textstyle\sum_{d} S_d \ (\texttt{psum}), \quad \hat\rho = S/m, \quad
    s = \texttt{sparsity\_delta}(\hat\rho), \qquad
    (R, G) = \textstyle\sum_d (R_d, G_d) \ (\texttt{psum}), \quad J, \nabla J \text{ from } (S, R, G)/m,

with :math:`S_d, R_d, G_d` device d's :func:`~sae_jax._src.backprop.hidden_sum` and
:func:`~sae_jax._src.backprop.delta_sums` (the package's one backprop core,
:func:`~sae_jax._src.backprop.backprop`, the same per-block pieces the chunked path uses). Devices
combine **sums** with ``psum`` and divide by the global m once; ``pmean`` of per-device means
would equal this only when every device holds the same number of real rows.

Two ways to run it, equal to :func:`sae_jax.cost_and_grad` on one device (float64 ≤ 1e-12):

- :func:`sharded_cost_terms_and_grad`: plain ``jit`` over arrays with a ``NamedSharding``; XLA's
  partitioner inserts the all-reduces. (So does plain :func:`sae_jax.cost_and_grad` when
  given a row-sharded ``x`` whose m divides evenly: ``jnp.mean`` over a sharded axis is a global
  mean. The tests check both.)
- :func:`shard_map_cost_terms_and_grad`: ``jax.shard_map``, each device computing its local sums
  and ``lax.psum``-ing them explicitly, as written above.

**m not divisible by the device count**: :func:`shard_batch` pads ``x`` with zero rows up to a
multiple of the device count and carries a 0/1 row weight ``mask`` (1 for data); padded rows
add nothing to any sum, and m stays the true sample count, so :math:`\hat\rho`, J and the
gradient are exact. (Nothing is refused; at most ``devices − 1`` rows of padding.)

**Denoising** (``x_input=``, :mod:`sae_jax._src.variants`): the corrupted input is padded and split
exactly as ``x`` (:func:`shard_batch`'s ``x_input=``, or any array of ``batch.x``'s padded shape,
e.g. ``corrupt(key, batch.x, ...)`` made on the devices); the network reads it, ``x`` is the target.

**Several hosts**: after ``jax.distributed.initialize`` (see the scaling guide, docs/guide/scaling.md),
:func:`shard_batch` on each process takes that process's rows (``process_local=True``), pads
them to a common per-process length and assembles one global array with
``jax.make_array_from_process_local_data``; m is the sum of every process's true row count.

Examples:
  >>> import jax, numpy as np
  >>> from sae_jax import init_params, cost_and_grad
  >>> from sae_jax.scale import batch_mesh, shard_batch, sharded_cost_and_grad
  >>> p = init_params(jax.random.key(0), 8, 3)
  >>> x = np.random.default_rng(0).uniform(size=(10, 8)).astype(np.float32)
  >>> batch = shard_batch(x, batch_mesh())          # padded to a multiple of the device count
  >>> J, g = sharded_cost_and_grad(p, batch, lam=1e-4, beta=3.0, rho=0.1)
  >>> J1, g1 = cost_and_grad(p, jax.numpy.asarray(x), lam=1e-4, beta=3.0, rho=0.1)
  >>> bool(np.isclose(J, J1, rtol=1e-6))
  True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from .checks import args as validate
from .backprop import backprop, pad_rows
from .cost import CostTerms
from .forward import Output
from .params import Params
from .checks.errors import InputError
from .checks.fused import entry

__all__ = [
    "BATCH_AXIS", "ShardedBatch", "batch_mesh", "shard_batch", "replicate",
    "sharded_cost_terms_and_grad", "sharded_cost_and_grad", "shard_map_cost_terms_and_grad",
    "shard_map_cost_and_grad", "make_sharded_value_and_grad", "make_train_value_and_grad",
]

BATCH_AXIS = "batch"


class ShardedBatch(NamedTuple):
    """A row-sharded batch, padded to a multiple of the device count (a pytree)."""

    x: jax.Array  # shape=(m_padded, n_visible), rows sharded over the mesh's batch axis
    mask: jax.Array  # shape=(m_padded,), 1 for data rows and 0 for padding, x's dtype, same sharding
    m: jax.Array  # shape=(), the global number of real samples, x's dtype (replicated)
    x_input: jax.Array | None = None  # shape=(m_padded, n_visible): denoising's corrupted input, as x


def batch_mesh(devices: int | str | Sequence[jax.Device] | None = None, *, axis_name: str = BATCH_AXIS) -> Mesh:
    """A 1-D mesh over devices for data parallelism.

    Args:
      devices: ``None`` or ``"all"``: every device (``jax.devices()``: all processes' devices
        after ``jax.distributed.initialize``); an int ``N``: the first N of them; or a list of devices.
      axis_name: the mesh axis that rows are split over.
    """
    all_devices = jax.devices()
    if devices is None or devices == "all":
        chosen = all_devices
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(all_devices):
            raise InputError(
                f"devices must be 'all' or an integer in [1, {len(all_devices)}] (the devices JAX sees), got {devices}"
            )
        chosen = all_devices[:devices]
    else:
        try:
            if isinstance(devices, (str, bool)):
                raise TypeError
            chosen = list(devices)
        except TypeError:
            raise InputError(f"devices must be 'all', an integer or a list of devices, got {devices!r}") from None
        if not chosen:
            raise InputError("devices must not be empty")
        bad = [d for d in chosen if not isinstance(d, jax.Device)]
        if bad:
            raise InputError(f"devices must be 'all', an integer or a list of devices (jax.devices()), got {bad[0]!r} in the list")
    return Mesh(np.asarray(chosen), (axis_name,))


def _axis(mesh: Mesh) -> str:
    if not isinstance(mesh, Mesh):
        raise InputError(f"mesh must be a jax.sharding.Mesh (sae_jax.scale.batch_mesh()), got {type(mesh).__name__} {mesh!r}")
    if len(mesh.axis_names) != 1:
        raise InputError(f"mesh must be 1-D (one batch axis), got axes {mesh.axis_names}")
    return mesh.axis_names[0]


def replicate(tree, mesh: Mesh):
    """Put every array of ``tree`` (e.g. :class:`~sae_jax.Params`) on every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(
    x, mesh: Mesh, *, output: Output = "sigmoid", check_values: bool = True, process_local: bool = False,
    x_input=None,
) -> ShardedBatch:
    """Split ``x`` by rows over ``mesh``, padding with masked zero rows to a multiple of the device count.

    Args:
      x: ``(m, n_visible)`` host or device array: the whole batch, or with ``process_local=True``
        this process's rows only.
      mesh: a 1-D mesh (:func:`batch_mesh`).
      output: the model's output layer, for the value check (data in [0, 1] for ``"sigmoid"``).
      check_values: check ``x`` is finite (and in range) before sharding.
      process_local: ``x`` holds this process's rows of a multi-process batch (every process calls
        this with its own rows; they are concatenated in process order). Needs every process to call
        it (it exchanges row counts).
      x_input: denoising: the corrupted input, an array of ``x``'s shape and dtype (this process's
        rows with ``process_local``), padded and sharded as ``x`` (values: finite, any range).

    Returns:
      :class:`ShardedBatch` ``(x, mask, m, x_input)`` with ``m`` the global number of real rows.
    """
    axis = _axis(mesh)
    if not hasattr(x, "shape") or not hasattr(x, "dtype") or len(x.shape) != 2:
        raise InputError(
            f"x must be a 2-D array (m, n_visible) with samples as rows, got {getattr(x, 'shape', type(x).__name__)}"
        )
    dtype = jnp.dtype(x.dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise InputError(f"x must be floating point, got dtype {dtype}")
    got = (tuple(getattr(x_input, "shape", ())), getattr(x_input, "dtype", None))
    if x_input is not None and got != (tuple(x.shape), dtype):
        raise InputError(f"x_input (the corrupted input) must be an array of x's shape {tuple(x.shape)} "
                         f"and dtype {dtype}, got {type(x_input).__name__} {got[0]} {got[1]}")
    if check_values and x.shape[0]:
        validate.check_data_values(x, output=output)
        if x_input is not None:
            validate.check_data_values(x_input, output="linear", name="x_input")
    x = np.asarray(x)
    m_local = x.shape[0]
    if process_local and jax.process_count() > 1:
        from jax.experimental import multihost_utils

        counts = np.asarray(multihost_utils.process_allgather(np.asarray([m_local], np.int64))).reshape(-1)
        m = int(counts.sum())
        local_devices = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
        rows = int(-(-int(counts.max()) // local_devices) * local_devices)  # common per-process length
    else:
        m = m_local
        rows = int(-(-m // mesh.size) * mesh.size)
    if m < 1:
        raise InputError(f"x must have at least one sample (row), got shape {tuple(x.shape)}")
    x_pad, mask = pad_rows(x, rows)
    x_in_pad = None if x_input is None else pad_rows(np.asarray(x_input), rows)[0]
    multi = process_local and jax.process_count() > 1
    put = jax.make_array_from_process_local_data if multi else (lambda sharding, a: jax.device_put(a, sharding))
    xs, x_ins = (None if a is None else put(NamedSharding(mesh, P(axis, None)), a) for a in (x_pad, x_in_pad))
    ms = put(NamedSharding(mesh, P(axis)), mask)
    m_arr = jax.device_put(np.asarray(m, dtype), NamedSharding(mesh, P()))
    return ShardedBatch(xs, ms, m_arr, x_ins)


def _check(params, batch, *, lam, beta, rho, output, l1, x_input) -> ShardedBatch:
    """Check a call; return ``batch`` with its denoising input (``x_input=`` or ``batch.x_input``)."""
    validate.check_output(output)
    validate.check_params(params)
    validate.check_hyperparams(lam=lam, beta=beta, rho=rho, dtype=params.W1.dtype, l1=l1)
    if not isinstance(batch, ShardedBatch):
        raise InputError(f"batch must be a ShardedBatch from shard_batch(x, mesh), got {type(batch).__name__}")
    n, dtype = params.W1.shape[1], jnp.dtype(params.W1.dtype)
    if batch.x.shape[1] != n:
        raise InputError(f"batch.x must have shape (m, {n}) to match params (n_visible={n}), got {batch.x.shape}")
    if jnp.dtype(batch.x.dtype) != dtype:
        raise InputError(f"batch.x must have the same dtype as params ({dtype}), got {batch.x.dtype}")
    if x_input is None:
        return batch
    if batch.x_input is not None:
        raise InputError("x_input given twice: batch already carries one (shard_batch(..., x_input=)); give it once")
    if not hasattr(x_input, "dtype") or tuple(x_input.shape) != tuple(batch.x.shape) or x_input.dtype != dtype:
        got = f"{type(x_input).__name__} {getattr(x_input, 'shape', '')} {getattr(x_input, 'dtype', '')}"
        raise InputError(
            f"x_input (the corrupted input) must be an array of batch.x's padded shape {tuple(batch.x.shape)} "
            f"in params' dtype ({dtype}), e.g. corrupt(key, batch.x, ...), got {got}"
        )
    if validate.is_concrete(x_input):
        validate.check_data_values(x_input, output="linear", name="x_input")
    return batch._replace(x_input=x_input)


# --- (a) plain jit over sharded arrays: XLA's partitioner inserts the collectives ---------------


def _gspmd(params, batch, lam, beta, rho, l1, *, output):
    return backprop(
        params, batch.x, lam=lam, beta=beta, rho=rho, output=output, mask=batch.mask, m=batch.m, l1=l1,
        x_input=batch.x_input,
    )


@entry()
def sharded_cost_terms_and_grad(
    params: Params, batch: ShardedBatch, *, lam: ArrayLike, beta: ArrayLike, rho: ArrayLike, output: Output = "sigmoid",
    l1: ArrayLike | None = None, x_input: jax.Array | None = None,
) -> tuple[CostTerms, Params]:
    r"""``(CostTerms, grads)`` over a :class:`ShardedBatch` under plain ``jit`` (global :math:`\hat\rho`, global m).

    The arrays' shardings drive the partitioning; the results are replicated on every device of
    the mesh. Equal to :func:`sae_jax.cost_terms_and_grad` on the unpadded data (tied parameters
    and ``l1=`` as there). Denoising: ``x_input=`` an array of ``batch.x``'s padded shape, its
    rows aligned with ``batch.x``'s (e.g. ``corrupt(key, batch.x, ...)``: what padding rows hold
    is masked out), or a batch from ``shard_batch(x, mesh, x_input=...)``.
    """
    batch = _check(params, batch, lam=lam, beta=beta, rho=rho, output=output, l1=l1, x_input=x_input)
    return _terms_and_grad_jit(params, batch, lam, beta, rho, l1, mesh=_mesh_of(batch), output=output, method="jit")


@entry(keywords_of=sharded_cost_terms_and_grad)
def sharded_cost_and_grad(params: Params, batch: ShardedBatch, **kwargs) -> tuple[jax.Array, Params]:
    """``(J, grads)`` like :func:`sae_jax.cost_and_grad`; see :func:`sharded_cost_terms_and_grad`."""
    terms, grads = sharded_cost_terms_and_grad(params, batch, **kwargs)
    return terms.cost, grads


# --- (b) explicit shard_map: local sums, psum, divide by the global m ----------------------------


def _shard_map(params, batch, lam, beta, rho, l1, *, mesh, output):
    axis = _axis(mesh)

    def local(params, x, mask, m, lam, beta, rho, l1, x_input):  # one device's rows; psum over `axis`
        return backprop(params, x, lam=lam, beta=beta, rho=rho, output=output, mask=mask, m=m, axis_name=axis,
                        l1=l1, x_input=x_input)

    f = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(), P(axis), P(axis), P(), P(), P(), P(), P(), P(axis)),
        out_specs=P(),
    )
    return f(params, batch.x, batch.mask, batch.m, lam, beta, rho, l1, batch.x_input)


def _terms_and_grad(params, batch, lam, beta, rho, l1, *, mesh, output, method):
    dtype = params.W1.dtype
    lam, beta, rho = (jnp.asarray(v, dtype) for v in (lam, beta, rho))
    l1 = None if l1 is None else jnp.asarray(l1, dtype)
    if method == "jit":
        return _gspmd(params, batch, lam, beta, rho, l1, output=output)
    return _shard_map(params, batch, lam, beta, rho, l1, mesh=mesh, output=output)


_terms_and_grad_jit = jax.jit(_terms_and_grad, static_argnames=("mesh", "output", "method"))


def _mesh_of(batch: ShardedBatch) -> Mesh:
    sharding = batch.x.sharding
    if not isinstance(sharding, NamedSharding):
        raise InputError("batch.x must carry a NamedSharding (build the batch with shard_batch(x, mesh))")
    return sharding.mesh


@entry()
def shard_map_cost_terms_and_grad(
    params: Params, batch: ShardedBatch, *, lam: ArrayLike, beta: ArrayLike, rho: ArrayLike, output: Output = "sigmoid",
    l1: ArrayLike | None = None, x_input: jax.Array | None = None,
) -> tuple[CostTerms, Params]:
    r"""``(CostTerms, grads)`` by ``jax.shard_map``: local :math:`\sum a^{(2)}`, ``psum`` → global
    :math:`\hat\rho`, local δ-products, ``psum``, divide by the global m.

    The mesh is the one ``batch`` was sharded over. Results are replicated. Equal to
    :func:`sae_jax.cost_terms_and_grad` on the unpadded data (float64 ≤ 1e-12 relative);
    ``l1=``, tied parameters and denoising (``x_input=``) as :func:`sharded_cost_terms_and_grad`.

    Examples:
      >>> import jax, numpy as np
      >>> import sae_jax
      >>> from sae_jax import init_params
      >>> from sae_jax.scale import batch_mesh, shard_batch, shard_map_cost_and_grad, shard_map_cost_terms_and_grad
      >>> p = init_params(jax.random.key(0), 8, 3)
      >>> x = np.random.default_rng(0).uniform(size=(10, 8)).astype(np.float32)
      >>> batch = shard_batch(x, batch_mesh())  # rows over every device, padded
      >>> terms, g = shard_map_cost_terms_and_grad(p, batch, lam=1e-4, beta=3.0, rho=0.1)
      >>> float(batch.m), bool(g.W1.sharding.is_fully_replicated)
      (10.0, True)
      >>> x_tilde = sae_jax.corrupt(jax.random.key(1), batch.x, kind="mask", level=0.3)  # on the devices
      >>> J, g = shard_map_cost_and_grad(p, batch, x_input=x_tilde, lam=1e-4, beta=3.0, rho=0.1)
    """
    batch = _check(params, batch, lam=lam, beta=beta, rho=rho, output=output, l1=l1, x_input=x_input)
    mesh = _mesh_of(batch)
    return _terms_and_grad_jit(params, batch, lam, beta, rho, l1, mesh=mesh, output=output, method="shard_map")


@entry(keywords_of=shard_map_cost_terms_and_grad)
def shard_map_cost_and_grad(params: Params, batch: ShardedBatch, **kwargs) -> tuple[jax.Array, Params]:
    """``(J, grads)`` like :func:`sae_jax.cost_and_grad`; see :func:`shard_map_cost_terms_and_grad`."""
    terms, grads = shard_map_cost_terms_and_grad(params, batch, **kwargs)
    return terms.cost, grads


def make_sharded_value_and_grad(
    mesh: Mesh, x, *, lam: ArrayLike, beta: ArrayLike, rho: ArrayLike, output: Output = "sigmoid",
    method: str = "shard_map", process_local: bool = False, l1: ArrayLike | None = None, x_input=None,
) -> Callable[[Params], tuple[jax.Array, Params]]:
    """Shard ``x`` once and return ``value_and_grad(params) -> (J, grads)``, jit-able, for a trainer.

    The returned function has the shape of :func:`sae_jax.cost_and_grad` with the data bound,
    so it plugs into any ``params -> (value, grads)`` seam (e.g. :func:`sae_jax.optim.lbfgs_loop`
    with ``traced=True``, or optax L-BFGS inside ``jit``). It can be called eagerly or traced.

    Args:
      mesh: a 1-D mesh (:func:`batch_mesh`).
      x: ``(m, n_visible)`` data (this process's rows if ``process_local``).
      lam, beta, rho, output: as for :func:`sae_jax.cost`.
      method: ``"shard_map"`` (explicit psum) or ``"jit"`` (partitioner).
      l1: the L1 activation penalty's weight (:func:`sae_jax.cost`); tied parameters work as there.
      x_input: denoising: the corrupted input, ``x``'s shape (:func:`shard_batch`); one fixed corruption.

    Returns:
      ``value_and_grad(params) -> (J, grads)``, with ``grads`` replicated over ``mesh``; its
      ``.batch`` attribute is the :class:`ShardedBatch`.

    Examples:
      >>> import jax, numpy as np
      >>> import sae_jax
      >>> from sae_jax.scale import batch_mesh, make_sharded_value_and_grad
      >>> p = sae_jax.init_params(jax.random.key(0), 8, 3)
      >>> x = np.random.default_rng(0).uniform(size=(10, 8)).astype(np.float32)
      >>> vg = make_sharded_value_and_grad(batch_mesh(), x, lam=1e-4, beta=3.0, rho=0.1)
      >>> J, g = vg(p)                                  # global rho_hat over every device's rows
      >>> J_ref, _ = sae_jax.cost_and_grad(p, x, lam=1e-4, beta=3.0, rho=0.1)
      >>> bool(abs(J - J_ref) <= 1e-5 * abs(J_ref)), g.W1.shape
      (True, (3, 8))
    """
    if method not in ("shard_map", "jit"):
        raise InputError(f"method must be 'shard_map' or 'jit', got {method!r}")
    validate.check_output(output)
    validate.check_hyperparams(lam=lam, beta=beta, rho=rho, dtype=np.asarray(x).dtype, l1=l1)
    batch = shard_batch(x, mesh, output=output, process_local=process_local, x_input=x_input)

    def value_and_grad(params: Params) -> tuple[jax.Array, Params]:
        if validate.is_concrete(params.W1):
            params = replicate(params, mesh)
        terms, grads = _terms_and_grad_jit(params, batch, lam, beta, rho, l1, mesh=mesh, output=output, method=method)
        return terms.cost, grads

    value_and_grad.batch = batch  # the sharded data, for inspection
    return value_and_grad


def make_train_value_and_grad(
    mesh: Mesh, *, lam: ArrayLike, beta: ArrayLike, rho: ArrayLike, output: Output = "sigmoid",
    l1: ArrayLike | None = None,
) -> Callable:
    r"""The full-batch objective for :func:`sae_jax.training.train`'s ``value_and_grad_fn`` seam, data-parallel.

    Returns ``value_and_grad_fn(params, x) -> ((J, CostTerms), grads)`` (the convention of
    ``jax.value_and_grad(f, has_aux=True)`` that ``train``'s step takes), for an
    **unsharded** ``x`` of any m: inside the trace it pads ``x`` with masked zero rows to a
    multiple of ``mesh.size``, splits the rows over the mesh and runs the ``shard_map`` /
    ``psum`` evaluation (global :math:`\hat\rho`, global m). XLA moves ``x`` onto the mesh
    once per dispatch of the caller's jitted loop. Equal to the one-device manual objective.
    Denoising: ``x`` may be a ``DenoisingBatch`` ``(x, x_input)`` (what
    ``train`` passes when ``config.corruption`` is set: a fresh corruption per step, drawn from
    the seed and the step as on one device); ``x_input`` is padded and split alike.

    ``train(x, cfg, value_and_grad_fn=make_train_value_and_grad(batch_mesh("all"), lam=cfg.lam,
    beta=cfg.beta, rho=cfg.rho, output=cfg.output, l1=cfg.l1 or None))`` is the CLI's ``--devices all``.

    Full batch only (L-BFGS, or Adam/SGD with ``rho_hat="batch"``: then each minibatch's own
    :math:`\hat\rho` is what is sharded, as on one device).

    Examples:
      >>> import jax, numpy as np
      >>> import sae_jax
      >>> from sae_jax.scale import batch_mesh, make_train_value_and_grad
      >>> p = sae_jax.init_params(jax.random.key(0), 8, 3)
      >>> x = jax.numpy.asarray(np.random.default_rng(0).uniform(size=(10, 8)).astype(np.float32))
      >>> fn = make_train_value_and_grad(batch_mesh(), lam=1e-4, beta=3.0, rho=0.1)
      >>> (J, terms), g = jax.jit(fn)(p, x)             # x unsharded, any m: padded and split inside
      >>> J_ref, _ = sae_jax.cost_and_grad(p, x, lam=1e-4, beta=3.0, rho=0.1)
      >>> bool(abs(J - J_ref) <= 1e-5 * abs(J_ref)), terms.rho_hat.shape
      (True, (3,))
    """
    axis = _axis(mesh)
    validate.check_output(output)
    validate.check_hyperparams(lam=lam, beta=beta, rho=rho, l1=l1)

    def value_and_grad_fn(params, batch):
        x_in = getattr(batch, "x_input", None)  # a DenoisingBatch (x, x_input), or the data x
        x = batch if x_in is None else batch.x
        m, dtype = x.shape[0], params.W1.dtype
        l1_ = None if l1 is None else jnp.asarray(l1, dtype)
        rows, rows_sharding = -(-m // mesh.size) * mesh.size, NamedSharding(mesh, P(axis, None))

        def place(a):  # in params' dtype (a line search's float64 trial points), padded, split by rows
            return lax.with_sharding_constraint(pad_rows(jnp.asarray(a, dtype), rows)[0], rows_sharding)

        mask = lax.with_sharding_constraint(pad_rows(x, rows, dtype=dtype)[1], NamedSharding(mesh, P(axis)))
        batch = ShardedBatch(place(x), mask, jnp.asarray(m, dtype), None if x_in is None else place(x_in))
        terms, grads = _shard_map(
            params, batch, *(jnp.asarray(v, dtype) for v in (lam, beta, rho)), l1_, mesh=mesh, output=output
        )
        return (terms.cost, terms), grads

    value_and_grad_fn.__doc__ = f"sae-jax objective (manual gradient, data-parallel over {mesh.size} devices)"
    return value_and_grad_fn
