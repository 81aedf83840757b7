"""Peak memory of the one-shot full-batch cost+gradient against the chunked (streamed) one.

``python -m benchmarks.memory_chunked [--size 256,64,500000] [--chunk-size 4096] [--dtype float32]``

Writes the data once to a ``.npy`` file, then measures each case in a **fresh subprocess** (so
high-water marks never mix), by the process's peak resident set (Linux ``VmHWM``; ``ru_maxrss`` elsewhere):

- ``one-shot``: ``np.load`` the whole file, then :func:`sae_jax.cost_and_grad` (device copy of x,
  every activation and delta of all m rows at once);
- ``chunked (.npy path)``: :func:`sae_jax._src.chunked.chunked_cost_and_grad` given the path; it
  reads ``chunk_size`` rows at a time with plain file reads;
- ``chunked (np.memmap)``: the same given ``np.load(path, mmap_mode="r")``; the mapped pages it
  has touched count in RSS (they are clean page cache the kernel can drop, but the RSS peak
  sees them).

Each subprocess first imports JAX, builds the parameters and compiles nothing; "baseline" is
its RSS at that point (interpreter + JAX + XLA runtime), "added" is peak minus baseline. Every
case runs the cost and gradient twice (compile + run) and reports the second call's time and
the cost, which must agree across cases. Prints a table and writes
``benchmarks/results/memory_chunked.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

CASES = ("one-shot", "chunked (.npy path)", "chunked (np.memmap)")
HP = dict(lam=1e-4, beta=3.0, rho=0.01)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "memory_chunked.json")


def _maxrss_bytes() -> int:
    """This process's peak resident set.

    On Linux, ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` would not do, because ``exec``
    folds the forked parent's high-water mark into it (a child of a large parent starts "large").
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024  # Linux reports KiB


def write_data(path: str, n: int, m: int, dtype: str, block: int = 16384) -> None:
    """m × n uniform [0, 1) samples, written block by block (the writer never holds them all)."""
    import numpy as np

    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (m, n)}
        )
        for start in range(0, m, block):
            k = min(block, m - start)
            f.write(rng.uniform(size=(k, n)).astype(dtype).tobytes())


def probe(case: str, path: str, n: int, h: int, dtype: str, chunk_size: int) -> dict:
    """One case, in this (fresh) process."""
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    import jax.numpy as jnp
    import numpy as np

    import sae_jax as sae
    from sae_jax._src import chunked

    params = sae.init_params(jax.random.key(0), n, h, dtype=jnp.dtype(dtype))
    jax.block_until_ready(params)
    baseline = _maxrss_bytes()
    if case == "one-shot":
        def run():
            x = jnp.asarray(np.load(path))
            return sae.cost_and_grad(params, x, **HP)
    elif case == "chunked (.npy path)":
        def run():
            return chunked.chunked_cost_and_grad(params, path, chunk_size=chunk_size, **HP)
    elif case == "chunked (np.memmap)":
        def run():
            return chunked.chunked_cost_and_grad(params, np.load(path, mmap_mode="r"), chunk_size=chunk_size, **HP)
    else:
        raise ValueError(case)
    J, g = jax.block_until_ready(run())  # compile + run
    t0 = time.perf_counter()
    J, g = jax.block_until_ready(run())
    seconds = time.perf_counter() - t0
    peak = _maxrss_bytes()
    return {
        "case": case,
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": peak,
        "added_bytes": peak - baseline,
        "seconds_second_call": seconds,
        "cost": float(J),
        "grad_W1_norm": float(jnp.linalg.norm(g.W1)),
    }


def measure_subprocess(case: str, path: str, n: int, h: int, dtype: str, chunk_size: int, timeout=900) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "benchmarks.memory_chunked", "--probe", case, "--data", path,
           "--size", f"{n},{h},0", "--dtype", dtype, "--chunk-size", str(chunk_size)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    if r.returncode != 0:
        return {"case": case, "error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _mib(b) -> str:
    return f"{b / 2**20:8.0f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="256,64,500000", help="n_visible,n_hidden,m")
    ap.add_argument("--chunk-size", type=int, default=4096)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--probe", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    n, h, m = (int(v) for v in a.size.split(","))
    if a.probe:
        print(json.dumps(probe(a.probe, a.data, n, h, a.dtype, a.chunk_size)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npy")
        write_data(path, n, m, a.dtype)
        rows = [measure_subprocess(c, path, n, h, a.dtype, a.chunk_size) for c in CASES]
    data_bytes = m * n * (4 if a.dtype == "float32" else 8)
    print(f"n_visible={n} n_hidden={h} m={m} {a.dtype}: data {data_bytes / 2**20:.0f} MiB, chunk_size={a.chunk_size}")
    print(f"{'case':22s} {'peak RSS MiB':>12s} {'baseline MiB':>12s} {'added MiB':>10s} {'s/call':>8s}  cost")
    for r in rows:
        if "error" in r:
            print(f"{r['case']:22s} error: {r['error']}")
            continue
        print(f"{r['case']:22s} {_mib(r['peak_rss_bytes']):>12s} {_mib(r['baseline_rss_bytes']):>12s} "
              f"{_mib(r['added_bytes']):>10s} {r['seconds_second_call']:8.2f}  {r['cost']:.10g}")
    ok = [r for r in rows if "error" not in r]
    ratios = {}
    if len(ok) == len(rows):
        one = rows[0]
        for r in rows[1:]:
            ratios[r["case"]] = {
                "peak_rss_ratio": one["peak_rss_bytes"] / r["peak_rss_bytes"],
                "added_ratio": one["added_bytes"] / max(1, r["added_bytes"]),
                "cost_rel_diff": abs(r["cost"] - one["cost"]) / abs(one["cost"]),
            }
            print(f"one-shot / {r['case']}: peak RSS x{ratios[r['case']]['peak_rss_ratio']:.1f}, "
                  f"added x{ratios[r['case']]['added_ratio']:.1f}, cost rel. diff {ratios[r['case']]['cost_rel_diff']:.1e}")
    result = {
        "what": "peak RSS (VmHWM) of one full-batch cost_and_grad, one-shot vs chunked, fresh subprocess per case",
        "n_visible": n, "n_hidden": h, "m": m, "dtype": a.dtype, "chunk_size": a.chunk_size,
        "data_bytes": data_bytes, "hyperparameters": HP,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "cases": rows, "one_shot_over_chunked": ratios,
    }
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {os.path.relpath(a.out, ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
