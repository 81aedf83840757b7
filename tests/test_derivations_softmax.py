"""derivations.softmax and derivations.stacked: each claim is a test.

- softmax: sympy's ∂J/∂θ == the tutorial's −(1/m)(1{y} − P)ᵀX + λθ exactly (n = k = 3, m = 1..3,
  every labelling for m <= 2), for the textbook and the logsumexp form of the cost; the check
  catches wrong formulas; the over-parameterisation remark; three-way numbers <= 1e-12;
- stacked: sympy's gradient of stackedAECost == the tutorial's fine-tuning deltas exactly, every
  array (m = 1, 2; n = 2, 3; two hidden layers of 2; k = 2, 3); negative controls; three-way numbers.

Larger sizes / all labellings are marked slow.
"""

from __future__ import annotations

import doctest

import pytest
import sympy as sp

from derivations import softmax as S
from derivations import stacked as T
from derivations.steps import render_latex, render_text


def test_exp_rule_and_opaque_exp():
    d = S.exp_derivative()
    assert d.passed, render_text(d)
    u = sp.Symbol("u")
    assert sp.diff(S.E(u), u) == S.E(u)


@pytest.mark.parametrize("form", ["textbook", "logsumexp"])
def test_softmax_exact_identities(form):
    d = S.identities((1, 2, 3), n=3, k=3, forms=(form,))
    assert d.passed, render_text(d, show_steps=False)
    assert len(d.checks) == 3


@pytest.mark.slow
def test_softmax_exact_identities_every_labelling_m3():
    d = S.identities((3,), n=3, k=3, all_labellings_up_to=3)
    assert d.passed and "27 labellings" in d.checks[0].claim


def test_softmax_identity_check_is_not_vacuous():
    mod = S.model(2, 3, 3, (0, 2))
    ours, tut = S.sympy_gradient(mod), S.tutorial_gradient(mod)
    assert S.is_identity(mod, ours[1, 2] - tut[1, 2])
    # sign of (1{y} - P) flipped, weight decay missing, 1/m missing, a transposed entry: all caught
    flipped = (mod.one_hot() - mod.P).T * mod.X / mod.m + mod.lam * mod.theta
    assert not S.is_identity(mod, ours[1, 2] - flipped[1, 2])
    assert not S.is_identity(mod, ours[1, 2] - (tut[1, 2] - mod.lam * mod.theta[1, 2]))
    no_mean = -(mod.one_hot() - mod.P).T * mod.X + mod.lam * mod.theta
    assert not S.is_identity(mod, ours[1, 2] - no_mean[1, 2])
    assert not S.is_identity(mod, ours[1, 2] - tut[2, 1])
    with pytest.raises(ValueError, match=r"y must be 2 class indices in \[0, 3\)"):
        S.model(2, 3, 3, (0, 3))


def test_softmax_overparameterisation():
    d = S.overparameterised()
    assert d.passed, render_text(d)


def test_softmax_three_way_numbers():
    d = S.agreement(((1, 3, 3), (3, 3, 3)))
    assert d.passed, render_text(d)
    errs = S.three_way(2, 4, 2, seed=1)
    assert max(errs.values()) <= S.TOL


def test_stacked_exact_identities():
    d = T.identities(((1, 2, 2, 2, 2), (2, 3, 2, 2, 3)), labellings=1)
    assert d.passed, render_text(d, show_steps=False)
    assert "(2, 3, 2, 2, 3)" in d.checks[-1].claim
    assert "$$" in render_latex(d)


@pytest.mark.slow
def test_stacked_exact_identities_larger():
    d = T.identities(((2, 3, 2, 2, 3), (3, 3, 2, 2, 3), (2, 2, 3, 2, 2)), labellings=2)
    assert d.passed, render_text(d, show_steps=False)


def test_stacked_negative_controls():
    d = T.negative_controls()
    assert d.passed, render_text(d)


def test_stacked_three_way_numbers():
    d = T.agreement(((1, 2, 2, 2, 2), (3, 3, 2, 3, 3)))
    assert d.passed, render_text(d)


@pytest.mark.parametrize("module", [S, T], ids=["softmax", "stacked"])
def test_module_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
