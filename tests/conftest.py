"""Test configuration, applied before any test imports JAX arrays.

- float64 is available everywhere (float32 is tested by passing dtype explicitly);
- numpy-style silent promotion is an error (``strict``), and so is rank promotion;
- 8 host CPU devices, so device loops and sharding tests see several devices
  on a CPU-only machine (a GPU/TPU machine's default backend is unaffected);
- one persistent XLA compilation cache per test run (below), shared by every process of it;
- XLA's backend optimisation level 0 and its non-MLIR CPU fusion emitters (faster compiles;
  ``SAE_JAX_TEST_XLA_OPT=default`` for XLA's defaults).
"""

import os
import shutil
import tempfile

import jax

#: The run's persistent compilation cache: a fresh temporary directory per ``pytest`` run, removed
#: at its end, so every run starts cold (as in a fresh clone). The same program compiled again in
#: another process of the run (the pytest-xdist workers, the CLI and ``python -m`` subprocesses,
#: the notebooks' kernels, which inherit ``JAX_COMPILATION_CACHE_DIR``) or after
#: ``jax.clear_caches()`` is read back instead of recompiled: the same XLA executable, keyed by
#: XLA on the program and its compile options. A ``JAX_COMPILATION_CACHE_DIR`` set by the caller
#: is left as it is.
RUN_CACHE_ENV = "SAE_JAX_TEST_RUN_XLA_CACHE"
#: Every program is written (0 s): at XLA level 0 most compile in under 0.2 s, and the repeated
#: processes of the kill/resume, multi-process and CLI tests compile the same small programs
#: (measured on those files: about 5 % less CPU than a 0.2 s threshold).
CACHE_MIN_COMPILE_S = 0.0
_owns_run_cache = False
if RUN_CACHE_ENV in os.environ or "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    if RUN_CACHE_ENV not in os.environ:  # the first process of the run (pytest-xdist's workers inherit it)
        os.environ[RUN_CACHE_ENV] = tempfile.mkdtemp(prefix="sae-jax-tests-xla-cache-")
        _owns_run_cache = True
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[RUN_CACHE_ENV]
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = str(CACHE_MIN_COMPILE_S)
    jax.config.update("jax_compilation_cache_dir", os.environ[RUN_CACHE_ENV])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_S)

#: The tests compile with two XLA CPU settings that make compiling faster, not the program different:
#: most of the suite's CPU time is XLA compiling many small programs.
#:
#: - ``--xla_backend_optimization_level=0``: LLVM optimisation level 0, ~30 % faster compiles
#:   (tests/test_variants.py: 113 -> 78 CPU-s; test_training.py: 64 -> 47);
#: - ``--xla_cpu_use_fusion_emitters=false``: XLA's established (non-MLIR) emitters for fused
#:   element-wise and reduction loops, which compile the suite's small programs about twice as
#:   fast (test_saturation + test_lbfgs + test_cost serially: 63 -> 33 CPU-s).
#:
#: Both change how the same HLO is lowered to machine code, not the operations: results agree
#: with XLA's defaults to rounding, every tolerance of the suite holds, and bit-identity claims
#: (resume, sweeps, devices) compare runs of one configuration. Users' programs compile with XLA's
#: defaults, and so do the checks that stand for them: ``sae-jax gradcheck`` as a user runs it
#: (tests/test_gradcheck.py) and ``SAE_JAX_TEST_XLA_OPT=default python3 -m pytest -q`` (the whole
#: suite). Documented commands run from tests/test_readme.py get these two flags and no other
#: ``XLA_``/``JAX_`` setting.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
if os.environ.get("SAE_JAX_TEST_XLA_OPT") != "default" and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

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


#: The longest test files (CPU seconds of the default run, measured) are handed out first: under
#: ``--dist loadfile`` a worker takes a whole file at a time, and a long file drawn last left one
#: worker busy for ~25 s after the other had finished. Within a file the order is unchanged.
LONGEST_FIRST = (
    "test_variants.py", "test_backprop.py", "test_check.py", "test_training.py", "test_doctests.py",
    "test_derivations.py", "test_readme.py", "test_transforms.py", "test_lbfgs.py", "test_saturation.py",
    "test_sweep.py", "test_cli_experiments.py", "test_sharded.py", "test_notebooks.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))


def pytest_unconfigure(config):
    if _owns_run_cache:
        shutil.rmtree(os.environ.pop(RUN_CACHE_ENV), ignore_errors=True)
