r"""Run-directory files: atomic writes, checksummed training checkpoints, parameter export.

Every file is written **atomically**: the bytes go to a temporary file in the same directory,
which is flushed, ``fsync``-ed and then ``os.replace``-d over the target (and the directory is
``fsync``-ed). A kill at any moment leaves either the old file or the new one, never a mix.

Two safetensors files, both loadable with plain numpy (``safetensors.numpy.load_file``) or torch:

``params.safetensors``
    ``W1 (h, n)``, ``b1 (h,)``, ``W2 (n, h)``, ``b2 (n,)`` (UFLDL shapes, :mod:`sae_jax._src.params`);
    the training config as JSON in the header metadata (``"config"``) and a SHA-256 over the
    tensors and metadata (``"sha256"``), which :func:`load_params` verifies (files without one,
    e.g. from other tools, are read unverified).

``checkpoint.safetensors``
    Everything needed to continue training bit for bit: ``params/W1`` … ``params/b2``, the
    optimizer state's leaves ``opt/00000`` … (in ``jax.tree`` order of the optimizer rebuilt
    from the config), ``step``, ``key`` (the data RNG's raw key data), ``rho_ema`` (if the EMA
    estimate is on), and as metadata the config, the data spec, the data's SHA-256 and a
    SHA-256 over all tensors and metadata (``"sha256"``). :func:`load_checkpoint` recomputes it,
    so a truncated or corrupted file raises :class:`~sae_jax.InputError` instead of resuming
    from garbage. The trainer writes a checkpoint only for a state whose full-data cost and
    gradient are finite (through :class:`sae_jax.training.RunDir`, which owns the run directory).

Both are written with the header in a fixed order (metadata keys sorted), so identical
contents are identical files.

Examples:
  >>> import tempfile, pathlib, jax
  >>> from sae_jax import init_params
  >>> from sae_jax.training import load_params, save_params
  >>> d = pathlib.Path(tempfile.mkdtemp())
  >>> p = init_params(jax.random.key(0), 4, 2)
  >>> save_params(d / "params.safetensors", p, config={"n_hidden": 2})
  >>> q, config = load_params(d)
  >>> bool((q.W1 == p.W1).all()), config
  (True, {'n_hidden': 2})
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from .params import Params
from .validate import InputError, check_params

__all__ = [
    "CHECKPOINT_NAME",
    "PARAMS_NAME",
    "CONFIG_NAME",
    "METRICS_NAME",
    "atomic_write_bytes",
    "atomic_write_text",
    "WriteError",
    "os_error_message",
    "save_checkpoint",
    "load_checkpoint",
    "save_params",
    "load_params",
    "find_params_file",
    "read_run_config",
    "read_safetensors",
]

CHECKPOINT_NAME = "checkpoint.safetensors"
PARAMS_NAME = "params.safetensors"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
FORMAT = "sae-jax-checkpoint"
FORMAT_VERSION = "1"
PARAMS_FORMAT = "sae-jax-params"
PARAM_FIELDS = ("W1", "b1", "W2", "b2")
#: The config fields that the commands reading a params file use (``evaluate``'s λ, β, ρ, output,
#: L1 and split; the dtype): validated on load. A params file's config may hold other keys.
PARAMS_CONFIG_FIELDS = ("lam", "beta", "rho", "output", "l1", "validation_fraction", "seed", "dtype", "n_hidden")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class WriteError(OSError):
    """The operating system refused to write a file (no permission, disk full, read-only file
    system...): ``str()`` is one line naming the file and what it holds, ``"cannot write
    checkpoint '/runs/a/checkpoint.safetensors': No space left on device"``, plus ``note``
    (e.g. which checkpoint is kept). ``errno``, ``strerror`` and ``filename`` are the OS error's.

    ``exit_code`` is the ``sae-jax`` exit status it ends a command with: 2 (nothing long has
    run yet), or 1 when it stops a run midway (:class:`sae_jax.training.RunDir` sets it, naming
    the last good checkpoint in ``note``).

    Examples:
      >>> import errno
      >>> e = WriteError("/runs/a/metrics.jsonl", "metrics", OSError(errno.ENOSPC, "No space left on device"))
      >>> str(e), e.errno == errno.ENOSPC, e.exit_code
      ("cannot write metrics '/runs/a/metrics.jsonl': No space left on device", True, 2)
    """

    def __init__(self, path, what: str, cause: OSError, *, note: str = "", exit_code: int = 2):
        super().__init__(cause.errno, cause.strerror or str(cause) or type(cause).__name__, str(path))
        self.what = what
        self.note = note
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"cannot write {self.what} {self.filename!r}: {self.strerror}{self.note}"


def os_error_message(e: OSError) -> str:
    """One line for an OS error: a :class:`WriteError`'s own, else ``"<reason>: '<path>'"``."""
    if isinstance(e, WriteError):
        return str(e)
    reason = e.strerror or str(e) or type(e).__name__
    paths = [repr(str(f)) for f in (e.filename, getattr(e, "filename2", None)) if f is not None]
    return " ".join(f"{reason}: {' -> '.join(paths)}".splitlines()) if paths else " ".join(reason.splitlines())


def atomic_write_bytes(path, data: bytes, *, what: str = "file") -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, ``os.replace``).

    Any OS error (permission, full disk...) leaves ``path`` as it was, removes the temp file and
    is raised as a :class:`WriteError` naming ``path`` and ``what`` it holds."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise WriteError(path, what, e) from None
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the file the usual umask permissions
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise WriteError(path, what, e) from None
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def atomic_write_text(path, text: str, *, what: str = "file") -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"), what=what)


def _digest(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> str:
    h = hashlib.sha256()
    for k in sorted(metadata):
        if k != "sha256":
            h.update(f"{k}={metadata[k]}\n".encode())
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def data_sha256(x) -> str:
    """SHA-256 of an array's dtype, shape and bytes (to check that a resume sees the same data)."""
    a = np.ascontiguousarray(np.asarray(x))
    h = hashlib.sha256(f"{a.dtype.str}|{a.shape}\n".encode())
    h.update(a.tobytes())
    return h.hexdigest()


_ST_DTYPES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
    "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
    "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL",
}


def _serialize(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """The safetensors bytes of ``tensors`` and ``metadata``, in a fixed order.

    ``safetensors.numpy.save`` writes the metadata in hash-map order, which differs between
    processes, so identical runs gave different files. Here the header is built directly: the
    metadata keys sorted, the tensors by decreasing item size then name (safetensors' own
    order, which keeps every tensor aligned), the header padded with spaces to a multiple of
    8 bytes as safetensors pads it. Identical contents give identical bytes.
    """
    arrays = {k: np.asarray(v) for k, v in tensors.items()}  # tobytes() is C order
    order = sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
    header: dict = {"__metadata__": {k: str(metadata[k]) for k in sorted(metadata)}} if metadata else {}
    offset = 0
    chunks = []
    for k in order:
        a = arrays[k]
        if a.dtype.byteorder == ">":  # safetensors is little-endian
            a = a.astype(a.dtype.newbyteorder("<"))
        b = a.tobytes()
        header[k] = {"dtype": _ST_DTYPES[a.dtype.name], "shape": list(a.shape),
                     "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def save_checkpoint(
    path,
    *,
    params: Params,
    opt_leaves: list,
    step: int,
    key_data,
    rho_ema=None,
    config: dict,
    data_spec: dict | None,
    data_sha256: str,
    extra: dict | None = None,
) -> None:
    """Write a full training checkpoint to ``path`` atomically, with a checksum."""
    tensors = {f"params/{k}": np.asarray(v) for k, v in zip(PARAM_FIELDS, params) if v is not None}  # tied: no W2
    for i, leaf in enumerate(opt_leaves):
        tensors[f"opt/{i:05d}"] = np.asarray(leaf)
    tensors["step"] = np.asarray(step, np.int64)
    tensors["key"] = np.asarray(key_data)
    if rho_ema is not None:
        tensors["rho_ema"] = np.asarray(rho_ema)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": str(int(step)),
        "n_opt_leaves": str(len(opt_leaves)),
        "config": json.dumps(config, sort_keys=True),
        "data_spec": json.dumps(data_spec, sort_keys=True),
        "data_sha256": data_sha256,
        "extra": json.dumps(extra or {}, sort_keys=True),
    }
    metadata["sha256"] = _digest(tensors, metadata)
    atomic_write_bytes(path, _serialize(tensors, metadata), what="checkpoint")


def read_safetensors(path, what: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and header metadata of a safetensors file; any failure is an InputError."""
    import safetensors.numpy

    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise InputError(f"{what} {str(path)!r} is not a file")
    data = path.read_bytes()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not a mapping")
        tensors = safetensors.numpy.load(data)
    except Exception as e:  # struct.error, UnicodeDecodeError, JSONDecodeError, SafetensorError...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(
            f"{what} {str(path)!r} is corrupt or truncated (not a readable safetensors file: {msg})"
        ) from None
    return tensors, metadata


def _json_field(md: dict, name: str, where: str, default=None):
    """Metadata field ``name`` parsed as JSON (``default`` if absent); any failure is one InputError."""
    if name not in md:
        if default is not None:
            return default
        raise InputError(f"{where} has no metadata {name!r}")
    try:
        return json.loads(md[name])
    except (ValueError, TypeError) as e:
        raise InputError(f"{where}: metadata {name!r} is not valid JSON ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise InputError(f"{where}: metadata {name!r} is JSON nested too deeply to read") from None


def _int_field(md: dict, name: str, where: str) -> int:
    v = md.get(name)
    if not isinstance(v, str) or not v.isascii() or not v.isdigit() or len(v) > 19:
        raise InputError(f"{where}: metadata {name!r} must be a non-negative integer, got {v!r}")
    return int(v)


def _checked_config(config, where: str, *, fields=None):
    """``config`` (a parsed ``"config"`` field) as a valid :class:`~sae_jax.training.TrainConfig`.

    ``fields``: only these fields are checked (each on top of the defaults), for the free-form
    config of a params file; ``None``: the whole config, as a checkpoint records it."""
    from .config import TrainConfig, validate_config

    if not isinstance(config, dict):
        raise InputError(f"{where}: metadata 'config' must be a JSON object, got {_json_type(config)}")
    try:
        if fields is None:
            cfg = TrainConfig.from_dict(config)
        else:
            cfg = dataclasses.replace(TrainConfig(), **{k: config[k] for k in fields if k in config})
        try:
            validate_config(cfg)
        except InputError as e:
            # The x64 switch is a property of this process, not of the file (the CLI turns it on
            # for a float64 run after reading it); validate_config checks it last, so every field
            # passed when that is the one complaint.
            if str(e) != _x64_complaint(cfg):
                raise
    except (InputError, TypeError, ValueError, OverflowError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{where}: metadata 'config': {msg}") from None
    return cfg


def _x64_complaint(cfg) -> str | None:
    """validate_config's error for a float64 config while JAX's x64 is off (else None)."""
    import jax

    from .config import TrainConfig, validate_config

    if cfg.dtype != "float64" or jax.config.jax_enable_x64:
        return None
    try:
        validate_config(TrainConfig(dtype="float64"))
    except InputError as e:
        return str(e)
    return None


def _json_type(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(v), type(v).__name__)


def _key_layout() -> tuple[tuple, np.dtype]:
    """Shape and dtype of the raw key data a training state keeps (``jax.random.key_data``)."""
    import jax

    k = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
    return tuple(k.shape), np.dtype(k.dtype)


def _check_checkpoint_tensors(tensors: dict, meta: dict, cfg, where: str) -> None:
    """Every tensor of a checkpoint against its metadata and config (shapes, dtypes, values)."""
    n_leaves = meta["n_opt_leaves"]
    expected = {"step", "key"} | {f"opt/{i:05d}" for i in range(n_leaves)}
    expected |= {f"params/{k}" for k in PARAM_FIELDS if k != "W2" or not cfg.tied}
    if cfg.rho_hat == "ema":
        expected.add("rho_ema")
    missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or extra:
        what = f"lacks tensor(s) {missing}" if missing else f"holds unexpected tensor(s) {extra}"
        raise InputError(
            f"{where} {what} for its config (optimizer={cfg.optimizer!r}, tied={cfg.tied}, "
            f"rho_hat={cfg.rho_hat!r}, n_opt_leaves={n_leaves})"
        )
    step = tensors["step"]
    if step.shape != () or step.dtype.kind not in "iu" or int(step) != meta["step"]:
        raise InputError(
            f"{where}: tensor 'step' must be an integer scalar equal to metadata 'step' ({meta['step']}), "
            f"got {step.dtype} {step.shape} {step.tolist()!r}"
        )
    shape, dtype = _key_layout()
    key = tensors["key"]
    if key.shape != shape or key.dtype != dtype:
        raise InputError(
            f"{where}: tensor 'key' must be raw RNG key data of shape {shape} {dtype}, got {key.shape} {key.dtype}"
        )
    params = checkpoint_params(tensors)
    try:
        check_params(params)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    h, dt = params.W1.shape[0], np.dtype(params.W1.dtype)
    if h != cfg.n_hidden or dt != np.dtype(cfg.dtype):
        raise InputError(
            f"{where}: tensor 'params/W1' has shape {params.W1.shape} {dt}, but its config has "
            f"n_hidden={cfg.n_hidden}, dtype={cfg.dtype!r}"
        )
    for i in range(n_leaves):
        a = tensors[f"opt/{i:05d}"]
        if a.dtype.kind == "f" and np.isnan(a).any():
            raise InputError(
                f"{where}: optimizer-state tensor 'opt/{i:05d}' has NaN values; a checkpoint holds only "
                "states from a finite run, so this file was not written by sae-jax training"
            )
    if "rho_ema" in tensors:
        r = tensors["rho_ema"]
        if r.shape != (h,) or r.dtype != dt or not (np.isfinite(r).all() and (r >= 0).all() and (r <= 1).all()):
            raise InputError(
                f"{where}: tensor 'rho_ema' must be the running rho_hat, ({h},) {dt} in [0, 1], got "
                f"{r.shape} {r.dtype}" + ("" if r.dtype.kind != "f" or r.shape != (h,) else " with values outside [0, 1]")
            )


def _check_data_spec(spec, where: str):
    """A recorded data spec: null (an in-memory array) or a valid DataSpec dict."""
    if spec is None:
        return None
    from .data import DataSpec

    try:
        DataSpec.from_dict(spec)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    except TypeError as e:  # pragma: no cover - from_dict checks keys first
        raise InputError(f"{where}: data spec is not valid ({e})") from None
    return spec


def load_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Returns ``(tensors, meta)`` with ``meta`` holding ``step`` (int), ``config`` (dict),
    ``data_spec`` (dict or None), ``data_sha256`` (str), ``extra`` (dict), ``n_opt_leaves`` (int).
    Raises :class:`~sae_jax.InputError` if the file is missing, truncated, corrupted
    (checksum mismatch) or not a sae-jax checkpoint.

    Every field is validated, since a checksum only shows the file is whole, not that it is
    sound (anyone can write one): the config (a valid :class:`~sae_jax.training.TrainConfig`), the
    data spec (``null`` or a valid :class:`~sae_jax.data.DataSpec`), the data's SHA-256, the
    step (a non-negative integer, the same in tensor and metadata), the tensors present exactly
    as the config asks, the parameters (shapes of the config's ``n_hidden``, its dtype, finite),
    the RNG key (raw key data of JAX's layout), the optimizer state (no NaN) and the running
    ρ̂ (finite, in [0, 1]). A failure is one :class:`~sae_jax.InputError` naming the file and
    the field.
    """
    tensors, md = read_safetensors(path, "checkpoint")
    if md.get("format") != FORMAT:
        raise InputError(
            f"checkpoint {str(path)!r} is not a sae-jax training checkpoint (format={md.get('format')!r})"
        )
    if md.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"checkpoint {str(path)!r} has format version {md.get('format_version')!r}, "
            f"this sae-jax reads version {FORMAT_VERSION}"
        )
    if _digest(tensors, md) != md.get("sha256"):
        raise InputError(f"checkpoint {str(path)!r} is corrupt: its SHA-256 checksum does not match")
    where = f"checkpoint {str(path)!r}"
    meta = {
        "step": _int_field(md, "step", where),
        "n_opt_leaves": _int_field(md, "n_opt_leaves", where),
        "config": _json_field(md, "config", where),
        "data_spec": _check_data_spec(_json_field(md, "data_spec", where), where),
        "data_sha256": md.get("data_sha256"),
        "extra": _json_field(md, "extra", where, default={}),
    }
    cfg = _checked_config(meta["config"], where)
    sha = meta["data_sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise InputError(f"{where}: metadata 'data_sha256' must be 64 lowercase hex digits, got {sha!r}")
    if not isinstance(meta["extra"], dict):
        raise InputError(f"{where}: metadata 'extra' must be a JSON object, got {_json_type(meta['extra'])}")
    _check_checkpoint_tensors(tensors, meta, cfg, where)
    return tensors, meta


def checkpoint_params(tensors: dict[str, np.ndarray]) -> Params:
    """The parameters in a checkpoint's tensors (no ``params/W2``: tied, ``W2=None``)."""
    return Params(*(tensors.get(f"params/{k}") for k in PARAM_FIELDS))


def save_params(path, params: Params, *, config: dict | None = None) -> None:
    """Export parameters as safetensors (``W1 b1 W2 b2``, numpy-loadable; tied: ``W1 b1 b2``), atomically."""
    tensors = {k: np.ascontiguousarray(np.asarray(v)) for k, v in zip(PARAM_FIELDS, params) if v is not None}
    metadata = {"format": PARAMS_FORMAT, "config": json.dumps(config or {}, sort_keys=True)}
    metadata["sha256"] = _digest(tensors, metadata)
    atomic_write_bytes(path, _serialize(tensors, metadata), what="parameters")


def _params_from_tensors(tensors, prefix: str, path) -> Params:
    try:  # a file without W2 holds a tied autoencoder's parameters (W2 = W1.T)
        p = Params(*(tensors.get(prefix + k) if k == "W2" else tensors[prefix + k] for k in PARAM_FIELDS))
    except KeyError as e:
        raise InputError(f"{str(path)!r} holds no sae-jax parameters (missing tensor {e.args[0]!r})") from None
    try:
        check_params(p)
    except InputError as e:
        raise InputError(f"{str(path)!r}: {e}") from None
    return p


def read_run_config(path) -> dict:
    """A run directory's ``config.json`` (``path``: the file) as a dict, its ``data_spec`` checked
    (``null`` or a valid :class:`~sae_jax.data.DataSpec`); anything unreadable, not a JSON object
    or nested too deeply is one :class:`~sae_jax.InputError` naming the file and the field.

    Examples:
      >>> import json, pathlib, tempfile
      >>> f = pathlib.Path(tempfile.mkdtemp()) / "config.json"
      >>> _ = f.write_text(json.dumps({"data_spec": {"name": "digits"}}))
      >>> read_run_config(f)["data_spec"]
      {'name': 'digits'}
      >>> _ = f.write_text("[" * 100000 + "]" * 100000)
      >>> read_run_config(f)   # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      sae_jax.InputError: run config '...config.json' is JSON nested too deeply to read (not a run config)
    """
    path = Path(path)
    where = f"run config {str(path)!r}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"cannot read {where}: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{where} is not valid JSON ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise InputError(f"{where} is JSON nested too deeply to read (not a run config)") from None
    if not isinstance(doc, dict):
        raise InputError(f"{where} must be a JSON object, got {_json_type(doc)}")
    _check_data_spec(doc.get("data_spec"), f"{where}: field 'data_spec'")
    return doc


def find_params_file(path) -> Path:
    """A run directory, ``params.safetensors`` or ``checkpoint.safetensors`` → the file to read params from."""
    path = Path(path)
    if path.is_dir():
        for name in (PARAMS_NAME, CHECKPOINT_NAME):
            if (path / name).is_file():
                return path / name
        raise InputError(
            f"run directory {str(path)!r} has neither {PARAMS_NAME} nor {CHECKPOINT_NAME}"
        )
    if not path.exists():
        raise InputError(f"params path {str(path)!r} does not exist (expected a run directory or a .safetensors file)")
    return path


def load_params(path) -> tuple[Params, dict]:
    """Parameters (numpy arrays) and config from a run directory, params file or checkpoint."""
    f = find_params_file(path)
    tensors, md = read_safetensors(f, "params file")
    if md.get("format") == FORMAT:
        tensors, meta = load_checkpoint(f)
        return _params_from_tensors(tensors, "params/", f), meta["config"]
    if "sha256" in md and _digest(tensors, md) != md["sha256"]:
        raise InputError(f"params file {str(f)!r} is corrupt: its SHA-256 checksum does not match")
    where = f"params file {str(f)!r}"
    config = _json_field(md, "config", where, default={})
    _checked_config(config, where, fields=PARAMS_CONFIG_FIELDS)
    return _params_from_tensors(tensors, "", f), config
