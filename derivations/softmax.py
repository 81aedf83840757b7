r"""Softmax regression: sympy derives :math:`\nabla_\theta J` at concrete sizes and checks the tutorial's form and sae_jax.

At sizes ``m`` (samples), ``n`` (features), ``k`` (classes), every entry of :math:`\theta`
``(k, n)`` and :math:`X` ``(m, n)`` is its own symbol and the labels :math:`y` are concrete
(every labelling of the ``m`` samples is checked). With :math:`Z = X\theta^\top`,

.. math::
    J = -\frac1m \sum_i \log \frac{E(Z_{i,y_i})}{\sum_l E(Z_{il})} + \frac\lambda2 \sum_{j,q}\theta_{jq}^2,
    \qquad \text{tutorial: } \nabla_\theta J = -\frac1m (1\{y\} - P)^\top X + \lambda\theta,
    \quad P_{ij} = \frac{E(Z_{ij})}{\sum_l E(Z_{il})},

where :math:`E` is the exponential kept as an opaque function whose only rule is
:math:`E' = E` (:func:`exp_derivative` shows ``exp`` obeys it). Kept opaque because sympy
merges ``exp(a)*exp(b)`` into ``exp(a+b)``, which would hide the applications from the
replacement below. sympy's ``diff`` of :math:`J` minus the tutorial's formula is decided
exactly as in :mod:`derivations.concrete`: each :math:`E(\cdot)` becomes a fresh symbol (an
identity in independent symbols holds for every value, in particular :math:`e^{z}`), then
:func:`~derivations.concrete.rational_is_zero`. The same is checked for the form sae_jax evaluates,
:math:`J = \frac1m\sum_i(\log\sum_l E(Z_{il}) - Z_{i,y_i}) + \dots` (``logsumexp``), and
:func:`agreement` holds the lambdified sympy gradient, :func:`sae_jax._src.softmax.softmax_cost_and_grad`
and ``jax.grad`` to 1e-12 in float64. :func:`overparameterised` shows UFLDL's remark that
subtracting one vector :math:`\psi` from every :math:`\theta_j` leaves :math:`P` unchanged.

Examples:
  >>> from derivations import softmax
  >>> softmax.check_identity(2, 2, 2, (0, 1))          # m = 2, n = 2, k = 2, labels (0, 1)
  True
  >>> mod = softmax.model(1, 2, 2, (1,))
  >>> softmax.is_identity(mod, softmax.sympy_gradient(mod)[0, 0] - softmax.tutorial_gradient(mod)[1, 0])
  False
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from .concrete import rational_is_zero
from .numeric import jitted_grad, relative_error
from .steps import Derivation

__all__ = [
    "E",
    "Model",
    "model",
    "sympy_gradient",
    "tutorial_gradient",
    "is_identity",
    "check_identity",
    "identities",
    "exp_derivative",
    "overparameterised",
    "lambdify_gradient",
    "three_way",
    "agreement",
    "TOL",
]

#: float64 agreement required between any two of the three gradients.
TOL = 1e-12


def _E_fdiff(self, argindex=1):
    return E(self.args[0])


#: The exponential as an opaque function with the single rule ``diff(E(u), u) = E(u)``.
#: (Named ``Exp`` when printed: sympy's printers reserve the name ``E`` for Euler's number.)
E = type("Exp", (sp.Function,), {"fdiff": _E_fdiff, "__module__": __name__})


@lru_cache(maxsize=None)
def exp_derivative() -> Derivation:
    """``exp' = exp``, and the opaque :data:`E` differentiates by that rule."""
    t0 = time.perf_counter()
    d = Derivation("The exponential's derivative: E' = E")
    u = sp.Symbol("u", real=True)
    d.check("d/du exp(u) = exp(u)", sp.diff(sp.exp(u), u) - sp.exp(u) == 0)
    d.step("the opaque E used at concrete sizes", sp.diff(E(u), u), "sympy", sp.Derivative(E(u), u))
    d.check("the opaque E has E' = E", sp.diff(E(u), u) == E(u))
    d.seconds = time.perf_counter() - t0
    return d


@dataclass(frozen=True, eq=False)
class Model:
    """The softmax cost at one concrete size and labelling, every entry symbolic."""

    m: int
    n: int
    k: int
    y: tuple
    theta: sp.Matrix  # (k, n)
    X: sp.Matrix  # (m, n)
    lam: sp.Symbol
    Z: sp.Matrix  # (m, k) = X theta^T
    P: sp.Matrix  # (m, k)
    J: sp.Expr  # the textbook form, -1/m sum log P[i, y_i] + lam/2 ||theta||^2
    J_logsumexp: sp.Expr  # 1/m sum (log sum_l E(Z_il) - Z_{i,y_i}) + lam/2 ||theta||^2: what sae_jax evaluates

    def one_hot(self) -> sp.Matrix:
        return sp.Matrix(self.m, self.k, lambda i, j: 1 if self.y[i] == j else 0)

    def fresh_symbols(self) -> dict:
        """``{E(Z[i, j]): e_i_j}``: the replacement used by :func:`is_identity`."""
        return {E(self.Z[i, j]): sp.Symbol(f"e_{i}_{j}", positive=True) for i in range(self.m) for j in range(self.k)}


def _check_sizes(m, n, k, y):
    for name, v in (("m", m), ("n", n), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if len(y) != m or not all(isinstance(c, int) and 0 <= c < k for c in y):
        raise ValueError(f"y must be {m} class indices in [0, {k}), got {y!r}")


@lru_cache(maxsize=None)
def model(m: int, n: int, k: int, y: tuple) -> Model:
    """Build the symbolic cost at sizes ``m, n, k`` with labels ``y`` (cached)."""
    y = tuple(y)
    _check_sizes(m, n, k, y)
    theta = sp.Matrix(k, n, lambda j, q: sp.Symbol(f"theta_{j}_{q}"))
    X = sp.Matrix(m, n, lambda i, q: sp.Symbol(f"x_{i}_{q}"))
    lam = sp.Symbol("lambda", nonnegative=True)
    Z = X * theta.T
    S = [sum(E(Z[i, l]) for l in range(k)) for i in range(m)]
    P = sp.Matrix(m, k, lambda i, j: E(Z[i, j]) / S[i])
    decay = lam / 2 * sum(t**2 for t in theta)
    J = -sum(sp.log(P[i, y[i]]) for i in range(m)) / m + decay
    J_lse = sum(sp.log(S[i]) - Z[i, y[i]] for i in range(m)) / m + decay
    return Model(m, n, k, y, theta, X, lam, Z, P, J, J_lse)


def sympy_gradient(mod: Model, *, form: str = "textbook") -> sp.Matrix:
    """sympy's ``diff`` of the cost (``form="textbook"`` or ``"logsumexp"``) entry by entry, ``(k, n)``."""
    J = {"textbook": mod.J, "logsumexp": mod.J_logsumexp}[form]
    return mod.theta.applyfunc(lambda t: sp.diff(J, t))


def tutorial_gradient(mod: Model) -> sp.Matrix:
    r"""The tutorial's :math:`-\frac1m(1\{y\} - P)^\top X + \lambda\theta` (stated, not derived), ``(k, n)``."""
    return -(mod.one_hot() - mod.P).T * mod.X / mod.m + mod.lam * mod.theta


def is_identity(mod: Model, expr) -> bool:
    """Exactly decide ``expr == 0`` (every :math:`E(\\cdot)` a fresh symbol, then :func:`derivations.concrete.rational_is_zero`)."""
    e = sp.sympify(expr).xreplace(mod.fresh_symbols())
    if e.has(E):
        raise AssertionError("an E(...) application was not replaced by a fresh symbol")
    return rational_is_zero(e)


def check_identity(m: int, n: int, k: int, y: tuple, *, form: str = "textbook") -> bool:
    """sympy's gradient == the tutorial's, every entry, exactly, at one size and labelling (computed once each)."""
    return _check_identity(m, n, k, tuple(y), form)


@lru_cache(maxsize=None)
def _check_identity(m: int, n: int, k: int, y: tuple, form: str) -> bool:
    mod = model(m, n, k, y)
    ours, tut = sympy_gradient(mod, form=form), tutorial_gradient(mod)
    return all(is_identity(mod, ours[i] - tut[i]) for i in range(len(ours)))


@lru_cache(maxsize=None)
def identities(ms=(1, 2, 3), *, n: int = 3, k: int = 3, forms=("textbook", "logsumexp"), all_labellings_up_to: int = 2) -> Derivation:
    """The exact identity for every ``m`` in ``ms`` and both forms of the cost: every labelling (``k**m``)
    for ``m <= all_labellings_up_to``, else the labellings :math:`y_i = i \bmod k` and all zeros (the
    textbook form takes ~1.5 s per labelling at m = 3)."""
    t0 = time.perf_counter()
    d = Derivation(f"Softmax regression: exact identities at concrete sizes (n = {n}, k = {k}; θ, X, λ symbolic)")
    mod = model(1, 2, 2, (0,))  # the steps are shown at n = k = 2 (short); the checks run at n, k
    d.step("the cost at m = 1, n = k = 2, y = (0) (Exp opaque, Exp' = Exp)", mod.J, "definition", sp.Symbol("J"))
    d.step("sympy's ∂J/∂θ at m = 1", sympy_gradient(mod), "sympy", sp.Symbol("∇_θ J"))
    d.step("the tutorial's −(1/m)(1{y} − P)ᵀX + λθ at m = 1", tutorial_gradient(mod), "stated", sp.Symbol("∇_θ J"))
    for form in forms:
        for m in ms:
            t1 = time.perf_counter()
            if m <= all_labellings_up_to:
                labellings = list(itertools.product(range(k), repeat=m))
            else:
                labellings = [tuple(i % k for i in range(m)), (0,) * m]
            bad = [y for y in labellings if not check_identity(m, n, k, y, form=form)]
            d.check(
                f"m = {m}, {form} cost: sympy's ∂J/∂θ == −(1/m)(1{{y}} − P)ᵀX + λθ, exactly, for {len(labellings)} labellings",
                not bad,
                (f"failed for {bad[:3]}" if bad else "difference 0") + f"; {time.perf_counter() - t1:.1f} s",
            )
    d.seconds = time.perf_counter() - t0
    return d


@lru_cache(maxsize=None)
def overparameterised(n: int = 2, k: int = 3) -> Derivation:
    r"""UFLDL: replacing every :math:`\theta_j` by :math:`\theta_j - \psi` leaves :math:`P(y = j \mid x)` unchanged (real ``exp``)."""
    t0 = time.perf_counter()
    d = Derivation(f"Softmax is over-parameterised: P(θ − 1ψᵀ) = P(θ) (n = {n}, k = {k})")
    theta = sp.Matrix(k, n, lambda j, q: sp.Symbol(f"theta_{j}_{q}", real=True))
    psi = sp.Matrix(n, 1, lambda q, _: sp.Symbol(f"psi_{q}", real=True))
    x = sp.Matrix(n, 1, lambda q, _: sp.Symbol(f"x_{q}", real=True))

    def P(th):
        z = th * x
        return [sp.exp(z[j]) / sum(sp.exp(z[l]) for l in range(k)) for j in range(k)]

    shifted = P(theta - sp.ones(k, 1) * psi.T)
    d.step("P(y = 0 | x) with every θ_j − ψ", shifted[0], "definition", sp.Symbol("P_0"))
    diffs = [sp.simplify(a - b) for a, b in zip(shifted, P(theta))]
    d.step("P(θ − 1ψᵀ) − P(θ), simplified", sp.Matrix(diffs), "sympy")
    d.check("every class probability is unchanged by the shift ψ", all(v == 0 for v in diffs))
    d.seconds = time.perf_counter() - t0
    return d


# --- numbers ------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def lambdify_gradient(m: int, n: int, k: int, y: tuple):
    """sympy's ∂J/∂θ (textbook form) as a numpy function ``(theta (k, n), x (m, n), lam) -> (k, n)``."""
    mod = model(m, n, k, tuple(y))
    grad = sympy_gradient(mod)
    flat = sp.lambdify([*mod.theta, *mod.X, mod.lam], list(grad), modules=[{"Exp": np.exp}, "numpy"], cse=True)

    def gradient(theta, x, lam):
        return np.reshape(np.asarray(flat(*np.ravel(theta), *np.ravel(x), lam), np.float64), (k, n))

    return gradient


def three_way(m: int, n: int, k: int, *, seed: int = 0) -> dict:
    """Relative errors between the lambdified sympy gradient, ``softmax_cost_and_grad`` and ``jax.grad`` (float64)."""
    import jax
    import jax.numpy as jnp

    from sae_jax.softmax import SoftmaxParams, softmax_cost, softmax_cost_and_grad

    rng = np.random.default_rng(seed)
    theta, x = rng.normal(size=(k, n)), rng.normal(size=(m, n))
    y = tuple(int(v) for v in rng.integers(0, k, m))
    lam = float(rng.uniform(1e-4, 1e-1))
    sym = lambdify_gradient(m, n, k, y)(theta, x, lam)
    with jax.enable_x64(True):
        p = SoftmaxParams(jnp.asarray(theta, jnp.float64))
        xj, yj = jnp.asarray(x, jnp.float64), jnp.asarray(y)
        manual = np.asarray(softmax_cost_and_grad(p, xj, yj, lam=lam)[1].theta)
        auto = np.asarray(jitted_grad(softmax_cost)(p, xj, yj, lam=lam).theta)
        if manual.dtype != np.float64 or auto.dtype != np.float64:
            raise AssertionError("sae_jax did not compute in float64")
    return {
        "sympy-manual": relative_error(sym, manual),
        "sympy-jax.grad": relative_error(sym, auto),
        "manual-jax.grad": relative_error(manual, auto),
    }


#: Default numeric cases ``(m, n, k)``.
CASES = ((1, 3, 3), (3, 3, 3), (2, 4, 2))


def agreement(cases=CASES, *, seed: int = 0) -> Derivation:
    """The three-way check as a :class:`~derivations.steps.Derivation`."""
    t0 = time.perf_counter()
    d = Derivation("Softmax regression: lambdified sympy gradient, sae_jax._src.softmax.softmax_cost_and_grad, jax.grad (float64)")
    for m, n, k in cases:
        errs = three_way(m, n, k, seed=seed)
        d.check(
            f"m = {m}, n = {n}, k = {k}: all three agree to ≤ {TOL:g} relative",
            max(errs.values()) <= TOL,
            ", ".join(f"{name} {v:.1e}" for name, v in errs.items()),
        )
    d.seconds = time.perf_counter() - t0
    return d
