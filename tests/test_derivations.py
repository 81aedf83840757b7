"""derivations/: each claim of the derivation is a test.

- exact identities at concrete sizes (every entry symbolic), m = 1..5, both output layers;
- the symbolic-m forms, compared as sympy expressions (not strings), with negative controls
  showing the comparison is not vacuous;
- the questioner's variant is off by exactly m in its sparsity part (symbolic, exact, numeric, FD);
- lambdified sympy gradient vs sae_jax.cost_and_grad vs jax.grad: <= 1e-12 relative in float64;
- ``python -m derivations`` exits 0 and prints every verdict.

Default-run cost is dominated by the sympy derivatives at n = h = 2 (cached across tests);
larger sizes are marked slow.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import sympy as sp

from derivations import _sums, ae_variants, concrete, numeric, symbolic_m as S, variant
from derivations.__main__ import main
from derivations.steps import Check, Derivation, render_latex, render_text


def test_sympy_version_is_the_pinned_one():
    # The symbolic checks (and the known Sum.doit() bug they avoid) are tested against exactly this version.
    assert sp.__version__ == "1.14.0"


# --- concrete sizes -----------------------------------------------------------------------------


def test_sigmoid_derivative_is_f_times_one_minus_f():
    d = concrete.sigmoid_derivative()
    assert d.passed, render_text(d)
    u = sp.Symbol("u")
    sigma = 1 / (1 + sp.exp(-u))
    assert sp.simplify(sp.diff(sigma, u) - sigma * (1 - sigma)) == 0
    assert sp.diff(concrete.f(u), u) == concrete.f(u) * (1 - concrete.f(u))


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_exact_identity(m, output):
    """sympy's diff of J == the tutorial's formulas, every entry, exactly (n = h = 2)."""
    assert concrete.check_identity(2, 2, m, output) == {a: True for a in concrete.ARRAYS}


@pytest.mark.slow
@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("n, h, ms", [(3, 2, range(1, 6)), (2, 3, range(1, 6)), (4, 3, range(1, 4))])
def test_exact_identity_larger(n, h, ms, output):
    for m in ms:
        assert concrete.check_identity(n, h, m, output) == {a: True for a in concrete.ARRAYS}, (n, h, m)


def test_identity_check_is_not_vacuous():
    """Small errors in a stated formula are reported as 'not equal'."""
    mod = concrete.model(2, 2, 2, "linear")
    ours, tut = concrete.sympy_gradient(mod), concrete.tutorial_gradient(mod)
    assert concrete.is_identity(mod, ours["W2"][0, 1] - tut["W2"][0, 1])
    # forgetting weight decay, a transposed weight, the variant's extra 1/m: all caught
    assert not concrete.is_identity(mod, ours["W2"][0, 1] - (tut["W2"][0, 1] - mod.lam * mod.W2[0, 1]))
    assert not concrete.is_identity(mod, ours["W2"][0, 1] - tut["W2"][1, 0])
    assert not concrete.is_identity(mod, ours["b1"][1] - concrete.variant_gradient(mod)["b1"][1])
    # m = 1: the "expand alone" trap -- the identity still holds (cancel decides it)
    mod1 = concrete.model(2, 2, 1, "linear")
    assert concrete.is_identity(mod1, concrete.sympy_gradient(mod1)["b1"][0] - concrete.tutorial_gradient(mod1)["b1"][0])


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="m must be an integer >= 1"):
        concrete.model(2, 2, 0)
    with pytest.raises(ValueError, match="output must be"):
        concrete.model(2, 2, 1, "relu")


# --- symbolic m -----------------------------------------------------------------------------------


def test_sparsity_derivative_wrt_z_symbolic_m():
    d = Derivation("test")
    got = S.derive(d, S.sparsity_of_z(), S.z[S.k, S.p], None, hidden=S.z)
    assert not got.has(sp.Sum) and not got.has(sp.KroneckerDelta)
    stated = S.beta / S.m * (-S.rho / S.rhohat[S.p] + (1 - S.rho) / (1 - S.rhohat[S.p])) * S.fprime(S.z[S.k, S.p])
    assert sp.cancel(got - stated) == 0  # sympy expressions, no sums left: cancel decides it
    assert sp.cancel(got / (S.sparsity_delta(S.p) * S.fprime(S.z[S.k, S.p]))) == 1 / S.m
    assert S.sparsity_wrt_z().passed


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_cost_wrt_z_is_delta_over_m(output):
    d = S.cost_wrt_z(output)
    assert d.passed, render_text(d)


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_weight_gradient_symbolic_m(output):
    d, got = S.cost_wrt_W1(output)
    assert d.passed, render_text(d)
    assert not got.has(sp.KroneckerDelta)
    assert _sums.is_zero(got - S.tutorial_W1(output), S.NAMES)
    # negative controls: the comparison distinguishes close-but-wrong formulas
    assert not _sums.is_zero(got - variant.variant_W1(output), S.NAMES)
    assert not _sums.is_zero(got - (S.tutorial_W1(output) - S.lam * S.W1[S.p, S.q]), S.NAMES)
    transposed = S.tutorial_W1(output).xreplace({S.W2[S.r, S.p]: S.W2[S.p, S.r]})
    assert not _sums.is_zero(got - transposed, S.NAMES)


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_bias_gradient_symbolic_m(output):
    assert S.cost_wrt_b1(output).passed


def test_sum_tools():
    i, k, m, p = S.i, S.k, S.m, S.p
    x = S.x
    # alpha-equivalent sums are equal after canonical renaming; different ones are not
    assert _sums.is_zero(sp.Sum(x[i, p], (i, 0, m - 1)) - sp.Sum(x[k, p], (k, 0, m - 1)), S.NAMES)
    assert not _sums.is_zero(sp.Sum(x[i, p], (i, 0, m - 1)) - sp.Sum(x[i, p] ** 2, (i, 0, m - 1)), S.NAMES)
    # linearity and pulling out constants
    c = sp.Symbol("c")
    assert _sums.is_zero(sp.Sum(c * x[i, p] + 1, (i, 0, m - 1)) - c * sp.Sum(x[i, p], (i, 0, m - 1)) - m, S.NAMES)
    # deltas collapse (index assumed in range)
    e = sp.Sum(sp.KroneckerDelta(i, k) * x[i, p], (i, 0, m - 1))
    assert _sums.collapse_deltas(e) == x[k, p]
    # the substitution only fires on the definition itself
    definition = lambda t: sp.Sum(S.f(S.z[i, t]), (i, 0, m - 1))  # noqa: E731
    name = lambda t: m * S.rhohat[t]  # noqa: E731
    j2 = sp.Symbol("j2", integer=True)
    new, count = _sums.substitute_sum(sp.Sum(S.f(S.z[j2, p]), (j2, 0, m - 1)), definition, name, [p], S.NAMES)
    assert (new, count) == (m * S.rhohat[p], 1)
    for not_it in (sp.Sum(S.f(S.z[i, p]) ** 2, (i, 0, m - 1)), sp.Sum(S.f(S.z[i, p]), (i, 0, m - 2)), sp.Sum(S.f(S.z[i, k]), (i, 0, m - 1))):
        assert _sums.substitute_sum(not_it, definition, name, [p], S.NAMES)[1] == 0


def test_display_abbreviations_do_not_change_checks():
    e = S.z2(S.i, S.p)
    assert S.abbreviate(e) == S.z[S.i, S.p]
    assert S.abbreviate(S.f(S.z3(S.k, S.r))) == S.f(S.z3_name[S.k, S.r])


# --- the variant ----------------------------------------------------------------------------------


def test_variant_symbolic_off_by_m():
    d = variant.symbolic("sigmoid")
    assert d.passed, render_text(d)
    ratio = next(s.rhs for s in d.steps if s.title.startswith("sympy's sparsity gradient ÷"))
    assert ratio == S.m


def test_variant_concrete_sizes_exact():
    d = variant.concrete_sizes((1, 2, 3), n=2, h=2)
    assert d.passed, render_text(d)


def test_variant_numeric_and_finite_differences_catch_it():
    d = variant.numeric()  # the sizes `python -m derivations` uses (compilations are shared with it)
    assert d.passed, render_text(d)
    assert len(d.checks) == 3


# --- the autoencoder's variants (issue 15) -----------------------------------------------------------


def test_ae_variants_tied_l1_denoising_exact_with_negative_controls():
    for d in (ae_variants.tied_weights(), ae_variants.l1_on_sigmoid(), ae_variants.l1_delta(), ae_variants.denoising()):
        assert d.passed, render_text(d)
    controls = [c for d in (ae_variants.tied_weights(), ae_variants.l1_delta(), ae_variants.denoising())
                for c in d.checks if c.claim.startswith("negative control")]
    assert len(controls) == 4


def test_ae_variants_controls_are_not_vacuous():
    # each wrong formula differs from sympy's gradient in the array it gets wrong, and only there
    res = ae_variants.check_identity(2, 2, 2, tied=True, formula="encoder only")
    assert res == {"W1": False, "b1": True, "b2": True}
    res = ae_variants.check_identity(2, 1, 2, tied=False, l1=True, denoising=False, formula="l1 over m")
    assert res == {"W1": False, "b1": False, "W2": True, "b2": True}
    res = ae_variants.check_identity(2, 1, 2, tied=False, l1=False, denoising=True, formula="clean input")
    assert res == {"W1": False, "b1": True, "W2": True, "b2": True}
    with pytest.raises(ValueError, match="formula must be one of"):
        ae_variants.hand_gradient(ae_variants.model(1, 1, 1), "guess")


@pytest.mark.slow  # run_all runs this agreement by default (test_main_runs_every_check_and_exits_0)
def test_ae_variants_three_way_agreement():
    d = ae_variants.agreement()
    assert d.passed, render_text(d)


# --- numerics ---------------------------------------------------------------------------------------


@pytest.mark.slow  # run_all runs this agreement by default (test_main_runs_every_check_and_exits_0)
@pytest.mark.parametrize("n, h, m, output", numeric.CASES)
def test_three_way_agreement(n, h, m, output):
    errs = numeric.three_way(n, h, m, output, seed=m)
    assert max(errs.values()) <= numeric.TOL, errs


def test_three_way_agreement_jax_backend():
    errs = numeric.three_way(2, 2, 3, "linear", seed=1, backend="jax")
    assert max(errs.values()) <= numeric.TOL, errs


@pytest.mark.slow
@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_three_way_agreement_non_square(output):
    errs = numeric.three_way(3, 2, 4, output, seed=2)
    assert max(errs.values()) <= numeric.TOL, errs


def test_relative_error():
    assert numeric.relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert numeric.relative_error([1.0, 2.5], [1.0, 2.0]) == pytest.approx(0.25)


# --- rendering and the command ----------------------------------------------------------------------


def test_rendering_marks_who_produced_each_step():
    d = S.sparsity_wrt_z()
    text, latex = render_text(d), render_latex(d)
    for tag in ("[definition]", "[derived by sympy]", "[substitution (checked)]", "[stated by hand (checked below)]"):
        assert tag in text
    assert latex.count("$$") == 2 * len(d.steps)
    assert r"\hat{\rho}" in latex and r"\sum_{i=0}^{m - 1}" in latex
    assert "[PASS]" in text and "FAIL" not in text


def test_main_runs_every_check_and_exits_0(capsys, monkeypatch):
    import derivations.__main__ as cli

    cache = []

    def run_once(**kwargs):  # one real run serves both outputs
        if not cache:
            cache.append(run_all(**kwargs))
        for d in cache[0]:
            if kwargs.get("progress") is not None:
                kwargs["progress"](d)
        return cache[0]

    from derivations.report import run_all

    monkeypatch.setattr(cli, "run_all", run_once)
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "ALL CHECKS HOLD" in out and "[FAIL]" not in out
    # Issue 12.8: --brief printed every section and the verdicts again (146 lines): now verdicts only,
    # one line per derivation and the total (22 lines since issue 15 added softmax and stacked).
    assert cli.main(["--brief"]) == 0
    brief = capsys.readouterr().out.strip().splitlines()
    assert len(brief) == len(cache[0]) + 1 < 30
    assert all(line.startswith("[PASS] ") for line in brief[:-1]) and brief[-1].startswith("ALL CHECKS HOLD")
    assert not any("=====" in line or "derived by sympy" in line for line in brief)
    for claim in (
        "m = 5, sigmoid output",
        "m = 5, linear output",
        "(β/m)(−ρ/ρ̂_p + (1−ρ)/(1−ρ̂_p)) f'(z_(k,p)) for symbolic m",
        "ratio = m",
        "finite differences reject the variant",
        "all three agree to ≤ 1e-12 relative",
    ):
        assert claim in out, claim


def test_main_exits_1_when_a_check_fails(monkeypatch, capsys):
    import derivations.__main__ as cli

    def failing(**kwargs):
        d = Derivation("broken")
        d.checks.append(Check("a claim that does not hold", False))
        return [d]

    monkeypatch.setattr(cli, "run_all", failing)
    assert cli.main(["--brief"]) == 1
    out = capsys.readouterr().out
    assert "SOME CHECKS FAILED" in out and "[FAIL] broken" in out and "    [FAIL] a claim that does not hold" in out


def test_main_latex_and_steps(capsys):
    assert main(["--latex", "--max-m", "1", "--no-numerics"]) == 0
    out = capsys.readouterr().out
    assert out.count("$$") > 40 and r"\hat{\rho}" in out and "*derived by sympy*" in out
    assert main(["--max-m", "1", "--no-numerics"]) == 0
    out = capsys.readouterr().out
    assert "[derived by sympy]" in out and "[substitution (checked)]" in out and "ALL CHECKS HOLD" in out


def test_python_m_derivations_entry_point():
    """``python -m derivations`` is wired to main (the full default run is test_main_runs_every_check_and_exits_0)."""
    r = subprocess.run([sys.executable, "-m", "derivations", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--latex" in r.stdout, r.stderr
    bad = subprocess.run([sys.executable, "-m", "derivations", "--max-m", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--max-m must be >= 1" in bad.stderr


def test_sae_jax_never_imports_sympy_or_derivations():
    code = "import sys, sae_jax; bad = {'sympy', 'derivations'} & set(sys.modules); assert not bad, bad"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
