"""sae_jax._src.metrics: per-sample reconstruction error, dead / saturated units, rho_hat vs rho, held-out split."""

import jax.numpy as jnp
import numpy as np
import pytest

import sae_jax as sae
from sae_jax._src import metrics
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
    assert "held out" in table and "dead units" in table and "mean predictor" in table
    assert len(table.splitlines()) == 11


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


def test_mean_predictor_reconstruction_is_half_the_summed_variance_of_the_same_data():
    p, x = random_problem(3, 30, 6, 4)
    xn = np.asarray(x)
    want = 0.5 * np.mean(np.sum((xn - xn.mean(0)) ** 2, axis=1))
    assert float(metrics.mean_predictor_reconstruction(x)) == pytest.approx(want, rel=1e-14)
    assert want == pytest.approx(0.5 * xn.var(0).sum(), rel=1e-13)
    m = metrics.evaluate(p, x, lam=1e-3, beta=3.0, rho=0.1)
    assert m["mean_predictor_reconstruction"] == pytest.approx(want, rel=1e-14)
    m_half = metrics.evaluate(p, x[:10], lam=1e-3, beta=3.0, rho=0.1)  # measured on the data given
    assert m_half["mean_predictor_reconstruction"] == pytest.approx(
        0.5 * np.mean(np.sum((xn[:10] - xn[:10].mean(0)) ** 2, axis=1)), rel=1e-14)
    with pytest.raises(sae.InputError, match=r"\(m, n_visible\)"):
        metrics.mean_predictor_reconstruction(np.zeros(4))


def _row(dead=0.0, sat=0.0, rec=0.3, base=0.5):
    return {"dead_fraction": dead, "saturated_fraction": sat, "reconstruction": rec,
            "mean_predictor_reconstruction": base}


def test_health_warning_thresholds_are_exactly_the_documented_ones():
    """'Most units': dead + saturated fractions > 1/2; 'no better': reconstruction >= 0.95 x the mean predictor's."""
    assert metrics.MOST_UNITS == 0.5 and metrics.MIN_EXPLAINED == 0.05
    assert metrics.health_warning(_row()) is None
    assert metrics.health_warning(_row(dead=0.3, sat=0.2)) is None          # exactly half: not most
    w = metrics.health_warning(_row(dead=0.3, sat=0.24))
    assert "30% of the hidden units are dead" in w and "24% saturated" in w and "mean predictor" not in w
    assert "saturated" in metrics.health_warning(_row(sat=0.6))
    assert metrics.health_warning(_row(rec=0.95 * 0.5 * (1 - 1e-9))) is None  # explains just over 5 %
    w = metrics.health_warning(_row(rec=0.95 * 0.5))
    assert "no better than the mean predictor's 0.5" in w and "dead" not in w
    assert "explains -2.0% of its error" in metrics.health_warning(_row(rec=0.51))
    both = metrics.health_warning(_row(dead=1.0, rec=0.51))
    assert "100% of the hidden units are dead" in both and "mean predictor" in both and "\n" not in both
    assert "constant" in metrics.health_warning(_row(rec=0.0, base=0.0))


def test_a_planted_dead_model_warns_and_a_working_one_does_not():
    """Every hidden unit switched off (b1 = -30) and the decoder at the data mean: the model is the mean
    predictor, so evaluate's warning names both problems. The same weights with b1 = 0 and a decoder
    fitted by least squares (all units vary, the reconstruction explains most of the error) do not warn."""
    rng = np.random.default_rng(4)
    m, n, h = 200, 6, 4
    t = rng.uniform(-1, 1, (m, h))
    A = rng.standard_normal((h, n)) / np.sqrt(h)
    x = jnp.asarray(0.5 + 0.12 * (t @ A))                   # in [0.1, 0.9]: a 4-dimensional signal
    W1 = jnp.asarray((3.0 / 0.12) * np.linalg.pinv(A).T)      # (h, n): z = 3 t + W1 . 0.5
    b1 = -W1 @ jnp.full(n, 0.5)
    xbar = np.asarray(x).mean(0)
    logit = np.log(xbar / (1 - xbar))
    dead = sae.Params(W1, jnp.full(h, -30.0), jnp.zeros((n, h)), jnp.asarray(logit))
    md = metrics.evaluate(dead, x, lam=1e-4, beta=3.0, rho=0.1)
    assert md["dead_fraction"] == 1.0
    assert md["reconstruction"] == pytest.approx(md["mean_predictor_reconstruction"], rel=1e-3)
    assert "100% of the hidden units are dead" in md["warning"] and "no better than the mean predictor" in md["warning"]
    # a working model: the decoder inverts the code (in the logit domain, least squares)
    a2 = 1 / (1 + np.exp(-(np.asarray(x) @ np.asarray(W1).T + np.asarray(b1))))
    target = np.log(np.asarray(x) / (1 - np.asarray(x)))
    coef, *_ = np.linalg.lstsq(np.c_[a2, np.ones(m)], target, rcond=None)
    good = sae.Params(W1, b1, jnp.asarray(coef[:h].T), jnp.asarray(coef[h]))
    mg = metrics.evaluate(good, x, lam=1e-4, beta=3.0, rho=0.1)
    assert mg["dead_fraction"] == 0.0 and mg["saturated_fraction"] == 0.0
    assert mg["reconstruction"] < 0.5 * mg["mean_predictor_reconstruction"]
    assert mg["warning"] is None
