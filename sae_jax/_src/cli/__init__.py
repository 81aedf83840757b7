"""Command-line interface: ``sae-jax`` (or ``python -m sae_jax``).

Example invocations::

    sae-jax train                          # the UFLDL exercise: 8x8 natural patches, 25 hidden, 400 L-BFGS its
    sae-jax train --out runs/digits --data digits --n-hidden 36 --steps 200
    sae-jax train --optimizer adam --learning-rate 1e-2 --batch-size 128 --steps 4000
    sae-jax train --data my_patches.npy --dtype float32 --gradient autodiff
    sae-jax train --resume runs/digits --steps 400     # continue a run (bit-identical to no interruption)
    sae-jax train --patch-size 4 --n-patches 2000 --validation-fraction 0.2   # val_* metrics each row
    sae-jax visualize runs/digits                      # filters.png from a run dir / checkpoint / params file
    sae-jax encode runs/digits --out features.npy       # the run's own data (or --data ...)
    sae-jax evaluate runs/digits                       # diagnostics table + evaluation.png
    sae-jax sweep --beta 0,1,3 --rho 0.01,0.05 --steps 200 --out runs/sweep   # 6 settings, one compiled run
    sae-jax gradcheck                      # manual vs jax.grad vs finite differences, UFLDL sizes
    sae-jax gradcheck --m 100 --output linear
    sae-jax check my_sae.py:sparseAutoencoderCost  # test your implementation; names the mistake
    sae-jax check --write-cases cases/             # probe files for MATLAB/Octave/any language
    sae-jax probe runs/digits                      # softmax on the run's features vs raw pixels, 3 seeds
    sae-jax self-taught --out runs/self-taught     # UFLDL's self-taught learning on digits (5-9 -> 0-4)
    sae-jax stacked --out runs/stacked             # stacked autoencoders, before/after fine-tuning

Bad input ends with exit code 2 and one line on stderr (nothing is written; a usage error
points to --help); training that diverges (non-finite cost, gradient or parameters) ends
with exit code 1, naming the step and the checkpoint kept (always a finite state). The
operating system refusing a write (no permission, a full disk) is one line naming the file:
exit code 2, or 1 when it stops a run midway (naming the last good checkpoint, kept intact).
``sae-jax --version`` prints the version.

The flags of every command are in :mod:`sae_jax._src.cli.flags` (those of ``TrainConfig`` generated
from its fields' metadata); the code of each command group in its own module --
:mod:`sae_jax._src.cli.train`, :mod:`sae_jax._src.cli.trained` (visualize, encode, evaluate),
:mod:`sae_jax._src.cli.sweep`, :mod:`sae_jax._src.cli.gradcheck`, :mod:`sae_jax._src.cli.check`,
:mod:`sae_jax._src.cli.experiments` (probe, self-taught, stacked; their data in :mod:`sae_jax._src.cli.labelled`) -- with what they
share in :mod:`sae_jax._src.cli.args`. :func:`main` imports a command's module when that command runs
(:data:`COMMANDS`), so ``sae-jax --help`` and usage errors load none of them.

Examples:
  >>> args = build_parser().parse_args(["train", "--n-hidden", "36", "--optimizer", "adam"])
  >>> (args.command, args.n_hidden, args.optimizer, args.steps)  # None: not given, TrainConfig's default
  ('train', 36, 'adam', None)
  >>> main(["check"])  # bad input: one line on stderr, exit code 2
  2
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..validate import InputError
from ..version import __version__
from .args import UsageError
from .flags import add_commands

__all__ = ["COMMANDS", "main", "build_parser"]

# command -> the module of sae_jax.cli whose ``cmd_<command>(args)`` runs it (returns the exit code;
# ``-`` in the command is ``_`` in the function: ``self-taught`` -> ``cmd_self_taught``).
# Imported when the command runs: together these modules' imports (sae_jax.check, data, display,
# metrics, gradcheck) are ~20 ms, 4% of the start-up that `sae-jax --help` would otherwise pay.
COMMANDS = {
    "gradcheck": "gradcheck",
    "train": "train",
    "visualize": "trained",
    "encode": "trained",
    "evaluate": "trained",
    "check": "check",
    "sweep": "sweep",
    "probe": "experiments",
    "self-taught": "experiments",
    "stacked": "experiments",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and a pointer to ``--help`` (exit code 2).

    Subcommand parsers inherit the class (``add_subparsers`` uses the parent's class)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``sae-jax`` parser: one subcommand per key of :data:`COMMANDS` (``args.command``)."""
    parser = _Parser(
        prog="sae-jax",
        description="The classic KL-sparsity autoencoder in JAX.",
        epilog=__doc__.split("Example invocations::", 1)[1].split("Bad input", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sae-jax {__version__}")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv=None) -> int:
    """Run ``sae-jax`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Bad input found after parsing (:class:`~sae_jax.InputError` from the library,
    :class:`~sae_jax._src.cli.args.UsageError` from the CLI) is printed as one line on stderr: exit 2.
    argparse's own usage errors and ``--help`` raise ``SystemExit`` (2 and 0) as usual."""
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"{__name__}.{COMMANDS[args.command]}")
    run = getattr(module, "cmd_" + args.command.replace("-", "_"))
    try:
        return int(run(args) or 0)
    except (InputError, UsageError) as e:
        print(f"sae-jax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the OS refused a read or write: one line naming the file (exit 1 mid-run)
        from ..checkpoint import os_error_message

        print(f"sae-jax {args.command}: error: {os_error_message(e)}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
