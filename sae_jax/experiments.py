r"""Are the learned features any good? Held-out softmax accuracy on labelled data (the UFLDL exercises' evaluations).

Three experiments, each a table over seeds (:class:`~sae_jax._src.heldout.Table`; every row: one
accuracy per seed, their mean and sample standard deviation, and the range):

- :func:`probe`: a softmax classifier (:func:`sae_jax._src.softmax.train_softmax`) trained on an
  autoencoder's features :math:`a^{(2)} = f(xW_1^\top + b_1)` (or a stack's last features) of a
  training split, its accuracy on the held-out split, against the same classifier on the raw
  inputs. One seed = one random split.
- :func:`self_taught`: UFLDL's *self-taught learning* exercise. A sparse autoencoder learns
  features from the *unlabelled* classes only (digits 5–9); a softmax is trained on those
  features of half of the labelled classes' samples (digits 0–4) and tested on the other half,
  against raw pixels. One seed = one autoencoder initialisation and one split.
- :func:`stacked_digits`: UFLDL's *stacked autoencoder* exercise. Two sparse autoencoders
  pretrained greedily on the training split, a softmax on the second layer's features
  ("before fine-tuning"), then the whole stack fine-tuned (:mod:`sae_jax._src.stacked`; "after").

The defaults are for scikit-learn's 8×8 digits (``sae_jax._src.data.load_dataset("digits",
labels=True)``); :mod:`sae_jax._src.presets` holds them, the exercises' own MNIST settings and
UFLDL's published MNIST accuracies (:data:`UFLDL_MNIST`). To reproduce those, pass MNIST's
training part as ``x, y`` (:func:`sae_jax._src.data.load_mnist`) with the MNIST settings, its t10k
part as ``test=`` (probe, stacked), and ``ordered=True`` to :func:`self_taught`.

Every function takes ``x`` ``(m, n)`` (values in [0, 1] for the sigmoid autoencoders) and
integer labels ``y`` ``(m,)``, converts ``x`` to the configs' dtype (as :func:`sae_jax.train`
does; the default ``TrainConfig.dtype`` is float64, which needs
``jax.config.update("jax_enable_x64", True)``), and can write pictures with
:mod:`sae_jax._src.display`.

Examples:
  >>> import jax, numpy as np
  >>> from sae_jax import init_params
  >>> from sae_jax.experiments import probe
  >>> rng = np.random.default_rng(0)
  >>> y = rng.integers(0, 2, 40)
  >>> x = np.clip(0.5 + 0.3 * (y[:, None] - 0.5) + 0.05 * rng.normal(size=(40, 4)), 0, 1).astype(np.float32)
  >>> table = probe(init_params(jax.random.key(0), 4, 3), x, y, seeds=(0, 1), steps=30)
  >>> [row.name for row in table.rows]
  ['raw inputs (4)', 'features (3)']
  >>> len(table.rows[0].values), 0.0 <= table.rows[1].mean <= 1.0
  (2, True)
"""

from sae_jax._src.experiments import (
    probe as probe,
    self_taught as self_taught,
    stacked_digits as stacked_digits,
    second_layer_filters as second_layer_filters,
    Row as Row,
    Table as Table,
    split as split,
)
from sae_jax._src.presets import (
    UFLDL_MNIST as UFLDL_MNIST,
    SELF_TAUGHT_CONFIG as SELF_TAUGHT_CONFIG,
    STACKED_CONFIGS as STACKED_CONFIGS,
    SELF_TAUGHT_MNIST_CONFIG as SELF_TAUGHT_MNIST_CONFIG,
    STACKED_MNIST_CONFIGS as STACKED_MNIST_CONFIGS,
)

__all__ = [
    "probe",
    "self_taught",
    "stacked_digits",
    "second_layer_filters",
    "Row",
    "Table",
    "split",
    "UFLDL_MNIST",
    "SELF_TAUGHT_CONFIG",
    "STACKED_CONFIGS",
    "SELF_TAUGHT_MNIST_CONFIG",
    "STACKED_MNIST_CONFIGS",
]
