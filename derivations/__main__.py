"""``python -m derivations``: print the derivation step by step and the verdict of every check.

Example invocations::

    python -m derivations                 # plain text (unicode), every step and verdict
    python -m derivations --latex         # the same steps as Markdown + LaTeX ($$ blocks)
    python -m derivations --brief         # verdicts only: one line per derivation, failures in full
    python -m derivations --max-m 3 --n 3 --h 2 --no-numerics

Exit status 0 if every check holds, 1 otherwise (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import sys
import time

from .report import brief_summary, run_all, summary
from .steps import render_latex, render_text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m derivations",
        description="sympy derives the sparse autoencoder's gradient and the 1/m cancellation, "
        "and checks sae_jax against it.",
        epilog=__doc__.split("Example invocations::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--latex", action="store_true", help="print each step as LaTeX (Markdown with $$ blocks)")
    p.add_argument("--brief", action="store_true",
                   help="print only the verdicts: one line per derivation (failed checks in full) and the total")
    p.add_argument("--max-m", type=int, default=5, help="exact identities for m = 1..MAX_M (default 5)")
    p.add_argument("--n", type=int, default=2, help="visible units for the concrete-size identities (default 2)")
    p.add_argument("--h", type=int, default=2, help="hidden units for the concrete-size identities (default 2)")
    p.add_argument("--no-numerics", action="store_true", help="skip the float64 checks against sae_jax")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("max_m", "n", "h"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    render = render_latex if args.latex else render_text

    def show(d):
        print(render(d), flush=True)
        print(flush=True)

    t0 = time.perf_counter()
    derivations = run_all(max_m=args.max_m, n=args.n, h=args.h, numerics=not args.no_numerics,
                          progress=None if args.brief else show)
    print((brief_summary if args.brief else summary)(derivations, time.perf_counter() - t0))
    return 0 if all(d.passed for d in derivations) else 1


if __name__ == "__main__":
    sys.exit(main())
