r"""Diagnostics of a trained sparse autoencoder: pure functions of (params, data).

What a researcher looks at after (and during) training, beyond the cost:

* **Reconstruction error per sample**, :math:`e_i = \tfrac12 \lVert \hat x^{(i)} - x^{(i)} \rVert^2`
  (the cost's reconstruction term is their mean), and its distribution: a few badly
  reconstructed samples hide in the mean (:func:`reconstruction_errors`, :func:`quantiles`).
* **Dead units**: a hidden unit that never turns on, :math:`\max_i a^{(2)}_j(x^{(i)}) <` ``threshold``
  (default :data:`DEAD_THRESHOLD` = 0.1: it never gets past a tenth of the sigmoid's range on
  any sample). It carries no information about the input and acts as a constant.
* **Saturated units**: a unit stuck on, :math:`\min_i a^{(2)}_j(x^{(i)}) > 1 -` ``threshold``
  (default :data:`SATURATION_THRESHOLD` = 0.1: above 0.9 on every sample), the mirror image of a
  dead unit; its :math:`f'(z) \le 0.09` everywhere, so the sparsity penalty can barely pull it back.
* **ρ̂ against ρ**: the distribution over units of :math:`\hat\rho_j` on a log scale, with the
  target ρ (:func:`rho_hat_histogram`); a sparse code has them clustered at ρ.
* **Held-out metrics**: the same numbers on rows the optimizer never saw
  (:func:`split_validation` is the trainer's deterministic split, ``TrainConfig.validation_fraction``).
* **The mean predictor**: :math:`\tfrac12\,\tfrac1m\sum_i \lVert \bar x - x^{(i)} \rVert^2`, the
  reconstruction error of predicting the per-feature mean :math:`\bar x` of the same data for every
  sample (:func:`mean_predictor_reconstruction`): the error a model that learned nothing about the
  individual samples still reaches, and the baseline a trained model must beat.
* **A health warning** (:func:`health_warning`, the ``warning`` of :func:`evaluate`, training's
  ``TrainResult.warning``, one stderr line of ``sae-jax train`` and ``sae-jax evaluate``): one line when
  **most units are dead or saturated** — the dead and saturated fractions together exceed
  :data:`MOST_UNITS` = 1/2 — or when the reconstruction is **no better than the mean predictor's** —
  it explains less than :data:`MIN_EXPLAINED` = 5 % of the mean predictor's error, i.e.
  ``reconstruction >= (1 - MIN_EXPLAINED) * mean_predictor_reconstruction``, both on the same data.

:func:`evaluate` computes all of it in one jitted forward pass and returns plain Python numbers
(the rows of ``metrics.jsonl`` and of ``sae-jax evaluate``), its value checks fused into that
pass (:func:`sae_jax._src.checked.checked_call`). Data follow the package's dtype rule: ``x`` in the
parameters' dtype.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax import init_params
  >>> from sae_jax.metrics import dead_units, reconstruction_errors, unit_activation_range
  >>> p = init_params(jax.random.key(0), 4, 3)             # n_visible = 4, n_hidden = 3
  >>> x = jnp.full((5, 4), 0.5)
  >>> reconstruction_errors(p, x).shape                     # one e_i per sample
  (5,)
  >>> a2_min, a2_max, rho_hat = unit_activation_range(p, x)  # per hidden unit, over samples
  >>> a2_max.shape, dead_units(a2_max, threshold=0.1).dtype
  ((3,), dtype('bool'))
"""

from sae_jax._src.metrics import (
    reconstruction_errors as reconstruction_errors,
    unit_activation_range as unit_activation_range,
    dead_units as dead_units,
    saturated_units as saturated_units,
    quantiles as quantiles,
    rho_hat_histogram as rho_hat_histogram,
    split_validation as split_validation,
    mean_predictor_reconstruction as mean_predictor_reconstruction,
    health_warning as health_warning,
    evaluate as evaluate,
    DEAD_THRESHOLD as DEAD_THRESHOLD,
    SATURATION_THRESHOLD as SATURATION_THRESHOLD,
    QUANTILES as QUANTILES,
    MOST_UNITS as MOST_UNITS,
    MIN_EXPLAINED as MIN_EXPLAINED,
)

__all__ = [
    "reconstruction_errors",
    "unit_activation_range",
    "dead_units",
    "saturated_units",
    "quantiles",
    "rho_hat_histogram",
    "split_validation",
    "mean_predictor_reconstruction",
    "health_warning",
    "evaluate",
    "DEAD_THRESHOLD",
    "SATURATION_THRESHOLD",
    "QUANTILES",
    "MOST_UNITS",
    "MIN_EXPLAINED",
]
