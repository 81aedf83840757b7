"""What the sae-jax commands share once their flags are parsed: usage errors and argument helpers.

A command's code turns bad input into :class:`UsageError` (:func:`sae_jax.cli.main` prints it as
one line on stderr and exits with code 2), reads the ``TrainConfig`` flags given with
:func:`config_overrides`, and the data, ``--patch-shape`` and value-list flags with the helpers
here. The flags themselves are defined in :mod:`sae_jax._src.cli.flags`.

Examples:
  >>> from sae_jax.cli import build_parser
  >>> args = build_parser().parse_args(["train", "--n-hidden", "36", "--optimizer", "adam", "--patch-size", "4"])
  >>> config_overrides(args)  # only the flags given: a resume keeps its checkpoint's other fields
  {'n_hidden': 36, 'optimizer': 'adam'}
  >>> data_kwargs(args)
  {'n_patches': 10000, 'patch_size': 4, 'seed': 0, 'key': None}
  >>> patch_shape_arg(["5x10"]), patch_shape_arg(["5", "10"])
  ((5, 10), (5, 10))
  >>> value_list("--beta", "0, 1,3")
  [0.0, 1.0, 3.0]
  >>> value_list("--beta", "1,nan")
  Traceback (most recent call last):
  ...
  sae_jax._src.cli.args.UsageError: --beta values must be finite, got 'nan'
"""

from __future__ import annotations

import math
import os
import sys
import time

import jax

from ..config import TrainConfig
from .flags import CONFIG_FIELDS

from ..checkpoint import read_safetensors
from ..rundir import check_patch_shape, check_run_dir

__all__ = [
    "UsageError",
    "check_patch_shape",
    "check_run_dir",
    "config_overrides",
    "data_kwargs",
    "default_out_dir",
    "patch_shape_arg",
    "progress_bar",
    "read_safetensors",
    "set_precision",
    "value_list",
]


class UsageError(Exception):
    """Bad command-line input found after parsing: ``main`` prints ``sae-jax CMD: error: ...``, exit 2."""


def config_overrides(args, *, exclude: tuple[str, ...] = ()) -> dict:
    """``{field: value}`` of the ``TrainConfig`` flags given on the command line (those the command has)."""
    return {name: getattr(args, name) for name in CONFIG_FIELDS
            if name not in exclude and getattr(args, name, None) is not None}


def set_precision(dtype) -> None:
    """float64 turns on JAX's x64 mode: the only change the CLI makes to JAX's global config."""
    if str(dtype) == "float64":
        jax.config.update("jax_enable_x64", True)


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


def progress_bar(total: int, *, desc: str, initial: int = 0, unit: str = "step"):
    """A tqdm bar on stderr (tqdm is imported here, when a bar is drawn: it adds ~60 ms to startup)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr)
