"""How to fuse the public functions' value checks into their compiled call: three mechanisms, measured.

``python -m benchmarks.fused_checks [--sizes S1] [--budget 10]`` times, interleaved in one process
(paired per-round ratios against the unchecked kernel ``jax.jit(sae_jax.cost_and_grad)``):

* ``compiled_call``: sae-jax's own (:func:`sae_jax._src.checks.fused.compiled_call`): the predicate
  ``values_ok`` (one boolean) and the result's finiteness computed in the same ``jit`` and read back
  once as a two-element array; on failure the eager checks re-derive the one ``InputError``.
* ``checkify``: the same predicates as ``jax.experimental.checkify.check`` calls inside
  ``jit(checkify(f))``, the ``Error`` read back with ``err.get()`` each call (what ``err.throw()``
  does), then the same eager re-derivation for the message.
* ``equinox``: the same predicates through ``equinox.error_if`` on the result (only when equinox is
  importable; it is not a dependency of sae-jax): nothing is read back on success, an invalid input
  raises from inside the compiled call.

Each runs behind the same Python front (``checked_call``: structure and hyperparameter checks,
data checked once per ``jax.Array``): the mechanism is swapped, nothing else. ``--against REV``
adds that commit's public ``cost_and_grad`` to the same rounds (before/after the code around the
mechanism). Results: NOTES.md #20.
"""

from __future__ import annotations

import argparse
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

import sae_jax
from sae_jax._src.checks import fused

from .kernels import HP, SIZES
from .timing import measure, paired_ratio

_CACHE: dict = {}


def _flat(fn, values_ok, n_args, names, static_argnames, body):
    key = (body, fn, values_ok, n_args, names, static_argnames)
    if key not in _CACHE:
        def g(*flat):
            args, kwargs = flat[:n_args], dict(zip(names, flat[n_args:]))
            return body(fn, values_ok, args, kwargs)

        static = tuple(n_args + i for i, n in enumerate(names) if n in static_argnames)
        _CACHE[key] = (g, static)
    return _CACHE[key]


def _checkify_body(fn, values_ok, args, kwargs):
    checkify.check(values_ok(*args, **kwargs), "inputs")
    out = fn(*args, **kwargs)
    checkify.check(fused.result_finite(out), "result")
    return out


def checkify_call(fn, args, kwargs, *, values_ok, raise_for_values, static_argnames=(), raise_for_result=None):
    g, static = _flat(fn, values_ok, len(args), tuple(kwargs), static_argnames, _checkify_body)
    key = ("checkify", g)
    if key not in _CACHE:
        _CACHE[key] = jax.jit(checkify.checkify(g), static_argnums=static)
    err, out = _CACHE[key](*args, *kwargs.values())
    msg = err.get()  # what err.throw() reads: None when every check held
    if msg is not None:
        raise_for_values(*args, **kwargs)
        raise_for_result(out, *args, **kwargs)
    return out


def _equinox_body(fn, values_ok, args, kwargs):
    import equinox as eqx

    ok = values_ok(*args, **kwargs)
    out = fn(*args, **kwargs)
    return eqx.error_if(out, ~(ok & fused.result_finite(out)), "inputs or result not valid")


def equinox_call(fn, args, kwargs, *, values_ok, raise_for_values, static_argnames=(), raise_for_result=None):
    g, static = _flat(fn, values_ok, len(args), tuple(kwargs), static_argnames, _equinox_body)
    key = ("equinox", g)
    if key not in _CACHE:
        _CACHE[key] = jax.jit(g, static_argnums=static)
    try:
        return _CACHE[key](*args, *kwargs.values())
    except Exception:  # equinox's runtime error: re-derive the one InputError
        raise_for_values(*args, **kwargs)
        raise


def equinox_blocking_call(fn, args, kwargs, **kw):
    """:func:`equinox_call` waiting for the result inside the call, so that an error surfaces there
    (with asynchronous dispatch it surfaces wherever the result is first read)."""
    try:
        return jax.block_until_ready(equinox_call(fn, args, kwargs, **kw))
    except sae_jax.InputError:
        raise
    except Exception:
        kw["raise_for_values"](*args, **kwargs)
        raise


def _with(mechanism):
    """``sae_jax.cost_and_grad`` with ``compiled_call`` swapped for ``mechanism``."""
    original = fused.compiled_call

    def call(params, x, hp):
        fused.compiled_call = mechanism
        try:
            return sae_jax.cost_and_grad(params, x, **hp)
        finally:
            fused.compiled_call = original

    return call


def _block(out):
    return jax.block_until_ready(out)


def run(sizes=("S1",), dtypes=("float32", "float64"), budget_s=10.0, against=None) -> list[dict]:
    mechanisms = {"compiled_call": fused.compiled_call, "checkify": checkify_call}
    try:
        import equinox  # noqa: F401

        mechanisms["equinox"] = equinox_call
        mechanisms["equinox+block"] = equinox_blocking_call
    except ImportError:
        print("equinox not importable: its row is skipped")
    kernel = jax.jit(sae_jax.cost_and_grad, static_argnames="output")
    old = None
    if against:  # the public function of another commit, in the same rounds (compare_kernels' import)
        import tempfile
        from pathlib import Path

        from .compare_kernels import import_at

        old = import_at(against, Path(tempfile.mkdtemp()))
    rows = []
    for label in sizes:
        n, h, m = SIZES[label] if label in SIZES else map(int, label.split("x"))  # S1 or NxHxM
        for dt in dtypes:
            with jax.enable_x64(dt == "float64"):
                params = sae_jax.init_params(jax.random.key(0), n, h, dtype=dt)
                x = jax.random.uniform(jax.random.key(1), (m, n), dt)
                hp = {k: jnp.asarray(v, dt) for k, v in HP.items()}
                calls = {name: (lambda f=_with(mech): _block(f(params, x, hp))) for name, mech in mechanisms.items()}
                calls["kernel"] = lambda: _block(kernel(params, x, **hp))
                if old is not None:
                    calls[f"public@{against}"] = lambda: _block(old.cost_and_grad(params, x, **hp))
                ref = kernel(params, x, **hp)
                for name, f in calls.items():  # agree, and compile both programs (fresh and checked data)
                    f(), f()
                    out = _with(mechanisms[name])(params, x, hp) if name in mechanisms else ref
                    if name.startswith("public@"):
                        out = old.cost_and_grad(params, x, **hp)
                    np.testing.assert_array_equal(np.asarray(out[0]), np.asarray(ref[0]))
                bad = x.at[0, 0].set(2.0)
                for name, mech in mechanisms.items():  # each refuses bad data with sae-jax's line
                    try:
                        _with(mech)(params, bad, hp)
                        raise AssertionError(f"{name} accepted x = 2 for a sigmoid output")
                    except sae_jax.InputError:
                        pass
                t = measure(calls, budget_s=budget_s, min_reps=20, max_reps=5000)
                for name in [*mechanisms, *([f"public@{against}"] if old is not None else [])]:
                    r = paired_ratio(t[name], t["kernel"])
                    rows.append(dict(size=label, dtype=dt, mechanism=name, rounds=len(t[name].times_s),
                                     kernel_ms=statistics.median(t["kernel"].times_s) * 1e3,
                                     median_ms=statistics.median(t[name].times_s) * 1e3, **r))
                    print(f"{label} {dt:8s} {name:14s} {rows[-1]['median_ms']:7.3f} ms  / kernel "
                          f"{rows[-1]['kernel_ms']:.3f} ms: paired median {r['median']:.4f} "
                          f"(IQR {r['q1']:.3f}-{r['q3']:.3f}), {rows[-1]['rounds']} rounds", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="S1", help="comma list of S1, S2, S3 or NxHxM (e.g. 4x2x8: the fixed cost)")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--budget", type=float, default=10.0, help="seconds of interleaved rounds per size and dtype")
    ap.add_argument("--against", default=None, help="also time this commit's public cost_and_grad (e.g. 9833f39)")
    a = ap.parse_args(argv)
    run(a.sizes.split(","), a.dtypes.split(","), a.budget, a.against)


if __name__ == "__main__":
    main()
