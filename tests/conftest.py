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


def _memory_maps() -> int:
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux: no per-process map limit to watch
        return 0


#: Each compiled XLA executable holds ~8 memory mappings; the whole suite in one process
#: compiles thousands, and Linux's default vm.max_map_count (65530) was reached at ~75 %
#: of a serial run: an mmap failure inside XLA aborts the interpreter. Past this many
#: mappings, the compilation caches are cleared between test modules (results are
#: unaffected; a later module recompiles what it uses).
MAX_MAPS_BEFORE_CLEARING = 30_000


@pytest.fixture(autouse=True, scope="module")
def _bounded_compilation_caches():
    yield
    if _memory_maps() > MAX_MAPS_BEFORE_CLEARING:
        jax.clear_caches()
