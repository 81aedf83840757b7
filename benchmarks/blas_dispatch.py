"""An optional path for large CPU problems: sae-jax's backprop with the five big products done by
numpy's BLAS (OpenBLAS here) through ``jax.pure_callback``.

Why: on this machine XLA's CPU matrix products (YNNPACK and Eigen) run at roughly half of
OpenBLAS's rate at S3 (1024 visible, 4096 hidden, m = 4096); the products are > 95 % of the
call's flops, so the whole call follows the matmul rate. This module keeps sae-jax's math
(:func:`sae_jax.backprop.output_delta`, :func:`~sae_jax.backprop.sparsity_delta`, the cost terms)
and only swaps the matrix products. It is a benchmark-side experiment, not part of the library:
it runs on the host CPU only, its callbacks are opaque to ``jax.grad`` and run sequentially
under ``vmap``, and on a loaded machine OpenBLAS's own threads can collapse (see NOTES.md).

Use: ``cost_and_grad_blas(params, x, lam=..., beta=..., rho=...)`` (jitted; same signature and
result as :func:`sae_jax.cost_and_grad`, without the input checks).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sae_jax.backprop import output_delta, sparsity_delta
from sae_jax.cost import CostTerms, reconstruction, rho_hat, sparsity, weight_decay
from sae_jax.forward import _add_bias, _output_activation, sigmoid, sigmoid_prime
from sae_jax.params import Params


def _np_matmul(a, b, *, ta: bool, tb: bool):
    a = np.asarray(a)
    b = np.asarray(b)
    return np.matmul(a.T if ta else a, b.T if tb else b)


def blas_matmul(a: jax.Array, b: jax.Array, *, ta: bool = False, tb: bool = False) -> jax.Array:
    """``op(a) @ op(b)`` by numpy's BLAS, ``op`` = transpose when ``ta`` / ``tb`` (no copy: BLAS flags)."""
    rows = a.shape[1] if ta else a.shape[0]
    cols = b.shape[0] if tb else b.shape[1]
    out = jax.ShapeDtypeStruct((rows, cols), a.dtype)
    return jax.pure_callback(functools.partial(_np_matmul, ta=ta, tb=tb), out, a, b)


@functools.partial(jax.jit, static_argnames=("output",))
def cost_and_grad_blas(params: Params, x, *, lam, beta, rho, output="sigmoid"):
    """The tutorial's backprop (as :mod:`sae_jax.backprop`), products by numpy's BLAS."""
    W1, b1, W2, b2 = params
    dtype = W1.dtype
    lam_ = jnp.asarray(lam, dtype)
    m = x.shape[0]
    a2 = sigmoid(_add_bias(blas_matmul(x, W1, tb=True), b1))  # f(x W1ᵀ + b1)
    a3 = _output_activation(_add_bias(blas_matmul(a2, W2, tb=True), b2), output)
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
