"""``sae-jax visualize | encode | evaluate``: what a trained run gives back.

Each takes PATH (a run directory, ``params.safetensors`` or ``checkpoint.safetensors``) and writes
one file atomically: ``filters.png`` (rows of ``W1`` as patches), a ``.npy`` of the hidden
activations ``a2 = sigmoid(x W1^T + b1)`` of shape ``(m, n_hidden)``, or ``evaluation.png`` with
the diagnostics table of :mod:`sae_jax.metrics`. ``encode`` and ``evaluate`` default to the data
the run was trained on (:func:`recorded_data_spec`). ``evaluate`` prints one ``warning`` line to
stderr when :func:`sae_jax.metrics.health_warning` finds most units dead or saturated, or a
reconstruction no better than the mean predictor's on the same rows (exit status still 0).

Examples:
  >>> from sae_jax.cli import build_parser
  >>> args = build_parser().parse_args(["encode", "runs/digits", "--out", "features.npy", "--n-patches", "7"])
  >>> (args.params, args.out, args.data, args.n_patches)
  ('runs/digits', 'features.npy', None, 7)
  >>> build_parser().parse_args(["visualize", "runs/x", "--patch-shape", "5x10"]).patch_shape
  ['5x10']
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import checkpoint as ckpt
from .. import metrics
from ..config import TrainConfig
from ..data import DataSpec, load_dataset, load_from_spec
from ..display import save_evaluation_png, save_filters_png
from ..forward import encode
from ..rundir import check_writable
from .args import UsageError, data_kwargs, patch_shape_arg, read_safetensors, set_precision

__all__ = [
    "cmd_encode",
    "cmd_evaluate",
    "cmd_visualize",
    "load_run_or_given_data",
    "recorded_data_spec",
]


def _png_out(args, default_name: str) -> Path:
    """``--out``, or ``default_name`` next to PATH: a .png in an existing directory."""
    src = Path(args.params)
    out = Path(args.out) if args.out else (src if src.is_dir() else ckpt.find_params_file(src).parent) / default_name
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must be a .png file, got {str(out)!r}")
    return out


def cmd_visualize(args) -> int:
    params, _ = ckpt.load_params(args.params)
    W1 = np.asarray(params.W1)
    shape = patch_shape_arg(args.patch_shape)
    if shape is not None and shape[0] * shape[1] != W1.shape[1]:
        raise UsageError(f"--patch-shape {shape[0]}x{shape[1]} must multiply to n_visible={W1.shape[1]}")
    if shape is None and int(round(W1.shape[1] ** 0.5)) ** 2 != W1.shape[1]:
        raise UsageError(f"n_visible={W1.shape[1]} is not a square: pass --patch-shape ROWSxCOLS")
    out = _png_out(args, "filters.png")
    if out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a directory; name the .png file to write")
    if not out.parent.is_dir():
        raise UsageError(f"output directory {str(out.parent)!r} does not exist")
    check_writable(out.parent, "output directory")
    tmp = out.with_name(f".{out.name}.tmp.png")
    save_filters_png(W1, tmp, patch_shape=shape, title=f"{W1.shape[0]} hidden units")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


def cmd_encode(args) -> int:
    params, config = ckpt.load_params(args.params)
    out = Path(args.out)
    if out.suffix.lower() != ".npy":
        raise UsageError(f"--out must be a .npy file, got {str(out)!r}")
    if out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a directory; name the .npy file to write")
    if not out.parent.is_dir() and str(out.parent) != "":
        raise UsageError(f"output directory {str(out.parent)!r} does not exist")
    check_writable(out.parent, "output directory")  # before the encoding's work
    x, data_name = load_run_or_given_data(args, config.get("output", "sigmoid"))
    dtype = _check_features(params, x, data_name)
    p = jax.tree.map(jnp.asarray, params)
    a2 = np.asarray(jax.jit(encode)(p, jnp.asarray(x.astype(dtype))))
    buf = io.BytesIO()
    np.save(buf, a2)
    ckpt.atomic_write_bytes(out, buf.getvalue(), what="features")
    print(f"wrote {out}: {a2.shape[0]} samples x {a2.shape[1]} hidden units ({a2.dtype})")
    return 0


def cmd_evaluate(args) -> int:
    params, config = ckpt.load_params(args.params)
    defaults = TrainConfig()
    hp = {k: config.get(k, getattr(defaults, k)) for k in ("lam", "beta", "rho", "output", "l1")}
    hp["l1"] = hp["l1"] or None  # an L1 run's cost includes its term
    out = _png_out(args, "evaluation.png")
    if out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a directory; name the .png file to write")
    if not out.parent.is_dir():
        raise UsageError(f"output directory {str(out.parent)!r} does not exist")
    check_writable(out.parent, "output directory")
    x, data_name = load_run_or_given_data(args, hp["output"])
    dtype = _check_features(params, x, data_name)
    p = jax.tree.map(jnp.asarray, params)
    x = x.astype(dtype)
    frac = float(config.get("validation_fraction", 0.0) or 0.0)
    if args.data is None and frac > 0 and x.shape[0] >= 2:  # the run's own split
        idx_train, idx_val = metrics.split_validation(x.shape[0], frac, int(config.get("seed", 0)))
        parts = {"training rows": x[idx_train], "held out": x[idx_val]}
    else:
        parts = {"data": x}
    columns = {name: metrics.evaluate(p, jnp.asarray(xs), **hp, details=True) for name, xs in parts.items()}
    print(f"sae-jax evaluate: {args.params} on {data_name} (lam={hp['lam']:g} beta={hp['beta']:g} "
          f"rho={hp['rho']:g} output={hp['output']}, {dtype})")
    print(metrics.format_table(columns))
    warned = [name for name, m in columns.items() if m["warning"] is not None]
    if warned:  # one line: the first column's reason, and every column it holds for
        print(f"sae-jax evaluate: warning ({' and '.join(warned)}): {columns[warned[0]]['warning']}",
              file=sys.stderr, flush=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    try:
        save_evaluation_png(columns, tmp, rho=hp["rho"],
                            title=f"{Path(args.params).name}: {params.W1.shape[0]} hidden units on {Path(str(data_name)).name}")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    print(f"wrote {out}")
    return 0


def _check_features(params, x, data_name) -> np.dtype:
    """The parameters' dtype (x64 on for float64), once ``x`` has their n_visible features per row."""
    n = params.W1.shape[1]
    if x.shape[1] != n:
        raise UsageError(f"data {data_name!r} has {x.shape[1]} features per sample, the parameters expect n_visible={n}")
    dtype = np.asarray(params.W1).dtype
    set_precision(dtype)
    return dtype


def recorded_data_spec(path) -> dict | None:
    """The data spec a run recorded: from a checkpoint's metadata, else the run directory's config.json.

    ``path`` is a run directory, ``params.safetensors`` or ``checkpoint.safetensors``. ``None`` when
    the run was trained on an in-memory array (no spec) or nothing is recorded next to ``path``.
    """
    f = ckpt.find_params_file(path)
    if f.name != ckpt.PARAMS_NAME:
        _, md = read_safetensors(f, "params file")
        if md.get("format") == ckpt.FORMAT:
            return ckpt.load_checkpoint(f)[1]["data_spec"]
    conf = f.parent / ckpt.CONFIG_NAME
    if conf.is_file():
        return ckpt.read_run_config(conf).get("data_spec")  # InputError (exit 2) if it is not a sound one
    return None


def load_run_or_given_data(args, output: str):
    """``(x, name)``: ``--data`` if given, else the run's recorded data spec (with any patch/seed/key flags applied)."""
    if args.data is not None:
        return load_dataset(args.data, output=output, **data_kwargs(args)), args.data
    spec = recorded_data_spec(args.params)
    if spec is None:
        raise UsageError(
            f"{args.params!r} records no data spec (trained on an in-memory array, or a params file "
            "outside its run directory): pass --data NAME_OR_PATH"
        )
    spec = DataSpec.from_dict(spec)
    over = {f: v for f, v in (("n_patches", args.n_patches), ("patch_size", args.patch_size),
                              ("seed", args.data_seed), ("key", args.npz_key)) if v is not None}
    spec = spec._replace(**over)
    return load_from_spec(spec, output=output), spec.name
