"""sae_jax.metrics: per-sample reconstruction error, dead / saturated units, rho_hat vs rho, held-out split."""

import jax.numpy as jnp
import numpy as np
import pytest

import sae_jax as sae
from sae_jax import metrics
from helpers import random_problem


def test_reconstruction_errors_average_to_the_cost_term_and_match_numpy():
    p, x = random_problem(0, 9, 5, 3)
    e = metrics.reconstruction_errors(p, x)
    assert e.shape == (9,)
    terms = sae.cost_terms(p, x, lam=1e-3, beta=3.0, rho=0.1)
    np.testing.assert_allclose(float(jnp.mean(e)), float(terms.reconstruction), rtol=1e-14)
    W1, b1, W2, b2 = (np.asarray(a) for a in p)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    x_hat = sig(sig(np.asarray(x) @ W1.T + b1) @ W2.T + b2)
    np.testing.assert_allclose(np.asarray(e), 0.5 * ((x_hat - np.asarray(x)) ** 2).sum(1), rtol=1e-13)


def test_dead_and_saturated_units_by_their_stated_thresholds():
    """Unit 0 never turns on (b1 = -20: a < 1e-8), unit 1 never turns off (b1 = +20), the rest vary."""
    p, x = random_problem(1, 50, 6, 5, bias_scale=0.0, weight_scale=3.0)
    p = p._replace(b1=p.b1.at[0].set(-20.0).at[1].set(20.0))
    m = metrics.evaluate(p, x, lam=0.0, beta=1.0, rho=0.1, details=True)
    assert m["dead_fraction"] == pytest.approx(1 / 5) and m["saturated_fraction"] == pytest.approx(1 / 5)
    np.testing.assert_array_equal(metrics.dead_units(m["a2_max"]), [True, False, False, False, False])
    np.testing.assert_array_equal(metrics.saturated_units(m["a2_min"]), [False, True, False, False, False])
    # the thresholds are exactly what they say: max a < t (dead), min a > 1 - t (saturated)
    t = float(m["a2_max"][2])
    assert not metrics.dead_units(m["a2_max"], threshold=t)[2] and metrics.dead_units(m["a2_max"], threshold=t * 1.001)[2]
    lo, hi, rh = metrics.unit_activation_range(p, x)
    np.testing.assert_allclose(np.asarray(hi), m["a2_max"], rtol=1e-15)
    np.testing.assert_allclose(np.asarray(rh), m["rho_hat"], rtol=1e-15)
    with pytest.raises(sae.InputError, match=r"threshold must be a number in \(0, 1\)"):
        metrics.dead_units(m["a2_max"], threshold=1.5)


def test_evaluate_keys_quantiles_and_checks():
    p, x = random_problem(2, 40, 4, 3)
    m = metrics.evaluate(p, x, lam=1e-3, beta=3.0, rho=0.1, details=True)
    e = np.asarray(m["errors"])
    for q in metrics.QUANTILES:
        assert m[f"recon_error_q{100 * q:g}"] == pytest.approx(float(np.quantile(e, q)), rel=1e-14)
    assert m["recon_error_q0"] == e.min() and m["recon_error_q100"] == e.max()
    assert m["cost"] == pytest.approx(float(sae.cost(p, x, lam=1e-3, beta=3.0, rho=0.1)), rel=1e-13)
    assert m["mse"] == pytest.approx(float(np.mean((np.asarray(sae.reconstruct(p, x)) - np.asarray(x)) ** 2)), rel=1e-12)
    assert m["n_samples"] == 40
    with pytest.raises(sae.InputError, match="same dtype"):
        metrics.evaluate(p, x.astype(jnp.float32), lam=1e-3, beta=3.0, rho=0.1)
    with pytest.raises(sae.InputError, match="dead_threshold"):
        metrics.evaluate(p, x, lam=1e-3, beta=3.0, rho=0.1, dead_threshold=0.0)
    table = metrics.format_table({"training": m, "held out": m})
    assert "held out" in table and "dead units" in table and len(table.splitlines()) == 10


def test_rho_hat_histogram_covers_rho_and_every_unit():
    rh = np.array([1e-4, 0.009, 0.01, 0.011, 0.5])
    counts, edges = metrics.rho_hat_histogram(rh, rho=0.01, bins=12)
    assert counts.sum() == 5 and len(edges) == 13
    assert edges[0] <= 1e-4 and edges[-1] >= 0.5 and edges[0] < 0.01 < edges[-1]
    counts, edges = metrics.rho_hat_histogram(np.array([0.3, 0.4]), rho=0.01)  # rho outside the data: still in range
    assert edges[0] < 0.01 and counts.sum() == 2


def test_split_validation_is_a_deterministic_partition():
    tr, va = metrics.split_validation(10, 0.3, seed=1)
    assert len(va) == 3 and len(tr) == 7 and sorted(np.concatenate([tr, va]).tolist()) == list(range(10))
    tr2, va2 = metrics.split_validation(10, 0.3, seed=1)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, metrics.split_validation(10, 0.3, seed=2)[1])
    assert len(metrics.split_validation(10, 0.0)[1]) == 0
    assert len(metrics.split_validation(3, 0.01)[1]) == 1  # at least one row when asked for some
    for bad in (1.0, -0.1, "0.2", True):
        with pytest.raises(sae.InputError, match="validation_fraction"):
            metrics.split_validation(10, bad)


def test_evaluation_png(tmp_path):
    from sae_jax.display import save_evaluation_png

    p, x = random_problem(3, 30, 4, 6)
    m = metrics.evaluate(p, x, lam=0.0, beta=1.0, rho=0.05, details=True)
    save_evaluation_png({"data": m, "again": m}, tmp_path / "e.png", rho=0.05, title="t")
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"
