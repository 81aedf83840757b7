"""Before/after: this checkout's cost+gradient kernels against another commit's, in one process.

    python -m benchmarks.compare_kernels ed79dd1                 # S1,S2 float32+float64
    python -m benchmarks.compare_kernels HEAD~3 --sizes S1,S2,S3 --rounds 40

The other commit's ``sae_jax`` is exported with ``git archive`` into a temporary directory and
imported under another name (``sae_jax_at_rev``), so both versions run side by side on the same
arrays. Each round calls every kernel once (order alternating); the report gives medians and the
median of the per-round ratios new/old (< 1: this checkout is faster), for the manual backprop
(``jax.jit(sae_jax.cost_and_grad)``: the public function traced, so its checks run once at trace
time and the compiled kernel is the bare backprop, what a training loop runs) and for
``jax.jit(jax.value_and_grad(sae_jax.cost))``. Both use only public names, which every commit
has had (a commit before issue 13's unchecked-kernel convention traces its public functions into
the same kernels), so any two commits compare. The figures of each optimisation in
``benchmarks/NOTES.md`` quote this script's output.
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from .kernels import SIZES

ROOT = Path(__file__).resolve().parents[1]
ALIAS = "sae_jax_at_rev"


def import_at(rev: str, into: Path):
    """``sae_jax`` as of ``rev``, imported as :data:`ALIAS` (absolute self-imports rewritten)."""
    try:
        blob = subprocess.run(["git", "archive", rev, "sae_jax"], cwd=ROOT, check=True, capture_output=True).stdout
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"compare_kernels: cannot export sae_jax at {rev!r}: {e.stderr.decode().strip()}") from None
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    pkg = into / ALIAS
    (into / "sae_jax").rename(pkg)
    for f in pkg.rglob("*.py"):
        f.write_text(re.sub(r"\b(from|import) sae_jax\b", rf"\1 {ALIAS}", f.read_text()))
    sys.path.insert(0, str(into))
    return importlib.import_module(ALIAS)


def _kernels(pkg):
    import jax

    manual = jax.jit(pkg.cost_and_grad, static_argnames="output")
    autodiff = jax.jit(jax.value_and_grad(lambda p, x, lam, beta, rho: pkg.cost(p, x, lam=lam, beta=beta, rho=rho)))
    return {
        "manual": lambda p, x: manual(p, x, lam=1e-4, beta=3.0, rho=0.01),
        "jax.grad": lambda p, x: autodiff(p, x, 1e-4, 3.0, 0.01),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare_kernels", description=__doc__.split("\n\n")[0])
    ap.add_argument("rev", help="the commit to compare against (e.g. a hash, HEAD~1, a tag)")
    ap.add_argument("--sizes", default="S1,S2", help="comma list of S1, S2, S3 (default S1,S2)")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--rounds", type=int, default=0, help="timed rounds per size (default: 60 at S1, 12 at S2, 4 at S3)")
    args = ap.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    bad = [s for s in sizes if s not in SIZES]
    if bad or args.rounds < 0:
        ap.error(f"--sizes must name {', '.join(SIZES)}; --rounds >= 0" + (f" (got {bad})" if bad else ""))

    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import sae_jax

    with tempfile.TemporaryDirectory() as tmp:
        old_pkg = import_at(args.rev, Path(tmp))
        impls = {"old": _kernels(old_pkg), "new": _kernels(sae_jax)}
        print(f"this checkout vs {args.rev}: median ms per call, paired new/old (< 1: faster now)")
        for name in sizes:
            n, h, m = SIZES[name]
            rounds = args.rounds or {"S1": 60, "S2": 12, "S3": 4}[name]
            for dt in (s.strip() for s in args.dtypes.split(",")):
                dtype = jnp.dtype(dt)
                p = sae_jax.init_params(jax.random.key(0), n, h, dtype=dtype)
                x = jax.random.uniform(jax.random.key(1), (m, n), dtype=dtype, minval=0.1, maxval=0.9)
                calls = {(v, k): f for v, ks in impls.items() for k, f in ks.items()}
                for f in calls.values():
                    jax.block_until_ready(f(p, x))  # compile
                times = {c: [] for c in calls}
                order = list(calls)
                for r in range(rounds):
                    for c in order if r % 2 == 0 else order[::-1]:
                        t = time.perf_counter()
                        jax.block_until_ready(calls[c](p, x))
                        times[c].append(time.perf_counter() - t)
                parts = []
                for k in impls["new"]:
                    ratio = np.median(np.array(times[("new", k)]) / np.array(times[("old", k)]))
                    parts.append(f"{k} {1e3 * np.median(times[('old', k)]):.2f} -> "
                                 f"{1e3 * np.median(times[('new', k)]):.2f} ({ratio:.3f})")
                print(f"{name} {dtype.name}: " + "; ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
