"""``sae-jax check``: test someone's own sparse-autoencoder cost and gradient (:mod:`sae_jax.check`).

Exactly one of three modes: ``FILE.py:FUNCTION`` (run the code on float64 probe cases and name the
catalogued mistake its outputs match), ``--write-cases DIR`` (probe files for MATLAB/Octave or any
language) or ``--results FILE`` (compare the results made from them). Exit 0 when everything
agrees, 1 with the diagnosis, 2 when the code cannot be run.

Examples:
  >>> from sae_jax.cli import build_parser
  >>> args = build_parser().parse_args(["check", "my_sae.py:sparseAutoencoderCost", "--convention", "ufldl"])
  >>> (args.func is cmd_check, check_mode(args), args.convention, args.arrays, args.tol)
  (True, 'FILE.py:FUNCTION', 'ufldl', 'auto', None)
  >>> check_mode(build_parser().parse_args(["check", "--write-cases", "cases/"]))
  '--write-cases'
"""

from __future__ import annotations

import argparse

from ..check import DEFAULT_TOL, check, check_results, write_cases
from .args import UsageError

__all__ = ["add_check_command", "check_mode", "cmd_check"]


def add_check_command(sub) -> None:
    c = sub.add_parser(
        "check",
        help="test your own sparse-autoencoder cost and gradient; names the mistake if it finds one",
        description="Run someone else's cost-and-gradient on float64 probe cases, compare it with "
        "sae-jax's float64 reference and name the catalogued mistake its outputs match. Exit 0 when "
        "everything agrees, 1 with the diagnosis, 2 when the code cannot be run.",
        epilog="examples:\n  sae-jax check my_sae.py:sparseAutoencoderCost\n"
        "  sae-jax check mypkg.sae:cost_and_grad --convention rows --output linear\n"
        "  sae-jax check --write-cases cases/\n  sae-jax check --results results.mat",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("target", nargs="?", default=None, metavar="FILE.py:FUNCTION",
                   help="path/to/file.py:function or package.module:function")
    c.add_argument("--convention", choices=("ufldl", "rows"), default=None,
                   help="ufldl: f(theta, visibleSize, hiddenSize, lambda, sparsityParam, beta, data); "
                   "rows: f(params, x, lam, beta, rho) (default: read from the signature)")
    c.add_argument("--output", choices=("sigmoid", "linear"), default=None,
                   help="the decoder the code implements (default sigmoid; for --results: the file's)")
    c.add_argument("--arrays", choices=("auto", "numpy", "torch"), default="auto",
                   help="inputs as numpy arrays or torch tensors (default auto: torch if the module imports it)")
    c.add_argument("--tol", type=float, default=None, help="relative tolerance per array and probe (default 1e-7)")
    c.add_argument("--write-cases", default=None, metavar="DIR",
                   help="write the probe cases and expected outputs (.npz, .mat, .json, README.md) to DIR")
    c.add_argument("--results", default=None, metavar="FILE",
                   help="compare a results file (.npz, .mat or .json) made from --write-cases")
    c.set_defaults(func=cmd_check)


def check_mode(args) -> str:
    """The one mode given: ``"FILE.py:FUNCTION"``, ``"--write-cases"`` or ``"--results"``."""
    modes = [m for m, v in (("FILE.py:FUNCTION", args.target), ("--write-cases", args.write_cases),
                            ("--results", args.results)) if v is not None]
    if len(modes) != 1:
        raise UsageError("give exactly one of FILE.py:FUNCTION, --write-cases DIR, --results FILE"
                         + (f" (got {', '.join(modes)})" if modes else ""))
    return modes[0]


def cmd_check(args) -> int:
    mode = check_mode(args)
    tol = DEFAULT_TOL if args.tol is None else args.tol
    if mode == "--write-cases":
        paths = write_cases(args.write_cases)
        print(f"wrote {', '.join(str(p) for p in paths)}")
        return 0
    if mode == "--results":
        report = check_results(args.results, output=args.output, tol=tol)
    else:
        report = check(args.target, convention=args.convention, output=args.output or "sigmoid", tol=tol,
                       arrays=args.arrays)
    print(report.text)
    return report.exit_code
