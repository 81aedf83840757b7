"""Two processes on localhost (jax.distributed, gloo CPU collectives): the combined gradient,
with rho_hat over both processes' rows, equals the one-process gradient on the concatenated data
(plain, and denoising: each process's x_input rows placed with its data rows).

The processes are launched with a 120 s timeout each and killed on failure; they talk over
127.0.0.1 only. Tolerance: float64, <= 1e-12 relative to each array's largest entry.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import sae_jax as sae

WORKER = Path(__file__).with_name("_multiprocess_worker.py")
TIMEOUT_S = 120

sys.path.insert(0, str(WORKER.parent))
import _multiprocess_worker as worker  # noqa: E402

sys.path.pop(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_processes(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env["JAX_PLATFORMS"] = "cpu"
    procs, outs = [], []
    for pid in range(2):
        out = tmp_path / f"p{pid}.npz"
        with open(tmp_path / f"p{pid}.log", "w") as log:  # the child keeps its own descriptor
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(WORKER), str(port), str(pid), "2", str(out)],
                    stdout=log, stderr=subprocess.STDOUT, env=env,
                )
            )
        outs.append(out)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    logs = "\n".join(f"--- process {i} (exit {p.returncode}) ---\n" + (tmp_path / f"p{i}.log").read_text()[-3000:]
                     for i, p in enumerate(procs))
    assert all(p.returncode == 0 for p in procs), logs
    return [dict(np.load(o)) for o in outs]


def test_two_processes_combined_gradient_equals_single_process(tmp_path):
    results = _run_two_processes(tmp_path)
    params, x = worker.problem()
    params = sae.Params(*(jnp.asarray(a) for a in params))
    plain = sae.cost_and_grad(params, jnp.asarray(x), **worker.HP)
    denoising = sae.cost_and_grad(params, jnp.asarray(x), x_input=jnp.asarray(worker.corrupted(x)), **worker.HP)
    want = {"shard_map": plain, "jit": plain, "denoising": denoising}
    for pid, res in enumerate(results):
        assert res["n_devices"] == 4 and res["n_local"] == 2
        for method, (J, grads) in want.items():
            assert int(res[f"{method}/m"]) == x.shape[0]  # the global m, not either process's
            np.testing.assert_allclose(res[f"{method}/J"], J, rtol=1e-12)
            for name, g in zip(sae.Params._fields, grads):
                g = np.asarray(g)
                err = np.max(np.abs(res[f"{method}/{name}"] - g)) / np.max(np.abs(g))
                assert err <= 1e-12, (pid, method, name, err)
