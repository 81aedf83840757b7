"""Implementation of :mod:`sae_jax.cli` (private; import from the public module)."""

from __future__ import annotations

import argparse
import importlib
import sys

from ..checks.errors import InputError
from ..version import __version__
from .args import UsageError
from .flags import add_commands

__all__ = ["COMMANDS", "main", "build_parser"]

# command -> the module of sae_jax._src.cli whose ``cmd_<command>(args)`` runs it (returns the exit code;
# ``-`` in the command is ``_`` in the function: ``self-taught`` -> ``cmd_self_taught``).
# Imported when the command runs: together these modules' imports (sae_jax._src.check, data, display,
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
