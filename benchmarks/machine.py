"""What ran the benchmark: CPU, cores, library versions, BLAS, JAX device, relevant env vars."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except Exception:  # noqa: BLE001 - informational only
        return None


def _blas() -> list[dict]:
    try:
        import numpy as np
        from threadpoolctl import threadpool_info

        np.ones(2) @ np.ones(2)  # make sure BLAS is loaded
        return [
            {k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer", "prefix")}
            for d in threadpool_info()
        ]
    except ImportError:
        import numpy as np

        cfg = np.show_config(mode="dicts")
        return [{"numpy_show_config": cfg.get("Build Dependencies", {}).get("blas", {})}]


def _versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for mod in ("numpy", "scipy", "jax", "jaxlib", "optax", "torch", "threadpoolctl"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except ImportError:
            out[mod] = None
    try:
        import sae_jax

        out["sae_jax"] = sae_jax.__version__
    except ImportError:
        pass
    return out


def machine_info() -> dict:
    import jax

    dev = jax.devices()[0]
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    info = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_1_5_15": load,
        "versions": _versions(),
        "blas": _blas(),
        "jax_backend": jax.default_backend(),
        "jax_device": f"{dev.platform}:{getattr(dev, 'device_kind', '?')}",
        "jax_device_count": jax.device_count(),
        "git_commit": _git_commit(),
        "env": {
            k: os.environ.get(k)
            for k in ("XLA_FLAGS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                      "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        },
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info
