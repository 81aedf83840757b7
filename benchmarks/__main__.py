"""``python -m benchmarks``: sae-jax's cost+gradient against numpy and PyTorch, on this machine, in one run.

Example invocations:
  python -m benchmarks                       # the full CPU benchmark (≲ 10 min): S1, S2, S3 × float32, float64,
                                             # sweep, UFLDL exercise end to end, peak memory
  python -m benchmarks --quick               # tiny sizes, seconds; writes results/<tag>-quick.*
  python -m benchmarks --sizes S1,S2 --dtypes float32 --skip e2e,sweep,memory
  python -m benchmarks --sizes 4096x16384x65536 --tag gpu-h100   # custom n_visible x n_hidden x m
  python -m benchmarks --xla-flags=--xla_cpu_use_xnnpack=true    # try an XLA flag (benchmark only)

Prints a table as it goes and writes ``benchmarks/results/<tag>.json`` and ``<tag>.md`` (machine info:
CPU, cores, versions, BLAS, device). The tag defaults to the JAX backend (``cpu``, ``gpu``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

SKIPPABLE = ("kernels", "sweep", "e2e", "memory", "others")
QUICK_SIZES = {"S1": (64, 25, 1000), "S2": (196, 49, 1000), "S3": (256, 512, 512)}


def _parse_sizes(spec: str, quick: bool):
    from .kernels import SIZES

    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        if item in SIZES:
            out.append((item, *(QUICK_SIZES[item] if quick else SIZES[item])))
        else:
            try:
                n, h, m = (int(v) for v in item.lower().split("x"))
            except ValueError:
                raise SystemExit(f"--sizes: expected S1, S2, S3 or NxHxM (e.g. 64x25x10000), got {item!r}")
            out.append((f"{n}x{h}x{m}", n, h, m))
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )
    ap.add_argument("--quick", action="store_true", help="tiny sizes and budgets (a smoke run)")
    ap.add_argument("--sizes", default="S1,S2,S3", help="comma list of S1, S2, S3 or NxHxM (default S1,S2,S3)")
    ap.add_argument("--dtypes", default="float32,float64", help="comma list (default float32,float64)")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timed rounds per size and dtype (default 4; quick 0.3)")
    ap.add_argument("--skip", default="", help=f"comma list of parts to skip: {', '.join(SKIPPABLE)}")
    ap.add_argument("--no-torch", action="store_true", help="leave the PyTorch peer out even if installed")
    ap.add_argument("--max-peer-flops", type=float, default=1e12,
                    help="leave the CPU peers out of sizes above this many flops per call (default 1e12; S3 is 1.7e11)")
    ap.add_argument("--e2e-iters", type=int, default=None, help="L-BFGS iterations for the exercise (default 400; quick 10)")
    ap.add_argument("--e2e-rounds", type=int, default=None,
                    help="interleaved timed runs of each side of the exercise (default 3; quick 1)")
    ap.add_argument("--sweep-steps", type=int, default=None, help="GD steps per setting in the sweep (default 50; quick 5)")
    ap.add_argument("--sweep-size", default=None, help="NxHxM for the sweep (default 64x25x10000; quick 64x25x1000)")
    ap.add_argument("--train-sweep-steps", type=int, default=None,
                    help="L-BFGS steps per setting in sae_jax._src.sweep vs 16 train() calls (default 100; quick 3)")
    ap.add_argument("--train-sweep-optimizer", default="lbfgs", choices=("lbfgs", "adam", "sgd"),
                    help="optimizer of the sae_jax._src.sweep vs train() comparison (default lbfgs)")
    ap.add_argument("--memory-sizes", default=None, help="sizes for the memory probe (default: --sizes, float32 only)")
    ap.add_argument("--xla-flags", default=None, help="appended to XLA_FLAGS before JAX is imported (benchmark only)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                    help="directory for <tag>.json and <tag>.md")
    ap.add_argument("--tag", default=None, help="file name stem (default: the JAX backend, e.g. cpu; '-quick' added with --quick)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    bad = skip - set(SKIPPABLE)
    if bad:
        print(f"--skip: unknown part(s) {sorted(bad)}; known: {', '.join(SKIPPABLE)}", file=sys.stderr)
        return 2
    for flag in ("e2e_iters", "e2e_rounds", "sweep_steps", "train_sweep_steps"):
        v = getattr(args, flag, None)
        if v is not None and v < 1:
            print(f"--{flag.replace('_', '-')}: expected an integer >= 1, got {v}", file=sys.stderr)
            return 2
    if args.xla_flags:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + args.xla_flags).strip()

    import jax  # after XLA_FLAGS

    jax.config.update("jax_enable_x64", True)  # the benchmark process, not the library: float64 rows need it
    import jax.numpy as jnp

    from . import report
    from .kernels import bench_size
    from .machine import machine_info

    t_start = time.perf_counter()
    q = args.quick
    sizes = _parse_sizes(args.sizes, q)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for d in dtypes:
        if d not in ("float32", "float64"):
            print(f"--dtypes: expected float32 or float64, got {d!r}", file=sys.stderr)
            return 2
    budget = args.budget if args.budget is not None else (0.3 if q else 4.0)
    info = machine_info()
    print(f"# {info['cpu']} ({info['cores']} cores), JAX {info['jax_device']}, load {info['load_average_1_5_15']}", flush=True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    res: dict = {"command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
                 "machine": info, "kernels": []}
    if "kernels" not in skip:
        for label, n, h, m in sizes:
            for d in dtypes:
                res["kernels"].append(bench_size(label, n, h, m, jnp.dtype(d), budget_s=budget,
                                                 torch_peer=not args.no_torch, max_peer_flops=args.max_peer_flops,
                                                 log=log))
    if "sweep" not in skip:
        from .sweep import bench_sweep

        sn, sh, sm = (int(v) for v in (args.sweep_size or ("64x25x1000" if q else "64x25x10000")).split("x"))
        steps = args.sweep_steps or (5 if q else 50)
        res["sweep"] = bench_sweep(sn, sh, sm, steps=steps, reps=1 if q else 3, log=log)
        from .sweep import bench_train_sweep

        res["train_sweep"] = bench_train_sweep(sn, sh, sm, steps=args.train_sweep_steps or (3 if q else 100),
                                               optimizer=args.train_sweep_optimizer, reps=1 if q else 3, log=log)
    if "e2e" not in skip:
        from .e2e import bench_e2e

        res["e2e"] = bench_e2e(m=1000 if q else 10_000, iters=args.e2e_iters or (10 if q else 400),
                               rounds=args.e2e_rounds or (1 if q else 3), log=log)
    if "memory" not in skip:
        from .memory_peak import IMPLS, measure_subprocess
        from .peers import HAVE_TORCH

        msizes = _parse_sizes(args.memory_sizes, q) if args.memory_sizes else sizes
        res["memory"] = []
        for label, n, h, m in msizes:
            for impl in IMPLS:
                if impl == "torch" and (args.no_torch or not HAVE_TORCH):
                    continue
                if impl in ("numpy", "torch") and 10.0 * n * h * m > args.max_peer_flops:
                    continue
                r = measure_subprocess(impl, n, h, m, "float32")
                r["size"] = label
                res["memory"].append(r)
                if "peak_rss_bytes" in r:
                    log(f"memory {label} float32 {impl}: peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB, "
                        f"call added {r['call_added_bytes'] / 2**20:.1f} MiB")
                else:
                    log(f"memory {label} {impl}: {r.get('error', r.get('skipped'))}")
    if "others" not in skip:
        res["extra"] = _others(q, log)
    res["total_s"] = time.perf_counter() - t_start
    res["targets"] = report.targets(res)
    tag = args.tag or info["jax_backend"]
    if q and not tag.endswith("-quick"):
        tag += "-quick"
    res["tag"] = tag
    log("\n## targets")
    for t in res["targets"]:
        log(f"  {'MET ' if t['met'] else 'MISS'} {t['target']}: {t['value']:.3g} (goal {t['goal']})")
    if not args.no_write:
        paths = report.write(res, args.out, tag)
        log(f"wrote {paths[0]} and {paths[1]} ({res['total_s']:.0f} s)")
    return 0


def _others(quick: bool, log) -> dict:
    """Other helpers' benchmark modules, when present (each is optional)."""
    import importlib

    out = {}
    for mod in ("lbfgs_vs_scipy", "memory_chunked"):
        try:
            m = importlib.import_module(f"benchmarks.{mod}")
        except ImportError:
            continue
        fn = getattr(m, "benchmark", None)
        if fn is None:
            out[mod] = f"present; run it with python -m benchmarks.{mod}"
            continue
        try:
            out[mod] = fn(quick=quick)
        except Exception as e:  # noqa: BLE001 - another module's failure must not lose this run
            out[mod] = f"failed: {type(e).__name__}: {e}"
        log(f"{mod}: {str(out[mod])[:200]}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
