r"""The gradient for *symbolic* m, n, h: ``IndexedBase`` / ``Sum``, derived by sympy.

Notation (samples as rows, as in sae_jax; indices start at 0):

- :math:`x_{i,s}`: visible unit :math:`s` of sample :math:`i` (:math:`0 \le i < m`, :math:`0 \le s < n`);
- :math:`z_{i,j} = z^{(2)}_j(x^{(i)}) = \sum_s W_{1\,j,s} x_{i,s} + b_{1\,j}`, :math:`a_{i,j} = f(z_{i,j})`;
- :math:`z^{(3)}_{i,r} = \sum_j W_{2\,r,j} a_{i,j} + b_{2\,r}`, :math:`\hat x_{i,r} = g(z^{(3)}_{i,r})`
  with :math:`g = f` (sigmoid output) or :math:`g = \mathrm{id}` (linear output);
- :math:`\hat\rho_j = \frac1m \sum_i f(z_{i,j})`;
- :math:`J = \frac1m \sum_i \sum_r \tfrac12 (\hat x_{i,r} - x_{i,r})^2
  + \frac\lambda2 (\sum W_1^2 + \sum W_2^2) + \beta \sum_j \mathrm{KL}(\rho \Vert \hat\rho_j)`.

:math:`f` is an opaque function whose derivative is the opaque :math:`f'`
(:mod:`derivations.concrete` shows :math:`f' = f(1-f)` for the sigmoid).
Free indices: :math:`k` (a sample), :math:`p` (a hidden unit), :math:`q` (a visible unit),
assumed inside their ranges (the assumption ``deltasummation(..., no_piecewise=True)`` makes).

Each derivation: sympy differentiates the cost, the Kronecker deltas are summed
out (:func:`~derivations._sums.collapse_deltas`), the one substitution sympy cannot
find, :math:`\sum_i f(z_{i,p}) = m\hat\rho_p`, is made where (and only where) the sum is
that definition (:func:`~derivations._sums.substitute_sum`), and the result is
compared with the stated formula by :func:`~derivations._sums.is_zero`.
"""

from __future__ import annotations

import time
from functools import lru_cache

import sympy as sp

from . import _sums
from .steps import Derivation

__all__ = [
    "m", "n", "h", "i", "k", "j", "p", "q", "r", "s",
    "rho", "beta", "lam", "x", "z", "W1", "b1", "W2", "b2", "rhohat",
    "f", "fprime", "NAMES",
    "z2", "a2", "z3", "a3", "delta3", "sparsity_delta", "rho_hat_def",
    "cost_of_z", "cost_of_params", "sparsity_of_z",
    "derive", "sparsity_wrt_z", "cost_wrt_z", "cost_wrt_W1", "cost_wrt_b1",
    "tutorial_delta2", "tutorial_W1", "all_derivations", "abbreviate", "equal",
]

m, n, h = sp.symbols("m n h", integer=True, positive=True)
i, k, j, p, r, s, q = sp.symbols("i k j p r s q", integer=True)
rho, beta = sp.symbols("rho beta", positive=True)
lam = sp.Symbol("lambda", nonnegative=True)

x = sp.IndexedBase("x")
z = sp.IndexedBase("z")  # z[i, j]: hidden pre-activation of unit j on sample i, as a free variable
W1 = sp.IndexedBase("W1")
b1 = sp.IndexedBase("b1")
W2 = sp.IndexedBase("W2")
b2 = sp.IndexedBase("b2")
rhohat = sp.IndexedBase(sp.Symbol("rhohat"))  # prints as \hat{\rho}

#: Canonical bound-index names per range (see :func:`derivations._sums.canonical`).
NAMES = {m - 1: ("i", "i'"), h - 1: ("j", "j'"), n - 1: ("r", "s", "t")}


def _fprime_latex(self, printer):
    return r"f'\!\left(%s\right)" % printer._print(self.args[0])


#: :math:`f'`, opaque (a sympy function with no rule of its own).
fprime = type("f'", (sp.Function,), {"_latex": _fprime_latex, "__module__": __name__})


def _f_fdiff(self, argindex=1):
    return fprime(self.args[0])


#: :math:`f`, the hidden (and sigmoid-output) nonlinearity, opaque, with ``diff(f(u), u) = f'(u)``.
f = type("f", (sp.Function,), {"fdiff": _f_fdiff, "__module__": __name__})


def _check_output(output: str) -> None:
    if output not in ("sigmoid", "linear"):
        raise ValueError(f"output must be 'sigmoid' or 'linear', got {output!r}")


def g(u, output: str):
    """The output nonlinearity: ``f`` (sigmoid) or the identity (linear)."""
    _check_output(output)
    return f(u) if output == "sigmoid" else u


def gprime(u, output: str):
    _check_output(output)
    return fprime(u) if output == "sigmoid" else sp.Integer(1)


# --- the network, written with sums over symbolic ranges ------------------------------------


def z2(i_, j_):
    r""":math:`z_{i,j} = \sum_s W_{1\,j,s} x_{i,s} + b_{1\,j}`."""
    return sp.Sum(W1[j_, s] * x[i_, s], (s, 0, n - 1)) + b1[j_]


def a2(i_, j_, *, hidden=None):
    """:math:`f(z_{i,j})`; ``hidden=z`` uses the free variables ``z[i, j]`` instead of :func:`z2`."""
    return f(z2(i_, j_) if hidden is None else hidden[i_, j_])


def z3(i_, r_, *, hidden=None):
    r""":math:`z^{(3)}_{i,r} = \sum_j W_{2\,r,j} a_{i,j} + b_{2\,r}`."""
    return sp.Sum(W2[r_, j] * a2(i_, j, hidden=hidden), (j, 0, h - 1)) + b2[r_]


def a3(i_, r_, output, *, hidden=None):
    return g(z3(i_, r_, hidden=hidden), output)


def delta3(i_, r_, output, *, hidden=None):
    r"""The tutorial's output delta :math:`\delta^{(3)}_{i,r} = (\hat x_{i,r} - x_{i,r})\, g'(z^{(3)}_{i,r})` (no 1/m)."""
    return (a3(i_, r_, output, hidden=hidden) - x[i_, r_]) * gprime(z3(i_, r_, hidden=hidden), output)


def sparsity_delta(p_):
    r"""The tutorial's sparsity term :math:`\beta(-\rho/\hat\rho_p + (1-\rho)/(1-\hat\rho_p))` (no 1/m)."""
    return beta * (-rho / rhohat[p_] + (1 - rho) / (1 - rhohat[p_]))


def rho_hat_def(j_, *, hidden=None):
    r""":math:`\hat\rho_j = \frac1m \sum_i f(z_{i,j})`, as the sum (the definition the substitution checks against)."""
    return sp.Sum(a2(i, j_, hidden=hidden), (i, 0, m - 1)) / m


def _kl(rh):
    return rho * sp.log(rho / rh) + (1 - rho) * sp.log((1 - rho) / (1 - rh))


def sparsity_of_z():
    r""":math:`\beta \sum_j \mathrm{KL}(\rho \Vert \hat\rho_j)` as a function of the free ``z[i, j]``."""
    return beta * sp.Sum(_kl(rho_hat_def(j, hidden=z)), (j, 0, h - 1))


def _reconstruction(output, hidden=None):
    return sp.Sum(sp.Rational(1, 2) * (a3(i, r, output, hidden=hidden) - x[i, r]) ** 2, (r, 0, n - 1), (i, 0, m - 1)) / m


def cost_of_z(output):
    """Reconstruction + sparsity as a function of the free hidden pre-activations ``z[i, j]`` (no weight decay: it has no z)."""
    return _reconstruction(output, hidden=z) + sparsity_of_z()


def cost_of_params(output):
    """The full cost :math:`J(W_1, b_1, W_2, b_2)` with symbolic m, n, h."""
    weight_decay = lam / 2 * (
        sp.Sum(W1[j, s] ** 2, (s, 0, n - 1), (j, 0, h - 1)) + sp.Sum(W2[r, j] ** 2, (j, 0, h - 1), (r, 0, n - 1))
    )
    sparsity = beta * sp.Sum(_kl(rho_hat_def(j)), (j, 0, h - 1))
    return _reconstruction(output) + weight_decay + sparsity


# --- display-only abbreviations --------------------------------------------------------------

#: Display names: z3[i, r] for the output pre-activation (z[i, j] is the hidden one).
z3_name = sp.IndexedBase(sp.Symbol("z3"))
ABBREVIATIONS = "z[i,j] = Σ_s W1[j,s]·x[i,s] + b1[j],  z3[i,r] = Σ_j W2[r,j]·f(z[i,j]) + b2[r]"


def _indices_of(node, base, position):
    return {a.indices[position] for a in node.atoms(sp.Indexed) if a.base == base}


def abbreviate(e: sp.Basic) -> sp.Basic:
    """Rewrite every sub-expression that *is* :func:`z2` or :func:`z3` (after canonical renaming) as ``z[i, j]`` / ``z3[i, r]``.

    For display only: checks always use the full expressions.
    """

    def visit(node):
        if node.args and not isinstance(node, (sp.Indexed, sp.Symbol)):
            node = node.func(*[visit(a) for a in node.args])
        if isinstance(node, sp.Add) and len(node.args) == 2:
            for base, full, short in ((b1, z2, z), (b2, lambda u_, t_: z3(u_, t_, hidden=z), z3_name)):
                for t_ in {a.indices[0] for a in node.args if isinstance(a, sp.Indexed) and a.base == base}:
                    for u_ in _indices_of(node, x if base is b1 else z, 0):
                        if _sums.canonical(node, NAMES) == _sums.canonical(full(u_, t_), NAMES):
                            return short[u_, t_]
        return node

    return visit(e)


# --- the stated (tutorial) formulas ----------------------------------------------------------


def tutorial_delta2(k_, p_, output, *, hidden=None):
    r"""The tutorial's hidden delta :math:`\delta^{(2)}_{k,p} = \big(\sum_r W_{2\,r,p}\delta^{(3)}_{k,r} + \beta(\dots)\big) f'(z_{k,p})`."""
    zkp = z2(k_, p_) if hidden is None else hidden[k_, p_]
    back = sp.Sum(W2[r, p_] * delta3(k_, r, output, hidden=hidden), (r, 0, n - 1))
    return (back + sparsity_delta(p_)) * fprime(zkp)


def tutorial_W1(output):
    r""":math:`\frac1m \sum_i \delta^{(2)}_{i,p} x_{i,q} + \lambda W_{1\,p,q}` (stated; compared with sympy's derivative)."""
    return sp.Sum(tutorial_delta2(i, p, output) * x[i, q], (i, 0, m - 1)) / m + lam * W1[p, q]


def tutorial_b1(output):
    return sp.Sum(tutorial_delta2(i, p, output), (i, 0, m - 1)) / m


def equal(a, b) -> bool:
    """Exactly decide ``a == b`` for two expressions of this module (sums normalised; see :func:`derivations._sums.is_zero`)."""
    return _sums.is_zero(a - b, NAMES)


# --- derivations ----------------------------------------------------------------------------


def derive(d: Derivation, expr, wrt, lhs, *, hidden=None, rho_index=p):
    """Differentiate ``expr`` by ``wrt``, collapse the deltas, substitute :math:`\\sum_i f = m\\hat\\rho`; record each step.

    Returns the final expression (no Kronecker deltas, :math:`\\hat\\rho` by name).
    """
    raw = sp.diff(expr, wrt)
    d.step("sympy differentiates the cost (Kronecker deltas appear)", raw, "sympy", lhs)
    collapsed = _sums.collapse_deltas(raw)
    d.step(
        "sum out the Kronecker deltas",
        collapsed,
        "sympy",
        lhs,
        note="deltasummation(..., no_piecewise=True), indices assumed in range; sums split over +, index-free factors pulled out",
    )
    assert not collapsed.has(sp.KroneckerDelta), "a Kronecker delta survived the collapse"
    substituted, count = _sums.substitute_sum(
        collapsed,
        definition=lambda t: sp.Sum(a2(i, t, hidden=hidden), (i, 0, m - 1)),
        name=lambda t: m * rhohat[t],
        candidates=[rho_index],
        names=NAMES,
    )
    if count:
        d.step(
            f"substitute Σ_i f(z_(i,{rho_index})) = m·ρ̂_{rho_index}",
            substituted,
            "substitution",
            lhs,
            note=f"the definition of ρ̂; replaced {count} sum(s), each checked identical to the definition",
        )
        # any sum of bare f(...) terms left over would be a ρ̂ that the substitution did not recognise
        leftover = [S for S in substituted.atoms(sp.Sum) if isinstance(S.function, f)]
        d.check(
            f"every Σ_i f(z_(i,{rho_index})) became m·ρ̂_{rho_index}", not leftover, f"{count} replaced, {len(leftover)} left"
        )
    return substituted


def _compare(d: Derivation, claim: str, derived, stated) -> bool:
    ok = _sums.is_zero(derived - stated, NAMES)
    d.check(claim, ok, "derived − stated normalised and cancelled to 0" if ok else "derived − stated did not cancel")
    return ok


@lru_cache(maxsize=None)
def sparsity_wrt_z() -> Derivation:
    r""":math:`\partial(\beta\sum_j\mathrm{KL})/\partial z_{k,p} = \frac{\beta}{m}\big(-\frac{\rho}{\hat\rho_p} + \frac{1-\rho}{1-\hat\rho_p}\big) f'(z_{k,p})`."""
    t0 = time.perf_counter()
    d = Derivation("Sparsity term, per sample: ∂(β Σ_j KL(ρ‖ρ̂_j)) / ∂z_(k,p)")
    S = sparsity_of_z()
    d.step("the sparsity penalty as a function of every z_(i,j)", S, "definition", sp.Symbol("S"))
    lhs = sp.Derivative(sp.Symbol("S"), z[k, p])
    got = derive(d, S, z[k, p], lhs, hidden=z)
    simplified = sp.factor_terms(sp.together(got))
    d.step("combine (sympy: together, factor_terms)", simplified, "sympy", lhs)
    stated = beta / m * (-rho / rhohat[p] + (1 - rho) / (1 - rhohat[p])) * fprime(z[k, p])
    d.step("the form in question: (β/m)·(tutorial's sparsity term)·f'", stated, "stated", lhs)
    _compare(d, "∂(βΣKL)/∂z_(k,p) = (β/m)(−ρ/ρ̂_p + (1−ρ)/(1−ρ̂_p)) f'(z_(k,p)) for symbolic m", got, stated)
    ratio = sp.cancel(got / (sparsity_delta(p) * fprime(z[k, p])))
    d.step("ratio to the tutorial's per-sample sparsity term β(…)f'", ratio, "sympy")
    d.check("the tutorial's sparsity term is m × ∂(βΣKL)/∂z_(k,p) (ratio is 1/m)", ratio == 1 / m, f"ratio = {ratio}")
    d.seconds = time.perf_counter() - t0
    return d


@lru_cache(maxsize=None)
def cost_wrt_z(output: str = "sigmoid") -> Derivation:
    r""":math:`\partial J/\partial z_{k,p} = \frac1m \delta^{(2)}_{k,p}`: the tutorial's δ is m times the per-sample gradient."""
    t0 = time.perf_counter()
    d = Derivation(f"Whole cost, per sample: ∂J/∂z_(k,p) = δ⁽²⁾_(k,p) / m  [{output} output]", display=abbreviate, abbreviations=ABBREVIATIONS)
    J = cost_of_z(output)
    d.step("reconstruction + sparsity as a function of every z_(i,j)", J, "definition", sp.Symbol("J"))
    lhs = sp.Derivative(sp.Symbol("J"), z[k, p])
    got = derive(d, J, z[k, p], lhs, hidden=z)
    stated = tutorial_delta2(k, p, output, hidden=z) / m
    d.step("the tutorial's δ⁽²⁾_(k,p), divided by m", stated, "stated", lhs)
    _compare(d, "∂J/∂z_(k,p) = (1/m)·δ⁽²⁾_(k,p), reconstruction and sparsity parts alike", got, stated)
    d.seconds = time.perf_counter() - t0
    return d


@lru_cache(maxsize=None)
def cost_wrt_W1(output: str = "sigmoid") -> tuple[Derivation, sp.Expr]:
    r""":math:`\partial J/\partial W_{1\,p,q}` through both layers; returns ``(derivation, derived_expression)``."""
    t0 = time.perf_counter()
    d = Derivation(f"Weight gradient: ∂J/∂W1_(p,q) for symbolic m, n, h  [{output} output]", display=abbreviate, abbreviations=ABBREVIATIONS)
    J = cost_of_params(output)
    d.step("the cost", J, "definition", sp.Symbol("J"))
    lhs = sp.Derivative(sp.Symbol("J"), W1[p, q])
    got = derive(d, J, W1[p, q], lhs)
    stated = tutorial_W1(output)
    d.step("the tutorial: (1/m) Σ_i [ (W2ᵀδ³)_p + β(−ρ/ρ̂_p + (1−ρ)/(1−ρ̂_p)) ] f'(z_(i,p)) x_(i,q) + λ W1_(p,q)", stated, "stated", lhs)
    _compare(d, "∂J/∂W1 equals the tutorial's (1/m)Σ_i δ⁽²⁾_(i,p) x_(i,q) + λW1_(p,q) for symbolic m", got, stated)
    # The 1/m is the common factor of both data terms: m·(∂J/∂W1 − λW1) has no 1/m left.
    without_decay = _sums.normalize(got - lam * W1[p, q], NAMES)
    times_m = _sums.collect_sums(sp.expand(m * without_decay), NAMES)
    d.step("m·(∂J/∂W1 − λW1), terms grouped by sum: no 1/m is left in any term", times_m, "sympy")
    d.check(
        "1/m is the common factor: m·(∂J/∂W1 − λW1) = Σ_i δ⁽²⁾_(i,p) x_(i,q), free of 1/m",
        _sums.is_zero(times_m - sp.Sum(tutorial_delta2(i, p, output) * x[i, q], (i, 0, m - 1)), NAMES)
        and not _has_inverse_m(times_m),
    )
    d.seconds = time.perf_counter() - t0
    return d, got


def _has_inverse_m(e) -> bool:
    """True if any power m**(negative) occurs in ``e``."""
    return any(isinstance(a, sp.Pow) and a.base == m and a.exp.is_negative for a in sp.preorder_traversal(e))


@lru_cache(maxsize=None)
def cost_wrt_b1(output: str = "sigmoid") -> Derivation:
    r""":math:`\partial J/\partial b_{1\,p} = \frac1m\sum_i \delta^{(2)}_{i,p}`."""
    t0 = time.perf_counter()
    d = Derivation(f"Bias gradient: ∂J/∂b1_p for symbolic m, n, h  [{output} output]", display=abbreviate, abbreviations=ABBREVIATIONS)
    J = cost_of_params(output)
    lhs = sp.Derivative(sp.Symbol("J"), b1[p])
    got = derive(d, J, b1[p], lhs)
    stated = tutorial_b1(output)
    d.step("the tutorial: (1/m) Σ_i δ⁽²⁾_(i,p)", stated, "stated", lhs)
    _compare(d, "∂J/∂b1_p = (1/m) Σ_i δ⁽²⁾_(i,p) for symbolic m", got, stated)
    d.seconds = time.perf_counter() - t0
    return d


@lru_cache(maxsize=None)
def all_derivations(outputs: tuple[str, ...] = ("sigmoid", "linear")) -> tuple[Derivation, ...]:
    """Every symbolic-m derivation (cached: they are pure)."""
    out = [sparsity_wrt_z()]
    for o in outputs:
        out.append(cost_wrt_z(o))
        out.append(cost_wrt_W1(o)[0])
        out.append(cost_wrt_b1(o))
    return tuple(out)
