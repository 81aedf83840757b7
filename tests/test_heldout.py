"""sae_jax._src.heldout: the seeded split and the table of accuracies over seeds (moved from test_experiments)."""

from __future__ import annotations

import numpy as np
import pytest

from sae_jax import InputError
from sae_jax.experiments import Row, Table, split


def test_split_is_seeded_disjoint_and_complete():
    a_tr, a_te = split(20, test_fraction=0.25, seed=3)
    b_tr, b_te = split(20, test_fraction=0.25, seed=3)
    assert np.array_equal(a_te, b_te) and len(a_te) == 5
    assert sorted(np.concatenate([a_tr, a_te]).tolist()) == list(range(20))
    assert not np.array_equal(split(20, test_fraction=0.25, seed=4)[1], a_te)
    with pytest.raises(InputError, match="test_fraction must be in"):
        split(20, test_fraction=1.0, seed=0)


def test_table_statistics_and_text():
    t = Table("T", (0, 1, 2), (Row("a", (0.5, 0.7, 0.9)),), ("note",))
    assert t.rows[0].mean == pytest.approx(0.7) and t.rows[0].std == pytest.approx(0.2)
    assert "0.7000 ± 0.2000" in t.text() and "0.5000–0.9000" in t.text() and t.text().endswith("note")
    assert t.to_dict()["rows"][0]["values"] == [0.5, 0.7, 0.9]
    assert Row("one", (0.3,)).std == 0.0


def test_ordered_split_is_the_exercises():
    """stlExercise.m: numTrain = round(m/2) (MATLAB rounds halves up); trainSet = the first numTrain rows."""
    from sae_jax._src.heldout import ordered_split

    for m, n_train in ((30596, 15298), (5, 3), (7, 4), (2, 1)):
        tr, te = ordered_split(m, test_fraction=0.5)
        assert tr.tolist() == list(range(n_train)) and te.tolist() == list(range(n_train, m))
    assert [len(a) for a in ordered_split(10, test_fraction=0.3)] == [7, 3]
    with pytest.raises(InputError, match="leaves no training or no test rows of m = 1"):
        ordered_split(1, test_fraction=0.5)
    with pytest.raises(InputError, match="test_fraction must be in"):
        ordered_split(10, test_fraction=0.0)


def test_labelled_and_seed_checks_name_the_argument():
    from sae_jax._src.heldout import check_labelled, check_seeds

    x, y = check_labelled(np.zeros((3, 2)), np.array([0, 1, 1]))
    assert x.shape == (3, 2) and y.tolist() == [0, 1, 1]
    with pytest.raises(InputError, match="the labels of x_test must be integer class indices of shape .3,."):
        check_labelled(np.zeros((3, 2)), np.zeros(3), name="x_test")
    with pytest.raises(InputError, match="x_test must be finite"):
        check_labelled(np.full((3, 2), np.nan), np.zeros(3, int), name="x_test")
    with pytest.raises(InputError, match="y must hold class indices >= 0"):
        check_labelled(np.zeros((3, 2)), np.array([0, -1, 1]))
    assert check_seeds([2, 0]) == (2, 0)
    with pytest.raises(InputError, match="each seed must be an integer >= 0, got True"):
        check_seeds([True])
