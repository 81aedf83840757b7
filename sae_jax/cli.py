"""Command-line interface: ``sae-jax`` (or ``python -m sae_jax``).

Example invocations::

    sae-jax train                          # the UFLDL exercise: 8x8 natural patches, 25 hidden, 400 L-BFGS its
    sae-jax train --out runs/digits --data digits --n-hidden 36 --steps 200
    sae-jax train --optimizer adam --learning-rate 1e-2 --batch-size 128 --steps 4000
    sae-jax train --data my_patches.npy --dtype float32 --gradient autodiff
    sae-jax train --resume runs/digits --steps 400     # continue a run (bit-identical to no interruption)
    sae-jax visualize runs/digits                      # filters.png from a run dir / checkpoint / params file
    sae-jax encode runs/digits --out features.npy       # the run's own data (or --data ...)
    sae-jax evaluate runs/digits                       # diagnostics table + evaluation.png
    sae-jax sweep --beta 0,1,3 --rho 0.01,0.05 --steps 200 --out runs/sweep   # 6 settings, one compiled run
    sae-jax gradcheck                      # manual vs jax.grad vs finite differences, UFLDL sizes
    sae-jax gradcheck --m 100 --output linear
    sae-jax check my_sae.py:sparseAutoencoderCost  # test your implementation; names the mistake
    sae-jax check --write-cases cases/             # probe files for MATLAB/Octave/any language

Bad input ends with exit code 2 and one line on stderr (nothing is written; a usage error
points to --help); training that diverges (non-finite cost, gradient or parameters) ends
with exit code 1, naming the step and the checkpoint kept (always a finite state).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]

# Tolerances for the gradcheck verdict (float64): sae_jax.gradcheck.AUTODIFF_TOL and FD_TOL
# (the FD error is relative to ||g_P||, the step eps**(1/5); see sae_jax/gradcheck.py).


def _add_hyperparams(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lam", type=float, default=1e-4, help="weight decay lambda (default 1e-4)")
    p.add_argument("--beta", type=float, default=3.0, help="sparsity weight beta (default 3)")
    p.add_argument("--rho", type=float, default=0.01, help="target activation rho (default 0.01)")
    p.add_argument("--output", choices=("sigmoid", "linear"), default="sigmoid", help="output layer")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and a pointer to ``--help`` (exit code 2).

    Subcommand parsers inherit the class (``add_subparsers`` uses the parent's class)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sae-jax",
        description="The classic KL-sparsity autoencoder in JAX.",
        epilog=__doc__.split("Example invocations::", 1)[1].split("Bad input", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser(
        "gradcheck",
        help="manual backprop vs jax.grad vs finite differences (float64), on every device",
        description="Compare the tutorial's backprop with jax.grad and central finite "
        "differences in float64 on every device JAX sees, and print a table. "
        "Exit status 1 if any error exceeds its tolerance.",
    )
    g.add_argument("--n-visible", type=int, default=64)
    g.add_argument("--n-hidden", type=int, default=25)
    g.add_argument("--m", type=int, default=10_000, help="number of samples (default 10000)")
    g.add_argument("--directions", type=int, default=4, help="random FD directions per array")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--data", choices=("natural", "random"), default="natural",
        help="natural: whitened 8x8 natural-image patches (needs a square --n-visible); "
        "random: uniform in [0, 1] (standard normal for --output linear). Default natural",
    )
    _add_hyperparams(g)
    g.set_defaults(func=_cmd_gradcheck)
    _add_train_commands(sub)
    _add_check_command(sub)
    _add_sweep_command(sub)
    return parser


def _cmd_gradcheck(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)  # only the CLI changes global config
    import jax.numpy as jnp
    import numpy as np

    from .gradcheck import AUTODIFF_TOL, FD_TOL, format_table, gradcheck, row_passes
    from .params import init_params
    from .validate import check_hyperparams, check_output, check_sizes

    check_sizes(n_visible=args.n_visible, n_hidden=args.n_hidden)
    check_hyperparams(lam=args.lam, beta=args.beta, rho=args.rho)
    check_output(args.output)
    if args.m < 1:
        raise _usage(f"--m must be >= 1, got {args.m}")
    if args.directions < 1:
        raise _usage(f"--directions must be >= 1, got {args.directions}")

    key = jax.random.key(args.seed)
    kp, kb, kd = jax.random.split(key, 3)
    params = init_params(kp, args.n_visible, args.n_hidden, dtype=jnp.float64)
    # Nonzero biases, so their gradients are exercised away from the initial point.
    b = 0.1 * jax.random.normal(kb, (args.n_hidden + args.n_visible,), jnp.float64)
    params = params._replace(b1=b[: args.n_hidden], b2=b[args.n_hidden :])
    if args.data == "natural":
        side = int(round(args.n_visible**0.5))
        if side * side != args.n_visible:
            raise _usage(
                f"--data natural needs a square --n-visible (patch_size**2), got {args.n_visible}; "
                f"use --data random"
            )
        from .data import natural_image_patches

        x = natural_image_patches(args.m, side, seed=args.seed)
    else:
        rng = np.random.default_rng(args.seed)
        x = rng.uniform(0.0, 1.0, (args.m, args.n_visible))
        if args.output == "linear":
            x = rng.standard_normal((args.m, args.n_visible))
    x = jnp.asarray(x, jnp.float64)

    print(
        f"gradcheck: n_visible={args.n_visible} n_hidden={args.n_hidden} m={args.m} "
        f"lam={args.lam} beta={args.beta} rho={args.rho} output={args.output} data={args.data} float64, "
        f"devices={[str(d) for d in jax.devices()]}",
        flush=True,
    )
    rows = gradcheck(
        params, x, lam=args.lam, beta=args.beta, rho=args.rho, output=args.output,
        key=kd, n_directions=args.directions,
    )
    print(format_table(rows))
    worst_ad = max(r.manual_vs_autodiff for r in rows)
    worst_fd = max(max(r.manual_vs_fd, r.autodiff_vs_fd) for r in rows if r.array != "cost")
    ok = all(row_passes(r) for r in rows)
    print(
        f"{'PASS' if ok else 'FAIL'}: max manual-vs-jax.grad {worst_ad:.2e} (tol {AUTODIFF_TOL:g}), "
        f"max vs finite differences {worst_fd:.2e} (tol {FD_TOL:g} relative to ||g||, or 10x the "
        f"row's FD rounding floor if larger)"
    )
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------
# train / visualize / encode
# ---------------------------------------------------------------------------------------

# TrainConfig fields settable from the command line: flag -> (field, type, help).
_TRAIN_FLAGS = (
    ("--n-hidden", "n_hidden", int, "hidden units (default 25)"),
    ("--lam", "lam", float, "weight decay lambda (default 1e-4)"),
    ("--beta", "beta", float, "sparsity weight beta (default 3)"),
    ("--rho", "rho", float, "target mean activation rho (default 0.01)"),
    ("--output", "output", str, "output layer: sigmoid (data in [0, 1]) or linear (default sigmoid)"),
    ("--optimizer", "optimizer", str, "lbfgs (full batch, zoom line search), adam or sgd (minibatch); default lbfgs"),
    ("--steps", "steps", int, "total optimizer steps (default 400); with --resume, the new total (not below the checkpoint's step)"),
    ("--learning-rate", "learning_rate", float, "Adam/SGD step size (default 1e-2; L-BFGS uses its line search)"),
    ("--momentum", "momentum", float, "SGD momentum (default 0.9)"),
    ("--batch-size", "batch_size", int, "Adam/SGD minibatch rows (default 128)"),
    ("--rho-hat", "rho_hat", str, "sparsity estimate for minibatches: batch (the batch's rho_hat) or ema (running) (default batch)"),
    ("--ema-decay", "ema_decay", float, "alpha of the running rho_hat estimate (default 0.9)"),
    ("--gradient", "gradient", str, "manual (the tutorial's backprop) or autodiff (jax.value_and_grad) (default manual)"),
    ("--dtype", "dtype", str, "float64 (enables JAX x64) or float32 (default float64)"),
    ("--seed", "seed", int, "seed of the initial weights and the minibatch order (default 0)"),
    ("--lbfgs-memory", "lbfgs_memory", int, "L-BFGS history size (default 100, as minFunc in the UFLDL exercise)"),
    ("--max-linesearch-steps", "max_linesearch_steps", int, "zoom line-search evaluations per L-BFGS step (default 20)"),
    ("--chunk", "chunk", int, "optimizer steps per compiled dispatch and per metrics row (default 20)"),
    ("--checkpoint-every", "checkpoint_every", int, "steps between checkpoints (default 100; always at the end)"),
    ("--validation-fraction", "validation_fraction", float,
     "rows held out of training for the val_* metrics (seeded split; default 0: none)"),
)
_CHOICES = {
    "output": ("sigmoid", "linear"),
    "optimizer": ("lbfgs", "adam", "sgd"),
    "rho_hat": ("batch", "ema"),
    "gradient": ("manual", "autodiff"),
    "dtype": ("float64", "float32"),
}


def _add_data_flags(p: argparse.ArgumentParser, *, default_data) -> None:
    p.add_argument(
        "--data", default=default_data, metavar="NAME_OR_PATH",
        help="natural (whitened natural-image patches, bundled), digits (scikit-learn 8x8), or a "
        ".npy/.npz (rows = samples), MNIST IDX or IMAGES.mat file"
        + (f" (default {default_data})" if default_data else ""),
    )
    p.add_argument("--n-patches", type=int, default=None, help="patches to sample for natural/.mat (default 10000)")
    p.add_argument("--patch-size", type=int, default=None, help="patch side for natural/.mat (default 8)")
    p.add_argument("--data-seed", type=int, default=None, help="seed of the patch sampling (default 0)")
    p.add_argument("--npz-key", default=None, help="array name inside a .npz file")


def _add_train_commands(sub) -> None:
    t = sub.add_parser(
        "train",
        help="train a sparse autoencoder (default: the UFLDL natural-image exercise)",
        description="Train the sparse autoencoder with jitted full-batch L-BFGS or minibatch "
        "Adam/SGD and write a run directory: config.json, checkpoint.safetensors (resumable), "
        "params.safetensors, metrics.jsonl, filters.png, training_curve.png. Defaults reproduce "
        "the UFLDL exercise: 10,000 8x8 natural-image patches, 64 visible, 25 hidden, rho=0.01, "
        "lambda=1e-4, beta=3, 400 L-BFGS iterations.",
        epilog="examples:\n  sae-jax train\n  sae-jax train --out runs/adam --optimizer adam "
        "--steps 4000\n  sae-jax train --resume runs/adam --steps 8000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag, field, typ, hlp in _TRAIN_FLAGS:
        t.add_argument(flag, dest=field, type=typ, default=None, choices=_CHOICES.get(field), help=hlp)
    _add_data_flags(t, default_data=None)
    t.add_argument("--out", default=None, metavar="DIR",
                   help="run directory (default runs/<data>-<optimizer>-h<n_hidden>-<timestamp>); "
                   "must not already hold a checkpoint")
    t.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run in DIR from its checkpoint (its config and data; "
                   "--steps may raise the total)")
    t.add_argument("--patch-shape", nargs="+", default=None, metavar="ROWSxCOLS",
                   help="shape of one filter in filters.png, e.g. 5x10 for 50 features (default square; "
                   "without it, filters.png of non-square data is skipped with a note)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--devices", default=None, metavar="all|N",
                   help="data parallel over all devices JAX sees or the first N (rows split, rho_hat and "
                   "m stay global: sae_jax.sharded; manual gradient, --rho-hat batch); default one device")
    t.set_defaults(func=_cmd_train)

    v = sub.add_parser(
        "visualize",
        help="draw the learned filters (display_network) as a PNG",
        description="Draw each hidden unit's weights (rows of W1) as a normalised patch in a grid.",
        epilog="examples:\n  sae-jax visualize runs/my-run\n  sae-jax visualize runs/my-run/checkpoint.safetensors --out f.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("params", metavar="PATH", help="run directory, params.safetensors or checkpoint.safetensors")
    v.add_argument("--out", default=None, help="PNG to write (default: filters.png next to PATH)")
    v.add_argument("--patch-shape", nargs="+", default=None, metavar="ROWSxCOLS",
                   help="shape of one filter: ROWSxCOLS or ROWS COLS (default square)")
    v.set_defaults(func=_cmd_visualize)

    e = sub.add_parser(
        "encode",
        help="hidden-unit activations of a dataset -> .npy",
        description="Compute a2 = sigmoid(x W1^T + b1) for every sample of a dataset with trained "
        "parameters and save the (m, n_hidden) array as .npy.",
        epilog="examples:\n  sae-jax encode runs/my-run --out features.npy      # the run's own data\n"
        "  sae-jax encode runs/my-run --data natural --out features.npy\n"
        "  sae-jax encode runs/my-run/params.safetensors --data x.npy --out x_features.npy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("params", metavar="PATH", help="run directory, params.safetensors or checkpoint.safetensors")
    _add_data_flags(e, default_data=None)
    e.description += (" Without --data, the data the run was trained on (its recorded data spec; "
                      "--n-patches, --patch-size, --data-seed, --npz-key override its fields).")
    e.add_argument("--out", required=True, help="the .npy file to write")
    e.set_defaults(func=_cmd_encode)

    ev = sub.add_parser(
        "evaluate",
        help="diagnostics of a trained run: per-sample reconstruction error, dead/saturated units, "
        "rho_hat vs rho (table + evaluation.png)",
        description="Evaluate trained parameters on a dataset (default: the run's own data; with the run's "
        "validation split, training and held-out rows separately) and print a short table: cost terms, "
        "the distribution of the per-sample reconstruction error 1/2||x_hat - x||^2, the fraction of dead "
        f"units (never above {0.1:g}) and saturated units (never below {0.9:g}), rho_hat against rho "
        "(sae_jax.metrics). Writes evaluation.png: the rho_hat histogram with rho marked and the "
        "per-sample error histogram.",
        epilog="examples:\n  sae-jax evaluate runs/my-run\n"
        "  sae-jax evaluate runs/my-run --data digits --out digits_eval.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("params", metavar="PATH", help="run directory, params.safetensors or checkpoint.safetensors")
    _add_data_flags(ev, default_data=None)
    ev.add_argument("--out", default=None, help="PNG to write (default: evaluation.png next to PATH)")
    ev.set_defaults(func=_cmd_evaluate)


def _patch_shape_arg(values):
    """``--patch-shape``: ``["5x10"]`` or ``["5", "10"]`` -> ``(5, 10)`` (None if not given)."""
    if values is None:
        return None
    parts = values[0].lower().split("x") if len(values) == 1 else list(values)
    try:
        shape = tuple(int(v) for v in parts)
    except ValueError:
        shape = ()
    if len(shape) != 2 or min(shape) < 1:
        raise _usage(f"--patch-shape must be ROWSxCOLS (or ROWS COLS) with positive integers, got {' '.join(values)!r}")
    return shape


def _data_kwargs(args) -> dict:
    return dict(
        n_patches=10_000 if args.n_patches is None else args.n_patches,
        patch_size=8 if args.patch_size is None else args.patch_size,
        seed=0 if args.data_seed is None else args.data_seed,
        key=args.npz_key,
    )


def _default_run_dir(data: str, config) -> str:
    import os
    import time

    stem = os.path.splitext(os.path.basename(data))[0] or "data"
    base = os.path.join("runs", f"{stem}-{config.optimizer}-h{config.n_hidden}-{time.strftime('%Y%m%d-%H%M%S')}")
    out, i = base, 1
    while os.path.exists(out):
        out, i = f"{base}-{i}", i + 1
    return out


def _cmd_train(args) -> int:
    import dataclasses
    from pathlib import Path

    from . import checkpoint as ckpt
    from .training import TrainConfig, validate_config

    given = {f: getattr(args, f) for _, f, _, _ in _TRAIN_FLAGS if getattr(args, f) is not None}
    data_given = [
        flag for flag, v in (("--data", args.data), ("--n-patches", args.n_patches),
                             ("--patch-size", args.patch_size), ("--data-seed", args.data_seed),
                             ("--npz-key", args.npz_key)) if v is not None
    ]
    if args.resume is not None:
        if args.out is not None:
            raise _usage("--resume DIR continues the run in DIR; it cannot be combined with --out")
        if data_given:
            raise _usage(f"{data_given[0]} cannot be combined with --resume (the checkpoint records its data)")
        _, meta = ckpt.load_checkpoint(Path(args.resume) / ckpt.CHECKPOINT_NAME)
        base = TrainConfig.from_dict(meta["config"])
    else:
        base = TrainConfig()
    config = dataclasses.replace(base, **given)
    if config.dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)  # only the CLI changes global config
    validate_config(config)

    x = spec = None
    if args.resume is None:
        from .data import data_spec, load_dataset

        data = "natural" if args.data is None else args.data
        kw = _data_kwargs(args)
        run_dir = args.out if args.out is not None else _default_run_dir(data, config)
        from .training import _check_run_dir

        _check_run_dir(Path(run_dir))  # a file at or above --out: InputError, before any work
        if (Path(run_dir) / ckpt.CHECKPOINT_NAME).exists():
            raise _usage(
                f"run directory {run_dir!r} already holds a checkpoint; use --resume {run_dir} "
                f"to continue it or choose another --out"
            )
        x = load_dataset(data, output=config.output, **kw)
        spec = data_spec(data, **kw)
    else:
        run_dir = args.resume
    patch_shape = _patch_shape_arg(args.patch_shape)
    if patch_shape is not None and x is not None:
        from .training import _check_patch_shape

        _check_patch_shape(patch_shape, int(x.shape[1]))  # before any work (train checks it again)
    return _run_training(x, config, run_dir, resume=args.resume is not None, spec=spec,
                         progress=not args.no_progress,
                         value_and_grad_fn=_devices_value_and_grad(args.devices, config),
                         patch_shape=patch_shape)


def _devices_value_and_grad(devices, config):
    """``--devices all|N``: :func:`sae_jax.sharded.make_train_value_and_grad` for train's seam (None: one device)."""
    if devices is None:
        return None
    if devices != "all":
        try:
            devices = int(devices)
        except ValueError:
            raise _usage(f"--devices must be 'all' or a positive integer, got {devices!r}") from None
    if config.rho_hat != "batch":
        raise _usage("--devices needs --rho-hat batch (the running-estimate objective is not sharded)")
    if config.gradient != "manual":
        raise _usage("--devices runs the manual gradient; drop --gradient autodiff")
    from .sharded import batch_mesh, make_train_value_and_grad

    mesh = batch_mesh(devices)  # InputError (exit 2) if N is not in [1, number of devices]
    print(f"sae-jax train: data parallel over {mesh.size} device(s): {[str(d) for d in mesh.devices.flat]}",
          flush=True)
    return make_train_value_and_grad(mesh, lam=config.lam, beta=config.beta, rho=config.rho, output=config.output)


def _run_training(x, config, run_dir, *, resume, spec, progress, value_and_grad_fn=None, patch_shape=None) -> int:
    import time
    import warnings

    from .training import TrainingDiverged, train

    bar = None
    state = {}

    def on_row(row):
        nonlocal bar
        if not progress:
            return
        if bar is None:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.steps, initial=row["step"], desc="train", unit="step",
                       dynamic_ncols=True, file=sys.stderr)
        else:
            bar.update(row["step"] - state.get("step", row["step"]))
        bar.set_postfix_str(f"cost={row['cost']:.5g} rho_hat={row['rho_hat_mean']:.4g}", refresh=True)
        state["step"] = row["step"]

    t0 = time.perf_counter()
    print(f"sae-jax train: {config.optimizer} {config.steps} steps, n_hidden={config.n_hidden} "
          f"lam={config.lam:g} beta={config.beta:g} rho={config.rho:g} {config.dtype} "
          f"{config.gradient} gradient -> {run_dir}", flush=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            result = train(x, config, run_dir=run_dir, resume=resume, data_spec=spec, progress=on_row,
                           value_and_grad_fn=value_and_grad_fn, patch_shape=patch_shape)
    except TrainingDiverged as e:
        if bar is not None:
            bar.close()
        print(f"sae-jax train: error: {e}", file=sys.stderr)
        return 1
    if bar is not None:
        bar.close()
    last = result.metrics[-1]
    print(
        f"done: step {last['step']}, cost {last['cost']:.6f} (reconstruction {last['reconstruction']:.6f}, "
        f"weight decay {last['weight_decay']:.6f}, sparsity {last['sparsity']:.6f}), "
        f"rho_hat mean {last['rho_hat_mean']:.4f}; {time.perf_counter() - t0:.1f} s "
        f"(compile {result.compile_s:.1f} s, training {result.train_s:.1f} s)"
    )
    import os

    names = ("params.safetensors", "checkpoint.safetensors", "config.json", "metrics.jsonl", "filters.png",
             "training_curve.png")
    print(f"wrote {run_dir}/: " + " ".join(n for n in names if os.path.exists(os.path.join(run_dir, n))))
    for w in caught:
        if issubclass(w.category, UserWarning):
            print(f"sae-jax train: note: {w.message}", file=sys.stderr)
    return 0


def _cmd_visualize(args) -> int:
    from pathlib import Path

    import numpy as np

    from .checkpoint import find_params_file, load_params
    from .display import save_filters_png

    params, _ = load_params(args.params)
    W1 = np.asarray(params.W1)
    shape = _patch_shape_arg(args.patch_shape)
    if shape is not None and shape[0] * shape[1] != W1.shape[1]:
        raise _usage(f"--patch-shape {shape[0]}x{shape[1]} must multiply to n_visible={W1.shape[1]}")
    if shape is None and int(round(W1.shape[1] ** 0.5)) ** 2 != W1.shape[1]:
        raise _usage(f"n_visible={W1.shape[1]} is not a square: pass --patch-shape ROWSxCOLS")
    src = Path(args.params)
    out = Path(args.out) if args.out else (src if src.is_dir() else find_params_file(src).parent) / "filters.png"
    if out.suffix.lower() != ".png":
        raise _usage(f"--out must be a .png file, got {str(out)!r}")
    if out.is_dir():
        raise _usage(f"--out {str(out)!r} is a directory; name the .png file to write")
    if not out.parent.is_dir():
        raise _usage(f"output directory {str(out.parent)!r} does not exist")
    import os

    tmp = out.with_name(f".{out.name}.tmp.png")
    save_filters_png(W1, tmp, patch_shape=shape, title=f"{W1.shape[0]} hidden units")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


def _cmd_encode(args) -> int:
    import io
    from pathlib import Path

    import numpy as np

    from .checkpoint import atomic_write_bytes, load_params
    from .forward import encode

    params, config = load_params(args.params)
    out = Path(args.out)
    if out.suffix.lower() != ".npy":
        raise _usage(f"--out must be a .npy file, got {str(out)!r}")
    if out.is_dir():
        raise _usage(f"--out {str(out)!r} is a directory; name the .npy file to write")
    if not out.parent.is_dir() and str(out.parent) != "":
        raise _usage(f"output directory {str(out.parent)!r} does not exist")
    x, data_name = _load_run_or_given_data(args, config.get("output", "sigmoid"))
    n = params.W1.shape[1]
    if x.shape[1] != n:
        raise _usage(f"data {data_name!r} has {x.shape[1]} features per sample, the parameters expect n_visible={n}")
    import jax

    dtype = np.asarray(params.W1).dtype
    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from .params import Params

    p = Params(*(jnp.asarray(a) for a in params))
    a2 = np.asarray(jax.jit(encode)(p, jnp.asarray(x.astype(dtype))))
    buf = io.BytesIO()
    np.save(buf, a2)
    atomic_write_bytes(out, buf.getvalue())
    print(f"wrote {out}: {a2.shape[0]} samples x {a2.shape[1]} hidden units ({a2.dtype})")
    return 0


# ---------------------------------------------------------------------------------------
# check (sae_jax.check)
# ---------------------------------------------------------------------------------------


def _add_check_command(sub) -> None:
    c = sub.add_parser(
        "check",
        help="test your own sparse-autoencoder cost and gradient; names the mistake if it finds one",
        description="Run someone else's cost-and-gradient on float64 probe cases, compare it with "
        "sae-jax's float64 reference and name the catalogued mistake its outputs match. Exit 0 when "
        "everything agrees, 1 with the diagnosis, 2 when the code cannot be run.",
        epilog="examples:\n  sae-jax check my_sae.py:sparseAutoencoderCost\n"
        "  sae-jax check mypkg.sae:cost_and_grad --convention rows --output linear\n"
        "  sae-jax check --write-cases cases/\n  sae-jax check --results results.mat",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("target", nargs="?", default=None, metavar="FILE.py:FUNCTION",
                   help="path/to/file.py:function or package.module:function")
    c.add_argument("--convention", choices=("ufldl", "rows"), default=None,
                   help="ufldl: f(theta, visibleSize, hiddenSize, lambda, sparsityParam, beta, data); "
                   "rows: f(params, x, lam, beta, rho) (default: read from the signature)")
    c.add_argument("--output", choices=("sigmoid", "linear"), default=None,
                   help="the decoder the code implements (default sigmoid; for --results: the file's)")
    c.add_argument("--arrays", choices=("auto", "numpy", "torch"), default="auto",
                   help="inputs as numpy arrays or torch tensors (default auto: torch if the module imports it)")
    c.add_argument("--tol", type=float, default=None, help="relative tolerance per array and probe (default 1e-7)")
    c.add_argument("--write-cases", default=None, metavar="DIR",
                   help="write the probe cases and expected outputs (.npz, .mat, .json, README.md) to DIR")
    c.add_argument("--results", default=None, metavar="FILE",
                   help="compare a results file (.npz, .mat or .json) made from --write-cases")
    c.set_defaults(func=_cmd_check)


def _cmd_check(args) -> int:
    from .check import DEFAULT_TOL, check, check_results, write_cases

    modes = [m for m, v in (("FILE.py:FUNCTION", args.target), ("--write-cases", args.write_cases),
                            ("--results", args.results)) if v is not None]
    if len(modes) != 1:
        raise _usage("give exactly one of FILE.py:FUNCTION, --write-cases DIR, --results FILE"
                     + (f" (got {', '.join(modes)})" if modes else ""))
    tol = DEFAULT_TOL if args.tol is None else args.tol
    if args.write_cases is not None:
        paths = write_cases(args.write_cases)
        print(f"wrote {', '.join(str(p) for p in paths)}")
        return 0
    if args.results is not None:
        report = check_results(args.results, output=args.output, tol=tol)
    else:
        report = check(args.target, convention=args.convention, output=args.output or "sigmoid", tol=tol,
                       arrays=args.arrays)
    print(report.text)
    return report.exit_code


def recorded_data_spec(path) -> dict | None:
    """The data spec a run recorded: from a checkpoint's metadata, else the run directory's config.json.

    ``path`` is a run directory, ``params.safetensors`` or ``checkpoint.safetensors``. ``None`` when
    the run was trained on an in-memory array (no spec) or nothing is recorded next to ``path``.
    """
    import json

    from . import checkpoint as ckpt

    f = ckpt.find_params_file(path)
    if f.name != ckpt.PARAMS_NAME:
        _, md = ckpt._read_safetensors(f, "params file")
        if md.get("format") == ckpt.FORMAT:
            return ckpt.load_checkpoint(f)[1]["data_spec"]
    conf = f.parent / ckpt.CONFIG_NAME
    if conf.is_file():
        try:
            spec = json.loads(conf.read_text()).get("data_spec")
        except (ValueError, AttributeError):
            raise _usage(f"{str(conf)!r} is not a valid run config (JSON object)") from None
        return spec
    return None


def _load_run_or_given_data(args, output: str):
    """``--data`` if given, else the run's recorded data spec (with any patch/seed/key flags applied)."""
    from .data import DataSpec, load_dataset, load_from_spec

    if args.data is not None:
        return load_dataset(args.data, output=output, **_data_kwargs(args)), args.data
    spec = recorded_data_spec(args.params)
    if spec is None:
        raise _usage(
            f"{args.params!r} records no data spec (trained on an in-memory array, or a params file "
            "outside its run directory): pass --data NAME_OR_PATH"
        )
    spec = DataSpec.from_dict(spec)
    over = {f: v for f, v in (("n_patches", args.n_patches), ("patch_size", args.patch_size),
                              ("seed", args.data_seed), ("key", args.npz_key)) if v is not None}
    spec = spec._replace(**over)
    return load_from_spec(spec, output=output), spec.name


def _cmd_evaluate(args) -> int:
    import os
    from pathlib import Path

    import numpy as np

    from .checkpoint import find_params_file, load_params
    from .training import TrainConfig

    params, config = load_params(args.params)
    defaults = TrainConfig()
    hp = {k: config.get(k, getattr(defaults, k)) for k in ("lam", "beta", "rho", "output")}
    src = Path(args.params)
    out = Path(args.out) if args.out else (src if src.is_dir() else find_params_file(src).parent) / "evaluation.png"
    if out.suffix.lower() != ".png":
        raise _usage(f"--out must be a .png file, got {str(out)!r}")
    if not out.parent.is_dir():
        raise _usage(f"output directory {str(out.parent)!r} does not exist")
    x, data_name = _load_run_or_given_data(args, hp["output"])
    n = params.W1.shape[1]
    if x.shape[1] != n:
        raise _usage(f"data {data_name!r} has {x.shape[1]} features per sample, the parameters expect n_visible={n}")
    import jax

    dtype = np.asarray(params.W1).dtype
    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)  # only the CLI changes global config
    import jax.numpy as jnp

    from . import metrics
    from .display import save_evaluation_png
    from .params import Params

    p = Params(*(jnp.asarray(a) for a in params))
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
    tmp = out.with_name(f".{out.name}.tmp.png")
    try:
        save_evaluation_png(columns, tmp, rho=hp["rho"],
                            title=f"{Path(args.params).name}: {params.W1.shape[0]} hidden units on {Path(str(data_name)).name}")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    print(f"wrote {out}")
# sweep
# ---------------------------------------------------------------------------------------

_SWEEP_FLAGS = (
    ("--beta", "beta", "sparsity weights beta, comma-separated (default 3)"),
    ("--rho", "rho", "target activations rho, comma-separated (default 0.01)"),
    ("--lam", "lam", "weight decays lambda, comma-separated (default 1e-4)"),
)


def _add_sweep_command(sub) -> None:
    w = sub.add_parser(
        "sweep",
        help="train a grid of (beta, rho, lambda) settings in one compiled, vmapped run",
        description="Train every combination of the given beta, rho and lambda values from the same "
        "initial weights on the same data, in one compiled run vmapped over the settings (sae_jax.sweep), "
        "and write DIR/sweep.json, DIR/summary.csv, DIR/tradeoff.png (reconstruction vs sparsity, mean "
        "rho_hat vs rho) and DIR/settings/<k>-beta..-rho..-lam../ (params.safetensors, metrics.jsonl, "
        "config.json, filters.png). The other flags are shared by all settings, as for train.",
        epilog="examples:\n  sae-jax sweep --beta 0,1,3 --rho 0.01,0.05 --lam 1e-4 --out runs/sweep\n"
        "  sae-jax sweep --beta 0.5,1,3,5 --rho 0.01,0.03,0.05,0.1 --optimizer adam --steps 2000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag, field, hlp in _SWEEP_FLAGS:
        w.add_argument(flag, dest=field, default=None, metavar="V1,V2,...", help=hlp)
    for flag, field, typ, hlp in _TRAIN_FLAGS:
        if field not in ("lam", "beta", "rho"):
            w.add_argument(flag, dest=field, type=typ, default=None, choices=_CHOICES.get(field), help=hlp)
    _add_data_flags(w, default_data=None)
    w.add_argument("--batching", choices=("auto", "vmap", "map"), default="auto",
                   help="run the settings all at once (vmap: accelerators) or one after another inside the "
                   "one compiled program (map: CPUs); default auto = map on CPU, vmap otherwise")
    w.add_argument("--out", default=None, metavar="DIR",
                   help="sweep directory (default runs/sweep-<data>-<optimizer>-h<n_hidden>-<timestamp>); "
                   "must not already hold a sweep.json")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.set_defaults(func=_cmd_sweep)


def _value_list(flag: str, text: str) -> list[float]:
    import math

    items = [t.strip() for t in text.split(",")]
    try:
        vals = [float(t) for t in items]
    except ValueError:
        raise _usage(f"{flag} must be comma-separated numbers (e.g. {flag} 0,1,3), got {text!r}") from None
    bad = [t for t, v in zip(items, vals) if not math.isfinite(v)]
    if bad:
        raise _usage(f"{flag} values must be finite, got {bad[0]!r}")
    return vals


def _cmd_sweep(args) -> int:
    import dataclasses
    import os
    import time
    from pathlib import Path

    from .sweep import SWEEP_JSON, grid_settings, sweep
    from .training import TrainConfig, validate_config

    grid = {field: _value_list(flag, getattr(args, field)) for flag, field, _ in _SWEEP_FLAGS
            if getattr(args, field) is not None}
    if not grid:
        raise _usage("give the values to sweep: at least one of --beta, --rho, --lam (comma-separated)")
    given = {f: getattr(args, f) for _, f, _, _ in _TRAIN_FLAGS
             if f not in ("lam", "beta", "rho") and getattr(args, f) is not None}
    config = dataclasses.replace(TrainConfig(), **given)
    if config.dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)  # only the CLI changes global config
    validate_config(config)
    settings = grid_settings(grid, config)
    data = "natural" if args.data is None else args.data
    out = args.out
    if out is None:
        stem = os.path.splitext(os.path.basename(data))[0] or "data"
        base = os.path.join("runs", f"sweep-{stem}-{config.optimizer}-h{config.n_hidden}-{time.strftime('%Y%m%d-%H%M%S')}")
        out, i = base, 1
        while os.path.exists(out):
            out, i = f"{base}-{i}", i + 1
    if (Path(out) / SWEEP_JSON).exists():
        raise _usage(f"sweep directory {out!r} already holds a {SWEEP_JSON}; choose another --out")

    from .data import data_spec, load_dataset

    kw = _data_kwargs(args)
    x = load_dataset(data, output=config.output, **kw)
    spec = data_spec(data, **kw)
    print(f"sae-jax sweep: {len(settings)} settings ({', '.join(f'{k} {v}' for k, v in grid.items())}), "
          f"{config.optimizer} {config.steps} steps, n_hidden={config.n_hidden} {config.dtype} -> {out}",
          flush=True)
    bar = None

    def on_chunk(info):
        nonlocal bar
        if args.no_progress:
            return
        if bar is None:
            from tqdm.auto import tqdm

            bar = tqdm(total=info["steps"], desc=f"sweep x{info['settings']}", unit="step",
                       dynamic_ncols=True, file=sys.stderr)
        bar.update(info["step"] - bar.n)

    t0 = time.perf_counter()
    result = sweep(x, config, grid, out_dir=out, data_spec=spec, progress=on_chunk, batching=args.batching)
    if bar is not None:
        bar.close()
    print(f"{'#':>3} {'beta':>8} {'rho':>8} {'lam':>9} {'cost':>10} {'recon':>10} {'sum KL':>10} {'mean rho_hat':>12}")
    for r in result.summary:
        flag = f"  diverged at step {r['diverged_step']} ({r['diverged_cause']})" if r["diverged_step"] is not None else ""
        print(f"{r['index']:>3} {r['beta']:>8g} {r['rho']:>8g} {r['lam']:>9g} {r['cost']:>10.5f} "
              f"{r['reconstruction']:>10.5f} {r['kl_sum']:>10.4g} {r['rho_hat_mean']:>12.4g}{flag}")
    print(f"done: {len(settings)} settings x {config.steps} steps in {time.perf_counter() - t0:.1f} s "
          f"(one compiled {result.batching} over the settings: compile {result.compile_s:.1f} s, "
          f"training {result.train_s:.1f} s)")
    print(f"wrote {out}/: sweep.json summary.csv tradeoff.png settings/ ({len(settings)} directories)")
    return 0


class _UsageError(Exception):
    pass


def _usage(msg: str) -> _UsageError:
    return _UsageError(msg)


def main(argv=None) -> int:
    from .validate import InputError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, _UsageError) as e:
        print(f"sae-jax {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
