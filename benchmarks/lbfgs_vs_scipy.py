"""Final cost of sae-jax's L-BFGS (optax, zoom line search) vs scipy's L-BFGS-B, same budget.

The UFLDL exercise: 10,000 natural-image patches (``sae_jax._src.data.natural_image_patches``,
seed 0), 64 visible, 25 hidden, rho=0.01, lambda=1e-4, beta=3, 400 iterations, the same
initial parameters (``TrainConfig(seed=0)``). sae-jax uses its default history (100, minFunc's,
as in the exercise); scipy runs with its default ``maxcor=10`` and with ``maxcor=100``. scipy minimises the
same cost through ``sae_jax.cost_and_grad`` in float64 (so only the optimizer differs), with
``maxiter=400`` (its line search may use several evaluations per iteration, as optax's may).

    python benchmarks/lbfgs_vs_scipy.py [--steps 400] [--dtypes float64 float32]

Prints one line per solver: final cost, function evaluations (scipy), wall time.
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

from sae_jax import cost_and_grad, params_to_theta, theta_to_params  # noqa: E402
from sae_jax.data import natural_image_patches  # noqa: E402
from sae_jax.training import TrainConfig, train
from sae_jax._src.training import init_state  # noqa: E402

HP = dict(lam=1e-4, beta=3.0, rho=0.01)


def run_scipy(x: np.ndarray, steps: int, memory: int) -> tuple[float, int, float]:
    xj = jnp.asarray(x, jnp.float64)
    p0 = init_state(TrainConfig(dtype="float64"), xj).params
    n, h = x.shape[1], p0.W1.shape[0]

    def fun(theta):
        J, g = cost_and_grad(theta_to_params(theta, n, h), xj, **HP)
        return float(J), params_to_theta(g)

    t = time.perf_counter()
    res = scipy.optimize.minimize(
        fun, params_to_theta(p0), jac=True, method="L-BFGS-B",
        options=dict(maxiter=steps, maxcor=memory, maxfun=100 * steps, gtol=0.0, ftol=0.0),
    )
    return float(res.fun), int(res.nfev), time.perf_counter() - t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--dtypes", nargs="*", default=["float64", "float32"])
    ap.add_argument("--no-scipy", action="store_true")
    args = ap.parse_args(argv)
    x = natural_image_patches(10_000, 8, seed=0)
    print(f"data: natural patches {x.shape}, {args.steps} iterations, jax {jax.__version__}, "
          f"devices {jax.devices()}")
    for dtype in args.dtypes:
        for gradient in ("manual",):
            r = train(x, TrainConfig(dtype=dtype, gradient=gradient, steps=args.steps))
            m = r.metrics[-1]
            print(f"sae-jax optax.lbfgs {dtype:8s} {gradient:8s} final cost {m['cost']:.6f} "
                  f"(rho_hat mean {m['rho_hat_mean']:.4f})  train {r.train_s:6.1f} s + compile {r.compile_s:5.1f} s")
    if not args.no_scipy:
        for memory in (10, 100):
            J, nfev, dt = run_scipy(x, args.steps, memory)
            print(f"scipy L-BFGS-B maxcor={memory:<3d} float64 (sae_jax.cost_and_grad) final cost {J:.6f}  "
                  f"nfev {nfev}  {dt:6.1f} s")


if __name__ == "__main__":
    main()
