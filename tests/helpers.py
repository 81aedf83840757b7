"""Shared test helpers: random problems, tolerances, comparisons."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

import sae_jax as sae
from conftest import TEST_XLA_FLAGS
from sae_jax._src.params import init_radius

# manual vs jax.grad is the same math summed in another order: hold it tight.
# Errors are relative to each array's largest |entry| (max-norm relative error).
GRAD_RTOL = {jnp.dtype(jnp.float64): 1e-12, jnp.dtype(jnp.float32): 2e-5}
COST_RTOL = {jnp.dtype(jnp.float64): 1e-13, jnp.dtype(jnp.float32): 2e-6}


#: The names of the XLA flags tests/conftest.py sets for compile speed (its TEST_XLA_FLAGS): they change
#: how programs are lowered to machine code, so results agree with XLA's defaults to rounding, not
#: always bit for bit.
COMPILE_SPEED_FLAGS = tuple(f.split("=", 1)[0] + "=" for f in TEST_XLA_FLAGS.split())


def compile_speed_flags() -> list[str]:
    """The suite's compile-speed XLA flags this process runs with (none at XLA's defaults)."""
    return [f for f in os.environ.get("XLA_FLAGS", "").split() if f.startswith(COMPILE_SPEED_FLAGS)]


def rerun_at_xla_defaults(request) -> bool:
    """Run the calling test again in a fresh interpreter at XLA's default compiler settings.

    For bit-for-bit claims between two different programs (a ``lax.map`` sweep against separate
    runs): they hold for the machine code XLA's default pipeline emits, which is what users get,
    and need not hold under the suite's compile-speed flags. Returns True after the rerun passed
    (the caller returns), False when this process already compiles with XLA's defaults (the caller
    goes on and checks its claim here).
    """
    if not compile_speed_flags():
        return False
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # conftest sets the devices again
    env["SAE_JAX_TEST_XLA_OPT"] = "default"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-m", "", request.node.nodeid]
    r = subprocess.run(cmd, cwd=request.config.rootpath, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{request.node.nodeid} at XLA's defaults:\n{r.stdout[-4000:]}{r.stderr[-2000:]}"
    assert re.search(r"\b1 passed\b", r.stdout) and "skipped" not in r.stdout, r.stdout[-2000:]
    return True


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
    compiles) inside it: ``with count_compiles() as c: ...; c.n``.

    An executable served by the test run's persistent compilation cache (tests/conftest.py)
    counts too: it is a compilation the program asked for, which XLA did not have to redo."""

    _active: list = []
    _installed = False

    def __init__(self):
        self.n = 0

    @classmethod
    def _listener(cls, event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            for c in cls._active:
                c.n += 1

    @classmethod
    def _hit_listener(cls, event, **kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            for c in cls._active:
                c.n += 1

    def __enter__(self):
        if not count_compiles._installed:
            jax.monitoring.register_event_duration_secs_listener(count_compiles._listener)
            jax.monitoring.register_event_listener(count_compiles._hit_listener)
            count_compiles._installed = True
        count_compiles._active.append(self)
        return self

    def __exit__(self, *exc):
        count_compiles._active.remove(self)
        return False
