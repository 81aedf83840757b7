"""The command line, ``sae-jax`` (also ``python -m sae_jax``): :func:`main`.

``sae-jax --help`` lists the commands (train, sweep, visualize, encode, evaluate, gradcheck, check,
probe, self-taught, stacked) with example invocations; ``sae-jax COMMAND --help`` each one's flags.
Bad input ends with exit code 2 and one line on stderr, nothing written; training that diverges
ends with exit code 1, naming the step and the (finite) checkpoint kept.

Examples:
  >>> from sae_jax.cli import build_parser
  >>> args = build_parser().parse_args(["train", "--n-hidden", "36", "--optimizer", "adam"])
  >>> (args.command, args.n_hidden, args.optimizer)
  ('train', 36, 'adam')
"""

from sae_jax._src.cli import build_parser as build_parser, main as main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":  # python -m sae_jax.cli
    import sys

    sys.exit(main())
