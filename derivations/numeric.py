r"""Three-way numeric agreement: sympy's gradient (lambdified) vs sae_jax's backprop vs ``jax.grad``.

The symbolic gradient of :mod:`derivations.concrete` (sympy's ``diff`` of the cost,
not the tutorial's formula) is turned into a function with
``sympy.lambdify(..., cse=True)`` (numpy or jax backend; the opaque :math:`f`
becomes the logistic sigmoid), evaluated in float64 on random inputs, and
compared with :func:`sae_jax.cost_and_grad` (the tutorial's backprop) and
``jax.grad(sae_jax.cost)``. Errors are relative to each array's largest entry:
:math:`\max|a - b| / \max|b|`.

All jax work runs inside ``jax.enable_x64(True)`` (a scoped setting; nothing
global is changed).
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np
import sympy as sp

from . import concrete
from .steps import Derivation

__all__ = ["TOL", "CASES", "lambdify_gradient", "random_problem", "relative_error", "jitted_grad", "three_way", "agreement"]

#: float64 agreement required between any two of the three gradients.
TOL = 1e-12


def _sigmoid_np(u):
    u = np.asarray(u, dtype=np.float64)
    return np.where(u >= 0, 1.0 / (1.0 + np.exp(-np.abs(u))), np.exp(-np.abs(u)) / (1.0 + np.exp(-np.abs(u))))


def _sigmoid_jax(u):
    import jax

    return jax.nn.sigmoid(u)


def _symbols(mod: concrete.Model) -> list:
    return [*mod.W1, *mod.b1, *mod.W2, *mod.b2, *mod.X, mod.lam, mod.beta, mod.rho]


@lru_cache(maxsize=None)
def lambdify_gradient(n: int, h: int, m: int, output: str = "sigmoid", backend: str = "numpy"):
    """sympy's ∂J/∂(W1, b1, W2, b2) at one size as a function ``(W1, b1, W2, b2, x, lam, beta, rho) -> 4 arrays``.

    Arrays use sae_jax's layout (``W1 (h, n)``, ``x (m, n)``); ``backend`` is
    ``"numpy"`` or ``"jax"``.
    """
    if backend not in ("numpy", "jax"):
        raise ValueError(f"backend must be 'numpy' or 'jax', got {backend!r}")
    mod = concrete.model(n, h, m, output)
    grads = concrete.sympy_gradient(mod)
    exprs = [e for name in concrete.ARRAYS for e in grads[name]]
    sig = _sigmoid_np if backend == "numpy" else _sigmoid_jax
    flat = sp.lambdify(_symbols(mod), exprs, modules=[{"f": sig}, backend], cse=True)
    shapes = {"W1": (h, n), "b1": (h,), "W2": (n, h), "b2": (n,)}
    xp = np
    if backend == "jax":
        import jax.numpy as xp  # noqa: F811

    def gradient(W1, b1, W2, b2, x, lam, beta, rho):
        args = [*np.ravel(W1), *np.ravel(b1), *np.ravel(W2), *np.ravel(b2), *np.ravel(x), lam, beta, rho]
        vals = flat(*args)
        out, pos = [], 0
        for name in concrete.ARRAYS:
            size = int(np.prod(shapes[name]))
            out.append(xp.reshape(xp.asarray(vals[pos : pos + size], dtype=np.float64), shapes[name]))
            pos += size
        return tuple(out)

    return gradient


def random_problem(n: int, h: int, m: int, *, seed: int = 0):
    """Random float64 numpy inputs: ``(W1, b1, W2, b2), x in (0, 1)^(m, n), dict(lam, beta, rho)``.

    Weights ~ N(0, 0.5²), nonzero biases, hyperparameters drawn too (ρ̂ stays
    far from 0 and 1, so sae_jax's saturation clip never acts).
    """
    rng = np.random.default_rng(seed)
    params = (
        rng.normal(0.0, 0.5, (h, n)),
        rng.normal(0.0, 0.5, (h,)),
        rng.normal(0.0, 0.5, (n, h)),
        rng.normal(0.0, 0.5, (n,)),
    )
    x = rng.uniform(0.05, 0.95, (m, n))
    hp = dict(lam=float(rng.uniform(1e-4, 1e-2)), beta=float(rng.uniform(0.5, 5.0)), rho=float(rng.uniform(0.02, 0.3)))
    return params, x, hp


@lru_cache(maxsize=None)
def _jitted_grad():
    """``jax.jit(jax.grad(sae_jax.cost))``, built once (one compilation per shape instead of many op-by-op ones)."""
    import jax

    import sae_jax

    return jax.jit(jax.grad(sae_jax.cost), static_argnames="output")


@lru_cache(maxsize=None)
def jitted_grad(cost):
    """``jax.jit(jax.grad(cost))``, built once per cost function (one compilation per shape instead of
    many op-by-op ones; the softmax and stacked three-way checks use it)."""
    import jax

    return jax.jit(jax.grad(cost))


def relative_error(a, b) -> float:
    """:math:`\\max|a-b| / \\max|b|` (or the absolute error where ``b`` is all zero)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    return err / scale if scale > 0 else err


def three_way(n: int, h: int, m: int, output: str = "sigmoid", *, seed: int = 0, backend: str = "numpy") -> dict:
    """Max relative errors ``{"sympy-manual", "sympy-jax.grad", "manual-jax.grad"}`` over the four arrays (float64)."""
    import jax
    import jax.numpy as jnp

    import sae_jax

    (W1, b1, W2, b2), x, hp = random_problem(n, h, m, seed=seed)
    sym = lambdify_gradient(n, h, m, output, backend)(W1, b1, W2, b2, x, hp["lam"], hp["beta"], hp["rho"])
    with jax.enable_x64(True):
        params = sae_jax.Params(*(jnp.asarray(a, jnp.float64) for a in (W1, b1, W2, b2)))
        xj = jnp.asarray(x, jnp.float64)
        _, manual = sae_jax.cost_and_grad(params, xj, output=output, **hp)
        auto = _jitted_grad()(params, xj, output=output, **hp)
        manual = [np.asarray(a) for a in manual]
        auto = [np.asarray(a) for a in auto]
        if any(a.dtype != np.float64 for a in (*manual, *auto)):
            raise AssertionError("sae_jax did not compute in float64")
    sym = [np.asarray(a) for a in sym]
    return {
        "sympy-manual": max(relative_error(s, g) for s, g in zip(sym, manual)),
        "sympy-jax.grad": max(relative_error(s, g) for s, g in zip(sym, auto)),
        "manual-jax.grad": max(relative_error(g, a) for g, a in zip(manual, auto)),
    }


#: Default cases ``(n, h, m, output)``: the identities' largest size (both outputs) and a non-square one.
CASES = ((2, 2, 5, "sigmoid"), (2, 2, 5, "linear"), (3, 2, 3, "sigmoid"))


def agreement(cases=CASES, *, seed: int = 0, backend: str = "numpy") -> Derivation:
    """The three-way check as a :class:`~derivations.steps.Derivation` (one check per ``(n, h, m, output)`` case)."""
    t0 = time.perf_counter()
    d = Derivation(f"Three-way numeric agreement in float64 (lambdified sympy gradient [{backend}], sae_jax.cost_and_grad, jax.grad)")
    for n, h, m, output in cases:
        errs = three_way(n, h, m, output, seed=seed, backend=backend)
        d.check(
            f"n = {n}, h = {h}, m = {m}, {output} output: all three agree to ≤ {TOL:g} relative",
            max(errs.values()) <= TOL,
            ", ".join(f"{k} {v:.1e}" for k, v in errs.items()),
        )
    d.seconds = time.perf_counter() - t0
    return d
