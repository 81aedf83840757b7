r"""The compiled training loop: the state, the chunk runner, divergence replay, full-data checks.

:class:`TrainState` is everything that evolves during training (what the checkpoint stores).
:func:`runner_for` gives the compiled runner of a config, ``run(state, x, n, hp) ->``
:class:`ChunkOutput`: up to ``config.chunk`` optimizer steps (:mod:`sae_jax._src.step`) in one
``lax.while_loop``. The chunk length ``n`` and λ, β, ρ (:class:`Hyperparams`) are traced
arguments, so one executable serves every chunk length and every hyperparameter setting;
runners are shared between configs whose compiled code is identical. The loop stops after
the first step whose cost, gradient or new parameters are not finite; :func:`run_chunk`
replays the chunk up to that step to hand back the last good state.

Between chunks the trainer measures the state on the full data: :func:`evaluate` (the cost
terms), :func:`row_metrics` (a ``metrics.jsonl`` row, with :mod:`sae_jax.metrics`'
diagnostics) and :func:`nonfinite_state` (is it a state training can continue from?).

Minibatches (Adam, SGD): each step sees ``batch_size`` rows of a fresh seeded permutation
every epoch (the last incomplete batch of an epoch is dropped). L-BFGS is full batch.

Examples:
  >>> import numpy as np
  >>> from sae_jax.training import TrainConfig
  >>> from sae_jax._src.loop import hyperparams, init_state, run_chunk, runner_for
  >>> cfg = TrainConfig(n_hidden=2, optimizer="adam", batch_size=4, chunk=3, dtype="float32")
  >>> x = np.random.default_rng(0).uniform(0.1, 0.9, (8, 4)).astype(np.float32)
  >>> out = run_chunk(runner_for(cfg), init_state(cfg, x), x, 3, hyperparams(cfg))
  >>> int(out.state.step), out.bad_step, out.values.shape
  (3, -1, (3,))
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .backprop import cost_terms_and_grad
from .config import TrainConfig, check_choice
from .cost import cost_terms
from . import metrics
from .minibatch import EmaBatch
from .params import Params, init_params
from .variants import corrupt
from .step import (
    DenoisingBatch, ValueAndGradFn, all_finite, invalidate_cache, make_optimizer, make_step, make_value_and_grad,
    optax_promotion, prime_cache,
)

__all__ = [
    "CAUSES",
    "SWEEP_BATCHING",
    "TrainState",
    "Hyperparams",
    "ChunkOutput",
    "hyperparams",
    "init_state",
    "make_runner",
    "runner_for",
    "run_chunk",
    "evaluate",
    "l1_of",
    "row_metrics",
    "nonfinite_state",
]

CAUSES = {1: "non-finite cost", 2: "non-finite gradient", 3: "non-finite parameters after the update"}
SWEEP_BATCHING = ("vmap", "map")


class TrainState(NamedTuple):
    """Everything that evolves during training (a pytree; what the checkpoint stores)."""

    params: Params
    opt_state: Any
    step: jax.Array  # shape=(), int32: optimizer steps taken
    key: jax.Array  # shape=(2,) uint32: raw key data of the minibatch-order RNG
    rho_ema: jax.Array | None  # shape=(n_hidden,): running rho_hat (rho_hat="ema"), else None


class Hyperparams(NamedTuple):
    """λ, β, ρ as arrays: the traced hyperparameters of the compiled runner (scalars, or ``(K,)`` in a sweep)."""

    lam: jax.Array
    beta: jax.Array
    rho: jax.Array


class ChunkOutput(NamedTuple):
    """What a runner returns (per setting in a sweep)."""

    state: TrainState  # after the chunk (after the bad step, if any; see run_chunk)
    values: jax.Array  # (chunk,): the objective before each step (NaN past n)
    bad_step: jax.Array  # the first step with a non-finite cost, gradient or update, else -1
    cause: jax.Array  # its code in CAUSES (0: none)
    bad_value: jax.Array  # the objective at that step


class _Carry(NamedTuple):
    i: jax.Array  # steps taken in this chunk
    state: TrainState
    perm: jax.Array  # the epoch's row permutation (minibatches), else empty
    values: jax.Array
    bad_step: jax.Array
    cause: jax.Array
    bad_value: jax.Array
    prev: Any  # ("map" batching) (params, rho_ema) before the last step, else None


def hyperparams(config: TrainConfig, dtype=None) -> Hyperparams:
    """``config``'s λ, β, ρ as 0-d arrays of ``dtype`` (default ``config.dtype``)."""
    dtype = jnp.dtype(config.dtype if dtype is None else dtype)
    return Hyperparams(*(jnp.asarray(getattr(config, k), dtype) for k in Hyperparams._fields))


def l1_of(config: TrainConfig):
    """``config.l1`` as the math functions take it: ``None`` (no term in the program) when 0."""
    return None if config.l1 == 0 else config.l1


#: ``fold_in`` constant of the denoising corruptions' key stream (beside the minibatch epochs' stream).
NOISE_STREAM = 2**31 - 1


@functools.partial(jax.jit, static_argnames=("output",))
def _terms(params, x, hp: Hyperparams, l1=None, *, output):
    return cost_terms(params, x, lam=hp.lam, beta=hp.beta, rho=hp.rho, output=output, l1=l1)


def init_state(config: TrainConfig, x, optimizer=None, *, params: Params | None = None) -> TrainState:
    """The state at step 0: UFLDL init from ``PRNGKey(seed)``'s first split, the data key from its second.

    ``params`` (unchecked; :func:`sae_jax.training.train` checks them) replaces the UFLDL init: a fresh
    optimizer state (and running ρ̂, the full-data ρ̂ at the parameters) at those parameters.
    """
    k_init, k_data = jax.random.split(jax.random.key(config.seed))
    if params is None:
        params = init_params(k_init, int(x.shape[1]), config.n_hidden, dtype=jnp.dtype(config.dtype), tied=config.tied)
    else:
        params = jax.tree.map(jnp.asarray, params)
    optimizer = make_optimizer(config) if optimizer is None else optimizer
    rho_ema = None
    if config.rho_hat == "ema":
        rho_ema = _terms(params, x, hyperparams(config, params.W1.dtype), l1_of(config), output=config.output).rho_hat
    with optax_promotion():
        opt_state = optimizer.init(params)
    # optax's zoom line search initialises some fields as weak-typed scalars, which the compiled
    # loop returns strongly typed; strip weak types here so the second chunk does not recompile.
    opt_state = jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.asarray(a).dtype), opt_state)
    return TrainState(params, opt_state, jnp.zeros((), jnp.int32), jax.random.key_data(k_data), rho_ema)


def make_runner(value_and_grad_for: Callable, optimizer, config: TrainConfig, *, batching: str | None = None) -> Callable:
    """``run(state, x, n, hp) -> ChunkOutput``: ≤ ``config.chunk`` steps, jitted.

    ``value_and_grad_for(hp)`` builds the objective from the traced :class:`Hyperparams`
    ``hp``, so a new λ, β or ρ runs the same executable (one compilation for every setting).
    ``n`` is traced (one compilation for every chunk length). The loop stops after the first
    step whose cost, gradient or new parameters are non-finite: ``bad_step`` is then that step
    (else -1), ``cause`` a code of :data:`CAUSES`, and ``state`` the state *after* the bad step;
    :func:`run_chunk` replays the chunk up to the bad step to hand back the last good state.

    The loop carries the new state unconditionally. Keeping the last good state in the loop
    instead (a ``where(ok, new, old)`` over the state) copied the whole optimizer state every
    step, L-BFGS's 2 x 100 x 3,289-entry history included: 17 % of the UFLDL exercise's time
    in float64 (``benchmarks/NOTES.md``). Training is deterministic, so replaying the few steps
    after a failure is exact and costs nothing on the normal path.

    ``batching="vmap"`` or ``"map"`` (sweeps): the same loop over a leading settings axis of
    ``hp``, of the parameters, the optimizer state and ρ̂'s running estimate (``state.step``
    and ``state.key`` are shared, so every setting sees the same minibatches), by ``jax.vmap``
    (all settings at once: one wide program, for accelerators) or ``lax.map`` (one setting
    after another inside the one compiled program: on a CPU a single setting already keeps
    the cores busy, and vmap's batched arrays fall out of cache; ``benchmarks/NOTES.md``).
    The outputs are then per setting, and a setting whose step is non-finite keeps its last
    good parameters. ``"map"`` runs each setting's loop exactly as a single run (it stops
    at the bad step; its optimizer state is left as the bad step made it, so later chunks stop
    it again at once). ``"vmap"`` cannot stop one setting's loop: all run ``n`` steps and a
    setting is frozen at its last good state by a per-setting select over the whole state; the
    line search's cached objective is filled once per chunk (:func:`sae_jax._src.step.prime_cache`)
    rather than tested every step (a ``cond`` on a batched predicate evaluates both branches).
    """
    vmapped = batching == "vmap"  # per-setting freeze by select, no early stop, cache primed per chunk
    mapped = batching == "map"  # the plain loop per setting, handing back its last good params
    K, B, full_batch, ema = config.chunk, config.batch_size, config.full_batch, config.rho_hat == "ema"
    noisy = config.corruption != "none"

    def run(state: TrainState, x: jax.Array, n: jax.Array, hp: Hyperparams) -> ChunkOutput:
        value_and_grad_fn = value_and_grad_for(hp)
        # Denoising changes the objective every step: a line search's cached value and gradient
        # (of the previous step's corruption) are recomputed with this step's (invalidate_cache).
        step = make_step(value_and_grad_fn, optimizer, trust_cache=vmapped and not noisy)
        m = x.shape[0]
        spe = max(m // B, 1)  # minibatches per epoch

        def perm_for(step_):
            k = jax.random.fold_in(jax.random.wrap_key_data(state.key), step_ // spe)
            return jax.random.permutation(k, m)

        noise_key = jax.random.fold_in(jax.random.wrap_key_data(state.key), NOISE_STREAM)

        def batch_for(st: TrainState, xb):  # the step's objective's batch (EMA estimate, corruption)
            batch = EmaBatch(xb, st.rho_ema) if ema else xb
            if noisy:  # a fresh corruption every step, a function of (seed, step): resumes draw the same
                k = jax.random.fold_in(noise_key, st.step)
                batch = DenoisingBatch(batch, corrupt(k, xb, kind=config.corruption, level=config.corruption_level))
            return batch

        if vmapped and full_batch and not noisy:
            state = state._replace(opt_state=prime_cache(value_and_grad_fn, state.params, state.opt_state, x))
        dtype = state.params.W1.dtype
        carry = _Carry(
            i=jnp.zeros((), jnp.int32), state=state,
            perm=jnp.zeros((0,), jnp.int32) if full_batch else perm_for(state.step),
            values=jnp.full((K,), jnp.nan, dtype), bad_step=jnp.full((), -1, jnp.int32),
            cause=jnp.zeros((), jnp.int32), bad_value=jnp.full((), jnp.nan, dtype),
            prev=(state.params, state.rho_ema) if mapped else None,
        )

        def cond(c: _Carry):
            return c.i < n if vmapped else (c.i < n) & (c.bad_step < 0)

        def body(c: _Carry) -> _Carry:
            st, perm = c.state, c.perm
            if full_batch:
                xb = x
            else:
                pos = st.step % spe
                perm = lax.cond(pos == 0, lambda: perm_for(st.step), lambda: perm)
                xb = jnp.take(x, lax.dynamic_slice(perm, (pos * B,), (B,)), axis=0)
            opt_state = invalidate_cache(st.opt_state) if noisy else st.opt_state
            params, opt_state, out = step(st.params, opt_state, batch_for(st, xb))
            value_ok, params_ok = jnp.isfinite(out.value), all_finite(params)
            ok = value_ok & out.grads_finite & params_ok
            st_next = TrainState(params, opt_state, st.step + 1, st.key, out.aux.rho_hat if ema else st.rho_ema)
            code = jnp.where(~value_ok, 1, jnp.where(~out.grads_finite, 2, jnp.where(~params_ok, 3, 0)))
            first_bad = ~ok & (c.bad_step < 0)
            if vmapped:  # freeze this setting at its last good state; step and key stay shared
                frozen = ~ok | (c.bad_step >= 0)
                st_next = st_next._replace(**{
                    f: jax.tree.map(lambda new, old: jnp.where(frozen, old, new), getattr(st_next, f), getattr(st, f))
                    for f in ("params", "opt_state", "rho_ema")
                })
            return _Carry(
                i=c.i + 1, state=st_next, perm=perm, values=c.values.at[c.i].set(out.value),
                bad_step=jnp.where(first_bad, st.step, c.bad_step),
                cause=jnp.where(first_bad, code.astype(jnp.int32), c.cause),
                bad_value=jnp.where(first_bad, out.value, c.bad_value),
                prev=(st.params, st.rho_ema) if mapped else None,
            )

        c = lax.while_loop(cond, body, carry)
        state = c.state
        if mapped:  # stopped right after a bad step: its input parameters are the last good ones
            keep = c.bad_step >= 0
            state = state._replace(**{
                f: jax.tree.map(lambda old, new: jnp.where(keep, old, new), p, getattr(state, f))
                for f, p in zip(("params", "rho_ema"), c.prev)
            })
        return ChunkOutput(state, c.values, c.bad_step, c.cause, c.bad_value)

    if batching is None:
        return jax.jit(run)
    if batching == "vmap":
        axes = TrainState(params=0, opt_state=0, step=None, key=None, rho_ema=0 if ema else None)
        return jax.jit(jax.vmap(run, in_axes=(axes, None, None, 0), out_axes=ChunkOutput(axes, 0, 0, 0, 0)))
    check_choice("batching", batching, SWEEP_BATCHING)

    def run_map(state: TrainState, x: jax.Array, n: jax.Array, hp: Hyperparams) -> ChunkOutput:
        def one(args):
            params, opt_state, rho_ema, hp_k = args
            out = run(TrainState(params, opt_state, state.step, state.key, rho_ema), x, n, hp_k)
            return (out.state.params, out.state.opt_state, out.state.rho_ema), *out[1:]

        (params, opt_state, rho_ema), *rest = lax.map(one, (state.params, state.opt_state, state.rho_ema, hp))
        return ChunkOutput(TrainState(params, opt_state, state.step + n, state.key, rho_ema), *rest)

    return jax.jit(run_map)


# Fields that do not enter the compiled runner: λ, β, ρ are its traced arguments (a sweep over
# them runs one executable), the rest only decide how long to run, where to start and what to save.
_NOT_COMPILED = ("steps", "seed", "checkpoint_every", "dtype", "lam", "beta", "rho", "validation_fraction")
_DEFAULTS = TrainConfig()


@functools.lru_cache(maxsize=None)
def _shared_runner(compiled: TrainConfig, batching: str | None) -> Callable:
    def value_and_grad_for(hp: Hyperparams):
        return make_value_and_grad(
            compiled.gradient, lam=hp.lam, beta=hp.beta, rho=hp.rho, output=compiled.output,
            rho_hat=compiled.rho_hat, ema_decay=compiled.ema_decay,
            l1=l1_of(compiled), denoising=compiled.corruption != "none",
        )

    return make_runner(value_and_grad_for, make_optimizer(compiled), compiled, batching=batching)


def runner_for(config: TrainConfig, value_and_grad_fn: ValueAndGradFn | None = None, *,
               batching: str | None = None) -> Callable:
    """The compiled chunk runner of ``config`` (:func:`make_runner`), shared between configs
    whose compiled code is identical.

    The frozen config, with the fields the runner does not compile (λ, β, ρ, which it takes
    as traced :class:`Hyperparams`; steps, seed, dtype, ...) reset to their defaults, is the
    key of the runner: one ``jax.jit`` per key, whose ``_cache_size()`` counts that config's
    executables (tests assert one for every chunk length). A given ``value_and_grad_fn`` has
    its own hyperparameters (``hp`` is ignored) and gets a runner of its own.
    """
    if value_and_grad_fn is not None:
        return make_runner(lambda hp: value_and_grad_fn, make_optimizer(config), config, batching=batching)
    compiled = dataclasses.replace(config, **{f: getattr(_DEFAULTS, f) for f in _NOT_COMPILED})
    return _shared_runner(compiled, batching)


def run_chunk(runner: Callable, state: TrainState, x: jax.Array, n: int, hp: Hyperparams) -> ChunkOutput:
    """``runner`` for ``n`` steps; on a non-finite step, the last good state (by replay).

    As the runner's :class:`ChunkOutput`, with ``bad_step`` a Python int, except that after a
    bad step ``state`` is the state before it: the chunk is run again from ``state`` for
    ``bad_step - state.step`` steps, which reproduces it bit for bit (same compiled code,
    same inputs).
    """
    out = runner(state, x, jnp.asarray(n, jnp.int32), hp)
    bad_step = int(out.bad_step)
    if bad_step >= 0:
        redo = bad_step - int(state.step)
        out = out._replace(state=runner(state, x, jnp.asarray(redo, jnp.int32), hp).state if redo > 0 else state)
    return out._replace(bad_step=bad_step)


def evaluate(params: Params, x, config: TrainConfig) -> dict:
    """Full-data metrics at ``params``: cost and its terms, ρ̂ mean/min/max, and the mean squared
    reconstruction error per entry (``mse``), as Python floats."""
    l1 = l1_of(config)
    t = jax.device_get(_terms(params, x, hyperparams(config, params.W1.dtype), l1, output=config.output))
    rh = np.asarray(t.rho_hat, np.float64)
    return {
        **({} if l1 is None else {"l1": float(t.l1)}),
        "cost": float(t.cost),
        "reconstruction": float(t.reconstruction),
        "weight_decay": float(t.weight_decay),
        "sparsity": float(t.sparsity),
        "rho_hat_mean": float(rh.mean()),
        "rho_hat_min": float(rh.min()),
        "rho_hat_max": float(rh.max()),
        "mse": 2.0 * float(t.reconstruction) / x.shape[1],
    }


_ROW_KEYS = ("cost", "reconstruction", "weight_decay", "sparsity", "rho_hat_mean", "rho_hat_min", "rho_hat_max",
             "mse", "dead_fraction", "saturated_fraction", "recon_error_q50", "recon_error_q90",
             "recon_error_q99", "recon_error_q100")
_VAL_KEYS = ("cost", "reconstruction", "sparsity", "mse", "rho_hat_mean") + _ROW_KEYS[8:]


def row_metrics(params: Params, x, x_val, config: TrainConfig) -> dict:
    """A metrics.jsonl row's numbers: :func:`evaluate`'s, the diagnostics of :mod:`sae_jax.metrics`
    (dead / saturated fractions, quantiles of the per-sample reconstruction error), and with a
    validation split (``x_val`` not None) the same on the held-out rows as ``val_*``. One jitted
    pass per data set; the inputs were checked when training started."""
    hp = dict(lam=config.lam, beta=config.beta, rho=config.rho, output=config.output, l1=l1_of(config))
    extra = () if hp["l1"] is None else ("l1",)  # the L1 term's value, when it is on
    m = metrics.evaluate(params, x, **hp)
    row = {k: m[k] for k in _ROW_KEYS + extra}
    if x_val is not None:
        v = metrics.evaluate(params, x_val, **hp)
        row.update({f"val_{k}": v[k] for k in _VAL_KEYS + extra})
    return row


@functools.partial(jax.jit, static_argnames=("output",))
def _grads_finite(params, x, hp: Hyperparams, l1=None, *, output):
    _, grads = cost_terms_and_grad(params, x, lam=hp.lam, beta=hp.beta, rho=hp.rho, output=output, l1=l1)
    return all_finite(grads)


def nonfinite_state(params: Params, x, config: TrainConfig, row: dict, *, gradient: bool = True) -> str | None:
    """``None`` if the full-data cost (from ``row``, :func:`evaluate`'s dict) and, with
    ``gradient``, the full-data gradient at ``params`` are finite; else which one is not
    (``"cost"`` or ``"gradient"``): only such states are checkpointed or trained from."""
    if not math.isfinite(row["cost"]):
        return "cost"
    if gradient and not bool(_grads_finite(params, x, hyperparams(config, params.W1.dtype), l1_of(config),
                                           output=config.output)):
        return "gradient"
    return None
