"""The public math functions under JAX's transformations, to the second derivative (issue 20, item 1).

Hessian-vector products *through the manual gradient* (``jax.grad`` of ``<cost_and_grad(p)[1], v>``)
must equal the autodiff ones (``jax.grad`` of ``<jax.grad(cost)(p), v>``) for every variant and
output, eager and jitted, vmapped over hyperparameters and under ``vmap``, on the fast path and on
the exact (log-domain) path of a saturated unit; ``jax.hessian(sae.cost)`` is held to a central
finite-difference Hessian of ``jax.grad(cost)`` (Richardson-extrapolated; an independent reference).
Tolerances are float64, max-norm relative per array (:func:`helpers.max_rel_err`): 1e-10 unless
stated. Under a transformation the public functions must be the bare math: their traced programs
are compared with the internal functions' (no value check enters what a transformation sees).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import sae_jax as sae
from sae_jax.backprop import backprop
from sae_jax.cost import exact_on_fast_path, terms_from_activations
from sae_jax.forward import forward

from helpers import max_rel_err, random_problem

TOL = 1e-10
HP = dict(lam=1e-3, beta=3.0, rho=0.1)
M, N, H = 7, 5, 3
VARIANTS = ["plain", "tied", "l1", "denoising"]
OUTPUTS = ["sigmoid", "linear"]


# ------------------------------------------------------------------ problems and the two HVPs
def _problem(variant="plain", output="sigmoid", m=M, seed=0):
    """params, direction v (same structure), target x and the variant's options."""
    p, x = random_problem(seed, m, N, H, output=output, bias_scale=0.5)
    opts = {}
    if variant == "tied":
        p = p._replace(W2=None)
    elif variant == "l1":
        opts["l1"] = 0.05
    elif variant == "denoising":
        rng = np.random.default_rng(seed + 100)
        opts["x_input"] = jnp.asarray(np.asarray(x) * (rng.uniform(size=x.shape) > 0.3))
    rng = np.random.default_rng(seed + 200)
    v = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape)), p)
    return p, v, x, opts


def _inner(t, u):
    return sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(t), jax.tree.leaves(u)))


def _hvp_manual(p, v, x, *, terms=False, **kw):
    """grad of <g(p), v> with g the manual gradient (``cost_and_grad`` or ``cost_terms_and_grad``)."""
    fn = sae.cost_terms_and_grad if terms else sae.cost_and_grad
    return jax.grad(lambda q: _inner(fn(q, x, **kw)[1], v))(p)


def _hvp_autodiff(p, v, x, **kw):
    return jax.grad(lambda q: _inner(jax.grad(sae.cost)(q, x, **kw), v))(p)


def _all_hvps(p, v, x, **kw):
    return _hvp_manual(p, v, x, **kw), _hvp_manual(p, v, x, terms=True, **kw), _hvp_autodiff(p, v, x, **kw)


_all_hvps_jit = jax.jit(_all_hvps, static_argnames="output")


def assert_trees_close(got, want, tol=TOL, what=""):
    gl, gd = jax.tree.flatten(got)
    wl, wd = jax.tree.flatten(want)
    assert gd == wd, (what, gd, wd)
    for i, (g, w) in enumerate(zip(gl, wl)):
        assert np.shape(g) == np.shape(w), (what, i)
        assert np.all(np.isfinite(np.asarray(g))), (what, i, "non-finite")
        err = max_rel_err(g, w)
        assert err <= tol, f"{what} leaf {i}: relative error {err:.2e} > {tol:.0e}"


# ------------------------------------------------------------------ HVP: manual vs autodiff
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_hvp_through_the_manual_gradient_equals_autodiff_jitted(variant, output):
    p, v, x, opts = _problem(variant, output)
    manual, manual_terms, autodiff = _all_hvps_jit(p, v, x, output=output, **HP, **opts)
    assert max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(autodiff)) > 1e-3  # not trivially 0
    assert_trees_close(manual, autodiff, what="cost_and_grad")
    assert_trees_close(manual_terms, autodiff, what="cost_terms_and_grad")


@pytest.mark.parametrize("variant,output", [("plain", "sigmoid"), ("tied", "linear")])
def test_hvp_through_the_manual_gradient_equals_autodiff_eager(variant, output):
    """The issue's reproduction (eager jax.grad of <cost_and_grad(q)[1], v>) and its terms twin."""
    p, v, x, opts = _problem(variant, output)
    manual, manual_terms, _ = _all_hvps(p, v, x, output=output, **HP, **opts)
    _, _, autodiff = _all_hvps_jit(p, v, x, output=output, **HP, **opts)
    assert_trees_close(manual, autodiff, what="cost_and_grad")
    assert_trees_close(manual_terms, autodiff, what="cost_terms_and_grad")


def test_hvp_equals_hessian_times_v_and_jacobians_of_the_manual_gradient_equal_the_hessian():
    p, v, x, _ = _problem()
    cost = functools.partial(sae.cost, x=x, **HP)
    hess = jax.jit(jax.hessian(cost))(p)
    flat_v, unravel = ravel_pytree(v)
    H = _hessian_matrix(hess, p)
    manual, _, _ = _all_hvps_jit(p, v, x, output="sigmoid", **HP)
    assert_trees_close(manual, unravel(H @ flat_v), what="hessian @ v")
    grad_fn = lambda q: sae.cost_and_grad(q, x, **HP)[1]  # noqa: E731
    assert_trees_close(jax.jit(jax.jacfwd(grad_fn))(p), hess, what="jacfwd(manual)")
    assert_trees_close(jax.jit(jax.jacrev(grad_fn))(p), hess, what="jacrev(manual)")


# ------------------------------------------------------------------ the Hessian vs finite differences
def _hessian_matrix(hess, p):
    """The nested (Params of Params) ``jax.hessian`` output as a (d, d) matrix in ravel_pytree order."""
    rows = [jnp.concatenate([jnp.reshape(hess[i][j], (np.size(p[i]), np.size(p[j]))) for j in range(len(p))], axis=1)
            for i in range(len(p))]
    return jnp.concatenate(rows, axis=0)


@pytest.mark.parametrize("output", OUTPUTS)
def test_hessian_of_cost_equals_finite_differences_of_its_gradient(output):
    """jax.hessian(sae.cost) against central differences of jax.grad(cost), Richardson-extrapolated
    (error O(h^4) + O(eps/h)); tolerance 1e-8 relative (the differences' own error, not the Hessian's)."""
    p, _, x = _problem(output=output, m=6)[:3]
    theta, unravel = ravel_pytree(p)
    grad_flat = jax.jit(lambda t: ravel_pytree(jax.grad(sae.cost)(unravel(t), x, output=output, **HP))[0])
    eye = jnp.eye(theta.size, dtype=theta.dtype)

    @jax.jit
    def central(h):
        return jax.vmap(lambda e: (grad_flat(theta + h * e) - grad_flat(theta - h * e)) / (2 * h))(eye)

    h = 1e-3
    fd = (4 * central(h / 2) - central(h)) / 3  # column k: dg/dtheta_k
    H = _hessian_matrix(jax.jit(jax.hessian(sae.cost), static_argnames="output")(p, x, output=output, **HP), p)
    err = max_rel_err(H, fd.T)
    assert err <= 1e-8, err
    np.testing.assert_allclose(H, H.T, atol=1e-14 * float(jnp.max(jnp.abs(H))))


# ------------------------------------------------------------------ jvp
@pytest.mark.parametrize("output", OUTPUTS)
def test_jvp_through_cost_and_grad_equals_autodiff(output):
    p, v, x, _ = _problem(output=output)
    manual = jax.jit(lambda q, t: jax.jvp(lambda r: sae.cost_and_grad(r, x, output=output, **HP), (q,), (t,)))
    autodiff = jax.jit(lambda q, t: jax.jvp(lambda r: jax.value_and_grad(sae.cost)(r, x, output=output, **HP), (q,), (t,)))
    (J, g), (dJ, dg) = manual(p, v)
    (J_ad, g_ad), (dJ_ad, dg_ad) = autodiff(p, v)
    assert_trees_close((J, g, dJ, dg), (J_ad, g_ad, dJ_ad, dg_ad), what="jvp")
    assert abs(float(dJ) - float(_inner(g_ad, v))) <= TOL * abs(float(dJ))  # dJ = <grad, v>


# ------------------------------------------------------------------ vmap over hyperparameters
GRID = dict(lam=jnp.array([1e-4, 1e-3, 3e-3]), beta=jnp.array([0.5, 3.0, 5.0]), rho=jnp.array([0.05, 0.1, 0.3]))


def test_vmap_of_hvps_over_hyperparameters_equals_each_setting():
    p, v, x, _ = _problem()

    @jax.jit
    def batched(lam, beta, rho):
        return jax.vmap(lambda a, b, r: _all_hvps(p, v, x, lam=a, beta=b, rho=r))(lam, beta, rho)

    got = batched(**GRID)
    for k in range(3):
        hp = {name: GRID[name][k] for name in GRID}
        _, _, want = _all_hvps_jit(p, v, x, output="sigmoid", **hp)
        for what, g in zip(("cost_and_grad", "cost_terms_and_grad", "autodiff"), got):
            assert_trees_close(jax.tree.map(lambda a: a[k], g), want, what=f"{what} setting {k}")


def test_hvp_of_a_vmapped_sum_equals_the_sum_of_hvps():
    """grad of sum_k <g_k(p), v> with the manual gradient vmapped over the settings inside."""
    p, v, x, _ = _problem()

    def summed(fn):
        return jax.jit(jax.grad(lambda q: jnp.sum(jax.vmap(lambda a, b, r: _inner(fn(q, a, b, r), v))(*GRID.values()))))

    manual = summed(lambda q, a, b, r: sae.cost_and_grad(q, x, lam=a, beta=b, rho=r)[1])
    manual_terms = summed(lambda q, a, b, r: sae.cost_terms_and_grad(q, x, lam=a, beta=b, rho=r)[1])
    want = None
    for k in range(3):
        _, _, hv = _all_hvps_jit(p, v, x, output="sigmoid", **{name: GRID[name][k] for name in GRID})
        want = hv if want is None else jax.tree.map(jnp.add, want, hv)
    assert_trees_close(manual(p), want, what="cost_and_grad")
    assert_trees_close(manual_terms(p), want, what="cost_terms_and_grad")


def test_vmap_of_cost_terms_cost_and_jvp_equals_each_setting():
    p, v, x, _ = _problem()

    def each(lam, beta, rho):
        hp = dict(lam=lam, beta=beta, rho=rho)
        return (sae.cost(p, x, **hp), sae.cost_terms(p, x, **hp), sae.autodiff_cost_and_grad(p, x, **hp),
                jax.jvp(lambda q: sae.cost_and_grad(q, x, **hp), (p,), (v,)))

    got = jax.jit(jax.vmap(each))(*GRID.values())
    loop = jax.jit(each)
    for k in range(3):
        assert_trees_close(jax.tree.map(lambda a: a[k], got), loop(*(GRID[name][k] for name in GRID)), tol=1e-12)


# ------------------------------------------------------------------ saturation: the exact branch
def _saturated(p):
    """Unit 0 dead (z ~ -800 on every sample: its sigmoid, hence rho_hat, underflows to 0 in
    float64), unit 2 always on (1 - rho_hat ~ e^-40), so the log-domain branch runs."""
    return p._replace(b1=p.b1.at[0].set(-800.0).at[2].set(40.0))


@pytest.mark.parametrize("output", OUTPUTS)
def test_hvp_at_saturation_takes_the_exact_branch_and_equals_autodiff(output):
    p, v, x, _ = _problem(output=output)
    p = _saturated(p)
    rh = sae.cost_terms(p, x, output=output, **HP).rho_hat
    assert float(rh[0]) == 0.0 and float(1 - rh[2]) < 1e-16  # both saturations present
    assert not bool(exact_on_fast_path(rh, jnp.zeros_like(rh)))
    manual, manual_terms, autodiff = _all_hvps_jit(p, v, x, output=output, **HP)
    assert_trees_close(manual, autodiff, what="cost_and_grad")
    assert_trees_close(manual_terms, autodiff, what="cost_terms_and_grad")
    # the dead unit's b1 row of the HVP is finite and nonzero (the restoring force has a derivative)
    assert float(jnp.abs(autodiff.b1[0])) > 0


def test_hvp_vmapped_over_saturated_and_ordinary_members_equals_each():
    """Under vmap one member's saturation sends every member down the exact branch (one cond):
    each member's HVP is still its own, and finite (no 0 * inf from the discarded fast-path delta)."""
    p, v, x, _ = _problem()
    ps = jax.tree.map(lambda a, b: jnp.stack([a, b, a]), p, _saturated(p))
    got = jax.jit(jax.vmap(lambda q: _all_hvps(q, v, x, **HP)))(ps)
    for k in range(3):
        _, _, want = _all_hvps_jit(jax.tree.map(lambda a: a[k], ps), v, x, output="sigmoid", **HP)
        for what, g in zip(("cost_and_grad", "cost_terms_and_grad", "autodiff"), got):
            assert_trees_close(jax.tree.map(lambda a: a[k], g), want, what=f"{what} member {k}")


def test_vmapped_manual_gradient_keeps_one_cond_also_nested():
    """The hyperparameter sweep still runs one branch for the whole batch (a cond, not a select
    over both branches), for one vmap and for a vmap of a vmap."""
    p, _, x, _ = _problem()
    one = jax.vmap(lambda b: sae.cost_and_grad(p, x, lam=1e-3, beta=b, rho=0.1))
    two = jax.vmap(jax.vmap(lambda a, b: sae.cost_and_grad(p, x, lam=a, beta=b, rho=0.1), (None, 0)), (0, None))
    assert str(jax.make_jaxpr(one)(GRID["beta"])).count("cond[") == 1
    assert str(jax.make_jaxpr(two)(GRID["lam"], GRID["beta"])).count("cond[") == 1
    J2, g2 = jax.jit(two)(GRID["lam"], GRID["beta"])
    J, g = sae.cost_and_grad(p, x, lam=GRID["lam"][1], beta=GRID["beta"][2], rho=0.1)
    assert_trees_close((J2[1, 2], jax.tree.map(lambda a: a[1, 2], g2)), (J, g), tol=1e-12)


# ------------------------------------------------------------------ m = 1
def test_hvp_and_jvp_with_one_sample():
    p, v, x, _ = _problem(m=1)
    manual, manual_terms, autodiff = _all_hvps_jit(p, v, x, output="sigmoid", **HP)
    assert_trees_close(manual, autodiff, what="cost_and_grad m=1")
    assert_trees_close(manual_terms, autodiff, what="cost_terms_and_grad m=1")
    jvp = jax.jit(lambda q: jax.jvp(lambda r: sae.cost_and_grad(r, x, **HP), (q,), (v,)))
    jvp_ad = jax.jit(lambda q: jax.jvp(lambda r: jax.value_and_grad(sae.cost)(r, x, **HP), (q,), (v,)))
    assert_trees_close(jvp(p), jvp_ad(p), what="jvp m=1")


# ------------------------------------------------------------------ the shard_map path
def test_hvp_through_the_shard_map_gradient_equals_autodiff():
    """The explicit shard_map path (psum / log-psum over devices) differentiates too, on the fast and the exact branch."""
    from sae_jax import sharded

    p, v, x, _ = _problem(m=11)
    batch = sharded.shard_batch(np.asarray(x), sharded.batch_mesh())
    f = jax.jit(lambda q: jax.grad(lambda r: _inner(sharded.shard_map_cost_and_grad(r, batch, **HP)[1], v))(q))
    for q in (p, _saturated(p)):
        _, _, want = _all_hvps_jit(q, v, x, output="sigmoid", **HP)
        assert_trees_close(f(q), want, what="shard_map")


# ------------------------------------------------------------------ the public functions are the bare math
def _bare(name, params, x, *, lam, beta, rho, output="sigmoid", l1=None, x_input=None):
    """The internal math each public function runs under a trace, written out without it."""
    if name in ("cost", "cost_terms", "autodiff_cost_and_grad"):
        def terms(q):
            acts = forward(q, x if x_input is None else x_input, output=output)
            return terms_from_activations(q, x, acts, lam=lam, beta=beta, rho=rho, l1=l1)
        if name == "cost":
            return terms(params).cost
        if name == "cost_terms":
            return terms(params)
        return jax.value_and_grad(lambda q: terms(q).cost)(params)
    t, g = backprop(params, x, lam=lam, beta=beta, rho=rho, output=output, l1=l1, x_input=x_input)
    return (t.cost, g) if name == "cost_and_grad" else (t, g)


PUBLIC = ["cost", "cost_terms", "cost_and_grad", "cost_terms_and_grad", "autodiff_cost_and_grad"]


def _scalar(out):
    return sum(jnp.sum(a) for a in jax.tree.leaves(out))


@pytest.mark.parametrize("name", PUBLIC)
def test_public_functions_under_transformations_trace_to_the_bare_math(name):
    """Whatever checks values (sae_jax.checked) must never change what a transformation sees:
    under grad, jvp, vmap, jit and hessian each public function's program is the internal math's."""
    p, v, x, opts = _problem("denoising")
    opts["l1"] = 0.05
    pub = lambda q, b=3.0: getattr(sae, name)(q, x, lam=1e-3, beta=b, rho=0.1, **opts)  # noqa: E731
    bare = lambda q, b=3.0: _bare(name, q, x, lam=1e-3, beta=b, rho=0.1, **opts)  # noqa: E731
    transforms = {
        "grad": lambda f: (jax.grad(lambda q: _scalar(f(q))), (p,)),
        "jvp": lambda f: (lambda q: jax.jvp(f, (q,), (v,)), (p,)),
        "vmap": lambda f: (jax.vmap(lambda b: f(p, b)), (GRID["beta"],)),
        "jit": lambda f: (jax.jit(lambda q: f(q)), (p,)),
        "hessian": lambda f: (jax.hessian(lambda q: _scalar(f(q))), (p,)),
    }
    for what, t in transforms.items():
        fp, args = t(pub)
        fb, _ = t(bare)
        assert str(jax.make_jaxpr(fp)(*args)) == str(jax.make_jaxpr(fb)(*args)), f"{name} under {what}"
