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


def _device_params():
    """Every device of the default backend; on the host CPU (8 identical virtual devices, set above)
    the default run takes the first and the last (the default device and a non-default one), the
    six in between run under ``-m slow``: each costs the same compilations again (~3 s) and runs
    the same code on the same hardware."""
    devices = jax.devices()
    if devices[0].platform != "cpu":
        return devices
    return [d if k in (0, len(devices) - 1) else pytest.param(d, marks=pytest.mark.slow) for k, d in enumerate(devices)]


@pytest.fixture(params=_device_params(), ids=lambda d: f"{d.platform}{d.id}")
def device(request):
    """Each device of the default backend (every GPU/TPU where present; on the host CPU the first and
    the last by default, all 8 with ``-m slow``)."""
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
