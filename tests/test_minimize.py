"""sae_jax._src.minimize: L-BFGS to convergence with minFunc's stopping rules, in one jitted loop."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from sae_jax.optim import minimize_lbfgs


def _quadratic(p, a, c):
    r = p - c
    return 0.5 * jnp.sum(a * r**2), a * r


def test_minimize_lbfgs_quadratic_and_stopping_rules():
    a = jnp.asarray([1.0, 10.0, 100.0])
    c = jnp.asarray([1.0, -2.0, 3.0])
    r = minimize_lbfgs(_quadratic, jnp.zeros(3), (a, c), steps=50)
    assert float(r.grad_max) <= 1e-5 and 0 < int(r.steps) < 50  # stopped on the gradient test (optTol)
    np.testing.assert_allclose(np.asarray(r.params), np.asarray(c), atol=1e-5)
    tight = minimize_lbfgs(_quadratic, jnp.zeros(3), (a, c), steps=50, grad_tol=0.0, progress_tol=0.0)
    np.testing.assert_allclose(np.asarray(tight.params), np.asarray(c), rtol=1e-12)
    r0 = minimize_lbfgs(_quadratic, jnp.zeros(3), (a, c), steps=0)
    assert int(r0.steps) == 0 and np.array_equal(np.asarray(r0.params), np.zeros(3))
    r2 = minimize_lbfgs(_quadratic, jnp.zeros(3), (a, c), steps=2)
    assert int(r2.steps) == 2


def _nan_beyond(p, c):
    """A quadratic that is NaN for p[0] > 0.5: a step there must be undone and the loop stopped."""
    J = jnp.where(p[0] > 0.5, jnp.nan, jnp.sum((p - c) ** 2))
    return J, 2 * (p - c)


def test_minimize_lbfgs_undoes_a_non_finite_step():
    r = minimize_lbfgs(_nan_beyond, jnp.zeros(2), (jnp.asarray([1.0, 1.0]),), steps=20)
    assert np.all(np.isfinite(np.asarray(r.params))) and np.isfinite(float(r.value))
    assert float(r.params[0]) <= 0.5


def test_float32_params_under_x64_stay_float32():
    """Under x64 (this suite's config) optax's zoom line search proposes float64 trial points for
    float32 parameters; the objective sees them in the parameters' dtype (as with x64 off), so a
    float32 softmax or stack trains and predicts in float32 (`sae-jax probe` of a float32 run).
    Before: InputError 'x must have the same dtype as params.theta (float64), got float32'."""
    from sae_jax.softmax import softmax_predict, train_softmax

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(20, 3)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    model = train_softmax(x, y, n_classes=2, steps=20)
    assert model.theta.dtype == jnp.float32
    assert softmax_predict(model, x).shape == (20,)
    a32 = jnp.asarray([1.0, 10.0, 100.0], jnp.float32)
    r = minimize_lbfgs(_quadratic, jnp.zeros(3, jnp.float32), (a32, jnp.ones(3, jnp.float32)), steps=20)
    assert r.params.dtype == jnp.float32 and r.value.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(r.params), 1.0, atol=1e-4)
