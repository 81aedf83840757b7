"""Implementation of :mod:`sae_jax.check` (private; import from the public module)."""

from __future__ import annotations

from .adapters import detect_convention as detect_convention, load_function as load_function, make_target, nonfinite
from .cases import read_results, read_results_fields, write_cases as write_cases
from .catalogue import CATALOGUE as CATALOGUE, MISTAKES as MISTAKES, Mistake as Mistake
from .catalogue import variant_cost_and_grad as variant_cost_and_grad
from .probes import PACKINGS, Probe as Probe, check_options, probes as probes, reference as reference
from ..checks.errors import InputError
from .report import DEFAULT_TOL as DEFAULT_TOL, Report as Report, analyse


_CONVENTION_TEXT = {
    "ufldl": "UFLDL convention (theta, visibleSize, hiddenSize, lambda, sparsityParam, beta, data)",
    "rows": "rows form (params, x, lam, beta, rho)",
}


def _check_output(output):
    if output not in ("sigmoid", "linear"):
        raise InputError(f"output must be 'sigmoid' or 'linear', got {output!r}")


def _check_tol(tol):
    if not isinstance(tol, (int, float)) or not (0 < tol < 1):
        raise InputError(f"tol must be a number in (0, 1), got {tol!r}")


def _variant_text(tied: bool, l1: float | None, denoising: bool, slots: dict | None = None) -> str:
    """The header's description of the variant checked (and, for code, where it takes the variant's inputs)."""
    slots = slots or {}
    out = []
    if tied:
        out.append("tied weights W2 = W1ᵀ (reference: Params(W1, b1, None, b2), weight decay λ‖W1‖²)")
    if l1:
        how = ("" if "l1" not in slots else f", passed as {slots['l1']}" if slots["l1"]
               else ", fixed in their code (no γ parameter)")
        out.append(f"L1 activation penalty γ(1/m)Σ‖a⁽²⁾‖₁ with γ = {l1:g}{how}")
    if denoising:
        how = f", passed as {slots['x_input']}" if slots.get("x_input") else ""
        out.append(f"denoising (the network reads the corrupted input x̃{how}; x is the target)")
    return "".join(t + ", " for t in out)


_PACKING_NAMES = {"row": "C", "column": "F"}


def _check_packing(packing):
    if packing is not None and packing not in _PACKING_NAMES:
        raise InputError(f"packing must be 'row' (numpy's W1.ravel()) or 'column' (MATLAB's W1(:)), got {packing!r}")
    return None if packing is None else _PACKING_NAMES[packing]


def _order_text(target) -> str:
    """How the UFLDL arguments were passed, when read from their parameter names (not UFLDL's order)."""
    from .adapters import UFLDL_ORDER

    if target.convention != "ufldl" or target.arg_order == UFLDL_ORDER:
        return ""
    import inspect

    names = [p for p in inspect.signature(target.fn).parameters][1:7]
    return (" arguments passed by their names: " + ", ".join(f"{n} = {k}" for n, k in zip(names, target.arg_order))
            + ";")


def check(fn, *, convention: str | None = None, output: str = "sigmoid", tied: bool = False,
          l1: float | None = None, denoising: bool = False, tol: float = DEFAULT_TOL, arrays: str = "auto",
          finite_differences: bool = True, packing: str | None = None) -> Report:
    """Run their cost-and-gradient on the probes of one decoder, compare and diagnose.

    Running it calls ``fn``; a ``"file.py:function"`` target is imported first, which executes the
    file's top-level code: check only code you trust.

    Args:
      fn: a callable, or ``"path/to/file.py:function"`` / ``"package.module:function"``.
      convention: ``"ufldl"`` or ``"rows"``; ``None`` reads it from the signature.
      output: the decoder their code implements, ``"sigmoid"`` or ``"linear"``.
      tied: their code has tied weights (W2 = W1ᵀ): ``theta = [W1(:); b1(:); b2(:)]``, or rows-form
        ``params`` ``Params(W1, b1, None, b2)`` and gradient ``W1, b1, b2``; checked on the tied
        probes against sae-jax's tied reference (weight decay λ‖W1‖², both copies).
      l1: their cost has the L1 activation penalty γ(1/m)Σᵢ‖a⁽²⁾⁽ⁱ⁾‖₁ with this γ > 0; it is passed
        to a ``l1`` parameter, or the extra one after the convention's (and the corrupted input),
        or, with none, taken as fixed in their code.
      denoising: their function reads a corrupted input (a ``x_input`` parameter, or the extra one
        after the convention's: ufldl ``..., data, corruptedData``) and reconstructs the clean ``x`` /
        ``data``; the probes pass a fixed corruption of each probe's data.
      tol: relative agreement tolerance per array and probe (default 1e-7).
      arrays: inputs as ``"numpy"`` arrays or ``"torch"`` tensors; ``"auto"``: torch when the
        function's module imports torch.
      finite_differences: on a mismatch, also check their gradient against finite differences
        of their own cost.
      packing: ufldl convention: how their code unpacks theta, ``"row"`` (numpy's ``W1.ravel()``)
        or ``"column"`` (MATLAB's ``W1(:)``); ``None``: detected from their cost (which depends only
        on how they read theta), reported ambiguous when the cost cannot tell.

    Returns:
      :class:`Report` (``passed``, ``match``, ``text``, ``exit_code``).

    Raises:
      InputError: their code cannot be run (one line).
    """
    _check_output(output)
    _check_tol(tol)
    check_options(tied, l1, denoising)
    fixed = _check_packing(packing)
    target = make_target(fn, convention=convention, arrays=arrays, l1=bool(l1), denoising=denoising)
    if fixed is not None and target.convention != "ufldl":
        raise InputError("packing (--packing) is for the ufldl convention's flat theta; the rows form passes arrays")
    ps = probes(output, tied=tied, l1=float(l1 or 0.0), denoising=denoising)
    packings = ((fixed,) if fixed else ("F", "C")) if target.convention == "ufldl" else ("C",)
    by_packing, first_bad = {}, {}
    for pk in packings:
        target.packing = pk
        by_packing[pk] = {}
        for p in ps:
            J, g, _ = target.evaluate(p, finite=False)
            by_packing[pk][p.name] = (J, g)
            bad = nonfinite(J, g)
            if bad and pk not in first_bad:
                first_bad[pk] = f"{target.label} on probe {p.name} returned non-finite values (NaN or inf) in {', '.join(bad)}"
    # NaN or inf on every probe, however theta is read: nothing to compare (some probes finite: diagnosed)
    if all(all(nonfinite(*v) for v in by_packing[pk].values()) for pk in packings):
        raise InputError(first_bad[packings[0]])
    header = [f"sae-jax check: {target.label}: {_CONVENTION_TEXT[target.convention]},{_order_text(target)} "
              f"{output} decoder, {_variant_text(tied, l1, denoising, target.slots)}{target.arrays} inputs, "
              f"{len(ps)} probes in float64"]
    flat = target.convention == "ufldl"
    # analyse() picks the packing: the one under which their cost agrees (their cost depends only on how they
    # read theta), else the one a catalogued variant explains best (called ambiguous unless one explains it).
    report = analyse(target.label, header, by_packing, ps, tol=tol, target=target if not finite_differences else None,
                     flat=flat, packing_given=fixed is not None)
    if finite_differences and (not report.passed or report.match):  # a convention pass needs consistency too
        # again under the chosen packing, now with finite differences of their own cost
        line = [ln for ln in report.text.split("\n") if ln.startswith("theta packing: ")]
        target.packing = report.packing
        report = analyse(target.label, header, {report.packing: by_packing[report.packing]}, ps, tol=tol,
                         target=target, flat=flat, packing_given=fixed is not None)
        if line and len(packings) > 1:  # keep the "detected" line
            lines = report.text.split("\n")
            lines.insert(1, line[0])
            report.text = "\n".join(lines)
    elif report.passed and target.mutated:
        report = analyse(target.label, header, by_packing, ps, tol=tol, target=target, flat=flat,
                         packing_given=fixed is not None)
    return report


def check_results(path, *, output: str | None = None, tol: float = DEFAULT_TOL, tied: bool | None = None,
                  l1: float | None = None, denoising: bool | None = None, packing: str | None = None) -> Report:
    """Compare a results file (see :func:`write_cases`) with the reference and diagnose it.

    Its probe names tell the variant it answers (``*_tied_*``, ``*_l1_*``, ``*_denoising_*``);
    ``tied`` and ``denoising`` (if given) must agree, and L1 cases need ``l1``, the γ they were
    written with (a results file does not repeat it). ``packing``: how its ``grad`` field is packed,
    ``"column"`` (the default: like the cases' ``theta``) or ``"row"`` (``grad_rowmajor`` is always
    row-major). Code that unpacks theta in the other layout than the one it was given is told so
    ("layout mismatch").
    """
    if output is not None:
        _check_output(output)
    _check_tol(tol)
    check_options(bool(tied), l1, bool(denoising))
    fixed = _check_packing(packing)
    ps, by_packing, missing = read_results(path, output, l1=l1, tied=tied, denoising=denoising, packing=fixed)
    header = [f"sae-jax check: results file {path}: {ps[0].output} decoder, "
              f"{_variant_text(ps[0].tied, l1, ps[0].denoising)}{len(ps)} probes"
              + (f" (not in the file: {', '.join(missing)})" if missing else "")]
    flat = any(k in f for f in read_results_fields(path) for k in ("grad", "grad_rowmajor"))
    return analyse(str(path), header, by_packing, ps, tol=tol, flat=flat, packing_given=fixed is not None,
                   results=True)
