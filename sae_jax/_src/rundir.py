r"""A run directory: every file a training run reads or writes, in one place.

::

    config.json            the TrainConfig (steps = the run's total), data spec and hash, version
    checkpoint.safetensors the last finite state, checksummed (sae_jax._src.checkpoint), resumable
    metrics.jsonl          one JSON row per chunk (step, cost and its terms, diagnostics, timing)
    params.safetensors     the final parameters (numpy-loadable), at the end
    filters.png            the learned filters, at the end (square n_visible, or patch_shape)
    training_curve.png     cost and rho_hat per chunk, at the end

:meth:`RunDir.open` opens a fresh directory (refusing one that holds a checkpoint) or resumes
one (its checkpoint read and verified, the asked-for config reconciled with the saved one);
it writes nothing, so bad input leaves the disk untouched. :meth:`RunDir.start` writes
``config.json``, the metrics kept from before the checkpoint and a fresh run's step-0
checkpoint; :meth:`RunDir.log` appends a metrics row; :meth:`RunDir.save_checkpoint` writes a
state the trainer checked to be finite, when :meth:`RunDir.checkpoint_due` says so;
:meth:`RunDir.finish` writes the parameters and pictures. A ``RunDir`` without a path (an
in-memory run) keeps the metrics rows and writes nothing. Every write is atomic
(:mod:`sae_jax._src.checkpoint`), so a kill at any moment leaves a directory that resumes.

One run per directory: :meth:`RunDir.open` (or :meth:`RunDir.start`, for a directory it
creates) takes the directory's :class:`DirLock` and :meth:`RunDir.finish` releases it; a second
run (``train``, a resume, a ``sweep``) on a directory in use is refused with an
:class:`~sae_jax.InputError`. The operating system drops the lock when a process dies, so a
crashed or killed run leaves none behind. :meth:`RunDir.open` also checks that the directory
can be written (:func:`check_writable`) before any work. An OS error writing during the run
(a full disk at a checkpoint) is a :class:`~sae_jax.training.WriteError` naming the file and
the last good checkpoint, which stays intact.

Examples:
  >>> import tempfile, pathlib
  >>> from sae_jax.training import TrainConfig
  >>> from sae_jax.training import RunDir
  >>> d = pathlib.Path(tempfile.mkdtemp()) / "run"
  >>> run = RunDir.open(d, TrainConfig(dtype="float32"))
  >>> run.config.n_hidden, d.exists()
  (25, False)
  >>> RunDir.open(d, resume=True)
  Traceback (most recent call last):
  ...
  sae_jax.InputError: checkpoint '.../run/checkpoint.safetensors' does not exist
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import tempfile
import weakref
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import checkpoint as ckpt
from . import display
from .config import RESUMABLE_FIELDS, TrainConfig, validate_config
from .loop import TrainState
from .params import Params
from .validate import InputError, check_params
from .version import __version__

__all__ = ["RunDir", "DirLock", "lock_dir", "check_run_dir", "check_writable", "check_patch_shape", "read_metrics",
           "atomic_picture"]

_PICTURES = ("filters.png", "training_curve.png")


def check_run_dir(run_dir: Path, what: str = "run directory") -> None:
    """``run_dir`` is a directory or can be created as one (no file at it or above it)."""
    run_dir = Path(run_dir)
    for p in (run_dir, *run_dir.parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == run_dir else f"is below {str(p)!r}, which is a file"
                raise InputError(f"{what} {str(run_dir)!r} {where}; choose a directory")
            return


def check_writable(path: Path, what: str = "run directory") -> None:
    """Files can be created in ``path`` (a directory, or one to be created: then in its nearest
    existing ancestor), else :class:`~sae_jax.InputError` naming ``path`` and the OS's reason.

    The check creates and removes an empty temp file, so it sees what a write would see (a
    read-only file system, permissions, ACLs; ``os.access`` answers yes to root for all of them).
    Run before any long computation: a run that cannot write its results fails at once. A
    file in the way is left to :func:`check_run_dir`.
    """
    path = Path(path)
    d = path
    while not d.exists() and d != d.parent:
        d = d.parent
    if not d.is_dir():
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=".sae-jax-write-test.", suffix=".tmp", dir=d)
    except OSError as e:
        where = "" if d == path else f" (cannot create it in {str(d)!r})"
        raise InputError(
            f"{what} {str(path)!r} is not writable{where}: {e.strerror or e}; choose another directory"
        ) from None
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:  # pragma: no cover
        pass


_LOCKS: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()  # (st_dev, st_ino) -> this process's DirLock


class DirLock:
    """An exclusive advisory lock (``flock``) on a directory, for the life of the run writing it.

    The operating system drops it when the process ends, however it ends (a crash, SIGKILL), so
    a killed run never leaves a stale lock; :meth:`release` (or garbage collection of the
    holder) drops it earlier. Nothing is written: the lock is on the directory itself.

    Limits: within one process a later :func:`lock_dir` of the same directory takes the lock
    over (sequential calls, e.g. a resume after a caught divergence; threads of one process are
    not kept apart). Where ``flock`` is missing (Windows) or refused (some network file systems:
    NFS emulates it with byte-range locks, which a directory cannot take), the run goes on
    unlocked (``locked`` is False).
    """

    def __init__(self, fd: int | None, key, locked: bool):
        self.locked = locked
        self._key = key
        self._finalizer = weakref.finalize(self, _close_lock, fd)

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        self._finalizer()
        if _LOCKS.get(self._key) is self:
            del _LOCKS[self._key]


def _close_lock(fd) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:  # pragma: no cover
            pass


def lock_dir(path: Path, what: str = "run directory") -> DirLock:
    """Take the :class:`DirLock` of an existing directory ``path``, or raise
    :class:`~sae_jax.InputError` (``"... is in use by another process ..."``) if another process
    holds it: two runs must never write one directory (their metrics would interleave and the
    last writer would win the other files)."""
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no flock
        return DirLock(None, None, False)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        raise InputError(f"cannot open {what} {str(path)!r}: {e.strerror or e}") from None
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    held = _LOCKS.get(key)
    if held is not None:  # this process holds it already (an earlier run object): hand it over
        held.release()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise InputError(
                f"{what} {str(path)!r} is in use by another process (a sae-jax run holds its lock); "
                "wait for that run to end or choose another directory"
            ) from None
        lock = DirLock(fd, key, False)  # flock not supported here (e.g. NFS): go on unlocked
    else:
        lock = DirLock(fd, key, True)
    _LOCKS[key] = lock
    return lock


def check_patch_shape(patch_shape, n_visible: int):
    """``patch_shape`` for filters.png: ``None`` or ``(rows, cols)`` with ``rows * cols == n_visible``."""
    if patch_shape is None:
        return None
    try:
        shape = tuple(int(v) for v in patch_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 2 or shape[0] * shape[1] != n_visible or min(shape) < 1:
        raise InputError(
            f"patch_shape must be (rows, cols) with rows*cols == n_visible={n_visible}, got {patch_shape!r}"
        )
    return shape


def read_metrics(path: Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` (none if it is missing); a torn last line is dropped."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except (ValueError, RecursionError):  # RecursionError: a crafted, deeply nested line
                break  # a torn last line from a kill mid-append: drop it
    return rows


def atomic_picture(path: Path, draw: Callable[[Path], object]) -> None:
    """``draw(tmp)`` a PNG to a temp file next to ``path``, then rename it over ``path``."""
    tmp = path.parent / f".{path.name}.tmp.png"
    try:
        draw(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


class RunDir:
    """The run directory of one training run (``path=None``: in memory, nothing is written).

    Attributes:
      path: the directory, or None.
      config: the run's :class:`~sae_jax.training.TrainConfig` (a resume's reconciled one).
      metrics: the metrics rows so far (those kept from before a resumed checkpoint, then each
        :meth:`log`-ged one).
      checkpoint_step: the step of the last checkpoint on disk (None in memory or before
        :meth:`start`).
    """

    def __init__(self, path, config: TrainConfig, *, checkpoint: tuple[dict, dict] | None = None,
                 lock: DirLock | None = None):
        self.path = None if path is None else Path(path)
        self._lock = lock  # the directory's DirLock, from open() (an existing directory) or start()
        self.config = config
        self.metrics: list[dict] = []
        self.checkpoint_step: int | None = None
        self._checkpoint = checkpoint  # (tensors, meta) of the checkpoint a resume continues
        self._doc: dict = {}  # config.json; its fields also go into the checkpoint

    # ---- opening: reads and checks, writes nothing ------------------------------------

    @classmethod
    def open(cls, path, config: TrainConfig | None = None, *, resume: bool = False) -> "RunDir":
        """A fresh run directory (``path`` may be None) or, with ``resume``, the one to continue.

        On resume, ``config=None`` takes the checkpoint's config; a given one must equal it
        except for ``steps``, ``chunk`` and ``checkpoint_every``, and ``steps`` must not be below
        the checkpoint's step. A fresh directory must not hold a checkpoint. The config is
        validated either way (:class:`~sae_jax.InputError`).
        """
        path = None if path is None else Path(path)
        if resume and path is None:
            raise InputError("resume=True needs run_dir (the directory of the run to continue)")
        lock = None
        if path is not None:
            check_run_dir(path)
            if path.is_dir():  # held from here to the end of the run (another run's: refused)
                lock = lock_dir(path)
        try:
            return cls._open(path, config, resume, lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    @classmethod
    def _open(cls, path, config, resume, lock) -> "RunDir":
        if not resume:
            config = TrainConfig() if config is None else config
            if path is not None:
                if (path / ckpt.CHECKPOINT_NAME).exists():
                    raise InputError(
                        f"run directory {str(path)!r} already holds a checkpoint; resume it or choose another directory"
                    )
                check_writable(path)
            validate_config(config)
            return cls(path, config, lock=lock)
        tensors, meta = ckpt.load_checkpoint(path / ckpt.CHECKPOINT_NAME)
        check_writable(path)
        saved = TrainConfig.from_dict(meta["config"])
        if config is not None:
            validate_config(config)
            diff = [f.name for f in dataclasses.fields(TrainConfig)
                    if f.name not in RESUMABLE_FIELDS and getattr(config, f.name) != getattr(saved, f.name)]
            if diff:
                raise InputError(
                    f"cannot resume {str(path)!r} with a different config: "
                    + ", ".join(f"{k}={getattr(config, k)!r} (checkpoint has {getattr(saved, k)!r})" for k in diff)
                )
            saved = dataclasses.replace(saved, **{k: getattr(config, k) for k in RESUMABLE_FIELDS})
        if saved.steps < meta["step"]:
            raise InputError(
                f"cannot resume {str(path)!r} to steps={saved.steps}: its checkpoint is already at "
                f"step {meta['step']} (a resume only continues a run; pass steps >= {meta['step']}, "
                "or train a new run)"
            )
        validate_config(saved)
        return cls(path, saved, checkpoint=(tensors, meta), lock=lock)

    @property
    def resuming(self) -> bool:
        return self._checkpoint is not None

    def data_source(self, x, data_spec):
        """``(x, data_spec)`` to train on: a resume without them uses the checkpoint's data spec."""
        if not self.resuming:
            return x, data_spec
        if data_spec is None:
            data_spec = self._checkpoint[1]["data_spec"]
        if x is None and data_spec is None:
            raise InputError(
                f"checkpoint {str(self.path)!r} has no data spec (it was trained on an in-memory "
                f"array): pass the same x again"
            )
        return x, data_spec

    def checkpoint_state(self, template: TrainState, data_sha256: str) -> TrainState:
        """The resumed checkpoint's state, checked against ``template`` (the config's fresh state
        on the same data) and the data's SHA-256."""
        tensors, meta = self._checkpoint
        path = self.path / ckpt.CHECKPOINT_NAME
        if meta["data_sha256"] != data_sha256:
            raise InputError(
                f"the data differ from those {str(self.path)!r} was trained on (SHA-256 mismatch); "
                f"resume with the same data"
            )
        t_leaves, treedef = jax.tree.flatten(template.opt_state)
        if meta["n_opt_leaves"] != len(t_leaves):
            raise InputError(
                f"checkpoint {str(path)!r} has {meta['n_opt_leaves']} optimizer-state arrays, "
                f"the configured optimizer has {len(t_leaves)} (a checkpoint from another optimizer "
                "layout, e.g. L-BFGS checkpoints written before sae_jax._src.lbfgs, cannot be resumed)"
            )
        leaves = []
        for i, t in enumerate(t_leaves):
            a = tensors[f"opt/{i:05d}"]
            if a.shape != tuple(t.shape) or a.dtype != t.dtype:
                raise InputError(
                    f"checkpoint {str(path)!r}: optimizer-state array {i} has shape {a.shape} and dtype "
                    f"{a.dtype}, expected {tuple(t.shape)} {t.dtype}"
                )
            leaves.append(jnp.asarray(a))
        params = ckpt.checkpoint_params(tensors)
        check_params(params)
        if (params.W2 is None) != (template.params.W2 is None):  # pragma: no cover - config.tied is compared first
            raise InputError(f"checkpoint {str(path)!r}: tied parameters do not match the config's tied")
        for name, a, t in zip(Params._fields, params, template.params):
            if a is not None and (a.shape != t.shape or a.dtype != t.dtype):
                raise InputError(
                    f"checkpoint {str(path)!r}: params.{name} has shape {a.shape} {a.dtype}, "
                    f"expected {t.shape} {t.dtype}"
                )
        rho_ema = None if template.rho_ema is None else jnp.asarray(tensors["rho_ema"])
        return TrainState(jax.tree.map(jnp.asarray, params), jax.tree.unflatten(treedef, leaves),
                          jnp.asarray(meta["step"], jnp.int32), jnp.asarray(tensors["key"]), rho_ema)

    # ---- writing: from start() on --------------------------------------------------------

    def start(self, state: TrainState, *, steps: int, data) -> None:
        """Create the directory and write ``config.json`` (``steps``: the run's total), the
        metrics kept from before the checkpoint (rows past it belong to a lost tail) and, for a
        fresh run, the checkpoint of ``state``. ``data``: the run's
        :class:`~sae_jax._src.inputs.TrainingData`. Stale temp files of a killed writer are removed."""
        self.config = dataclasses.replace(self.config, steps=steps)
        self._doc = {
            "config": self.config.to_dict(), "data_spec": data.spec, "n_visible": data.n_visible,
            "n_samples": data.n_samples, "n_validation": 0 if data.x_val is None else int(data.x_val.shape[0]),
            "data_sha256": data.sha256, "sae_jax_version": __version__,
        }
        if self.path is None:
            return
        self.checkpoint_step = int(state.step)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create run directory {str(self.path)!r}: {e.strerror or e}") from None
        if self._lock is None:  # a directory created now: lock it, then look again (another run may have begun)
            self._lock = lock_dir(self.path)
            if not self.resuming and (self.path / ckpt.CHECKPOINT_NAME).exists():
                self.close()
                raise InputError(
                    f"run directory {str(self.path)!r} already holds a checkpoint (another run wrote it "
                    "meanwhile); resume it or choose another directory"
                )
        names = (ckpt.CHECKPOINT_NAME, ckpt.PARAMS_NAME, ckpt.CONFIG_NAME, ckpt.METRICS_NAME)
        for pattern in [f".{n}.*.tmp" for n in names] + [f".{n}.tmp.png" for n in _PICTURES]:
            for f in self.path.glob(pattern):
                f.unlink(missing_ok=True)
        self.write_config(self._doc)
        if self.resuming:
            self.metrics = [r for r in read_metrics(self.path / ckpt.METRICS_NAME) if r.get("step", 0) <= state.step]
        self.write_metrics(self.metrics)
        if not self.resuming:
            self.save_checkpoint(state)

    def close(self) -> None:
        """Release the directory's lock (:class:`DirLock`); :meth:`finish` does it at the end of a run."""
        if self._lock is not None:
            self._lock.release()

    @contextlib.contextmanager
    def _mid_run(self):
        """An OS error writing during the run (a full disk at a checkpoint...): a
        :class:`~sae_jax.training.WriteError` with ``exit_code`` 1 naming the last good checkpoint,
        which the atomic writes leave intact."""
        try:
            yield
        except ckpt.WriteError as e:
            e.note, e.exit_code = self.kept_note(), 1
            raise

    def log(self, row: dict) -> None:
        """Append a metrics row (to :attr:`metrics` and ``metrics.jsonl``)."""
        self.metrics.append(row)
        if self.path is not None:
            f = self.path / ckpt.METRICS_NAME
            with self._mid_run():
                try:
                    with open(f, "a") as out:
                        out.write(json.dumps(row) + "\n")
                        out.flush()
                except OSError as e:  # a torn row is dropped on resume (read_metrics)
                    raise ckpt.WriteError(f, "metrics", e) from None

    def write_metrics(self, rows: list[dict]) -> None:
        """Write ``metrics.jsonl`` whole, atomically (a RunDir with a path)."""
        ckpt.atomic_write_text(self.path / ckpt.METRICS_NAME, "".join(json.dumps(r) + "\n" for r in rows),
                               what="metrics")

    def write_config(self, doc: dict) -> None:
        """Write ``config.json`` atomically (a RunDir with a path)."""
        ckpt.atomic_write_text(self.path / ckpt.CONFIG_NAME, json.dumps(doc, indent=2) + "\n", what="run config")

    def checkpoint_due(self, step: int) -> bool:
        """Whether a checkpoint is due at ``step`` (a multiple of ``checkpoint_every`` passed since
        the last one, or the end of the run); never for an in-memory run."""
        every = self.config.checkpoint_every
        return self.path is not None and (step // every > self.checkpoint_step // every or step == self.config.steps)

    def save_checkpoint(self, state: TrainState) -> None:
        """Checkpoint ``state`` (the caller checked it finite: a checkpoint is always resumable).

        A failed write (full disk...) leaves the previous checkpoint as it was and raises a
        :class:`~sae_jax.training.WriteError` naming it (exit code 1)."""
        if self.path is not None and self.checkpoint_step is not None and self.checkpoint_step != int(state.step):
            with self._mid_run():
                self._save_checkpoint(state)
        elif self.path is not None:
            self._save_checkpoint(state)  # the run's first checkpoint, in start(): nothing is lost yet

    def _save_checkpoint(self, state: TrainState) -> None:
        if self.path is not None:
            ckpt.save_checkpoint(
                self.path / ckpt.CHECKPOINT_NAME, params=state.params, opt_leaves=jax.tree.leaves(state.opt_state),
                step=int(state.step), key_data=state.key, rho_ema=state.rho_ema, config=self._doc["config"],
                data_spec=self._doc["data_spec"], data_sha256=self._doc["data_sha256"],
                extra={"n_visible": self._doc["n_visible"], "n_samples": self._doc["n_samples"]},
            )
            self.checkpoint_step = int(state.step)

    def kept_note(self) -> str:
        """``"; the last good checkpoint (step N) in DIR is kept"`` for a divergence message ("" in memory)."""
        if self.path is None:
            return ""
        return f"; the last good checkpoint (step {self.checkpoint_step}) in {str(self.path)!r} is kept"

    def save_params(self, params: Params, config: dict, *, step: int) -> None:
        """Write ``params.safetensors`` with ``config`` (plus ``n_visible`` and ``step``) as metadata
        (a RunDir with a path; :func:`sae_jax.training.sweep` writes each setting's directory so)."""
        ckpt.save_params(self.path / ckpt.PARAMS_NAME, params,
                         config={**config, "n_visible": int(params.W1.shape[1]), "step": int(step)})

    def finish(self, state: TrainState, *, pictures: bool = True, patch_shape=None) -> list[str]:
        """The end of a run: the last checkpoint (if not yet written), the parameters and, with
        ``pictures``, ``filters.png`` and ``training_curve.png``. A picture that cannot be drawn
        is skipped: one note per skipped picture is returned (never fatal). Releases the
        directory's lock."""
        if self.path is None:
            return []
        if self.checkpoint_step != int(state.step):
            self.save_checkpoint(state)
        with self._mid_run():
            self.save_params(state.params, self.config.to_dict(), step=int(state.step))
        notes = self._draw_pictures(state.params, patch_shape) if pictures else []
        self.close()
        return notes

    def _draw_pictures(self, params: Params, patch_shape) -> list[str]:
        notes = []
        n_visible, c = int(params.W1.shape[1]), self.config
        if patch_shape is None and math.isqrt(n_visible) ** 2 != n_visible:
            notes.append(
                f"filters.png not drawn: n_visible={n_visible} is not a square; pass patch_shape=(rows, cols) "
                f"(sae-jax: --patch-shape ROWSxCOLS) to draw each filter as a rows x cols patch"
            )
        else:
            notes += self._try_picture("filters.png", lambda p: display.save_filters_png(
                np.asarray(params.W1), p, patch_shape=patch_shape, title=f"{c.n_hidden} hidden units"))
        if self.metrics:
            notes += self._try_picture(
                "training_curve.png", lambda p: display.save_training_curve_png(self.metrics, p, rho=c.rho))
        return notes

    def _try_picture(self, name: str, draw) -> list[str]:
        try:
            atomic_picture(self.path / name, draw)
        except Exception as e:  # noqa: BLE001 - a picture never costs the trained result
            return [f"{name} not drawn: {type(e).__name__}: {e}"]
        return []
