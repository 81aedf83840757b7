"""sae_jax.heldout: the seeded split and the table of accuracies over seeds (moved from test_experiments)."""

from __future__ import annotations

import numpy as np
import pytest

from sae_jax import InputError
from sae_jax.heldout import Row, Table, split


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
