"""sae_jax._src.experiments at tiny sizes: probe, self-taught learning, stacked before/after fine-tuning.

The data are 3x3 "images" of prototypes plus noise; every autoencoder here is 9 -> 9 trained on
(60, 9) rows with tests/test_stacked.py's config, so sae_jax.training.train's compiled runner is shared.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sae_jax import InputError, Params, init_params
from sae_jax.training import TrainConfig
from sae_jax.experiments import STACKED_CONFIGS, probe, second_layer_filters, self_taught, stacked_digits

HP = dict(steps=40, chunk=40, rho=0.2, lam=1e-4, beta=1.0)
CONFIG = TrainConfig(n_hidden=9, **HP)


def data(per_class: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    proto = rng.uniform(0.1, 0.9, (classes, 9))
    y = np.repeat(np.arange(classes), per_class)
    x = np.clip(proto[y] + 0.1 * rng.normal(size=(len(y), 9)), 0, 1)
    return x, y


def test_probe_features_against_raw():
    x, y = data(20, 3)
    # a fixed, well-spread encoder: the features keep the classes apart
    p = init_params(jax.random.key(0), 9, 6, dtype=jnp.float64)
    t = probe(p, x, y, seeds=(0, 1), steps=50)
    assert [r.name for r in t.rows] == ["raw inputs (9)", "features (6)"]
    assert all(len(r.values) == 2 for r in t.rows)
    assert t.rows[0].mean >= 0.9  # separable prototypes
    assert 0.0 <= t.rows[1].mean <= 1.0
    # a stack (sequence of Params) is probed on its last features
    # (6 -> 6, so the softmax trainer's compilation for 6 features is reused)
    t2 = probe((p, init_params(jax.random.key(1), 6, 6, dtype=jnp.float64)), x, y, seeds=(0,), steps=50)
    assert t2.rows[1].name == "features (6)" and t2.rows[1].values != t.rows[1].values[:1]
    with pytest.raises(InputError, match="params must be a sae_jax.Params"):
        probe("run", x, y)
    with pytest.raises(InputError, match="y must be integer class indices"):
        probe(p, x, y.astype(float))
    with pytest.raises(InputError, match="seeds must be a non-empty"):
        probe(p, x, y, seeds=())


def test_probe_on_a_separate_test_set():
    """test=(x_test, y_test): every row of x trains, the test set tests (the softmax exercise's t10k).
    42 training rows: the softmaxes compiled by the test above (its split of 60)."""
    x, y = data(14, 3)
    xt, yt = data(5, 3)
    xt, yt = xt[::-1].copy(), yt[::-1].copy()
    p = init_params(jax.random.key(0), 9, 6, dtype=jnp.float64)
    t = probe(p, x, y, seeds=(0,), test=(xt, yt), steps=50)
    assert "trained on 42 rows, tested on a separate test set of 15, 3 classes" in t.title
    assert t.rows[0].values[0] == 1.0  # the same prototypes: the raw pixels classify the test set
    with pytest.raises(InputError, match="x_test has 8 features per row, x has 9"):
        probe(p, x, y, test=(xt[:, :8], yt))
    with pytest.raises(InputError, match="test must be a pair"):
        probe(p, x, y, test=xt)
    with pytest.raises(InputError, match="the labels of x_test must be integer"):
        probe(p, x, y, test=(xt, yt[:-1]))


def test_self_taught_learns_on_other_classes(tmp_path):
    x, y = data(20, 6)  # 60 rows of classes 3-5 (unlabelled), 60 of 0-2 (labelled)
    png = tmp_path / "self_taught.png"
    t = self_taught(x, y, config=CONFIG, unlabelled_classes=(3, 4, 5), labelled_classes=(0, 1, 2),
                    seeds=(0, 1), softmax_steps=50, picture=png)
    assert [r.name for r in t.rows] == ["raw pixels (9)", "self-taught features (9)"]
    assert png.exists() and any("wrote" in n for n in t.notes)
    assert all(0.0 <= v <= 1.0 for r in t.rows for v in r.values)
    assert t.rows[0].mean >= 0.9
    with pytest.raises(InputError, match="must not overlap"):
        self_taught(x, y, config=CONFIG, unlabelled_classes=(0, 3), labelled_classes=(0, 1, 2))
    with pytest.raises(InputError, match="need at least 2"):
        self_taught(x, y, config=CONFIG, unlabelled_classes=(7,), labelled_classes=(0, 1, 2))


def test_stacked_before_and_after_fine_tuning(tmp_path):
    x, y = data(27, 3)  # 81 rows; test_fraction 0.26 -> 60 training rows (the shared runner's shape)
    png = tmp_path / "layer2.png"
    t = stacked_digits(x, y, configs=[CONFIG, TrainConfig(n_hidden=9, seed=1, **HP)], seeds=(0,),
                       test_fraction=0.26, softmax_steps=50, fine_tune_steps=30, picture=png)
    assert [r.name for r in t.rows] == ["raw pixels (9)", "stack, before fine-tuning", "stack, after fine-tuning"]
    assert png.exists() and (tmp_path / "layer2_fine_tuned.png").exists()
    assert t.rows[2].values[0] >= 0.9
    assert "9 -> 9 -> 9 -> 3" in t.notes[0]
    with pytest.raises(InputError, match="configs must be a non-empty sequence"):
        stacked_digits(x, y, configs=[])


def test_second_layer_filters_and_defaults():
    rng = np.random.default_rng(0)
    l1 = Params(rng.normal(size=(4, 9)), rng.normal(size=4), rng.normal(size=(9, 4)), rng.normal(size=9))
    l2 = Params(rng.normal(size=(3, 4)), rng.normal(size=3), rng.normal(size=(4, 3)), rng.normal(size=4))
    np.testing.assert_allclose(second_layer_filters([l1, l2]), np.asarray(l2.W1) @ np.asarray(l1.W1))
    with pytest.raises(InputError, match="at least two layers"):
        second_layer_filters([l1])
    assert [c.n_hidden for c in STACKED_CONFIGS] == [64, 36] and STACKED_CONFIGS[0].rho == 0.1
