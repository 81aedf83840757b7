r"""Hyperparameter sweeps: a grid of (β, ρ, λ) settings trained in one compiled run.

:func:`sweep` trains every setting of a grid from the same initial parameters, on the same
data and (for Adam / SGD) the same minibatches, with the trainer's own chunk runner mapped
over the settings: λ, β, ρ are traced arguments of that runner
(:class:`~sae_jax._src.training.Hyperparams`), so the whole grid is **one compilation and one
dispatch per chunk**, whatever its size or values. Two ways to map, one program each:
``batching="vmap"`` (``jax.vmap``: all settings at once, for accelerators) and ``"map"``
(``lax.map``: one setting after another inside the program, the default on CPU, where one
setting already keeps the cores busy). Each setting follows the trajectory its own
:func:`~sae_jax.training.train` run would: bit for bit with ``"map"`` on CPU, to 1e-9 relative with
``"vmap"`` (batched products may sum in another order; both tested in float64).
The grid — the settings it stands for, checked, and their names — is :mod:`sae_jax._src.grid`
(:func:`~sae_jax._src.grid.grid_settings`, re-exported here).

The objective of setting :math:`k` is the trainer's,

.. math::
    J_k(W, b) = \frac{1}{m}\sum_i \tfrac12\lVert \hat x^{(i)} - x^{(i)}\rVert^2
      + \frac{\lambda_k}{2}\lVert W\rVert^2 + \beta_k \sum_j \mathrm{KL}(\rho_k \,\Vert\, \hat\rho_j),

and what a sweep is for is the trade-off between its first and last terms: the summary
reports, per setting, the reconstruction term, :math:`\sum_j \mathrm{KL}(\rho_k\Vert\hat\rho_j)`
(the sparsity term without its weight, comparable across β) and :math:`\hat\rho` against
:math:`\rho_k`; :func:`sae_jax.display.save_sweep_png` draws them.

A setting whose cost, gradient or parameters become non-finite is frozen at its last good
state and reported (``diverged_step``, ``diverged_cause``); the others carry on.

Output directory (``out_dir``)::

    sweep.json                 config, grid, data spec and hash, timings, the summary
    sweep-checkpoint.safetensors   every setting's state and metrics: resume or extend the sweep
    summary.csv                one row per setting: λ, β, ρ, final cost and terms, ρ̂, divergence
    tradeoff.png               reconstruction vs Σ KL(ρ‖ρ̂), and mean ρ̂ vs ρ, across the grid
    settings/000-beta0-rho0.01-lam0.0001/
        params.safetensors     that setting's parameters (config in the metadata: its λ, β, ρ)
        metrics.jsonl          one row per chunk, as a train run's
        config.json            its TrainConfig (a train() with it reproduces the setting)
        filters.png            its filters (square n_visible only)

While it runs, the sweep keeps ``sweep-checkpoint.safetensors`` in ``out_dir`` (every setting's
state, stacked, and the metrics so far; written atomically at step 0, every
``checkpoint_every`` steps and at the end): a killed sweep leaves that checkpoint (and nothing
half-written) and ``sweep(..., out_dir=..., resume=True)`` (``sae-jax sweep --resume DIR``)
continues it to the same result as an uninterrupted sweep. The results above are written after
the last step, ``sweep.json`` last: a directory without it is unfinished.

Each ``settings/*`` directory works with ``sae-jax visualize`` and ``sae-jax encode``, and
``train(x, config, params=...)`` warm-starts from its parameters.

Examples:
  >>> from sae_jax._src.sweep import grid_settings
  >>> [tuple(s.values()) for s in grid_settings({"beta": [0, 3], "rho": 0.05})]  # (beta, rho, lam)
  [(0.0, 0.05, 0.0001), (3.0, 0.05, 0.0001)]
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
import time
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import checkpoint as ckpt
from . import display
from .config import RESUMABLE_FIELDS, TrainConfig, validate_config
from .cost import cost_terms, sparsity
from .grid import SWEPT, grid_json, grid_settings, setting_dir, setting_label
from .inputs import check_batch_size, spec_dict, training_data
from .loop import CAUSES, SWEEP_BATCHING, Hyperparams, TrainState, init_state, l1_of, runner_for
from .params import Params
from .rundir import RunDir, atomic_picture, check_run_dir, check_writable, lock_dir
from .step import make_optimizer
from .validate import InputError, check_data
from .version import __version__

__all__ = ["SWEPT", "SweepResult", "grid_settings", "sweep"]

SWEEP_JSON = "sweep.json"
SUMMARY_CSV = "summary.csv"
TRADEOFF_PNG = "tradeoff.png"
SWEEP_CHECKPOINT = "sweep-checkpoint.safetensors"
SWEEP_FORMAT = "sae-jax-sweep-checkpoint"

_SUMMARY_FIELDS = (
    "index", "beta", "rho", "lam", "step", "cost", "reconstruction", "weight_decay", "sparsity",
    "kl_sum", "rho_hat_mean", "rho_hat_min", "rho_hat_max", "mse", "diverged_step", "diverged_cause", "dir",
)


class SweepResult(NamedTuple):
    settings: list  # K dicts {"beta", "rho", "lam"}, in grid order
    params: Params  # every setting's final parameters, stacked: W1 (K, n_hidden, n_visible), ...
    state: TrainState  # the batched final state (params, opt_state, rho_ema with a leading K axis)
    metrics: list  # per setting, one dict per chunk (the rows of its metrics.jsonl)
    summary: list  # per setting, the final row with its λ, β, ρ, Σ KL and divergence (summary.csv)
    config: TrainConfig
    out_dir: Path | None
    compile_s: float  # seconds compiling the sweep's runner (0 if cached)
    train_s: float  # seconds in the training loop, excluding compilation
    batching: str  # "vmap" or "map": how the compiled program ran the settings

    def params_at(self, k: int) -> Params:
        """Setting ``k``'s parameters (a plain :class:`~sae_jax.Params`)."""
        return jax.tree.map(lambda a: a[k], self.params)  # (tied: W2 stays None)

    def state_at(self, k: int) -> TrainState:
        """Setting ``k``'s final :class:`~sae_jax._src.training.TrainState`, to continue it with
        ``train(x, dataclasses.replace(config, **settings[k], steps=more), init_state=...)``."""
        pick = lambda t: jax.tree.map(lambda a: a[k], t)  # noqa: E731
        st = self.state
        return TrainState(pick(st.params), pick(st.opt_state), st.step, st.key, pick(st.rho_ema))


@functools.partial(jax.jit, static_argnames=("output", "batching"))
def _terms_k(params, x, hp: Hyperparams, l1=None, *, output, batching):
    """Full-data cost terms of every setting, and Σ_j KL(ρ‖ρ̂_j) (the sparsity term at β = 1),
    mapped over the settings as the training was (``lax.map`` or ``vmap``)."""

    def one(args):
        p, lam, beta, rho = args
        t = cost_terms(p, x, lam=lam, beta=beta, rho=rho, output=output, l1=l1)
        return t, sparsity(t.rho_hat, rho=rho, beta=jnp.ones_like(beta))

    args = (params, hp.lam, hp.beta, hp.rho)
    return jax.vmap(one)(args) if batching == "vmap" else lax.map(one, args)


def _evaluate_k(params, x, hp: Hyperparams, config: TrainConfig, batching: str) -> list[dict]:
    l1 = l1_of(config)
    t, kl = jax.device_get(_terms_k(params, x, hp, l1, output=config.output, batching=batching))
    rh = np.asarray(t.rho_hat, np.float64)
    cols = dict(cost=t.cost, reconstruction=t.reconstruction, weight_decay=t.weight_decay, sparsity=t.sparsity, kl_sum=kl)
    if l1 is not None:
        cols["l1"] = t.l1
    return [
        {**{name: float(v[k]) for name, v in cols.items()}, "rho_hat_mean": float(rh[k].mean()),
         "rho_hat_min": float(rh[k].min()), "rho_hat_max": float(rh[k].max()),
         "mse": 2.0 * float(t.reconstruction[k]) / x.shape[1]}
        for k in range(rh.shape[0])
    ]


def sweep(
    x=None,
    config: TrainConfig | None = None,
    grid=None,
    *,
    out_dir=None,
    data_spec=None,
    progress: Callable[[dict], None] | None = None,
    pictures: bool = True,
    batching: str = "auto",
    resume: bool = False,
) -> SweepResult:
    r"""Train every (β, ρ, λ) setting of ``grid`` in one compiled run (vmapped, or ``lax.map``-ed on CPU).

    Args:
      x: training data ``(m, n_visible)``, samples as rows (cast to ``config.dtype``); may be
        ``None`` when ``data_spec`` is given.
      config: a :class:`TrainConfig` shared by all settings (optimizer, steps, n_hidden, seed,
        dtype...); its ``lam``/``beta``/``rho`` fill in what the grid leaves out. Full-batch
        L-BFGS or minibatch Adam / SGD (all settings see the same minibatches).
      grid: see :func:`grid_settings`, e.g. ``{"beta": [0, 1, 3], "rho": [0.01, 0.05]}``
        (6 settings).
      out_dir: directory to write (see the module doc); ``None``: in memory only. A directory
        that already holds a ``sweep.json`` or an unfinished sweep's checkpoint is refused, as is
        one another process's run or sweep is writing (:class:`sae_jax._src.rundir.DirLock`).
      data_spec: a :class:`sae_jax.data.DataSpec` (or dict) recorded with the sweep.
      progress: called after every chunk with ``{"step", "steps", "settings", "elapsed_s"}``.
      pictures: write ``tradeoff.png`` and each setting's ``filters.png`` (needs matplotlib).
      batching: how the one compiled program runs the settings: ``"vmap"`` (all at once, one
        wide program: for GPUs/TPUs, where one small setting leaves the device idle),
        ``"map"`` (``lax.map``: one after another inside the program; on a CPU a single
        setting already keeps the cores busy and vmap's K-fold arrays fall out of cache:
        measured 4x slower than ``"map"`` for 16 exercise-size L-BFGS settings on 2 cores,
        ``benchmarks/NOTES.md``), or ``"auto"`` (default: ``"map"`` on CPU, else ``"vmap"``).
        Both compile once and agree with single runs.
      resume: continue the sweep in ``out_dir`` from its ``sweep-checkpoint.safetensors``
        (bit-identical to an uninterrupted sweep; ``config``, ``grid`` and the data default to the
        checkpoint's, and a given ``config`` may differ only in ``steps``, ``chunk`` and
        ``checkpoint_every``, as for ``train``). Also writes a finished sweep's results again,
        or extends it to more ``steps``.

    Returns:
      :class:`SweepResult`; ``result.params_at(k)`` is setting ``k``'s :class:`~sae_jax.Params`.

    Raises:
      InputError: a bad grid, config, data or output directory, before anything is written.

    Example:
      >>> import numpy as np
      >>> from sae_jax.training import TrainConfig
      >>> x = np.random.default_rng(0).uniform(0.1, 0.9, (50, 4))
      >>> cfg = TrainConfig(n_hidden=2, optimizer="adam", batch_size=10, steps=5, dtype="float32")
      >>> r = sweep(x, cfg, {"beta": [0.0, 3.0], "rho": [0.05, 0.1]})
      >>> len(r.summary), r.params.W1.shape
      (4, (4, 2, 4))
    """
    if batching not in ("auto", *SWEEP_BATCHING):
        raise InputError(f"batching must be one of {('auto', *SWEEP_BATCHING)}, got {batching!r}")
    out_dir = Path(out_dir) if out_dir is not None else None
    if resume and out_dir is None:
        raise InputError("resume=True needs out_dir (the directory of the sweep to continue)")
    locks: list = []  # the sweep directory's DirLock, held to the end
    try:
        if out_dir is not None:
            check_run_dir(out_dir, "sweep directory")
            if out_dir.is_dir():
                locks.append(lock_dir(out_dir, "sweep directory"))
        return _sweep(x, config, grid, out_dir, data_spec, progress, pictures, batching, resume, locks)
    finally:
        for lock in locks:
            lock.release()


def _sweep(x, config, grid, out_dir, data_spec, progress, pictures, batching, resume, locks) -> SweepResult:
    saved = None
    if resume:
        saved = load_sweep_checkpoint(out_dir / SWEEP_CHECKPOINT)
        config, grid, batching = _reconcile(out_dir, saved, config, grid, batching)
        if x is None and data_spec is None:
            data_spec = saved["data_spec"]
            if data_spec is None:
                raise InputError(
                    f"sweep checkpoint in {str(out_dir)!r} has no data spec (it was trained on an in-memory "
                    "array): pass the same x again"
                )
    else:
        config = TrainConfig() if config is None else config
        if out_dir is not None:
            _check_fresh(out_dir)
    validate_config(config)
    if batching == "auto":
        batching = "map" if jax.default_backend() == "cpu" else "vmap"
    settings = grid_settings(grid, config)
    if saved is not None and settings != saved["settings"]:
        raise InputError(
            f"cannot resume {str(out_dir)!r} with a different grid: {len(settings)} settings given, the "
            f"checkpoint's {len(saved['settings'])} differ (leave the grid out to continue the checkpoint's)"
        )
    if out_dir is not None:
        check_writable(out_dir, "sweep directory")
    data_spec = spec_dict(data_spec)
    x_np = training_data(x, data_spec, config, "sweep")
    check_batch_size(config, x_np.shape[0])
    sha = ckpt.data_sha256(x_np)
    x_dev = jnp.asarray(x_np)
    template = init_state(config, x_dev, make_optimizer(config))
    check_data(x_dev, template.params, output=config.output)

    K = len(settings)
    dtype = jnp.dtype(config.dtype)
    hp = Hyperparams(*(jnp.asarray([s[k] for s in settings], dtype) for k in Hyperparams._fields))

    batched = lambda a: None if a is None else jnp.broadcast_to(a, (K, *jnp.shape(a)))  # noqa: E731
    state = template._replace(params=jax.tree.map(batched, template.params),
                              opt_state=jax.tree.map(batched, template.opt_state), rho_ema=batched(template.rho_ema))
    if saved is not None:
        if saved["data_sha256"] != sha:
            raise InputError(
                f"the data differ from those the sweep in {str(out_dir)!r} was trained on (SHA-256 mismatch); "
                "resume with the same data"
            )
        state = _restored_state(saved, state, out_dir / SWEEP_CHECKPOINT)

    t0 = time.perf_counter()
    runner = runner_for(config, batching=batching)
    jax.block_until_ready(runner(state, x_dev, jnp.zeros((), jnp.int32), hp))  # compile (or hit the cache)
    compile_s = time.perf_counter() - t0

    metrics: list[list[dict]] = [[] for _ in range(K)]

    def log_rows(st, extra):
        for k, row in enumerate(_evaluate_k(st.params, x_dev, hp, config, batching)):
            metrics[k].append({"step": int(st.step), **row, **extra[k]})

    diverged: list = [None] * K
    train_s = 0.0
    if saved is None:
        log_rows(state, [{"step_time_s": None}] * K)
    else:
        metrics, train_s = saved["metrics"], saved["train_s"]
        diverged = [None if d is None else tuple(d) for d in saved["diverged"]]
    step = int(state.step)

    def save(st, last_step=None):
        _save_sweep_checkpoint(
            out_dir / SWEEP_CHECKPOINT, st, config=config, settings=settings, grid=grid, batching=batching,
            data_spec=data_spec, data_sha256=sha, metrics=metrics, diverged=diverged, train_s=train_s,
            note=None if last_step is None else _kept_note(out_dir, last_step),
        )

    if out_dir is not None:
        if not out_dir.is_dir():  # created now: lock it, then look again (another sweep may have begun)
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ckpt.WriteError(out_dir, "sweep directory", e) from None
            locks.append(lock_dir(out_dir, "sweep directory"))
            if saved is None:
                _check_fresh(out_dir)
        _remove_stale_temp_files(out_dir)
        if saved is None:
            save(state)  # step 0: from here on a kill leaves a sweep that resumes
    saved_step = step
    C = config.chunk
    while step < config.steps:
        n = min(C - step % C, config.steps - step)
        t1 = time.perf_counter()
        out = jax.block_until_ready(runner(state, x_dev, jnp.asarray(n, jnp.int32), hp))
        dt = time.perf_counter() - t1
        train_s += dt
        values, bad, cause, bad_value = (np.asarray(a) for a in jax.device_get(out[1:]))
        for k in range(K):
            if bad[k] >= 0 and diverged[k] is None:
                diverged[k] = (int(bad[k]), CAUSES.get(int(cause[k]), "non-finite value"), float(bad_value[k]))
        state = out.state
        step = int(state.step)
        with np.errstate(all="ignore"):
            batch_costs = np.nanmean(np.asarray(values[:, :n], np.float64), axis=1)
        log_rows(state, [
            {"batch_cost": float(batch_costs[k]) if np.isfinite(batch_costs[k]) else None,
             "step_time_s": dt / n, "elapsed_s": train_s} for k in range(K)
        ])
        every = config.checkpoint_every
        if out_dir is not None and (step // every > saved_step // every or step == config.steps):
            save(state, last_step=saved_step)
            saved_step = step
        if progress is not None:
            progress({"step": step, "steps": config.steps, "settings": K, "elapsed_s": train_s})

    timing = ("batch_cost", "step_time_s", "elapsed_s")
    summary = [
        {"index": k, **s, **{key: v for key, v in metrics[k][-1].items() if key not in timing},
         "diverged_step": None if d is None else d[0], "diverged_cause": None if d is None else d[1],
         "dir": f"settings/{setting_dir(k, s)}"}
        for k, (s, d) in enumerate(zip(settings, diverged))
    ]
    if out_dir is not None:
        try:
            _write(out_dir, x_np, config, settings, grid, data_spec, state, metrics, summary,
                   compile_s, train_s, pictures, batching)
        except OSError as e:  # the results are in the final checkpoint: a resume writes them again
            if not isinstance(e, ckpt.WriteError):
                e = ckpt.WriteError(e.filename or out_dir, "sweep results", e)
            e.note, e.exit_code = _kept_note(out_dir, step), 1
            raise e from None
    return SweepResult(settings, state.params, state, metrics, summary, config, out_dir, compile_s, train_s, batching)


def _kept_note(out_dir: Path, step: int) -> str:
    return (f"; the last good sweep checkpoint (step {step}) in {str(out_dir)!r} is kept: "
            f"resume it (sae-jax sweep --resume {out_dir})")


def _check_fresh(out_dir: Path) -> None:
    """A new sweep's directory holds neither a finished sweep nor an unfinished one's checkpoint."""
    if (out_dir / SWEEP_JSON).exists():
        raise InputError(f"output directory {str(out_dir)!r} already holds a {SWEEP_JSON}; choose another")
    if (out_dir / SWEEP_CHECKPOINT).exists():
        raise InputError(
            f"output directory {str(out_dir)!r} holds an unfinished sweep ({SWEEP_CHECKPOINT}); resume it "
            f"(resume=True; sae-jax sweep --resume {out_dir}) or choose another"
        )


def _reconcile(out_dir: Path, saved: dict, config, grid, batching):
    """The config, grid and batching a resume continues with: the checkpoint's, where given equal
    (``steps``, ``chunk`` and ``checkpoint_every`` may differ, as for a resumed ``train``)."""
    base = TrainConfig.from_dict(saved["config"])
    if config is not None:
        validate_config(config)
        diff = [f.name for f in dataclasses.fields(TrainConfig)
                if f.name not in RESUMABLE_FIELDS and getattr(config, f.name) != getattr(base, f.name)]
        if diff:
            raise InputError(
                f"cannot resume {str(out_dir)!r} with a different config: "
                + ", ".join(f"{k}={getattr(config, k)!r} (checkpoint has {getattr(base, k)!r})" for k in diff)
            )
        base = dataclasses.replace(base, **{k: getattr(config, k) for k in RESUMABLE_FIELDS})
    if base.steps < saved["step"]:
        raise InputError(
            f"cannot resume {str(out_dir)!r} to steps={base.steps}: its checkpoint is already at step "
            f"{saved['step']} (pass steps >= {saved['step']})"
        )
    if batching == "auto":
        batching = saved["batching"]
    elif batching != saved["batching"]:
        raise InputError(
            f"cannot resume {str(out_dir)!r} with batching={batching!r}: it ran with {saved['batching']!r} "
            "(the two may sum in another order); leave batching='auto'"
        )
    return base, saved["grid"] if grid is None else grid, batching


_OUTPUT_NAMES = (SWEEP_JSON, SUMMARY_CSV, SWEEP_CHECKPOINT, ckpt.PARAMS_NAME, ckpt.METRICS_NAME, ckpt.CONFIG_NAME)
_PICTURE_NAMES = (TRADEOFF_PNG, "filters.png")


def _remove_stale_temp_files(out_dir: Path) -> None:
    """The temp files a killed writer left (``.summary.csv.x1y2.tmp``, ``.tradeoff.png.tmp.png``...)."""
    patterns = [f".{n}.*.tmp" for n in _OUTPUT_NAMES] + [f".{n}.tmp.png" for n in _PICTURE_NAMES]
    for d in (out_dir, *sorted((out_dir / "settings").glob("*"))):
        if d.is_dir():
            for pattern in patterns:
                for f in d.glob(pattern):
                    f.unlink(missing_ok=True)


def _save_sweep_checkpoint(path: Path, state: TrainState, *, config, settings, grid, batching, data_spec,
                           data_sha256, metrics, diverged, train_s, note=None) -> None:
    """Every setting's state (stacked), the metrics so far and the sweep's definition, checksummed,
    atomically: what :func:`sweep` with ``resume=True`` continues from."""
    tensors = {f"params/{k}": np.asarray(v) for k, v in zip(ckpt.PARAM_FIELDS, state.params) if v is not None}
    for i, leaf in enumerate(jax.tree.leaves(state.opt_state)):
        tensors[f"opt/{i:05d}"] = np.asarray(leaf)
    tensors["step"] = np.asarray(int(state.step), np.int64)
    tensors["key"] = np.asarray(state.key)
    if state.rho_ema is not None:
        tensors["rho_ema"] = np.asarray(state.rho_ema)
    metadata = {
        "format": SWEEP_FORMAT, "format_version": "1", "step": str(int(state.step)),
        "config": json.dumps(config.to_dict(), sort_keys=True), "settings": json.dumps(settings),
        "grid": json.dumps(grid_json(grid)), "batching": batching, "data_spec": json.dumps(data_spec, sort_keys=True),
        "data_sha256": data_sha256, "metrics": json.dumps(metrics), "diverged": json.dumps(diverged),
        "train_s": repr(float(train_s)),
    }
    metadata["sha256"] = ckpt._digest(tensors, metadata)
    try:
        ckpt.atomic_write_bytes(path, ckpt._serialize(tensors, metadata), what="sweep checkpoint")
    except ckpt.WriteError as e:
        if note is not None:  # mid-run: the previous checkpoint is intact
            e.note, e.exit_code = note, 1
        raise


def load_sweep_checkpoint(path) -> dict:
    """Read and verify a sweep checkpoint (:class:`~sae_jax.InputError` if missing, truncated,
    corrupted or not one): ``{"tensors", "step", "config", "settings", "grid", "batching",
    "data_spec", "data_sha256", "metrics", "diverged", "train_s"}``."""
    tensors, md = ckpt.read_safetensors(path, "sweep checkpoint")
    if md.get("format") != SWEEP_FORMAT or md.get("format_version") != "1":
        raise InputError(f"{str(path)!r} is not a sae-jax sweep checkpoint (format={md.get('format')!r})")
    if ckpt._digest(tensors, md) != md.get("sha256"):
        raise InputError(f"sweep checkpoint {str(path)!r} is corrupt: its SHA-256 checksum does not match")
    try:
        out = {"tensors": tensors, "step": int(md["step"]), "batching": md["batching"],
               "data_sha256": md["data_sha256"], "train_s": float(md["train_s"])}
        for k in ("config", "settings", "grid", "data_spec", "metrics", "diverged"):
            out[k] = json.loads(md[k])
    except (KeyError, ValueError) as e:  # pragma: no cover - guarded by the checksum
        raise InputError(f"sweep checkpoint {str(path)!r} has incomplete metadata ({e})") from None
    return out


def _restored_state(saved: dict, template: TrainState, path: Path) -> TrainState:
    """The checkpoint's batched state, every array checked against the fresh batched ``template``."""
    tensors = saved["tensors"]

    def take(name, t):
        a = tensors.get(name)
        if a is None or a.shape != tuple(jnp.shape(t)) or a.dtype != jnp.asarray(t).dtype:
            got = "missing" if a is None else f"{a.shape} {a.dtype}"
            raise InputError(
                f"sweep checkpoint {str(path)!r}: {name} is {got}, expected {tuple(jnp.shape(t))} "
                f"{jnp.asarray(t).dtype} (the config's)"
            )
        return jnp.asarray(a)

    t_leaves, treedef = jax.tree.flatten(template.opt_state)
    opt = jax.tree.unflatten(treedef, [take(f"opt/{i:05d}", t) for i, t in enumerate(t_leaves)])
    params = Params(*(None if t is None else take(f"params/{k}", t) for k, t in zip(ckpt.PARAM_FIELDS, template.params)))
    rho_ema = None if template.rho_ema is None else take("rho_ema", template.rho_ema)
    return TrainState(params, opt, jnp.asarray(saved["step"], jnp.int32), take("key", template.key), rho_ema)


def _write(out_dir: Path, x_np, config, settings, grid, data_spec, state, metrics, summary,
           compile_s, train_s, pictures, batching) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    n_visible = int(x_np.shape[1])
    square = math.isqrt(n_visible) ** 2 == n_visible
    for k, s in enumerate(settings):
        run = RunDir(out_dir / summary[k]["dir"], dataclasses.replace(config, **s))
        run.path.mkdir(parents=True, exist_ok=True)
        p = jax.tree.map(lambda a: np.asarray(a[k]), state.params)
        run.save_params(p, run.config.to_dict(), step=int(state.step))
        run.write_metrics(metrics[k])
        run.write_config({
            "config": run.config.to_dict(), "data_spec": data_spec, "n_visible": n_visible,
            "n_samples": int(x_np.shape[0]), "sweep": {"index": k, "dir": str(out_dir)},
        })
        if pictures and square:
            atomic_picture(run.path / "filters.png", lambda f: display.save_filters_png(p.W1, f, title=setting_label(s)))
    notes = [f"filters.png skipped: n_visible={n_visible} is not a square"] if pictures and not square else []
    buf = io.StringIO()
    fields = _SUMMARY_FIELDS[:9] + ("l1",) + _SUMMARY_FIELDS[9:] if l1_of(config) is not None else _SUMMARY_FIELDS
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in summary:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})
    ckpt.atomic_write_text(out_dir / SUMMARY_CSV, buf.getvalue())
    if pictures:
        atomic_picture(out_dir / TRADEOFF_PNG, lambda f: display.save_sweep_png(summary, f, title=(
            f"{len(settings)} settings, {config.optimizer} {config.steps} steps, "
            f"n_hidden={config.n_hidden}, {config.dtype}"
        )))
    ckpt.atomic_write_text(out_dir / SWEEP_JSON, json.dumps({
        "config": config.to_dict(),
        "swept": list(SWEPT),
        "grid": grid_json(grid),
        "data_spec": data_spec,
        "n_visible": n_visible,
        "n_samples": int(x_np.shape[0]),
        "data_sha256": ckpt.data_sha256(x_np),
        "sae_jax_version": __version__,
        "batching": batching,
        "compile_s": compile_s,
        "train_s": train_s,
        "notes": notes,
        "summary": summary,
    }, indent=2) + "\n")
