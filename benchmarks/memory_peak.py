"""Peak memory of one cost+grad implementation at one size, measured in a fresh subprocess.

``python -m benchmarks.memory_peak --impl "sae_jax manual" --size 64,25,10000 --dtype float32``
prints one JSON line: the process's peak resident set (``VmHWM``; ``ru_maxrss`` off Linux) after setup (imports, data,
parameters, the peer's own copies) and after compiling + running the call three times, and their
difference (what the call itself added at its high-water mark; compilation included for JAX).
For the JAX implementations it also reports XLA's own accounting of the compiled call
(``memory_analysis()``: argument, output and temporary bytes), and ``peak_bytes_in_use`` from the
device's memory statistics where the backend keeps them (GPUs; not the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

IMPLS = ("sae_jax manual", "jax.grad", "numpy", "torch")


def _maxrss_bytes() -> int:
    """This process's peak resident set: ``VmHWM`` on Linux, else ``ru_maxrss``.

    On Linux ``ru_maxrss`` survives ``exec``: a subprocess started by a large parent reports the
    parent's high-water mark until it exceeds it. ``VmHWM`` belongs to the new address space.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024  # Linux reports KiB


def probe(impl: str, n: int, h: int, m: int, dtype: str) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from . import kernels

    params, x = kernels.make_problem(n, h, m, jnp.dtype(dtype))
    out: dict = {"impl": impl, "n_visible": n, "n_hidden": h, "m": m, "dtype": dtype}
    if impl in ("sae_jax manual", "jax.grad"):
        import sae_jax

        hp = {k: jnp.asarray(v, params.W1.dtype) for k, v in kernels.HP.items()}
        f = kernels.manual_kernel if impl == "sae_jax manual" else jax.jit(jax.value_and_grad(sae_jax.cost))
        before = _maxrss_bytes()
        compiled = f.lower(params, x, **hp).compile()
        try:
            ma = compiled.memory_analysis()
            out["xla_memory_analysis"] = {
                k: int(getattr(ma, k)) for k in
                ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes", "alias_size_in_bytes")
                if hasattr(ma, k)
            }
        except Exception as e:  # noqa: BLE001 - informational
            out["xla_memory_analysis"] = f"unavailable: {e}"

        def call():
            jax.block_until_ready(f(params, x, **hp))
    else:
        fns = kernels.implementations(params, x, torch_peer=(impl == "torch"))
        if impl not in fns:
            return {**out, "skipped": f"{impl} not available"}
        call = fns[impl]
        before = _maxrss_bytes()
    for _ in range(3):
        call()
    after = _maxrss_bytes()
    out.update(rss_after_setup_bytes=before, peak_rss_bytes=after, call_added_bytes=after - before)
    try:
        stats = jax.devices()[0].memory_stats()
        if stats and "peak_bytes_in_use" in stats:
            out["device_peak_bytes_in_use"] = int(stats["peak_bytes_in_use"])
    except Exception:  # noqa: BLE001
        pass
    return out


def measure_subprocess(impl: str, n: int, h: int, m: int, dtype: str, timeout: float = 600) -> dict:
    """Run :func:`probe` in a fresh interpreter (so high-water marks don't mix) and parse its JSON."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "benchmarks.memory_peak", "--impl", impl, "--size", f"{n},{h},{m}", "--dtype", dtype]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=root)
    except subprocess.TimeoutExpired:
        return {"impl": impl, "error": f"timed out after {timeout} s"}
    if r.returncode != 0:
        return {"impl": impl, "error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", choices=IMPLS, required=True)
    ap.add_argument("--size", required=True, help="n_visible,n_hidden,m")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    a = ap.parse_args(argv)
    n, h, m = (int(v) for v in a.size.split(","))
    print(json.dumps(probe(a.impl, n, h, m, a.dtype)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
