"""Before/after: this checkout's trainer against another commit's, on the UFLDL exercise, in one process.

    python -m benchmarks.compare_trainer 9833f39                   # 400 L-BFGS steps, float64, 5 rounds
    python -m benchmarks.compare_trainer HEAD~1 --steps 100 --rounds 3 --m 2000

The other commit's ``sae_jax`` is imported side by side (:func:`benchmarks.compare_kernels.import_at`).
Each round trains once with each version (``sae_jax.training.train(x, TrainConfig(steps=...),
pictures=False)``, the order alternating), after one untimed run each (compilation). Reported:
the medians, the median of the per-round ratios new/old (< 1: this checkout is faster), the final
costs, whether the final parameters are bit-identical, and the objective evaluations of one run
each (counted by a host callback in a ``value_and_grad_fn`` wrapping the manual gradient, a
separate run: the timed runs are the plain trainer).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from .compare_kernels import import_at


def _train_fn(pkg, x, steps):
    import jax.numpy as jnp

    cfg = pkg.training.TrainConfig(steps=steps)

    def run(**kw):
        return pkg.training.train(x, cfg, pictures=False, **kw)

    def counted():
        import jax

        calls = [0]

        def bump():
            calls[0] += 1

        def vg(params, batch):
            jax.debug.callback(bump)
            terms, grads = pkg.cost_terms_and_grad(
                params, batch.astype(params.W1.dtype), lam=cfg.lam, beta=cfg.beta, rho=cfg.rho
            )
            return (terms.cost, terms), grads

        run(value_and_grad_fn=vg)
        return calls[0]

    del jnp
    return run, counted


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev", help="the other commit")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--m", type=int, default=10_000, help="patches (the exercise: 10,000)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)  # the exercise's float64, as the CLI sets it
    import sae_jax
    import sae_jax.training  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        old = import_at(args.rev, Path(tmp))
        import importlib

        importlib.import_module(old.__name__ + ".training")
        from sae_jax.data import natural_image_patches

        x = np.asarray(natural_image_patches(args.m, 8, seed=0))
        fns = {"new": _train_fn(sae_jax, x, args.steps), "old": _train_fn(old, x, args.steps)}
        results = {k: f[0]() for k, f in fns.items()}  # compile
        walls = {"new": [], "old": []}
        for r in range(args.rounds):
            for k in (("new", "old") if r % 2 == 0 else ("old", "new")):
                t0 = time.perf_counter()
                results[k] = fns[k][0]()
                walls[k].append(time.perf_counter() - t0)
        evals = {k: f[1]() for k, f in fns.items()}
    ratios = [a / b for a, b in zip(walls["new"], walls["old"])]
    same = all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(results["new"].params, results["old"].params)
        if a is not None
    )
    cost = {k: r.metrics[-1]["cost"] for k, r in results.items()}
    print(f"trainer, {args.steps} L-BFGS steps, m={args.m}, float64, {args.rounds} interleaved rounds")
    for k in ("new", "old"):
        print(f"  {k}: median {np.median(walls[k]):.3f} s  all {[round(w, 3) for w in walls[k]]}  "
              f"final cost {cost[k]:.6f}  evaluations {evals[k]}")
    print(f"  new/old: median of per-round ratios {np.median(ratios):.4f}  ({[round(q, 3) for q in ratios]})")
    print(f"  final params bit-identical: {same}")


if __name__ == "__main__":
    main()
