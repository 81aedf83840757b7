"""``sae-jax probe | self-taught | stacked``: are the learned features any good? (:mod:`sae_jax.experiments`)

Each command prints one table of held-out softmax accuracies, one column per seed, with the mean,
the sample standard deviation and the range over seeds (:meth:`sae_jax._src.heldout.Table.text`), or
with ``--json`` the same as one JSON object. ``probe RUN`` compares a trained run's features with the
raw inputs on the run's own (labelled) data; ``self-taught`` and ``stacked`` are the UFLDL exercises
and write ``DIR/results.json`` (the table, the settings, the data spec, UFLDL's published MNIST
figures for reference) and their pictures to ``--out DIR``.

Labelled data (:mod:`sae_jax._src.cli.labelled`): ``digits`` carries its labels 0–9; a data file (``.npy``,
``.npz``, MNIST IDX) takes them from ``--labels-path``; an MNIST directory (``--data DIR``) its four
files, training on ``train-*`` and testing on ``t10k-*`` (``probe``, ``stacked``; ``self-taught``
splits ``train-*``'s digits 0–4 as the exercise); ``--test-data``/``--test-labels`` name a test set
file by file; natural-image patches have no labels (one error line, exit 2). ``--preset mnist``
selects the exercises' settings and, for ``self-taught``, their in-order split. Every check that
can be made before the work is made before it: bad input writes nothing.

Examples:
  >>> from sae_jax.cli import build_parser
  >>> args = build_parser().parse_args(["stacked", "--n-hidden", "100,49", "--seeds", "0,1"])
  >>> autoencoder_configs(args, layers=None)[1].n_hidden, int_list("--seeds", args.seeds, minimum=0)
  (49, [0, 1])
  >>> [c.lam for c in autoencoder_configs(build_parser().parse_args(["stacked", "--preset", "mnist"]), layers=None)]
  [0.003, 0.003]
  >>> int_list("--seeds", "0,x", minimum=0)
  Traceback (most recent call last):
  ...
  sae_jax._src.cli.args.UsageError: --seeds must be comma-separated integers >= 0 (e.g. --seeds 0,1,2), got '0,x'
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from .. import checkpoint as ckpt
from ..config import TrainConfig, validate_config
from ..data import DataSpec
from ..experiments import (
    SELF_TAUGHT_CONFIG,
    SELF_TAUGHT_MNIST_CONFIG,
    STACKED_CONFIGS,
    STACKED_MNIST_CONFIGS,
    UFLDL_MNIST,
    probe,
    self_taught,
    stacked_digits,
)
from ..heldout import Table, split
from ..params import Params
from ..rundir import check_writable
from ..softmax import check_lam
from ..validate import InputError
from ..version import __version__
from .args import UsageError, check_run_dir, progress_bar, set_precision
from .labelled import is_mnist_dir, load_labelled, load_test_set

__all__ = [
    "RESULTS_JSON",
    "autoencoder_configs",
    "checked_configs",
    "cmd_probe",
    "cmd_self_taught",
    "cmd_stacked",
    "int_list",
    "load_labelled",
]

#: The results file ``self-taught`` and ``stacked`` write in ``--out DIR``.
RESULTS_JSON = "results.json"

_PRESETS = {
    "self-taught": {"digits": (SELF_TAUGHT_CONFIG,), "mnist": (SELF_TAUGHT_MNIST_CONFIG,)},
    "stacked": {"digits": STACKED_CONFIGS, "mnist": STACKED_MNIST_CONFIGS},
}
# TrainConfig field -> the flag that sets it here (validate_config's messages name the field).
_AE_FLAGS = {"n_hidden": "--n-hidden", "lam": "--lam", "beta": "--beta", "rho": "--rho", "steps": "--steps"}


# --- arguments ------------------------------------------------------------------------------------


def int_list(flag: str, text: str, *, minimum: int) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``: a non-empty list of integers ``>= minimum``, else one :class:`UsageError`."""
    try:
        vals = [int(t) for t in text.split(",")]
    except ValueError:
        vals = []
    if not vals or min(vals) < minimum:
        raise UsageError(f"{flag} must be comma-separated integers >= {minimum} (e.g. {flag} 0,1,2), got {text!r}")
    return vals


def _check_number(flag: str, v, *, lo: float, lo_open: bool = False, hi: float | None = None) -> None:
    if not math.isfinite(v) or v < lo or (lo_open and v == lo) or (hi is not None and v >= hi):
        rng = f"in ({lo:g}, {hi:g})" if hi is not None else (f"> {lo:g}" if lo_open else f">= {lo:g}")
        raise UsageError(f"{flag} must be a finite number {rng}, got {v:g}")


def _check_count(flag: str, v: int, minimum: int) -> None:
    if v < minimum:
        raise UsageError(f"{flag} must be an integer >= {minimum}, got {v}")


def _common(args) -> tuple[list[int], float, float | None]:
    """``--seeds``, ``--softmax-lam``, ``--softmax-steps`` and ``--test-fraction``, checked:
    ``(seeds, softmax_lam, test_fraction)``.

    ``test_fraction`` is None with a separate test set (an MNIST directory or ``--test-data``), where
    ``--test-fraction`` is refused; else the flag or the command's default.
    """
    seeds = int_list("--seeds", args.seeds, minimum=0)
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds must be distinct, got {args.seeds!r}")
    _check_number("--softmax-lam", args.softmax_lam, lo=0.0)
    _check_count("--softmax-steps", args.softmax_steps, 1)
    fraction = args.test_fraction
    if args.command != "self-taught" and (is_mnist_dir(args) or args.test_data is not None):
        if fraction is not None:
            raise UsageError("--test-fraction splits --data; with a separate test set (an MNIST directory's t10k "
                             "files or --test-data) every row of --data trains: leave it out")
        return seeds, args.softmax_lam, None
    fraction = args.default_test_fraction if fraction is None else fraction
    _check_number("--test-fraction", fraction, lo=0.0, lo_open=True, hi=1.0)
    return seeds, args.softmax_lam, fraction


def autoencoder_configs(args, *, layers: int | None) -> tuple[TrainConfig, ...]:
    """The preset's autoencoder configs (``--preset``) with the flags given applied to every layer.

    ``--n-hidden`` is one integer per layer (``layers`` of them when given: 1 for ``self-taught``;
    ``None``: any number, the stack's depth). Not yet checked: :func:`checked_configs`.
    """
    command = "self-taught" if layers == 1 else "stacked"
    base = _PRESETS[command][args.preset]
    if args.n_hidden is not None:
        sizes = int_list("--n-hidden", args.n_hidden, minimum=1)
        if layers is not None and len(sizes) != layers:
            raise UsageError(f"--n-hidden takes {layers} value(s) here, got {args.n_hidden!r}")
        base = tuple(dataclasses.replace(base[min(i, len(base) - 1)], n_hidden=h) for i, h in enumerate(sizes))
    over = {f: v for f, v in (("rho", args.rho), ("beta", args.beta), ("lam", args.lam), ("steps", args.steps),
                              ("dtype", args.dtype)) if v is not None}
    return tuple(dataclasses.replace(c, **over) for c in base)


def checked_configs(configs: tuple[TrainConfig, ...]) -> tuple[TrainConfig, ...]:
    """``configs`` checked by :func:`sae_jax._src.config.validate_config` (x64 on for float64), errors naming the flag."""
    set_precision(configs[0].dtype)
    for c in configs:
        try:
            validate_config(c)
        except InputError as e:
            msg = str(e)
            field = re.match(r"\w+", msg).group(0)
            raise UsageError(_AE_FLAGS[field] + msg[len(field):] if field in _AE_FLAGS else msg) from None
    return configs


# --- output ----------------------------------------------------------------------------------------


def _progress(args, desc: str):
    """``(callback, close)`` for the experiments' ``progress(done, total, stage)``: a bar on stderr."""
    if getattr(args, "no_progress", False):
        return None, lambda: None
    state = {}

    def on_stage(done, total, stage):
        if "bar" not in state:
            state["bar"] = progress_bar(total, desc=desc, unit="stage")
        bar = state["bar"]
        bar.update(done - bar.n)
        bar.set_postfix_str(stage, refresh=True)

    return on_stage, lambda: state["bar"].close() if "bar" in state else None


def _out_dir(args, command: str, data_name: str) -> Path:
    if args.out is not None:
        out = Path(args.out)
    else:
        stem = os.path.splitext(os.path.basename(data_name))[0] or "data"
        base = os.path.join("runs", f"{command}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
        out, i = Path(base), 1
        while out.exists():
            out, i = Path(f"{base}-{i}"), i + 1
    check_run_dir(out)
    check_writable(out, "--out")  # before the experiment's work
    if (out / RESULTS_JSON).exists():
        raise UsageError(f"--out {str(out)!r} already holds a {RESULTS_JSON}; choose another directory")
    return out


def _square(n: int) -> bool:
    return math.isqrt(n) ** 2 == n


def _report(args, table: Table, results: dict | None = None, out: Path | None = None) -> None:
    if args.json:
        print(json.dumps(results if results is not None else table.to_dict(), indent=2))
    else:
        print(table.text())
        if out is not None:
            print(f"wrote {out}/: " + " ".join(sorted(p.name for p in out.iterdir() if not p.name.startswith("."))))


def _results(command: str, table: Table, spec: DataSpec, settings: dict, t0: float) -> dict:
    return {
        "command": command,
        "sae_jax_version": __version__,
        "data": spec.to_dict(),
        "settings": settings,
        "table": table.to_dict(),
        "ufldl_mnist_reference": UFLDL_MNIST,
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }


# --- the commands ----------------------------------------------------------------------------------


def cmd_probe(args) -> int:
    seeds, lam, fraction = _common(args)
    params, config = ckpt.load_params(args.params)
    output = config.get("output", "sigmoid")
    x, y, spec = load_labelled(args, output=output, run=args.params)
    n = params.W1.shape[1]
    if x.shape[1] != n:
        raise UsageError(f"data {spec.name!r} has {x.shape[1]} features per sample, the run's parameters expect n_visible={n}")
    test, test_spec = load_test_set(args, output=output, n_features=n)
    dtype = np.asarray(params.W1).dtype
    set_precision(dtype)
    check_lam(lam, dtype=dtype)
    if test is None:
        split(len(y), test_fraction=fraction, seed=seeds[0])  # every split has the same sizes
    else:
        test = (test[0].astype(dtype), test[1])
    on_stage, close = _progress(args, "probe")
    t0 = time.perf_counter()
    try:
        table = probe(Params(*params), x.astype(dtype), y, seeds=seeds, test_fraction=fraction or 0.3, test=test,
                      lam=lam, steps=args.softmax_steps, progress=on_stage)
    finally:
        close()
    table = table._replace(notes=table.notes + (f"run {args.params}: {params.W1.shape[0]} hidden units, {dtype}; "
                                                f"data {spec.name}",))
    _report(args, table, _results("probe", table, spec, {
        "run": os.fspath(args.params), "seeds": seeds, "test_fraction": fraction, "softmax_lam": lam,
        "softmax_steps": args.softmax_steps} | ({"test_data": test_spec} if test_spec else {}), t0))
    return 0


def cmd_self_taught(args) -> int:
    seeds, lam, fraction = _common(args)  # (--test-data, --test-labels: refused by the parser)
    (config,) = checked_configs(autoencoder_configs(args, layers=1))
    unl = int_list("--unlabelled-classes", args.unlabelled_classes, minimum=0)
    lab = int_list("--labelled-classes", args.labelled_classes, minimum=0)
    ordered = (args.split or ("ordered" if args.preset == "mnist" else "random")) == "ordered"
    x, y, spec = load_labelled(args, output=config.output)
    check_lam(lam, dtype=config.dtype)
    m_lab = int(np.isin(y, lab).sum())
    if m_lab >= 2:
        split(m_lab, test_fraction=fraction, seed=seeds[0])
    out = _out_dir(args, "self-taught", spec.name)
    picture = out / "features.png" if _square(x.shape[1]) else None
    run = dict(config=config, unlabelled_classes=unl, labelled_classes=lab, seeds=seeds,
               test_fraction=fraction, ordered=ordered, lam=lam, softmax_steps=args.softmax_steps)
    return _run("self-taught", args, out, spec, self_taught, x, y, run, picture, extra_settings={
        "preset": args.preset, "config": config.to_dict()})


def cmd_stacked(args) -> int:
    seeds, lam, fraction = _common(args)
    _check_count("--fine-tune-steps", args.fine_tune_steps, 0)
    configs = checked_configs(autoencoder_configs(args, layers=None))
    x, y, spec = load_labelled(args, output=configs[0].output)
    test, test_spec = load_test_set(args, output=configs[0].output, n_features=x.shape[1])
    check_lam(lam, dtype=configs[0].dtype)
    if test is None:
        split(len(y), test_fraction=fraction, seed=seeds[0])
    out = _out_dir(args, "stacked", spec.name)
    picture = out / "second_layer.png" if _square(x.shape[1]) and len(configs) >= 2 else None
    run = dict(configs=configs, seeds=seeds, test_fraction=fraction or 0.3, test=test, lam=lam,
               softmax_steps=args.softmax_steps, fine_tune_steps=args.fine_tune_steps)
    return _run("stacked", args, out, spec, stacked_digits, x, y, run, picture, extra_settings={
        "preset": args.preset, "configs": [c.to_dict() for c in configs]}
        | ({"test_fraction": None, "test_data": test_spec} if test_spec else {}))


def _run(command: str, args, out: Path, spec: DataSpec, experiment, x, y, run: dict, picture, *,
         extra_settings: dict) -> int:
    """Run ``experiment(x, y, **run)`` with a progress bar; write ``out/results.json``; print the table."""
    configs = (run["config"],) if "config" in run else run["configs"]
    dtype = configs[0].dtype
    if not args.json:
        test = f", tested on {len(run['test'][1])} separate rows" if run.get("test") is not None else ""
        ae = ", ".join(f"{c.n_hidden} hidden lam {c.lam:g} beta {c.beta:g} rho {c.rho:g} {c.steps} steps" for c in configs)
        print(f"sae-jax {command}: {len(run['seeds'])} seed(s) on {spec.name} ({x.shape[0]} x {x.shape[1]}){test}, "
              f"preset {args.preset}, {dtype} -> {out}\n  autoencoder(s): {ae}; softmax: lam {run['lam']:g}, "
              f"{run['softmax_steps']} steps", flush=True)
    on_stage, close = _progress(args, command)
    t0 = time.perf_counter()
    try:
        table = experiment(x, y, **run, picture=picture, progress=on_stage)
    finally:
        close()
    if picture is None:
        why = "the inputs are not square images" if not _square(x.shape[1]) else "a one-layer stack has no second layer"
        table = table._replace(notes=table.notes + (f"no picture: {why}",))
    # the flags' names: "lam" is the autoencoders' (in the config), the softmax's is "softmax_lam"
    settings = {("softmax_lam" if k == "lam" else k): v for k, v in run.items()
                if k not in ("config", "configs", "test")} | extra_settings
    results = _results(command, table, spec, settings, t0)
    out.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_text(out / RESULTS_JSON, json.dumps(results, indent=2) + "\n")
    _report(args, table, results, out)
    if not args.json:
        print(f"{command}: {results['elapsed_s']:.1f} s", file=sys.stderr)
    return 0
