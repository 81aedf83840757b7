"""Implementation of :mod:`sae_jax.metrics` (private; import from the public module)."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from . import checked, validate
from .cost import terms_from_activations
from .forward import forward
from .params import Params

__all__ = [
    "DEAD_THRESHOLD",
    "SATURATION_THRESHOLD",
    "QUANTILES",
    "reconstruction_errors",
    "unit_activation_range",
    "dead_units",
    "saturated_units",
    "quantiles",
    "rho_hat_histogram",
    "split_validation",
    "MOST_UNITS",
    "MIN_EXPLAINED",
    "mean_predictor_reconstruction",
    "health_warning",
    "evaluate",
    "format_table",
]

DEAD_THRESHOLD = 0.1
SATURATION_THRESHOLD = 0.1
QUANTILES = (0.0, 0.5, 0.9, 0.99, 1.0)
#: "Most units": :func:`health_warning` warns when the dead and saturated fractions together exceed this.
MOST_UNITS = 0.5
#: "No better than the mean predictor": :func:`health_warning` warns when the reconstruction explains
#: less than this fraction of the mean predictor's error (``1 - reconstruction / mean_predictor < 0.05``).
MIN_EXPLAINED = 0.05


def reconstruction_errors(params: Params, x, *, output: str = "sigmoid") -> jax.Array:
    r"""Per-sample reconstruction error :math:`e_i = \tfrac12 \lVert \hat x^{(i)} - x^{(i)} \rVert^2`.

    Args:
      params: :class:`~sae_jax.Params`.
      x: ``(m, n_visible)`` in params' dtype.
      output: ``"sigmoid"`` or ``"linear"``.

    Returns:
      ``(m,)``; its mean is :func:`sae_jax.cost_terms`' ``reconstruction``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from sae_jax import init_params
      >>> from sae_jax.metrics import reconstruction_errors
      >>> p = init_params(jax.random.key(0), 4, 2)
      >>> reconstruction_errors(p, jnp.full((3, 4), 0.5)).shape
      (3,)
    """
    validate.check_output(output)
    x_hat = forward(params, x, output=output).a3
    return 0.5 * jnp.sum(jnp.square(x_hat - x), axis=-1)


def unit_activation_range(params: Params, x) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""``(min_i a_j, max_i a_j, ρ̂_j)`` per hidden unit over the samples of ``x``: each ``(n_hidden,)``."""
    a2 = forward(params, x).a2
    return jnp.min(a2, axis=0), jnp.max(a2, axis=0), jnp.mean(a2, axis=0)


def _check_threshold(name, t):
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0 < float(t) < 1:
        raise validate.InputError(f"{name} must be a number in (0, 1), got {t!r}")


def dead_units(a2_max, *, threshold: float = DEAD_THRESHOLD) -> np.ndarray:
    """Boolean mask of units whose largest activation over the data is below ``threshold`` (never on)."""
    _check_threshold("threshold", threshold)
    return np.asarray(a2_max) < threshold


def saturated_units(a2_min, *, threshold: float = SATURATION_THRESHOLD) -> np.ndarray:
    """Boolean mask of units whose smallest activation over the data is above ``1 - threshold`` (never off)."""
    _check_threshold("threshold", threshold)
    return np.asarray(a2_min) > 1.0 - threshold


def quantiles(values, qs=QUANTILES) -> dict[str, float]:
    """``{"mean": ..., "q50": ..., "q90": ...}`` of a 1-D array (``q0`` is the min, ``q100`` the max)."""
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise validate.InputError("quantiles of an empty array")
    out = {"mean": float(v.mean())}
    for q, val in zip(qs, np.quantile(v, qs)):
        out[f"q{100 * q:g}"] = float(val)
    return out


def rho_hat_histogram(rho_hat, *, rho: float, bins: int = 30) -> tuple[np.ndarray, np.ndarray]:
    r"""Histogram of :math:`\hat\rho_j` over units, in log-spaced bins that include ``rho``.

    The bins span ``[min(ρ̂, ρ)/2, max(ρ̂, ρ)·2]`` clipped to ``[1e-12, 1]``, geometrically.

    Returns:
      ``(counts, edges)``: ``(bins,)`` integer counts and ``(bins + 1,)`` edges.
    """
    r = np.asarray(rho_hat, np.float64).ravel()
    if r.size == 0:
        raise validate.InputError("rho_hat must have at least one unit")
    if not (isinstance(bins, numbers.Integral) and bins >= 1):
        raise validate.InputError(f"bins must be an integer >= 1, got {bins!r}")
    lo = max(min(float(r.min()), rho) / 2, 1e-12)
    hi = min(max(float(r.max()), rho) * 2, 1.0)
    edges = np.geomspace(lo, hi, bins + 1)
    counts, _ = np.histogram(np.clip(r, lo, hi), edges)
    return counts, edges


def split_validation(m: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, validation)`` of a deterministic shuffled split (both sorted).

    ``round(fraction * m)`` rows are held out (at least 1 when ``fraction > 0``; at least one
    row is left for training); ``fraction = 0`` holds out nothing. Seeded by ``seed`` alone.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 <= float(fraction) < 1:
        raise validate.InputError(f"validation_fraction must be in [0, 1), got {fraction!r}")
    if fraction == 0:
        return np.arange(m), np.arange(0)
    n_val = min(max(int(round(float(fraction) * m)), 1), m - 1)
    if n_val < 1:
        raise validate.InputError(f"validation_fraction={fraction} leaves no training rows of m={m}")
    perm = np.random.default_rng(seed).permutation(m)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def mean_predictor_reconstruction(x) -> jax.Array:
    r"""The reconstruction error of the mean predictor on ``x``:
    :math:`\tfrac12\,\tfrac1m\sum_i \lVert \bar x - x^{(i)} \rVert^2`, :math:`\bar x = \tfrac1m\sum_i x^{(i)}`.

    The cost's reconstruction term for a "model" that predicts the per-feature mean of ``x`` for
    every sample (half the summed per-feature variance, ``ddof=0``); compare a model's
    reconstruction on the same ``x`` with it (:func:`health_warning`).

    Args:
      x: ``(m, n_visible)``, samples as rows.

    Returns:
      A scalar in ``x``'s dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> from sae_jax.metrics import mean_predictor_reconstruction
      >>> float(mean_predictor_reconstruction(jnp.array([[0.0, 1.0], [1.0, 1.0]])))  # x̄ = (0.5, 1): ½ · mean(0.25, 0.25)
      0.125
    """
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1:
        raise validate.InputError(f"x must be (m, n_visible) with m >= 1, got shape {x.shape}")
    return 0.5 * jnp.mean(jnp.sum(jnp.square(x - jnp.mean(x, axis=0, keepdims=True)), axis=-1))


def health_warning(m: dict) -> str | None:
    """One line saying what is wrong with a trained model, or ``None`` when nothing is.

    The two checks are independent: with a small ρ a sparse code can reconstruct well while its
    units stay below the dead threshold on every sample (then only the first is reported), and a
    model whose units all vary can still reconstruct no better than the mean.

    Reads ``dead_fraction``, ``saturated_fraction``, ``reconstruction`` and
    ``mean_predictor_reconstruction`` of ``m`` (an :func:`evaluate` dict, or a metrics row with the
    baseline added), all measured on the same data. Warns when

    * **most units are dead or saturated**: ``dead_fraction + saturated_fraction > MOST_UNITS``
      (more than half of the hidden units carry no information about the input), or
    * **the reconstruction is no better than the mean predictor's**:
      ``reconstruction >= (1 - MIN_EXPLAINED) * mean_predictor_reconstruction`` (the model explains
      less than 5 % of the error of predicting the per-feature mean for every sample).

    Examples:
      >>> from sae_jax.metrics import health_warning
      >>> health_warning({"dead_fraction": 0.04, "saturated_fraction": 0.0, "reconstruction": 0.38,
      ...                 "mean_predictor_reconstruction": 0.5057}) is None
      True
      >>> print(health_warning({"dead_fraction": 1.0, "saturated_fraction": 0.0, "reconstruction": 0.5095,
      ...                       "mean_predictor_reconstruction": 0.5057}))
      100% of the hidden units are dead (max activation < 0.1 on every sample) and 0% saturated (min > 0.9), more than half; reconstruction 0.5095 is no better than the mean predictor's 0.5057 (explains -0.8% of its error, under 5%)
    """
    dead, sat = float(m["dead_fraction"]), float(m["saturated_fraction"])
    rec, base = float(m["reconstruction"]), float(m["mean_predictor_reconstruction"])
    problems = []
    if dead + sat > MOST_UNITS:
        problems.append(
            f"{dead:.0%} of the hidden units are dead (max activation < {DEAD_THRESHOLD:g} on every sample) "
            f"and {sat:.0%} saturated (min > {1 - SATURATION_THRESHOLD:g}), more than half"
        )
    if rec >= (1 - MIN_EXPLAINED) * base:
        explained = f"explains {1 - rec / base:.1%} of its error, under {MIN_EXPLAINED:.0%}" if base > 0 else (
            "the data are constant")
        problems.append(f"reconstruction {rec:.4g} is no better than the mean predictor's {base:.4g} ({explained})")
    return "; ".join(problems) if problems else None


def _diagnostic_arrays(params, x, *, lam, beta, rho, output, l1=None):
    """The one pass :func:`evaluate` reads: cost terms, per-sample errors, per-unit min/max activation,
    the mean predictor's reconstruction."""
    dtype = params.W1.dtype
    lam, beta, rho = (jnp.asarray(v, dtype) for v in (lam, beta, rho))
    l1 = None if l1 is None else jnp.asarray(l1, dtype)
    acts = forward(params, x, output=output)
    terms = terms_from_activations(params, x, acts, lam=lam, beta=beta, rho=rho, l1=l1)
    errors = 0.5 * jnp.sum(jnp.square(acts.a3 - x), axis=-1)
    baseline = 0.5 * jnp.mean(jnp.sum(jnp.square(x - jnp.mean(x, axis=0, keepdims=True)), axis=-1))
    return terms, errors, jnp.min(acts.a2, axis=0), jnp.max(acts.a2, axis=0), baseline


def evaluate(
    params: Params,
    x,
    *,
    lam,
    beta,
    rho,
    output: str = "sigmoid",
    dead_threshold: float = DEAD_THRESHOLD,
    saturation_threshold: float = SATURATION_THRESHOLD,
    details: bool = False,
    l1=None,
) -> dict:
    r"""Every diagnostic at ``params`` on ``x``, in one jitted pass, as Python numbers.

    Keys: ``cost``, ``reconstruction``, ``weight_decay``, ``sparsity`` (the cost terms);
    ``mse`` (mean squared error per entry, :math:`2\,\text{reconstruction}/n`);
    ``recon_error_mean``, ``recon_error_q0`` … ``recon_error_q100`` (:data:`QUANTILES` of
    :math:`e_i`); ``rho_hat_mean/min/max``; ``dead_fraction``, ``saturated_fraction`` (of the
    hidden units; thresholds as in the module docstring); ``n_samples``;
    ``mean_predictor_reconstruction`` (:func:`mean_predictor_reconstruction` of the same ``x``) and
    ``warning``: :func:`health_warning`'s line (a ``str``), or ``None`` for a healthy model (nothing is
    printed or raised: the CLI prints it).

    With ``details=True`` also the arrays (numpy): ``errors`` ``(m,)``, ``rho_hat``, ``a2_min``,
    ``a2_max`` ``(n_hidden,)``.

    Args:
      params, x, lam, beta, rho, output, l1: as for :func:`sae_jax.cost` (checked the same way);
        with ``l1`` the cost includes the L1 activation term, also given as ``"l1"``.
      dead_threshold, saturation_threshold: in (0, 1).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from sae_jax import init_params
      >>> from sae_jax.metrics import evaluate
      >>> p = init_params(jax.random.key(0), 4, 2)
      >>> m = evaluate(p, jnp.full((8, 4), 0.5), lam=1e-4, beta=3.0, rho=0.1)
      >>> sorted(k for k in m if k.endswith("fraction")), m["n_samples"]
      (['dead_fraction', 'saturated_fraction'], 8)
    """
    _check_threshold("dead_threshold", dead_threshold)
    _check_threshold("saturation_threshold", saturation_threshold)
    # Compiled, with the value checks fused into the pass (a jax.Array of data is checked once):
    # the trainer calls this after every chunk.
    # finite_result=False: a non-finite cost is reported as it is (the trainer reads it as divergence).
    arrays = checked.checked_call(_diagnostic_arrays, params, x, lam=lam, beta=beta, rho=rho, output=output, l1=l1,
                                  finite_result=False)
    terms, errors, a2_min, a2_max, baseline = jax.device_get(arrays)
    rh = np.asarray(terms.rho_hat, np.float64)
    out = {
        "cost": float(terms.cost),
        "reconstruction": float(terms.reconstruction),
        "weight_decay": float(terms.weight_decay),
        "sparsity": float(terms.sparsity),
        "mse": 2.0 * float(terms.reconstruction) / x.shape[1],
        **{f"recon_error_{k}": v for k, v in quantiles(errors).items()},
        "rho_hat_mean": float(rh.mean()),
        "rho_hat_min": float(rh.min()),
        "rho_hat_max": float(rh.max()),
        "dead_fraction": float(dead_units(a2_max, threshold=dead_threshold).mean()),
        "saturated_fraction": float(saturated_units(a2_min, threshold=saturation_threshold).mean()),
        "n_samples": int(x.shape[0]),
        "mean_predictor_reconstruction": float(baseline),
    }
    if l1 is not None:
        out["l1"] = float(terms.l1)
    out["warning"] = health_warning(out)
    if details:
        out.update(errors=np.asarray(errors), rho_hat=rh, a2_min=np.asarray(a2_min), a2_max=np.asarray(a2_max))
    return out


_TABLE = (
    ("samples", "n_samples", "{:d}"),
    ("cost", "cost", "{:.6g}"),
    ("reconstruction (mean e_i)", "reconstruction", "{:.6g}"),
    ("  mean predictor's (baseline)", "mean_predictor_reconstruction", "{:.6g}"),
    ("  e_i median / p90 / p99 / max", ("recon_error_q50", "recon_error_q90", "recon_error_q99", "recon_error_q100"),
     "{:.4g}"),
    ("MSE per entry", "mse", "{:.4g}"),
    ("sparsity term", "sparsity", "{:.6g}"),
    ("rho_hat mean / min / max", ("rho_hat_mean", "rho_hat_min", "rho_hat_max"), "{:.4g}"),
    (f"dead units (max a < {DEAD_THRESHOLD:g})", "dead_fraction", "{:.1%}"),
    (f"saturated units (min a > {1 - SATURATION_THRESHOLD:g})", "saturated_fraction", "{:.1%}"),
)


def format_table(columns: dict[str, dict]) -> str:
    """A short plain-text table: one column per ``{name: evaluate(...)}`` entry (e.g. training, held out)."""
    names = list(columns)
    rows = [("", *names)]
    for label, keys, fmt in _TABLE:
        keys = (keys,) if isinstance(keys, str) else keys
        cells = []
        for n in names:
            m = columns[n]
            vals = [m.get(k) for k in keys]
            cells.append("" if any(v is None for v in vals) else " / ".join(fmt.format(v) for v in vals))
        rows.append((label, *cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
