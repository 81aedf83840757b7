"""``sae-jax train``: flags to a ``TrainConfig``, data and a run directory, then :func:`sae_jax.training.train`.

The command turns its flags into a :class:`~sae_jax.training.TrainConfig` (over the checkpoint's
config with ``--resume``), checks everything it can before any work (config, data, ``--out``,
``--patch-shape``, ``--devices``), then calls :func:`sae_jax.training.train` with a progress bar.
Bad input: :class:`~sae_jax._src.cli.args.UsageError` or :class:`~sae_jax.InputError` (exit 2, nothing
written); divergence: exit 1, naming the step and the checkpoint kept.

Examples:
  >>> from sae_jax.cli import build_parser
  >>> args = build_parser().parse_args(["train", "--optimizer", "adam", "--steps", "4000", "--dtype", "float32"])
  >>> (args.optimizer, args.steps, args.dtype, args.n_hidden, args.out)  # None: not given
  ('adam', 4000, 'float32', None, None)
  >>> data_flags_given(build_parser().parse_args(["train", "--data", "digits", "--data-seed", "1"]))
  ['--data', '--data-seed']
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings
from pathlib import Path

from .. import checkpoint as ckpt
from ..config import TrainConfig, validate_config
from ..data import data_spec, load_dataset
from ..rundir import check_writable
from ..sharded import batch_mesh, make_train_value_and_grad
from ..training import TrainingDiverged, train
from .args import (
    UsageError,
    check_patch_shape,
    check_run_dir,
    config_overrides,
    data_kwargs,
    default_out_dir,
    patch_shape_arg,
    progress_bar,
    set_precision,
)

__all__ = ["cmd_train", "data_flags_given", "variant_settings"]

_DATA_FLAGS = (("--data", "data"), ("--n-patches", "n_patches"), ("--patch-size", "patch_size"),
               ("--data-seed", "data_seed"), ("--npz-key", "npz_key"))
_RUN_FILES = ("params.safetensors", "checkpoint.safetensors", "config.json", "metrics.jsonl", "filters.png",
              "training_curve.png")


def data_flags_given(args) -> list[str]:
    """The data flags given on the command line (a resumed run records its data: none may be)."""
    return [flag for flag, dest in _DATA_FLAGS if getattr(args, dest) is not None]


def variant_settings(config) -> str:
    """The variant settings of a run, as the header and done lines name them.

    Examples:
      >>> from sae_jax.training import TrainConfig
      >>> variant_settings(TrainConfig())
      'untied, no L1, no corruption'
      >>> variant_settings(TrainConfig(tied=True, l1=1e-3, corruption="gaussian", corruption_level=0.1))
      'tied, L1 gamma=0.001, corruption gaussian sigma=0.1'
      >>> variant_settings(TrainConfig(corruption="mask", corruption_level=0.3))
      'untied, no L1, corruption mask p=0.3'
    """
    level = {"mask": "p", "gaussian": "sigma"}.get(config.corruption)
    return ", ".join((
        "tied" if config.tied else "untied",
        f"L1 gamma={config.l1:g}" if config.l1 else "no L1",
        f"corruption {config.corruption} {level}={config.corruption_level:g}" if level else "no corruption",
    ))


def _done_line(result, config, seconds: float) -> str:
    """``done: ...``: the cost and its terms on the clean training rows, with the variant settings;
    ρ̂ and the sparsity term of the clean rows and, for a denoising run, of the corrupted training
    input (what training held ρ̂ on) beside them."""
    last = result.metrics[-1]
    l1 = f", L1 {last['l1']:.6f}" if "l1" in last else ""
    clean = f"rho_hat mean {last['rho_hat_mean']:.4f}, sparsity {last['sparsity']:.6f}"
    noisy = result.input_metrics
    if noisy is None:
        rho = f"{clean} (clean data = the training input)"
    else:
        noisy_l1 = f", L1 {noisy['l1']:.6f}" if "l1" in noisy else ""
        rho = (f"clean data: {clean}; corrupted training input: rho_hat mean {noisy['rho_hat_mean']:.4f}, "
               f"sparsity {noisy['sparsity']:.6f}{noisy_l1}")
    return (
        f"done: step {last['step']} ({variant_settings(config)}), cost {last['cost']:.6f} on the clean data "
        f"(reconstruction {last['reconstruction']:.6f}, weight decay {last['weight_decay']:.6f}, "
        f"sparsity {last['sparsity']:.6f}{l1}); {rho}; {seconds:.1f} s "
        f"(compile {result.compile_s:.1f} s, training {result.train_s:.1f} s)"
    )


def cmd_train(args) -> int:
    given = config_overrides(args)
    data_given = data_flags_given(args)
    if args.resume is not None:
        if args.out is not None:
            raise UsageError("--resume DIR continues the run in DIR; it cannot be combined with --out")
        if data_given:
            raise UsageError(f"{data_given[0]} cannot be combined with --resume (the checkpoint records its data)")
        _, meta = ckpt.load_checkpoint(Path(args.resume) / ckpt.CHECKPOINT_NAME)
        base = TrainConfig.from_dict(meta["config"])
    else:
        base = TrainConfig()
    config = dataclasses.replace(base, **given)
    set_precision(config.dtype)
    validate_config(config)

    x = spec = None
    if args.resume is None:
        data = "natural" if args.data is None else args.data
        kw = data_kwargs(args)
        run_dir = args.out if args.out is not None else default_out_dir(data, config)
        check_run_dir(Path(run_dir))  # a file at or above --out: InputError, before any work
        check_writable(Path(run_dir))  # a read-only place: InputError, before loading the data
        if (Path(run_dir) / ckpt.CHECKPOINT_NAME).exists():
            raise UsageError(
                f"run directory {run_dir!r} already holds a checkpoint; use --resume {run_dir} "
                f"to continue it or choose another --out"
            )
        x = load_dataset(data, output=config.output, **kw)
        spec = data_spec(data, **kw)
    else:
        run_dir = args.resume
    patch_shape = patch_shape_arg(args.patch_shape)
    if patch_shape is not None and x is not None:
        check_patch_shape(patch_shape, int(x.shape[1]))  # before any work (train checks it again)
    return _run_training(x, config, run_dir, resume=args.resume is not None, spec=spec,
                         progress=not args.no_progress,
                         value_and_grad_fn=_devices_value_and_grad(args.devices, config),
                         patch_shape=patch_shape)


def _devices_value_and_grad(devices, config):
    """``--devices all|N``: :func:`sae_jax._src.sharded.make_train_value_and_grad` for train's seam (None: one device)."""
    if devices is None:
        return None
    if devices != "all":
        try:
            devices = int(devices)
        except ValueError:
            raise UsageError(f"--devices must be 'all' or a positive integer, got {devices!r}") from None
    if config.rho_hat != "batch":
        raise UsageError("--devices needs --rho-hat batch (the running-estimate objective is not sharded)")
    if config.gradient != "manual":
        raise UsageError("--devices runs the manual gradient; drop --gradient autodiff")
    mesh = batch_mesh(devices)  # InputError (exit 2) if N is not in [1, number of devices]
    print(f"sae-jax train: data parallel over {mesh.size} device(s): {[str(d) for d in mesh.devices.flat]}",
          flush=True)
    return make_train_value_and_grad(mesh, lam=config.lam, beta=config.beta, rho=config.rho, output=config.output,
                                     l1=config.l1 or None)


def _run_training(x, config, run_dir, *, resume, spec, progress, value_and_grad_fn=None, patch_shape=None) -> int:
    bar = None
    state = {}

    def on_row(row):
        nonlocal bar
        if not progress:
            return
        if bar is None:
            bar = progress_bar(config.steps, desc="train", initial=row["step"])
        else:
            bar.update(row["step"] - state.get("step", row["step"]))
        bar.set_postfix_str(f"cost={row['cost']:.5g} rho_hat={row['rho_hat_mean']:.4g}", refresh=True)
        state["step"] = row["step"]

    t0 = time.perf_counter()
    print(f"sae-jax train: {config.optimizer} {config.steps} steps, n_hidden={config.n_hidden} "
          f"lam={config.lam:g} beta={config.beta:g} rho={config.rho:g}, {variant_settings(config)}, "
          f"{config.dtype} {config.gradient} gradient -> {run_dir}", flush=True)
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
    print(_done_line(result, config, time.perf_counter() - t0))
    print(f"wrote {run_dir}/: " + " ".join(n for n in _RUN_FILES if os.path.exists(os.path.join(run_dir, n))))
    for w in caught:
        if issubclass(w.category, UserWarning):
            print(f"sae-jax train: note: {w.message}", file=sys.stderr)
    if result.warning is not None:
        print(f"sae-jax train: warning (training rows): {result.warning}", file=sys.stderr, flush=True)
    return 0
