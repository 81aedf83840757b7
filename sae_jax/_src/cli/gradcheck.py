"""``sae-jax gradcheck``: the tutorial's backprop vs ``jax.grad`` vs finite differences, float64.

On every device JAX sees, :func:`sae_jax.gradcheck.gradcheck` compares the manual gradient of
J(W,b) + (λ/2)‖W‖² + βΣⱼKL(ρ‖ρ̂ⱼ) with ``jax.grad`` and with central finite differences along
random directions, at ``init_params`` with nonzero biases, on ``m`` samples of ``n_visible``
features (whitened natural-image patches, or uniform random data). The verdict uses
``AUTODIFF_TOL`` and ``FD_TOL`` (the FD error is relative to ‖g‖, the step eps**(1/5)); exit
status 1 if any error exceeds its tolerance. ``--lam``, ``--beta``, ``--rho``, ``--output`` and
``--n-hidden`` are ``TrainConfig``'s fields, with its defaults and help.

Examples:
  >>> from sae_jax.cli import build_parser
  >>> args = build_parser().parse_args(["gradcheck", "--m", "100", "--output", "linear"])
  >>> (args.m, args.output, args.lam, args.beta, args.rho, args.n_visible, args.n_hidden, args.data)
  (100, 'linear', 0.0001, 3.0, 0.01, 64, 25, 'natural')
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..data import natural_image_patches
from ..gradcheck import AUTODIFF_TOL, FD_TOL, format_table, gradcheck, row_passes
from ..params import init_params
from ..validate import check_hyperparams, check_output, check_sizes
from .args import UsageError, set_precision

__all__ = ["cmd_gradcheck"]


def cmd_gradcheck(args) -> int:
    set_precision("float64")
    check_sizes(n_visible=args.n_visible, n_hidden=args.n_hidden)
    check_hyperparams(lam=args.lam, beta=args.beta, rho=args.rho)
    check_output(args.output)
    if args.m < 1:
        raise UsageError(f"--m must be >= 1, got {args.m}")
    if args.directions < 1:
        raise UsageError(f"--directions must be >= 1, got {args.directions}")

    key = jax.random.key(args.seed)
    kp, kb, kd = jax.random.split(key, 3)
    params = init_params(kp, args.n_visible, args.n_hidden, dtype=jnp.float64)
    # Nonzero biases, so their gradients are exercised away from the initial point.
    b = 0.1 * jax.random.normal(kb, (args.n_hidden + args.n_visible,), jnp.float64)
    params = params._replace(b1=b[: args.n_hidden], b2=b[args.n_hidden :])
    if args.data == "natural":
        side = int(round(args.n_visible**0.5))
        if side * side != args.n_visible:
            raise UsageError(
                f"--data natural needs a square --n-visible (patch_size**2), got {args.n_visible}; "
                f"use --data random"
            )
        x = natural_image_patches(args.m, side, seed=args.seed)
    else:
        rng = np.random.default_rng(args.seed)
        x = rng.uniform(0.0, 1.0, (args.m, args.n_visible))
        if args.output == "linear":
            x = rng.standard_normal((args.m, args.n_visible))
    x = jnp.asarray(x, jnp.float64)

    print(
        f"gradcheck: n_visible={args.n_visible} n_hidden={args.n_hidden} m={args.m} "
        f"lam={args.lam} beta={args.beta} rho={args.rho} output={args.output} data={args.data} float64, "
        f"devices={[str(d) for d in jax.devices()]}",
        flush=True,
    )
    rows = gradcheck(
        params, x, lam=args.lam, beta=args.beta, rho=args.rho, output=args.output,
        key=kd, n_directions=args.directions,
    )
    print(format_table(rows))
    worst_ad = max(r.manual_vs_autodiff for r in rows)
    worst_fd = max(max(r.manual_vs_fd, r.autodiff_vs_fd) for r in rows if r.array != "cost")
    ok = all(row_passes(r) for r in rows)
    print(
        f"{'PASS' if ok else 'FAIL'}: max manual-vs-jax.grad {worst_ad:.2e} (tol {AUTODIFF_TOL:g}), "
        f"max vs finite differences {worst_fd:.2e} (tol {FD_TOL:g} relative to ||g||, or 10x the "
        f"row's FD rounding floor if larger)"
    )
    return 0 if ok else 1
