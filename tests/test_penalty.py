"""sae_jax._src.penalty.kl_sparsity_penalty: the KL sparsity penalty on anyone's activations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import sae_jax as sae
from sae_jax import kl_sparsity_penalty

from helpers import random_problem

HP = dict(lam=1e-4, beta=3.0, rho=0.01)


def test_equals_the_autoencoders_sparsity_term():
    p, x = random_problem(0, 30, 8, 5)
    want = sae.cost_terms(p, x, **HP).sparsity
    a2 = sae.encode(p, x)
    z2 = x @ p.W1.T + p.b1[None, :]
    np.testing.assert_allclose(kl_sparsity_penalty(a2, rho=0.01, beta=3.0), want, rtol=1e-13)
    np.testing.assert_allclose(kl_sparsity_penalty(z2, rho=0.01, beta=3.0, logits=True), want, rtol=1e-13)
    g = jax.grad(lambda W1: kl_sparsity_penalty(sae.encode(p._replace(W1=W1), x), rho=0.01, beta=3.0))(p.W1)
    g_ref = jax.grad(lambda W1: sae.cost_terms(p._replace(W1=W1), x, **HP).sparsity)(p.W1)
    np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-15)


def test_any_batch_shape_and_axes():
    a = jnp.asarray(np.random.default_rng(1).uniform(0.01, 0.99, (3, 5, 4)))
    got = kl_sparsity_penalty(a, rho=0.1, beta=2.0, axis=(0, 1))
    want = kl_sparsity_penalty(a.reshape(15, 4), rho=0.1, beta=2.0)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    # units along axis 0, samples along the last axis
    np.testing.assert_allclose(kl_sparsity_penalty(a.reshape(15, 4).T, rho=0.1, beta=2.0, axis=-1), want, rtol=1e-14)
    # jit and vmap over beta compose
    betas = jnp.array([0.0, 1.0, 2.0])
    vm = jax.jit(jax.vmap(lambda b: kl_sparsity_penalty(a, rho=0.1, beta=b, axis=(0, 1))))(betas)
    np.testing.assert_allclose(vm, [0.0, float(got) / 2, float(got)], rtol=1e-14)


def _mp_penalty(z, rho, beta):
    mpmath.mp.dps = 50
    rho, beta = mpmath.mpf(rho), mpmath.mpf(beta)
    total = mpmath.mpf(0)
    for col in np.asarray(z, np.float64).T:
        rh = sum(1 / (1 + mpmath.exp(-mpmath.mpf(float(v)))) for v in col) / len(col)
        rhc = sum(1 / (1 + mpmath.exp(mpmath.mpf(float(v)))) for v in col) / len(col)
        total += rho * mpmath.log(rho / rh) + (1 - rho) * mpmath.log((1 - rho) / rhc)
    return beta * total


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_logits_are_exact_at_saturation(dtype):
    """Dead (z ~ -800) and always-on (z ~ +60) units: exact value, finite gradient with the pull."""
    rng = np.random.default_rng(2)
    z = np.stack([-800 + rng.normal(size=7), rng.normal(size=7), 60 + rng.normal(size=7)], axis=1)
    got = kl_sparsity_penalty(jnp.asarray(z, dtype), rho=0.05, beta=3.0, logits=True)
    want = _mp_penalty(z.astype(dtype), 0.05, 3.0)
    assert abs(float(got) - float(want)) <= (1e-12 if dtype == jnp.float64 else 1e-5) * abs(float(want))
    g = jax.grad(lambda z: kl_sparsity_penalty(z, rho=0.05, beta=3.0, logits=True))(jnp.asarray(z, dtype))
    assert np.all(np.isfinite(np.asarray(g)))
    # a bias shift of the dead unit: d/db = sum_i dP/dz_i0 = -beta*rho*(weighted mean of f(-z)) ~ -0.15
    assert float(jnp.sum(g[:, 0])) == pytest.approx(-3.0 * 0.05, rel=1e-6)
    assert float(jnp.sum(g[:, 2])) == pytest.approx(3.0 * 0.95, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(activations=jnp.array([[0.5, 2.0], [0.1, 0.2]]), rho=0.1), "must lie in \\[0, 1\\].*L1 penalty"),
        (dict(activations=jnp.array([[0.5, 0.2], [0.1, 0.2]]), rho=2.0), "rho must be in \\(0, 1\\)"),
        (dict(activations=jnp.array([[0.5, 0.2], [0.1, 0.2]], jnp.float32), rho=0.99999999),
         r"^rho=0.99999999 is 1.0 in float32, where rho must be a normal number in \[1.17549e-38, 0.99999994\]"),
        # issue 21: the hyperparameters are checked in the activations' dtype, where the penalty uses them
        (dict(activations=jnp.array([[0.5, 0.2], [0.1, 0.2]], jnp.float32), rho=0.1, beta=1e39),
         r"^beta=1e\+39 overflows float32 \(largest finite value 3.40282e\+38\)"),
        (dict(activations=jnp.array([[0.5, 0.2], [0.1, 0.2]], jnp.float32), rho=1e-40),
         r"^rho=1e-40 is 9.99\d+e-41 in float32, where rho must be a normal number"),
        (dict(activations=jnp.array([[0.5, 0.2], [0.1, 0.2]]), rho=0.1, beta=-1.0), "beta must be >= 0"),
        (dict(activations=jnp.array([0.5, 0.2]), rho=0.1), "sample axis and a unit axis"),
        (dict(activations=jnp.array([[0.5, 0.2]]), rho=0.1, axis=(0, 1)), "leaves no unit axis"),
        (dict(activations=jnp.array([[0.5, 0.2]]), rho=0.1, axis=2), "out of range"),
        (dict(activations=jnp.array([[0.5, jnp.nan]]), rho=0.1), "must be finite"),
        (dict(activations=[[0.5, 0.2]], rho=0.1), "must be an array"),
    ],
)
def test_bad_input_is_one_clear_error(kwargs, match):
    with pytest.raises(sae.InputError, match=match) as e:
        kl_sparsity_penalty(**kwargs)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value, which", [(0.0, "0"), (1.0, "1")])
def test_a_unit_whose_mean_is_exactly_0_or_1_is_refused_not_a_silent_inf(value, which):
    # The exact penalty is +inf (KL(rho || 0) diverges): called on values, one line says so and
    # points to logits=True; under the caller's jit the float arithmetic's inf is returned (documented).
    a = jnp.array([[value, 0.5], [value, 0.2]], jnp.float32)
    with pytest.raises(sae.InputError, match=rf"^the KL sparsity penalty is \+inf: unit 0's mean activation is exactly "
                       rf"{which} in float32 \(1 such unit\(s\)\).*logits=True") as e:
        kl_sparsity_penalty(a, rho=0.1, beta=3.0)
    assert "\n" not in str(e.value)
    assert float(jax.jit(lambda a: kl_sparsity_penalty(a, rho=0.1, beta=3.0))(a)) == float("inf")
    z = jnp.array([[-200.0, 0.0], [-300.0, -1.0]])  # the same units as logits: finite and exact
    assert np.isfinite(float(kl_sparsity_penalty(z, rho=0.1, beta=3.0, logits=True)))


def test_a_penalty_that_overflows_the_dtype_is_refused():
    a = jnp.array([[1e-30, 0.5], [1e-30, 0.2]], jnp.float32)  # KL ~ 0.1 * log(0.1 / 1e-30) ~ 6.7
    with pytest.raises(sae.InputError, match=r"^the KL sparsity penalty overflows float32 \(beta=3e\+38 .*is inf\)"):
        kl_sparsity_penalty(a, rho=0.1, beta=3e38)
