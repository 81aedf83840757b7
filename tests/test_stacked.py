"""sae_jax._src.stacked: stacked autoencoders with softmax fine-tuning (UFLDL's stackedAECost).

- the tutorial's fine-tuning backprop == jax.grad (float64 <= 1e-12; float32 stated), 1 to 3 layers, m = 1;
- an independent NumPy transcription of stackedAECost.m (flat theta, column layout);
- five-point finite differences, error relative to ||grad||;
- weight decay on the softmax theta only; decoders take no part (zero gradient);
- extreme logits finite; bad inputs raise one InputError;
- the pipeline (pretrain -> softmax -> fine-tune) at a tiny size lowers the cost.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import max_rel_err
from sae_jax import InputError, Params, encode
from sae_jax.training import TrainConfig
from sae_jax.softmax import SoftmaxParams, softmax_cost
from sae_jax.stacked import StackedParams, fine_tune, stack_activations, stack_features, stacked_cost, stacked_cost_and_grad, stacked_predict, train_stacked

import ufldl_reference as ref

_grad_jit = jax.jit(jax.value_and_grad(stacked_cost))


def problem(seed, m, sizes, k, dtype=jnp.float64, theta_scale=1.0):
    """A stack with layer sizes ``sizes = [n, h1, h2, ...]``, nonzero biases, x in [0, 1]."""
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        a = lambda *s: jnp.asarray(rng.normal(0.0, 0.7, s), dtype)  # noqa: E731
        layers.append(Params(a(n_out, n_in), a(n_out), a(n_in, n_out), a(n_in)))
    theta = SoftmaxParams(jnp.asarray(theta_scale * rng.normal(size=(k, sizes[-1])), dtype))
    x = jnp.asarray(rng.uniform(size=(m, sizes[0])), dtype)
    y = jnp.asarray(rng.integers(0, k, m))
    return StackedParams(tuple(layers), theta), x, y


def assert_grads_close(g, want, rtol):
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(want)):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert max_rel_err(a, b) <= rtol


CASES = [(1, [3, 2], 2), (1, [4, 3, 2], 3), (9, [5, 4, 3], 4), (6, [4, 3, 3, 2], 3)]


@pytest.mark.parametrize("m,sizes,k", CASES)
@pytest.mark.parametrize("lam", [0.0, 1e-3])
def test_manual_equals_jax_grad_float64(m, sizes, k, lam):
    stack, x, y = problem(1, m, sizes, k)
    J, g = stacked_cost_and_grad(stack, x, y, lam=lam)
    J_ad, g_ad = _grad_jit(stack, x, y, lam=lam)
    assert isinstance(g, StackedParams) and all(isinstance(p, Params) for p in g.layers)
    assert max_rel_err(J, J_ad) <= 1e-14
    assert_grads_close(g, g_ad, 1e-12)


def test_manual_equals_jax_grad_float32():
    stack, x, y = problem(2, 12, [6, 4, 3], 3, jnp.float32)
    J, g = stacked_cost_and_grad(stack, x, y, lam=1e-3)
    J_ad, g_ad = _grad_jit(stack, x, y, lam=1e-3)
    assert J.dtype == jnp.float32
    assert max_rel_err(J, J_ad) <= 2e-6
    assert_grads_close(g, g_ad, 2e-5)  # relative to each array's largest entry


def _flat(stack):
    """UFLDL's theta = [softmaxTheta(:); stack2params(stack)]."""
    return np.concatenate(
        [np.asarray(stack.softmax.theta).ravel(order="F"),
         ref.stack2params([(np.asarray(p.W1), np.asarray(p.b1)) for p in stack.layers])]
    )


@pytest.mark.parametrize("m,sizes,k", [(1, [3, 2, 2], 3), (7, [5, 4, 3], 4)])
def test_numpy_transcription_of_stackedAECost(m, sizes, k):
    stack, x, y = problem(3, m, sizes, k)
    lam = 3e-3
    J, g = stacked_cost_and_grad(stack, x, y, lam=lam)
    J_ref, g_ref = ref.stacked_ae_cost(_flat(stack), sizes[0], sizes[-1], k, sizes, lam, np.asarray(x).T, np.asarray(y) + 1)
    assert abs(float(J) - J_ref) <= 1e-13 * abs(J_ref)
    assert max_rel_err(_flat(g), g_ref) <= 1e-12


def test_manual_gradient_against_five_point_differences():
    stack, x, y = problem(4, 8, [4, 3, 2], 3)
    lam = 1e-2
    _, g = stacked_cost_and_grad(stack, x, y, lam=lam)
    leaves, treedef = jax.tree.flatten(stack)
    g_leaves = jax.tree.leaves(g)
    cost = jax.jit(lambda s: stacked_cost(s, x, y, lam=lam))
    h = np.finfo(np.float64).eps ** 0.2
    rng = np.random.default_rng(5)
    for i, (p, gp) in enumerate(zip(leaves, g_leaves)):
        gp = np.asarray(gp)
        norm = np.linalg.norm(gp)
        v = rng.normal(size=gp.shape)
        v /= np.linalg.norm(v)

        def J(s):
            moved = [a + s * h * v if j == i else a for j, a in enumerate(leaves)]
            return float(cost(jax.tree.unflatten(treedef, moved)))

        D = (-J(2) + 8 * J(1) - 8 * J(-1) + J(-2)) / (12 * h)
        if norm == 0:  # the decoders: J does not depend on them at all (the stencil's own rounding only)
            assert [J(s) for s in (2, 1, -1, -2)] == [J(0)] * 4
            assert abs(D) <= 1.5 * np.finfo(np.float64).eps * J(0) / h
        else:
            assert abs(D - np.sum(gp * v)) / norm <= 1e-8, i


def test_weight_decay_on_theta_only_and_decoders_unused():
    stack, x, y = problem(6, 5, [4, 3, 2], 3)
    J0, g0 = stacked_cost_and_grad(stack, x, y, lam=0.0)
    J1, g1 = stacked_cost_and_grad(stack, x, y, lam=0.5)
    theta = np.asarray(stack.softmax.theta)
    assert abs(float(J1 - J0) - 0.25 * np.sum(theta**2)) <= 1e-14 * float(J1)
    for a, b in zip(jax.tree.leaves(g0.layers), jax.tree.leaves(g1.layers)):
        assert np.array_equal(np.asarray(a), np.asarray(b))  # no lambda in the encoders' gradients
    np.testing.assert_allclose(np.asarray(g1.softmax.theta - g0.softmax.theta), 0.5 * theta, rtol=1e-13)
    for p in g0.layers:
        assert not np.any(np.asarray(p.W2)) and not np.any(np.asarray(p.b2))
    # the cost is the softmax cost of the last encode() features
    feats = encode(stack.layers[1], encode(stack.layers[0], x))
    assert max_rel_err(J1, softmax_cost(stack.softmax, feats, y, lam=0.5)) <= 1e-15
    assert max_rel_err(stack_features(stack.layers, x), feats) == 0.0
    assert max_rel_err(stack_activations(stack, x)[-1], feats) == 0.0
    pred = stacked_predict(stack, x)
    np.testing.assert_array_equal(np.asarray(pred), np.argmax(np.asarray(feats) @ theta.T, axis=1))


def test_extreme_logits_finite_and_manual_equals_autodiff():
    """theta of 1e4 makes logits of order 1e4: P saturates to exactly 0/1, everything stays finite."""
    stack, x, y = problem(7, 6, [4, 3], 3, theta_scale=1e4)
    J, g = stacked_cost_and_grad(stack, x, y, lam=0.0)
    J_ad, g_ad = _grad_jit(stack, x, y, lam=0.0)
    assert np.isfinite(float(J)) and float(J) > 100
    assert all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree.leaves(g))
    assert max_rel_err(J, J_ad) <= 1e-14
    assert_grads_close(g, g_ad, 1e-12)
    # exact: J = mean(logsumexp z - z_y) of the features' logits, computed independently in float64 numpy
    z = np.asarray(stack_features(stack.layers, x)) @ np.asarray(stack.softmax.theta).T
    top = z.max(axis=1)
    want = np.mean(top + np.log(np.exp(z - top[:, None]).sum(axis=1)) - z[np.arange(6), np.asarray(y)])
    assert abs(float(J) - want) <= 1e-15 * abs(want) * 4


S0, X0, Y0 = problem(8, 4, [3, 2, 2], 3)
L0, L1 = S0.layers
BAD = [
    (lambda: ((L0, L1), X0, Y0), "stack must be a sae_jax.stacked.StackedParams"),
    (lambda: (StackedParams((), S0.softmax), X0, Y0), "stack.layers must be a non-empty tuple"),
    (lambda: (StackedParams((L0, L0), S0.softmax), X0, Y0), r"stack.layers\[1\] takes 3 inputs.*gives 2"),
    (lambda: (StackedParams((L0,), SoftmaxParams(jnp.ones((3, 5)))), X0, Y0), r"stack.softmax.theta must have shape \(k, 2\)"),
    (lambda: (StackedParams((L0, Params(L1.W1, L1.b1, L1.W2, L1.b2[:1])), S0.softmax), X0, Y0), r"stack.layers\[1\]: params.b2"),
    (lambda: (StackedParams((L0, L1), SoftmaxParams(S0.softmax.theta.astype(jnp.float32))), X0, Y0), "stack.softmax.theta must have the stack's dtype"),
    (lambda: (StackedParams((L0, L1._replace(W1=L1.W1.at[0, 0].set(jnp.nan))), S0.softmax), X0, Y0), r"stack.layers\[1\]: params.W1 must be finite"),
    (lambda: (S0, X0[:, :2], Y0), r"x must have shape \(m, 3\) to match stack.layers\[0\]"),
    (lambda: (S0, X0.astype(jnp.float32), Y0), "x must have the same dtype as stack.layers"),
    (lambda: (S0, X0.at[0, 0].set(jnp.nan), Y0), "x must be finite"),
    (lambda: (S0, X0, Y0.at[0].set(3)), r"y must hold class indices in \[0, 3\).*stack.softmax.theta"),
    (lambda: (S0, X0, Y0.astype(jnp.float64)), "y must be integer class indices"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input_raises_one_input_error(case):
    make, pattern = BAD[case]
    stack, x, y = make()
    with pytest.raises(InputError, match=pattern):
        stacked_cost_and_grad(stack, x, y, lam=1e-4)


def test_bad_input_to_the_pipeline():
    with pytest.raises(InputError, match="lam must be a finite number >= 0"):
        stacked_cost(S0, X0, Y0, lam=-1.0)
    with pytest.raises(InputError, match="x must be finite"):  # checked inside the compiled call
        stacked_predict(S0, X0.at[1, 0].set(jnp.inf))
    with pytest.raises(InputError, match="steps must be an integer >= 0"):
        fine_tune(S0, X0, Y0, steps=-1)
    with pytest.raises(InputError, match="configs must be a non-empty sequence"):
        train_stacked(X0, Y0, configs=[], n_classes=3)
    with pytest.raises(InputError, match="configs must share one dtype"):
        train_stacked(X0, Y0, configs=[TrainConfig(dtype="float32"), TrainConfig()], n_classes=3)
    with pytest.raises(InputError, match="n_classes must be an integer >= 2"):
        train_stacked(X0, Y0, configs=[TrainConfig()], n_classes=1)


@pytest.mark.slow  # the same pipeline runs by default in test_experiments::test_stacked_before_and_after_fine_tuning
def test_pipeline_pretrain_softmax_fine_tune_at_a_tiny_size():
    rng = np.random.default_rng(10)
    k, n, m = 3, 9, 60
    proto = rng.uniform(0.1, 0.9, (k, n))
    y = rng.integers(0, k, m)
    x = np.clip(proto[y] + 0.1 * rng.normal(size=(m, n)), 0, 1)
    # (with the exercise's rho = 0.1, lambda = 3e-3 at this size the second layer's features collapse to ~rho)
    hp = dict(steps=40, chunk=40, rho=0.2, lam=1e-4, beta=1.0)
    # both layers 9 -> 9 on (60, 9) data: sae_jax.training.train compiles its runner once for the two
    # (and tests/test_experiments.py reuses it: same config and shapes)
    configs = [TrainConfig(n_hidden=9, **hp), TrainConfig(n_hidden=9, seed=1, **hp)]
    res = train_stacked(x, jnp.asarray(y), configs=configs, n_classes=k, lam=1e-4, softmax_steps=50, fine_tune_steps=30)
    before, after = res.pretrained, res.fine_tuned
    assert [p.W1.shape for p in after.layers] == [(9, 9), (9, 9)] and after.softmax.theta.shape == (3, 9)
    xd = jnp.asarray(x)
    # pretrained layers: layer 2 was trained on layer 1's encode() features
    J_before = stacked_cost(before, xd, jnp.asarray(y), lam=1e-4)
    J_after = stacked_cost(after, xd, jnp.asarray(y), lam=1e-4)
    assert float(J_after) < float(J_before)
    # fine-tuning moved the encoders but left the decoders as pretrained
    assert not np.array_equal(np.asarray(after.layers[0].W1), np.asarray(before.layers[0].W1))
    for a, b in zip(after.layers, before.layers):
        assert np.array_equal(np.asarray(a.W2), np.asarray(b.W2)) and np.array_equal(np.asarray(a.b2), np.asarray(b.b2))
    assert np.mean(np.asarray(stacked_predict(after, xd)) == y) >= 0.95
    # the softmax was trained on layer 2's features of layer 1's features
    np.testing.assert_array_equal(
        np.asarray(stack_features(before.layers, xd)), np.asarray(encode(before.layers[1], encode(before.layers[0], xd)))
    )


def test_on_every_device(device):
    """Each device (8 CPUs here; the GPU where present) agrees with the float64 reference."""
    stack, x, y = problem(12, 10, [5, 4, 3], 3)
    ref_J, ref_g = _grad_jit(stack, x, y, lam=1e-3)
    sd, xd, yd = jax.device_put((stack, x, y), device)
    J, g = stacked_cost_and_grad(sd, xd, yd, lam=1e-3)
    assert g.softmax.theta.devices() == {device}
    assert max_rel_err(J, ref_J) <= 1e-13
    assert_grads_close(g, ref_g, 1e-12)
