"""An optional path for large CPU problems: sae-jax's backprop with the five big products done by
numpy's BLAS (OpenBLAS here), through the XLA FFI (zero-copy) or ``jax.pure_callback``.

Why: on this machine XLA's CPU matrix products (YNNPACK and Eigen) run at roughly half of
OpenBLAS's rate at S3 (1024 visible, 4096 hidden, m = 4096); the products are > 95 % of the
call's flops, so the whole call follows the matmul rate. This module keeps sae-jax's math
(:func:`sae_jax._src.backprop.output_delta`, :func:`~sae_jax._src.backprop.sparsity_delta`, the cost terms)
and only swaps the matrix products. It is a benchmark-side experiment, not part of the library:
it runs on the host CPU only, its callbacks are opaque to ``jax.grad`` and run sequentially
under ``vmap``, and on a loaded machine OpenBLAS's own threads can collapse (see NOTES.md).

Two ways to reach OpenBLAS:

* **XLA FFI (zero-copy)**, when a C++ compiler is available: ``blas_ffi.cc`` is compiled once
  into a cache directory against jaxlib's FFI headers and numpy's bundled
  ``libscipy_openblas``, and registered with ``jax.ffi.register_ffi_target``. XLA then calls
  ``cblas_?gemm`` on its own buffers: no copies.
* **``jax.pure_callback``** otherwise: numpy gets host copies of the operands and XLA a copy of
  the result. Measured at S3 float32 (NOTES.md #6) the copies gave back what OpenBLAS gains.

:func:`backend` says which is in use (the benchmark records it).

Use: ``cost_and_grad_blas(params, x, lam=..., beta=..., rho=...)`` (jitted; same signature and
result as :func:`sae_jax.cost_and_grad`, without the input checks).
"""

from __future__ import annotations

import ctypes
import functools
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sae_jax import output_delta, sparsity_delta
from sae_jax import CostTerms, reconstruction, rho_hat, sparsity, weight_decay
from sae_jax._src.forward import add_bias, output_activation
from sae_jax import sigmoid, sigmoid_prime
from sae_jax import Params


def _np_matmul(a, b, *, ta: bool, tb: bool):
    a = np.asarray(a)
    b = np.asarray(b)
    return np.matmul(a.T if ta else a, b.T if tb else b)


_SOURCE = Path(__file__).with_name("blas_ffi.cc")
_TARGETS = {np.dtype(np.float32): "sae_bench_sgemm", np.dtype(np.float64): "sae_bench_dgemm"}


def _openblas_library() -> str | None:
    """numpy's bundled OpenBLAS (``numpy.libs/libscipy_openblas64_*.so``), if it has one."""
    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    found = sorted(glob.glob(str(libs / "libscipy_openblas64_*.so*")))
    return found[0] if found else None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sae-jax-benchmarks"


@functools.lru_cache(maxsize=None)
def _ffi_status() -> str:
    """Build (once, cached on disk) and register the FFI targets; ``"ffi"`` or why not."""
    if jax.default_backend() != "cpu":
        return "not the CPU backend"
    compiler = shutil.which(os.environ.get("CXX", "g++"))
    if compiler is None:
        return "no C++ compiler (g++) found"
    openblas = _openblas_library()
    if openblas is None:
        return "numpy has no bundled libscipy_openblas64_"
    include = jax.ffi.include_dir()
    key = hashlib.sha256(
        _SOURCE.read_bytes() + jax.__version__.encode() + openblas.encode()
    ).hexdigest()[:16]
    lib = _cache_dir() / f"libsae_bench_blas_{key}.so"
    try:
        return _build_and_register(lib, compiler, include, openblas)
    except (OSError, AttributeError) as e:  # unwritable cache, a library without the symbols
        return f"FFI unavailable: {type(e).__name__}: {e}"


def _build_and_register(lib: Path, compiler: str, include: str, openblas: str) -> str:
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
            out = Path(tmp) / lib.name
            cmd = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC", "-w", f"-I{include}", str(_SOURCE),
                   "-o", str(out), openblas, f"-Wl,-rpath,{os.path.dirname(openblas)}"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                return f"building {_SOURCE.name} failed: {r.stderr.strip()[-300:]}"
            os.replace(out, lib)  # atomic: a concurrent run never loads a half-written file
    handle = ctypes.cdll.LoadLibrary(str(lib))
    jax.ffi.register_ffi_target(_TARGETS[np.dtype(np.float32)], jax.ffi.pycapsule(handle.SaeSgemm), platform="cpu")
    jax.ffi.register_ffi_target(_TARGETS[np.dtype(np.float64)], jax.ffi.pycapsule(handle.SaeDgemm), platform="cpu")
    return "ffi"


def backend() -> str:
    """How :func:`blas_matmul` reaches OpenBLAS: ``"ffi"``, or ``"pure_callback (<why not ffi>)"``."""
    status = _ffi_status()
    return status if status == "ffi" else f"pure_callback ({status})"


def blas_matmul(a: jax.Array, b: jax.Array, *, ta: bool = False, tb: bool = False) -> jax.Array:
    """``op(a) @ op(b)`` by numpy's BLAS, ``op`` = transpose when ``ta`` / ``tb`` (no copy: BLAS flags)."""
    rows = a.shape[1] if ta else a.shape[0]
    cols = b.shape[0] if tb else b.shape[1]
    out = jax.ShapeDtypeStruct((rows, cols), a.dtype)
    if _ffi_status() == "ffi" and np.dtype(a.dtype) in _TARGETS:
        call = jax.ffi.ffi_call(_TARGETS[np.dtype(a.dtype)], out, vmap_method="sequential")
        return call(a, b, trans_a=ta, trans_b=tb)
    return jax.pure_callback(functools.partial(_np_matmul, ta=ta, tb=tb), out, a, b)


@functools.partial(jax.jit, static_argnames=("output",))
def cost_and_grad_blas(params: Params, x, *, lam, beta, rho, output="sigmoid"):
    """The tutorial's backprop (as :mod:`sae_jax._src.backprop`), products by numpy's BLAS."""
    W1, b1, W2, b2 = params
    dtype = W1.dtype
    lam_ = jnp.asarray(lam, dtype)
    m = x.shape[0]
    a2 = sigmoid(add_bias(blas_matmul(x, W1, tb=True), b1))  # f(x W1ᵀ + b1)
    a3 = output_activation(add_bias(blas_matmul(a2, W2, tb=True), b2), output)
    rh = rho_hat(a2)
    rec = reconstruction(a3, x)
    wd = weight_decay(params, lam=lam)
    sp = sparsity(rh, rho=rho, beta=beta)
    delta3 = output_delta(a3, x, output=output)
    s = sparsity_delta(rh, rho=rho, beta=beta)
    delta2 = (blas_matmul(delta3, W2) + s[None, :]) * sigmoid_prime(a2)  # hidden_delta, product by BLAS
    grads = Params(
        W1=blas_matmul(delta2, x, ta=True) / m + lam_ * W1,
        b1=jnp.sum(delta2, axis=0) / m,
        W2=blas_matmul(delta3, a2, ta=True) / m + lam_ * W2,
        b2=jnp.sum(delta3, axis=0) / m,
    )
    terms = CostTerms(rec + wd + sp, rec, wd, sp, rh)
    return terms.cost, grads
