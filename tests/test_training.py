"""Training: both optimizers x both gradients, EMA rho_hat, determinism, resume, NaN stop, validation.

Small sizes throughout (m = 120 samples of 16 = 4x4 pixels, 5 hidden units), and few distinct
configs, because every new optimizer/gradient combination compiles a new chunk runner.
Tolerances (float64): manual vs autodiff is the same math summed in another order; over
tens of L-BFGS steps the difference stays below 1e-8 relative (measured ~1e-12).
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sae_jax import InputError, cost_and_grad, init_params
from sae_jax._src.minibatch import (
    EmaBatch,
    autodiff_ema_cost_terms_and_grad,
    ema_cost_terms,
    ema_cost_terms_and_grad,
)
from sae_jax.training import TrainConfig, TrainingDiverged, train
from sae_jax._src.training import make_step, validate_config, value_fn_from

M, N, H = 120, 16, 5
TRAJ_RTOL = 1e-8  # manual vs autodiff trajectories, float64


def _data(seed=0, m=M, n=N):
    rng = np.random.default_rng(seed)
    # smooth-ish patches in [0.1, 0.9], like the natural ones
    base = rng.uniform(0.1, 0.9, (m, 1))
    return np.clip(base + 0.2 * rng.standard_normal((m, n)), 0.1, 0.9)


X = _data()
LBFGS = TrainConfig(n_hidden=H, steps=12, chunk=5, checkpoint_every=5)
ADAM = TrainConfig(n_hidden=H, optimizer="adam", learning_rate=0.05, batch_size=32, steps=12, chunk=5,
                   checkpoint_every=5)


def _assert_tree_equal(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def _assert_tree_close(a, b, rtol):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        scale = max(np.max(np.abs(v)), 1e-300)
        assert np.max(np.abs(u - v)) / scale <= rtol


@pytest.mark.parametrize("base", [pytest.param(LBFGS, id="lbfgs"), pytest.param(ADAM, id="adam", marks=pytest.mark.slow)])  # adam: the same gradients, another optimizer
def test_manual_and_autodiff_give_the_same_trajectory(base):
    r_m = train(X, dataclasses.replace(base, gradient="manual"))
    r_a = train(X, dataclasses.replace(base, gradient="autodiff"))
    _assert_tree_close(r_m.params, r_a.params, TRAJ_RTOL)
    costs_m = [row["cost"] for row in r_m.metrics]
    costs_a = [row["cost"] for row in r_a.metrics]
    np.testing.assert_allclose(costs_m, costs_a, rtol=TRAJ_RTOL)
    assert costs_m[-1] < costs_m[0]  # it trains
    assert r_m.params.W1.dtype == jnp.float64


def test_lbfgs_decreases_monotonically_and_compiles_once():
    from sae_jax._src.loop import runner_for

    r = train(X, LBFGS)
    costs = [row["cost"] for row in r.metrics]
    assert all(b <= a for a, b in zip(costs, costs[1:]))
    assert [row["step"] for row in r.metrics] == [0, 5, 10, 12]
    # chunks of 5, 5, 2 all ran one executable: the state the loop returns has the types it was
    # compiled for (optax's weak-typed line-search fields would otherwise force a second compile)
    assert runner_for(LBFGS)._cache_size() == 1


def test_sgd_runs_and_float32_is_preserved():
    cfg = TrainConfig(n_hidden=H, optimizer="sgd", learning_rate=0.5, batch_size=40, steps=10, chunk=5,
                      dtype="float32")
    r = train(X, cfg)
    assert all(a.dtype == jnp.float32 for a in r.params)
    assert r.metrics[-1]["cost"] < r.metrics[0]["cost"]


def test_deterministic_for_a_seed():
    a = train(X, ADAM)
    b = train(X, ADAM)
    _assert_tree_equal(a.params, b.params)
    c = train(X, dataclasses.replace(ADAM, seed=1))
    assert not np.array_equal(np.asarray(a.params.W1), np.asarray(c.params.W1))


def _linear_objective(params, batch):
    """A cheap objective for tests of the loop itself: J = -b2[0], gradient -1 on b2[0]."""
    g = jax.tree.map(jnp.zeros_like, params)
    return (-params.b2[0], None), g._replace(b2=g.b2.at[0].set(-1.0))


def test_runner_compiles_once_for_every_chunk_length():
    traces = []

    def counted(params, batch):
        traces.append(1)
        return _linear_objective(params, batch)

    cfg = TrainConfig(n_hidden=H, optimizer="sgd", learning_rate=1.0, momentum=0.0, batch_size=32,
                      steps=5, chunk=5)
    train(X, cfg, value_and_grad_fn=counted)
    per_compile = len(traces)
    traces.clear()
    r = train(X, dataclasses.replace(cfg, steps=23), value_and_grad_fn=counted)  # chunks 5,5,5,5,3
    assert len(traces) == per_compile
    assert float(r.params.b2[0]) == 23.0  # every step ran exactly once


# --- EMA rho_hat ---------------------------------------------------------------------


def _ema_point(dtype=jnp.float64):
    p = init_params(jax.random.key(3), N, H, dtype=dtype)
    p = p._replace(b1=jnp.linspace(-0.5, 0.5, H, dtype=dtype))
    x = jnp.asarray(X[:32], dtype)
    rho_prev = jnp.linspace(0.02, 0.4, H, dtype=dtype)
    return p, EmaBatch(x, rho_prev)


@pytest.mark.parametrize("alpha", [pytest.param(0.0, marks=pytest.mark.slow), 0.5, pytest.param(0.9, marks=pytest.mark.slow)])
def test_ema_manual_gradient_equals_autodiff(alpha):
    p, batch = _ema_point()
    hp = dict(lam=1e-3, beta=3.0, rho=0.05, ema_decay=alpha)
    t_m, g_m = jax.jit(lambda p, b: ema_cost_terms_and_grad(p, b, **hp))(p, batch)
    t_a, g_a = jax.jit(lambda p, b: autodiff_ema_cost_terms_and_grad(p, b, **hp))(p, batch)
    _assert_tree_close(g_m, g_a, 1e-12)
    _assert_tree_close(t_m, t_a, 1e-14)
    # the running estimate is alpha * prev + (1 - alpha) * batch estimate
    t0 = ema_cost_terms(p, batch._replace(rho_prev=batch.rho_prev), **{**hp, "ema_decay": 0.0})
    np.testing.assert_allclose(t_m.rho_hat, alpha * batch.rho_prev + (1 - alpha) * t0.rho_hat, rtol=1e-14)


def test_ema_with_alpha_zero_is_the_batch_estimate():
    p, batch = _ema_point()
    hp = dict(lam=1e-3, beta=3.0, rho=0.05)
    t, g = ema_cost_terms_and_grad(p, batch, ema_decay=0.0, **hp)
    J, g_plain = cost_and_grad(p, batch.x, **hp)
    np.testing.assert_allclose(t.cost, J, rtol=1e-14)
    _assert_tree_close(g, g_plain, 1e-13)


def test_ema_gradient_is_sparsity_derivative_at_the_ema_times_one_minus_alpha():
    # Only the sparsity term depends on alpha; d(sparsity)/d(rho_hat_batch) = (1-alpha) * KL'(rho_ema).
    p, batch = _ema_point()
    alpha = 0.7

    def sp(rho_b):
        rh = alpha * batch.rho_prev + (1 - alpha) * rho_b
        return 3.0 * jnp.sum(0.05 * jnp.log(0.05 / rh) + 0.95 * jnp.log(0.95 / (1 - rh)))

    rho_b = jnp.linspace(0.1, 0.3, H)
    rh = alpha * batch.rho_prev + (1 - alpha) * rho_b
    expected = (1 - alpha) * 3.0 * (-0.05 / rh + 0.95 / (1 - rh))
    np.testing.assert_allclose(jax.grad(sp)(rho_b), expected, rtol=1e-12)


@pytest.mark.slow
def test_ema_training_manual_equals_autodiff_and_differs_from_batch():
    cfg = dataclasses.replace(ADAM, rho_hat="ema", ema_decay=0.8)
    r_m = train(X, cfg)
    r_a = train(X, dataclasses.replace(cfg, gradient="autodiff"))
    _assert_tree_close(r_m.params, r_a.params, TRAJ_RTOL)
    assert r_m.state.rho_ema.shape == (H,)
    r_b = train(X, ADAM)
    assert not np.allclose(np.asarray(r_m.params.W1), np.asarray(r_b.params.W1))


# --- resume ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base",
    [LBFGS, ADAM, pytest.param(dataclasses.replace(ADAM, rho_hat="ema"), marks=pytest.mark.slow)],
    ids=["lbfgs", "adam", "adam-ema"],
)
def test_resume_is_bit_identical(tmp_path, base):
    full = train(X, base, run_dir=tmp_path / "full", pictures=False)
    first = train(X, dataclasses.replace(base, steps=7), run_dir=tmp_path / "cut", pictures=False)
    assert int(first.state.step) == 7
    resumed = train(X, base, run_dir=tmp_path / "cut", resume=True, pictures=False)
    assert int(resumed.state.step) == base.steps
    _assert_tree_equal(resumed.params, full.params)
    _assert_tree_equal(resumed.state.opt_state, full.state.opt_state)
    rows = [r["step"] for r in resumed.metrics]
    assert rows == sorted(set(rows)) and rows[-1] == base.steps


def test_resume_refuses_a_checkpoint_of_another_optimizer_layout(tmp_path, monkeypatch):
    # E.g. an L-BFGS checkpoint written with optax's state (before sae_jax._src.lbfgs): one clear error.
    import optax

    import sae_jax._src.training as training

    train(X, dataclasses.replace(LBFGS, steps=5), run_dir=tmp_path, pictures=False)
    monkeypatch.setattr(training, "make_optimizer", lambda config: optax.lbfgs(memory_size=config.lbfgs_memory))
    with pytest.raises(InputError, match="optimizer-state arrays.*another optimizer layout"):
        train(X, LBFGS, run_dir=tmp_path, resume=True, pictures=False)


def test_resume_refuses_other_config_and_other_data(tmp_path):
    train(X, dataclasses.replace(LBFGS, steps=5), run_dir=tmp_path, pictures=False)
    with pytest.raises(InputError, match="different config: beta"):
        train(X, dataclasses.replace(LBFGS, beta=1.0), run_dir=tmp_path, resume=True)
    with pytest.raises(InputError, match="data differ"):
        train(_data(seed=1), LBFGS, run_dir=tmp_path, resume=True)
    with pytest.raises(InputError, match="no data spec"):
        train(None, LBFGS, run_dir=tmp_path, resume=True)
    with pytest.raises(InputError, match="already holds a checkpoint"):
        train(X, LBFGS, run_dir=tmp_path)


# --- divergence -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["cost", "gradient"])
def test_nan_stops_with_step_and_cause_and_keeps_last_checkpoint(tmp_path, where):
    # An objective whose gradient is -1 on b2[0] only: with SGD (lr 1, no momentum) b2[0] == k
    # after k steps, and the objective turns NaN from the parameters of step 9 on.
    def poisoned(params, batch):
        (J, _), g = _linear_objective(params, batch)
        bad = params.b2[0] > 8.5
        if where == "cost":
            J = jnp.where(bad, jnp.nan, J)
        else:
            g = g._replace(W1=jnp.where(bad, jnp.nan, g.W1))
        return (J, None), g

    cfg = TrainConfig(n_hidden=H, optimizer="sgd", learning_rate=1.0, momentum=0.0, batch_size=32,
                      steps=20, chunk=5, checkpoint_every=5)
    with pytest.raises(TrainingDiverged) as e:
        train(X, cfg, run_dir=tmp_path, value_and_grad_fn=poisoned, pictures=False)
    assert e.value.step == 9 and e.value.cause == f"non-finite {where}"
    assert "training stopped at step 9" in str(e.value)
    assert "last good checkpoint (step 5)" in str(e.value)
    from sae_jax.training import CHECKPOINT_NAME, PARAMS_NAME, load_checkpoint

    tensors, meta = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert meta["step"] == 5 and tensors["params/b2"][0] == 5.0
    assert not (tmp_path / PARAMS_NAME).exists()
    # the state handed back is the last good one: the parameters before the failing step
    assert int(e.value.state.step) == 9 and float(e.value.state.params.b2[0]) == 9.0


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(n_hidden=0), "n_hidden must be an integer >= 1"),
        (dict(rho=1.5), "rho must be in"),
        (dict(beta=-1.0), "beta must be >= 0"),
        (dict(lam=float("nan")), "lam must be finite"),
        (dict(optimizer="newton"), "optimizer must be one of"),
        (dict(steps=-1), "steps must be an integer >= 0"),
        (dict(learning_rate=0.0), "learning_rate must be in"),
        (dict(batch_size=0), "batch_size must be an integer >= 1"),
        (dict(ema_decay=1.0), "ema_decay must be in"),
        (dict(gradient="numeric"), "gradient must be one of"),
        (dict(dtype="float16"), "dtype must be one of"),
        (dict(seed=-3), "seed must be an integer"),
        (dict(chunk=0), "chunk must be an integer >= 1"),
        (dict(rho_hat="ema"), "rho_hat='ema' is for minibatch"),
        (dict(optimizer="adam", batch_size=10_000), "batch_size must be <="),
    ],
)
def test_bad_config_is_an_input_error(change, match):
    with pytest.raises(InputError, match=match):
        train(X, dataclasses.replace(LBFGS, **change))


def test_float64_without_x64_is_an_input_error():
    with jax.enable_x64(False):
        with pytest.raises(InputError, match="dtype='float64' needs 64-bit JAX"):
            train(X, LBFGS)


@pytest.mark.parametrize(
    "x, match",
    [
        (X[:, :, None], "must be 2-D"),
        (np.full((0, N), 0.5), "at least one sample"),
        (np.where(np.arange(N) == 3, np.nan, X), "must be finite"),
        (X * 2.0, r"must lie in \[0, 1\]"),
        (X.astype(str), "real numbers"),
        ("patches.npy", "to load a file"),
    ],
)
def test_bad_data_is_an_input_error(x, match):
    with pytest.raises(InputError, match=match):
        train(x, LBFGS)


def test_make_step_uses_the_given_gradient_in_the_line_search():
    # A value_and_grad_fn whose gradient is deliberately 2x the true one: optax's line search must
    # see *this* gradient (through value_fn_from's custom_vjp), not jax.grad of the value.
    import optax

    def vg(params, x):
        J, g = jax.value_and_grad(lambda p: jnp.sum(p**2))(params)
        return (J, None), 2 * g

    vf = value_fn_from(vg)
    p = jnp.arange(3.0)
    np.testing.assert_array_equal(jax.grad(vf)(p, None), 4 * p)
    step = jax.jit(make_step(vg, optax.lbfgs()))
    opt = optax.lbfgs()
    p1, s1, out = step(p, opt.init(p), None)
    assert float(out.value) == 5.0 and bool(out.grads_finite)
    assert float(jnp.sum(p1**2)) < 5.0


# --- the kept checkpoint is a finite state ---------------------------------------------

# Plain SGD at a learning rate far too large for unbounded (linear-output, standard-normal)
# data: float32 overflows within ~30 steps. With this draw the full-data cost first becomes
# inf exactly at a checkpoint step (30), where the old trainer wrote that state as the
# "last good checkpoint" and lost the finite step-20 one.
X_LIN = np.random.default_rng(0).standard_normal((200, 16))
DIVERGING = TrainConfig(output="linear", optimizer="sgd", learning_rate=4.0, batch_size=50, n_hidden=4,
                        steps=400, chunk=10, checkpoint_every=10, dtype="float32")


def _finite_cost_and_grad(params, x):
    J, g = cost_and_grad(params, jnp.asarray(x, params.W1.dtype), lam=DIVERGING.lam, beta=DIVERGING.beta,
                         rho=DIVERGING.rho, output="linear")
    return bool(np.isfinite(float(J))) and all(bool(np.isfinite(np.asarray(a)).all()) for a in g)


def test_divergence_keeps_the_last_finite_checkpoint_and_names_it(tmp_path):
    from sae_jax import Params
    from sae_jax.training import CHECKPOINT_NAME, METRICS_NAME, load_checkpoint

    with pytest.raises(TrainingDiverged) as e:
        train(X_LIN, DIVERGING, run_dir=tmp_path, pictures=False)
    rows = [json.loads(r) for r in (tmp_path / METRICS_NAME).read_text().splitlines()]
    # the scenario of the issue: the state at a checkpoint step has a non-finite full-data cost ...
    assert rows[-1]["step"] == e.value.step == 30 and not np.isfinite(rows[-1]["cost"])
    assert e.value.cause == "non-finite full-data cost"
    # ... and the checkpoint kept is the step before, finite, and the message names it
    tensors, meta = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert meta["step"] == e.value.checkpoint_step == 20
    assert f"last good checkpoint (step 20) in {str(tmp_path)!r} is kept" in str(e.value)
    kept = Params(*(jnp.asarray(tensors[f"params/{k}"]) for k in Params._fields))
    assert _finite_cost_and_grad(kept, X_LIN)
    assert int(e.value.state.step) == 20 and _finite_cost_and_grad(e.value.state.params, X_LIN)
    # resuming starts from that state (it used to diverge at once) and fails at the same step
    with pytest.raises(TrainingDiverged) as again:
        train(X_LIN, DIVERGING, run_dir=tmp_path, resume=True, pictures=False)
    assert again.value.step == 30 and again.value.checkpoint_step == 20


def test_every_checkpoint_written_is_a_finite_state(tmp_path, monkeypatch):
    # Whatever the step of divergence: record each checkpoint as it is written.
    from sae_jax import Params
    from sae_jax._src import checkpoint as ckpt

    written = []
    real = ckpt.save_checkpoint

    def spy(path, **kw):
        written.append((kw["step"], Params(*(jnp.asarray(a) for a in kw["params"]))))
        return real(path, **kw)

    monkeypatch.setattr(ckpt, "save_checkpoint", spy)
    for seed in (1, 2):
        d = tmp_path / str(seed)
        with pytest.raises(TrainingDiverged) as e:
            train(np.random.default_rng(seed).standard_normal((200, 16)), DIVERGING, run_dir=d, pictures=False)
        assert written[-1][0] == e.value.checkpoint_step
        x = np.random.default_rng(seed).standard_normal((200, 16))
        assert all(_finite_cost_and_grad(p, x) for _, p in written)
        written.clear()


def test_a_non_finite_starting_cost_is_an_input_error_and_writes_nothing(tmp_path):
    # float32 squares of 1e20 overflow: no state to train from (nor to checkpoint).
    cfg = dataclasses.replace(DIVERGING, steps=5)
    with pytest.raises(InputError, match=r"the cost at the initial parameters is not finite in float32"):
        train(X_LIN * 1e20, cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- inputs checked as they are used; run directories; resume ---------------------------


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(rho=0.99999999), r"rho=0.99999999 is 1.0 in float32"),
        (dict(rho=1e-46), r"rho=1e-46 is 0.0 in float32"),
        (dict(lam=1e39), r"lam=1e\+39 overflows float32"),
        (dict(beta=1e39), r"beta=1e\+39 overflows float32"),
    ],
)
def test_hyperparameters_are_checked_in_the_training_dtype(tmp_path, change, match):
    cfg = dataclasses.replace(LBFGS, dtype="float32", **change)
    with pytest.raises(InputError, match=match):
        train(X, cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    validate_config(dataclasses.replace(cfg, dtype="float64"))  # representable in float64: fine


def test_run_dir_that_is_a_file_or_below_one_is_an_input_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("not a directory")
    with pytest.raises(InputError, match=r"run directory '.*/file' is a file; choose a directory"):
        train(X, LBFGS, run_dir=f)
    with pytest.raises(InputError, match=r"run directory '.*/file/a/b' is below '.*/file', which is a file"):
        train(X, LBFGS, run_dir=f / "a" / "b")
    assert f.read_text() == "not a directory"


def test_resume_to_fewer_steps_than_the_checkpoint_is_refused_and_changes_nothing(tmp_path):
    import os

    train(X, dataclasses.replace(LBFGS, steps=10), run_dir=tmp_path, pictures=False)
    before = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
    with pytest.raises(InputError, match=r"to steps=5: its checkpoint is already at step 10.*steps >= 10"):
        train(X, dataclasses.replace(LBFGS, steps=5), run_dir=tmp_path, resume=True, pictures=False)
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == before
    # steps equal to the checkpoint's: nothing to do, the run is complete; the files stay as they were
    r = train(X, dataclasses.replace(LBFGS, steps=10), run_dir=tmp_path, resume=True, pictures=False)
    assert int(r.state.step) == 10
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == before


def test_resuming_a_non_finite_checkpoint_of_an_older_trainer_is_an_input_error(tmp_path, monkeypatch):
    # Simulate the old trainer (no full-data check): it checkpoints the inf-cost state of step 30.
    import sae_jax._src.training as training
    from sae_jax.training import CHECKPOINT_NAME, load_checkpoint

    monkeypatch.setattr(training, "nonfinite_state", lambda *a, **k: None)
    with pytest.raises(TrainingDiverged):
        train(X_LIN, DIVERGING, run_dir=tmp_path, pictures=False)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)[1]["step"] == 30
    with pytest.raises(InputError, match=r"cost at the checkpoint in .* \(step 30\) is not finite in float32.*cannot be continued"):
        train(X_LIN, DIVERGING, run_dir=tmp_path, resume=True, pictures=False)


# Non-square data (issue 12.2): its own small config (chunk 4), so the shared LBFGS runner's
# compile count above is untouched; tests/test_cli.py reuses it.
NONSQUARE = TrainConfig(n_hidden=3, steps=4, chunk=4, checkpoint_every=4)


@pytest.mark.slow  # non-square training runs by default through the CLI (test_cli)
def test_non_square_data_trains_and_the_result_is_never_lost(tmp_path, monkeypatch):
    """50 features: training used to finish, write params, then raise 'n_visible=50 is not a square'
    from the picture, losing the TrainResult. Now filters.png is skipped with a warning (or drawn
    with patch_shape), and a bad patch_shape is refused before any work."""
    x = _data(m=40, n=50)
    with pytest.warns(UserWarning, match="filters.png not drawn: n_visible=50 is not a square"):
        r = train(x, NONSQUARE, run_dir=tmp_path / "a")
    assert r.params.W1.shape == (3, 50) and r.metrics[-1]["step"] == 4
    assert (tmp_path / "a" / "params.safetensors").exists() and (tmp_path / "a" / "training_curve.png").exists()
    assert not (tmp_path / "a" / "filters.png").exists()

    r2 = train(x, NONSQUARE, run_dir=tmp_path / "b", patch_shape=(5, 10))
    assert (tmp_path / "b" / "filters.png").read_bytes()[:4] == b"\x89PNG"
    _assert_tree_equal(r.params, r2.params)

    with pytest.raises(InputError, match=r"patch_shape must be \(rows, cols\) with rows\*cols == n_visible=50"):
        train(x, NONSQUARE, run_dir=tmp_path / "c", patch_shape=(7, 7))
    assert not (tmp_path / "c").exists()

    # any other failure to draw (here: the plotting itself) is a warning too, never fatal
    from sae_jax._src import display

    def broken(*a, **k):
        raise RuntimeError("no backend")

    monkeypatch.setattr(display, "save_training_curve_png", broken)
    with pytest.warns(UserWarning, match="training_curve.png not drawn: RuntimeError: no backend"):
        r3 = train(x, NONSQUARE, run_dir=tmp_path / "d", patch_shape=(10, 5))
    assert r3.metrics[-1]["step"] == 4 and not any(p.name.startswith(".") for p in (tmp_path / "d").iterdir())


@pytest.mark.slow  # a validation split trains and is evaluated by default in test_cli
def test_validation_split_rows_are_held_out_and_logged(tmp_path):
    """validation_fraction: training sees only the training rows (same result as training on them
    alone), every metrics row has the held-out val_* diagnostics, and the split is the seed's."""
    from sae_jax.metrics import split_validation

    x = _data(m=40, n=50)
    cfg = dataclasses.replace(NONSQUARE, validation_fraction=0.25)
    r = train(x, cfg, patch_shape=(5, 10))
    idx_train, idx_val = split_validation(40, 0.25, cfg.seed)
    assert len(idx_val) == 10
    alone = train(x[idx_train], NONSQUARE)
    _assert_tree_close(r.params, alone.params, 1e-12)
    for row in r.metrics:
        assert {"val_cost", "val_reconstruction", "val_mse", "val_dead_fraction", "val_saturated_fraction",
                "val_recon_error_q50", "dead_fraction", "saturated_fraction", "recon_error_q90"} <= set(row)
    assert r.metrics[-1]["reconstruction"] == pytest.approx(alone.metrics[-1]["reconstruction"], rel=1e-10)
    assert r.metrics[-1]["val_reconstruction"] != r.metrics[-1]["reconstruction"]
    with pytest.raises(InputError, match="validation_fraction must be in"):
        train(x, dataclasses.replace(NONSQUARE, validation_fraction=1.0))


# --- traced hyperparameters, warm start -------------------------------------------------


def test_new_lam_beta_rho_compile_nothing():
    from helpers import count_compiles

    from sae_jax._src.loop import runner_for

    train(X, LBFGS)  # compiles (or reuses) the runner and the metrics' evaluation
    other = dataclasses.replace(LBFGS, lam=3e-3, beta=0.5, rho=0.2)
    with count_compiles() as c:
        r = train(X, other)
    assert c.n == 0  # λ, β, ρ are traced arguments of the compiled runner
    assert runner_for(other) is runner_for(LBFGS)
    assert runner_for(LBFGS)._cache_size() == 1
    # and the new values are the ones used: the run's last cost is the cost of its params at them
    J = cost_and_grad(r.params, jnp.asarray(X), lam=3e-3, beta=0.5, rho=0.2)[0]
    np.testing.assert_allclose(r.metrics[-1]["cost"], float(J), rtol=1e-13)


@pytest.mark.parametrize("base", [LBFGS, ADAM], ids=["lbfgs", "adam"])
def test_continuing_a_state_equals_one_longer_run(base):
    whole = train(X, base)  # 12 steps
    first = train(X, dataclasses.replace(base, steps=7))
    rest = train(X, dataclasses.replace(base, steps=5), init_state=first.state)
    assert int(rest.state.step) == 12
    assert [row["step"] for row in rest.metrics] == [7, 10, 12]
    # same compiled code from the same state: identical (the L-BFGS line search's cached
    # objective is recomputed at step 7, which reproduces it bit for bit here)
    _assert_tree_equal(rest.params, whole.params)
    np.testing.assert_array_equal(rest.metrics[-1]["cost"], whole.metrics[-1]["cost"])


def test_warm_start_from_params():
    r = train(X, LBFGS)
    # the UFLDL init passed explicitly is the default run, bit for bit
    p0 = init_params(jax.random.split(jax.random.key(LBFGS.seed))[0], N, H, dtype=jnp.float64)
    _assert_tree_equal(train(X, LBFGS, params=p0).params, r.params)
    # from trained params: a fresh optimizer starting where the last run ended
    w = train(X, dataclasses.replace(LBFGS, beta=1.0), params=r.params)
    assert w.metrics[0]["step"] == 0
    J = cost_and_grad(r.params, jnp.asarray(X), lam=LBFGS.lam, beta=1.0, rho=LBFGS.rho)[0]
    np.testing.assert_allclose(w.metrics[0]["cost"], float(J), rtol=1e-13)
    assert w.metrics[-1]["cost"] < w.metrics[0]["cost"]


def test_warm_start_into_a_run_dir_resumes_with_the_total_step_count(tmp_path):
    first = train(X, dataclasses.replace(LBFGS, steps=7))
    r = train(X, dataclasses.replace(LBFGS, steps=5), init_state=first.state, run_dir=tmp_path / "w")
    import json

    assert json.loads((tmp_path / "w" / "config.json").read_text())["config"]["steps"] == 12
    more = train(X, dataclasses.replace(LBFGS, steps=14), run_dir=tmp_path / "w", resume=True)
    assert int(more.state.step) == 14 and int(r.state.step) == 12


def _bad_warm_starts():
    r = train(X, LBFGS)
    ra = train(X, ADAM)
    p = r.params
    nan_p = p._replace(b1=p.b1.at[0].set(jnp.nan))
    return [
        (dict(params=init_params(jax.random.key(0), N - 1, H, dtype=jnp.float64)),
         r"params\.W1 has shape \(5, 15\).*expected \(5, 16\)"),
        (dict(init_state=r.state._replace(params=p._replace(W1=p.W1[:, :-1]))),
         r"init_state\.params: params\.W2 must have shape \(15, 5\)"),
        (dict(params=jax.tree.map(lambda a: a.astype(jnp.float32), p)), r"params\.W1 .*float32, expected .*float64"),
        (dict(params=nan_p), r"params\.b1 (has non-finite values|must be finite)"),
        (dict(params=(1, 2)), r"params must be a (sae_jax\.)?Params"),
        (dict(init_state=ra.state), r"init_state\.opt_state does not match the configured optimizer='lbfgs'"),
        (dict(init_state=r.params), r"init_state must be a TrainState"),
        (dict(init_state=r.state._replace(params=nan_p)), r"init_state\.params(\.b1 has non-finite|: params\.b1 must be finite)"),
        (dict(init_state=r.state, params=p), r"params= .* or init_state= .*not both"),
        (dict(resume=True, params=p), r"resume=True .* cannot be combined with params= or init_state="),
    ]


def test_bad_warm_starts_are_one_input_error():
    for kw, match in _bad_warm_starts():
        with pytest.raises(InputError, match=match):
            train(X, LBFGS, **kw)


@pytest.mark.parametrize("name", ["progress", "value_and_grad_fn"])
def test_train_refuses_a_callback_that_is_not_callable_before_any_work(tmp_path, name):
    # was: "'int' object is not callable" deep inside the run
    out = tmp_path / "run"
    with pytest.raises(InputError) as e:
        train(np.full((8, 4), 0.5), TrainConfig(n_hidden=2, steps=2, dtype="float32"), run_dir=out, **{name: 3})
    assert str(e.value) == f"{name} must be a function or None, got int 3"
    assert not out.exists()


def test_a_dead_run_warns_in_its_result_and_a_working_one_does_not():
    """Issue 20.2: a run whose units all die (λ = 100 decays the weights to 0: every a⁽²⁾ is the constant
    sigmoid(b1) < 0.1) and whose reconstruction equals the mean predictor's says so in
    ``TrainResult.warning``; the same runner with ρ = 0.1 learns (no warning). Nothing is printed or
    raised (pytest's filterwarnings=error would fail this test)."""
    dead = train(X, dataclasses.replace(LBFGS, lam=100.0))
    last = dead.metrics[-1]
    assert last["dead_fraction"] == 1.0 and dead.warning is not None
    assert "100% of the hidden units are dead" in dead.warning
    assert "no better than the mean predictor's" in dead.warning and "\n" not in dead.warning
    base = 0.5 * np.mean(np.sum((X - X.mean(0)) ** 2, axis=1))  # the mean predictor on the training rows
    assert f"{base:.4g}" in dead.warning
    good = train(X, dataclasses.replace(LBFGS, rho=0.1))
    assert good.warning is None and good.metrics[-1]["reconstruction"] < 0.8 * base
    assert good.input_metrics is None  # no corruption: the metrics rows are of the training input


@pytest.mark.slow  # the CLI's done line reports both rho_hats by default (test_variants' CLI run)
def test_a_denoising_run_reports_rho_hat_of_its_corrupted_input():
    """The metrics rows are of the clean rows; ``input_metrics`` holds ρ̂ on the corruption the trainer's
    key stream draws at the final step, recomputed here with numpy from that corruption."""
    from sae_jax import corrupt
    from sae_jax._src.batches import NOISE_STREAM

    c = dataclasses.replace(LBFGS, corruption="mask", corruption_level=0.3, l1=1e-3, steps=5)
    r = train(X, c)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(r.state.key), NOISE_STREAM), 5)
    x_tilde = np.asarray(corrupt(key, jnp.asarray(X), kind="mask", level=0.3))
    assert 0.2 < np.mean(x_tilde == 0) < 0.4
    W1, b1 = np.asarray(r.params.W1), np.asarray(r.params.b1)
    rho_hat = (1 / (1 + np.exp(-(x_tilde @ W1.T + b1)))).mean(0)
    got = r.input_metrics
    assert got["rho_hat_mean"] == pytest.approx(rho_hat.mean(), rel=1e-12)
    assert got["rho_hat_max"] == pytest.approx(rho_hat.max(), rel=1e-12)
    assert got["l1"] == pytest.approx(1e-3 * rho_hat.sum(), rel=1e-12)
    assert abs(got["rho_hat_mean"] - r.metrics[-1]["rho_hat_mean"]) > 1e-6  # not the clean rows' number
