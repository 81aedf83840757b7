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

from sae_jax._src.cli import build_parser as build_parser, main as main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":  # python -m sae_jax.cli
    import sys

    sys.exit(main())
