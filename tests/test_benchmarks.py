"""Smoke tests for ``python -m benchmarks`` (no timing assertions: timings are the benchmark's job).

Checks that the entry point runs end to end at tiny sizes and writes its JSON + markdown, and
that the peers it times compute the same cost and gradient as sae-jax (float64, ≤ 1e-12
relative), so the benchmark compares like with like.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sae_jax
from benchmarks import peers
from benchmarks.__main__ import main

HP = dict(lam=1e-4, beta=3.0, rho=0.01)


def _problem(n=7, h=5, m=30):
    params = sae_jax.init_params(jax.random.key(0), n, h, dtype=jnp.float64)
    x = jax.random.uniform(jax.random.key(1), (m, n), dtype=jnp.float64, minval=0.1, maxval=0.9)
    return params, x


def _close(a, b, rtol=1e-12):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)))


def test_numpy_peer_matches_sae_jax():
    params, x = _problem()
    J, g = sae_jax.cost_and_grad(params, x, **HP)
    Jn, gn = peers.numpy_cost_and_grad(*[np.asarray(a) for a in params], np.asarray(x).T.copy(), **HP)
    _close(Jn, J)
    for a, b in zip(gn, g):
        _close(a, b)


@pytest.mark.parametrize("dtype, rtol", [(jnp.float64, 1e-12), (jnp.float32, 1e-5)])
def test_openblas_path_matches_sae_jax(dtype, rtol):
    # The benchmark's OpenBLAS row (FFI when a compiler is present, else pure_callback) must
    # compute sae-jax's cost and gradient; every transpose flag of blas_matmul is exercised.
    from benchmarks import blas_dispatch

    params, x = _problem()
    params = jax.tree.map(lambda a: a.astype(dtype), params)
    x = x.astype(dtype)
    J, g = sae_jax.cost_and_grad(params, x, **HP)
    Jb, gb = blas_dispatch.cost_and_grad_blas(params, x, **HP)
    assert blas_dispatch.backend().startswith(("ffi", "pure_callback"))
    _close(Jb, J, rtol)
    for a, b in zip(gb, g):
        _close(a, b, rtol)
    a, b = np.asarray(x[:6, :4]), np.asarray(x[:6, 2:7])
    for ta, tb, A, B in [(False, False, a, b[:4]), (True, False, a, b), (False, True, a.T, b.T), (True, True, a, b.T)]:
        got = jax.jit(lambda A, B, ta=ta, tb=tb: blas_dispatch.blas_matmul(A, B, ta=ta, tb=tb))(A, B)
        _close(got, (A.T if ta else A) @ (B.T if tb else B), rtol)


def test_flat_theta_round_trip_and_scipy_wrapper():
    params, x = _problem()
    p = [np.asarray(a) for a in params]
    theta = peers.theta_from_arrays(*p)
    for a, b in zip(peers.arrays_from_theta(theta, 7, 5), p):
        np.testing.assert_array_equal(a, b)
    J, gtheta = peers.numpy_flat_cost_and_grad(theta, 7, 5, data=np.asarray(x).T.copy(), **HP)
    J_ref, g_ref = sae_jax.cost_and_grad(params, x, **HP)
    _close(J, J_ref)
    _close(gtheta, peers.theta_from_arrays(*[np.asarray(a) for a in g_ref]))


@pytest.mark.skipif(not peers.HAVE_TORCH, reason="PyTorch not installed (optional: pip install torch==2.13.0)")
def test_torch_peer_matches_sae_jax():
    params, x = _problem()
    J, g = sae_jax.cost_and_grad(params, x, **HP)
    Jt, gt = peers.make_torch_cost_and_grad(*[np.asarray(a) for a in params], np.asarray(x), **HP)()
    _close(Jt.numpy(), J)
    for a, b in zip(gt, g):
        _close(a.numpy(), b)


@pytest.mark.slow  # the whole harness end to end; its parts (peers, compare_kernels) run by default
def test_entry_point_runs_at_tiny_sizes(tmp_path, capsys):
    rc = main([
        "--quick", "--sizes", "8x4x40", "--dtypes", "float32", "--budget", "0", "--skip", "e2e,memory,others",
        "--sweep-size", "8x4x40", "--sweep-steps", "2", "--train-sweep-optimizer", "adam", "--out", str(tmp_path),
        "--tag", "smoke",
    ])
    assert rc == 0
    res = json.loads((tmp_path / "smoke-quick.json").read_text())
    md = (tmp_path / "smoke-quick.md").read_text()
    (k,) = res["kernels"]
    assert {"sae_jax manual", "jax.grad", "numpy", "GEMM numpy", "GEMM jax"} <= set(k["results"])
    assert all(r["median_s"] > 0 for r in k["results"].values())
    assert res["sweep"]["k"] == 16 and res["sweep"]["final_cost_max_rel_diff"] < 1e-3
    ts = res["train_sweep"]  # sae_jax._src.sweep vs 16 train() calls: the same final costs (float64)
    assert ts["k"] == 16 and ts["sequential_compile_s_later_calls"] < 1.0
    assert set(ts["sweeps"]) == {"map", "vmap"}
    assert all(o["final_cost_max_rel_diff"] < 1e-9 and o["median_s"] > 0 for o in ts["sweeps"].values())
    assert "sequential `train()` calls" in md
    assert res["machine"]["cores"] >= 1 and res["targets"]
    assert "| S" not in md or "sae_jax manual" in md
    assert "cost + gradient, float32" in md
    assert "targets" in capsys.readouterr().out


def test_bad_flags_exit_2(tmp_path):
    assert main(["--skip", "nonsense", "--out", str(tmp_path)]) == 2
    assert main(["--dtypes", "float16", "--skip", "kernels,sweep,e2e,memory,others", "--out", str(tmp_path)]) == 2
    assert main(["--e2e-rounds", "0", "--out", str(tmp_path)]) == 2


@pytest.mark.slow
def test_entry_point_e2e_and_memory_tiny(tmp_path):
    rc = main([
        "--quick", "--sizes", "8x4x40", "--dtypes", "float32", "--budget", "0", "--skip", "kernels,sweep,others",
        "--e2e-iters", "3", "--out", str(tmp_path), "--tag", "smoke",
    ])
    assert rc == 0
    res = json.loads((tmp_path / "smoke-quick.json").read_text())
    assert set(res["e2e"]["results"]) >= {"scipy+numpy float64", "sae_jax float64"}
    assert all("peak_rss_bytes" in r or "skipped" in r for r in res["memory"])


def test_compare_kernels_runs_against_a_commit(capsys):
    """benchmarks.compare_kernels imports another commit's sae_jax beside this one (here HEAD)."""
    import shutil

    from benchmarks import compare_kernels

    if shutil.which("git") is None or not (compare_kernels.ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert compare_kernels.main(["HEAD", "--sizes", "S1", "--dtypes", "float32", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "S1 float32: manual" in out and "jax.grad" in out
