"""sae_jax._src.lbfgs: the compact-form L-BFGS direction equals optax's two-loop direction.

The reference is ``optax.scale_by_lbfgs`` itself, fed the same sequence of (gradient,
parameters) as ``scale_by_compact_lbfgs``: the sequence comes from real L-BFGS runs on the
sparse-autoencoder cost, so the pairs have the curvature a run produces, the history fills,
wraps around, and (in one test) contains skipped pairs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import assert_tree_close, max_rel_err, random_problem
from sae_jax import cost_and_grad as manual_cost_and_grad
from sae_jax.optim import ScaleByCompactLBFGSState, lbfgs, scale_by_compact_lbfgs
from sae_jax._src.lbfgs import optax_promotion
from sae_jax._src.step import make_step, make_value_and_grad

HP = dict(lam=1e-3, beta=3.0, rho=0.1)


def _problem():
    p, x = random_problem(0, 60, 12, 5)
    return p, 0.1 + 0.8 * x


@functools.lru_cache(maxsize=None)
def _optimizer_run(kind, steps=25):
    """Iterates of ``steps`` L-BFGS steps (memory 4, zoom line search) on a small SAE problem."""
    p, x = _problem()
    vg = make_value_and_grad("manual", **HP)
    opt = optax.lbfgs(memory_size=4) if kind == "optax" else lbfgs(memory_size=4)
    step = jax.jit(make_step(vg, opt))
    with optax_promotion():
        state = opt.init(p)
    params, values = [p], []
    for _ in range(steps):
        p, state, out = step(p, state, x)
        params.append(p)
        values.append(float(out.value))
    return tuple(params), tuple(values)


@functools.lru_cache(maxsize=None)
def _run(dtype=jnp.float64):
    """(params, grad) at every iterate of the optax run (float32: the same iterates, rounded)."""
    _, x = _problem()
    cost_and_grad = jax.jit(manual_cost_and_grad, static_argnames="output")
    out = []
    for p in _optimizer_run("optax")[0]:
        p = jax.tree.map(lambda a: a.astype(dtype), p)
        _, g = cost_and_grad(p, x.astype(dtype), **HP)
        out.append((p, g))
    return tuple(out)


def _trajectory(steps, dtype=jnp.float64):
    """The first ``steps`` (params, grad) pairs of the shared optax run."""
    return list(_run(dtype)[:steps])


def _directions(transform, trajectory):
    update = jax.jit(transform.update)
    with optax_promotion():
        state = transform.init(trajectory[0][0])
    dirs = []
    for p, g in trajectory:
        with optax_promotion():
            d, state = update(g, state, p)
        dirs.append(d)
    return dirs, state


@pytest.mark.parametrize("memory, steps", [(1, 6), pytest.param(4, 15, marks=pytest.mark.slow), pytest.param(10, 25, marks=pytest.mark.slow)])  # memory 1 by default (memory 4 is held to optax's whole optimizer in test_lbfgs_trains_like_optax_lbfgs); 4 and 10 under -m slow
def test_direction_equals_optax_two_loop(memory, steps):
    # memory < steps: the circular buffer wraps around; memory 10 > the run's 4 as well.
    traj = _trajectory(steps)
    want, _ = _directions(optax.scale_by_lbfgs(memory), traj)
    got, state = _directions(scale_by_compact_lbfgs(memory), traj)
    for k, (d_got, d_want) in enumerate(zip(got, want)):
        assert_tree_close(d_got, d_want, 1e-10, what=f"step {k}")
    assert isinstance(state, ScaleByCompactLBFGSState) and int(state.count) == steps


def test_direction_float32():
    traj = _trajectory(20, dtype=jnp.float32)
    want, _ = _directions(optax.scale_by_lbfgs(5), traj)
    got, _ = _directions(scale_by_compact_lbfgs(5), traj)
    # float32, a condition-number-sized loss of digits through the triangular solves
    for k, (d_got, d_want) in enumerate(zip(got, want)):
        assert_tree_close(d_got, d_want, 2e-3, what=f"step {k}")


def test_without_initial_scaling():
    traj = _trajectory(12)
    want, _ = _directions(optax.scale_by_lbfgs(4, scale_init_precond=False), traj)
    got, _ = _directions(scale_by_compact_lbfgs(4, scale_init_precond=False), traj)
    for d_got, d_want in zip(got, want):
        assert_tree_close(d_got, d_want, 1e-10)


def test_first_step_is_the_capped_scaled_gradient():
    (p, g), = _trajectory(1)
    got, _ = _directions(scale_by_compact_lbfgs(3), [(p, g)])
    norm = float(jnp.sqrt(sum(jnp.sum(a**2) for a in jax.tree.leaves(g))))
    want = jax.tree.map(lambda a: a * min(1.0, 1.0 / norm), g)
    assert_tree_close(got[0], want, 1e-15)


def test_skipped_pairs_match_optax():
    # Repeating an iterate gives s = y = 0 (s^T y = 0): optax's weight 0 skips that pair, and
    # so must the compact form; the remaining pairs still form the approximation.
    traj = _trajectory(9)
    traj = traj[:3] + [traj[2]] + traj[3:6] + [traj[5], traj[5]] + traj[6:]
    want, _ = _directions(optax.scale_by_lbfgs(6), traj)
    got, state = _directions(scale_by_compact_lbfgs(6), traj)
    for k, (d_got, d_want) in enumerate(zip(got, want)):
        assert_tree_close(d_got, d_want, 1e-10, what=f"step {k}")
    assert int(jnp.sum(state.weights_memory == 0)) >= 1


def test_gram_matrices_are_the_histories_products():
    _, state = _directions(scale_by_compact_lbfgs(4), _trajectory(11))
    S, Y = np.asarray(state.diff_params_memory), np.asarray(state.diff_updates_memory)
    assert max_rel_err(state.sy_memory, S @ Y.T) < 1e-13
    assert max_rel_err(state.yy_memory, Y @ Y.T) < 1e-13


def test_lbfgs_trains_like_optax_lbfgs():
    # The same algorithm: 25 steps of the full optimizer (zoom line search) from the same
    # start visit the same iterates up to rounding, in float64.
    params_ref, values_ref = _optimizer_run("optax")
    params, values = _optimizer_run("compact")
    np.testing.assert_allclose(values, values_ref, rtol=1e-10)
    for k, (q, q_ref) in enumerate(zip(params, params_ref)):
        assert_tree_close(q, q_ref, 1e-7, what=f"iterate {k}")


def test_vmap_over_settings():
    # A sweep (jax.vmap over problems) runs the transform batched: same directions as one by one.
    trajs = [_trajectory(7), _trajectory(7)[::-1]]  # two different histories
    t = scale_by_compact_lbfgs(3)
    stack = lambda trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)  # noqa: E731
    update = jax.jit(jax.vmap(t.update))
    with optax_promotion():
        state = jax.vmap(t.init)(stack([tr[0][0] for tr in trajs]))
        for k in range(7):
            p = stack([tr[k][0] for tr in trajs])
            g = stack([tr[k][1] for tr in trajs])
            d, state = update(g, state, p)
    single = [_directions(t, tr)[0][-1] for tr in trajs]
    for i in range(2):
        assert_tree_close(jax.tree.map(lambda a: a[i], d), single[i], 1e-12)


def test_memory_size_must_be_positive():
    with pytest.raises(ValueError, match="memory_size must be >= 1"):
        scale_by_compact_lbfgs(0)


def test_lbfgs_without_line_search_is_a_scaled_direction():
    # linesearch=None (as in optax.lbfgs): no line search, the direction times -learning_rate.
    traj = _trajectory(5)
    want, _ = _directions(scale_by_compact_lbfgs(4), traj)
    opt = lbfgs(learning_rate=0.1, memory_size=4, linesearch=None)
    with optax_promotion():
        state = opt.init(traj[0][0])
        for (p, g), d in zip(traj, want):
            u, state = opt.update(g, state, p)
            assert_tree_close(u, jax.tree.map(lambda a: -0.1 * a, d), 1e-14)


# --- The one driver: optax compatibility, the line-search cache, the three loops -----------------


def test_declared_optax_floor_has_what_the_driver_relies_on():
    """pyproject declares optax>=0.2.5, the first release with both things sae_jax._src.lbfgs relies
    on: ``optax.tree``'s utilities, and a zoom line search whose state keeps the parameters' dtype
    (the value and step size; each update cast like the state it replaces). optax 0.2.4 (the floor
    declared before) has ``optax.tree_utils`` only, starts the value at the default float type and
    lets ``info.num_linesearch_steps`` change dtype: under x64 the trainer's ``lax.while_loop``
    refused its state, and float32 parameters under x64 failed inside 0.2.4's line search. Measured
    in a venv with jax 0.10.2 (``PYTHONPATH=$PWD <venv>/bin/python -m pytest ...``): with an
    ``optax.tree_utils`` fallback in place, optax 0.2.4 failed 2 of 23 tests of test_lbfgs,
    test_minimize, test_objective and test_chunked's L-BFGS cases (a dtype-fixing wrapper around its
    line search fixed the first, not the second); optax 0.2.5 passed those files and test_softmax,
    test_stacked, test_chunked with no compatibility code."""
    import re
    from pathlib import Path

    from sae_jax._src.lbfgs import zoom_linesearch

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    floor = re.search(r'"optax>=([0-9.]+)"', pyproject).group(1)
    assert tuple(map(int, floor.split("."))) >= (0, 2, 5)
    assert tuple(map(int, optax.__version__.split(".")[:3])) >= tuple(map(int, floor.split(".")))
    for name in ("get", "set", "sub", "vdot", "real", "norm"):
        assert callable(getattr(optax.tree, name)), name
    with jax.enable_x64(True):
        p32 = jnp.zeros(3, jnp.float32)
        ls = zoom_linesearch(3)
        state = ls.init(p32)
        assert state.value.dtype == state.learning_rate.dtype == jnp.float32
        value_fn = lambda w: jnp.sum((w - 1.0) ** 2)  # noqa: E731
        with optax_promotion():
            _, new = ls.update(-jnp.ones(3, jnp.float32), state, p32, value=value_fn(p32),
                               grad=jax.grad(value_fn)(p32), value_fn=value_fn)
        assert jax.tree.map(lambda a: a.dtype, new) == jax.tree.map(lambda a: a.dtype, state)


def test_prime_linesearch_evaluates_only_a_stale_cache():
    from sae_jax._src.lbfgs import invalidate_linesearch, prime_linesearch, value_with_grad

    calls = []

    def vg(w):
        jax.debug.callback(lambda: calls.append(1))
        return jnp.sum(w * w), 2 * w

    value_fn, w = value_with_grad(vg), jnp.array([1.0, 2.0])
    prime = jax.jit(lambda w, s: prime_linesearch(value_fn, w, s))
    state = prime(w, lbfgs().init(w))  # starts at inf: one evaluation
    assert len(calls) == 1
    assert float(optax.tree.get(state, "value")) == 5.0
    assert_tree_close(optax.tree.get(state, "grad"), 2 * w, 0.0)
    state = prime(w + 1, state)  # finite: trusted, no evaluation
    assert len(calls) == 1 and float(optax.tree.get(state, "value")) == 5.0
    state = prime(w + 1, invalidate_linesearch(state))  # invalidated: evaluated again
    assert len(calls) == 2 and float(optax.tree.get(state, "value")) == 13.0
    assert prime_linesearch(value_fn, w, optax.adam(0.1).init(w)) is not None  # no cache: unchanged


def _sae_value_and_grad(p, x):
    return manual_cost_and_grad(p, x, **HP)


def test_the_three_loops_are_one_algorithm():
    """The trainer's step (make_step in a Python loop here), lbfgs_loop (one jitted step per
    iteration) and minimize_lbfgs (one jitted while_loop) run the one driver: the same iterates."""
    from sae_jax.optim import lbfgs_loop
    from sae_jax.optim import minimize_lbfgs

    p, x = _problem()
    steps, memory = 6, 4
    opt = lbfgs(memory_size=memory)
    step = jax.jit(make_step(make_value_and_grad("manual", **HP), opt))
    q, state, trainer_values = p, None, []
    with optax_promotion():
        state = opt.init(p)
    for _ in range(steps):
        q, state, out = step(q, state, x)
        trainer_values.append(float(out.value))
    loop = lbfgs_loop(lambda w: _sae_value_and_grad(w, x), p, num_steps=steps, memory_size=memory, traced=True)
    whole = minimize_lbfgs(
        _sae_value_and_grad, p, (x,), steps=steps, memory_size=memory, grad_tol=0.0, progress_tol=0.0
    )
    assert int(whole.steps) == steps
    np.testing.assert_allclose(loop.values[:steps], trainer_values, rtol=1e-12)
    assert_tree_close(loop.params, q, 1e-10, what="lbfgs_loop vs trainer")
    assert_tree_close(whole.params, q, 1e-10, what="minimize_lbfgs vs trainer")
    assert float(whole.value) == pytest.approx(loop.values[-1], rel=1e-12)
