"""sae_jax._src.softmax: the UFLDL softmax regression exercise.

- manual gradient == jax.grad (float64 <= 1e-12, float32 2e-5), including m = 1, k = 2, n = 1, lam = 0;
- an independent NumPy transcription of softmaxCost.m (column layout, flat theta, 1-based labels);
- five-point finite differences, error relative to ||grad|| (not the directional derivative);
- extreme logits (1e4): finite and exact;
- every bad input raises one InputError naming the argument;
- train_softmax reaches a stationary point (minFunc's optTol) and classifies.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import max_rel_err
from sae_jax import InputError
from sae_jax.softmax import SoftmaxParams, accuracy, init_softmax, softmax_cost, softmax_cost_and_grad, softmax_predict, softmax_probabilities, train_softmax
from sae_jax._src.softmax import with_intercept

import ufldl_reference as ref

_grad_jit = jax.jit(jax.value_and_grad(softmax_cost))


def problem(seed, m, n, k, dtype=jnp.float64, scale=1.0):
    rng = np.random.default_rng(seed)
    theta = jnp.asarray(scale * rng.normal(size=(k, n)), dtype)
    x = jnp.asarray(rng.normal(size=(m, n)), dtype)
    y = jnp.asarray(rng.integers(0, k, m))
    return SoftmaxParams(theta), x, y


SIZES = [(1, 1, 2), (1, 5, 3), (7, 4, 3), (30, 8, 10)]


@pytest.mark.parametrize("m,n,k", SIZES)
@pytest.mark.parametrize("lam", [0.0, 1e-3])
def test_manual_equals_jax_grad_float64(m, n, k, lam):
    p, x, y = problem(1, m, n, k)
    J, g = softmax_cost_and_grad(p, x, y, lam=lam)
    J_ad, g_ad = _grad_jit(p, x, y, lam=lam)
    assert isinstance(g, SoftmaxParams) and g.theta.dtype == jnp.float64
    assert max_rel_err(J, J_ad) <= 1e-14
    assert max_rel_err(g.theta, g_ad.theta) <= 1e-12
    assert max_rel_err(softmax_cost(p, x, y, lam=lam), J_ad) <= 1e-14


def test_manual_equals_jax_grad_float32():
    p, x, y = problem(2, 20, 6, 4, jnp.float32)
    J, g = softmax_cost_and_grad(p, x, y, lam=1e-3)
    J_ad, g_ad = _grad_jit(p, x, y, lam=1e-3)
    assert g.theta.dtype == jnp.float32 and J.dtype == jnp.float32
    assert max_rel_err(J, J_ad) <= 2e-6
    assert max_rel_err(g.theta, g_ad.theta) <= 2e-5


@pytest.mark.parametrize("m,n,k", [(1, 3, 2), (9, 5, 4)])
def test_numpy_transcription_of_softmaxCost(m, n, k):
    p, x, y = problem(3, m, n, k)
    lam = 3e-3
    J, g = softmax_cost_and_grad(p, x, y, lam=lam)
    theta_flat = np.asarray(p.theta).ravel(order="F")
    J_ref, g_ref = ref.softmax_cost(theta_flat, k, n, lam, np.asarray(x).T, np.asarray(y) + 1)
    assert abs(float(J) - J_ref) <= 1e-13 * abs(J_ref)
    assert max_rel_err(np.asarray(g.theta).ravel(order="F"), g_ref) <= 1e-12


@pytest.mark.parametrize("m,n,k", [(1, 2, 3), (12, 5, 4)])
def test_manual_gradient_against_five_point_differences(m, n, k):
    """D_h = (-J(+2h) + 8J(+h) - 8J(-h) + J(-2h)) / 12h along random unit v, h = eps^(1/5);
    error |D_h - <g, v>| / ||g|| (never / <g, v>, which a random v can make ~0)."""
    p, x, y = problem(4, m, n, k)
    lam = 1e-2
    _, g = softmax_cost_and_grad(p, x, y, lam=lam)
    g = np.asarray(g.theta)
    h = np.finfo(np.float64).eps ** 0.2
    cost = jax.jit(lambda t: softmax_cost(SoftmaxParams(t), x, y, lam=lam))
    rng = np.random.default_rng(5)
    for _ in range(3):
        v = rng.normal(size=g.shape)
        v /= np.linalg.norm(v)
        J = lambda s: float(cost(p.theta + s * h * v))  # noqa: E731
        D = (-J(2) + 8 * J(1) - 8 * J(-1) + J(-2)) / (12 * h)
        assert abs(D - np.sum(g * v)) / np.linalg.norm(g) <= 1e-8


def test_extreme_logits_are_finite_and_exact():
    """Logits 1e4, 0, -1e4: P is exactly one-hot, J is exact, both gradients exact."""
    theta = SoftmaxParams(jnp.asarray([[1e4], [0.0], [-1e4]]))
    x = jnp.ones((3, 1))
    y = jnp.asarray([0, 1, 2])
    J, g = softmax_cost_and_grad(theta, x, y, lam=0.0)
    J_ad, g_ad = _grad_jit(theta, x, y, lam=0.0)
    # -log P: 0, 1e4, 2e4 -> mean exactly 1e4
    assert float(J) == 1e4 and float(J_ad) == 1e4
    # P = [1, 0, 0] for every row; grad = -(1/3) sum_i (onehot(y_i) - P)^T x_i = -(1/3)[1-3, 1, 1]
    want = np.asarray([[2.0 / 3], [-1.0 / 3], [-1.0 / 3]])
    assert np.array_equal(np.asarray(g.theta), want)
    assert np.array_equal(np.asarray(g_ad.theta), want)
    np.testing.assert_array_equal(np.asarray(softmax_probabilities(theta, x)), np.eye(3)[[0, 0, 0]])
    # logits 1e4 and 1e4 - 1: needs the logsumexp shift; J = log(1 + e^-1) for the top class
    t2 = SoftmaxParams(jnp.asarray([[1e4], [1e4 - 1]]))
    J2 = softmax_cost(t2, jnp.ones((1, 1)), jnp.asarray([0]), lam=0.0)
    assert abs(float(J2) - math.log1p(math.exp(-1))) <= 2e-16 * 1e4  # one rounding of 1e4 - 1's neighbourhood
    for dt in (jnp.float32, jnp.float64):
        t = SoftmaxParams(jnp.asarray([[1e4], [-1e4]], dt))
        Jd, gd = softmax_cost_and_grad(t, jnp.ones((2, 1), dt), jnp.asarray([0, 1]), lam=1e-4)
        assert np.isfinite(float(Jd)) and np.all(np.isfinite(np.asarray(gd.theta)))
        assert float(Jd) == pytest.approx(1e4 + 1e-4 / 2 * 2e8, rel=1e-6)


def test_predict_probabilities_and_accuracy():
    p, x, y = problem(6, 25, 4, 5)
    P = softmax_probabilities(p, x)
    np.testing.assert_allclose(np.asarray(P).sum(axis=1), 1.0, rtol=1e-14)
    pred = softmax_predict(p, x)
    assert pred.shape == (25,) and jnp.issubdtype(pred.dtype, jnp.integer)
    np.testing.assert_array_equal(np.asarray(pred), np.argmax(np.asarray(x) @ np.asarray(p.theta).T, axis=1))
    assert accuracy(pred, pred) == 1.0
    with pytest.raises(InputError, match="arrays of one shape"):
        accuracy(pred, y[:3])


def test_inside_user_jit_and_vmap_over_lam():
    p, x, y = problem(7, 10, 3, 4)
    lams = jnp.asarray([0.0, 1e-3, 1e-1])
    Js, gs = jax.vmap(lambda lam: softmax_cost_and_grad(p, x, y, lam=lam))(lams)
    for i, lam in enumerate([0.0, 1e-3, 1e-1]):
        J, g = softmax_cost_and_grad(p, x, y, lam=lam)
        assert max_rel_err(Js[i], J) <= 1e-15
        assert max_rel_err(gs.theta[i], g.theta) <= 1e-15


def test_with_intercept_and_init():
    x = jnp.zeros((2, 3))
    xi = with_intercept(x)
    assert xi.shape == (2, 4) and np.all(np.asarray(xi[:, -1]) == 1.0)
    t = init_softmax(jax.random.key(0), 300, 20, dtype=jnp.float64)
    assert t.theta.shape == (20, 300) and t.theta.dtype == jnp.float64
    assert 0.004 < float(jnp.std(t.theta)) < 0.006  # UFLDL: 0.005 * randn
    with pytest.raises(InputError, match="n_classes must be an integer >= 1"):
        init_softmax(jax.random.key(0), 3, 0)


# --- bad input ----------------------------------------------------------------------------------

P0, X0, Y0 = problem(8, 4, 3, 3)
BAD = [
    (lambda: (P0.theta, X0, Y0, 0.0), "params must be a sae_jax._src.softmax.SoftmaxParams.*wrap it"),
    (lambda: (SoftmaxParams(P0.theta[0]), X0, Y0, 0.0), r"params.theta must be 2-D"),
    (lambda: (SoftmaxParams(jnp.ones((3, 3), jnp.int32)), X0, Y0, 0.0), "must be floating"),
    (lambda: (SoftmaxParams(P0.theta.at[0, 0].set(jnp.nan)), X0, Y0, 0.0), r"params.theta must be finite"),
    (lambda: (P0, X0[:, :2], Y0, 0.0), r"x must have shape \(m, 3\)"),
    (lambda: (P0, X0.T, Y0, 0.0), r"x must have shape \(m, 3\).*pass x.T"),
    (lambda: (P0, X0[0], Y0, 0.0), r"x must have shape \(m, 3\).*x\[None, :\]"),
    (lambda: (P0, X0.astype(jnp.float32), Y0, 0.0), "x must have the same dtype"),
    (lambda: (P0, X0.at[1, 1].set(jnp.nan), Y0, 0.0), "x must be finite"),
    (lambda: (P0, X0.tolist(), Y0, 0.0), "x must be an array"),
    (lambda: (P0, X0, Y0[:3], 0.0), r"y must have shape \(4,\)"),
    (lambda: (P0, X0, Y0.astype(jnp.float64), 0.0), "y must be integer class indices.*astype"),
    (lambda: (P0, X0, Y0 > 0, 0.0), "y must be integer class indices"),
    (lambda: (P0, X0, Y0.at[0].set(3), 0.0), r"y must hold class indices in \[0, 3\).*\[0, 3\]"),
    (lambda: (P0, X0, Y0.at[0].set(-1), 0.0), r"y must hold class indices in \[0, 3\)"),
    (lambda: (P0, X0, [0, 1, 2, 0], 0.0), "y must be an integer array"),
    (lambda: (P0, X0, Y0, -1e-3), "lam must be a finite number >= 0"),
    (lambda: (P0, X0, Y0, float("nan")), "lam must be a finite number >= 0"),
    (lambda: (P0, X0, Y0, jnp.ones(2)), "lam must be a scalar"),
]


@pytest.mark.parametrize("fn", [softmax_cost, softmax_cost_and_grad])
@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input_raises_one_input_error(fn, case):
    make, pattern = BAD[case]
    p, x, y, lam = make()
    with pytest.raises(InputError, match=pattern):
        fn(p, x, y, lam=lam)


def test_bad_input_to_predict_and_train():
    with pytest.raises(InputError, match="x must be finite"):
        softmax_predict(P0, X0.at[0, 0].set(jnp.inf))
    with pytest.raises(InputError, match="params.theta must be finite"):  # checked inside the compiled call
        softmax_probabilities(SoftmaxParams(P0.theta.at[1, 2].set(jnp.nan)), X0)
    with pytest.raises(InputError, match=r"y must hold class indices in \[0, 3\).*\[0, 4\]"):  # NumPy labels
        softmax_cost(P0, X0, np.asarray(Y0.at[2].set(4)), lam=0.0)
    with pytest.raises(InputError, match="n_classes must be an integer >= 2"):
        train_softmax(X0, Y0, n_classes=1)
    with pytest.raises(InputError, match=r"y must hold class indices in \[0, 2\) .*from n_classes"):
        train_softmax(X0, Y0, n_classes=2)
    with pytest.raises(InputError, match="steps must be an integer >= 0"):
        train_softmax(X0, Y0, n_classes=3, steps=-1)
    with pytest.raises(InputError, match="lam must be a finite number >= 0"):
        train_softmax(X0, Y0, n_classes=3, lam=-1.0)
    with pytest.raises(InputError, match="x must be a 2-D floating array"):
        train_softmax(Y0, Y0, n_classes=3)
    with pytest.raises(InputError, match="x must be finite"):
        train_softmax(X0.at[0, 0].set(jnp.nan), Y0, n_classes=3)


# --- training -----------------------------------------------------------------------------------


def test_train_softmax_reaches_a_stationary_point_and_separates():
    rng = np.random.default_rng(9)
    k, n, m = 3, 4, 60
    centres = 3.0 * rng.normal(size=(k, n))
    y = rng.integers(0, k, m)
    x = jnp.asarray(centres[y] + rng.normal(size=(m, n)))
    y = jnp.asarray(y)
    lam = 1e-2
    model = train_softmax(x, y, n_classes=k, lam=lam, steps=200)
    J, g = softmax_cost_and_grad(model, x, y, lam=lam)
    assert float(jnp.max(jnp.abs(g.theta))) <= 1e-5  # minFunc's optTol
    assert J < softmax_cost(init_softmax(jax.random.key(0), n, k, dtype=jnp.float64), x, y, lam=lam)
    assert accuracy(softmax_predict(model, x), y) >= 0.95
    # lam > 0: J is lam-strongly convex, so a warm start from elsewhere finds the same minimum,
    # within ||theta_a - theta_b|| <= (||g_a|| + ||g_b||) / lam
    other = train_softmax(x, y, n_classes=k, lam=lam, steps=200, params=SoftmaxParams(jnp.ones((k, n))))
    _, g2 = softmax_cost_and_grad(other, x, y, lam=lam)
    bound = (float(jnp.linalg.norm(g.theta)) + float(jnp.linalg.norm(g2.theta))) / lam
    assert float(jnp.linalg.norm(other.theta - model.theta)) <= bound
    assert bound < 1e-2


def test_on_every_device(device):
    """Each device (8 CPUs here; the GPU where present) agrees with the float64 reference."""
    p, x, y = problem(11, 16, 5, 4)
    ref_J, ref_g = _grad_jit(p, x, y, lam=1e-3)
    pd, xd, yd = jax.device_put((p, x, y), device)
    J, g = softmax_cost_and_grad(pd, xd, yd, lam=1e-3)
    assert g.theta.devices() == {device}
    assert max_rel_err(J, ref_J) <= 1e-13
    assert max_rel_err(g.theta, ref_g.theta) <= 1e-12


# --- issue 21 -----------------------------------------------------------------------------------


def test_init_softmax_checks_its_key():
    from sae_jax.softmax import init_softmax

    with pytest.raises(InputError) as e:
        init_softmax(0, 4, 3)
    assert str(e.value) == "key must be one jax.random key (jax.random.key(seed) or jax.random.PRNGKey(seed)), got int"


def test_a_softmax_result_that_is_not_a_finite_float_is_refused_in_one_line():
    # lam/2 * ||theta||^2 = 5e29 * 6e20 overflows float32: the true cost is not a float32, so no silent inf
    from sae_jax.softmax import SoftmaxParams, softmax_cost, softmax_cost_and_grad

    p = SoftmaxParams(jnp.full((2, 3), 1e10, jnp.float32))
    x, y = jnp.full((4, 3), 0.5, jnp.float32), jnp.array([0, 1, 0, 1])
    for fn in (softmax_cost, softmax_cost_and_grad):
        with pytest.raises(InputError) as e:
            fn(p, x, y, lam=1e30)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith("softmax: the result is not a finite float32 at these inputs (a value inf)")
        assert "theta up to 1e+10, lam=1e+30" in msg
    # under the caller's jit nothing can be raised: the float arithmetic's inf (documented)
    assert float(jax.jit(lambda p: softmax_cost(p, x, y, lam=1e30))(p)) == float("inf")
