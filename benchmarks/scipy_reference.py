"""scipy L-BFGS-B on the default exercise: the reference cost and ``docs/filters_scipy_reference.png``.

The UFLDL exercise (64 visible, 25 hidden, rho = 0.01, lam = 1e-4, beta = 3) on
``sae_jax._src.data.natural_image_patches(10_000, 8, seed=0)``, initialised with
``init_params(PRNGKey(0))`` in float64, minimised by ``scipy.optimize.minimize(method="L-BFGS-B",
jac=True, maxiter=400)`` with sae-jax's jitted manual gradient (UFLDL flat ``theta``).
Prints one JSON line (final cost, iterations, evaluations, seconds) and writes the filters.

Run from the repository root::

    python benchmarks/scipy_reference.py [--png docs/filters_scipy_reference.png] [--maxiter 400]
"""

from __future__ import annotations

import argparse
import json
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

import sae_jax as sae  # noqa: E402
from benchmarks.kernels import manual_kernel  # noqa: E402
from sae_jax.data import natural_image_patches  # noqa: E402
from sae_jax.display import save_filters_png  # noqa: E402

HP = dict(lam=1e-4, beta=3.0, rho=0.01)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--png", default=None, help="write the learned filters here")
    ap.add_argument("--maxiter", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t = time.perf_counter()
    x = jnp.asarray(natural_image_patches(10_000, 8, seed=args.seed))
    t_data = time.perf_counter() - t
    n, h = 64, 25
    theta0 = sae.params_to_theta(sae.init_params(jax.random.key(args.seed), n, h, dtype=jnp.float64))

    def fun(theta):
        J, g = manual_kernel(sae.theta_to_params(theta, n, h), x, **HP)
        return float(J), sae.params_to_theta(g)

    J0 = fun(theta0)[0]  # also compiles
    t = time.perf_counter()
    res = scipy.optimize.minimize(fun, theta0, method="L-BFGS-B", jac=True, options=dict(maxiter=args.maxiter))
    seconds = time.perf_counter() - t
    params = sae.theta_to_params(res.x, n, h)
    terms = sae.cost_terms(params, x, **HP)
    out = dict(
        optimizer="scipy L-BFGS-B", maxiter=args.maxiter, nit=int(res.nit), nfev=int(res.nfev),
        cost_initial=J0, cost_final=float(res.fun), reconstruction=float(terms.reconstruction),
        weight_decay=float(terms.weight_decay), sparsity=float(terms.sparsity),
        rho_hat_mean=float(np.mean(terms.rho_hat)), seconds=round(seconds, 2), data_seconds=round(t_data, 2),
    )
    print(json.dumps(out))
    if args.png:
        save_filters_png(params.W1, args.png, title=f"scipy L-BFGS-B, {res.nit} it, J = {res.fun:.4f}")
    return out


if __name__ == "__main__":
    main()
