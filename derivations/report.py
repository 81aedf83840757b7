"""Run every derivation and check in order (what ``python -m derivations`` prints)."""

from __future__ import annotations

from . import ae_variants, concrete, numeric, softmax, stacked, symbolic_m, variant
from .steps import Derivation

__all__ = ["run_all", "summary", "brief_summary"]


def run_all(
    *,
    max_m: int = 5,
    n: int = 2,
    h: int = 2,
    numerics: bool = True,
    progress=None,
) -> list[Derivation]:
    """Every derivation, in reading order. ``progress(derivation)`` is called as each one finishes."""
    if max_m < 1:
        raise ValueError(f"max_m must be >= 1, got {max_m}")
    jobs = [
        concrete.sigmoid_derivative,
        lambda: concrete.identities(range(1, max_m + 1), n=n, h=h),
        symbolic_m.sparsity_wrt_z,
        lambda: symbolic_m.cost_wrt_z("sigmoid"),
        lambda: symbolic_m.cost_wrt_z("linear"),
        lambda: symbolic_m.cost_wrt_W1("sigmoid")[0],
        lambda: symbolic_m.cost_wrt_W1("linear")[0],
        lambda: symbolic_m.cost_wrt_b1("sigmoid"),
        lambda: symbolic_m.cost_wrt_b1("linear"),
        lambda: variant.symbolic("sigmoid"),
        lambda: variant.concrete_sizes(tuple(range(1, min(max_m, 3) + 1)), n=n, h=h),
        # The autoencoder's variants (issue 15): tied weights, the L1 penalty, denoising.
        ae_variants.tied_weights,
        ae_variants.l1_on_sigmoid,
        ae_variants.l1_delta,
        ae_variants.denoising,
        # The next exercises (issue 15): softmax regression and the stacked autoencoder's fine-tuning.
        softmax.exp_derivative,
        softmax.identities,
        softmax.overparameterised,
        stacked.identities,
        stacked.negative_controls,
    ]
    if numerics:
        jobs += [
            lambda: variant.numeric(),
            lambda: numeric.agreement(((n, h, max_m, "sigmoid"), (n, h, max_m, "linear"), (3, 2, 3, "sigmoid"))),
            ae_variants.agreement,
            softmax.agreement,
            stacked.agreement,
        ]
    out = []
    for job in jobs:
        d = job()
        out.append(d)
        if progress is not None:
            progress(d)
    return out


def summary(derivations: list[Derivation], seconds: float | None = None) -> str:
    """The verdict block: every check, then one line saying whether all held."""
    checks = [c for d in derivations for c in d.checks]
    failed = [c for c in checks if not c.passed]
    lines = ["Verdicts", "========"]
    lines += [c.line() for c in checks]
    tail = f"{len(checks) - len(failed)}/{len(checks)} checks hold"
    if seconds is not None:
        tail += f" ({seconds:.1f} s)"
    lines.append("")
    lines.append(("ALL CHECKS HOLD: " if not failed else "SOME CHECKS FAILED: ") + tail)
    return "\n".join(lines)


def brief_summary(derivations: list[Derivation], seconds: float | None = None) -> str:
    """Verdicts only: one line per derivation (its checks held or not), every failed check in full,
    and the closing line of :func:`summary`. What ``python -m derivations --brief`` prints."""
    lines = []
    for d in derivations:
        held = sum(c.passed for c in d.checks)
        lines.append(f"[{'PASS' if d.passed else 'FAIL'}] {d.title}  ({held}/{len(d.checks)} checks)")
        lines += ["    " + c.line() for c in d.checks if not c.passed]
    return "\n".join(lines + [summary(derivations, seconds).splitlines()[-1]])
