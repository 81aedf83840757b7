"""Test configuration, applied before any test imports JAX arrays.

- float64 is available everywhere (float32 is tested by passing dtype explicitly);
- numpy-style silent promotion is an error (``strict``), and so is rank promotion;
- 8 host CPU devices, so device loops and sharding tests see several devices
  on a CPU-only machine (a GPU/TPU machine's default backend is unaffected).
"""

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

import pytest  # noqa: E402


@pytest.fixture(params=jax.devices(), ids=lambda d: f"{d.platform}{d.id}")
def device(request):
    """Each device of the default backend (8 CPU devices here; every GPU/TPU where present)."""
    return request.param
