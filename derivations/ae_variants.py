r"""The autoencoder's variants (issue 15): sympy derives the tied-weights gradient, the L1 delta and denoising.

(Not to be confused with :mod:`derivations.variant`, the questioner's 1/m variant.)

At concrete sizes every entry of :math:`W_1` ``(h, n)``, :math:`b_1`, :math:`b_2`, the clean
target :math:`X` ``(m, n)`` and the corrupted input :math:`\tilde X` ``(m, n)`` is its own symbol;
:math:`\rho, \beta, \lambda, \gamma` are symbolic and the sigmoid is the opaque
:data:`derivations.concrete.f` (:math:`f' = f(1-f)`). The model with every variant switched on:

.. math::
    Z^{(2)} = \tilde X W_1^\top + \mathbf 1 b_1^\top,\ A^{(2)} = f(Z^{(2)}),\quad
    \hat X = f(A^{(2)} W_2^\top + \mathbf 1 b_2^\top),\quad W_2 = W_1^\top \text{ (tied)},

    J = \frac1{2m}\lVert \hat X - X\rVert^2 + \frac\lambda2(\lVert W_1\rVert^2 + \lVert W_2\rVert^2)
      + \beta\sum_j \mathrm{KL}(\rho\Vert\hat\rho_j) + \frac\gamma m \sum_{i,j} A^{(2)}_{ij},

the L1 term :math:`\frac\gamma m\sum_i\lVert a^{(2)(i)}\rVert_1` written without the absolute
value because :math:`f > 0` (:func:`l1_on_sigmoid` shows sympy drops the ``Abs`` of the real
sigmoid). The hand formulas, stated and then checked against sympy's ``diff`` exactly (each
:math:`f(\cdot)` a fresh symbol, then :func:`~derivations.concrete.rational_is_zero`,
as in :mod:`derivations.concrete`):

.. math::
    \delta^{(3)} = (\hat X - X)\odot \hat X\odot(1-\hat X),\quad
    \delta^{(2)} = (\delta^{(3)} W_2 + \mathbf 1 s^\top + \gamma)\odot A^{(2)}\odot(1-A^{(2)}),

    \nabla_{W_1} J = \underbrace{\tfrac1m\delta^{(2)\top}\tilde X + \lambda W_1}_{\text{encoder}}
      + \underbrace{(\tfrac1m\delta^{(3)\top}A^{(2)} + \lambda W_2)^\top}_{\text{decoder, tied only}}.

Negative controls (each must *not* be an identity): the tied gradient with only the encoder's
contribution (the untied formula for :math:`W_1`), with only the decoder's, the L1 term's
:math:`\gamma` divided by m inside :math:`\delta^{(2)}` (the 1/m question again), and the
denoising gradient with the clean :math:`X` in :math:`\delta^{(2)\top}X`. :func:`agreement`
holds the lambdified sympy gradient, :func:`sae_jax.cost_and_grad` (tied parameters, ``l1=``,
``x_input=``) and ``jax.grad`` to 1e-12 in float64.

Examples:
  >>> from derivations import ae_variants
  >>> ae_variants.check_identity(2, 1, 1, tied=True)                   # all arrays, exactly
  {'W1': True, 'b1': True, 'b2': True}
  >>> ae_variants.check_identity(2, 1, 1, tied=True, formula="encoder only")["W1"]
  False
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from .concrete import f, rational_is_zero
from .steps import Derivation

__all__ = [
    "Model",
    "model",
    "sympy_gradient",
    "hand_gradient",
    "FORMULAS",
    "is_identity",
    "check_identity",
    "tied_weights",
    "l1_on_sigmoid",
    "l1_delta",
    "denoising",
    "lambdify_gradient",
    "three_way",
    "agreement",
    "TOL",
]

#: float64 agreement required between any two of the three gradients.
TOL = 1e-12

#: The hand formulas :func:`hand_gradient` can state: the right one and the negative controls.
FORMULAS = ("both contributions", "encoder only", "decoder only", "l1 over m", "clean input")


@dataclass(frozen=True, eq=False)
class Model:
    """The variants' cost at one concrete size, every entry symbolic."""

    n: int
    h: int
    m: int
    tied: bool
    l1: bool
    denoising: bool
    W1: sp.Matrix  # (h, n)
    b1: sp.Matrix  # (h, 1)
    W2: sp.Matrix  # (n, h): W1.T when tied
    b2: sp.Matrix  # (n, 1)
    X: sp.Matrix  # (m, n) the target
    Xin: sp.Matrix  # (m, n) the input (X itself without denoising)
    rho: sp.Symbol
    beta: sp.Symbol
    lam: sp.Symbol
    gamma: sp.Expr  # the L1 weight (0 without the L1 term)
    A2: sp.Matrix
    A3: sp.Matrix
    rho_hat: sp.Matrix  # (1, h)
    J: sp.Expr

    @property
    def params(self) -> dict[str, sp.Matrix]:
        out = {"W1": self.W1, "b1": self.b1}
        if not self.tied:
            out["W2"] = self.W2
        out["b2"] = self.b2
        return out


@lru_cache(maxsize=None)
def model(n: int, h: int, m: int, *, tied: bool = True, l1: bool = True, denoising: bool = True) -> Model:
    """The symbolic cost with the chosen variants at sizes ``n, h, m`` (sigmoid output; cached)."""
    for name, v in (("n", n), ("h", h), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    W1 = sp.Matrix(h, n, lambda j, s: sp.Symbol(f"W1_{j}_{s}"))
    b1 = sp.Matrix(h, 1, lambda j, _: sp.Symbol(f"b1_{j}"))
    W2 = W1.T if tied else sp.Matrix(n, h, lambda r, j: sp.Symbol(f"W2_{r}_{j}"))
    b2 = sp.Matrix(n, 1, lambda r, _: sp.Symbol(f"b2_{r}"))
    X = sp.Matrix(m, n, lambda i, s: sp.Symbol(f"x_{i}_{s}"))
    Xin = sp.Matrix(m, n, lambda i, s: sp.Symbol(f"xt_{i}_{s}")) if denoising else X
    rho, beta = sp.symbols("rho beta", positive=True)
    lam = sp.Symbol("lambda", nonnegative=True)
    gamma = sp.Symbol("gamma", nonnegative=True) if l1 else sp.Integer(0)
    A2 = (Xin * W1.T + sp.ones(m, 1) * b1.T).applyfunc(f)
    A3 = (A2 * W2.T + sp.ones(m, 1) * b2.T).applyfunc(f)
    rho_hat = sp.ones(1, m) * A2 / m
    kl = lambda rh: rho * sp.log(rho / rh) + (1 - rho) * sp.log((1 - rho) / (1 - rh))  # noqa: E731
    J = (
        sp.Rational(1, 2) * sum(e**2 for e in (A3 - X)) / m
        + lam / 2 * (sum(w**2 for w in W1) + sum(w**2 for w in W2))
        + beta * sum(kl(rh) for rh in rho_hat)
        + gamma / m * sum(A2)  # gamma (1/m) sum_i ||a_i||_1, |a| = a for the sigmoid
    )
    return Model(n, h, m, tied, l1, denoising, W1, b1, W2, b2, X, Xin, rho, beta, lam, gamma, A2, A3, rho_hat, J)


@lru_cache(maxsize=None)
def sympy_gradient(mod: Model) -> dict[str, sp.Matrix]:
    """sympy's ``diff`` of the cost with respect to each free parameter array (no ``W2`` when tied)."""
    return {name: P.applyfunc(lambda w: sp.diff(mod.J, w)) for name, P in mod.params.items()}


def hand_gradient(mod: Model, formula: str = "both contributions") -> dict[str, sp.Matrix]:
    """The stated gradient (module docstring), or one of the negative controls in :data:`FORMULAS`."""
    if formula not in FORMULAS:
        raise ValueError(f"formula must be one of {FORMULAS}, got {formula!r}")
    m, one = mod.m, sp.ones(mod.m, 1)
    delta3 = (mod.A3 - mod.X).multiply_elementwise(mod.A3.applyfunc(lambda a: a * (1 - a)))
    s = mod.rho_hat.applyfunc(lambda rh: mod.beta * (-mod.rho / rh + (1 - mod.rho) / (1 - rh)))
    gamma = mod.gamma / m if formula == "l1 over m" else mod.gamma
    per_unit = sp.ones(m, 1) * s + gamma * sp.ones(m, mod.h)
    delta2 = (delta3 * mod.W2 + per_unit).multiply_elementwise(mod.A2.applyfunc(lambda a: a * (1 - a)))
    inp = mod.X if formula == "clean input" else mod.Xin
    encoder = delta2.T * inp / m + mod.lam * mod.W1
    decoder = delta3.T * mod.A2 / m + mod.lam * mod.W2
    out = {"b1": delta2.T * one / m, "b2": delta3.T * one / m}
    if mod.tied:
        out["W1"] = {"encoder only": encoder, "decoder only": decoder.T}.get(formula, encoder + decoder.T)
    else:
        out["W1"], out["W2"] = encoder, decoder
    return {name: out[name] for name in mod.params}


def is_identity(mod: Model, expr: sp.Expr) -> bool:
    """Exactly decide ``expr == 0``: every ``f(...)`` a fresh symbol, then :func:`derivations.concrete.rational_is_zero`."""
    apps = sorted(sp.sympify(expr).atoms(f), key=sp.default_sort_key)
    e = sp.sympify(expr).xreplace({a: sp.Dummy(f"f{k}") for k, a in enumerate(apps)})
    if e.has(f):
        raise AssertionError("an f(...) application was not replaced by a fresh symbol")
    return rational_is_zero(e)


def check_identity(
    n: int, h: int, m: int, *, tied: bool = True, l1: bool = True, denoising: bool = True,
    formula: str = "both contributions",
) -> dict[str, bool]:
    """``{array: sympy's diff == the hand formula, exactly (every entry)}`` at one size."""
    mod = model(n, h, m, tied=tied, l1=l1, denoising=denoising)
    ours, hand = sympy_gradient(mod), hand_gradient(mod, formula)
    return {a: all(is_identity(mod, ours[a][k] - hand[a][k]) for k in range(len(ours[a]))) for a in ours}


def _entry(mod, name, k=0):
    return sp.Symbol(f"∂J/∂{name}[{k}]")


@lru_cache(maxsize=None)
def tied_weights(ms=(1, 2, 3), *, n: int = 2, h: int = 2) -> Derivation:
    r"""Tied weights: :math:`\nabla_{W_1}J` is the encoder's and the decoder's contribution summed, exactly;
    either alone is not (negative controls). With the L1 term and denoising on, and off."""
    t0 = time.perf_counter()
    d = Derivation(f"Tied weights W2 = W1ᵀ: both contributions summed (n = {n}, h = {h}; every entry symbolic)")
    mod = model(n, 1, 1, tied=True, l1=False, denoising=False)
    d.step("the tied cost at n = 2, h = 1, m = 1 (W2 = W1ᵀ)", mod.J, "definition", sp.Symbol("J"))
    hand = hand_gradient(mod)
    d.step("the hand formula's ∂J/∂W1[0, 0]: encoder + (decoder)ᵀ", hand["W1"][0, 0], "stated", _entry(mod, "W1"))
    d.step("sympy's ∂J/∂W1[0, 0]", sympy_gradient(mod)["W1"][0, 0], "sympy", _entry(mod, "W1"))
    for variants in ({"l1": False, "denoising": False}, {"l1": True, "denoising": True}):
        label = "with L1 and denoising" if variants["l1"] else "plain"
        for m in ms:
            t1 = time.perf_counter()
            res = check_identity(n, h, m, tied=True, **variants)
            d.check(
                f"m = {m}, {label}: sympy's ∂J/∂W1, ∂J/∂b1, ∂J/∂b2 == encoder + decoderᵀ, exactly",
                all(res.values()),
                ", ".join(f"{a}: {'0' if ok else '≠ 0'}" for a, ok in res.items()) + f"; {time.perf_counter() - t1:.1f} s",
            )
    for formula in ("encoder only", "decoder only"):
        res = check_identity(n, h, max(ms), tied=True, l1=False, denoising=False, formula=formula)
        d.check(
            f"negative control: the {formula.replace(' only', '')}'s contribution alone is not ∂J/∂W1 (m = {max(ms)})",
            not res["W1"],
            f"sympy − ({formula}) {'= 0' if res['W1'] else '≠ 0'}",
        )
    d.seconds = time.perf_counter() - t0
    return d


@lru_cache(maxsize=None)
def l1_on_sigmoid() -> Derivation:
    """The L1 term on sigmoid units: sympy drops ``Abs`` of the real sigmoid (it is positive), so
    the term is smooth with derivative γ f'(z); ``sign(0) = 0`` is the convention where a can be 0."""
    t0 = time.perf_counter()
    d = Derivation("The L1 activation penalty on sigmoid units: |f(u)| = f(u), d|f(u)|/du = f'(u)")
    u = sp.Symbol("u", real=True)
    sigma = 1 / (1 + sp.exp(-u))
    a = sp.Abs(sigma)
    d.step("|σ(u)| for real u, as sympy evaluates it", a, "sympy", sp.Abs(sp.Function("sigma")(u)))
    d.check("sympy knows σ(u) > 0 for real u", sp.ask(sp.Q.positive(sigma)) is True and a == sigma)
    da = sp.diff(a, u)
    d.step("its derivative", da, "sympy", sp.Derivative(sp.Abs(sp.Function("sigma")(u)), u))
    d.check("d|σ(u)|/du = σ(u)(1 − σ(u)): no kink, the L1 delta is γ f'(z)", sp.simplify(da - sigma * (1 - sigma)) == 0)
    d.check(
        "the general subgradient convention: sign(0) = 0 (sympy's sign)",
        sp.sign(sp.Integer(0)) == 0,
        "sae_jax.activation_l1 differentiates to γ·sign(a)/m with sign(0) = 0",
    )
    d.seconds = time.perf_counter() - t0
    return d


@lru_cache(maxsize=None)
def l1_delta(ms=(1, 2, 3), *, n: int = 2, h: int = 2) -> Derivation:
    r"""The L1 term's delta: :math:`+\gamma` per unit in :math:`\delta^{(2)}` (times :math:`f'`) with the one
    :math:`1/m` outside, exactly; :math:`\gamma/m` inside (the 1/m question again) is not."""
    t0 = time.perf_counter()
    d = Derivation(f"The L1 activation penalty's delta: δ⁽²⁾ += γ f'(z⁽²⁾), one 1/m outside (n = {n}, h = {h})")
    mod = model(n, 1, 1, tied=False, l1=True, denoising=False)
    d.step("the untied cost with the L1 term at n = 2, h = 1, m = 1", mod.J, "definition", sp.Symbol("J"))
    d.step("the hand formula's ∂J/∂b1[0]", hand_gradient(mod)["b1"][0], "stated", _entry(mod, "b1"))
    d.step("sympy's ∂J/∂b1[0]", sympy_gradient(mod)["b1"][0], "sympy", _entry(mod, "b1"))
    for m in ms:
        res = check_identity(n, h, m, tied=False, l1=True, denoising=False)
        d.check(f"m = {m}: sympy's gradient == the hand formula with + γ in δ⁽²⁾, exactly", all(res.values()),
                ", ".join(f"{a}: {'0' if ok else '≠ 0'}" for a, ok in res.items()))
    res = check_identity(n, h, max(ms), tied=False, l1=True, denoising=False, formula="l1 over m")
    d.check(f"negative control: γ/m inside δ⁽²⁾ is not the gradient (m = {max(ms)})", not res["W1"] and not res["b1"])
    d.seconds = time.perf_counter() - t0
    return d


@lru_cache(maxsize=None)
def denoising(ms=(1, 2), *, n: int = 2, h: int = 2) -> Derivation:
    r"""Denoising: the corrupted input in :math:`\delta^{(2)\top}\tilde X`, the clean target in :math:`\delta^{(3)}`, exactly;
    the clean :math:`X` in the weight gradient is not (negative control)."""
    t0 = time.perf_counter()
    d = Derivation(f"Denoising: input X̃ in the forward pass and in δ⁽²⁾ᵀX̃, target X in δ⁽³⁾ (n = {n}, h = {h})")
    for m in ms:
        res = check_identity(n, h, m, tied=False, l1=False, denoising=True)
        d.check(f"m = {m}: sympy's ∂J/∂W1, ∂J/∂b1, ∂J/∂W2, ∂J/∂b2 == the hand formula, exactly", all(res.values()),
                ", ".join(f"{a}: {'0' if ok else '≠ 0'}" for a, ok in res.items()))
    res = check_identity(n, h, max(ms), tied=False, l1=False, denoising=True, formula="clean input")
    d.check(f"negative control: δ⁽²⁾ᵀX (the clean input) is not ∂J/∂W1 (m = {max(ms)})", not res["W1"])
    d.seconds = time.perf_counter() - t0
    return d


# --- numbers: the lambdified sympy gradient vs sae_jax vs jax.grad -----------------------------


def _sigmoid_np(u):
    u = np.asarray(u, dtype=np.float64)
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@lru_cache(maxsize=None)
def lambdify_gradient(n: int, h: int, m: int, *, tied: bool = True):
    """sympy's gradient of the model with every variant on (L1, denoising; ``tied`` or not) as a
    NumPy function ``(params dict, x, x_input, lam, beta, rho, gamma) -> {array: ndarray}``."""
    mod = model(n, h, m, tied=tied, l1=True, denoising=True)
    grads = sympy_gradient(mod)
    names = list(mod.params)
    symbols = [*(s for name in names for s in mod.params[name]), *mod.X, *mod.Xin, mod.lam, mod.beta, mod.rho, mod.gamma]
    exprs = [e for name in names for e in grads[name]]
    flat = sp.lambdify(symbols, exprs, modules=[{"f": _sigmoid_np}, "numpy"], cse=True)
    shapes = {"W1": (h, n), "b1": (h,), "W2": (n, h), "b2": (n,)}

    def gradient(params: dict, x, x_input, lam, beta, rho, gamma):
        # sympy's matrices are row-major, as numpy's ravel
        args = [*(v for name in names for v in np.ravel(params[name])), *np.ravel(x), *np.ravel(x_input)]
        vals, out, pos = flat(*args, lam, beta, rho, gamma), {}, 0
        for name in names:
            size = int(np.prod(shapes[name]))
            out[name] = np.asarray(vals[pos : pos + size], np.float64).reshape(shapes[name])
            pos += size
        return out

    return gradient


def three_way(n: int, h: int, m: int, *, tied: bool = True, seed: int = 0) -> dict:
    """Max relative errors ``{"sympy-manual", "sympy-jax.grad", "manual-jax.grad"}`` (float64) with
    tied weights (or not), the L1 term and a masking-corrupted input."""
    import jax
    import jax.numpy as jnp

    import sae_jax

    rng = np.random.default_rng(seed)
    W1, b1, W2, b2 = (rng.normal(0.0, 0.5, s) for s in ((h, n), (h,), (n, h), (n,)))
    x = rng.uniform(0.05, 0.95, (m, n))
    x_in = x * (rng.uniform(size=(m, n)) >= 0.3)  # masking noise, p = 0.3
    hp = dict(lam=float(rng.uniform(1e-4, 1e-2)), beta=float(rng.uniform(0.5, 5.0)), rho=float(rng.uniform(0.02, 0.3)))
    gamma = float(rng.uniform(0.01, 0.5))
    params = {"W1": W1, "b1": b1, "b2": b2} if tied else {"W1": W1, "b1": b1, "W2": W2, "b2": b2}
    sym = lambdify_gradient(n, h, m, tied=tied)(params, x, x_in, hp["lam"], hp["beta"], hp["rho"], gamma)
    with jax.enable_x64(True):
        p = sae_jax.Params(*(None if a is None else jnp.asarray(a, jnp.float64) for a in (W1, b1, None if tied else W2, b2)))
        xj, xij = jnp.asarray(x, jnp.float64), jnp.asarray(x_in, jnp.float64)
        _, manual = sae_jax.cost_and_grad(p, xj, x_input=xij, l1=gamma, **hp)
        _, auto = sae_jax.autodiff_cost_and_grad(p, xj, x_input=xij, l1=gamma, **hp)
        manual, auto = manual._asdict(), auto._asdict()
    names = list(params)
    rel = lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))  # noqa: E731
    return {
        "sympy-manual": max(rel(manual[k], sym[k]) for k in names),
        "sympy-jax.grad": max(rel(auto[k], sym[k]) for k in names),
        "manual-jax.grad": max(rel(manual[k], auto[k]) for k in names),
    }


def agreement(cases=((2, 2, 3, True), (3, 2, 2, True), (2, 2, 3, False)), *, seed: int = 0) -> Derivation:
    """The three-way check with every variant on, one check per ``(n, h, m, tied)`` case."""
    t0 = time.perf_counter()
    d = Derivation(
        "Variants, three-way numeric agreement in float64 (lambdified sympy, sae_jax.cost_and_grad, jax.grad; "
        "L1 and masking noise on)"
    )
    for n, h, m, tied in cases:
        errs = three_way(n, h, m, tied=tied, seed=seed)
        d.check(
            f"n = {n}, h = {h}, m = {m}, {'tied' if tied else 'untied'}: all three agree to ≤ {TOL:g} relative",
            max(errs.values()) <= TOL,
            ", ".join(f"{k} {v:.1e}" for k, v in errs.items()),
        )
    d.seconds = time.perf_counter() - t0
    return d
