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
from sae_jax._src.backprop import backprop
from sae_jax._src.cost import terms_from_activations
from sae_jax._src.sparsity import exact_on_fast_path
from sae_jax import forward

from helpers import max_rel_err, random_problem

TOL = 1e-10
HP = {k: jnp.asarray(v, jnp.float64) for k, v in dict(lam=1e-3, beta=3.0, rho=0.1).items()}  # as GRID[k]: one compile
M, N, H = 7, 5, 3
OUTPUTS = ["sigmoid", "linear"]


# ------------------------------------------------------------------ problems and the two HVPs
def _problem(output="sigmoid", m=M, seed=0):
    """params, a direction v (same structure), the target x and a denoising input (x masked)."""
    p, x = random_problem(seed, m, N, H, output=output, bias_scale=0.5)
    rng = np.random.default_rng(seed + 100)
    x_input = jnp.asarray(np.asarray(x) * (rng.uniform(size=x.shape) > 0.3))
    v = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape)), p)
    return p, v, x, x_input


def _saturated(p):
    """Unit 0 dead (z ~ -800 on every sample: its sigmoid, hence rho_hat, underflows to 0 in
    float64), unit 2 always on (1 - rho_hat ~ e^-40): the log-domain branch runs."""
    return p._replace(b1=p.b1.at[0].set(-800.0).at[2].set(40.0))


def _inner(t, u):
    return sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(t), jax.tree.leaves(u)))


def _hvp_manual(p, v, x, *, terms=False, **kw):
    """grad of <g(p), v> with g the manual gradient (``cost_and_grad`` or ``cost_terms_and_grad``)."""
    fn = sae.cost_terms_and_grad if terms else sae.cost_and_grad
    return jax.grad(lambda q: _inner(fn(q, x, **kw)[1], v))(p)


def _hvp_autodiff(p, v, x, **kw):
    return jax.grad(lambda q: _inner(jax.grad(sae.cost)(q, x, **kw), v))(p)


def _all_hvps(p, v, x, *, terms=True, **kw):
    """(HVP via cost_and_grad, via cost_terms_and_grad (or None), via jax.grad of jax.grad(cost))."""
    by_terms = _hvp_manual(p, v, x, terms=True, **kw) if terms else None
    return _hvp_manual(p, v, x, **kw), by_terms, _hvp_autodiff(p, v, x, **kw)


def _tied(t):
    return t._replace(W2=None)


@functools.partial(jax.jit, static_argnames="output")
def _variant_hvps(p, v, x, x_input, lam, beta, rho, *, output):
    """{variant: (HVP via cost_and_grad, via cost_terms_and_grad, via jax.grad of jax.grad(cost))},
    one compiled program per output for every variant (tied, L1, denoising and the plain model).
    cost_and_grad is cost_terms_and_grad's cost and gradient, so the latter's HVP (a second
    copy of the same program) is taken for the plain model only."""
    hp = dict(lam=lam, beta=beta, rho=rho, output=output)
    cases = {"plain": (p, v, {}), "tied": (_tied(p), _tied(v), {}), "l1": (p, v, {"l1": 0.05}),
             "denoising": (p, v, {"x_input": x_input})}
    return {name: _all_hvps(q, u, x, terms=name == "plain", **hp, **opts) for name, (q, u, opts) in cases.items()}


def _plain_hvp(p, v, x, x_input, hp, output="sigmoid"):
    """The autodiff HVP of the plain model (from the one compiled program of :func:`_variant_hvps`)."""
    return _variant_hvps(p, v, x, x_input, **hp, output=output)["plain"][2]


def assert_trees_close(got, want, tol=TOL, what=""):
    gl, gd = jax.tree.flatten(got)
    wl, wd = jax.tree.flatten(want)
    assert gd == wd, (what, gd, wd)
    for i, (g, w) in enumerate(zip(gl, wl)):
        assert np.shape(g) == np.shape(w), (what, i)
        assert np.all(np.isfinite(np.asarray(g))), (what, i, "non-finite")
        err = max_rel_err(g, w)
        assert err <= tol, f"{what} leaf {i}: relative error {err:.2e} > {tol:.0e}"


def _largest(tree):
    return max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(tree))


# ------------------------------------------------------------------ HVP: manual vs autodiff
@pytest.mark.parametrize("output,saturated", [
    pytest.param("sigmoid", False, id="sigmoid-fast-path"), pytest.param("sigmoid", True, id="sigmoid-saturated"),
    pytest.param("linear", False, id="linear-fast-path"),
    pytest.param("linear", True, id="linear-saturated", marks=pytest.mark.slow),  # each branch and output runs above
])
def test_hvp_through_the_manual_gradient_equals_autodiff_for_every_variant(output, saturated):
    """Jitted; at saturation (a unit whose rho_hat underflows to 0, one with 1 - rho_hat ~ e^-40) the
    exact log-domain branch runs, and its HVP is finite and equal too (no 0 * inf from the
    discarded fast-path delta)."""
    p, v, x, x_input = _problem(output)
    if saturated:
        p = _saturated(p)
        rh = sae.cost_terms(p, x, output=output, **HP).rho_hat
        assert float(rh[0]) == 0.0 and float(1 - rh[2]) < 1e-16
        assert not bool(exact_on_fast_path(rh, jnp.zeros_like(rh)))
    for variant, (manual, manual_terms, autodiff) in _variant_hvps(p, v, x, x_input, **HP, output=output).items():
        assert _largest(autodiff) > 1e-3, variant  # not trivially zero
        assert_trees_close(manual, autodiff, what=f"{variant}: cost_and_grad")
        if manual_terms is not None:
            assert_trees_close(manual_terms, autodiff, what=f"{variant}: cost_terms_and_grad")


def test_hvp_through_the_manual_gradient_eager():
    """The issue's reproduction, op by op (no jit): jax.grad of <cost_and_grad(q, x)[1], v>."""
    p, v, x, x_input = _problem()
    assert_trees_close(_hvp_manual(p, v, x, **HP), _plain_hvp(p, v, x, x_input, HP), what="eager")


def test_hvp_with_one_sample():
    p, v, x, _ = _problem(m=1)
    manual, autodiff = jax.jit(lambda q: (_hvp_manual(q, v, x, **HP), _hvp_autodiff(q, v, x, **HP)))(p)
    assert_trees_close(manual, autodiff, what="m=1")


# ------------------------------------------------------------------ the Hessian vs finite differences
def _hessian_matrix(hess, p):
    """A nested (Params of Params) Hessian as a (d, d) matrix in ravel_pytree order."""
    rows = [jnp.concatenate([jnp.reshape(hess[i][j], (np.size(p[i]), np.size(p[j]))) for j in range(len(p))], axis=1)
            for i in range(len(p))]
    return jnp.concatenate(rows, axis=0)


def test_hessian_of_cost_equals_finite_differences_and_the_manual_hvp():
    """jax.hessian(sae.cost) against central differences of jax.grad(cost), Richardson-extrapolated
    (error O(h^4) + O(eps/h); tolerance 1e-8 relative: the differences' own error), and the
    manual HVP against that Hessian times v (1e-10)."""
    p, v, x, _ = _problem()
    theta, unravel = ravel_pytree(p)
    grad_flat = lambda t: ravel_pytree(jax.grad(sae.cost)(unravel(t), x, **HP))[0]  # noqa: E731
    eye = jnp.eye(theta.size, dtype=theta.dtype)

    @jax.jit
    def central(h):
        return jax.vmap(lambda e: (grad_flat(theta + h * e) - grad_flat(theta - h * e)) / (2 * h))(eye)

    h = 1e-3
    fd = ((4 * central(h / 2) - central(h)) / 3).T  # column k: dg/dtheta_k
    hess = jax.jit(lambda q: jax.hessian(sae.cost)(q, x, **HP))(p)
    Hm = _hessian_matrix(hess, p)
    err = max_rel_err(Hm, fd)
    assert err <= 1e-8, err
    np.testing.assert_allclose(Hm, Hm.T, atol=1e-14 * float(jnp.max(jnp.abs(Hm))))
    flat_v, unravel_v = ravel_pytree(v)
    manual = _variant_hvps(p, v, x, _problem()[3], **HP, output="sigmoid")["plain"][0]
    assert_trees_close(manual, unravel_v(Hm @ flat_v), what="manual HVP vs hessian @ v")


# ------------------------------------------------------------------ jvp
def test_jvp_through_cost_and_grad_equals_autodiff(output="sigmoid"):
    p, v, x, _ = _problem(output)

    @jax.jit
    def both(q, t):
        manual = jax.jvp(lambda r: sae.cost_and_grad(r, x, output=output, **HP), (q,), (t,))
        autodiff = jax.jvp(lambda r: jax.value_and_grad(sae.cost)(r, x, output=output, **HP), (q,), (t,))
        return manual, autodiff

    manual, autodiff = both(p, v)
    assert_trees_close(manual, autodiff, what="jvp")
    (_, g), (dJ, _) = autodiff
    assert abs(float(manual[1][0]) - float(_inner(g, v))) <= TOL * abs(float(dJ))  # dJ = <grad, v>


# ------------------------------------------------------------------ vmap over hyperparameters
GRID = dict(lam=jnp.array([1e-4, 1e-3, 3e-3]), beta=jnp.array([0.5, 3.0, 5.0]), rho=jnp.array([0.05, 0.1, 0.3]))


def _setting(k):
    return {name: GRID[name][k] for name in GRID}


def test_vmap_of_hvps_over_hyperparameters_equals_each_setting():
    p, v, x, x_input = _problem()
    got = jax.jit(jax.vmap(lambda a, b, r: _hvp_manual(p, v, x, lam=a, beta=b, rho=r)))(*GRID.values())
    for k in range(3):
        want = _plain_hvp(p, v, x, x_input, _setting(k))
        assert_trees_close(jax.tree.map(lambda a: a[k], got), want, what=f"setting {k}")


def test_hvp_of_a_vmapped_sum_equals_the_sum_of_hvps():
    """grad of sum_k <g_k(p), v>, the manual gradient vmapped over the settings inside the grad."""
    p, v, x, x_input = _problem()

    def summed(fn):
        return jax.grad(lambda q: jnp.sum(jax.vmap(lambda a, b, r: _inner(fn(q, x, lam=a, beta=b, rho=r)[1], v))(
            *GRID.values())))

    got = jax.jit(summed(sae.cost_and_grad))(p)
    want = jax.tree.map(lambda *a: sum(a), *(_plain_hvp(p, v, x, x_input, _setting(k)) for k in range(3)))
    assert_trees_close(got, want)


def test_vmap_of_cost_cost_terms_autodiff_and_jvp_equals_each_setting():
    p, v, x, _ = _problem()

    def each(lam, beta, rho):
        hp = dict(lam=lam, beta=beta, rho=rho)
        return (sae.cost(p, x, **hp), sae.cost_terms(p, x, **hp), sae.autodiff_cost_and_grad(p, x, **hp),
                jax.jvp(lambda q: sae.cost_terms_and_grad(q, x, **hp), (p,), (v,)))

    got = jax.jit(jax.vmap(each))(*GRID.values())
    one = jax.jit(each)
    for k in range(3):
        assert_trees_close(jax.tree.map(lambda a: a[k], got), one(**_setting(k)), tol=1e-12, what=f"setting {k}")


def test_hvp_vmapped_over_saturated_and_ordinary_members_equals_each():
    """Under vmap one member's saturation sends every member down the exact branch (one cond):
    each member's HVP is still its own, and finite."""
    p, v, x, x_input = _problem()
    ps = jax.tree.map(lambda a, b: jnp.stack([a, b, a]), p, _saturated(p))
    got = jax.jit(jax.vmap(lambda q: _hvp_manual(q, v, x, **HP)))(ps)
    for k in range(3):
        want = _plain_hvp(jax.tree.map(lambda a: a[k], ps), v, x, x_input, HP)
        assert_trees_close(jax.tree.map(lambda a: a[k], got), want, what=f"member {k}")


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


# ------------------------------------------------------------------ the shard_map path
def test_hvp_through_the_shard_map_gradient_equals_autodiff():
    """The explicit shard_map path (psum, and the exact branch's log-psum over devices) differentiates too."""
    from sae_jax.scale import batch_mesh, shard_batch, shard_map_cost_and_grad

    p, v, x, x_input = _problem()
    batch = shard_batch(np.asarray(x), batch_mesh())
    f = jax.jit(lambda q: jax.grad(lambda r: _inner(shard_map_cost_and_grad(r, batch, **HP)[1], v))(q))
    for q in (p, _saturated(p)):
        assert_trees_close(f(q), _plain_hvp(q, v, x, x_input, HP), what="shard_map")


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


def _first(out):
    return jax.tree.leaves(out)[0]  # the cost


@pytest.mark.parametrize("name", PUBLIC)
def test_public_functions_under_transformations_trace_to_the_bare_math(name):
    """Whatever checks values (sae_jax._src.checks.fused) must never change what a transformation sees:
    under grad, jvp, vmap, jit and hessian each public function's program is the internal math's."""
    p, v, x, x_input = _problem()
    opts = dict(l1=0.05, x_input=x_input)
    pub = lambda q, b=3.0: getattr(sae, name)(q, x, lam=1e-3, beta=b, rho=0.1, **opts)  # noqa: E731
    bare = lambda q, b=3.0: _bare(name, q, x, lam=1e-3, beta=b, rho=0.1, **opts)  # noqa: E731
    transforms = {
        "grad": lambda f: (jax.grad(lambda q: _scalar(f(q))), (p,)),
        "jvp": lambda f: (lambda q: jax.jvp(f, (q,), (v,)), (p,)),
        "vmap": lambda f: (jax.vmap(lambda b: f(p, b)), (GRID["beta"],)),
        "jit": lambda f: (jax.jit(lambda q: f(q)), (p,)),
        "hessian": lambda f: (jax.hessian(lambda q: _first(f(q))), (p,)),
    }
    for what, t in transforms.items():
        fp, args = t(pub)
        fb, _ = t(bare)
        assert str(jax.make_jaxpr(fp)(*args)) == str(jax.make_jaxpr(fb)(*args)), f"{name} under {what}"
