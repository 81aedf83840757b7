"""What the sae-jax commands share: usage errors, flags from ``TrainConfig``'s metadata, data flags.

A command module adds its flags with these helpers and turns bad input into :class:`UsageError`
(:func:`sae_jax.cli.main` prints it as one line on stderr and exits with code 2).

The training flags are generated from the dataclass (:func:`sae_jax.config.field_help`): for each
field of :class:`~sae_jax.config.TrainConfig`, ``--`` + its name with ``_`` → ``-``, its type, its
choices, and its help with the default appended. A new option is written once, in ``config.py``.

Examples:
  >>> import argparse
  >>> p = argparse.ArgumentParser()
  >>> add_config_flags(p)
  >>> args = p.parse_args(["--n-hidden", "36", "--optimizer", "adam", "--learning-rate", "1e-3"])
  >>> config_overrides(args)  # only the flags given: a resume keeps its checkpoint's other fields
  {'n_hidden': 36, 'optimizer': 'adam', 'learning_rate': 0.001}
  >>> config_flag_help("lam")
  'weight decay lambda (default 1e-4)'
  >>> patch_shape_arg(["5x10"]), patch_shape_arg(["5", "10"])
  ((5, 10), (5, 10))
  >>> value_list("--beta", "0, 1,3")
  [0.0, 1.0, 3.0]
  >>> value_list("--beta", "1,nan")
  Traceback (most recent call last):
  ...
  sae_jax.cli.args.UsageError: --beta values must be finite, got 'nan'
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time

import jax

from ..config import TrainConfig, field_help

# --- Private names of other modules, imported in this one place only (issue 13). The `runlayer`
# split publishes them (sae_jax.rundir.check_run_dir / check_patch_shape); the lead switches these
# lines at merge. `read_safetensors` is used by sae_jax.cli.trained.recorded_data_spec.
from ..checkpoint import _read_safetensors as read_safetensors  # noqa: E402
from ..training import _check_patch_shape as check_patch_shape  # noqa: E402
from ..training import _check_run_dir as check_run_dir  # noqa: E402

__all__ = [
    "CONFIG_FIELDS",
    "UsageError",
    "add_config_flag",
    "add_config_flags",
    "add_data_flags",
    "check_patch_shape",
    "check_run_dir",
    "config_flag_help",
    "config_overrides",
    "data_kwargs",
    "default_out_dir",
    "patch_shape_arg",
    "progress_bar",
    "read_safetensors",
    "set_precision",
    "value_list",
]

# Every TrainConfig field, in the dataclass's order (the order of the flags in --help).
CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))


class UsageError(Exception):
    """Bad command-line input found after parsing: ``main`` prints ``sae-jax CMD: error: ...``, exit 2."""


def _format_default(v) -> str:
    if isinstance(v, float) and v != 0 and abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-")  # 1e-4, not 0.0001
    return f"{v:g}" if isinstance(v, float) else str(v)


def config_flag_help(name: str, *, suffix: str = "") -> str:
    """The help of ``TrainConfig`` field ``name`` (its metadata), ``suffix``, then ``(default X)``."""
    f = field_help(name)
    return f"{f['help']}{suffix} (default {_format_default(f['default'])})"


def add_config_flag(p: argparse.ArgumentParser, name: str, *, use_default: bool = False,
                    comma_separated: bool = False) -> None:
    """Add ``--name`` for ``TrainConfig`` field ``name``: type, choices and help from its metadata.

    The parsed default is ``None`` (the flag was not given), or the field's default with
    ``use_default``. ``comma_separated``: a string of values, as ``sweep --beta 0,1,3`` takes.
    """
    f = field_help(name)
    flag = "--" + name.replace("_", "-")
    if comma_separated:
        p.add_argument(flag, dest=name, default=None, metavar="V1,V2,...",
                       help=config_flag_help(name, suffix=": comma-separated values").replace("%", "%%"))
        return
    p.add_argument(flag, dest=name, type=f["type"], choices=f["choices"],
                   default=f["default"] if use_default else None,
                   help=config_flag_help(name).replace("%", "%%"))


def add_config_flags(p: argparse.ArgumentParser, *, exclude: tuple[str, ...] = ()) -> None:
    """A flag for every ``TrainConfig`` field except ``exclude`` (parsed default ``None``)."""
    for name in CONFIG_FIELDS:
        if name not in exclude:
            add_config_flag(p, name)


def config_overrides(args, *, exclude: tuple[str, ...] = ()) -> dict:
    """``{field: value}`` of the ``TrainConfig`` flags given on the command line."""
    return {name: getattr(args, name) for name in CONFIG_FIELDS
            if name not in exclude and getattr(args, name) is not None}


def set_precision(dtype) -> None:
    """float64 turns on JAX's x64 mode: the only change the CLI makes to JAX's global config."""
    if str(dtype) == "float64":
        jax.config.update("jax_enable_x64", True)


def add_data_flags(p: argparse.ArgumentParser) -> None:
    """``--data`` and the flags that shape it (parsed defaults ``None``: see :func:`data_kwargs`)."""
    p.add_argument(
        "--data", default=None, metavar="NAME_OR_PATH",
        help="natural (whitened natural-image patches, bundled), digits (scikit-learn 8x8), or a "
        ".npy/.npz (rows = samples), MNIST IDX or IMAGES.mat file",
    )
    p.add_argument("--n-patches", type=int, default=None, help="patches to sample for natural/.mat (default 10000)")
    p.add_argument("--patch-size", type=int, default=None, help="patch side for natural/.mat (default 8)")
    p.add_argument("--data-seed", type=int, default=None, help="seed of the patch sampling (default 0)")
    p.add_argument("--npz-key", default=None, help="array name inside a .npz file")


def data_kwargs(args) -> dict:
    """The data flags as keywords of :func:`sae_jax.data.load_dataset`, defaults filled in."""
    return dict(
        n_patches=10_000 if args.n_patches is None else args.n_patches,
        patch_size=8 if args.patch_size is None else args.patch_size,
        seed=0 if args.data_seed is None else args.data_seed,
        key=args.npz_key,
    )


def patch_shape_arg(values):
    """``--patch-shape``: ``["5x10"]`` or ``["5", "10"]`` -> ``(5, 10)`` (None if not given)."""
    if values is None:
        return None
    parts = values[0].lower().split("x") if len(values) == 1 else list(values)
    try:
        shape = tuple(int(v) for v in parts)
    except ValueError:
        shape = ()
    if len(shape) != 2 or min(shape) < 1:
        raise UsageError(
            f"--patch-shape must be ROWSxCOLS (or ROWS COLS) with positive integers, got {' '.join(values)!r}"
        )
    return shape


def value_list(flag: str, text: str) -> list[float]:
    """``"0,1,3"`` -> ``[0.0, 1.0, 3.0]``: finite numbers, else a :class:`UsageError` naming ``flag``."""
    items = [t.strip() for t in text.split(",")]
    try:
        vals = [float(t) for t in items]
    except ValueError:
        raise UsageError(f"{flag} must be comma-separated numbers (e.g. {flag} 0,1,3), got {text!r}") from None
    bad = [t for t, v in zip(items, vals) if not math.isfinite(v)]
    if bad:
        raise UsageError(f"{flag} values must be finite, got {bad[0]!r}")
    return vals


def default_out_dir(data: str, config: TrainConfig, *, prefix: str = "") -> str:
    """``runs/<prefix><data>-<optimizer>-h<n_hidden>-<timestamp>``, with ``-1``, ``-2``... if taken."""
    stem = os.path.splitext(os.path.basename(data))[0] or "data"
    base = os.path.join(
        "runs", f"{prefix}{stem}-{config.optimizer}-h{config.n_hidden}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    out, i = base, 1
    while os.path.exists(out):
        out, i = f"{base}-{i}", i + 1
    return out


def progress_bar(total: int, *, desc: str, initial: int = 0):
    """A tqdm bar on stderr (tqdm is imported here, when a bar is drawn: it adds ~60 ms to startup)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True, file=sys.stderr)
