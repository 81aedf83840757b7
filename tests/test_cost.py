import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sae_jax as sae
from helpers import COST_RTOL, max_rel_err, random_problem
from ufldl_reference import sparse_autoencoder_cost

HP = dict(lam=1e-4, beta=3.0, rho=0.01)


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("m,n,h", [(1, 1, 1), (10, 8, 3), (50, 64, 25)])
def test_cost_matches_independent_ufldl_transcription(output, m, n, h):
    p, x = random_problem(0, m, n, h, output=output)
    hp = dict(lam=3e-3, beta=2.5, rho=0.05)
    J = sae.cost(p, x, **hp, output=output)
    J_ref, _ = sparse_autoencoder_cost(
        sae.params_to_theta(p), n, h, hp["lam"], hp["rho"], hp["beta"], np.asarray(x).T,
        linear=output == "linear",
    )
    assert max_rel_err(J, J_ref) <= 1e-13


def test_cost_terms_sum_and_match_their_definitions():
    p, x = random_problem(1, 20, 6, 4)
    t = sae.cost_terms(p, x, **HP)
    assert isinstance(t, sae.CostTerms)
    np.testing.assert_allclose(t.cost, t.reconstruction + t.weight_decay + t.sparsity, rtol=1e-15)
    xh = np.asarray(sae.reconstruct(p, x))
    a2 = np.asarray(sae.encode(p, x))
    np.testing.assert_allclose(t.reconstruction, 0.5 * np.sum((xh - np.asarray(x)) ** 2) / 20, rtol=1e-14)
    np.testing.assert_allclose(
        t.weight_decay, HP["lam"] / 2 * (np.sum(np.asarray(p.W1) ** 2) + np.sum(np.asarray(p.W2) ** 2)),
        rtol=1e-14,
    )
    rh = a2.mean(axis=0)
    np.testing.assert_allclose(t.rho_hat, rh, rtol=1e-15)
    rho = HP["rho"]
    kl = rho * np.log(rho / rh) + (1 - rho) * np.log((1 - rho) / (1 - rh))
    np.testing.assert_allclose(t.sparsity, HP["beta"] * kl.sum(), rtol=1e-13)
    assert float(sae.cost(p, x, **HP)) == float(t.cost)


def test_weight_decay_spares_biases_and_is_not_divided_by_m():
    p, x = random_problem(2, 9, 5, 3)
    wd = sae.weight_decay(p, lam=0.5)
    q = p._replace(b1=p.b1 + 7.0, b2=p.b2 - 3.0)
    assert float(sae.weight_decay(q, lam=0.5)) == float(wd)
    # Duplicating every sample changes nothing: every term is a mean over samples
    # or independent of m (weight decay is not divided by m).
    xx = jnp.concatenate([x, x], axis=0)
    for name in ("reconstruction", "weight_decay", "sparsity", "cost"):
        a = getattr(sae.cost_terms(p, x, **HP), name)
        b = getattr(sae.cost_terms(p, xx, **HP), name)
        np.testing.assert_allclose(a, b, rtol=1e-14, err_msg=name)


def test_kl_divergence_values():
    rho = 0.2
    assert float(sae.kl_divergence(rho, jnp.array(0.2))) == pytest.approx(0.0, abs=1e-16)
    rh = jnp.array([0.01, 0.5, 0.99])
    want = rho * np.log(rho / np.asarray(rh)) + (1 - rho) * np.log((1 - rho) / (1 - np.asarray(rh)))
    np.testing.assert_allclose(sae.kl_divergence(rho, rh), want, rtol=1e-15)
    assert np.all(np.asarray(sae.kl_divergence(rho, rh)) > 0)


def test_rho_hat_is_the_mean_activation():
    a2 = jnp.arange(12.0).reshape(4, 3) / 12
    np.testing.assert_allclose(sae.rho_hat(a2), np.asarray(a2).mean(0), rtol=1e-15)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_log_rho_hat_equals_log_of_the_mean_and_survives_underflow(dtype):
    z = np.random.default_rng(0).normal(size=(7, 3)) * 3
    log_rh, log1m_rh = sae.log_rho_hat(jnp.asarray(z, dtype))
    a = 1 / (1 + np.exp(-z))
    tol = 1e-14 if dtype == jnp.float64 else 1e-6
    np.testing.assert_allclose(log_rh, np.log(a.mean(0)), rtol=tol)
    np.testing.assert_allclose(log1m_rh, np.log((1 - a).mean(0)), rtol=tol)
    # Every sigmoid underflows (z = -1000 - k): log rho_hat = log mean(e^z) to first order.
    z = -1000.0 - np.arange(4.0)[:, None] * np.ones((1, 2))
    log_rh, log1m_rh = sae.log_rho_hat(jnp.asarray(z, dtype))
    want = np.log(np.exp(-np.arange(4.0)).mean()) - 1000.0
    np.testing.assert_allclose(log_rh, [want, want], rtol=tol)
    np.testing.assert_allclose(log1m_rh, 0.0, atol=1e-300)


def test_kl_divergence_from_logs_equals_the_plain_formula():
    rho = 0.05
    rh = np.array([1e-3, 0.05, 0.5, 0.9])
    got = sae.kl_divergence_from_logs(rho, jnp.log(rh), jnp.log1p(-rh))
    np.testing.assert_allclose(got, sae.kl_divergence(rho, jnp.asarray(rh)), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("b1", [-1e4, -200.0, -40.0, 40.0, 200.0, 1e4])
def test_cost_is_finite_when_rho_hat_saturates(dtype, b1):
    p, x = random_problem(3, 16, 5, 4, dtype=dtype)
    p = p._replace(b1=jnp.full_like(p.b1, b1))
    t = sae.cost_terms(p, x, **HP)
    assert np.all(np.isfinite([t.cost, t.sparsity]))
    assert t.cost.dtype == jnp.dtype(dtype)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_preserved_with_hyperparameter_arrays_of_other_dtypes(dtype):
    p, x = random_problem(4, 8, 4, 3, dtype=dtype)
    hp = dict(lam=jnp.array(1e-4, jnp.float64), beta=np.float32(3.0), rho=jnp.array(0.01, jnp.float64))
    t = sae.cost_terms(p, x, **hp)
    assert all(a.dtype == jnp.dtype(dtype) for a in t)
    assert max_rel_err(t.cost, sae.cost(p, x, **HP)) <= COST_RTOL[jnp.dtype(dtype)]


def test_cost_under_jit_vmap_grad():
    p, x = random_problem(5, 12, 6, 4)
    betas = jnp.linspace(0.0, 4.0, 5)
    batched = jax.jit(jax.vmap(lambda b: sae.cost(p, x, lam=1e-3, beta=b, rho=0.1)))(betas)
    loop = [sae.cost(p, x, lam=1e-3, beta=float(b), rho=0.1) for b in betas]
    np.testing.assert_allclose(batched, loop, rtol=1e-14)
    g = jax.jit(jax.grad(lambda p: sae.cost(p, x, **HP)))(p)
    assert isinstance(g, sae.Params)


# --- issue 21: a result that is not a finite float at valid inputs is said, not returned as inf ----


@pytest.mark.parametrize("scale", [1e19, pytest.param(1e30, marks=pytest.mark.slow)])  # 1e19 already overflows float32
@pytest.mark.parametrize("fn", [sae.cost, sae.cost_and_grad, sae.cost_terms, sae.cost_terms_and_grad])
def test_extreme_linear_data_whose_cost_overflows_float32_is_one_input_error(fn, scale):
    p = sae.init_params(jax.random.key(0), 4, 2)
    x = jnp.full((3, 4), scale, jnp.float32)  # valid data; the true cost ~ scale^2 is not a float32
    with pytest.raises(sae.InputError) as e:
        fn(p, x, lam=1e-4, beta=3.0, rho=0.1, output="linear")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("the cost is not a finite float32 at these inputs (cost inf): its true value overflows float32")
    assert f"data up to {scale:g} (output='linear')" in msg and msg.endswith("or float64")
    # the same data in float64 is a finite cost; under the caller's jit the inf is returned as it is (documented)
    p64 = jax.tree.map(lambda a: a.astype(jnp.float64), p)
    assert np.isfinite(float(sae.cost(p64, x.astype(jnp.float64), lam=1e-4, beta=3.0, rho=0.1, output="linear")))
    J = jax.jit(lambda x: sae.cost(p, x, lam=1e-4, beta=3.0, rho=0.1, output="linear"))(x)
    assert float(J) == float("inf")


def test_lam_whose_product_with_the_weights_overflows_is_one_input_error():
    p = sae.init_params(jax.random.key(0), 4, 2)
    p = p._replace(W1=jnp.full((2, 4), 1e20, jnp.float32))
    with pytest.raises(sae.InputError) as e:
        sae.cost(p, jnp.full((3, 4), 0.5, jnp.float32), lam=1e30, beta=3.0, rho=0.1)
    msg = str(e.value)
    assert "\n" not in msg and "weights up to 1e+20, lam=1e+30, beta=3" in msg


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # quantiles of infinite errors
def test_metrics_evaluate_reports_a_non_finite_cost_as_it_is():
    # the trainer reads a non-finite full-data cost as divergence: evaluate must return it
    from sae_jax.metrics import evaluate

    p = sae.init_params(jax.random.key(0), 4, 2)
    m = evaluate(p, jnp.full((3, 4), 1e30, jnp.float32), lam=1e-4, beta=3.0, rho=0.1, output="linear")
    assert m["cost"] == float("inf")
