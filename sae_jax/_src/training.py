r"""Jitted training: full-batch L-BFGS (optax, zoom line search) or minibatch Adam / SGD.

:func:`train` is the whole of a run, read top to bottom: open (or resume) the run directory,
load and check the data, choose the starting state, compile, then the loop of chunks with its
divergence checks, then the final files. Each idea lives in its own module:

=======================  ===================================================================
:mod:`sae_jax._src.config`    :class:`TrainConfig`, its checks (:func:`validate_config`)
:mod:`sae_jax._src.step`      the objective (:func:`make_value_and_grad`), the optax transformation
                         (:func:`make_optimizer`), one step (:func:`make_step`) — the seam for
                         other gradients (sharded, chunked) — and :func:`value_fn_from`
:mod:`sae_jax._src.loop`      :class:`TrainState`, the compiled chunk runner (``lax.while_loop``,
                         λ, β, ρ traced: one executable for every setting), divergence replay,
                         the full-data checks between chunks
:mod:`sae_jax._src.inputs`    the data (validation split, SHA-256), warm-start checks
:mod:`sae_jax._src.rundir`    the run directory: config, checkpoints, metrics, params, pictures
=======================  ===================================================================

The loop runs ``config.chunk`` steps per dispatch, so the Python overhead is one call per
chunk. It stops on the first non-finite cost, gradient or parameter (:class:`TrainingDiverged`,
naming the step and the cause; the last good checkpoint is left as it was) and resumes
bit-identically (``resume=True``). A checkpoint is written only for a state whose full-data
cost and gradient are finite, so the checkpoint a divergence leaves is always one training can
continue from. ``params=`` / ``init_state=`` warm-start from given parameters or continue a
:class:`TrainState` in memory. :func:`sae_jax.training.sweep` maps the same runner over a grid of
(λ, β, ρ) settings.

Minibatches and :math:`\hat\rho`
--------------------------------
With ``optimizer="adam"`` or ``"sgd"`` each step sees ``batch_size`` rows (a fresh seeded
permutation every epoch; the last incomplete batch of an epoch is dropped), and with
``rho_hat="batch"`` (default) the sparsity penalty uses **the batch's estimate**
:math:`\hat\rho^B` — a noisy, biased stand-in for the full-data :math:`\hat\rho` at small
batches. ``rho_hat="ema"`` penalises a running estimate
:math:`\alpha\,\operatorname{sg}(\hat\rho_{t-1}) + (1-\alpha)\hat\rho^B_t` instead
(:mod:`sae_jax._src.minibatch`, ``ema_decay`` = :math:`\alpha`), starting from the full-data
:math:`\hat\rho` of the initial parameters. L-BFGS is always full-batch (exact
:math:`\hat\rho`).

Determinism: for a given config, data and backend, the result is a pure function of
``config.seed`` (init and the data permutations both derive from it).

Examples:
  >>> import numpy as np
  >>> from sae_jax.training import TrainConfig, train
  >>> x = np.random.default_rng(0).uniform(0.1, 0.9, (40, 4))
  >>> r = train(x, TrainConfig(n_hidden=2, optimizer="adam", batch_size=10, steps=6, chunk=3, dtype="float32"))
  >>> [row["step"] for row in r.metrics], r.params.W1.shape
  ([0, 3, 6], (2, 4))
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import metrics
from .config import GRADIENTS, OPTIMIZERS, RHO_HAT, TrainConfig, validate_config
from .cost import cost_terms
from .inputs import (
    TrainingData, check_callables, check_init_state, check_start_options, check_warm_params, load_training_data,
)
from .loop import (
    CAUSES,
    NOISE_STREAM,
    Hyperparams,
    TrainState,
    evaluate,
    hyperparams,
    init_state,
    l1_of,
    nonfinite_state,
    row_metrics,
    run_chunk,
    runner_for,
)
from .params import Params
from .rundir import RunDir, check_patch_shape
from .step import StepOutput, ValueAndGradFn, make_optimizer, make_step, make_value_and_grad, value_fn_from
from .validate import InputError, check_data
from .variants import corrupt

__all__ = [
    "GRADIENTS",
    "OPTIMIZERS",
    "RHO_HAT",
    "TrainConfig",
    "TrainState",
    "StepOutput",
    "TrainResult",
    "TrainingDiverged",
    "Hyperparams",
    "hyperparams",
    "validate_config",
    "make_value_and_grad",
    "value_fn_from",
    "make_optimizer",
    "make_step",
    "init_state",
    "evaluate",
    "train",
]

class TrainResult(NamedTuple):
    params: Params  # final parameters
    state: TrainState  # final state (for continuing in memory)
    metrics: list  # one dict per chunk (the rows of metrics.jsonl)
    config: TrainConfig
    run_dir: Path | None
    compile_s: float  # seconds spent compiling the chunk runner (0 if cached)
    train_s: float  # seconds in the training loop, excluding compilation
    # sae_jax.metrics.health_warning of the final row on the training rows (None: healthy): most
    # units dead or saturated, or a reconstruction no better than the mean predictor's
    warning: str | None = None
    # denoising runs: rho_hat_mean/min/max, sparsity (and l1) of the final parameters on a corrupted
    # copy of the training rows, the input training held rho_hat on (None without corruption: the
    # metrics rows are then of the training input already)
    input_metrics: dict | None = None


class TrainingDiverged(RuntimeError):
    """Training hit a non-finite cost, gradient or parameter. ``step`` and ``cause`` say where and what."""

    def __init__(self, message, *, step: int, cause: str, checkpoint_step: int | None, state=None):
        super().__init__(message)
        self.step = step
        self.cause = cause
        self.checkpoint_step = checkpoint_step
        self.state = state  # the last good state (parameters before the failing step)


def train(
    x=None,
    config: TrainConfig | None = None,
    *,
    run_dir=None,
    resume: bool = False,
    data_spec=None,
    progress: Callable[[dict], None] | None = None,
    value_and_grad_fn: ValueAndGradFn | None = None,
    pictures: bool = True,
    patch_shape=None,
    params: Params | None = None,
    init_state: TrainState | None = None,
) -> TrainResult:
    r"""Train a sparse autoencoder; optionally write (or resume) a run directory.

    Args:
      x: training data ``(m, n_visible)``, samples as rows (cast to ``config.dtype``). May be
        ``None`` when ``data_spec`` is given or when resuming (the checkpoint's spec is used).
      config: :class:`TrainConfig` (default: the UFLDL exercise). On resume, ``None`` means the
        checkpoint's config; otherwise it must equal it except for ``steps``, ``chunk`` and
        ``checkpoint_every``.
      run_dir: directory for ``config.json``, ``checkpoint.safetensors``, ``params.safetensors``,
        ``metrics.jsonl``, ``filters.png``, ``training_curve.png`` (:mod:`sae_jax._src.rundir`).
        ``None``: train in memory. A fresh run refuses a directory that already holds a checkpoint.
      resume: continue from ``run_dir``'s checkpoint; the result is bit-identical to an
        uninterrupted run.
      data_spec: a :class:`sae_jax.data.DataSpec` (or its dict) describing ``x``, stored in the
        checkpoint so a resume can rebuild the data.
      progress: called after every chunk with the metrics row (a dict).
      value_and_grad_fn: replaces the objective (see :func:`make_step`); e.g. a sharded gradient.
      pictures: write ``filters.png`` and ``training_curve.png`` at the end (needs matplotlib).
        A picture that cannot be drawn (``n_visible`` not a square and no ``patch_shape``,
        matplotlib missing) is skipped with a :class:`UserWarning` naming it and why: once
        training has run, the result is always returned.
      patch_shape: ``(rows, cols)`` of one filter in ``filters.png`` (``rows * cols ==
        n_visible``); default square. Checked with the other inputs, before any work.
      params: warm start from these :class:`~sae_jax.Params` (shapes ``(n_hidden, n_visible)``
        etc. of the config and ``x``, ``config.dtype``, finite) instead of the UFLDL init: a
        fresh optimizer state, step 0, ``config.steps`` steps.
      init_state: continue from a :class:`TrainState` in memory (a ``TrainResult.state``):
        parameters, optimizer state (L-BFGS memory, Adam moments), step counter, minibatch RNG
        and running ρ̂, checked against ``config`` (same optimizer layout and dtype; λ, β, ρ,
        the data and the learning rate may differ). ``config.steps`` *more* steps are taken, so
        ``train(x, c(steps=a))`` then ``train(x, c(steps=b), init_state=r.state)`` follows
        ``train(x, c(steps=a + b))`` (tested, float64 L-BFGS and Adam). The line search's cached
        objective is recomputed at the first step (the data or hyperparameters may have changed).
        A run directory records the total step count as ``steps``, so it resumes as usual.

    Returns:
      :class:`TrainResult`. Its ``warning`` is :func:`sae_jax.metrics.health_warning`'s line for
      the final parameters on the training rows — most hidden units dead or saturated, or a
      reconstruction no better than the mean predictor's on the same rows — or ``None``; nothing
      is printed or raised (``sae-jax train`` prints it to stderr), so look at it. A denoising
      run's ``input_metrics`` holds ρ̂ and the sparsity term on a corrupted copy of the training
      rows (the input its ρ̂ was held on); the metrics rows are of the clean rows.

    Raises:
      InputError: bad config, data, run directory or checkpoint (nothing is written then);
        also hyperparameters that overflow or round to 0 / 1 in ``config.dtype``, a starting
        state whose full-data cost or gradient is not finite, and a resume to fewer ``steps``
        than the checkpoint has (a resume to exactly its step does nothing).
      TrainingDiverged: a non-finite cost, gradient or parameter in a step, or a non-finite
        full-data cost at the end of a chunk (``step``, ``cause``). The run directory keeps
        its last checkpoint, whose step ``checkpoint_step`` the message names: every
        checkpoint is a state with a finite full-data cost and gradient. ``state`` is the last
        state known finite.

    Stale temp files of an interrupted write (``.checkpoint.safetensors.*.tmp`` ...) are
    removed when a run starts or resumes.
    """
    check_start_options(resume=resume, params=params, init_state=init_state)
    check_callables(progress=progress, value_and_grad_fn=value_and_grad_fn)
    run = RunDir.open(run_dir, config, resume=resume)  # reads and checks; writes nothing
    try:  # the directory's lock is released however the run ends (finish releases it too)
        config = run.config
        data = load_training_data(*run.data_source(x, data_spec), config)
        patch_shape = check_patch_shape(patch_shape, data.n_visible)
        state = _starting_state(run, data, params, init_state)
        end_step = int(state.step) + config.steps if init_state is not None else config.steps
        _check_finite_start(state, data, run)

        run.start(state, steps=end_step, data=data)  # ---- inputs valid: from here on, files are written
        t0 = time.perf_counter()
        runner, hp = runner_for(config, value_and_grad_fn), hyperparams(config)
        jax.block_until_ready(runner(state, data.x, jnp.zeros((), jnp.int32), hp))  # compile (or hit the cache)
        compile_s, train_s, step = time.perf_counter() - t0, 0.0, int(state.step)
        if not run.metrics or run.metrics[-1].get("step") != step:
            run.log({"step": step, **row_metrics(state.params, data.x, data.x_val, config), "step_time_s": None})
        if progress is not None:
            progress(run.metrics[-1])  # the starting point

        while step < end_step:
            n = min(config.chunk - step % config.chunk, end_step - step)  # chunk boundaries at multiples of chunk
            t1 = time.perf_counter()
            out = run_chunk(runner, state, data.x, n, hp)
            dt = time.perf_counter() - t1
            train_s += dt
            if out.bad_step >= 0:
                what = CAUSES.get(int(out.cause), "non-finite value")
                raise _diverged(run, out.bad_step, what, float(out.bad_value), out.state)
            good_state, state = state, out.state
            step = int(state.step)
            row = {"step": step, **row_metrics(state.params, data.x, data.x_val, config),
                   "batch_cost": float(np.nanmean(np.asarray(out.values[:n], np.float64))),
                   "step_time_s": dt / n, "elapsed_s": train_s}
            run.log(row)
            # Every step was finite on its own batch, but the state it reached must also have a
            # finite full-data cost (every chunk) and gradient (before it is checkpointed): a
            # checkpoint is only ever a state training can continue from.
            due = run.checkpoint_due(step)
            bad_what = nonfinite_state(state.params, data.x, config, row, gradient=due)
            if bad_what is not None:
                raise _diverged(run, step, f"non-finite full-data {bad_what}", row["cost"], good_state)
            if due:
                run.save_checkpoint(state)
            if progress is not None:
                progress(row)

        for note in run.finish(state, pictures=pictures, patch_shape=patch_shape):
            warnings.warn(note, UserWarning, stacklevel=2)
        baseline = float(metrics.mean_predictor_reconstruction(data.x))  # on the rows the last row measured
        warning = metrics.health_warning({**run.metrics[-1], "mean_predictor_reconstruction": baseline})
        return TrainResult(state.params, state, run.metrics, config, run.path, compile_s, train_s,
                           warning, _corrupted_input_metrics(state, data.x, config))
    finally:
        run.close()


def _corrupted_input_metrics(state: TrainState, x, config: TrainConfig) -> dict | None:
    """ρ̂ (mean/min/max), the sparsity term (and the L1 term) at ``state.params`` on a corrupted copy
    of ``x``: the input a denoising run's ρ̂ is held on. The corruption is the one step
    ``state.step`` would draw (the trainer's key stream), so the numbers are deterministic.
    ``None`` for a run without corruption."""
    if config.corruption == "none":
        return None
    key = jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(state.key), NOISE_STREAM), state.step)
    x_tilde = corrupt(key, x, kind=config.corruption, level=config.corruption_level)
    dtype = state.params.W1.dtype
    l1 = l1_of(config)
    t = jax.device_get(cost_terms(state.params, x, x_input=x_tilde, lam=jnp.asarray(config.lam, dtype),
                                  beta=jnp.asarray(config.beta, dtype), rho=jnp.asarray(config.rho, dtype),
                                  output=config.output, l1=None if l1 is None else jnp.asarray(l1, dtype)))
    rh = np.asarray(t.rho_hat, np.float64)
    out = {"rho_hat_mean": float(rh.mean()), "rho_hat_min": float(rh.min()), "rho_hat_max": float(rh.max()),
           "sparsity": float(t.sparsity), "reconstruction": float(t.reconstruction)}
    if l1 is not None:
        out["l1"] = float(t.l1)
    return out


def _starting_state(run: RunDir, data: TrainingData, params, state) -> TrainState:
    """The state the run starts from: the resumed checkpoint, a warm start from ``params`` or
    from a ``state`` in memory, or the config's fresh state (the template the others are checked
    against)."""
    config = run.config
    optimizer = make_optimizer(config)
    template = init_state(config, data.x, optimizer)
    check_data(data.x, template.params, output=config.output)
    if run.resuming:
        return run.checkpoint_state(template, data.sha256)
    if params is not None:
        return init_state(config, data.x, optimizer, params=check_warm_params(params, template, "params"))
    if state is not None:
        return check_init_state(state, template, config)
    return template


def _check_finite_start(state: TrainState, data: TrainingData, run: RunDir) -> None:
    """The state every run starts from must have a finite cost and gradient: the checkpoint
    keeps only such states (a huge data scale or lam overflowing the dtype fails here)."""
    config = run.config
    start = evaluate(state.params, data.x, config)
    bad_what = nonfinite_state(state.params, data.x, config, start)
    if bad_what is None:
        return
    if run.resuming:  # only a checkpoint from before checkpoints were checked can hold such a state
        raise InputError(
            f"the {bad_what} at the checkpoint in {str(run.path)!r} (step {int(state.step)}) is not "
            f"finite in {config.dtype} (cost {start['cost']!r}): it cannot be continued; start a new run"
        )
    raise InputError(
        f"the {bad_what} at the initial parameters is not finite in {config.dtype} "
        f"(cost {start['cost']!r}); check the data's scale and lam, beta, rho"
    )


def _diverged(run: RunDir, step: int, cause: str, value: float, state: TrainState) -> TrainingDiverged:
    """The error for a divergence at ``step``; ``state`` is the last state known finite."""
    c = run.config
    return TrainingDiverged(
        f"training stopped at step {step}: {cause} (cost {value!r}) with optimizer={c.optimizer}, "
        f"learning_rate={c.learning_rate:g}{run.kept_note()}",
        step=step, cause=cause, checkpoint_step=run.checkpoint_step, state=state,
    )
