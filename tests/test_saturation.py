"""The sparsity term at saturation against a 50-digit mpmath transcription of the UFLDL formulas.

Dead units (every z << 0: rho_hat from 1e-6 down to far below the smallest float, where the
sigmoid itself underflows) and always-on units (1 - rho_hat down to 1e-12 in float64, 1e-8 in
float32, and beyond), mixed with ordinary units. The reference shares no code with sae_jax: it
is the published cost and backprop evaluated in mpmath at 50 digits, with f(-z) evaluated as
such and nothing clipped. Both sae-jax gradients (the manual backprop and jax.grad of the cost)
and the chunked, sharded and EMA paths are held to it: float64 <= 1e-9 and float32 <= 1e-3
relative to each array's largest entry (the issue's tolerances; measured errors are far smaller,
see the printed figures with -s).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sae_jax as sae
from sae_jax._src import chunked, sharded
from sae_jax._src.cost import exact_on_fast_path
from sae_jax._src.params import init_radius
from sae_jax._src.minibatch import EmaBatch, autodiff_ema_cost_terms_and_grad, ema_cost_terms_and_grad

mpmath.mp.dps = 50

HP = dict(lam=1e-4, beta=3.0, rho=0.01)
TOL = {jnp.dtype(jnp.float64): 1e-9, jnp.dtype(jnp.float32): 1e-3}
M, N, H = 10, 6, 4


# ------------------------------------------------------------------ the reference (mpmath)
def _mp(a):
    return [[mpmath.mpf(float(v)) for v in row] for row in np.atleast_2d(np.asarray(a, np.float64))]


def _sigma(z):
    return 1 / (1 + mpmath.exp(-z))


def mp_reference(params, x, *, lam, beta, rho, output="sigmoid", rho_prev=None, ema_decay=None):
    """J, (dW1, db1, dW2, db2), rho_hat by sparseAutoencoderCost.m's formulas at 50 digits.

    Samples as rows. f'(z) = f(z) f(-z), 1 - rho_hat = mean f(-z): both as such, never 1 - a.
    With ``rho_prev``/``ema_decay``: the penalty at alpha*rho_prev + (1-alpha)*rho_hat, its
    delta times (1 - alpha) (sae_jax._src.minibatch's objective).
    """
    W1, W2 = _mp(params.W1), _mp(params.W2)
    b1, b2 = _mp(params.b1)[0], _mp(params.b2)[0]
    X = _mp(x)
    m, n, h = len(X), len(X[0]), len(W1)
    lam, beta, rho = (mpmath.mpf(float(v)) for v in (lam, beta, rho))
    z2 = [[sum(W1[j][q] * X[i][q] for q in range(n)) + b1[j] for j in range(h)] for i in range(m)]
    a2 = [[_sigma(z) for z in row] for row in z2]
    c2 = [[_sigma(-z) for z in row] for row in z2]  # 1 - a2, evaluated as such
    z3 = [[sum(W2[k][j] * a2[i][j] for j in range(h)) + b2[k] for k in range(n)] for i in range(m)]
    if output == "sigmoid":
        a3 = [[_sigma(z) for z in row] for row in z3]
        d3 = [[(a3[i][k] - X[i][k]) * a3[i][k] * _sigma(-z3[i][k]) for k in range(n)] for i in range(m)]
    else:
        a3 = z3
        d3 = [[a3[i][k] - X[i][k] for k in range(n)] for i in range(m)]
    rh = [sum(a2[i][j] for i in range(m)) / m for j in range(h)]
    rhc = [sum(c2[i][j] for i in range(m)) / m for j in range(h)]
    scale = mpmath.mpf(1)
    if rho_prev is not None:
        alpha = mpmath.mpf(float(ema_decay))
        prev = [mpmath.mpf(float(v)) for v in np.asarray(rho_prev)]
        rh = [alpha * prev[j] + (1 - alpha) * rh[j] for j in range(h)]
        rhc = [alpha * (1 - prev[j]) + (1 - alpha) * rhc[j] for j in range(h)]
        scale = 1 - alpha
    recon = sum(sum((a3[i][k] - X[i][k]) ** 2 for k in range(n)) for i in range(m)) / (2 * m)
    wd = lam / 2 * (sum(v**2 for row in W1 for v in row) + sum(v**2 for row in W2 for v in row))
    kl = sum(rho * mpmath.log(rho / rh[j]) + (1 - rho) * mpmath.log((1 - rho) / rhc[j]) for j in range(h))
    J = recon + wd + beta * kl
    sd = [scale * beta * (-rho / rh[j] + (1 - rho) / rhc[j]) for j in range(h)]
    d2 = [
        [(sum(W2[k][j] * d3[i][k] for k in range(n)) + sd[j]) * a2[i][j] * c2[i][j] for j in range(h)]
        for i in range(m)
    ]
    gW1 = [[sum(d2[i][j] * X[i][q] for i in range(m)) / m + lam * W1[j][q] for q in range(n)] for j in range(h)]
    gb1 = [sum(d2[i][j] for i in range(m)) / m for j in range(h)]
    gW2 = [[sum(d3[i][k] * a2[i][j] for i in range(m)) / m + lam * W2[k][j] for j in range(h)] for k in range(n)]
    gb2 = [sum(d3[i][k] for i in range(m)) / m for k in range(n)]
    return J, (gW1, gb1, gW2, gb2), rh, rhc


def rel_err(got, want) -> float:
    """max|got - want| / max|want|, computed in mpmath (want may be far below float range)."""
    g = np.asarray(got, np.float64).reshape(-1)
    w = [v for row in (want if isinstance(want[0], list) else [want]) for v in row]
    scale = max(abs(v) for v in w)
    diff = max(abs(mpmath.mpf(float(a)) - b) for a, b in zip(g, w))
    return float(diff / scale) if scale else float(diff)


def assert_matches_reference(J, grads, ref, dtype, what):
    J_ref, g_ref = ref[:2]
    tol = TOL[jnp.dtype(dtype)]
    assert np.isfinite(float(J)), what
    errs = [rel_err(J, [J_ref])] + [rel_err(g, r) for g, r in zip(grads, g_ref)]
    for name, e in zip(("J", "W1", "b1", "W2", "b2"), errs):
        assert e <= tol, f"{what}: {name} relative error {e:.2e} > {tol:.0e}"
    return max(errs)


#: jax.grad of the cost, jitted: one compilation per dtype and output instead of op-by-op dispatch
#: (and its compilations) for every case; test_backprop holds the jitted and eager forms equal to 1e-15.
_autodiff = jax.jit(jax.value_and_grad(sae.cost), static_argnames=("output",))


# ------------------------------------------------------------------ saturated problems
def saturated_problem(dtype, *, dead_log10, on_log10, output="sigmoid", seed=0):
    """Unit 0 dead with rho_hat ~ 10**dead_log10, unit 2 always on with 1 - rho_hat ~ 10**on_log10,
    units 1 and 3 ordinary. Built in float64 and rounded to ``dtype``."""
    rng = np.random.default_rng(seed)
    r = init_radius(N, H)
    W1 = rng.uniform(-r, r, (H, N))
    b1 = rng.uniform(-0.5, 0.5, H)
    W2 = rng.uniform(-r, r, (N, H))
    b2 = rng.uniform(-0.5, 0.5, N)
    x = rng.uniform(0.1, 0.9, (M, N)) if output == "sigmoid" else rng.normal(size=(M, N))
    w = x @ W1.T
    # mean_i exp(w_i + b) = target  =>  b = log(target) - log(mean_i exp(w_i))  (exp(z) ~ f(z) there)
    ln10 = np.log(10.0)
    b1[0] = dead_log10 * ln10 - np.log(np.mean(np.exp(w[:, 0] - w[:, 0].max()))) - w[:, 0].max()
    b1[2] = -(on_log10 * ln10 - np.log(np.mean(np.exp(-w[:, 2] + w[:, 2].min()))) + w[:, 2].min())
    p = sae.Params(*(jnp.asarray(a, dtype) for a in (W1, b1, W2, b2)))
    return p, jnp.asarray(x, dtype)


F64_CASES = [(-6, -6), (-17, -9), (-40, -12), (-80, -12), (-200, -15), (-330, -20), (-1000, -400)]
F32_CASES = [(-6, -4), (-20, -6), (-37, -8), (-44, -8), (-60, -12), (-400, -100)]
CASES = [(jnp.float64, d, o) for d, o in F64_CASES] + [(jnp.float32, d, o) for d, o in F32_CASES]


def _ids(case):
    dtype, d, o = case
    return f"{jnp.dtype(dtype).name}-dead1e{d}-on1e{o}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_manual_and_autodiff_equal_the_mpmath_reference(case, output):
    dtype, dead, on = case
    p, x = saturated_problem(dtype, dead_log10=dead, on_log10=on, output=output)
    ref = mp_reference(p, x, **HP, output=output)
    # the configuration is what it says: rho_hat of unit 0 and 1 - rho_hat of unit 2
    assert abs(float(mpmath.log10(ref[2][0])) - dead) < 1.0
    assert abs(float(mpmath.log10(ref[3][2])) - on) < 1.0
    J, g = sae.cost_and_grad(p, x, **HP, output=output)
    assert_matches_reference(J, g, ref, dtype, "manual")
    J_ad, g_ad = _autodiff(p, x, **HP, output=output)
    assert_matches_reference(J_ad, g_ad, ref, dtype, "jax.grad")
    # the dead unit keeps its restoring gradient: dJ/db1_0 ~ -beta*rho (the defect)
    assert float(g.b1[0]) == pytest.approx(-HP["beta"] * HP["rho"], rel=0.05)
    # the reported rho_hat is the exact one, rounded (to 0 or a subnormal below the normal range)
    rh0, want, tiny = float(sae.cost_terms(p, x, **HP, output=output).rho_hat[0]), float(ref[2][0]), float(jnp.finfo(dtype).tiny)
    assert rh0 == pytest.approx(want, rel=TOL[jnp.dtype(dtype)]) if want >= tiny else 0 <= rh0 < tiny


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_ordinary_units_take_the_fast_path_and_equal_the_reference(dtype):
    p, x = saturated_problem(dtype, dead_log10=-2, on_log10=-1)
    rh = sae.rho_hat(sae.encode(p, x))
    assert bool(exact_on_fast_path(rh, sae.sparsity_delta(rh, rho=0.01, beta=3.0)))
    ref = mp_reference(p, x, **HP)
    J, g = sae.cost_and_grad(p, x, **HP)
    err = assert_matches_reference(J, g, ref, dtype, "fast path")
    assert err <= (1e-13 if dtype == jnp.float64 else 1e-5)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_chunked_and_sharded_equal_the_reference_at_saturation(dtype):
    dead, on = (-330, -14) if dtype == jnp.float64 else (-60, -8)
    p, x = saturated_problem(dtype, dead_log10=dead, on_log10=on)
    ref = mp_reference(p, x, **HP)
    terms, g = chunked.chunked_cost_terms_and_grad(p, np.asarray(x), chunk_size=3, **HP)
    assert_matches_reference(terms.cost, g, ref, dtype, "chunked")
    t1 = chunked.chunked_cost_terms(p, np.asarray(x), chunk_size=4, **HP)
    assert_matches_reference(t1.cost, g, ref, dtype, "chunked value")
    batch = sharded.shard_batch(np.asarray(x), sharded.batch_mesh())  # 10 rows over 8 devices: padded
    for fn in (sharded.shard_map_cost_and_grad, sharded.sharded_cost_and_grad):
        J, g = fn(p, batch, **HP)
        assert_matches_reference(J, g, ref, dtype, fn.__name__)


EMA_JIT = {fn: jax.jit(fn) for fn in (ema_cost_terms_and_grad, autodiff_ema_cost_terms_and_grad)}


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("prev", ["dead", "ordinary"])
def test_ema_paths_equal_the_reference_at_saturation(dtype, prev):
    dead, on = (-200, -12) if dtype == jnp.float64 else (-50, -8)
    p, x = saturated_problem(dtype, dead_log10=dead, on_log10=on)
    rho_prev = np.array([0.0, 0.02, 1.0, 0.03]) if prev == "dead" else np.array([1e-3, 0.02, 0.9, 0.03])
    batch = EmaBatch(x, jnp.asarray(rho_prev, dtype))
    ref = mp_reference(p, x, **HP, rho_prev=rho_prev, ema_decay=0.9)
    for fn in (ema_cost_terms_and_grad, autodiff_ema_cost_terms_and_grad):
        # jitted, as the trainer calls them (values unchecked by design); eager would compile ~90 ops
        terms, g = EMA_JIT[fn](p, batch, **HP, ema_decay=0.9)
        assert_matches_reference(terms.cost, g, ref, dtype, fn.__name__)


# ------------------------------------------------------------------ property: finite everywhere
@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    weight_scale=st.floats(0.0, 100.0),
    bias=st.floats(-1e4, 1e4),
    seed=st.integers(0, 3),
    dtype=st.sampled_from([jnp.float32, jnp.float64]),
    output=st.sampled_from(["sigmoid", "linear"]),
)
def test_cost_and_gradients_are_finite_for_every_finite_input(weight_scale, bias, seed, dtype, output):
    rng = np.random.default_rng(seed)
    r = init_radius(N, H) * weight_scale
    p = sae.Params(
        jnp.asarray(rng.uniform(-r, r, (H, N)), dtype),
        jnp.asarray(bias + rng.uniform(-r, r, H), dtype),
        jnp.asarray(rng.uniform(-r, r, (N, H)), dtype),
        jnp.asarray(rng.uniform(-r, r, N), dtype),
    )
    x = rng.uniform(0.0, 1.0, (M, N)) if output == "sigmoid" else 10 * rng.normal(size=(M, N))
    x = jnp.asarray(x, dtype)
    J, g = sae.cost_and_grad(p, x, **HP, output=output)
    J_ad, g_ad = _autodiff(p, x, **HP, output=output)
    for leaf in [J, J_ad, *g, *g_ad]:
        assert np.all(np.isfinite(np.asarray(leaf)))


# ------------------------------------------------------------------ training revives a dead unit
def _lbfgs_rho_hat(p, x, steps):
    hp = HP
    opt = optax.lbfgs(memory_size=20)

    def value_fn(q):
        return sae.cost(q, x, **hp)

    def step(carry, _):
        q, s = carry
        J, g = sae.cost_and_grad(q, x, **hp)  # the manual gradient (traced: the bare backprop)
        with jax.numpy_dtype_promotion("standard"):  # optax's own indices mix int32/int64 under x64
            u, s = opt.update(g, s, q, value=J, grad=g, value_fn=value_fn)
        return (optax.apply_updates(q, u), s), None

    (q, _), _ = jax.lax.scan(step, (p, opt.init(p)), None, length=steps)
    return sae.cost_terms(q, x, **hp).rho_hat


def test_lbfgs_brings_a_dead_unit_back_toward_rho():
    """float64, unit 0 initialised dead (bias -40: rho_hat ~ 1e-18, below float64's eps; the
    same happens in float32 from bias ~ -16).

    With the old clipped term its sparsity gradient was ~1e-21 and it stayed dead; the exact term
    pulls with dJ/db1 ~ -beta*rho and L-BFGS brings rho_hat up to the order of rho.
    """
    rng = np.random.default_rng(1)
    r = init_radius(N, H)
    p = sae.Params(
        jnp.asarray(rng.uniform(-r, r, (H, N))),
        jnp.asarray(np.array([-40.0, 0.0, 0.0, 0.0])),
        jnp.asarray(rng.uniform(-r, r, (N, H))),
        jnp.zeros(N),
    )
    x = jnp.asarray(rng.uniform(0.1, 0.9, (200, N)))
    rh0 = float(sae.cost_terms(p, x, **HP).rho_hat[0])
    assert rh0 < 1e-16
    rh = _lbfgs_rho_hat(p, x, 40)
    assert 1e-3 < float(rh[0]) < 0.1, float(rh[0])


# ------------------------------------------------------------------ vmap: one cond, not both branches
def test_vmap_mixing_saturated_and_ordinary_members_equals_a_loop():
    p, x = saturated_problem(jnp.float64, dead_log10=-2, on_log10=-1)
    shifts = jnp.array([0.0, -1000.0, 0.0])  # member 1 has every unit dead (exact path)

    def manual(s):
        return sae.cost_and_grad(p._replace(b1=p.b1 + s), x, **HP)

    def autodiff(s):
        return jax.value_and_grad(sae.cost)(p._replace(b1=p.b1 + s), x, **HP)

    for fn in (manual, autodiff):
        batched = jax.jit(jax.vmap(fn))(shifts)
        for k, s in enumerate(shifts):
            J, g = fn(s)
            np.testing.assert_allclose(batched[0][k], J, rtol=1e-12)
            for a, b in zip(batched[1], g):
                np.testing.assert_allclose(a[k], b, rtol=1e-11, atol=1e-14 * float(jnp.max(jnp.abs(b))))
    # the manual path stays a single cond under vmap (no select over both branches)
    text = str(jax.make_jaxpr(jax.vmap(manual))(shifts))
    assert "cond[" in text
