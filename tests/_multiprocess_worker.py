"""One process of the 2-process test in tests/test_multiprocess.py (not a test module itself).

Usage: python tests/_multiprocess_worker.py PORT PROCESS_ID NUM_PROCESSES OUT.npz

Each process owns a different, unequal slice of the same data (so per-process padding and the
global m are exercised), joins a localhost-only cluster with gloo CPU collectives, and writes
the combined (global rho_hat) cost and gradient it sees to OUT.npz.
"""

import sys

import jax
import numpy as np

# Shared with the test: the data, its split between processes, and the hyperparameters.
N_VISIBLE, N_HIDDEN = 6, 3
SPLITS = (0, 37, 67)  # process 0: rows 0..36, process 1: rows 37..66 (m = 67, neither divides 2)
HP = dict(lam=1e-3, beta=3.0, rho=0.1)


def problem():
    rng = np.random.default_rng(0)
    r = np.sqrt(6 / (N_VISIBLE + N_HIDDEN + 1))
    params = (
        rng.uniform(-r, r, (N_HIDDEN, N_VISIBLE)),
        rng.normal(size=N_HIDDEN),
        rng.uniform(-r, r, (N_VISIBLE, N_HIDDEN)),
        np.full(N_VISIBLE, 0.3),
    )
    x = rng.uniform(size=(SPLITS[-1], N_VISIBLE))
    return params, x


def corrupted(x):
    """Denoising's input: a Gaussian-corrupted copy of the data (each process passes its rows)."""
    return x + 0.3 * np.random.default_rng(1).standard_normal(x.shape)


def main(port: int, process_id: int, num_processes: int, out: str) -> None:
    # Before any JAX operation (importing this module for problem() configures nothing).
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_num_cpu_devices", 2)
    jax.config.update("jax_enable_x64", True)
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=60,
    )
    import sae_jax as sae
    from sae_jax.scale import batch_mesh, make_sharded_value_and_grad

    params, x = problem()
    params = sae.Params(*params)
    local = x[SPLITS[process_id] : SPLITS[process_id + 1]]
    mesh = batch_mesh()  # every device of every process
    local_input = corrupted(x)[SPLITS[process_id] : SPLITS[process_id + 1]]
    results = {"n_devices": len(jax.devices()), "n_local": len(jax.local_devices())}
    for method in ("shard_map", "jit", "denoising"):
        opts = dict(method="shard_map", x_input=local_input) if method == "denoising" else dict(method=method)
        vg = make_sharded_value_and_grad(mesh, local, process_local=True, **opts, **HP)
        J, grads = vg(params)
        assert J.sharding.is_fully_replicated
        results[f"{method}/m"] = np.asarray(vg.batch.m.addressable_data(0))
        results[f"{method}/J"] = np.asarray(J.addressable_data(0))
        for name, g in zip(sae.Params._fields, grads):
            results[f"{method}/{name}"] = np.asarray(g.addressable_data(0))
    np.savez(out, **results)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
