"""The tutorial's backprop (sae_jax.cost_and_grad) against jax.grad, finite differences and UFLDL."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax.test_util import check_grads

import sae_jax as sae
from sae_jax.gradcheck import gradcheck
from helpers import COST_RTOL, GRAD_RTOL, assert_tree_close, count_compiles, max_rel_err, random_problem
from ufldl_reference import sparse_autoencoder_cost

HP = dict(lam=1e-4, beta=3.0, rho=0.01)
SIZES = [(1, 1, 1), (1, 3, 2), (2, 1, 1), (5, 2, 7), (17, 9, 4), (40, 64, 25)]


# The reference: jax.value_and_grad(sae.cost), jitted (one compilation per shape instead of
# one per primitive; test_autodiff_reference_is_value_and_grad_of_cost shows it is the same).
_reference = jax.jit(jax.value_and_grad(sae.cost), static_argnames=("output",))


def _compare(p, x, hp, output, dtype):
    J, g = sae.cost_and_grad(p, x, **hp, output=output)
    J_ad, g_ad = _reference(p, x, **hp, output=output)
    assert isinstance(g, sae.Params)
    assert J.dtype == jnp.dtype(dtype) and J.shape == ()
    assert max_rel_err(J, J_ad) <= COST_RTOL[jnp.dtype(dtype)]
    assert_tree_close(g, g_ad, GRAD_RTOL[jnp.dtype(dtype)], "manual vs jax.grad")
    return J, g


#: The default run: m = n = h = 1, more hidden than visible units (5, 2, 7) and the exercise's
#: shape (64 visible, 25 hidden); the other sizes under ``-m slow`` ((17, 9, 4) also runs by default
#: in test_manual_equals_autodiff_zero_penalties).
DEFAULT_SIZES = [(1, 1, 1), (5, 2, 7), (40, 64, 25)]


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("m,n,h", [s if s in DEFAULT_SIZES else pytest.param(*s, marks=pytest.mark.slow) for s in SIZES])
def test_manual_equals_autodiff_float64(output, m, n, h):
    p, x = random_problem(m * 100 + n * 10 + h, m, n, h, output=output)
    _compare(p, x, HP, output, jnp.float64)


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("m,n,h", [(1, 1, 1), (17, 9, 4)])
@pytest.mark.parametrize(
    "hp",
    [dict(lam=0.0, beta=3.0, rho=0.1), dict(lam=1e-2, beta=0.0, rho=0.3), dict(lam=0.0, beta=0.0, rho=0.5)],
    ids=["lam0", "beta0", "both0"],
)
def test_manual_equals_autodiff_zero_penalties(output, m, n, h, hp):
    p, x = random_problem(m * 100 + n * 10 + h, m, n, h, output=output)
    _compare(p, x, hp, output, jnp.float64)


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("m,n,h", [(1, 1, 1), pytest.param(17, 9, 4, marks=pytest.mark.slow), (200, 64, 25)])
def test_manual_equals_autodiff_float32(output, m, n, h):
    """float32: max-norm relative error <= 2e-5 per array (about 170 ulp; sums of m terms)."""
    p, x = random_problem(7, m, n, h, output=output, dtype=jnp.float32)
    _compare(p, x, HP, output, jnp.float32)


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_matches_independent_ufldl_transcription(output):
    """Cost and flat gradient equal a NumPy transcription of sparseAutoencoderCost.m (column layout)."""
    n, h, m = 8, 5, 30
    p, x = random_problem(11, m, n, h, output=output)
    hp = dict(lam=3e-3, beta=2.0, rho=0.05)
    J, g = sae.cost_and_grad(p, x, **hp, output=output)
    J_ref, grad_ref = sparse_autoencoder_cost(
        sae.params_to_theta(p), n, h, hp["lam"], hp["rho"], hp["beta"], np.asarray(x).T,
        linear=output == "linear",
    )
    assert max_rel_err(J, J_ref) <= 1e-13
    assert max_rel_err(sae.params_to_theta(g), grad_ref) <= 1e-12
    for got, want in zip(g, sae.theta_to_params(grad_ref, n, h)):
        assert max_rel_err(got, want) <= 1e-12


@pytest.mark.parametrize("output", ["sigmoid", pytest.param("linear", marks=pytest.mark.slow)])  # the float64 grid above uses the jitted reference for both outputs
def test_autodiff_reference_is_value_and_grad_of_cost(output):
    """Eager jax.value_and_grad(sae.cost), its jitted form, and sae.autodiff_cost_and_grad agree."""
    p, x = random_problem(10, 9, 5, 3, output=output)
    eager = jax.value_and_grad(sae.cost)(p, x, **HP, output=output)
    assert_tree_close(_reference(p, x, **HP, output=output), eager, 1e-15)
    assert_tree_close(sae.autodiff_cost_and_grad(p, x, **HP, output=output), eager, 1e-15)
    # and the manual gradient against the eager call, exactly as a user would write it
    assert_tree_close(sae.cost_and_grad(p, x, **HP, output=output), eager, 1e-12)


def test_without_jit_too():
    p, x = random_problem(12, 9, 5, 3)
    with jax.disable_jit():
        J, g = sae.cost_and_grad(p, x, **HP)
    J_j, g_j = sae.cost_and_grad(p, x, **HP)
    assert max_rel_err(J, J_j) <= 1e-14
    assert_tree_close(g, g_j, 1e-13, "no-jit vs jit")


def test_inside_user_jit_vmap_and_grad_of_cost_terms():
    p, x = random_problem(13, 10, 6, 4)
    J, g = jax.jit(lambda p, x: sae.cost_and_grad(p, x, **HP))(p, x)
    J2, g2 = sae.cost_and_grad(p, x, **HP)
    assert max_rel_err(J, J2) <= 1e-15
    assert_tree_close(g, g2, 1e-15)
    terms, g3 = sae.cost_terms_and_grad(p, x, **HP)
    assert max_rel_err(terms.cost, J2) <= 1e-15
    assert_tree_close(g3, g2, 1e-15)


def test_on_every_device(device):
    """Each device (the first and last host CPU by default, all 8 with -m slow; every GPU) agrees with the CPU float64 reference."""
    p, x = random_problem(14, 33, 16, 8)
    ref = _reference(p, x, **HP)  # jitted jax.value_and_grad(sae.cost) (one compilation, not op by op)
    pd, xd = jax.device_put((p, x), device)
    J, g = sae.cost_and_grad(pd, xd, **HP)
    assert g.W1.devices() == {device}
    J_ad, g_ad = sae.autodiff_cost_and_grad(pd, xd, **HP)
    # GPUs may use reduced-precision matmuls for float64 differently: 1e-12 still holds for float64
    assert max_rel_err(J, ref[0]) <= 1e-13
    assert_tree_close(g, ref[1], 1e-12, f"manual on {device}")
    assert_tree_close(g_ad, ref[1], 1e-12, f"autodiff on {device}")


@pytest.mark.parametrize("output", ["sigmoid", pytest.param("linear", marks=pytest.mark.slow)])  # linear: five-point differences below
def test_check_grads_finite_differences(output):
    """jax.test_util.check_grads on the cost (float64 central differences, first and second order)."""
    p, x = random_problem(15, 6, 4, 3, output=output)
    hp = dict(lam=1e-2, beta=3.0, rho=0.1, output=output)
    # jitted: check_grads evaluates the cost and its first and second derivatives many times, and
    # eagerly each evaluation dispatched (and first compiled) op by op
    check_grads(jax.jit(lambda p: sae.cost(p, x, **hp)), (p,), order=2, modes=("rev",), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("m,n,h", [(1, 1, 1), (12, 7, 5)])
def test_manual_gradient_against_five_point_differences(output, m, n, h):
    p, x = random_problem(16, m, n, h, output=output)
    rows = gradcheck(p, x, lam=1e-3, beta=3.0, rho=0.1, output=output, n_directions=3, devices=[jax.devices()[0]])
    for r in rows:
        assert r.manual_vs_autodiff <= 1e-12, r
        if r.array != "cost":
            # five-point stencil, h = eps**(1/5), error relative to ||g_P||: O(h^4) truncation, O(eps*|J|/h) rounding
            assert r.manual_vs_fd <= 1e-7, r
            assert r.autodiff_vs_fd <= 1e-7, r


def test_manual_gradient_as_vjp_passes_check_vjp():
    """Wrap the manual gradient as the cost's VJP and let jax.test_util check it numerically."""
    p, x = random_problem(17, 8, 5, 4)

    @jax.custom_vjp
    def J(p):
        return sae.cost(p, x, **HP)

    def fwd(p):
        J_, g = sae.cost_and_grad(p, x, **HP)
        return J_, g

    def bwd(g, ct):
        return (jax.tree.map(lambda a: ct * a, g),)

    J.defvjp(fwd, bwd)
    check_grads(J, (p,), order=1, modes=("rev",), atol=1e-7, rtol=1e-7)


def test_tutorial_delta_is_m_times_dJ_dz():
    """The answer to the 1/m question, executable.

    The tutorial's delta2 (sparsity term without 1/m) equals m * dJ/dz2 per sample,
    where dJ/dz2 is computed by jax.grad treating each sample's z2 as a free variable.
    So the single 1/m in dJ/dW1 = (1/m) delta2^T x + lam W1 is the one from d(rho_hat)/da.
    """
    m, n, h = 13, 6, 4
    p, x = random_problem(18, m, n, h)
    acts = sae.forward(p, x)

    def J_of_z2(z2):
        a2 = sae.sigmoid(z2)
        a3 = sae.sigmoid(a2 @ p.W2.T + p.b2[None, :])
        return sae.reconstruction(a3, x) + sae.sparsity(sae.rho_hat(a2), rho=HP["rho"], beta=HP["beta"])

    dJ_dz2 = jax.grad(J_of_z2)(acts.z2)
    delta3 = sae.output_delta(acts.a3, x)
    sd = sae.sparsity_delta(sae.rho_hat(acts.a2), **{k: HP[k] for k in ("rho", "beta")})
    delta2 = sae.hidden_delta(delta3, p.W2, acts.a2, sd)
    np.testing.assert_allclose(delta2, m * dJ_dz2, rtol=1e-12, atol=1e-15)
    # ... and the sparsity part alone: beta(-rho/rho_hat + (1-rho)/(1-rho_hat)) f'(z2) = m * d(beta sum KL)/dz2
    d_sparse = jax.grad(lambda z2: sae.sparsity(sae.rho_hat(sae.sigmoid(z2)), rho=HP["rho"], beta=HP["beta"]))(acts.z2)
    np.testing.assert_allclose(sd[None, :] * sae.sigmoid_prime(acts.a2), m * d_sparse, rtol=1e-12, atol=1e-15)
    # The questioner's variant (1/m inside delta, and the outer 1/m kept) is m times too small:
    _, g = sae.cost_and_grad(p, x, **HP)
    variant_W1 = ((delta3 @ p.W2 + sd[None, :] / m) * sae.sigmoid_prime(acts.a2)).T @ x / m + HP["lam"] * p.W1
    assert max_rel_err(variant_W1, g.W1) > 0.1


def test_sparsity_delta_formula():
    rh = jnp.array([0.001, 0.01, 0.2, 0.9])
    rho, beta = 0.01, 3.0
    want = beta * (-rho / np.asarray(rh) + (1 - rho) / (1 - np.asarray(rh)))
    np.testing.assert_allclose(sae.sparsity_delta(rh, rho=rho, beta=beta), want, rtol=1e-15)
    # it is the derivative of beta * sum KL with respect to rho_hat
    d = jax.grad(lambda r: sae.sparsity(r, rho=rho, beta=beta))(rh)
    np.testing.assert_allclose(sae.sparsity_delta(rh, rho=rho, beta=beta), d, rtol=1e-13, atol=1e-14)
    assert float(sae.sparsity_delta(jnp.array([0.01]), rho=0.01, beta=beta)[0]) == pytest.approx(0.0, abs=1e-12)


class TestSweeps:
    def test_vmap_over_hyperparameters_equals_loop_and_compiles_once(self):
        p, x = random_problem(19, 20, 8, 5)
        lams = jnp.array([0.0, 1e-4, 1e-3, 1e-2])
        betas = jnp.array([0.0, 1.0, 3.0, 5.0])
        rhos = jnp.array([0.01, 0.05, 0.1, 0.5])
        f = jax.jit(jax.vmap(lambda l, b, r: sae.cost_and_grad(p, x, lam=l, beta=b, rho=r)))
        Js, gs = f(lams, betas, rhos)
        for i in range(4):
            J, g = sae.cost_and_grad(p, x, lam=float(lams[i]), beta=float(betas[i]), rho=float(rhos[i]))
            assert max_rel_err(Js[i], J) <= 1e-14
            assert_tree_close(jax.tree.map(lambda a: a[i], gs), g, 1e-13)
        # new values, same shapes: no new compilation
        before = f._cache_size()
        f(lams * 2, betas + 1, rhos / 2)
        assert f._cache_size() == before == 1

    def test_scalar_hyperparameters_do_not_recompile(self):
        p, x = random_problem(20, 9, 4, 3)
        for _ in range(2):  # the first call also checks x's values (one program), later ones do not (another)
            sae.cost_and_grad(p, x, lam=1e-4, beta=3.0, rho=0.01)
        with count_compiles() as compiles:
            for lam, beta, rho in [(0.0, 0.0, 0.5), (1e-3, 1.0, 0.2), (2.0, 10.0, 0.99)]:
                sae.cost_and_grad(p, x, lam=lam, beta=beta, rho=rho)
        assert compiles.n == 0


# ---------------------------------------------------------------- saturation
def _saturated_problem(dtype, b1_shift, weight_scale, output="sigmoid", seed=0):
    p, x = random_problem(seed, 24, 6, 5, dtype=dtype, output=output, weight_scale=weight_scale)
    return p._replace(b1=p.b1 + jnp.asarray(b1_shift, dtype)), x


SATURATION_TOL = {jnp.dtype(jnp.float64): 1e-12, jnp.dtype(jnp.float32): 1e-4}


def _saturation_tol(p, x, dtype):
    """The base tolerance, or the conditioning of the exact sparsity gradient if larger.

    Where units saturate, the exact gradient depends on e^(z_i - z_k) across samples; z itself
    carries an absolute rounding error of about eps * |z|, so two evaluations of the same z
    (inside two differently fused programs) give gradients that differ by ~eps * max|z|
    relatively: 1e-3 in float32 at |z| = 1e4. (Before sae-jax evaluated the term exactly,
    both gradients sat on the same clipped plateau and agreed trivially.)
    """
    z = np.asarray(x, np.float64) @ np.asarray(p.W1, np.float64).T + np.asarray(p.b1, np.float64)
    return max(SATURATION_TOL[jnp.dtype(dtype)], 16 * float(jnp.finfo(dtype).eps) * float(np.abs(z).max()))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize(
    "b1_shift",
    [-1e4, -100.0, -17.0, -15.0, 15.0, 17.0, 1e4, np.array([-1e4, -30.0, 0.0, 30.0, 1e4])],
    ids=lambda v: str(v) if np.isscalar(v) else "mixed",
)
def test_saturation_finite_and_manual_equals_autodiff(dtype, output, b1_shift):
    """rho_hat -> 0 and -> 1 (and |z| up to 1e4): finite cost/grad, manual == jax.grad.

    float32 tolerance is 1e-4 here (or the conditioning, :func:`_saturation_tol`): near
    rho_hat ~ 1e-6 the sparsity derivative is ~1e4 times larger than its typical size and the two
    orders of summation differ by more ulps.
    """
    p, x = _saturated_problem(dtype, b1_shift, 1.0, output)
    J, g = sae.cost_and_grad(p, x, **HP, output=output)
    J_ad, g_ad = _reference(p, x, **HP, output=output)
    assert np.isfinite(float(J)) and np.isfinite(float(J_ad))
    tol = _saturation_tol(p, x, dtype)
    assert max_rel_err(J, J_ad) <= tol
    assert_tree_close(g, g_ad, tol, "saturated")


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    shift=st.floats(-60.0, 60.0, allow_nan=False),
    scale=st.floats(0.1, 200.0, allow_nan=False),
    seed=st.integers(0, 3),
)
def test_saturation_property_float32(shift, scale, seed):
    """Random large |z|: float32 cost and gradients are finite and manual == autodiff (tol 1e-4)."""
    p, x = _saturated_problem(jnp.float32, shift, scale, seed=seed)
    J, g = sae.cost_and_grad(p, x, **HP)
    J_ad, g_ad = _reference(p, x, **HP)
    assert np.isfinite(float(J))
    assert max_rel_err(J, J_ad) <= 1e-5
    assert_tree_close(g, g_ad, _saturation_tol(p, x, jnp.float32), "property")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_ufldl_size_manual_equals_autodiff(dtype):
    p, x = random_problem(21, 10_000, 64, 25, dtype=dtype)
    _compare(p, x, HP, "sigmoid", dtype)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_wide_size_manual_equals_autodiff(dtype):
    p, x = random_problem(22, 2048, 784, 196, dtype=dtype)
    _compare(p, x, HP, "sigmoid", dtype)
