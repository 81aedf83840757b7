"""Compare outputs with the reference, diagnose a difference with the catalogue, and write the report.

:func:`relative_error` is the agreement measure, :func:`analyse` ranks the catalogued
mistakes against the outputs and writes the :class:`Report` that :func:`sae_jax.check.check`
returns.

Examples:
  >>> from sae_jax.check import DEFAULT_TOL
  >>> from sae_jax._src.check.report import relative_error
  >>> relative_error([1.0, 2.0], [1.0, 2.5], [1.0, 2.5])        # max |a - b| / max |reference|
  0.2
  >>> relative_error([1.0, 2.0], [1.0, 2.0], [1.0, 2.0]) <= DEFAULT_TOL
  True
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..params import Params
from ..checks.errors import InputError
from .adapters import nonfinite
from .catalogue import CATALOGUE, MISTAKES, as_read, variant_cost_and_grad
from .locate import NEAR, layout_mismatch, locate, other_decoder, part_ratios
from .probes import PACKINGS, Probe, probe_named, reference

__all__ = ["DEFAULT_TOL", "FD_TOL", "Report", "analyse", "relative_error"]

#: Agreement tolerance: max |theirs − reference| ≤ DEFAULT_TOL × max |reference|, per array and probe.
DEFAULT_TOL = 1e-7
#: Their gradient vs five-point central differences of their own cost (h = 1e-4, float64).
FD_TOL = 1e-5
FD_STEP = 1e-4
ARRAYS = ("cost", "W1", "b1", "W2", "b2")

Output = tuple[float, Params]  # (cost, gradient as read, UFLDL shapes; W2 None when tied)


def arrays_of(probe: Probe) -> tuple[str, ...]:
    """The compared outputs: ``cost, W1, b1, W2, b2`` (tied probes: no W2)."""
    return tuple(k for k in ARRAYS if not (probe.tied and k == "W2"))


def relative_error(a, b, ref) -> float:
    """max |a − b| / max(max |b|, max |ref|): relative to the reference's scale, or the prediction's if larger.

    ``b`` is the reference itself (agreement) or a variant's prediction (matching; a variant whose
    outputs are far larger than the reference's is compared at its own scale). 0/0 = 0.
    """
    a, b, ref = (np.asarray(v, np.float64) for v in (a, b, ref))
    fa, fb = np.isfinite(a), np.isfinite(b)
    if not (np.all(fa) and np.all(fb)):  # non-finite where the prediction is too (a variant that overflows alike)
        if a.shape != b.shape or not np.array_equal(fa, fb):
            return float("inf")
        a, b = a[fa], b[fb]
    num = float(np.max(np.abs(a - b))) if a.size else 0.0
    den = max(float(np.max(np.abs(ref))) if ref.size else 0.0, float(np.max(np.abs(b))) if b.size else 0.0, 1e-300)
    return 0.0 if num == 0.0 else num / den


def _errors(out: Output, pred: Output, ref: Output) -> dict[str, float]:
    e = {"cost": relative_error(out[0], pred[0], ref[0])}
    for k, u, v, r in zip(ARRAYS[1:], out[1], pred[1], ref[1]):
        if r is not None:  # tied: no W2
            e[k] = relative_error(u, v, r)
    return e


@functools.lru_cache(maxsize=None)
def _variant(probe_name: str, l1: float, mistakes: frozenset) -> Output:
    p = probe_named(probe_name, l1)
    with np.errstate(all="ignore"):  # a pair of mistakes may overflow; it then simply does not match
        return variant_cost_and_grad(p.params, p.x, lam=p.lam, beta=p.beta, rho=p.rho, output=p.output, l1=p.l1,
                                     x_input=p.x_input, mistakes=mistakes - {"transposed_weight_gradients"})


def _reference(probe: Probe):
    return reference(probe.name, probe.l1)


def _ref(probe: Probe) -> Output:
    r = _reference(probe)
    return r.cost, r.grads


def _prediction(probe: Probe, mistakes: tuple[str, ...], packing: str) -> Output:
    J, g = _variant(probe.name, probe.l1, frozenset(mistakes))
    return J, as_read(g, packing, mistakes)


def _score(outputs: dict, ps, mistakes, packing) -> float:
    return max(max(_errors(outputs[p.name], _prediction(p, mistakes, packing), _ref(p)).values()) for p in ps)


def _candidates(probe: Probe) -> list[str]:
    """The catalogued mistakes that apply to the probe's decoder and variant."""
    return [mk.name for mk in CATALOGUE
            if mk.applies(probe.output, tied=probe.tied, l1=probe.l1 > 0, denoising=probe.denoising)]


@dataclass
class Report:
    """The outcome of a check: ``passed``, the named mistake(s) if any, and ``text`` (the printed report)."""

    label: str
    passed: bool
    match: tuple[str, ...] | None  # the catalogued mistake(s) their outputs equal; None: no match
    errors: dict[str, dict[str, float]]  # probe -> array -> relative error vs the reference
    nearest: list[tuple[tuple[str, ...], float]]  # variants by distance (() is the correct algorithm)
    tol: float
    packing: str | None = None
    fd_errors: dict[str, dict[str, float]] | None = None  # their gradient vs FD of their own cost
    text: str = field(default="", repr=False)
    located: list[str] = field(default_factory=list)  # the findings the Diagnosis leads with (no catalogued match)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def __str__(self) -> str:
        return self.text


def _name(mistakes) -> str:
    return " + ".join(mistakes) if mistakes else "the correct algorithm"


def _fmt_ratio(r: float) -> str:
    if not np.isfinite(r):
        return "—"
    if abs(r - 1) < 1e-9:
        return "1"
    fr = Fraction(r).limit_denominator(64)
    if fr.denominator > 1 and abs(float(fr) - r) <= 1e-9 * max(1.0, abs(r)):
        return f"{r:.6g} ({fr.numerator}/{fr.denominator})"
    if abs(r - round(r)) <= 1e-9 * max(1.0, abs(r)):
        return f"{round(r)}"
    return f"{r:.6g}"


def _part_ratios(u: np.ndarray, probe: Probe, k: str) -> tuple[dict[str, float], float]:
    """Least-squares ratios of their array's parts to the correct ones (:func:`sae_jax._src.check.locate.part_ratios`)."""
    return part_ratios(u, probe, k)


def _contribution_ratios(u: np.ndarray, probe: Probe) -> tuple[dict[str, float], float]:
    """Tied ∂J/∂W1: least-squares ratios of their array to the encoder's and the decoder's contributions."""
    enc, dec = _reference(probe).contributions
    ref = enc + dec
    scale = max(float(np.max(np.abs(ref))), 1e-300)
    A = np.stack([enc.ravel(), dec.ravel()], axis=1)
    coef, *_ = np.linalg.lstsq(A, u.ravel(), rcond=None)
    resid = float(np.max(np.abs(u.ravel() - A @ coef))) / scale
    return {"encoder contribution": coef[0], "decoder contribution": coef[1]}, resid


def _cost_evidence(J: float, probe: Probe) -> str:
    r = _reference(probe)
    d = J - r.cost
    terms = {"reconstruction": r.reconstruction, "decay": r.weight_decay, "sparsity": r.sparsity, "L1": r.l1}
    shown = [f"{n} ×{_fmt_ratio(1 + d / t)}" for n, t in terms.items() if abs(t) > 1e-300]
    return f"{J:.10g} vs {r.cost:.10g}; as if one term were scaled: " + ", ".join(shown)


def _evidence(outputs: dict, ps, tol: float, packing: str) -> list[str]:
    lines, w = [], max(22, *(len(p.name) for p in ps))
    for p in ps:
        J, g = outputs[p.name]
        errs = _errors(outputs[p.name], _ref(p), _ref(p))
        for k in arrays_of(p):
            if errs[k] <= tol:
                continue
            head = f"    {p.name:<{w}} m={p.m:<3} {k:<4}"
            i = ARRAYS.index(k) - 1
            if not np.all(np.isfinite(J if k == "cost" else g[i])):
                lines.append(f"{head} NaN or inf")
                continue
            if k == "cost":
                lines.append(f"{head} {_cost_evidence(J, p)}")
                continue
            ratios, resid = _part_ratios(g[i], p, k)
            flipped = as_read(_reference(p).grads, packing, ("transposed_weight_gradients",))[i]
            contrib, c_resid = _contribution_ratios(g[i], p) if p.tied and k == "W1" else ({}, np.inf)
            if resid <= 1e-8:
                lines.append(head + " parts vs correct: " + ", ".join(f"{n} ×{_fmt_ratio(v)}" for n, v in ratios.items()))
            elif c_resid <= 1e-8:
                lines.append(head + " tied W1 = encoder + decoder contribution; theirs vs correct: "
                             + ", ".join(f"{n} ×{_fmt_ratio(v)}" for n, v in contrib.items()))
            elif k in ("W1", "W2") and relative_error(g[i], flipped, flipped) <= tol:
                lines.append(f"{head} equals the correct array transposed (the right numbers in the wrong places: "
                             f"computed as {k}grad.T and packed {PACKINGS[packing]})")
            else:
                lines.append(f"{head} differs by {errs[k]:.3g} (relative), not a rescaling of its parts "
                             f"(residual {resid:.2g})")
    return lines


def _fd_check(target, ps, outputs) -> dict[str, dict[str, float]]:
    """Their gradient vs five-point central differences of their own cost, one random direction per array."""
    rng = np.random.default_rng(0)
    out = {}
    for p in ps:
        J0, g = outputs[p.name]
        if nonfinite(J0, g):  # nothing to differentiate there
            continue
        row = {}
        for i, k in enumerate(ARRAYS[1:]):
            if p.params[i] is None:  # tied: no W2
                continue
            d = rng.standard_normal(p.params[i].shape)
            d /= np.linalg.norm(d)

            def J(t, i=i, d=d):
                arrays = list(p.params)
                arrays[i] = arrays[i] + t * d
                return target.evaluate(p, Params(*arrays), finite=False)[0]

            h = FD_STEP
            fd = (-J(2 * h) + 8 * J(h) - 8 * J(-h) + J(-2 * h)) / (12 * h)
            an = float(np.sum(g[i] * d))
            if not np.isfinite(fd):
                continue
            row[k] = abs(fd - an) / max(abs(fd), abs(an), 1e-8)
        out[p.name] = row
    return out


def _choose_packing(outputs_by_packing, ps, singles, tol) -> tuple[str, str, dict]:
    """The theta packing their code uses: the one under which their cost agrees on more probes.

    Their cost depends only on how they unpack theta, never on how they pack the gradient, so it
    decides; with the cost equally right (or wrong) under both, the packing under which a
    catalogued variant explains their outputs best, called ambiguous unless one explains them.
    Returns ``(packing, how it was decided, {packing: ranked variant scores})``.
    """
    ranked = {}

    def rank(pk):
        if pk not in ranked:
            ranked[pk] = sorted(((mk, _score(outputs_by_packing[pk], ps, mk, pk)) for mk in singles),
                                key=lambda t: t[1])
        return ranked[pk]

    pks = list(outputs_by_packing)
    if len(pks) == 1:
        return pks[0], "", {pks[0]: rank(pks[0])}
    ok = {pk: sum(_errors(outputs_by_packing[pk][p.name], _ref(p), _ref(p))["cost"] <= tol for p in ps) for pk in pks}
    if len(set(ok.values())) > 1:
        pk = max(pks, key=lambda k: ok[k])
        other = [k for k in pks if k != pk][0]
        return pk, (f"detected: their cost agrees on {ok[pk]} of {len(ps)} probes with theta read this way, on "
                    f"{ok[other]} read {PACKINGS[other].split(' (')[0]}"), {pk: rank(pk)}
    as_other = [pk for pk in pks if other_decoder(outputs_by_packing[pk], ps, tol)]
    if len(as_other) == 1:
        return as_other[0], "detected: their outputs read this way are the other decoder's", {
            as_other[0]: rank(as_other[0])}
    for pk in pks:
        rank(pk)
    pk = min(ranked, key=lambda k: (ranked[k][0][1], dict(ranked[k])[()]))
    if ok[pk] == len(ps) or ranked[pk][0][1] <= tol:
        return pk, "detected", ranked
    return pk, ("ambiguous: their cost agrees under neither packing; taken as the one closer to a catalogued "
                "variant; pass --packing row|column to say which"), ranked


def _fd_consistent(fd) -> bool:
    return all(v <= FD_TOL for row in fd.values() for v in row.values())


def analyse(label: str, header: list[str], outputs_by_packing: dict[str, dict[str, Output]], ps,
            *, tol: float = DEFAULT_TOL, target=None, flat: bool = False, packing_given: bool = False,
            results: bool = False) -> Report:
    """Compare, diagnose and write the report for outputs read under each candidate packing.

    ``flat``: the gradient came as one vector (theta's layout); ``packing_given``: the packing was
    named (``--packing``), not detected; ``results``: the outputs come from a results file made from
    the written cases (the inputs were theta as written).
    """
    if not ps:
        raise InputError("no probes to compare")
    arrays = arrays_of(ps[0])
    singles = [()] + [(n,) for n in _candidates(ps[0])]
    packing, how, ranked = _choose_packing(outputs_by_packing, ps, singles, tol)
    outputs, scores = outputs_by_packing[packing], ranked[packing]
    errors = {p.name: _errors(outputs[p.name], _ref(p), _ref(p)) for p in ps}
    worst = max(max(e.values()) for e in errors.values())
    agree = worst <= tol
    mutated = dict(getattr(target, "mutated", None) or {})
    lines = list(header)
    if len(outputs_by_packing) > 1:
        lines.append(f"theta packing: {PACKINGS[packing]} ({how})")
    elif packing_given:
        lines.append(f"theta packing: {PACKINGS[packing]} (given)")
    lines.append(f"tolerance: max |theirs − reference| ≤ {tol:g} × max |reference|, per array and probe "
                 f"(sae-jax's float64 reference: sae_jax.cost_terms_and_grad, the manual backprop)")
    lines.append("")
    w = max(22, *(len(p.name) for p in ps))
    lines.append(f"  {'probe':<{w}} {'m':>3} {'β':>4} {'λ':>5}   " + "".join(f"{k:>10}" for k in arrays))
    for p in ps:
        e = errors[p.name]
        cells = "".join(f"{e[k]:>9.1e}{'!' if e[k] > tol else ' '}" for k in arrays)
        lines.append(f"  {p.name:<{w}} {p.m:>3} {p.beta:>4g} {p.lam:>5g}   {cells}")
    lines.append("  (relative error vs the reference; ! = above tolerance)")
    lines.append("")
    mut_text = ", ".join(f"{k} (max |change| {v:.3g})" for k, v in mutated.items())
    mut_line = (f"their function modifies its input in place: {mut_text} changed during the call. An optimizer "
                f"(minFunc, scipy.optimize) would see theta change under it; copy before writing into it "
                f"(theta = theta.copy(), W1 = W1.copy()) or build new arrays")
    if agree and not mutated:
        lines.append(f"PASS: every probe agrees with sae-jax's float64 reference (max relative error {worst:.2g} "
                     f"≤ {tol:g}).")
        return Report(label, True, (), errors, scores[:3], tol, packing, None, "\n".join(lines))
    if agree:
        lines.append(f"FAIL: every output agrees with sae-jax's float64 reference (max relative error {worst:.2g}), "
                     f"but {mut_line}.")
        return Report(label, False, (), errors, scores[:3], tol, packing, None, "\n".join(lines),
                      located=[mut_line])

    bad = sorted({p.name for p in ps if max(errors[p.name].values()) > tol})
    fail_line = f"FAIL: {len(bad)} of {len(ps)} probes differ from the reference: " + "; ".join(
        f"{k} on {sum(errors[p.name][k] > tol for p in ps)} (up to {max(errors[p.name][k] for p in ps):.2g} relative)"
        for k in arrays if any(errors[p.name][k] > tol for p in ps)) + "."
    lines.append(fail_line)
    hits = [(mk, s) for mk, s in scores if mk and s <= tol]
    if not hits:  # two mistakes at once?
        cands = _candidates(ps[0])
        pairs = sorted(((pair, _score(outputs, ps, pair, packing)) for pair in itertools.combinations(cands, 2)),
                       key=lambda t: t[1])
        hits = [(mk, s) for mk, s in pairs if s <= tol]
        scores = sorted(scores + pairs[:3], key=lambda t: t[1])
    low = sorted(getattr(target, "low_precision", ()) or ())
    fd = None
    if target is not None and not low:
        fd = _fd_check(target, ps, outputs)
    match, located, passed = None, [], False
    if hits:
        match = hits[0][0]
        others = [_name(mk) for mk, _ in hits[1:]]
        nxt = [(mk, s) for mk, s in scores if mk != match and s > tol][:1]
        convention = all(MISTAKES[n].convention for n in match) and (fd is None or _fd_consistent(fd))
        if convention and not mutated:
            passed = True
            lines[lines.index(fail_line)] = (
                f"PASS, with a convention difference: {len(bad)} of {len(ps)} probes differ from sae-jax's own "
                f"convention, exactly as the documented alternative {_name(match)} predicts (exit status 0: "
                f"the code is right for that convention).")
        lines.append("")
        lines.append(f"{'Convention' if passed else 'Diagnosis'}: {_name(match)}")
        for n in match:
            mk = MISTAKES[n]
            lines.append(f"  {n}: {mk.title}.")
            lines.append(f"    signature: {mk.signature}.")
        lines.append(f"  Their outputs equal this variant's on all {len(ps)} probes (max relative difference "
                     f"{hits[0][1]:.2g})" + (f"; next nearest: {_name(nxt[0][0])} ({nxt[0][1]:.2g})" if nxt else "")
                     + ".")
        if others:
            lines.append(f"  On these probes it is indistinguishable from: {', '.join(others)}.")
        if results and flat and match == ("transposed_weight_gradients",):
            other = "row" if packing == "F" else "column"
            lines.append(f"  In a results file these are also the bytes of a gradient packed {other}-major but saved as "
                         f"`{'grad' if packing == 'F' else 'grad_rowmajor'}`: save it as "
                         f"`{'grad_rowmajor' if packing == 'F' else 'grad'}`, or pass --packing {other}.")
        if mutated:
            lines.append(f"  Also: {mut_line}.")
    else:
        other = other_decoder(outputs, ps, tol)
        swapped = layout_mismatch(outputs, ps, packing, tol) if results else None
        if scores[0][0] == () and scores[0][1] < 1e-3:
            located = [f"their outputs are within {scores[0][1]:.2g} (relative) of the correct algorithm's on every "
                       f"probe: a precision difference (float32 inside their code?) rather than a formula"]
        elif other:
            located = [f"their outputs are a correct {other} decoder's on every probe: this is the "
                       f"{ps[0].output} decoder's check; run it with --output {other}"]
        elif swapped:
            field_in, field_out = ("theta_rowmajor", "grad_rowmajor") if swapped == "C" else ("theta", "grad")
            located = [f"layout mismatch: their cost is the correct cost at theta unpacked "
                       f"{PACKINGS[swapped].split(' (')[0]}, but the cases' theta was packed {PACKINGS[packing]}; "
                       f"code that unpacks {PACKINGS[swapped].split(' (')[0]} takes `{field_in}` and saves `{field_out}` "
                       f"(the cases README's Python template: LAYOUT = \"{'row' if swapped == 'C' else 'column'}\")"]
        else:
            located = locate(outputs, ps, errors, tol, packing, flat=flat, results=results)
        if mutated:
            located.append(mut_line)
        lines.append("")
        lines.append("Diagnosis: " + ("; ".join(located) if located else "their outputs differ from the reference")
                     + ".")
        near = [(mk, s) for mk, s in scores if s <= NEAR]
        lines.append("  No catalogued mistake (nor a pair of them) matches exactly"
                     + (". Nearest variants (max relative difference): "
                        + "; ".join(f"{_name(mk)} {s:.2g}" for mk, s in near[:3]) if near else "")
                     + ".")
    lines.append("  Evidence, per probe and array that differs (ratios of their parts to the correct parts; 1 = correct):")
    lines.extend(_evidence(outputs, ps, tol, packing))
    clean = [p.name for p in ps if p.name.endswith("_uncorrupted")]
    if clean and max(errors[clean[0]].values()) <= tol:
        lines.append(f"    {clean[0]} (x̃ = x, no corruption) agrees with the reference: the difference is in where "
                     f"the corrupted input x̃ and the clean target x are used.")
    if low:
        lines.append(f"  Their outputs are {', '.join(low)}: this check compares in float64 at a tolerance of "
                     f"{tol:g}; compute in float64 (cast the inputs and every constant) and run it again. "
                     f"(Finite differences of a {low[0]} cost are not meaningful; skipped.)")
    elif fd:
        lines.append(_fd_summary(fd))
    elif target is None:
        lines.append("  (Finite differences of their own cost need their code: run `sae-jax check file.py:function`.)")
    if match:
        lines.append("  The right form is derived in: " + "; ".join(MISTAKES[n].derivation for n in match))
    else:
        lines.append("  The right form: docs/guide/derivation.md (python -m derivations).")
    return Report(label, passed, match, errors, scores[:3], tol, packing, fd, "\n".join(lines), located=located)


def _fd_summary(fd) -> str:
    worst = {k: max(row[k] for row in fd.values() if k in row) for k in ARRAYS[1:]
             if any(k in row for row in fd.values())}
    bad = [k for k, v in worst.items() if v > FD_TOL]
    if not bad:
        return (f"  Their gradient matches central finite differences of their own cost on every probe (max relative "
                f"error {max(worst.values()):.1g} ≤ {FD_TOL:g}): cost and gradient are consistent, so the "
                f"difference is in the objective their cost defines (a convention difference), not a backprop bug.")
    where = ", ".join(f"{k} (max relative error {worst[k]:.2g}, on {sum(r.get(k, 0) > FD_TOL for r in fd.values())} of "
                      f"{len(fd)} probes)" for k in bad)
    return (f"  Their gradient does NOT match central finite differences of their own cost on {where}: "
            f"the gradient (or the cost) has a bug — they disagree with each other.")
