"""``python -m sae_jax.cli`` runs ``sae-jax`` (as ``python -m sae_jax`` does)."""

import sys

from . import main

sys.exit(main())
