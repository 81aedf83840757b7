"""End to end: the UFLDL exercise (64 visible, 25 hidden, 10,000 patches, 400 L-BFGS iterations).

* scipy: ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` on the numpy peer, UFLDL's flat
  ``theta`` (what Python ports of the exercise do), ``maxiter=400``, ``maxcor`` = the trainer's
  L-BFGS memory (100, minFunc's default, as the exercise used; 10 when the trainer is absent).
* sae-jax: the package's own trainer, ``sae_jax._src.training.train(x, TrainConfig(steps=400))`` (L-BFGS,
  its default memory, zoom line search, manual gradient), what ``sae-jax train`` runs; when that module is
  absent, ``optax.lbfgs`` driven here instead (400 iterations in one jitted ``lax.fori_loop``, the
  manual gradient supplied to the line search through a ``jax.custom_vjp``). Neither side uses autodiff.

Same data (:func:`sae_jax._src.data.natural_image_patches` when available), same initial parameters,
float64 on both sides (the exercise's precision); sae-jax in float32 is reported as an extra row.
Reported: wall time, the median of interleaved rounds (each round runs every contender once,
the order alternating), with sae-jax's first, compiling run timed apart; the speedup is the
median of the per-round ratios; final cost, iterations and function evaluations where known.
"""

from __future__ import annotations

import contextlib
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import sae_jax
from sae_jax._src.objective import value_with_grad

from . import peers

HP = dict(lam=1e-4, beta=3.0, rho=0.01)


def exercise_data(m: int = 10_000, seed: int = 0) -> tuple[np.ndarray, str]:
    """``(m, 64)`` float64 patches in [0.1, 0.9] and a description of where they came from."""
    try:
        from sae_jax.data import natural_image_patches

        return natural_image_patches(m, 8, seed=seed), "sae_jax._src.data.natural_image_patches"
    except ImportError:
        pass
    try:  # fallback: raw camera patches, normalised as UFLDL's normalizeData does
        from skimage import data as skdata

        img = skdata.camera().astype(np.float64) / 255.0
        rng = np.random.default_rng(seed)
        r = rng.integers(0, img.shape[0] - 8, m)
        c = rng.integers(0, img.shape[1] - 8, m)
        p = np.stack([img[i : i + 8, j : j + 8].ravel() for i, j in zip(r, c)])
        p -= p.mean(axis=1, keepdims=True)
        s = 3 * p.std()
        p = (np.clip(p, -s, s) / s + 1) * 0.4 + 0.1
        return p, "skimage camera patches (fallback)"
    except ImportError:
        rng = np.random.default_rng(seed)
        return rng.uniform(0.1, 0.9, (m, 64)), "uniform random (fallback)"


def _manual_value_fn(x, hp):
    """``params -> J`` whose reverse-mode derivative is the manual backprop (for optax's line search)."""
    value = value_with_grad(lambda p, x: sae_jax.cost_and_grad(p, x, **hp))
    return lambda p: value(p, x)


def lbfgs_optax(params, x, *, iters: int, hp: dict):
    """``iters`` iterations of ``optax.lbfgs`` on the manual cost+grad; returns (params, cost)."""
    import optax

    value_fn = _manual_value_fn(x, hp)
    opt = optax.lbfgs(memory_size=10)
    vg = optax.value_and_grad_from_state(value_fn)

    def body(_, carry):
        p, state = carry
        value, grad = vg(p, state=state)
        updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=value_fn)
        return optax.apply_updates(p, updates), state

    p, _ = lax.fori_loop(0, iters, body, (params, opt.init(params)))
    return p, value_fn(p)


def _train_api():
    """``(TrainConfig, train, init_state, evaluate)`` from ``sae_jax._src.training`` if it has them, else None."""
    import importlib

    try:
        tm = importlib.import_module("sae_jax._src.training")
    except ImportError:
        return None
    names = ("TrainConfig", "train", "init_state", "evaluate")
    if not all(hasattr(tm, k) for k in names):
        return None
    return tuple(getattr(tm, k) for k in names)


def initial_params(x, dtype, *, n_hidden=25):
    """The initial parameters sae-jax's trainer starts from (so scipy can start from the same)."""
    api = _train_api()
    if api is not None:
        TrainConfig, _, init_state, _ = api
        cfg = TrainConfig(n_hidden=n_hidden, dtype=np.dtype(dtype).name, **HP)
        return init_state(cfg, jnp.asarray(x, dtype)).params
    return sae_jax.init_params(jax.random.key(0), x.shape[1], n_hidden, dtype=dtype)


def sae_jax_runner(params, x, *, iters, hp, use_train_api=True):
    """``(run, how)``: ``run()`` trains once from ``params`` and returns ``(wall_s, final_cost)``."""
    dtype = params.W1.dtype
    api = _train_api() if use_train_api else None
    if api is not None:
        TrainConfig, train, _, evaluate = api
        cfg = TrainConfig(n_hidden=params.W1.shape[0], steps=iters, dtype=np.dtype(dtype).name, **hp)
        how = (f"sae_jax._src.training.train(x, TrainConfig(optimizer={cfg.optimizer!r}, steps={iters}, "
               f"lbfgs_memory={cfg.lbfgs_memory}, chunk={cfg.chunk}, gradient={cfg.gradient!r}), pictures=False)")
        x_np = np.asarray(x)

        def go():
            r = train(x_np, cfg, pictures=False)
            return r.params, evaluate(r.params, jnp.asarray(x_np, dtype), cfg)["cost"]
    else:
        hpj = {k: jnp.asarray(v, dtype) for k, v in hp.items()}
        how = "optax.lbfgs (memory 10, zoom line search) in one jitted fori_loop, manual gradient via custom_vjp"
        fn = jax.jit(functools.partial(lbfgs_optax, iters=iters))

        def go():
            return jax.block_until_ready(fn(params, x, hp=hpj))

    def run():
        t0 = time.perf_counter()
        out = go()
        return time.perf_counter() - t0, float(out[1])

    return run, how


def _sae_row(how, dtype, first, walls, cost, iters) -> dict:
    wall = float(np.median(walls))
    return {
        "how": how,
        "dtype": np.dtype(dtype).name,
        "first_call_s": first,
        "wall_s": wall,
        "wall_s_all": walls,
        "compile_s_approx": first - wall,
        "final_cost": cost,
        "iterations": iters,
    }


def _faster_blas_threads(call, reps: int = 5):
    """1 or the default BLAS thread count, whichever runs ``call`` faster now (interleaved probe).

    On a shared machine OpenBLAS's threads can collapse when another process holds a core; the
    scipy baseline is given whichever configuration is faster at the moment it runs.
    """
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return None
    default = max([d.get("num_threads", 1) for d in threadpool_info() if d.get("user_api") == "blas"] or [1])
    if default == 1:
        return 1
    ts = {1: [], default: []}
    call()
    for _ in range(reps):
        for k in ts:
            with threadpool_limits(k, user_api="blas"):
                t0 = time.perf_counter()
                call()
                ts[k].append(time.perf_counter() - t0)
    return min(ts, key=lambda k: float(np.median(ts[k])))


def lbfgs_memory() -> int:
    """The L-BFGS history both sides use: the trainer's default (``TrainConfig.lbfgs_memory``), else 10."""
    api = _train_api()
    return int(api[0]().lbfgs_memory) if api is not None else 10


def scipy_runner(W1, b1, W2, b2, x, *, iters, hp, memory: int = 10):
    """``(run, info)``: ``run()`` minimises once with scipy's L-BFGS-B, returns ``(wall_s, result)``."""
    from scipy.optimize import minimize

    n, h = x.shape[1], W1.shape[0]
    data = np.ascontiguousarray(x.T)
    theta0 = peers.theta_from_arrays(W1, b1, W2, b2)
    f = functools.partial(peers.numpy_flat_cost_and_grad, n_visible=n, n_hidden=h, data=data, **hp)
    threads = _faster_blas_threads(lambda: f(theta0))

    def run():
        if threads is None:  # no threadpoolctl: BLAS as configured
            limit = contextlib.nullcontext()
        else:
            from threadpoolctl import threadpool_limits

            limit = threadpool_limits(threads, user_api="blas")
        with limit:
            t0 = time.perf_counter()
            res = minimize(f, theta0, method="L-BFGS-B", jac=True, options=dict(maxiter=iters, maxcor=memory))
            return time.perf_counter() - t0, res

    info = {
        "how": f"scipy.optimize.minimize(method='L-BFGS-B', jac=True, maxcor={memory}) on the numpy peer, BLAS threads={threads}",
        "blas_threads": threads,
        "dtype": "float64",
    }
    return run, info


def _scipy_row(info, walls, res) -> dict:
    return {
        **info,
        "wall_s": float(np.median(walls)),
        "wall_s_all": walls,
        "final_cost": float(res.fun),
        "iterations": int(res.nit),
        "function_evaluations": int(res.nfev),
        "message": str(res.message),
    }


def bench_e2e(*, m=10_000, iters=400, float32=True, rounds: int = 3, log=print) -> dict:
    """scipy + numpy vs sae-jax (float64, and float32), ``rounds`` interleaved timed runs each.

    Each round runs every contender once, the order alternating between rounds, so a burst of
    background load hits a round's runs alike; wall times are medians, and the speedup is the
    median of the per-round ratios. sae-jax's first (compiling) run is timed apart.
    """
    x64, source = exercise_data(m)
    params = initial_params(x64, jnp.float64)
    p_np = [np.asarray(a) for a in params]
    memory = lbfgs_memory()
    scipy_run, scipy_info = scipy_runner(*p_np, x64, iters=iters, hp=HP, memory=memory)
    contenders = {"sae_jax float64": sae_jax_runner(params, jnp.asarray(x64), iters=iters, hp=HP)}
    if float32:
        p32 = initial_params(x64, jnp.float32)
        contenders["sae_jax float32"] = sae_jax_runner(p32, jnp.asarray(x64, jnp.float32), iters=iters, hp=HP)
    first = {k: run()[0] for k, (run, _) in contenders.items()}  # compile + run
    walls = {k: [] for k in ("scipy+numpy float64", *contenders)}
    last = {}
    for r in range(max(rounds, 1)):
        order = list(walls) if r % 2 == 0 else list(walls)[::-1]
        for k in order:
            w, last[k] = scipy_run() if k == "scipy+numpy float64" else contenders[k][0]()
            walls[k].append(w)
    rows = {"scipy+numpy float64": _scipy_row(scipy_info, walls["scipy+numpy float64"], last["scipy+numpy float64"])}
    sc = rows["scipy+numpy float64"]
    log(f"e2e scipy L-BFGS-B + numpy: {sc['wall_s']:.2f} s (median of {len(walls['scipy+numpy float64'])}), "
        f"cost {sc['final_cost']:.4f}, {sc['iterations']} it / {sc['function_evaluations']} evals")
    for k, (_, how) in contenders.items():
        dtype = jnp.float64 if k.endswith("float64") else jnp.float32
        row = _sae_row(how, dtype, first[k], walls[k], last[k], iters)
        ratios = np.asarray(walls["scipy+numpy float64"]) / np.asarray(walls[k])
        row["speedup_vs_scipy"] = float(np.median(ratios))
        row["speedup_vs_scipy_all"] = ratios.tolist()
        rows[k] = row
        log(f"e2e {k}: {row['wall_s']:.2f} s (first call {row['first_call_s']:.2f} s), cost {row['final_cost']:.4f}, "
            f"x{row['speedup_vs_scipy']:.1f} vs scipy (per round {', '.join(f'{v:.1f}' for v in ratios)})")
    return {"m": m, "iterations": iters, "rounds": rounds, "lbfgs_memory": memory, "data": source,
            "hyperparameters": HP, "results": rows}
