"""Results: the targets of the speed issue checked against one run, and JSON + markdown output."""

from __future__ import annotations

import json
import os

IMPL_ORDER = ("sae_jax manual", "sae_jax + OpenBLAS", "jax.grad", "numpy", "numpy 1 thread", "torch", "torch 1 thread")


def targets(res: dict) -> list[dict]:
    """Each target of the issue, with the measured value, met or not, and by how much it misses."""
    out = []
    for r in res.get("kernels", []):
        man = r["results"]["sae_jax manual"]
        if r["fastest_peer"] is not None:
            sp = man["speedup_vs_fastest_peer"]["median"]
            out.append({
                "target": f"{r['size']} {r['dtype']}: manual ≥ 1.0× fastest peer ({r['fastest_peer']})",
                "value": sp, "goal": 1.0, "met": sp >= 1.0,
            })
        blas = r["results"].get("sae_jax + OpenBLAS")
        if blas is not None and r["fastest_peer"] is not None:
            v = blas["speedup_vs_fastest_peer"]["median"]
            out.append({
                "target": f"{r['size']} {r['dtype']}: optional OpenBLAS path ≥ 1.0× fastest peer (informational)",
                "value": v, "goal": 1.0, "met": v >= 1.0,
            })
        if r["size"] not in ("S1",):  # S2, S3 and custom (larger) sizes
            frac = man["fraction_of_gemm_rate"]
            out.append({
                "target": f"{r['size']} {r['dtype']}: manual ≥ 85% of same-run GEMM rate",
                "value": frac, "goal": 0.85, "met": frac >= 0.85,
            })
        if r["size"] == "S1":
            rg = man["time_vs_jax_grad"]["median"]
            out.append({
                "target": f"S1 {r['dtype']}: manual time ≤ 0.9× jax.grad's",
                "value": rg, "goal": 0.9, "met": rg <= 0.9,
            })
    e2e = res.get("e2e")
    if e2e:
        for k in ("sae_jax float64", "sae_jax float32"):
            if k in e2e["results"]:
                v = e2e["results"][k]["speedup_vs_scipy"]
                out.append({"target": f"UFLDL exercise end to end ({k}) ≥ 5× scipy + numpy", "value": v, "goal": 5.0,
                            "met": v >= 5.0})
    sw = res.get("sweep")
    if sw:
        v = sw["speedup_median"]
        out.append({"target": f"K = {sw['k']} sweep (vmap) ≥ 3× sequential", "value": v, "goal": 3.0, "met": v >= 3.0})
    return out


def _ms(s: float) -> str:
    return f"{s * 1e3:.3g}" if s < 1 else f"{s * 1e3:,.0f}"


def markdown(res: dict) -> str:
    mi = res["machine"]
    blas = "; ".join(
        f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, {b.get('num_threads')} threads)"
        for b in mi.get("blas", []) if isinstance(b, dict)
    )
    v = mi["versions"]
    lines = [
        f"# sae-jax benchmark: {res['tag']}",
        "",
        f"- command: `{res['command']}`",
        f"- date (UTC): {mi['date_utc']}; git commit {mi.get('git_commit')}; total run time {res['total_s']:.0f} s",
        f"- CPU: {mi['cpu']}, {mi['cores']} cores; load average at start {mi.get('load_average_1_5_15')}",
        f"- JAX device: {mi['jax_device']} (backend {mi['jax_backend']}, {mi['jax_device_count']} devices)",
        f"- versions: python {v.get('python')}, jax {v.get('jax')}, jaxlib {v.get('jaxlib')}, numpy {v.get('numpy')}, "
        f"scipy {v.get('scipy')}, torch {v.get('torch')}, optax {v.get('optax')}",
        f"- BLAS (numpy): {blas}",
        f"- env: {', '.join(f'{k}={val}' for k, val in mi['env'].items() if val is not None) or 'none of the BLAS/XLA variables set'}",
        "",
        "Times are medians over interleaved repetitions (IQR in parentheses), one cost+gradient call, in ms.",
        "Speedup = fastest peer's time / sae-jax manual's, the median of per-round ratios.",
        "GFLOP/s counts 10·m·n·h flops per call; GEMM rate = the same five products alone, faster of numpy/JAX.",
        "",
    ]
    for r in res.get("kernels", []):
        pass
    dtypes = []
    for r in res.get("kernels", []):
        if r["dtype"] not in dtypes:
            dtypes.append(r["dtype"])
    for dt in dtypes:
        rows = [r for r in res["kernels"] if r["dtype"] == dt]
        impls = [k for k in IMPL_ORDER if any(k in r["results"] for r in rows)]
        lines += [f"## cost + gradient, {dt}", ""]
        lines.append("| size (n, h, m) | " + " | ".join(impls) + " | speedup vs fastest peer | manual GFLOP/s | GEMM rate | manual / GEMM |")
        lines.append("|---" * (len(impls) + 5) + "|")
        for r in rows:
            cells = []
            for k in impls:
                t = r["results"].get(k)
                cells.append(f"{_ms(t['median_s'])} ({_ms(t['iqr_s'])})" if t else "–")
            man = r["results"]["sae_jax manual"]
            lines.append(
                f"| {r['size']} ({r['n_visible']}, {r['n_hidden']}, {r['m']}) | " + " | ".join(cells)
                + (f" | {man['speedup_vs_fastest_peer']['median']:.2f}× vs {r['fastest_peer']}"
                   if r["fastest_peer"] else " | (no CPU peers at this size)")
                + f" | {man['gflops']:.1f} | {r['gemm_rate_gflops']:.1f} | {100 * man['fraction_of_gemm_rate']:.0f}% |"
            )
        lines.append("")
        lines.append("First call (compile + run) for the JAX implementations, ms: " + "; ".join(
            f"{r['size']} manual {_ms(r['results']['sae_jax manual']['first_call_s'])}, "
            f"jax.grad {_ms(r['results']['jax.grad']['first_call_s'])}" for r in rows))
        bb = [r for r in rows if "blas_backend" in r]
        if bb:
            lines.append("")
            lines.append("`sae_jax + OpenBLAS` (benchmarks/blas_dispatch.py, a benchmark-side experiment) reached "
                         "OpenBLAS via: " + "; ".join(f"{r['size']} {r['blas_backend']}" for r in bb))
        ck = [r for r in rows if "checked_cost_and_grad" in r]
        if ck:
            lines.append("")
            lines.append("Public, checked `sae_jax.cost_and_grad` overhead over the unchecked kernel, ms per call: " + "; ".join(
                f"{r['size']} {r['checked_cost_and_grad']['overhead_s'] * 1e3:.2f}" for r in ck))
        lines.append("")
    sw = res.get("sweep")
    if sw:
        lines += [
            "## Hyperparameter sweep", "",
            f"K = {sw['k']} settings × {sw['steps']} gradient-descent steps at (n, h, m) = "
            f"({sw['n_visible']}, {sw['n_hidden']}, {sw['m']}), {sw['dtype']}: sequential {sw['sequential_median_s']:.2f} s, "
            f"one vmapped run {sw['vmapped_median_s']:.2f} s: **{sw['speedup_median']:.2f}×** "
            f"(compile+first run {sw['sequential_first_call_s']:.1f} s / {sw['vmapped_first_call_s']:.1f} s; "
            f"final costs agree to {sw.get('final_cost_max_rel_diff', float('nan')):.1e} relative).", "",
        ]
    ts = res.get("train_sweep")
    if ts:
        lines += [
            f"`sae_jax._src.sweep` (the trainer over K = {ts['k']} settings in one compiled program) against {ts['k']} "
            f"sequential `train()` calls, {ts['steps']} {ts['optimizer']} steps at ({ts['n_visible']}, {ts['n_hidden']}, "
            f"{ts['m']}), {ts['dtype']}: sequential {ts['sequential_median_s']:.2f} s (compile {ts['sequential_compile_s']:.1f} s once); "
            + "; ".join(f"`batching={b!r}` {o['median_s']:.2f} s: **{o['speedup_median']:.2f}×** (compile {o['compile_s']:.1f} s, "
                        f"final costs within {o['final_cost_max_rel_diff']:.1e})" for b, o in ts["sweeps"].items()) + ".", "",
        ]
    e2e = res.get("e2e")
    if e2e:
        lines += ["## UFLDL exercise end to end", "",
                  f"{e2e['m']} patches ({e2e['data']}), {e2e['iterations']} L-BFGS iterations, λ, β, ρ = "
                  f"{e2e['hyperparameters']['lam']}, {e2e['hyperparameters']['beta']}, {e2e['hyperparameters']['rho']}; "
                  f"wall = median of {e2e.get('rounds', 1)} interleaved runs per contender, speedup = median of "
                  "the per-round ratios.", "",
                  "| run | wall s | first call s | final cost | iterations / evals | speedup vs scipy |", "|---|---|---|---|---|---|"]
        for k, r in e2e["results"].items():
            ev = r.get("function_evaluations", "–")
            fc = f"{r['first_call_s']:.2f}" if "first_call_s" in r else "–"
            spd = f"{r['speedup_vs_scipy']:.1f}×" if "speedup_vs_scipy" in r else "1×"
            lines.append(f"| {k} | {r['wall_s']:.2f} | {fc} | {r['final_cost']:.4f} | {r['iterations']} / {ev} | {spd} |")
        lines += ["", "How: " + "; ".join(f"{k}: {r['how']}" for k, r in e2e["results"].items()), ""]
    mem = res.get("memory")
    if mem:
        lines += ["## Peak memory", "",
                  "Fresh subprocess per implementation; peak RSS (VmHWM) after three calls, and what the calls "
                  "added over the post-setup high-water mark (JAX: compilation included). XLA temp = the compiled "
                  "call's scratch buffers by XLA's own accounting.", "",
                  "| size | dtype | implementation | peak RSS MiB | added by the call MiB | XLA temp MiB |", "|---|---|---|---|---|---|"]
        for r in mem:
            if "error" in r or "skipped" in r:
                lines.append(f"| {r.get('size', '?')} | {r.get('dtype', '?')} | {r['impl']} | {r.get('error', r.get('skipped'))} | | |")
                continue
            xla = r.get("xla_memory_analysis")
            xt = f"{xla['temp_size_in_bytes'] / 2**20:.1f}" if isinstance(xla, dict) and "temp_size_in_bytes" in xla else "–"
            dev = f" (device peak {r['device_peak_bytes_in_use'] / 2**20:.1f})" if "device_peak_bytes_in_use" in r else ""
            lines.append(f"| {r.get('size')} | {r['dtype']} | {r['impl']} | {r['peak_rss_bytes'] / 2**20:.0f} | "
                         f"{r['call_added_bytes'] / 2**20:.1f} | {xt}{dev} |")
        lines.append("")
    extra = res.get("extra")
    if extra:
        lines += ["## Other benchmarks", ""]
        for k, v in extra.items():
            lines.append(f"- `{k}`: {v if isinstance(v, str) else json.dumps(v)[:300]}")
        lines.append("")
    tg = res.get("targets", [])
    if tg:
        lines += ["## Targets (issue 5)", "", "| target | measured | goal | met |", "|---|---|---|---|"]
        for t in tg:
            val = f"{100 * t['value']:.0f}%" if "GEMM" in t["target"] else f"{t['value']:.2f}"
            goal = f"{100 * t['goal']:.0f}%" if "GEMM" in t["target"] else f"{t['goal']:.2f}"
            lines.append(f"| {t['target']} | {val} | {goal} | {'yes' if t['met'] else '**no**'} |")
        lines.append("")
    return "\n".join(lines)


def write(res: dict, out_dir: str, tag: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    jpath = os.path.join(out_dir, f"{tag}.json")
    mpath = os.path.join(out_dir, f"{tag}.md")
    with open(jpath, "w") as f:
        json.dump(res, f, indent=1, default=str)
        f.write("\n")
    with open(mpath, "w") as f:
        f.write(markdown(res))
    return jpath, mpath


def readme_table(res: dict, dtype: str = "float32") -> str:
    """The README's small table: median ms per call and the ratio to the fastest peer, one dtype."""
    lines = [
        "| size (n, h, m) | sae-jax manual | `jax.grad` | fastest peer | speedup vs fastest peer |",
        "|---|---|---|---|---|",
    ]
    for r in res.get("kernels", []):
        if r["dtype"] != dtype or r["fastest_peer"] is None:
            continue
        R = r["results"]
        man = R["sae_jax manual"]
        lines.append(
            f"| {r['size']} ({r['n_visible']}, {r['n_hidden']}, {r['m']:,}) | {_ms(man['median_s'])} ms | "
            f"{_ms(R['jax.grad']['median_s'])} ms | {r['fastest_peer']}: {_ms(R[r['fastest_peer']]['median_s'])} ms | "
            f"{man['speedup_vs_fastest_peer']['median']:.2f}× |"
        )
    return "\n".join(lines)
