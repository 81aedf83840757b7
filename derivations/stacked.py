r"""Stacked autoencoders: sympy derives the fine-tuning gradient at concrete sizes and checks the tutorial's deltas and sae_jax.

Two sigmoid layers and a softmax (UFLDL's ``stackedAECost``), every entry symbolic, the labels
concrete, samples as rows:

.. math::
    A^{(2)} = f(X W^{(1)\top} + \mathbf 1 b^{(1)\top}),\quad A^{(3)} = f(A^{(2)} W^{(2)\top} + \mathbf 1 b^{(2)\top}),\quad
    Z = A^{(3)}\theta^\top,\quad P_{ij} = \frac{E(Z_{ij})}{\sum_l E(Z_{il})},

    J = -\frac1m\sum_i \log P_{i, y_i} + \frac\lambda2\lVert\theta\rVert^2 \quad (\text{weight decay on } \theta \text{ only}),

with :math:`f` the opaque sigmoid of :mod:`derivations.concrete` (:math:`f' = f(1-f)`) and
:math:`E` the opaque exponential of :mod:`derivations.softmax` (:math:`E' = E`). The tutorial's
fine-tuning backprop, stated and compared with sympy's ``diff`` entry by entry:

.. math::
    \delta^{(3)} = -\big((1\{y\} - P)\theta\big) \odot A^{(3)} \odot (1 - A^{(3)}),\quad
    \delta^{(2)} = \big(\delta^{(3)} W^{(2)}\big) \odot A^{(2)} \odot (1 - A^{(2)}),

    \nabla_{W^{(2)}} = \tfrac1m \delta^{(3)\top} A^{(2)},\ \nabla_{b^{(2)}} = \tfrac1m \delta^{(3)\top}\mathbf 1,\
    \nabla_{W^{(1)}} = \tfrac1m \delta^{(2)\top} X,\ \nabla_{b^{(1)}} = \tfrac1m \delta^{(2)\top}\mathbf 1,\
    \nabla_\theta = -\tfrac1m (1\{y\} - P)^\top A^{(3)} + \lambda\theta.

"Equal" is decided exactly, as in :mod:`derivations.concrete`: every application :math:`E(\cdot)`,
:math:`f(z^{(3)})`, :math:`f(z^{(2)})` becomes a fresh symbol, then
:func:`~derivations.concrete.rational_is_zero`.
:func:`agreement` holds the lambdified sympy gradient, :func:`sae_jax._src.stacked.stacked_cost_and_grad`
and ``jax.grad`` to 1e-12 in float64. :func:`negative_controls` shows the check is not vacuous
(weight decay on the encoders, a missing :math:`f'`, the delta without its minus sign: each caught).

Examples:
  >>> from derivations import stacked
  >>> mod = stacked.model(1, 1, 1, 1, 2, (0,))          # (m, n, h1, h2, k), labels
  >>> stacked.check_identity(mod)
  {'W1': True, 'b1': True, 'W2': True, 'b2': True, 'theta': True}
  >>> stacked.check_identity(mod, mistake="decay_on_encoders")["W1"]
  False
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from .concrete import f, rational_is_zero
from .softmax import E
from .numeric import jitted_grad, relative_error
from .steps import Derivation

__all__ = [
    "ARRAYS",
    "Model",
    "model",
    "sympy_gradient",
    "tutorial_gradient",
    "is_identity",
    "check_identity",
    "identities",
    "negative_controls",
    "lambdify_gradient",
    "three_way",
    "agreement",
    "TOL",
]

ARRAYS = ("W1", "b1", "W2", "b2", "theta")
TOL = 1e-12


@dataclass(frozen=True, eq=False)
class Model:
    """The fine-tuning cost at one concrete size and labelling, every entry symbolic."""

    m: int
    n: int
    h1: int
    h2: int
    k: int
    y: tuple
    W1: sp.Matrix  # (h1, n)
    b1: sp.Matrix  # (h1, 1)
    W2: sp.Matrix  # (h2, h1)
    b2: sp.Matrix  # (h2, 1)
    theta: sp.Matrix  # (k, h2)
    X: sp.Matrix  # (m, n)
    lam: sp.Symbol
    A2: sp.Matrix  # (m, h1)
    A3: sp.Matrix  # (m, h2)
    Z: sp.Matrix  # (m, k)
    P: sp.Matrix  # (m, k)
    J: sp.Expr

    @property
    def params(self) -> dict:
        return {"W1": self.W1, "b1": self.b1, "W2": self.W2, "b2": self.b2, "theta": self.theta}

    def one_hot(self) -> sp.Matrix:
        return sp.Matrix(self.m, self.k, lambda i, j: 1 if self.y[i] == j else 0)

    def fresh_symbols(self) -> dict:
        """``E(Z)``, ``f(z3)``, ``f(z2)`` applications -> fresh symbols (outermost first, one pass)."""
        rep = {E(self.Z[i, j]): sp.Symbol(f"e_{i}_{j}", positive=True) for i in range(self.m) for j in range(self.k)}
        rep.update({self.A3[i, j]: sp.Symbol(f"s3_{i}_{j}") for i in range(self.m) for j in range(self.h2)})
        rep.update({self.A2[i, j]: sp.Symbol(f"s2_{i}_{j}") for i in range(self.m) for j in range(self.h1)})
        return rep


@lru_cache(maxsize=None)
def model(m: int = 2, n: int = 3, h1: int = 2, h2: int = 2, k: int = 3, y: tuple | None = None) -> Model:
    """Build the symbolic fine-tuning cost (cached); ``y`` defaults to :math:`y_i = i \\bmod k`."""
    for name, v in (("m", m), ("n", n), ("h1", h1), ("h2", h2), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    y = tuple(i % k for i in range(m)) if y is None else tuple(y)
    if len(y) != m or not all(isinstance(c, int) and 0 <= c < k for c in y):
        raise ValueError(f"y must be {m} class indices in [0, {k}), got {y!r}")
    sym = lambda name, r, c: sp.Matrix(r, c, lambda a, b: sp.Symbol(f"{name}_{a}_{b}"))  # noqa: E731
    W1, W2, theta, X = sym("W1", h1, n), sym("W2", h2, h1), sym("theta", k, h2), sym("x", m, n)
    b1 = sp.Matrix(h1, 1, lambda a, _: sp.Symbol(f"b1_{a}"))
    b2 = sp.Matrix(h2, 1, lambda a, _: sp.Symbol(f"b2_{a}"))
    lam = sp.Symbol("lambda", nonnegative=True)
    A2 = (X * W1.T + sp.ones(m, 1) * b1.T).applyfunc(f)
    A3 = (A2 * W2.T + sp.ones(m, 1) * b2.T).applyfunc(f)
    Z = A3 * theta.T
    S = [sum(E(Z[i, l]) for l in range(k)) for i in range(m)]
    P = sp.Matrix(m, k, lambda i, j: E(Z[i, j]) / S[i])
    J = -sum(sp.log(P[i, y[i]]) for i in range(m)) / m + lam / 2 * sum(t**2 for t in theta)
    return Model(m, n, h1, h2, k, y, W1, b1, W2, b2, theta, X, lam, A2, A3, Z, P, J)


def sympy_gradient(mod: Model) -> dict:
    """sympy's ``diff`` of :math:`J` with respect to every entry of every array (shapes as the arrays)."""
    return {name: M.applyfunc(lambda w: sp.diff(mod.J, w)) for name, M in mod.params.items()}


def tutorial_gradient(mod: Model, *, mistake: str | None = None) -> dict:
    """The tutorial's deltas and gradients (stated, not derived). ``mistake`` (for :func:`negative_controls`):
    ``"decay_on_encoders"``, ``"no_fprime_top"`` or ``"delta_sign"``."""
    m, one = mod.m, sp.ones(mod.m, 1)
    fp = lambda A: A.multiply_elementwise(A.applyfunc(lambda a: 1 - a))  # noqa: E731  f' = a(1 - a)
    residual = mod.one_hot() - mod.P  # 1{y} - P
    top = -(residual * mod.theta)
    if mistake == "delta_sign":
        top = -top
    delta3 = top if mistake == "no_fprime_top" else top.multiply_elementwise(fp(mod.A3))
    delta2 = (delta3 * mod.W2).multiply_elementwise(fp(mod.A2))
    decay = mod.lam if mistake == "decay_on_encoders" else 0
    return {
        "W1": delta2.T * mod.X / m + decay * mod.W1,
        "b1": delta2.T * one / m,
        "W2": delta3.T * mod.A2 / m + decay * mod.W2,
        "b2": delta3.T * one / m,
        "theta": -residual.T * mod.A3 / m + mod.lam * mod.theta,
    }


def is_identity(mod: Model, expr) -> bool:
    """Exactly decide ``expr == 0`` (fresh symbols for every ``E``/``f`` application, then :func:`derivations.concrete.rational_is_zero`)."""
    e = sp.sympify(expr).xreplace(mod.fresh_symbols())
    if e.has(E) or e.has(f):
        raise AssertionError("an E(...) or f(...) application was not replaced by a fresh symbol")
    return rational_is_zero(e)


def check_identity(mod: Model, *, mistake: str | None = None) -> dict:
    """``{array: sympy's gradient == the tutorial's, every entry}`` (computed once per model and mistake)."""
    return dict(_check_identity(mod, mistake))


@lru_cache(maxsize=None)
def _check_identity(mod: Model, mistake: str | None) -> tuple:
    ours, tut = sympy_gradient(mod), tutorial_gradient(mod, mistake=mistake)
    return tuple((a, all(is_identity(mod, ours[a][i] - tut[a][i]) for i in range(len(ours[a])))) for a in ARRAYS)


@lru_cache(maxsize=None)
def identities(sizes=((1, 2, 2, 2, 2), (2, 3, 2, 2, 3)), labellings: int = 2) -> Derivation:
    """The exact identity at each ``(m, n, h1, h2, k)`` in ``sizes``, for ``labellings`` labellings each
    (:math:`y_i = i \\bmod k`, then all ``k - 1``)."""
    t0 = time.perf_counter()
    d = Derivation("Stacked autoencoder fine-tuning: exact identities at concrete sizes (every entry symbolic, λ symbolic)")
    small = model(1, 1, 1, 1, 2, (0,))
    d.step("the cost at m = n = h1 = h2 = 1, k = 2, y = (0)", small.J, "definition", sp.Symbol("J"))
    d.step("sympy's ∂J/∂W1 there", sympy_gradient(small)["W1"], "sympy", sp.Symbol("∇_W1 J"))
    d.step("the tutorial's (1/m) δ⁽²⁾ᵀ X there", tutorial_gradient(small)["W1"], "stated", sp.Symbol("∇_W1 J"))
    for size in sizes:
        m, k = size[0], size[-1]
        for y in [tuple(i % k for i in range(m)), (k - 1,) * m][:labellings]:
            t1 = time.perf_counter()
            res = check_identity(model(*size, y))
            d.check(
                f"(m, n, h1, h2, k) = {size}, y = {y}: sympy's gradient == the tutorial's deltas, every array, exactly",
                all(res.values()),
                ", ".join(f"{a}: {'0' if ok else '≠ 0'}" for a, ok in res.items()) + f"; {time.perf_counter() - t1:.1f} s",
            )
    d.seconds = time.perf_counter() - t0
    return d


@lru_cache(maxsize=None)
def negative_controls(size=(2, 2, 2, 2, 2)) -> Derivation:
    """Plausible mistakes are reported as 'not equal' (the identity check is not vacuous)."""
    t0 = time.perf_counter()
    d = Derivation(f"Stacked fine-tuning: the identity check catches plausible mistakes (size {size})")
    mod = model(*size)
    for mistake, arrays in (
        ("decay_on_encoders", ("W1", "W2")),
        ("no_fprime_top", ("W1", "b1", "W2", "b2")),
        ("delta_sign", ("W1", "b1", "W2", "b2")),
    ):
        res = check_identity(mod, mistake=mistake)
        d.check(
            f"{mistake}: differs from sympy's gradient in {', '.join(arrays)} and only there",
            all(not res[a] for a in arrays) and all(res[a] for a in ARRAYS if a not in arrays),
            ", ".join(f"{a}: {'0' if ok else '≠ 0'}" for a, ok in res.items()),
        )
    d.seconds = time.perf_counter() - t0
    return d


# --- numbers ------------------------------------------------------------------------------------


def _sigmoid(u):
    u = np.asarray(u, np.float64)
    return np.where(u >= 0, 1.0 / (1.0 + np.exp(-np.abs(u))), np.exp(-np.abs(u)) / (1.0 + np.exp(-np.abs(u))))


@lru_cache(maxsize=None)
def lambdify_gradient(size: tuple, y: tuple):
    """sympy's gradient as a numpy function ``(W1, b1, W2, b2, theta, x, lam) -> 5 arrays`` (sae_jax's shapes)."""
    mod = model(*size, y)
    grads = sympy_gradient(mod)
    exprs = [e for a in ARRAYS for e in grads[a]]
    args = [*mod.W1, *mod.b1, *mod.W2, *mod.b2, *mod.theta, *mod.X, mod.lam]
    flat = sp.lambdify(args, exprs, modules=[{"f": _sigmoid, "Exp": np.exp}, "numpy"], cse=True)
    m, n, h1, h2, k = size
    shapes = {"W1": (h1, n), "b1": (h1,), "W2": (h2, h1), "b2": (h2,), "theta": (k, h2)}

    def gradient(W1, b1, W2, b2, theta, x, lam):
        vals = flat(*(v for a in (W1, b1, W2, b2, theta, x) for v in np.ravel(a)), lam)
        out, pos = [], 0
        for a in ARRAYS:
            size_a = int(np.prod(shapes[a]))
            out.append(np.reshape(np.asarray(vals[pos : pos + size_a], np.float64), shapes[a]))
            pos += size_a
        return out

    return gradient


def three_way(size=(2, 3, 2, 2, 3), *, seed: int = 0) -> dict:
    """Max relative errors between the lambdified sympy gradient, ``stacked_cost_and_grad`` and ``jax.grad`` (float64)."""
    import jax
    import jax.numpy as jnp

    from sae_jax import Params
    from sae_jax.softmax import SoftmaxParams
    from sae_jax.stacked import StackedParams, stacked_cost, stacked_cost_and_grad

    m, n, h1, h2, k = size
    rng = np.random.default_rng(seed)
    W1, b1, W2, b2, theta = (rng.normal(0, 0.8, s) for s in ((h1, n), (h1,), (h2, h1), (h2,), (k, h2)))
    x = rng.uniform(size=(m, n))
    y = tuple(int(v) for v in rng.integers(0, k, m))
    lam = float(rng.uniform(1e-4, 1e-1))
    sym = lambdify_gradient(tuple(size), y)(W1, b1, W2, b2, theta, x, lam)
    with jax.enable_x64(True):
        a = lambda v: jnp.asarray(v, jnp.float64)  # noqa: E731
        # decoders (unused by the cost) of the right shapes
        layers = (Params(a(W1), a(b1), a(W1.T), a(np.zeros(n))), Params(a(W2), a(b2), a(W2.T), a(np.zeros(h1))))
        stack = StackedParams(layers, SoftmaxParams(a(theta)))
        xj, yj = a(x), jnp.asarray(y)
        _, gm = stacked_cost_and_grad(stack, xj, yj, lam=lam)
        ga = jitted_grad(stacked_cost)(stack, xj, yj, lam=lam)
        pick = lambda g: [np.asarray(v) for v in (g.layers[0].W1, g.layers[0].b1, g.layers[1].W1, g.layers[1].b1, g.softmax.theta)]  # noqa: E731
        manual, auto = pick(gm), pick(ga)
        if any(v.dtype != np.float64 for v in (*manual, *auto)):
            raise AssertionError("sae_jax did not compute in float64")
    return {
        "sympy-manual": max(relative_error(s, g) for s, g in zip(sym, manual)),
        "sympy-jax.grad": max(relative_error(s, g) for s, g in zip(sym, auto)),
        "manual-jax.grad": max(relative_error(g, q) for g, q in zip(manual, auto)),
    }


#: Default numeric cases ``(m, n, h1, h2, k)``.
CASES = ((1, 2, 2, 2, 2), (2, 3, 2, 2, 3), (3, 3, 2, 3, 3))


def agreement(cases=CASES, *, seed: int = 0) -> Derivation:
    """The three-way check as a :class:`~derivations.steps.Derivation`."""
    t0 = time.perf_counter()
    d = Derivation("Stacked fine-tuning: lambdified sympy gradient, sae_jax._src.stacked.stacked_cost_and_grad, jax.grad (float64)")
    for size in cases:
        errs = three_way(size, seed=seed)
        d.check(
            f"(m, n, h1, h2, k) = {size}: all three agree to ≤ {TOL:g} relative",
            max(errs.values()) <= TOL,
            ", ".join(f"{name} {v:.1e}" for name, v in errs.items()),
        )
    d.seconds = time.perf_counter() - t0
    return d
