r"""Jitted training: full-batch L-BFGS (optax, zoom line search) or minibatch Adam / SGD.

The pieces, each usable on its own:

``make_value_and_grad(gradient, lam=, beta=, rho=, ...)``
    The objective as ``value_and_grad_fn(params, batch) -> ((cost, aux), grads)`` — the
    convention of ``jax.value_and_grad(f, has_aux=True)``, with ``aux`` a
    :class:`~sae_jax.CostTerms`. ``gradient="manual"`` is the tutorial's backprop
    (:mod:`sae_jax.backprop`), ``"autodiff"`` is ``jax.value_and_grad`` of the cost; the two
    give the same trajectory to float tolerance (tested).

``make_step(value_and_grad_fn, optimizer)``
    One optimizer step ``step(params, opt_state, batch) -> (params, opt_state, StepOutput)``.
    **This is the seam for other gradients**: any function with the signature above — e.g. a
    data-sharded or chunked gradient that sums per-device partial results — plugs in here
    (and into :func:`train` through its ``value_and_grad_fn`` argument), unchanged for every
    optimizer. Line searches (L-BFGS's zoom search) evaluate the objective through the same
    function (:func:`value_fn_from` wraps it in a ``jax.custom_vjp``), so they never fall
    back to ``jax.grad``. When the optimizer state caches the value and gradient at the
    current point (optax's line searches do), they are reused instead of recomputed, like
    ``optax.value_and_grad_from_state``.

``train(x, TrainConfig(...), run_dir=...)``
    Validates every input in Python (errors are :class:`~sae_jax.InputError`), then runs
    the loop in chunks of ``config.chunk`` steps per dispatch: one compiled
    ``lax.while_loop`` (the chunk length is a traced argument, so it compiles once), so the
    Python overhead is one call per chunk. It writes the run directory (see
    :mod:`sae_jax.checkpoint`), stops on the first non-finite cost, gradient or parameter
    (:class:`TrainingDiverged`, naming the step and the cause; the last good checkpoint is
    left as it was) and resumes bit-identically (``resume=True``). A checkpoint is written
    only for a state whose full-data cost and gradient are finite, so the checkpoint a
    divergence leaves is always one training can continue from. λ, β, ρ are traced
    arguments of the compiled runner (:class:`Hyperparams`), so runs that differ only in them
    share one executable; ``params=`` / ``init_state=`` warm-start from given parameters or
    continue a :class:`TrainState` in memory. :func:`sae_jax.sweep.sweep` maps the same runner
    over a grid of (λ, β, ρ) settings.

Minibatches and :math:`\hat\rho`
--------------------------------
With ``optimizer="adam"`` or ``"sgd"`` each step sees ``batch_size`` rows (a fresh seeded
permutation every epoch; the last incomplete batch of an epoch is dropped), and with
``rho_hat="batch"`` (default) the sparsity penalty uses **the batch's estimate**
:math:`\hat\rho^B` — a noisy, biased stand-in for the full-data :math:`\hat\rho` at small
batches. ``rho_hat="ema"`` penalises a running estimate
:math:`\alpha\,\operatorname{sg}(\hat\rho_{t-1}) + (1-\alpha)\hat\rho^B_t` instead
(:mod:`sae_jax.minibatch`, ``ema_decay`` = :math:`\alpha`), starting from the full-data
:math:`\hat\rho` of the initial parameters. L-BFGS is always full-batch (exact
:math:`\hat\rho`).

Determinism: for a given config, data and backend, the result is a pure function of
``config.seed`` (init and the data permutations both derive from it).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from . import checkpoint as ckpt
from .config import (
    GRADIENTS,
    OPTIMIZERS,
    RESUMABLE_FIELDS,
    RHO_HAT,
    TrainConfig,
    check_choice,
    validate_config,
)
from .backprop import _cost_terms_and_grad
from .cost import _cost_terms
from .lbfgs import lbfgs as compact_lbfgs
from .minibatch import EmaBatch, autodiff_ema_cost_terms_and_grad, ema_cost_terms_and_grad
from .params import Params, init_params
from .validate import (
    InputError,
    check_data,
    check_data_values,
    check_params,
)

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

# ---------------------------------------------------------------------------------------
# Objective, step
# ---------------------------------------------------------------------------------------

ValueAndGradFn = Callable[[Params, Any], tuple[tuple[jax.Array, Any], Params]]


def make_value_and_grad(
    gradient: str = "manual",
    *,
    lam,
    beta,
    rho,
    output: str = "sigmoid",
    rho_hat: str = "batch",
    ema_decay=0.9,
) -> ValueAndGradFn:
    r"""The objective as ``value_and_grad_fn(params, batch) -> ((cost, CostTerms), grads)``.

    Args:
      gradient: ``"manual"`` (the tutorial's backprop) or ``"autodiff"`` (``jax.value_and_grad``).
      lam, beta, rho, output: as for :func:`sae_jax.cost`.
      rho_hat: ``"batch"``: ``batch`` is the data ``(m, n_visible)``; ``"ema"``: ``batch`` is an
        :class:`~sae_jax.minibatch.EmaBatch` ``(x, rho_prev)`` and ``CostTerms.rho_hat`` is the
        new running estimate.
      ema_decay: α for ``rho_hat="ema"``.

    Unchecked and traceable: call it inside ``jit`` (:func:`train` validates first).
    """
    check_choice("gradient", gradient, GRADIENTS)
    check_choice("rho_hat", rho_hat, RHO_HAT)
    hp = dict(lam=lam, beta=beta, rho=rho, output=output)
    if rho_hat == "ema":
        impl = ema_cost_terms_and_grad if gradient == "manual" else autodiff_ema_cost_terms_and_grad

        def value_and_grad_fn(params, batch):
            terms, grads = impl(params, batch, ema_decay=ema_decay, **hp)
            return (terms.cost, terms), grads

    elif gradient == "manual":

        def value_and_grad_fn(params, batch):
            terms, grads = _cost_terms_and_grad(params, batch, **hp)
            return (terms.cost, terms), grads

    else:

        def f(params, batch):
            terms = _cost_terms(params, batch, **hp)
            return terms.cost, terms

        value_and_grad_fn = jax.value_and_grad(f, has_aux=True)
    value_and_grad_fn.__doc__ = f"sae-jax objective ({gradient} gradient, rho_hat={rho_hat})"
    return value_and_grad_fn


def value_fn_from(value_and_grad_fn: ValueAndGradFn) -> Callable:
    """``value_fn(params, batch) -> cost`` whose ``jax.grad`` *is* ``value_and_grad_fn``'s gradient.

    A ``jax.custom_vjp``: optax's line searches call ``jax.value_and_grad(value_fn)``, and this
    makes them use the given (manual, autodiff, sharded...) gradient rather than autodiff of
    whatever the forward computation is. The cotangent of ``batch`` is zero (data is not
    trained).
    """

    @jax.custom_vjp
    def value_fn(params, batch):
        (value, _), _ = value_and_grad_fn(params, batch)
        return value

    def fwd(params, batch):
        (value, _), grads = value_and_grad_fn(params, batch)
        return value, (grads, batch)

    def bwd(res, ct):
        grads, batch = res
        return jax.tree.map(lambda g: ct * g, grads), jax.tree.map(jnp.zeros_like, batch)

    value_fn.defvjp(fwd, bwd)
    return value_fn


def make_optimizer(config: TrainConfig) -> optax.GradientTransformationExtraArgs:
    """The optax transformation a config asks for.

    ``lbfgs``: :func:`sae_jax.lbfgs.lbfgs` (``optax.lbfgs``'s algorithm, with the compact
    matrix form of the inverse-Hessian product instead of optax's two sequential loops over
    the history: the same directions, 3-4x less optimizer overhead per step at memory 100)
    with optax's zoom line search (``initial_guess_strategy="one"``, as optax recommends for
    quasi-Newton methods).
    ``adam``: ``optax.adam(learning_rate)``. ``sgd``: ``optax.sgd(learning_rate, momentum)``.
    """
    if config.optimizer == "lbfgs":
        return compact_lbfgs(
            memory_size=config.lbfgs_memory,
            linesearch=optax.scale_by_zoom_linesearch(
                max_linesearch_steps=config.max_linesearch_steps, initial_guess_strategy="one"
            ),
        )
    if config.optimizer == "adam":
        return optax.adam(config.learning_rate)
    if config.optimizer == "sgd":
        return optax.sgd(config.learning_rate, momentum=config.momentum or None)
    check_choice("optimizer", config.optimizer, OPTIMIZERS)
    raise AssertionError("unreachable")


class StepOutput(NamedTuple):
    value: jax.Array  # shape=(), the objective at the parameters *before* this step
    grads_finite: jax.Array  # shape=(), bool: every gradient entry finite
    aux: Any  # the objective's aux (CostTerms) when computed this step, else None


def _cached_value_and_grad(opt_state):
    """``(value, grad)`` an optax line search stored in the state, or None."""
    get = optax.tree.get if hasattr(optax, "tree") else optax.tree_utils.tree_get  # optax < 0.2.5
    value = get(opt_state, "value")
    grad = get(opt_state, "grad")
    if value is None or grad is None:
        return None
    return value, grad


def make_step(
    value_and_grad_fn: ValueAndGradFn, optimizer: optax.GradientTransformation, *, trust_cache: bool = False
) -> Callable:
    r"""One optimizer step, pure and jittable: ``step(params, opt_state, batch)``.

    Args:
      value_and_grad_fn: ``(params, batch) -> ((cost, aux), grads)``, the convention of
        ``jax.value_and_grad(f, has_aux=True)``; ``grads`` has ``params``' structure. Any
        implementation — :func:`make_value_and_grad`'s manual or autodiff one, or a sharded /
        chunked one — works unchanged.
      optimizer: an optax transformation. It receives the extra arguments ``value``, ``grad``,
        ``value_fn`` (:func:`value_fn_from`) and ``batch``, which line searches use and other
        optimizers ignore.

    Returns:
      ``step(params, opt_state, batch) -> (new_params, new_opt_state, StepOutput)``.

    If the optimizer state caches the objective's value and gradient at the current
    parameters (optax's line searches store them under ``value`` and ``grad``), they are
    reused — valid for a deterministic full-batch objective, which is how :func:`train`
    uses L-BFGS. The cache starts at ``inf``, so the first step computes them.
    ``trust_cache=True`` uses the cache without the ``lax.cond`` on its finiteness — for
    callers that fill it first (:func:`_prime_cache`): under ``vmap`` that ``cond`` becomes a
    select that evaluates the objective every step, whether or not the cache is valid.
    """
    value_fn = value_fn_from(value_and_grad_fn)

    def step(params, opt_state, batch):
        cached = _cached_value_and_grad(opt_state)
        if cached is None:
            (value, aux), grads = value_and_grad_fn(params, batch)
        elif trust_cache:
            value, grads = cached
            aux = None
        else:
            cached_value, cached_grad = cached

            def fresh():
                (v, _), g = value_and_grad_fn(params, batch)
                return v, g

            value, grads = lax.cond(jnp.isfinite(cached_value), lambda: (cached_value, cached_grad), fresh)
            aux = None
        with _optax_promotion():
            updates, opt_state = optimizer.update(
                grads, opt_state, params, value=value, grad=grads, value_fn=value_fn, batch=batch
            )
        new_params = optax.apply_updates(params, updates)
        grads_finite = _all_finite(grads)
        return new_params, opt_state, StepOutput(value, grads_finite, aux)

    return step


def _prime_cache(value_and_grad_fn: ValueAndGradFn, params, opt_state, batch):
    """``opt_state`` with the line search's cached ``(value, grad)`` filled in at ``params``
    where it is not finite (it starts at ``inf``); unchanged if the state has no cache."""
    cached = _cached_value_and_grad(opt_state)
    if cached is None:
        return opt_state
    cached_value, cached_grad = cached

    def fresh():
        (v, _), g = value_and_grad_fn(params, batch)
        return v.astype(cached_value.dtype), g

    value, grad = lax.cond(jnp.isfinite(cached_value), lambda: (cached_value, cached_grad), fresh)
    tree_set = optax.tree.set if hasattr(optax, "tree") else optax.tree_utils.tree_set
    return tree_set(opt_state, value=value, grad=grad)


def _invalidate_cache(opt_state):
    """``opt_state`` with the line search's cached value set to ``inf`` (recomputed at the next step)."""
    cached = _cached_value_and_grad(opt_state)
    if cached is None:
        return opt_state
    tree_set = optax.tree.set if hasattr(optax, "tree") else optax.tree_utils.tree_set
    return tree_set(opt_state, value=jnp.full_like(cached[0], jnp.inf))


def _optax_promotion():
    """optax's L-BFGS mixes int32 and int64 indices under x64 (fine with JAX's default
    "standard" promotion, an error under "strict"); scope "standard" to optax's own calls so
    training works whatever the caller's global setting. sae-jax's own math is strict-clean."""
    return jax.numpy_dtype_promotion("standard")


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


# ---------------------------------------------------------------------------------------
# State, chunk runner
# ---------------------------------------------------------------------------------------


class TrainState(NamedTuple):
    """Everything that evolves during training (a pytree; what the checkpoint stores)."""

    params: Params
    opt_state: Any
    step: jax.Array  # shape=(), int32: optimizer steps taken
    key: jax.Array  # shape=(2,) uint32: raw key data of the minibatch-order RNG
    rho_ema: jax.Array | None  # shape=(n_hidden,): running rho_hat (rho_hat="ema"), else None


class TrainingDiverged(RuntimeError):
    """Training hit a non-finite cost, gradient or parameter. ``step`` and ``cause`` say where and what."""

    def __init__(self, message, *, step: int, cause: str, checkpoint_step: int | None, state=None):
        super().__init__(message)
        self.step = step
        self.cause = cause
        self.checkpoint_step = checkpoint_step
        self.state = state  # the last good state (parameters before the failing step)


_CAUSES = {1: "non-finite cost", 2: "non-finite gradient", 3: "non-finite parameters after the update"}


class Hyperparams(NamedTuple):
    """λ, β, ρ as arrays: the traced hyperparameters of the compiled runner (scalars, or ``(K,)`` in a sweep)."""

    lam: jax.Array
    beta: jax.Array
    rho: jax.Array


def hyperparams(config: TrainConfig, dtype=None) -> Hyperparams:
    """``config``'s λ, β, ρ as 0-d arrays of ``dtype`` (default ``config.dtype``)."""
    dtype = jnp.dtype(config.dtype if dtype is None else dtype)
    return Hyperparams(*(jnp.asarray(getattr(config, k), dtype) for k in Hyperparams._fields))


SWEEP_BATCHING = ("vmap", "map")


def _make_runner(value_and_grad_for: Callable, optimizer, config: TrainConfig, *, batching: str | None = None) -> Callable:
    """``run(state, x, n, hp) -> (state, values, bad_step, cause, bad_value)``: ≤ ``config.chunk`` steps, jitted.

    ``value_and_grad_for(hp)`` builds the objective from the traced :class:`Hyperparams`
    ``hp``, so a new λ, β or ρ runs the same executable (one compilation for every setting).
    ``n`` is traced (one compilation for every chunk length). The loop stops after the first
    step whose cost, gradient or new parameters are non-finite: ``bad_step`` is then that step
    (else -1), ``cause`` a code of ``_CAUSES``, and ``state`` the state *after* the bad step;
    :func:`_run_chunk` replays the chunk up to the bad step to hand back the last good state.
    ``values[i]`` is the objective at the parameters before the i-th step of the chunk (NaN past ``n``).

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
    ``bad_step`` etc. are then per setting, and a setting whose step is non-finite keeps its
    last good parameters. ``"map"`` runs each setting's loop exactly as a single run (it stops
    at the bad step; its optimizer state is left as the bad step made it, so later chunks stop
    it again at once). ``"vmap"`` cannot stop one setting's loop: all run ``n`` steps and a
    setting is frozen at its last good state by a per-setting select over the whole state; the
    line search's cached objective is filled once per chunk (:func:`_prime_cache`) rather
    than tested every step (a ``cond`` on a batched predicate evaluates both branches).
    """
    vmapped = batching == "vmap"  # per-setting freeze by select, no early stop, cache primed per chunk
    mapped = batching == "map"  # the plain loop per setting, handing back its last good params
    K = config.chunk
    full_batch = config.full_batch
    B = config.batch_size
    ema = config.rho_hat == "ema"

    def run(state: TrainState, x: jax.Array, n: jax.Array, hp: Hyperparams):
        value_and_grad_fn = value_and_grad_for(hp)
        step = make_step(value_and_grad_fn, optimizer, trust_cache=vmapped)
        m = x.shape[0]
        spe = max(m // B, 1)  # minibatches per epoch

        def perm_for(step_):
            k = jax.random.fold_in(jax.random.wrap_key_data(state.key), step_ // spe)
            return jax.random.permutation(k, m)

        if vmapped and full_batch:
            state = state._replace(opt_state=_prime_cache(value_and_grad_fn, state.params, state.opt_state, x))
        perm0 = jnp.zeros((0,), jnp.int32) if full_batch else perm_for(state.step)
        dtype = state.params.W1.dtype
        carry = (
            jnp.zeros((), jnp.int32), state, perm0, jnp.full((K,), jnp.nan, dtype),
            jnp.full((), -1, jnp.int32), jnp.zeros((), jnp.int32), jnp.full((), jnp.nan, dtype),
            (state.params, state.rho_ema) if mapped else None,
        )

        def cond(c):
            i, _, _, _, bad, _, _, _ = c
            return i < n if vmapped else (i < n) & (bad < 0)

        def body(c):
            i, st, perm, values, bad, cause, bad_value, prev = c
            if full_batch:
                xb = x
            else:
                pos = st.step % spe
                perm = lax.cond(pos == 0, lambda: perm_for(st.step), lambda: perm)
                idx = lax.dynamic_slice(perm, (pos * B,), (B,))
                xb = jnp.take(x, idx, axis=0)
            batch = EmaBatch(xb, st.rho_ema) if ema else xb
            params, opt_state, out = step(st.params, st.opt_state, batch)
            value_ok = jnp.isfinite(out.value)
            params_ok = _all_finite(params)
            ok = value_ok & out.grads_finite & params_ok
            rho_ema = out.aux.rho_hat if ema else st.rho_ema
            st_next = TrainState(params, opt_state, st.step + 1, st.key, rho_ema)
            values = values.at[i].set(out.value)
            code = jnp.where(~value_ok, 1, jnp.where(~out.grads_finite, 2, jnp.where(~params_ok, 3, 0)))
            first_bad = ~ok & (bad < 0)
            if mapped:
                prev = (st.params, st.rho_ema)
            if vmapped:  # freeze this setting at its last good state; step and key stay shared
                frozen = ~ok | (bad >= 0)
                st_next = st_next._replace(**{
                    f: jax.tree.map(lambda new, old: jnp.where(frozen, old, new), getattr(st_next, f), getattr(st, f))
                    for f in ("params", "opt_state", "rho_ema")
                })
            bad = jnp.where(first_bad, st.step, bad)
            cause = jnp.where(first_bad, code.astype(jnp.int32), cause)
            bad_value = jnp.where(first_bad, out.value, bad_value)
            return i + 1, st_next, perm, values, bad, cause, bad_value, prev

        _, state, _, values, bad, cause, bad_value, prev = lax.while_loop(cond, body, carry)
        if mapped:  # stopped right after a bad step: its input parameters are the last good ones
            keep = bad >= 0
            state = state._replace(**{
                f: jax.tree.map(lambda old, new: jnp.where(keep, old, new), p, getattr(state, f))
                for f, p in zip(("params", "rho_ema"), prev)
            })
        return state, values, bad, cause, bad_value

    if batching is None:
        return jax.jit(run)
    if batching == "vmap":
        axes = TrainState(params=0, opt_state=0, step=None, key=None, rho_ema=0 if ema else None)
        return jax.jit(jax.vmap(run, in_axes=(axes, None, None, 0), out_axes=(axes, 0, 0, 0, 0)))
    check_choice("batching", batching, SWEEP_BATCHING)

    def run_map(state: TrainState, x: jax.Array, n: jax.Array, hp: Hyperparams):
        def one(args):
            params, opt_state, rho_ema, hp_k = args
            st, values, bad, cause, bad_value = run(TrainState(params, opt_state, state.step, state.key, rho_ema), x, n, hp_k)
            return (st.params, st.opt_state, st.rho_ema), values, bad, cause, bad_value

        (params, opt_state, rho_ema), *rest = lax.map(one, (state.params, state.opt_state, state.rho_ema, hp))
        return (TrainState(params, opt_state, state.step + n, state.key, rho_ema), *rest)

    return jax.jit(run_map)


def _run_chunk(runner: Callable, state: TrainState, x: jax.Array, n: int, hp: Hyperparams):
    """``runner`` for ``n`` steps; on a non-finite step, the last good state (by replay).

    Returns ``(state, values, bad_step, cause, bad_value)`` as :func:`_make_runner`'s ``run``
    does, except that after a bad step ``state`` is the state before it: the chunk is run
    again from ``state`` for ``bad_step - state.step`` steps, which reproduces it bit for bit
    (same compiled code, same inputs).
    """
    new_state, values, bad, cause, bad_value = runner(state, x, jnp.asarray(n, jnp.int32), hp)
    bad_step = int(bad)
    if bad_step >= 0:
        redo = bad_step - int(state.step)
        new_state = runner(state, x, jnp.asarray(redo, jnp.int32), hp)[0] if redo > 0 else state
    return new_state, values, bad_step, cause, bad_value


_RUNNER_CACHE: dict = {}

# Fields that do not enter the compiled runner: λ, β, ρ are its traced arguments (a sweep over
# them runs one executable), the rest only decide how long to run, where to start and what to save.
_NOT_COMPILED = ("steps", "seed", "checkpoint_every", "dtype", "lam", "beta", "rho", "validation_fraction")


def _runner_for(config: TrainConfig, value_and_grad_fn: ValueAndGradFn | None, *, batching: str | None = None) -> Callable:
    """A compiled chunk runner, shared between runs whose compiled code would be identical.

    λ, β and ρ are not part of the key: the runner takes them as traced :class:`Hyperparams`
    (a given ``value_and_grad_fn`` has its own hyperparameters and ignores them).
    """
    key = None
    if value_and_grad_fn is None:
        cfg = config.to_dict()
        for f in _NOT_COMPILED:
            cfg.pop(f)
        key = (tuple(sorted(cfg.items())), batching)
        if key in _RUNNER_CACHE:
            return _RUNNER_CACHE[key]

        def value_and_grad_for(hp):
            return make_value_and_grad(
                config.gradient, lam=hp.lam, beta=hp.beta, rho=hp.rho, output=config.output,
                rho_hat=config.rho_hat, ema_decay=config.ema_decay,
            )
    else:
        def value_and_grad_for(hp):
            return value_and_grad_fn

    runner = _make_runner(value_and_grad_for, make_optimizer(config), config, batching=batching)
    if key is not None:
        _RUNNER_CACHE[key] = runner
    return runner


@functools.partial(jax.jit, static_argnames=("output",))
def _terms_jit(params, x, lam, beta, rho, *, output):
    return _cost_terms(params, x, lam=lam, beta=beta, rho=rho, output=output)


def evaluate(params: Params, x, config: TrainConfig) -> dict:
    """Full-data metrics at ``params``: cost and its terms, ρ̂ mean/min/max, and the mean squared
    reconstruction error per entry (``mse``), as Python floats."""
    dtype = params.W1.dtype
    t = _terms_jit(
        params, x, jnp.asarray(config.lam, dtype), jnp.asarray(config.beta, dtype),
        jnp.asarray(config.rho, dtype), output=config.output,
    )
    t = jax.device_get(t)
    rh = np.asarray(t.rho_hat, np.float64)
    return {
        "cost": float(t.cost),
        "reconstruction": float(t.reconstruction),
        "weight_decay": float(t.weight_decay),
        "sparsity": float(t.sparsity),
        "rho_hat_mean": float(rh.mean()),
        "rho_hat_min": float(rh.min()),
        "rho_hat_max": float(rh.max()),
        "mse": 2.0 * float(t.reconstruction) / x.shape[1],
    }


_ROW_DIAGNOSTICS = ("dead_fraction", "saturated_fraction", "recon_error_q50", "recon_error_q90",
                    "recon_error_q99", "recon_error_q100")
_VAL_KEYS = ("cost", "reconstruction", "sparsity", "mse", "rho_hat_mean") + _ROW_DIAGNOSTICS


def _row_metrics(params: Params, x, x_val, config: TrainConfig) -> dict:
    """A metrics.jsonl row's numbers: :func:`evaluate`'s, the diagnostics of :mod:`sae_jax.metrics`
    (dead / saturated fractions, quantiles of the per-sample reconstruction error), and with a
    validation split the same on the held-out rows as ``val_*``. One jitted pass per data set."""
    from .metrics import _evaluate

    hp = dict(lam=config.lam, beta=config.beta, rho=config.rho, output=config.output)
    m = _evaluate(params, x, **hp)
    row = {k: m[k] for k in ("cost", "reconstruction", "weight_decay", "sparsity", "rho_hat_mean", "rho_hat_min",
                             "rho_hat_max", "mse") + _ROW_DIAGNOSTICS}
    if x_val is not None:
        v = _evaluate(params, x_val, **hp)
        row.update({f"val_{k}": v[k] for k in _VAL_KEYS})
    return row


def init_state(config: TrainConfig, x, optimizer=None, *, params: Params | None = None) -> TrainState:
    """The state at step 0: UFLDL init from ``PRNGKey(seed)``'s first split, the data key from its second.

    ``params`` (unchecked; :func:`train` checks them) replaces the UFLDL init: a fresh
    optimizer state (and running ρ̂) at those parameters.
    """
    key = jax.random.key(config.seed)
    k_init, k_data = jax.random.split(key)
    if params is None:
        params = init_params(k_init, int(x.shape[1]), config.n_hidden, dtype=jnp.dtype(config.dtype))
    else:
        params = Params(*(jnp.asarray(a) for a in params))
    optimizer = make_optimizer(config) if optimizer is None else optimizer
    rho_ema = None
    if config.rho_hat == "ema":
        dtype = params.W1.dtype
        rho_ema = _terms_jit(
            params, x, jnp.asarray(config.lam, dtype), jnp.asarray(config.beta, dtype),
            jnp.asarray(config.rho, dtype), output=config.output,
        ).rho_hat
    with _optax_promotion():
        opt_state = optimizer.init(params)
    # optax's zoom line search initialises some fields as weak-typed scalars, which the compiled
    # loop returns strongly typed; strip weak types here so the second chunk does not recompile.
    opt_state = jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.asarray(a).dtype), opt_state)
    return TrainState(params, opt_state, jnp.zeros((), jnp.int32), jax.random.key_data(k_data), rho_ema)


_fresh_state = init_state  # train()'s keyword ``init_state`` shadows the function there


def _check_warm_params(params, template: TrainState, name: str) -> Params:
    """``params`` checked against the state ``train`` would start from (shapes, dtype, finite)."""
    try:
        check_params(params)
    except InputError as e:
        if name == "params":
            raise
        raise InputError(f"{name}: {e}") from None
    for field, a, t in zip(Params._fields, params, template.params):
        if tuple(a.shape) != tuple(t.shape) or jnp.dtype(a.dtype) != t.dtype:
            raise InputError(
                f"{name}.{field} has shape {tuple(a.shape)} and dtype {jnp.dtype(a.dtype)}, expected "
                f"{tuple(t.shape)} {t.dtype} (n_hidden={template.params.W1.shape[0]} from the config, "
                f"n_visible={template.params.W1.shape[1]} from x, dtype from the config)"
            )
        if not bool(jnp.all(jnp.isfinite(jnp.asarray(a)))):
            raise InputError(f"{name}.{field} has non-finite values; warm start needs finite parameters")
    return Params(*(jnp.asarray(a) for a in params))


def _check_init_state(state, template: TrainState, config: TrainConfig) -> TrainState:
    """A :class:`TrainState` to continue from, checked against the config's fresh state.

    The line search's cached objective is invalidated (the data or λ, β, ρ may differ from
    the run that produced ``state``), so the first step evaluates the objective afresh.
    """
    if not isinstance(state, TrainState):
        raise InputError(
            f"init_state must be a TrainState (e.g. a TrainResult's .state), got {type(state).__name__}"
        )
    params = _check_warm_params(state.params, template, "init_state.params")
    t_leaves, t_def = jax.tree.flatten(template.opt_state)
    leaves, treedef = jax.tree.flatten(state.opt_state)
    layout = (
        f"optimizer={config.optimizer!r}"
        + (f", lbfgs_memory={config.lbfgs_memory}" if config.full_batch else "")
    )
    if treedef != t_def or any(
        tuple(np.shape(a)) != tuple(t.shape) or jnp.dtype(jnp.asarray(a).dtype) != t.dtype
        for a, t in zip(leaves, t_leaves)
    ):
        raise InputError(
            f"init_state.opt_state does not match the configured {layout} ({config.dtype}): "
            "continue with the config the state was trained with (λ, β, ρ, steps may change)"
        )
    if any(bool(jnp.any(jnp.isnan(jnp.asarray(a)))) for a in leaves if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating)):
        raise InputError("init_state.opt_state has NaN values; warm start needs a state from a finite run")
    step = np.asarray(state.step)
    if step.shape != () or not np.issubdtype(step.dtype, np.integer) or int(step) < 0:
        raise InputError(f"init_state.step must be a non-negative integer scalar, got {state.step!r}")
    key = np.asarray(state.key)
    if key.shape != tuple(template.key.shape) or key.dtype != template.key.dtype:
        raise InputError(
            f"init_state.key must be raw key data of shape {tuple(template.key.shape)} {template.key.dtype}, "
            f"got {key.shape} {key.dtype}"
        )
    rho_ema = None
    if template.rho_ema is not None:
        r = state.rho_ema
        if r is None or tuple(np.shape(r)) != tuple(template.rho_ema.shape) or jnp.dtype(jnp.asarray(r).dtype) != template.rho_ema.dtype:
            raise InputError(
                f"init_state.rho_ema must be the running rho_hat of shape {tuple(template.rho_ema.shape)} "
                f"{template.rho_ema.dtype} (rho_hat='ema'), got "
                + ("None (a state trained with rho_hat='batch')" if r is None else f"{np.shape(r)}")
            )
        rho_ema = jnp.asarray(r)
        if not bool(jnp.all(jnp.isfinite(rho_ema))):
            raise InputError("init_state.rho_ema has non-finite values")
    elif state.rho_ema is not None:
        raise InputError("init_state has a running rho_hat (rho_hat='ema') but the config has rho_hat='batch'")
    opt_state = jax.tree.unflatten(t_def, [jnp.asarray(a) for a in leaves])
    return TrainState(
        params, _invalidate_cache(opt_state), jnp.asarray(int(step), jnp.int32), jnp.asarray(key), rho_ema
    )


def _state_from_checkpoint(tensors, meta, template: TrainState, path) -> TrainState:
    t_leaves, treedef = jax.tree.flatten(template.opt_state)
    if meta["n_opt_leaves"] != len(t_leaves):
        raise InputError(
            f"checkpoint {str(path)!r} has {meta['n_opt_leaves']} optimizer-state arrays, "
            f"the configured optimizer has {len(t_leaves)} (a checkpoint from another optimizer "
            "layout, e.g. L-BFGS checkpoints written before sae_jax.lbfgs, cannot be resumed)"
        )
    leaves = []
    for i, t in enumerate(t_leaves):
        a = tensors[f"opt/{i:05d}"]
        if a.shape != tuple(t.shape) or a.dtype != t.dtype:
            raise InputError(
                f"checkpoint {str(path)!r}: optimizer-state array {i} has shape {a.shape} and dtype "
                f"{a.dtype}, expected {tuple(t.shape)} {t.dtype}"
            )
        leaves.append(jnp.asarray(a))
    params = ckpt.checkpoint_params(tensors)
    check_params(params)
    for name, a, t in zip(Params._fields, params, template.params):
        if a.shape != t.shape or a.dtype != t.dtype:
            raise InputError(
                f"checkpoint {str(path)!r}: params.{name} has shape {a.shape} {a.dtype}, "
                f"expected {t.shape} {t.dtype}"
            )
    rho_ema = None
    if template.rho_ema is not None:
        rho_ema = jnp.asarray(tensors["rho_ema"])
    return TrainState(
        Params(*(jnp.asarray(a) for a in params)),
        jax.tree.unflatten(treedef, leaves),
        jnp.asarray(meta["step"], jnp.int32),
        jnp.asarray(tensors["key"]),
        rho_ema,
    )


# ---------------------------------------------------------------------------------------
# train()
# ---------------------------------------------------------------------------------------


class TrainResult(NamedTuple):
    params: Params  # final parameters
    state: TrainState  # final state (for continuing in memory)
    metrics: list  # one dict per chunk (the rows of metrics.jsonl)
    config: TrainConfig
    run_dir: Path | None
    compile_s: float  # seconds spent compiling the chunk runner (0 if cached)
    train_s: float  # seconds in the training loop, excluding compilation


def _spec_dict(spec) -> dict | None:
    if spec is None or isinstance(spec, dict):
        return spec
    for attr in ("to_dict", "_asdict"):
        if hasattr(spec, attr):
            return dict(getattr(spec, attr)())
    if dataclasses.is_dataclass(spec):
        return dataclasses.asdict(spec)
    raise InputError(f"data_spec must be a dict or a DataSpec, got {type(spec).__name__}")


def _training_data(x, data_spec: dict | None, config: TrainConfig, who: str) -> np.ndarray:
    """``x``, or the data ``data_spec`` names, as a checked ``(m, n_visible)`` array in ``config.dtype``."""
    if x is None:
        if data_spec is None:
            raise InputError(f"{who} needs data: pass x (m, n_visible) or data_spec")
        from .data import load_from_spec

        x = load_from_spec(data_spec, output=config.output)
    x_np = _prepare_data(x, config)
    if x_np.shape[0] < 1 or x_np.shape[1] < 1:
        raise InputError(f"x must have at least one sample and one feature, got shape {x_np.shape}")
    check_data_values(x_np, output=config.output, name="x")
    return x_np


def _prepare_data(x, config: TrainConfig) -> np.ndarray:
    if isinstance(x, (str, bytes, os.PathLike)):
        raise InputError(
            f"x must be an array (m, n_visible); to load a file use sae_jax.data.load_dataset({x!r})"
        )
    try:
        a = np.asarray(x)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise InputError(f"x must be an array (m, n_visible), got {type(x).__name__} ({e})") from None
    if a.dtype == bool or a.dtype.kind not in "fiu":
        raise InputError(f"x must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise InputError(f"x must be 2-D (m, n_visible) with samples as rows, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.dtype(config.dtype))


def _read_metrics(path: Path) -> list[dict]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                break  # a torn last line from a kill mid-append: drop it
    return rows


def _check_patch_shape(patch_shape, n_visible: int):
    """``patch_shape`` for filters.png: ``None`` or ``(rows, cols)`` with ``rows * cols == n_visible``."""
    if patch_shape is None:
        return None
    from .display import _patch_shape

    try:
        return _patch_shape(n_visible, patch_shape)
    except (TypeError, ValueError):
        raise InputError(
            f"patch_shape must be (rows, cols) with rows*cols == n_visible={n_visible}, got {patch_shape!r}"
        ) from None


def _write_pictures(run_dir: Path, params: Params, metrics: list, config: TrainConfig,
                    patch_shape=None) -> list[str]:
    """Draw filters.png and training_curve.png; a picture that cannot be drawn is skipped.

    Returns one note per skipped picture (training is done by then: never fatal)."""
    from . import display

    notes = []
    n_visible = int(params.W1.shape[1])
    for name, draw in (
        ("filters.png", lambda p: display.save_filters_png(
            np.asarray(params.W1), p, patch_shape=patch_shape, title=f"{config.n_hidden} hidden units")),
        ("training_curve.png", lambda p: display.save_training_curve_png(metrics, p, rho=config.rho)),
    ):
        if name == "training_curve.png" and not metrics:
            continue
        if name == "filters.png" and patch_shape is None and math.isqrt(n_visible) ** 2 != n_visible:
            notes.append(
                f"filters.png not drawn: n_visible={n_visible} is not a square; pass patch_shape=(rows, cols) "
                f"(sae-jax: --patch-shape ROWSxCOLS) to draw each filter as a rows x cols patch"
            )
            continue
        tmp = run_dir / f".{name}.tmp.png"
        try:
            draw(tmp)
            os.replace(tmp, run_dir / name)
        except Exception as e:  # noqa: BLE001 - a picture never costs the trained result
            notes.append(f"{name} not drawn: {type(e).__name__}: {e}")
            try:
                tmp.unlink()
            except OSError:
                pass
    return notes


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
        ``metrics.jsonl``, ``filters.png``, ``training_curve.png``. ``None``: train in memory.
        A fresh run refuses a directory that already holds a checkpoint.
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
      :class:`TrainResult`.

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
    run_dir = Path(run_dir) if run_dir is not None else None
    if params is not None and init_state is not None:
        raise InputError("pass params= (fresh optimizer state) or init_state= (continue a state), not both")
    if resume and (params is not None or init_state is not None):
        raise InputError("resume=True continues run_dir's checkpoint; it cannot be combined with params= or init_state=")
    explicit_config = config is not None
    config = TrainConfig() if config is None else config
    tensors = meta = None
    if resume:
        if run_dir is None:
            raise InputError("resume=True needs run_dir (the directory of the run to continue)")
        tensors, meta = ckpt.load_checkpoint(run_dir / ckpt.CHECKPOINT_NAME)
        saved = TrainConfig.from_dict(meta["config"])
        if explicit_config:
            validate_config(config)
            diff = [
                f.name for f in dataclasses.fields(TrainConfig)
                if f.name not in RESUMABLE_FIELDS and getattr(config, f.name) != getattr(saved, f.name)
            ]
            if diff:
                raise InputError(
                    f"cannot resume {str(run_dir)!r} with a different config: "
                    + ", ".join(f"{k}={getattr(config, k)!r} (checkpoint has {getattr(saved, k)!r})" for k in diff)
                )
            config = dataclasses.replace(saved, **{k: getattr(config, k) for k in RESUMABLE_FIELDS})
        else:
            config = saved
        if config.steps < meta["step"]:
            raise InputError(
                f"cannot resume {str(run_dir)!r} to steps={config.steps}: its checkpoint is already at "
                f"step {meta['step']} (a resume only continues a run; pass steps >= {meta['step']}, "
                "or train a new run)"
            )
        if data_spec is None:
            data_spec = meta["data_spec"]
        if x is None:
            if data_spec is None:
                raise InputError(
                    f"checkpoint {str(run_dir)!r} has no data spec (it was trained on an in-memory "
                    f"array): pass the same x again"
                )
            from .data import load_from_spec

            x = load_from_spec(data_spec, output=config.output)
    elif run_dir is not None:
        _check_run_dir(run_dir)
        if (run_dir / ckpt.CHECKPOINT_NAME).exists():
            raise InputError(
                f"run directory {str(run_dir)!r} already holds a checkpoint; resume it or choose another directory"
            )
    validate_config(config)
    data_spec = _spec_dict(data_spec)
    if data_spec is not None:  # keys sorted, as the checkpoint stores it: the same config.json on resume
        data_spec = json.loads(json.dumps(data_spec, sort_keys=True))
    x_np = _training_data(x, data_spec, config, "train")
    patch_shape = _check_patch_shape(patch_shape, int(x_np.shape[1]))
    x_val_dev = None
    x_all = x_np
    if config.validation_fraction > 0:
        from .metrics import split_validation

        if x_np.shape[0] < 2:
            raise InputError(f"validation_fraction > 0 needs at least 2 samples, got {x_np.shape[0]}")
        idx_train, idx_val = split_validation(x_np.shape[0], config.validation_fraction, config.seed)
        x_val_dev = jnp.asarray(x_np[idx_val])
        x_np = x_np[idx_train]
    x_dev = jnp.asarray(x_np)
    optimizer = make_optimizer(config)
    template = _fresh_state(config, x_dev, optimizer)
    check_data(x_dev, template.params, output=config.output)
    if not config.full_batch and config.batch_size > x_np.shape[0]:
        raise InputError(
            f"batch_size must be <= the number of samples ({x_np.shape[0]}), got {config.batch_size}"
        )
    digest = ckpt.data_sha256(x_all)  # of all rows (the split is a function of the config)
    state = template
    if resume:
        if meta["data_sha256"] != digest:
            raise InputError(
                f"the data differ from those {str(run_dir)!r} was trained on (SHA-256 mismatch); "
                f"resume with the same data"
            )
        state = _state_from_checkpoint(tensors, meta, template, run_dir / ckpt.CHECKPOINT_NAME)
    elif params is not None:
        state = _fresh_state(config, x_dev, optimizer, params=_check_warm_params(params, template, "params"))
    elif init_state is not None:
        state = _check_init_state(init_state, template, config)
    # init_state: config.steps more steps; the run directory records the total
    end_step = int(state.step) + config.steps if init_state is not None else config.steps
    saved_config = dataclasses.replace(config, steps=end_step)

    # The state every run starts from must have a finite cost and gradient: the checkpoint
    # keeps only such states (a huge data scale or lam overflowing the dtype fails here).
    start_eval = evaluate(state.params, x_dev, config)
    bad_what = _nonfinite_state(state.params, x_dev, config, start_eval)
    if bad_what is not None:
        if resume:  # only a checkpoint from before checkpoints were checked can hold such a state
            raise InputError(
                f"the {bad_what} at the checkpoint in {str(run_dir)!r} (step {int(state.step)}) is not "
                f"finite in {config.dtype} (cost {start_eval['cost']!r}): it cannot be continued; "
                "start a new run"
            )
        raise InputError(
            f"the {bad_what} at the initial parameters is not finite in {config.dtype} "
            f"(cost {start_eval['cost']!r}); check the data's scale and lam, beta, rho"
        )

    # ---- inputs valid: from here on, files may be written ----
    metrics: list[dict] = []
    metrics_path = None
    config_doc = {
        "config": saved_config.to_dict(),
        "data_spec": data_spec,
        "n_visible": int(x_np.shape[1]),
        "n_samples": int(x_all.shape[0]),
        "n_validation": 0 if x_val_dev is None else int(x_val_dev.shape[0]),
        "data_sha256": digest,
        "sae_jax_version": _version(),
    }
    start_step = int(state.step)
    if run_dir is not None:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create run directory {str(run_dir)!r}: {e.strerror or e}") from None
        _remove_stale_temp_files(run_dir)
        ckpt.atomic_write_text(run_dir / ckpt.CONFIG_NAME, json.dumps(config_doc, indent=2) + "\n")
        metrics_path = run_dir / ckpt.METRICS_NAME
        if resume:  # rows logged after the checkpoint belong to the lost tail: drop them
            metrics = [r for r in _read_metrics(metrics_path) if r.get("step", 0) <= start_step]
            ckpt.atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in metrics))
        else:
            ckpt.atomic_write_text(metrics_path, "")

    def save(st: TrainState):
        if run_dir is None:
            return
        ckpt.save_checkpoint(
            run_dir / ckpt.CHECKPOINT_NAME,
            params=st.params,
            opt_leaves=jax.tree.leaves(st.opt_state),
            step=int(st.step),
            key_data=st.key,
            rho_ema=st.rho_ema,
            config=saved_config.to_dict(),
            data_spec=data_spec,
            data_sha256=digest,
            extra={"n_visible": int(x_np.shape[1]), "n_samples": int(x_all.shape[0])},
        )

    if not resume:
        save(state)
    last_saved = start_step

    t0 = time.perf_counter()
    runner = _runner_for(config, value_and_grad_fn)
    hp = hyperparams(config)
    jax.block_until_ready(runner(state, x_dev, jnp.zeros((), jnp.int32), hp))  # compile (or hit the cache)
    compile_s = time.perf_counter() - t0

    if not metrics or metrics[-1].get("step") != start_step:
        row = {"step": start_step, **_row_metrics(state.params, x_dev, x_val_dev, config), "step_time_s": None}
        metrics.append(row)
        if metrics_path is not None:
            _append(metrics_path, row)
    if progress is not None:
        progress(metrics[-1])  # the starting point

    train_s = 0.0
    step = start_step
    K = config.chunk
    while step < end_step:
        n = min(K - step % K, end_step - step)  # chunk boundaries at multiples of K
        t1 = time.perf_counter()
        new_state, values, bad, cause, bad_value = _run_chunk(runner, state, x_dev, n, hp)
        dt = time.perf_counter() - t1
        train_s += dt
        if bad >= 0:
            what = _CAUSES.get(int(cause), "non-finite value")
            val = float(bad_value)
            where = (
                f"; the last good checkpoint (step {last_saved}) in {str(run_dir)!r} is kept"
                if run_dir is not None else ""
            )
            raise TrainingDiverged(
                f"training stopped at step {bad}: {what} (cost {val!r}) with optimizer="
                f"{config.optimizer}, learning_rate={config.learning_rate:g}{where}",
                step=bad, cause=what, checkpoint_step=last_saved if run_dir is not None else None,
                state=new_state,
            )
        good_state, state = state, new_state
        step = int(state.step)
        row = {
            "step": step,
            **_row_metrics(state.params, x_dev, x_val_dev, config),
            "batch_cost": float(np.nanmean(np.asarray(values[:n], np.float64))),
            "step_time_s": dt / n,
            "elapsed_s": train_s,
        }
        metrics.append(row)
        if metrics_path is not None:
            _append(metrics_path, row)
        due = run_dir is not None and (
            step // config.checkpoint_every > last_saved // config.checkpoint_every or step == end_step
        )
        # Every step was finite on its own batch, but the state it reached must also have a
        # finite full-data cost (every chunk) and gradient (before it is checkpointed): a
        # checkpoint is only ever a state training can continue from.
        bad_what = _nonfinite_state(state.params, x_dev, config, row, gradient=due)
        if bad_what is not None:
            where = (
                f"; the last good checkpoint (step {last_saved}) in {str(run_dir)!r} is kept"
                if run_dir is not None else ""
            )
            raise TrainingDiverged(
                f"training stopped at step {step}: non-finite full-data {bad_what} (cost {row['cost']!r}) "
                f"with optimizer={config.optimizer}, learning_rate={config.learning_rate:g}{where}",
                step=step, cause=f"non-finite full-data {bad_what}",
                checkpoint_step=last_saved if run_dir is not None else None, state=good_state,
            )
        if due:
            save(state)
            last_saved = step
        if progress is not None:
            progress(row)

    if run_dir is not None:
        if last_saved != step:
            save(state)
        ckpt.save_params(run_dir / ckpt.PARAMS_NAME, state.params, config={
            **saved_config.to_dict(), "n_visible": int(x_np.shape[1]), "step": step,
        })
        if pictures:
            import warnings

            for note in _write_pictures(run_dir, state.params, metrics, config, patch_shape):
                warnings.warn(note, UserWarning, stacklevel=2)
    return TrainResult(state.params, state, metrics, config, run_dir, compile_s, train_s)


def _check_run_dir(run_dir: Path) -> None:
    """``run_dir`` is a directory or can be created as one (no file at it or above it)."""
    for p in (run_dir, *run_dir.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == run_dir else f"is below {str(p)!r}, which is a file"
                raise InputError(f"run directory {str(run_dir)!r} {what}; choose a directory")
            return


def _remove_stale_temp_files(run_dir: Path) -> None:
    """Temp files a killed writer left in ``run_dir`` (``.checkpoint.safetensors.*.tmp``...)."""
    names = (ckpt.CHECKPOINT_NAME, ckpt.PARAMS_NAME, ckpt.CONFIG_NAME, ckpt.METRICS_NAME)
    patterns = [f".{n}.*.tmp" for n in names] + [".filters.png.tmp.png", ".training_curve.png.tmp.png"]
    for pattern in patterns:
        for f in run_dir.glob(pattern):
            try:
                f.unlink()
            except FileNotFoundError:  # pragma: no cover - removed concurrently
                pass


@functools.partial(jax.jit, static_argnames=("output",))
def _grads_finite_jit(params, x, lam, beta, rho, *, output):
    _, grads = _cost_terms_and_grad(params, x, lam=lam, beta=beta, rho=rho, output=output)
    return _all_finite(grads)


def _nonfinite_state(params: Params, x, config: TrainConfig, row: dict, *, gradient: bool = True):
    """``None`` if the full-data cost (from ``row``, :func:`evaluate`'s dict) and, with
    ``gradient``, the full-data gradient at ``params`` are finite; else which one is not."""
    if not math.isfinite(row["cost"]):
        return "cost"
    if gradient:
        dtype = params.W1.dtype
        ok = _grads_finite_jit(
            params, x, jnp.asarray(config.lam, dtype), jnp.asarray(config.beta, dtype),
            jnp.asarray(config.rho, dtype), output=config.output,
        )
        if not bool(ok):
            return "gradient"
    return None


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


def _version() -> str:
    from . import __version__

    return __version__
