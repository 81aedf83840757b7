"""``sae-jax check``: test someone's own sparse-autoencoder cost and gradient (:mod:`sae_jax.check`).

Exactly one of three modes: ``FILE.py:FUNCTION`` (run the code on float64 probe cases and name the
catalogued mistake its outputs match, or locate the difference; the file is imported, which executes
its top-level code: check only code you trust), ``--write-cases DIR`` (probe files for MATLAB/Octave or any
language) or ``--results FILE`` (compare the results made from them). Exit 0 when everything
agrees, 1 with the diagnosis, 2 when the code cannot be run. The variants (:mod:`sae_jax._src.variants`),
in any combination: ``--tied`` (W2 = W1ᵀ, ``theta = [W1(:); b1(:); b2(:)]``), ``--l1 GAMMA`` (the L1
activation penalty at that γ: passed to the function's ``l1``/extra parameter, or fixed in its code)
and ``--denoising`` (the function reads a corrupted input, ufldl ``..., data, corruptedData``, rows
``x_input``, and reconstructs the clean data); each also selects the cases written and read.

Examples:
  >>> from sae_jax.cli import build_parser
  >>> args = build_parser().parse_args(["check", "my_sae.py:sparseAutoencoderCost", "--convention", "ufldl"])
  >>> (check_mode(args), args.convention, args.arrays, args.tol, args.tied, args.l1, args.denoising, args.packing)
  ('FILE.py:FUNCTION', 'ufldl', 'auto', None, False, None, False, None)
  >>> check_mode(build_parser().parse_args(["check", "--write-cases", "cases/"]))
  '--write-cases'
"""

from __future__ import annotations

from pathlib import Path

from ..check import DEFAULT_TOL, check, check_results, write_cases
from ..rundir import check_writable
from .args import UsageError

__all__ = ["check_mode", "cmd_check"]


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
        if args.packing is not None:
            raise UsageError("--packing is for FILE.py:FUNCTION and --results (the cases hold both theta and "
                             "theta_rowmajor)")
        check_writable(Path(args.write_cases), "--write-cases directory")
        paths = write_cases(args.write_cases, tied=args.tied, l1=args.l1, denoising=args.denoising)
        print(f"wrote {', '.join(str(p) for p in paths)}")
        return 0
    if mode == "--results":
        report = check_results(args.results, output=args.output, tol=tol, tied=True if args.tied else None,
                               l1=args.l1, denoising=True if args.denoising else None, packing=args.packing)
    else:
        report = check(args.target, convention=args.convention, output=args.output or "sigmoid", tied=args.tied,
                       l1=args.l1, denoising=args.denoising, tol=tol, arrays=args.arrays, packing=args.packing)
    print(report.text)
    return report.exit_code
