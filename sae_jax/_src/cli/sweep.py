"""``sae-jax sweep``: a grid of (beta, rho, lambda) settings in one compiled run.

``--beta``, ``--rho`` and ``--lam`` take comma-separated values; the grid is their product, in that
order (:func:`sae_jax._src.sweep.grid_settings`). The other ``TrainConfig`` fields that change a sweep
(:data:`~sae_jax._src.cli.flags.SWEEP_FIELDS`: all but ``validation_fraction``) are one flag each, shared
by all settings, with ``train``'s meaning. ``--batching``: the settings one after another inside the
compiled program (``map``, the default on CPU) or all at once (``vmap``, the default on accelerators).
Writes ``DIR/sweep.json``, ``summary.csv``, ``tradeoff.png`` and one directory per setting
(:func:`sae_jax.training.sweep`). ``--resume DIR`` continues a killed sweep from its checkpoint (or
extends a finished one to a larger ``--steps``), to the result of an uninterrupted one.

Examples:
  >>> from sae_jax.cli import build_parser
  >>> args = build_parser().parse_args(["sweep", "--beta", "0,1,3", "--rho", "0.01,0.05", "--steps", "200"])
  >>> sweep_grid(args)
  {'beta': [0.0, 1.0, 3.0], 'rho': [0.01, 0.05]}
  >>> (args.steps, args.batching)
  (200, 'auto')
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ..config import TrainConfig, validate_config
from ..data import data_spec, load_dataset
from ..rundir import check_writable
from ..sweep import SWEEP_CHECKPOINT, SWEEP_JSON, grid_settings, load_sweep_checkpoint, sweep
from .args import (
    UsageError,
    check_run_dir,
    config_overrides,
    data_kwargs,
    default_out_dir,
    progress_bar,
    set_precision,
    value_list,
)
from .flags import SWEPT

__all__ = ["cmd_sweep", "sweep_grid"]


def sweep_grid(args) -> dict[str, list[float]]:
    """``{field: values}`` of the swept flags given, in :data:`SWEPT` order; at least one."""
    grid = {name: value_list("--" + name, getattr(args, name)) for name in SWEPT if getattr(args, name) is not None}
    if not grid:
        raise UsageError("give the values to sweep: at least one of --beta, --rho, --lam (comma-separated)")
    return grid


def cmd_sweep(args) -> int:
    if args.resume is not None:
        return _resume(args)
    grid = sweep_grid(args)
    config = dataclasses.replace(TrainConfig(), **config_overrides(args, exclude=SWEPT))
    set_precision(config.dtype)
    validate_config(config)
    settings = grid_settings(grid, config)
    data = "natural" if args.data is None else args.data
    out = args.out if args.out is not None else default_out_dir(data, config, prefix="sweep-")
    check_run_dir(Path(out), "sweep directory")  # a file at or above --out, a read-only place: before any work
    if (Path(out) / SWEEP_JSON).exists():
        raise UsageError(f"sweep directory {out!r} already holds a {SWEEP_JSON}; choose another --out")
    if (Path(out) / SWEEP_CHECKPOINT).exists():
        raise UsageError(f"sweep directory {out!r} holds an unfinished sweep; continue it with --resume {out} "
                         "or choose another --out")
    check_writable(Path(out), "sweep directory")

    kw = data_kwargs(args)
    x = load_dataset(data, output=config.output, **kw)
    spec = data_spec(data, **kw)
    return _run(args, x, config, grid, out, spec, resume=False)


def _resume(args) -> int:
    """``--resume DIR``: the checkpoint's grid, data and config (``--steps`` etc. may change)."""
    given = [f"--{name}" for name in SWEPT if getattr(args, name) is not None]
    given += [flag for flag, dest in (("--out", "out"), ("--data", "data"), ("--n-patches", "n_patches"),
                                      ("--patch-size", "patch_size"), ("--data-seed", "data_seed"),
                                      ("--npz-key", "npz_key")) if getattr(args, dest, None) is not None]
    if given:
        raise UsageError(f"{given[0]} cannot be combined with --resume (the checkpoint records the sweep's "
                         "grid, data and directory)")
    out = args.resume
    saved = load_sweep_checkpoint(Path(out) / SWEEP_CHECKPOINT)
    config = dataclasses.replace(TrainConfig.from_dict(saved["config"]), **config_overrides(args, exclude=SWEPT))
    set_precision(config.dtype)
    validate_config(config)
    return _run(args, None, config, saved["grid"], out, None, resume=True)


def _run(args, x, config, grid, out, spec, *, resume: bool) -> int:
    settings = grid_settings(grid, config)
    grid_text = ", ".join(f"{k} {v}" for k, v in grid.items()) if isinstance(grid, dict) else "as recorded"
    print(f"sae-jax sweep: {'resuming ' if resume else ''}{len(settings)} settings ({grid_text}), "
          f"{config.optimizer} {config.steps} steps, n_hidden={config.n_hidden} {config.dtype} -> {out}",
          flush=True)
    bar = None

    def on_chunk(info):
        nonlocal bar
        if args.no_progress:
            return
        if bar is None:
            bar = progress_bar(info["steps"], desc=f"sweep x{info['settings']}")
        bar.update(info["step"] - bar.n)

    t0 = time.perf_counter()
    result = sweep(x, config, grid, out_dir=out, data_spec=spec, progress=on_chunk, batching=args.batching,
                   resume=resume)
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
