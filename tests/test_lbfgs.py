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
from sae_jax._src.step import make_step, make_value_and_grad, optax_promotion

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


@pytest.mark.parametrize("memory, steps", [(1, 6), (4, 15), (10, 25)])
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
