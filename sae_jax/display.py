r"""Pictures: the learned filters (UFLDL ``display_network``) and the training curve.

matplotlib is imported lazily, inside the functions, and only through its
object-oriented API (``matplotlib.figure.Figure`` rendered by the Agg canvas). No
pyplot, no ``matplotlib.use``: drawing a PNG never changes the user's backend or
global state, works without a display, and ``import sae_jax`` never imports matplotlib.

Examples:
  >>> import numpy as np
  >>> from sae_jax._src.display import grid_shape
  >>> from sae_jax.display import tile_filters
  >>> grid_shape(25), grid_shape(10)                  # 5 × 5; 10 filters: 3 rows of 4
  ((5, 5), (3, 4))
  >>> W1 = np.random.default_rng(0).normal(size=(25, 64))   # 25 hidden units, 8×8 patches
  >>> img = tile_filters(W1)                          # 1 + 5·(8 + 1) pixels each way
  >>> img.shape, float(img.min()), float(img.max())
  ((46, 46), -1.0, 1.0)
"""

from sae_jax._src.display import (
    tile_filters as tile_filters,
    save_filters_png as save_filters_png,
    save_training_curve_png as save_training_curve_png,
    save_evaluation_png as save_evaluation_png,
    save_sweep_png as save_sweep_png,
)

__all__ = [
    "tile_filters",
    "save_filters_png",
    "save_training_curve_png",
    "save_evaluation_png",
    "save_sweep_png",
]
