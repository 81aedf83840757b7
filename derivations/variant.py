r"""The questioner's variant, refuted: 1/m inside δ⁽²⁾ *and* the outer 1/m.

The variant reasons that :math:`\partial\hat\rho_j/\partial a^{(2)}_j(x^{(i)}) = 1/m`, so it puts
:math:`\frac{\beta}{m}(-\frac{\rho}{\hat\rho_j} + \frac{1-\rho}{1-\hat\rho_j})` into each
sample's hidden delta, and still averages :math:`\frac1m\sum_i \delta^{(2)(i)} x^{(i)\top}`.
That counts the same :math:`1/m` twice: its sparsity part of :math:`\partial J/\partial W_1`
(and :math:`\partial J/\partial b_1`) is :math:`m` times too small.

- :func:`symbolic`: for symbolic m, sympy's derived sparsity gradient divided
  by the variant's is exactly :math:`m`, and derived − variant
  :math:`= (1 - \frac1m)\cdot` (sparsity part), which vanishes only at m = 1.
- :func:`concrete_sizes`: the same, exactly, at concrete sizes (all entries symbolic).
- :func:`numeric`: in float64 with sae_jax's building blocks, the variant's
  sparsity part is :math:`1/m` of the correct one, and a finite-difference
  gradient check of :func:`sae_jax.cost` passes the tutorial's gradient and
  fails the variant's.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import sympy as sp

from . import _sums, concrete
from . import symbolic_m as S
from .steps import Derivation

__all__ = ["variant_delta2", "variant_W1", "symbolic", "concrete_sizes", "variant_grad", "directional_fd", "numeric", "FD_TOL"]

#: A finite-difference check "passes" below this relative error (five-point stencil, float64).
FD_TOL = 1e-7


def variant_delta2(k_, p_, output):
    r"""The variant's hidden delta :math:`\big(\sum_r W_{2\,r,p}\delta^{(3)}_{k,r} + \frac{\beta}{m}(\dots)\big) f'(z_{k,p})`."""
    back = sp.Sum(S.W2[S.r, p_] * S.delta3(k_, S.r, output), (S.r, 0, S.n - 1))
    return (back + S.sparsity_delta(p_) / S.m) * S.fprime(S.z2(k_, p_))


def variant_W1(output):
    r"""The variant's :math:`\frac1m \sum_i \delta^{(2)}_{\text{variant}\,i,p} x_{i,q} + \lambda W_{1\,p,q}`."""
    return sp.Sum(variant_delta2(S.i, S.p, output) * S.x[S.i, S.q], (S.i, 0, S.m - 1)) / S.m + S.lam * S.W1[S.p, S.q]


@functools.lru_cache(maxsize=None)
def symbolic(output: str = "sigmoid") -> Derivation:
    """For symbolic m: derived sparsity gradient / variant's sparsity gradient = m, exactly."""
    t0 = time.perf_counter()
    d = Derivation(
        f"The variant (1/m inside δ and the outer 1/m), symbolic m  [{output} output]",
        display=S.abbreviate,
        abbreviations=S.ABBREVIATIONS,
    )
    p, q, m = S.p, S.q, S.m
    lhs = sp.Derivative(sp.Symbol("J"), S.W1[p, q])
    variant = variant_W1(output)
    d.step("the variant's weight gradient", variant, "stated", lhs)
    # sympy's derivative of the sparsity term alone
    sparsity = S.beta * sp.Sum(S._kl(S.rho_hat_def(S.j)), (S.j, 0, S.h - 1))
    lhs_s = sp.Derivative(sp.Symbol("S"), S.W1[p, q])
    d.step("the sparsity term β Σ_j KL(ρ‖ρ̂_j)", sparsity, "definition", sp.Symbol("S"))
    derived_s = S.derive(d, sparsity, S.W1[p, q], lhs_s)
    variant_s = sp.Sum(S.sparsity_delta(p) / m * S.fprime(S.z2(S.i, p)) * S.x[S.i, q], (S.i, 0, m - 1)) / m
    d.step("the variant's sparsity part: (1/m) Σ_i (β/m)(…) f'(z_(i,p)) x_(i,q)", variant_s, "stated", lhs_s)
    a = _sums.normalize(derived_s, S.NAMES)
    b = _sums.normalize(variant_s, S.NAMES)
    rep = {s_: sp.Dummy(f"S{k}") for k, s_ in enumerate(_sums.sums_in(a + b))}
    ratio = sp.cancel(a.xreplace(rep) / b.xreplace(rep))
    d.step("sympy's sparsity gradient ÷ the variant's", ratio, "sympy")
    d.check("the variant's sparsity gradient is m times too small (ratio = m, symbolic m)", ratio == m, f"ratio = {ratio}")
    _, derived = S.cost_wrt_W1(output)
    diff = _sums.normalize(derived - variant, S.NAMES)
    d.step("sympy's full ∂J/∂W1 − the variant's", diff, "sympy", note="normalised; only sparsity terms remain")
    d.check(
        "derived − variant = (1 − 1/m)·(sparsity part): the reconstruction and λ parts agree, the variant is right only at m = 1",
        _sums.is_zero(derived - variant - (1 - 1 / m) * derived_s, S.NAMES),
    )
    d.check("the variant is not the derivative for symbolic m", not _sums.is_zero(derived - variant, S.NAMES))
    d.seconds = time.perf_counter() - t0
    return d


@functools.lru_cache(maxsize=None)
def concrete_sizes(ms=(1, 2, 3), *, n: int = 2, h: int = 2, output: str = "sigmoid") -> Derivation:
    """At concrete sizes (every entry symbolic): sympy's ∂J/∂W1, ∂J/∂b1 − variant = (1 − 1/m)·sparsity part, ≠ 0 for m ≥ 2."""
    t0 = time.perf_counter()
    d = Derivation(f"The variant at concrete sizes (n = {n}, h = {h}, {output} output), exact")
    for m in ms:
        mod = concrete.model(n, h, m, output)
        ours, var, sp_part = concrete.sympy_gradient(mod), concrete.variant_gradient(mod), concrete.sparsity_part(mod)
        factor = 1 - sp.Rational(1, m)
        exact = all(
            concrete.is_identity(mod, ours[a][e] - var[a][e] - factor * sp_part[a][e]) for a in ("W1", "b1") for e in range(len(ours[a]))
        )
        same = all(concrete.is_identity(mod, ours[a][e] - var[a][e]) for a in concrete.ARRAYS for e in range(len(ours[a])))
        d.check(
            f"m = {m}: sympy's gradient − variant = (1 − 1/m)·sparsity part = {factor}·sparsity part, exactly",
            exact,
        )
        d.check(
            f"m = {m}: the variant {'equals' if m == 1 else 'differs from'} sympy's gradient",
            same == (m == 1),
            "at m = 1 the two 1/m coincide" if m == 1 else "",
        )
    d.seconds = time.perf_counter() - t0
    return d


# --- numerics ------------------------------------------------------------------------------------


def variant_grad(params, x, *, lam, beta, rho, output="sigmoid"):
    """The variant's gradient, assembled from sae_jax's own backprop core: the δ-sums with the
    sparsity delta divided by m (the variant's extra 1/m), then the one "sums ÷ m + λW"."""
    from sae_jax._src.backprop import delta_sums, hidden_sum, terms_and_grads_from_sums
    from sae_jax import sparsity_delta

    m = x.shape[0]
    rh = hidden_sum(params, x) / m
    s = sparsity_delta(rh, rho=rho, beta=beta) / m  # the variant's extra 1/m
    rec_sum, sums = delta_sums(params, x, None, s, output=output)
    _, grads = terms_and_grads_from_sums(params, rec_sum, sums, m, lam=lam, sparsity=0.0, rho_hat=rh)
    return grads  # (only the gradient is the variant's; the terms are not used)


@functools.lru_cache(maxsize=None)
def _jitted():
    """``(jit(variant_grad), jit(sae_jax.cost))``, built once so repeated calls reuse the compilations."""
    import jax

    import sae_jax

    return (
        jax.jit(variant_grad, static_argnames="output"),
        jax.jit(lambda p, x, *, lam, beta, rho, output: sae_jax.cost(p, x, lam=lam, beta=beta, rho=rho, output=output),
                static_argnames="output"),
    )


def directional_fd(cost, params, v, *, step: float = 1e-3) -> float:
    """Five-point central difference of ``cost`` along the pytree direction ``v`` (float64).

    The points ``params + t v`` are formed in NumPy (the same IEEE products and sums as eager
    ``jax.numpy``, without compiling an op per array shape)."""
    import jax
    import jax.numpy as jnp

    p_np, v_np = (jax.tree.map(np.asarray, tree) for tree in (params, v))

    def at(t):
        return float(cost(jax.tree.map(lambda a, b: jnp.asarray(a + t * b), p_np, v_np)))

    e = step
    return (-at(2 * e) + 8 * at(e) - 8 * at(-e) + at(-2 * e)) / (12 * e)


def numeric(*, n: int = 8, h: int = 5, m: int = 20, output: str = "sigmoid", seed: int = 0, directions: int = 2) -> Derivation:
    """float64: the variant's sparsity part is 1/m of the correct one, and finite differences reject the variant."""
    import jax
    import jax.numpy as jnp

    import sae_jax

    from .numeric import random_problem, relative_error

    t0 = time.perf_counter()
    d = Derivation(f"The variant, numerically (float64, n = {n}, h = {h}, m = {m}, {output} output)")
    raw, x_np, hp = random_problem(n, h, m, seed=seed)
    hp = dict(hp, beta=3.0, rho=0.05)  # a sparsity term that matters
    rng = np.random.default_rng(seed + 1)
    with jax.enable_x64(True):
        params = sae_jax.Params(*(jnp.asarray(a, jnp.float64) for a in raw))
        x = jnp.asarray(x_np, jnp.float64)
        _, good = sae_jax.cost_and_grad(params, x, output=output, **hp)
        _, good0 = sae_jax.cost_and_grad(params, x, output=output, **dict(hp, beta=0.0))
        vg, jcost = _jitted()
        bad = vg(params, x, output=output, **hp)
        bad0 = vg(params, x, output=output, **dict(hp, beta=0.0))
        good, good0, bad, bad0 = (sae_jax.Params(*map(np.asarray, g)) for g in (good, good0, bad, bad0))
        ratios = []
        for name in ("W1", "b1"):
            g_s = getattr(good, name) - getattr(good0, name)
            b_s = getattr(bad, name) - getattr(bad0, name)
            ratios.append(relative_error(b_s * m, g_s))
        d.check(
            f"variant's sparsity part × m = correct sparsity part (W1, b1), i.e. m = {m} times too small",
            max(ratios) <= 1e-12,
            f"relative error {max(ratios):.1e}",
        )
        cost = functools.partial(jcost, x=x, output=output, **hp)
        err_good, err_bad = [], []
        for _ in range(directions):
            for name in ("W1", "b1"):
                v = sae_jax.Params(*(np.zeros(a.shape) for a in params))
                a = getattr(params, name)
                vec = rng.normal(size=a.shape)
                v = v._replace(**{name: vec / np.linalg.norm(vec)})
                fd = directional_fd(cost, params, v)
                dot = lambda g: float(sum(np.vdot(gi, vi) for gi, vi in zip(g, v)))  # noqa: E731
                err_good.append(abs(dot(good) - fd) / max(abs(fd), 1e-300))
                err_bad.append(abs(dot(bad) - fd) / max(abs(fd), 1e-300))
    d.check(
        f"finite differences accept the tutorial's gradient (≤ {FD_TOL:g} relative along {len(err_good)} random directions)",
        max(err_good) <= FD_TOL,
        f"max {max(err_good):.1e}",
    )
    d.check(
        "finite differences reject the variant (error far above the tolerance)",
        min(err_bad) > 1e3 * FD_TOL,
        f"min {min(err_bad):.1e}",
    )
    d.seconds = time.perf_counter() - t0
    return d
