r"""Exact identities at concrete sizes: every entry of every array is its own symbol.

For given ``n`` (visible), ``h`` (hidden), ``m`` (samples) and output layer, the
model is written out entry by entry (samples as rows, as in sae_jax):

.. math::
    Z^{(2)} = X W_1^\top + \mathbf 1 b_1^\top,\ A^{(2)} = f(Z^{(2)}),\quad
    Z^{(3)} = A^{(2)} W_2^\top + \mathbf 1 b_2^\top,\ \hat X = g(Z^{(3)}),

with :math:`\rho, \beta, \lambda` symbolic and the sigmoid kept as an opaque
function :math:`f` whose only rule is :math:`f' = f(1 - f)` (:func:`sigmoid_derivative`
shows that rule holds for :math:`f(u) = 1/(1+e^{-u})`). sympy's ``diff`` of the
cost is compared with the tutorial's formulas

.. math::
    \delta^{(3)} = (\hat X - X) \odot g'(Z^{(3)}), \quad
    \delta^{(2)} = \big(\delta^{(3)} W_2 + \mathbf 1 s^\top\big) \odot A^{(2)} \odot (1 - A^{(2)}),
    \quad s_j = \beta\Big(-\frac{\rho}{\hat\rho_j} + \frac{1-\rho}{1-\hat\rho_j}\Big),

    \nabla_{W_1} J = \tfrac1m \delta^{(2)\top} X + \lambda W_1,\
    \nabla_{b_1} J = \tfrac1m \delta^{(2)\top} \mathbf 1,\
    \nabla_{W_2} J = \tfrac1m \delta^{(3)\top} A^{(2)} + \lambda W_2,\
    \nabla_{b_2} J = \tfrac1m \delta^{(3)\top} \mathbf 1.

"Equal" means the difference is the zero rational function: each application
:math:`f(\cdot)` is replaced by a fresh symbol (an identity in independent
symbols holds for every value they take, in particular :math:`f(z)`), then
:func:`rational_is_zero` brings the difference over one denominator in the polynomial ring of
its symbols and asks whether the numerator is the zero polynomial. This is exact, and fast.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp
from sympy.polys.domains import QQ

from .steps import Derivation

__all__ = [
    "f",
    "Model",
    "model",
    "sympy_gradient",
    "tutorial_gradient",
    "variant_gradient",
    "sparsity_part",
    "rational_is_zero",
    "is_identity",
    "check_identity",
    "identities",
    "sigmoid_derivative",
    "ARRAYS",
]

ARRAYS = ("W1", "b1", "W2", "b2")


def _f_fdiff(self, argindex=1):
    u = self.args[0]
    return f(u) * (1 - f(u))


#: The sigmoid as an opaque function with the single rule ``diff(f(u), u) = f(u)*(1 - f(u))``.
f = type("f", (sp.Function,), {"fdiff": _f_fdiff, "__module__": __name__})


@lru_cache(maxsize=None)
def sigmoid_derivative() -> Derivation:
    r"""Show :math:`\frac{d}{du}\frac{1}{1+e^{-u}} = f(u)(1-f(u))` for the real sigmoid, and that :data:`f` obeys it."""
    t0 = time.perf_counter()
    d = Derivation("The sigmoid's derivative: f' = f(1 − f)")
    u = sp.Symbol("u", real=True)
    sigma = 1 / (1 + sp.exp(-u))
    d.step("the logistic sigmoid", sigma, "definition", sp.Function("sigma")(u))
    ds = sp.diff(sigma, u)
    d.step("sympy differentiates it", ds, "sympy", sp.Derivative(sp.Function("sigma")(u), u))
    diff = sp.simplify(ds - sigma * (1 - sigma))
    d.step("σ' − σ(1 − σ), simplified", diff, "sympy")
    d.check("σ'(u) = σ(u)(1 − σ(u)) for the logistic sigmoid", diff == 0, "simplify(σ' − σ(1−σ)) = 0")
    rule = sp.diff(f(u), u)
    d.step("the opaque f used at concrete sizes differentiates by that rule", rule, "sympy", sp.Derivative(f(u), u))
    d.check("the opaque f has f' = f(1 − f)", sp.expand(rule - f(u) * (1 - f(u))) == 0)
    d.seconds = time.perf_counter() - t0
    return d


@dataclass(frozen=True, eq=False)
class Model:
    """The cost at one concrete size, every entry symbolic."""

    n: int
    h: int
    m: int
    output: str
    W1: sp.Matrix  # (h, n)
    b1: sp.Matrix  # (h, 1)
    W2: sp.Matrix  # (n, h)
    b2: sp.Matrix  # (n, 1)
    X: sp.Matrix  # (m, n), samples as rows
    rho: sp.Symbol
    beta: sp.Symbol
    lam: sp.Symbol
    Z2: sp.Matrix  # (m, h)
    A2: sp.Matrix
    Z3: sp.Matrix  # (m, n)
    A3: sp.Matrix
    rho_hat: sp.Matrix  # (1, h)
    J: sp.Expr

    @property
    def params(self) -> dict[str, sp.Matrix]:
        return {"W1": self.W1, "b1": self.b1, "W2": self.W2, "b2": self.b2}

    def fresh_symbols(self) -> dict:
        """``{f(Z3[i,r]): t_ir}`` then ``{f(Z2[i,j]): s_ij}``: the replacement used by :func:`is_identity`."""
        t = {self.A3[i, r]: sp.Symbol(f"t_{i}_{r}") for i in range(self.m) for r in range(self.n)} if self.output == "sigmoid" else {}
        s = {self.A2[i, j]: sp.Symbol(f"s_{i}_{j}") for i in range(self.m) for j in range(self.h)}
        return t, s


def _check_sizes(n, h, m, output):
    for name, v in (("n", n), ("h", h), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if output not in ("sigmoid", "linear"):
        raise ValueError(f"output must be 'sigmoid' or 'linear', got {output!r}")


@lru_cache(maxsize=None)
def model(n: int, h: int, m: int, output: str = "sigmoid") -> Model:
    """Build the symbolic cost :math:`J` at sizes ``n, h, m`` (cached)."""
    _check_sizes(n, h, m, output)
    W1 = sp.Matrix(h, n, lambda j, s: sp.Symbol(f"W1_{j}_{s}"))
    b1 = sp.Matrix(h, 1, lambda j, _: sp.Symbol(f"b1_{j}"))
    W2 = sp.Matrix(n, h, lambda r, j: sp.Symbol(f"W2_{r}_{j}"))
    b2 = sp.Matrix(n, 1, lambda r, _: sp.Symbol(f"b2_{r}"))
    X = sp.Matrix(m, n, lambda i, s: sp.Symbol(f"x_{i}_{s}"))
    rho, beta = sp.symbols("rho beta", positive=True)
    lam = sp.Symbol("lambda", nonnegative=True)
    Z2 = X * W1.T + sp.ones(m, 1) * b1.T
    A2 = Z2.applyfunc(f)
    Z3 = A2 * W2.T + sp.ones(m, 1) * b2.T
    A3 = Z3.applyfunc(f) if output == "sigmoid" else Z3
    rho_hat = sp.ones(1, m) * A2 / m
    kl = lambda rh: rho * sp.log(rho / rh) + (1 - rho) * sp.log((1 - rho) / (1 - rh))  # noqa: E731
    E = A3 - X
    J = (
        sp.Rational(1, 2) * sum(e**2 for e in E) / m
        + lam / 2 * (sum(w**2 for w in W1) + sum(w**2 for w in W2))
        + beta * sum(kl(rh) for rh in rho_hat)
    )
    return Model(n, h, m, output, W1, b1, W2, b2, X, rho, beta, lam, Z2, A2, Z3, A3, rho_hat, J)


@lru_cache(maxsize=None)
def sympy_gradient(mod: Model) -> dict[str, sp.Matrix]:
    """sympy's ``diff`` of the cost, entry by entry: ``{"W1": (h, n), "b1": (h, 1), "W2": (n, h), "b2": (n, 1)}``."""
    return {name: P.applyfunc(lambda w: sp.diff(mod.J, w)) for name, P in mod.params.items()}


def _deltas(mod: Model, sparsity_scale):
    """``(delta3, delta2_backprop, delta2_sparsity)``; the tutorial's ``delta2`` is the sum of the last two."""
    m = mod.m
    if mod.output == "sigmoid":
        gprime = mod.A3.applyfunc(lambda a: a * (1 - a))  # the tutorial's a3 (1 - a3)
    else:
        gprime = sp.ones(m, mod.n)
    delta3 = (mod.A3 - mod.X).multiply_elementwise(gprime)
    s = mod.rho_hat.applyfunc(lambda rh: sparsity_scale * mod.beta * (-mod.rho / rh + (1 - mod.rho) / (1 - rh)))
    fprime = mod.A2.applyfunc(lambda a: a * (1 - a))  # the tutorial's a2 (1 - a2)
    back = (delta3 * mod.W2).multiply_elementwise(fprime)
    sparse = (sp.ones(m, 1) * s).multiply_elementwise(fprime)
    return delta3, back, sparse


def _grads_from_deltas(mod: Model, delta3, delta2) -> dict[str, sp.Matrix]:
    m, one = mod.m, sp.ones(mod.m, 1)
    return {
        "W1": delta2.T * mod.X / m + mod.lam * mod.W1,
        "b1": delta2.T * one / m,
        "W2": delta3.T * mod.A2 / m + mod.lam * mod.W2,
        "b2": delta3.T * one / m,
    }


def tutorial_gradient(mod: Model) -> dict[str, sp.Matrix]:
    """The tutorial's backprop formulas (stated, not derived), same shapes as :func:`sympy_gradient`."""
    delta3, back, sparse = _deltas(mod, sp.Integer(1))
    return _grads_from_deltas(mod, delta3, back + sparse)


def variant_gradient(mod: Model) -> dict[str, sp.Matrix]:
    """The questioner's variant: the sparsity term inside δ⁽²⁾ divided by m, *and* the outer 1/m kept."""
    delta3, back, sparse = _deltas(mod, sp.Rational(1, mod.m))
    return _grads_from_deltas(mod, delta3, back + sparse)


def sparsity_part(mod: Model) -> dict[str, sp.Matrix]:
    r"""The tutorial gradient's sparsity part: :math:`\frac1m ((\mathbf 1 s^\top) \odot f')^\top X` (W1) and its column sums (b1)."""
    _, _, sparse = _deltas(mod, sp.Integer(1))
    return {"W1": sparse.T * mod.X / mod.m, "b1": sparse.T * sp.ones(mod.m, 1) / mod.m}


class _NotRational(Exception):
    """The expression has a part that is not a rational function of its symbols (``log``, a float, ...)."""


def _fraction(e: sp.Expr, gens: dict) -> tuple:
    """``(p, q)`` in the sparse polynomial ring over QQ with ``e == p / q`` exactly, built from ``e``'s tree.

    Sums combine over the least common multiple of the denominators, products multiply, integer
    powers raise (a negative power swaps p and q). No expansion of sympy expressions and no gcd of
    numerators: the ring's arithmetic does the work.
    """
    if e.is_Symbol:
        return gens[e], gens["1"]
    if e.is_Rational:
        one = gens["1"]
        return one * QQ(int(e.p), int(e.q)), one
    if e.is_Add:
        by_denominator: dict = {}  # terms over the same denominator are summed first
        for a in e.args:
            pa, qa = _fraction(a, gens)
            by_denominator[qa] = by_denominator.get(qa, gens["0"]) + pa
        p, q = gens["0"], gens["1"]
        for qa, pa in by_denominator.items():
            if qa == q:
                p = p + pa
            else:
                lcm = q.lcm(qa)
                p, q = p * lcm.exquo(q) + pa * lcm.exquo(qa), lcm
        return p, q
    if e.is_Mul:
        p, q = gens["1"], gens["1"]
        for a in e.args:
            pa, qa = _fraction(a, gens)
            p, q = p * pa, q * qa
        return p, q
    if e.is_Pow and e.exp.is_Integer:
        pb, qb = _fraction(e.base, gens)
        k = int(e.exp)
        return (pb**k, qb**k) if k >= 0 else (qb ** (-k), pb ** (-k))
    raise _NotRational(e)


def rational_is_zero(expr: sp.Expr) -> bool:
    """Exactly decide whether ``expr``, a rational function of symbols (no function applications), is 0.

    ``expr`` is written as one fraction p/q in the polynomial ring over the rationals in all its
    symbols (sums over the lcm of their denominators, products and integer powers term by term, see
    :func:`_fraction`), q a product of its (nonzero) denominators, so expr == 0 exactly when the
    numerator p is the zero polynomial. The same verdict as ``cancel(expr) == 0``, without expanding
    sympy expressions or cancel's gcd work (~50x faster on the stacked model's gradients than
    ``together`` + ``Poly``). Anything that is not a rational function of symbols falls back to ``cancel``.
    """
    e = sp.sympify(expr)
    if e == 0:
        return True
    symbols = sorted(e.free_symbols, key=sp.default_sort_key)
    if not symbols:
        return sp.cancel(e) == 0
    ring, *gens = sp.polys.rings.ring(symbols, QQ)
    try:
        p, _ = _fraction(e, {**dict(zip(symbols, gens)), "0": ring.zero, "1": ring.one})
    except _NotRational:
        return sp.cancel(e) == 0
    return p == 0


def is_identity(mod: Model, expr: sp.Expr) -> bool:
    """Exactly decide ``expr == 0`` (``expr`` built from ``mod``'s symbols), as described in the module docstring."""
    t, s = mod.fresh_symbols()
    e = sp.sympify(expr).xreplace(t).xreplace(s)
    if e.has(f):
        raise AssertionError("an f(...) application was not replaced by a fresh symbol")
    return rational_is_zero(e)


def check_identity(n: int, h: int, m: int, output: str = "sigmoid") -> dict[str, bool]:
    """``{array: sympy's diff == tutorial formula (exactly, every entry)}`` at one size (computed once per size)."""
    return dict(_check_identity(n, h, m, output))


@lru_cache(maxsize=None)
def _check_identity(n: int, h: int, m: int, output: str) -> tuple:
    mod = model(n, h, m, output)
    ours, tut = sympy_gradient(mod), tutorial_gradient(mod)
    return tuple((a, all(is_identity(mod, ours[a][k] - tut[a][k]) for k in range(len(ours[a])))) for a in ARRAYS)


@lru_cache(maxsize=None)
def identities(ms=range(1, 6), *, n: int = 2, h: int = 2, outputs=("sigmoid", "linear")) -> Derivation:
    """The exact identity sympy-diff == tutorial for every ``m`` in ``ms`` and both output layers."""
    t0 = time.perf_counter()
    d = Derivation(f"Exact identities at concrete sizes (n = {n}, h = {h}; every entry symbolic; ρ, β, λ symbolic)")
    mod = model(n, h, 1, "sigmoid")
    d.step("the cost at m = 1, sigmoid output (f opaque, f' = f(1−f))", mod.J, "definition", sp.Symbol("J"))
    tut = tutorial_gradient(mod)
    d.step("the tutorial's ∂J/∂b1 at m = 1", tut["b1"], "stated", sp.Symbol("∇_b1 J"))
    d.step("sympy's ∂J/∂b1 at m = 1", sympy_gradient(mod)["b1"], "sympy", sp.Symbol("∇_b1 J"))
    for output in outputs:
        for m in ms:
            t1 = time.perf_counter()
            res = check_identity(n, h, m, output)
            d.check(
                f"m = {m}, {output} output: sympy's ∂J/∂W1, ∂J/∂b1, ∂J/∂W2, ∂J/∂b2 == the tutorial's, exactly",
                all(res.values()),
                ", ".join(f"{a}: {'0' if ok else '≠ 0'}" for a, ok in res.items()) + f"; {time.perf_counter() - t1:.1f} s",
            )
    d.seconds = time.perf_counter() - t0
    return d
