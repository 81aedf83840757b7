"""Shared test helpers: random problems, tolerances, comparisons."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import sae_jax as sae
from sae_jax._src.params import init_radius

# manual vs jax.grad is the same math summed in another order: hold it tight.
# Errors are relative to each array's largest |entry| (max-norm relative error).
GRAD_RTOL = {jnp.dtype(jnp.float64): 1e-12, jnp.dtype(jnp.float32): 2e-5}
COST_RTOL = {jnp.dtype(jnp.float64): 1e-13, jnp.dtype(jnp.float32): 2e-6}


def max_rel_err(a, b) -> float:
    """max|a - b| / max|b| in float64 (0 if both are all-zero)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    if scale == 0.0:
        return diff
    return diff / scale


def assert_tree_close(got, want, rtol, what=""):
    """Every leaf of ``got`` within ``rtol`` (max-norm relative) of ``want``, same dtype and shape."""
    got_leaves, got_def = jax.tree.flatten(got)
    want_leaves, want_def = jax.tree.flatten(want)
    assert got_def == want_def, (got_def, want_def)
    for i, (g, w) in enumerate(zip(got_leaves, want_leaves)):
        assert np.shape(g) == np.shape(w), (what, i, np.shape(g), np.shape(w))
        assert jnp.dtype(g.dtype) == jnp.dtype(w.dtype), (what, i, g.dtype, w.dtype)
        assert np.all(np.isfinite(np.asarray(g))), (what, i, "non-finite")
        err = max_rel_err(g, w)
        assert err <= rtol, f"{what} leaf {i}: relative error {err:.3e} > {rtol:.1e}"


def random_problem(
    seed: int,
    m: int,
    n: int,
    h: int,
    *,
    dtype=jnp.float64,
    output: str = "sigmoid",
    bias_scale: float = 0.5,
    weight_scale: float | None = None,
):
    """UFLDL-initialised params with nonzero biases, and data valid for ``output``.

    Drawn with NumPy rather than ``jax.random``: eager ``jax.random`` compiles for every
    new shape (seconds per test on 2 cores); ``sae.init_params`` is tested on its own.
    """
    rng = np.random.default_rng(seed)
    r = init_radius(n, h) * (1.0 if weight_scale is None else weight_scale)
    arrays = (
        rng.uniform(-r, r, (h, n)),
        bias_scale * rng.standard_normal(h),
        rng.uniform(-r, r, (n, h)),
        bias_scale * rng.standard_normal(n),
    )
    p = sae.Params(*(jnp.asarray(a, dtype) for a in arrays))
    if output == "sigmoid":
        x = rng.uniform(0.0, 1.0, (m, n))
    else:
        x = 2.0 * rng.standard_normal((m, n))
    return p, jnp.asarray(x, dtype)


class count_compiles:
    """Context manager counting XLA backend compilations (every jit, eager op or vmap that
    compiles) inside it: ``with count_compiles() as c: ...; c.n``."""

    _active: list = []
    _installed = False

    def __init__(self):
        self.n = 0

    @classmethod
    def _listener(cls, event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            for c in cls._active:
                c.n += 1

    def __enter__(self):
        if not count_compiles._installed:
            jax.monitoring.register_event_duration_secs_listener(count_compiles._listener)
            count_compiles._installed = True
        count_compiles._active.append(self)
        return self

    def __exit__(self, *exc):
        count_compiles._active.remove(self)
        return False
