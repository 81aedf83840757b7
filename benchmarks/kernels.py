"""Cost + gradient per call, at one size and dtype: sae-jax against its peers and the GEMM rate.

Implementations (all compute the same J and the same four gradient arrays):

* ``sae_jax manual``   ``jax.jit(sae_jax.cost_and_grad)``: the tutorial's backprop traced into the
  caller's jit, so its checks run once at trace time (what a training loop runs): the raw kernel;
* ``sae_jax checked``  the public ``sae_jax.cost_and_grad`` called on values (checks the inputs, the
  array values inside the same compiled call); timed once per size to report the checking overhead;
* ``jax.grad``         ``jax.jit(jax.value_and_grad(sae_jax.cost))``;
* ``numpy``            :func:`benchmarks.peers.numpy_cost_and_grad` (UFLDL column layout);
* ``torch``            :func:`benchmarks.peers.make_torch_cost_and_grad` (autograd, CPU).
* ``sae_jax + OpenBLAS``  the optional CPU path of :mod:`benchmarks.blas_dispatch` (sae-jax's backprop,
  the five products by numpy's OpenBLAS through a zero-copy XLA FFI call when a C++ compiler is
  available, else ``jax.pure_callback``; the result's ``blas_backend`` says which); timed on the
  CPU backend at sizes of ≥ 2e10 flops per call (S3), where XLA's matmul rate is the bottleneck;
* ``numpy 1 thread``, ``torch 1 thread``: the same peers with their thread pools limited to one
  thread (``threadpoolctl`` / ``torch.set_num_threads``). On a machine shared with other
  processes a library's two threads can collapse when another process holds a core; the
  single-threaded peer is then faster, and the *fastest peer* is taken over all of them, so
  sae-jax is compared against the best configuration of each peer. Timed at sizes whose
  call takes under about a second (``single_thread_peers``).

GEMM rate: the five matrix products a cost+grad call contains, with the same shapes
(``x W1ᵀ``, ``a2 W2ᵀ``, ``δ3 W2``, ``δ2ᵀ x``, ``δ3ᵀ a2``: 10·m·n·h flops together), timed
back to back in numpy (OpenBLAS) and in one jitted JAX function. An implementation's
efficiency is its GFLOP/s (10·m·n·h / time) over the faster of the two GEMM rates.
"""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np

import sae_jax

from . import peers
from .timing import measure, paired_ratio

HP = dict(lam=1e-4, beta=3.0, rho=0.01)

#: The raw kernel: the public function under the caller's jit (shape checks at trace time only).
manual_kernel = jax.jit(sae_jax.cost_and_grad, static_argnames="output")

SIZES = {
    "S1": (64, 25, 10_000),
    "S2": (784, 196, 10_000),
    "S3": (1024, 4096, 4096),
}


def flops_per_call(n: int, h: int, m: int) -> float:
    """≈10·m·n·h: five (m × n × h) matrix products of 2·m·n·h flops each."""
    return 10.0 * m * n * h


def make_problem(n: int, h: int, m: int, dtype, seed: int = 0):
    """Params (UFLDL init) and data in [0.1, 0.9], as JAX arrays on the default device."""
    params = sae_jax.init_params(jax.random.key(seed), n, h, dtype=dtype)
    x = jax.random.uniform(jax.random.key(seed + 1), (m, n), dtype=dtype, minval=0.1, maxval=0.9)
    return params, x


def _block(tree):
    return jax.block_until_ready(tree)


def _one_thread_numpy(fn):
    from threadpoolctl import threadpool_limits

    def call():
        with threadpool_limits(1, user_api="blas"):
            return fn()

    return call


def _one_thread_torch(fn):
    import torch

    def call():
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn()
        finally:
            torch.set_num_threads(n)

    return call


PEERS = ("numpy", "numpy 1 thread", "torch", "torch 1 thread")


def implementations(
    params, x, *, torch_peer: bool = True, single_thread_peers: bool = False, cpu_peers: bool = True,
    blas_path: bool = False,
) -> dict:
    """Zero-argument callables, each computing J and the gradient once and blocking on the result."""
    dtype = params.W1.dtype
    hp = {k: jnp.asarray(v, dtype) for k, v in HP.items()}
    autodiff = jax.jit(jax.value_and_grad(sae_jax.cost))
    p_np = [np.asarray(a) for a in params]
    data_cols = np.ascontiguousarray(np.asarray(x).T)  # UFLDL layout: one sample per column
    hp_np = {k: np.dtype(dtype).type(v) for k, v in HP.items()}

    fns = {
        "sae_jax manual": lambda: _block(manual_kernel(params, x, **hp)),
        "jax.grad": lambda: _block(autodiff(params, x, **hp)),
    }
    if blas_path:
        from .blas_dispatch import cost_and_grad_blas

        fns["sae_jax + OpenBLAS"] = lambda: _block(cost_and_grad_blas(params, x, **hp))
    if not cpu_peers:
        return fns
    fns["numpy"] = lambda: peers.numpy_cost_and_grad(*p_np, data_cols, **hp_np)
    if single_thread_peers and importlib.util.find_spec("threadpoolctl") is not None:
        fns["numpy 1 thread"] = _one_thread_numpy(fns["numpy"])
    if torch_peer and peers.HAVE_TORCH:
        fns["torch"] = peers.make_torch_cost_and_grad(*p_np, np.asarray(x), **hp_np)
        if single_thread_peers:
            fns["torch 1 thread"] = _one_thread_torch(fns["torch"])
    return fns


def gemm_chain(params, x, *, numpy_too: bool = True):
    """The five products of one cost+grad call, as (numpy callable or None, jax callable)."""
    dtype = params.W1.dtype
    m, n = x.shape
    h = params.W1.shape[0]
    ka, kd3, kd2 = jax.random.split(jax.random.key(2), 3)
    args = (
        x,
        jax.random.uniform(ka, (m, h), dtype),  # a2
        jax.random.uniform(kd3, (m, n), dtype, -1, 1),  # delta3
        jax.random.uniform(kd2, (m, h), dtype, -1, 1),  # delta2
        params.W1,
        params.W2,
    )

    @jax.jit
    def _jax_chain(xj, a2j, d3j, d2j, W1j, W2j):
        return (xj @ W1j.T, a2j @ W2j.T, d3j @ W2j, d2j.T @ xj, d3j.T @ a2j)

    numpy_chain = None
    if numpy_too:
        xn, a2, d3, d2, W1, W2 = (np.asarray(a) for a in args)

        def numpy_chain():
            return (xn @ W1.T, a2 @ W2.T, d3 @ W2, d2.T @ xn, d3.T @ a2)

    return numpy_chain, lambda: _block(_jax_chain(*args))


def checked_overhead(params, x, *, reps: int = 5) -> dict:
    """Median time of the public, checked ``sae_jax.cost_and_grad`` vs the unchecked kernel."""
    dtype = params.W1.dtype
    hp = {k: jnp.asarray(v, dtype) for k, v in HP.items()}
    fns = {
        "checked": lambda: _block(sae_jax.cost_and_grad(params, x, **hp)),
        "unchecked": lambda: _block(manual_kernel(params, x, **hp)),
    }
    # Two calls each before timing: the checked call's first compiles the program that also checks
    # the data, its second the one for data already checked (every later call). Without this,
    # measure's warm-up call includes that second compilation and its round-time estimate leaves
    # only its minimum of 10 interleaved rounds.
    for f in (*fns.values(), *fns.values()):
        f()
    t = measure(
        fns,
        budget_s=1.0,
        min_reps=reps,
        min_reps_slow=3,
    )
    return {
        "checked_median_s": t["checked"].median_s,
        "unchecked_median_s": t["unchecked"].median_s,
        "overhead_s": t["checked"].median_s - t["unchecked"].median_s,
    }


def bench_size(
    label, n, h, m, dtype, *, budget_s=3.0, torch_peer=True, checked=True, single_thread_peers=None,
    max_peer_flops=1e12, log=print,
) -> dict:
    """All implementations and both GEMM chains at one size, interleaved in one measurement.

    ``single_thread_peers=None`` adds the one-thread peers when 10·m·n·h < 2e10 flops (S1, S2).
    Above ``max_peer_flops`` per call the CPU peers (numpy, torch, numpy GEMM) are left out (a
    GPU run's largest sizes would take minutes per call on the host).
    """
    params, x = make_problem(n, h, m, dtype)
    flops = flops_per_call(n, h, m)
    if single_thread_peers is None:
        single_thread_peers = flops < 2e10
    cpu_peers = flops <= max_peer_flops
    blas_path = cpu_peers and jax.default_backend() == "cpu" and flops >= 2e10
    fns = implementations(params, x, torch_peer=torch_peer, single_thread_peers=single_thread_peers,
                          cpu_peers=cpu_peers, blas_path=blas_path)
    np_chain, jax_chain = gemm_chain(params, x, numpy_too=cpu_peers)
    if cpu_peers:
        fns["GEMM numpy"] = np_chain
    fns["GEMM jax"] = jax_chain
    timings = measure(fns, budget_s=budget_s)
    gemm_rate = max(flops / timings[k].median_s for k in ("GEMM numpy", "GEMM jax") if k in timings)
    impl_names = [k for k in fns if not k.startswith("GEMM")]
    peer_names = [k for k in impl_names if k in PEERS]
    fastest_peer = min(peer_names, key=lambda k: timings[k].median_s) if peer_names else None
    rows = {}
    for k, t in timings.items():
        row = t.summary()
        row["gflops"] = flops / t.median_s / 1e9
        row["fraction_of_gemm_rate"] = flops / t.median_s / gemm_rate
        if k in impl_names:
            if fastest_peer is not None:
                row["speedup_vs_fastest_peer"] = paired_ratio(timings[fastest_peer], t)
            row["time_vs_jax_grad"] = paired_ratio(t, timings["jax.grad"])
        rows[k] = row
    out = {
        "size": label,
        "n_visible": n,
        "n_hidden": h,
        "m": m,
        "dtype": np.dtype(dtype).name,
        "flops_per_call": flops,
        "gemm_rate_gflops": gemm_rate / 1e9,
        "fastest_peer": fastest_peer,
        "results": rows,
    }
    if blas_path:
        from .blas_dispatch import backend

        out["blas_backend"] = backend()
    if checked and flops < 2e10:  # at S3 the few-ms check is far inside the call's run-to-run spread
        out["checked_cost_and_grad"] = checked_overhead(params, x)
    log(format_size(out))
    return out


def format_size(r: dict) -> str:
    lines = [
        f"{r['size']} (n={r['n_visible']}, h={r['n_hidden']}, m={r['m']}) {r['dtype']}: "
        f"GEMM rate {r['gemm_rate_gflops']:.1f} GFLOP/s, fastest peer {r['fastest_peer']}"
    ]
    for k, row in r["results"].items():
        sp = row.get("speedup_vs_fastest_peer")
        extra = f"  x{sp['median']:.2f} vs peer" if sp else ""
        lines.append(
            f"  {k:16s} {row['median_s'] * 1e3:10.2f} ms  IQR {row['iqr_s'] * 1e3:8.2f}  "
            f"first {row['first_call_s'] * 1e3:9.1f} ms  {row['gflops']:7.1f} GFLOP/s "
            f"({100 * row['fraction_of_gemm_rate']:5.1f}% GEMM){extra}  n={row['reps']}"
        )
    if "blas_backend" in r:
        lines.append(f"  sae_jax + OpenBLAS via {r['blas_backend']}")
    if "checked_cost_and_grad" in r:
        c = r["checked_cost_and_grad"]
        lines.append(f"  checked cost_and_grad overhead: {c['overhead_s'] * 1e3:.2f} ms per call")
    return "\n".join(lines)
