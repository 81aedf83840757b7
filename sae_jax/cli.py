"""Command-line interface: ``sae-jax`` (or ``python -m sae_jax``).

Example invocations::

    sae-jax gradcheck                      # manual vs jax.grad vs finite differences, UFLDL sizes
    sae-jax gradcheck --m 100 --output linear

Bad input ends with exit code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]

# Tolerances for the gradcheck verdict (float64).
GRADCHECK_TOL_AUTODIFF = 1e-10  # manual vs jax.grad: the same math summed in another order
GRADCHECK_TOL_FD = 1e-7  # five-point central differences, h = 1e-4: O(h^4) truncation + O(eps J/h) rounding


def _add_hyperparams(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lam", type=float, default=1e-4, help="weight decay lambda (default 1e-4)")
    p.add_argument("--beta", type=float, default=3.0, help="sparsity weight beta (default 3)")
    p.add_argument("--rho", type=float, default=0.01, help="target activation rho (default 0.01)")
    p.add_argument("--output", choices=("sigmoid", "linear"), default="sigmoid", help="output layer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sae-jax",
        description="The classic KL-sparsity autoencoder in JAX.",
        epilog=__doc__.split("Example invocations::", 1)[1].split("Bad input", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser(
        "gradcheck",
        help="manual backprop vs jax.grad vs finite differences (float64), on every device",
        description="Compare the tutorial's backprop with jax.grad and central finite "
        "differences in float64 on every device JAX sees, and print a table. "
        "Exit status 1 if any error exceeds its tolerance.",
    )
    g.add_argument("--n-visible", type=int, default=64)
    g.add_argument("--n-hidden", type=int, default=25)
    g.add_argument("--m", type=int, default=10_000, help="number of samples (default 10000)")
    g.add_argument("--directions", type=int, default=4, help="random FD directions per array")
    g.add_argument("--seed", type=int, default=0)
    _add_hyperparams(g)
    g.set_defaults(func=_cmd_gradcheck)
    return parser


def _cmd_gradcheck(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)  # only the CLI changes global config
    import jax.numpy as jnp
    import numpy as np

    from .gradcheck import format_table, gradcheck
    from .params import init_params
    from .validate import check_hyperparams, check_output, check_sizes

    check_sizes(n_visible=args.n_visible, n_hidden=args.n_hidden)
    check_hyperparams(lam=args.lam, beta=args.beta, rho=args.rho)
    check_output(args.output)
    if args.m < 1:
        raise _usage(f"--m must be >= 1, got {args.m}")
    if args.directions < 1:
        raise _usage(f"--directions must be >= 1, got {args.directions}")

    key = jax.random.key(args.seed)
    kp, kb, kd = jax.random.split(key, 3)
    params = init_params(kp, args.n_visible, args.n_hidden, dtype=jnp.float64)
    # Nonzero biases, so their gradients are exercised away from the initial point.
    b = 0.1 * jax.random.normal(kb, (args.n_hidden + args.n_visible,), jnp.float64)
    params = params._replace(b1=b[: args.n_hidden], b2=b[args.n_hidden :])
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(0.0, 1.0, (args.m, args.n_visible))
    if args.output == "linear":
        x = rng.standard_normal((args.m, args.n_visible))
    x = jnp.asarray(x, jnp.float64)

    print(
        f"gradcheck: n_visible={args.n_visible} n_hidden={args.n_hidden} m={args.m} "
        f"lam={args.lam} beta={args.beta} rho={args.rho} output={args.output} float64, "
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
    ok = worst_ad <= GRADCHECK_TOL_AUTODIFF and worst_fd <= GRADCHECK_TOL_FD
    print(
        f"{'PASS' if ok else 'FAIL'}: max manual-vs-jax.grad {worst_ad:.2e} (tol {GRADCHECK_TOL_AUTODIFF:g}), "
        f"max vs finite differences {worst_fd:.2e} (tol {GRADCHECK_TOL_FD:g})"
    )
    return 0 if ok else 1


class _UsageError(Exception):
    pass


def _usage(msg: str) -> _UsageError:
    return _UsageError(msg)


def main(argv=None) -> int:
    from .validate import InputError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, _UsageError) as e:
        print(f"sae-jax {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
