"""Hyperparameter sweep: K settings trained in one ``vmap``-ped, jitted run vs K sequential runs.

Both sides call the *same* training function (``steps`` full-batch gradient-descent steps in
a ``lax.fori_loop`` over the manual cost+grad, jitted once): sequential calls it K times in a
Python loop, one setting at a time; the sweep calls ``jax.jit(jax.vmap(train))`` once with
the K settings stacked. Compilation is excluded from both (each is called once first) and
reported separately. The final costs of the two agree to float rounding (reported); the step
size (0.2) keeps gradient descent stable for every setting, so rounding differences stay small.
"""

from __future__ import annotations

import functools
import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import sae_jax
from sae_jax import cost_and_grad

BETAS = (0.5, 1.0, 3.0, 5.0)
RHOS = (0.01, 0.03, 0.05, 0.1)


def settings(k: int = 16, dtype=jnp.float32):
    """K (lam, beta, rho) settings: the grid BETAS × RHOS (λ = 1e-4), cycled to length K."""
    grid = list(itertools.product(BETAS, RHOS))
    grid = [grid[i % len(grid)] for i in range(k)]
    lam = jnp.full((k,), 1e-4, dtype)
    beta = jnp.asarray([b for b, _ in grid], dtype)
    rho = jnp.asarray([r for _, r in grid], dtype)
    return lam, beta, rho


def train_gd(params, x, lam, beta, rho, *, steps: int, lr: float):
    """``steps`` gradient-descent steps on the manual cost+grad; returns (params, final cost)."""

    def body(_, p):
        _, g = cost_and_grad(p, x, lam=lam, beta=beta, rho=rho)
        return jax.tree.map(lambda a, b: a - lr * b, p, g)

    p = lax.fori_loop(0, steps, body, params)
    J, _ = cost_and_grad(p, x, lam=lam, beta=beta, rho=rho)
    return p, J


def bench_sweep(n=64, h=25, m=10_000, *, k=16, steps=100, lr=0.2, dtype=jnp.float32, reps=3, log=print) -> dict:
    params = sae_jax.init_params(jax.random.key(0), n, h, dtype=dtype)
    x = jax.random.uniform(jax.random.key(1), (m, n), dtype=dtype, minval=0.1, maxval=0.9)
    lam, beta, rho = settings(k, dtype)
    lr = jnp.asarray(lr, dtype)
    train = jax.jit(functools.partial(train_gd, steps=steps, lr=lr))
    swept = jax.jit(jax.vmap(functools.partial(train_gd, steps=steps, lr=lr), in_axes=(None, None, 0, 0, 0)))

    def sequential():
        return [jax.block_until_ready(train(params, x, lam[i], beta[i], rho[i]))[1] for i in range(k)]

    def vmapped():
        return jax.block_until_ready(swept(params, x, lam, beta, rho))[1]

    t0 = time.perf_counter()
    J_seq = np.asarray(sequential())
    first_seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    J_vm = np.asarray(vmapped())
    first_vm = time.perf_counter() - t0
    ts, tv = [], []
    for r in range(reps):
        for name in (("seq", "vm") if r % 2 == 0 else ("vm", "seq")):
            t0 = time.perf_counter()
            sequential() if name == "seq" else vmapped()
            (ts if name == "seq" else tv).append(time.perf_counter() - t0)
    ratios = np.asarray(ts) / np.asarray(tv)
    out = {
        "n_visible": n,
        "n_hidden": h,
        "m": m,
        "k": k,
        "steps": steps,
        "dtype": np.dtype(dtype).name,
        "sequential_median_s": float(np.median(ts)),
        "vmapped_median_s": float(np.median(tv)),
        "sequential_times_s": ts,
        "vmapped_times_s": tv,
        "sequential_first_call_s": first_seq,
        "vmapped_first_call_s": first_vm,
        "speedup_median": float(np.median(ratios)),
        "final_cost_max_abs_diff": float(np.max(np.abs(J_seq - J_vm))),
        "final_cost_max_rel_diff": float(np.max(np.abs(J_seq - J_vm) / np.abs(J_seq))),
        "final_costs": J_vm.tolist(),
    }
    log(
        f"sweep K={k} x {steps} GD steps at (n={n}, h={h}, m={m}) {out['dtype']}: sequential "
        f"{out['sequential_median_s']:.2f} s, vmapped {out['vmapped_median_s']:.2f} s, "
        f"speedup x{out['speedup_median']:.2f} (first calls {first_seq:.1f} s / {first_vm:.1f} s; "
        f"final costs agree to {out['final_cost_max_rel_diff']:.1e} relative)"
    )
    return out


def bench_train_sweep(n=64, h=25, m=10_000, *, k=16, steps=100, optimizer="lbfgs", dtype="float64",
                      batchings=("map", "vmap"), reps=3, log=print) -> dict:
    """``sae_jax._src.sweep.sweep`` of K settings against K sequential ``sae_jax.training.train`` calls.

    The trainer itself on both sides (full-batch L-BFGS by default, in memory, no pictures): the
    grid is :func:`settings`' β × ρ (λ = 1e-4) on the exercise's data (whitened natural patches
    when ``n`` is a square, else uniform in [0.1, 0.9]). λ, β, ρ are traced in the compiled
    runner, so the sequential side compiles once too (its first call), and each sweep mode
    (``batching="map"``: ``lax.map`` over the settings; ``"vmap"``) compiles its runner once.
    Timed: interleaved repetitions after one untimed call each (compile and first run
    reported apart); medians and the medians of the paired ratios sequential / sweep.
    """
    import dataclasses

    from sae_jax.training import sweep
    from sae_jax.training import TrainConfig, train

    side = int(round(n**0.5))
    if side * side == n:
        from sae_jax.data import natural_image_patches

        x = natural_image_patches(m, side, seed=0)
    else:
        x = np.random.default_rng(1).uniform(0.1, 0.9, (m, n))
    grid = [{"lam": 1e-4, "beta": float(b), "rho": float(r)} for b, r in zip(*(np.asarray(a) for a in settings(k)[1:]))]
    cfg = TrainConfig(n_hidden=h, optimizer=optimizer, steps=steps, dtype=dtype, batch_size=min(128, m))

    def sequential():
        return [train(x, dataclasses.replace(cfg, **s), pictures=False) for s in grid]

    runs = {"sequential": sequential}
    for b in batchings:
        runs[b] = functools.partial(sweep, x, cfg, grid, pictures=False, batching=b)
    first, results = {}, {}
    for name, f in runs.items():
        t0 = time.perf_counter()
        results[name] = f()
        first[name] = time.perf_counter() - t0
    times = {name: [] for name in runs}
    names = list(runs)
    for r in range(reps):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t0)
    seq = results["sequential"]
    J_seq = np.asarray([r.metrics[-1]["cost"] for r in seq])
    out = {
        "n_visible": n, "n_hidden": h, "m": m, "k": k, "steps": steps, "optimizer": optimizer, "dtype": dtype,
        "reps": reps,
        "sequential_median_s": float(np.median(times["sequential"])),
        "sequential_times_s": times["sequential"],
        "sequential_first_call_s": first["sequential"],
        "sequential_compile_s": float(seq[0].compile_s),
        "sequential_compile_s_later_calls": float(sum(r.compile_s for r in seq[1:])),
        "sweeps": {},
    }
    parts = []
    for b in batchings:
        sw = results[b]
        J_sw = np.asarray([s["cost"] for s in sw.summary])
        ratios = np.asarray(times["sequential"]) / np.asarray(times[b])
        out["sweeps"][b] = {
            "median_s": float(np.median(times[b])),
            "times_s": times[b],
            "first_call_s": first[b],
            "compile_s": float(sw.compile_s),
            "speedup_median": float(np.median(ratios)),
            "final_cost_max_rel_diff": float(np.max(np.abs(J_seq - J_sw) / np.abs(J_seq))),
        }
        o = out["sweeps"][b]
        parts.append(f"sweep {b} {o['median_s']:.2f} s (x{o['speedup_median']:.2f}, compile {o['compile_s']:.1f} s, "
                     f"final costs within {o['final_cost_max_rel_diff']:.1e})")
    log(
        f"train sweep K={k} x {steps} {optimizer} steps at (n={n}, h={h}, m={m}) {dtype}: {k} sequential "
        f"train() {out['sequential_median_s']:.2f} s (compile {out['sequential_compile_s']:.1f} s once); "
        + "; ".join(parts)
    )
    return out
