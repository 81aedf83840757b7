r"""``sae_jax.check``: test anyone's sparse-autoencoder cost and gradient, and name its defect.

Running a ``"file.py:function"`` target imports that file, which executes its top-level code with
your permissions: check only code you trust.

The UFLDL exercise's gradient check says "wrong", never why. :func:`check` runs someone
else's cost-and-gradient on a designed set of float64 probes, compares it with sae-jax's
float64 reference (:func:`sae_jax.cost_and_grad`, :func:`sae_jax.cost_terms`) and, when they
differ, runs every catalogued mistake as an executable variant on the same probes and names
the one whose outputs equal theirs, with the evidence and the derivation step that shows the
right form. ``sae-jax check`` is the command-line front end.

Their code, as it is written (:mod:`sae_jax.check.adapters`)
    A Python callable, or ``"path/to/file.py:function"`` / ``"package.module:function"``, in
    NumPy, JAX or PyTorch (tensors converted; torch imported only for a module that imports it),
    in UFLDL's convention ``sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda,
    sparsityParam, beta, data) -> (cost, grad)`` (data as columns; ``theta = [W1(:); W2(:); b1(:);
    b2(:)]`` in MATLAB's column-major or numpy's row-major packing: detected from their cost, which
    depends only on how they unpack theta, or named with ``packing="row"|"column"``; the arguments
    after theta are passed by their parameter names when those say another order, e.g. published
    code's ``(theta, hidden_size, visible_size, lambda_, sparsity_param, beta, data)``) or the rows form
    ``f(params, x, lam, beta, rho) -> (cost, grads)`` (samples as rows). The convention is read
    from the signature (7 positional parameters: ufldl; 5, or ``params, x`` plus keywords
    ``lam, beta, rho``: rows), else named with ``convention=``. Each decoder (``output=
    "sigmoid"`` or ``"linear"``) has its own probes.

Probe cases (:func:`sae_jax.check.probes.probes`), per decoder, all float64
    ``n_visible = 5``, ``n_hidden = 3`` (unequal: a transposed weight array cannot hide), nonzero
    biases, λ = 0.01, β = 3, ρ = 0.05 unless switched off, data uniform in [0.05, 0.95] (sigmoid)
    or normal (linear), from a fixed seed:

    =====================  ====  ======================================================
    probe                  m     isolates
    =====================  ====  ======================================================
    ``*_m1``               1     every misplaced 1/m is invisible here
    ``*_m7``               7     all three terms
    ``*_m20``              20    all three terms, another m (ratios that follow m)
    ``*_m7_beta0``         7     β = 0: no sparsity term
    ``*_m7_lam0``          7     λ = 0: no weight decay
    ``*_m20_saturated``    20    saturated hidden units: ρ̂ ≈ 1e-5 and 1 − ρ̂ ≈ 1e-4
                                 (where the plain formula is finite and accurate)
    ``*_m5_square``        5     m = n_visible: square data, where code that reads the
                                 data's orientation from its shape transposes it
    =====================  ====  ======================================================

    ``*`` is ``sigmoid`` or ``linear``; with ``tied=True`` the same probes with W2 dropped,
    ``*_tied_m1`` ... (``Params(W1, b1, None, b2)``, W2 = W1ᵀ), against sae-jax's tied reference.

Tied weights (``tied=True``, ``sae-jax check --tied``)
    sae-jax's convention (:mod:`sae_jax.variants`): the tied cost is the untied cost at W2 = W1ᵀ
    (weight decay λ‖W1‖², both copies) and ∂J/∂W1 sums the encoder's and the decoder's
    contributions; their ``theta = [W1(:); b1(:); b2(:)]`` (packing detected) or rows-form
    ``Params(W1, b1, None, b2)``. The report compares cost, W1, b1, b2 and splits a wrong W1 into
    the two contributions ("encoder contribution ×1, decoder contribution ×0").
    ``write_cases(DIR, tied=True)`` (``--write-cases DIR --tied``) writes the tied probes; a
    results file's probe names tell :func:`check_results` that it is tied.

L1 activation penalty (``l1=`` γ, ``sae-jax check --l1 GAMMA``)
    Their cost adds γ(1/m)Σᵢ‖a⁽²⁾⁽ⁱ⁾‖₁ (sigmoid activations: γΣⱼρ̂ⱼ) and δ⁽²⁾ gains +γf′(z⁽²⁾) per
    sample (:mod:`sae_jax.variants`); the probes (``*_l1_*``) carry that γ. It goes to their ``l1``
    parameter, else the extra parameter after the convention's (ufldl ``..., data, gamma``; rows
    ``..., rho, gamma``), else it is taken as fixed in their code. The evidence splits the gradient
    into reconstruction / decay / sparsity / L1 parts.

Denoising (``denoising=True``, ``sae-jax check --denoising``)
    Their function reads a corrupted input x̃ and reconstructs the clean x: ufldl
    ``f(theta, visibleSize, hiddenSize, lambda, sparsityParam, beta, data, corruptedData[, gamma])``
    (``data`` the clean target, both as columns), rows ``f(params, x, lam, beta, rho, x_input[, l1])``
    or a keyword ``x_input`` (``sae_jax.cost_and_grad`` itself). The probes (``*_denoising_*``) pass a
    fixed corruption (masking p = 0.3 for the sigmoid decoder, Gaussian σ = 0.3 for the linear one),
    plus ``*_denoising_m7_uncorrupted`` with x̃ = x, where every denoising mistake is invisible.
    The reference: ρ̂, the L1 term and δ⁽²⁾ᵀx̃ from x̃, δ⁽³⁾ from the clean x. The variants combine
    (``--tied --l1 0.1 --denoising``); ``write_cases`` / ``--write-cases`` take the same options.

Agreement: for the cost and each gradient array on every probe,
max |theirs − reference| ≤ ``tol`` × max |reference| (``tol`` = 1e-7 by default).

Catalogue (:data:`sae_jax.check.catalogue.CATALOGUE`; each is a switch of
:func:`~sae_jax.check.catalogue.variant_cost_and_grad`)
    ``sparsity_delta_divided_by_m`` (1/m inside the sparsity delta with the outer 1/m kept: the
    1/m question's variant; invisible at m = 1), ``sparsity_missing_from_backprop``,
    ``kl_derivative_sign_flipped``, ``beta_applied_twice``, ``rho_hat_wrong_axis``, ``rho_hat_summed``
    (no 1/m: ρ̂ > 1, a NaN cost wherever Σᵢa⁽²⁾ ≥ 1; correct at m = 1),
    ``kl_reversed`` (KL(ρ̂‖ρ)), ``weight_decay_on_biases``, ``weight_decay_divided_by_m``,
    ``lambda_applied_twice``, ``reconstruction_summed``, ``reconstruction_missing_half``,
    ``gradient_not_averaged``, ``fprime_of_z`` (z(1 − z)), ``fprime_of_activation``
    (f(a)(1 − f(a))), ``output_delta_missing_fprime`` (sigmoid decoder),
    ``sigmoid_fprime_in_linear_decoder`` (linear decoder), ``transposed_weight_gradients``; for tied
    weights (``tied=True``) also ``tied_decoder_contribution_missing`` (the untied W1 formula),
    ``tied_encoder_contribution_missing`` and ``tied_weight_decay_counted_once`` (UFLDL-style
    (λ/2)‖W1‖²: a convention difference; sae-jax counts both copies, λ‖W1‖²; an exact match whose
    gradient agrees with finite differences of its own cost passes, exit 0, reported as a
    convention difference: the code is right for the documented alternative); with ``l1=``
    ``l1_missing_from_backprop``, ``l1_missing_from_cost``, ``l1_delta_missing_fprime`` (+γ after the
    f′), ``l1_delta_divided_by_m`` (γ/m inside the delta: divided by m twice) and ``l1_not_averaged``
    (never divided by m); with ``denoising=True`` ``denoising_target_is_corrupted_input``,
    ``denoising_clean_input_in_weight_gradient`` (δ⁽²⁾ᵀx), ``denoising_rho_hat_from_clean_input``
    and ``denoising_input_ignored`` (a plain autoencoder on x).

Diagnosis (:func:`sae_jax.check.report.analyse`)
    Every variant (and, if none matches, every pair of them) is run on the probes; a variant
    matches when it agrees with their outputs within ``tol`` everywhere. The report shows the
    per-probe error table, the matched mistake with its signature, evidence (for each array and
    probe that differs, the least-squares ratios of their reconstruction / weight-decay /
    sparsity parts to the correct parts, e.g. "sparsity ×0.142857 (1/7)" at m = 7, and the
    cost as a rescaled term), and the derivation step (``derivations/``, README § The
    derivation) with the right form. For code (not a results file) it also checks their
    gradient against five-point central differences of *their own* cost: consistent means a
    different objective (a convention difference in the cost), inconsistent means a gradient bug.

Locating what the catalogue has no name for (:mod:`sae_jax.check.locate`)
    When nothing matches, the Diagnosis line leads with what the evidence shows, in the student's
    words: which array, which part, by what factor and the likely cause ("W1grad's reconstruction
    and sparsity parts are m times too large (×5 at m = 5, ×7 at m = 7, ...): not divided by m"; the
    cost's term that is off; an array that is the right numbers transposed; a flat gradient whose
    blocks are in another order or packing); outputs that differ only on the square probe (data
    transposed when square); outputs that are the other decoder's (run it with the other
    ``output``); NaN or inf on some probes (diagnosed on the probes where they stay finite); for a
    results file, a cost computed from θ unpacked in the other layout ("layout mismatch").
    "Nearest variants" are listed only when one is within a max relative difference of
    :data:`~sae_jax.check.locate.NEAR` (0.05). A function that writes into its inputs (θ, the data,
    params) fails even when its outputs agree (exit 1): an optimizer's θ would change under it.

Any language (:mod:`sae_jax.check.cases`)
    :func:`write_cases` writes the probes and expected outputs as ``.npz``, ``.mat`` and
    ``.json`` with a README on producing a results file; :func:`check_results` compares one.

Code that cannot be run (import error, wrong signature, wrong output shapes, NaN or inf on every probe) raises
:class:`~sae_jax.InputError` with one line (``sae-jax check`` exits 2).

Examples:
  >>> import numpy as np
  >>> from sae_jax.check import check
  >>> def cost_and_grad(params, x, lam, beta, rho):   # a NumPy implementation, rows form
  ...     W1, b1, W2, b2 = params
  ...     m = x.shape[0]
  ...     a2 = 1 / (1 + np.exp(-(x @ W1.T + b1)))
  ...     a3 = 1 / (1 + np.exp(-(a2 @ W2.T + b2)))
  ...     rh = a2.mean(axis=0)
  ...     J = (0.5 / m * np.sum((a3 - x) ** 2) + lam / 2 * (np.sum(W1**2) + np.sum(W2**2))
  ...          + beta * np.sum(rho * np.log(rho / rh) + (1 - rho) * np.log((1 - rho) / (1 - rh))))
  ...     d3 = (a3 - x) * a3 * (1 - a3)
  ...     d2 = (d3 @ W2 + beta * (-rho / rh + (1 - rho) / (1 - rh)) / m) * a2 * (1 - a2)  # 1/m inside
  ...     return J, (d2.T @ x / m + lam * W1, d2.sum(0) / m, d3.T @ a2 / m + lam * W2, d3.sum(0) / m)
  >>> report = check(cost_and_grad)
  >>> report.passed, report.match
  (False, ('sparsity_delta_divided_by_m',))
"""

from __future__ import annotations

from .adapters import detect_convention as detect_convention, load_function as load_function, make_target, nonfinite
from .cases import read_results, read_results_fields, write_cases as write_cases
from .catalogue import CATALOGUE as CATALOGUE, MISTAKES as MISTAKES, Mistake as Mistake
from .catalogue import variant_cost_and_grad as variant_cost_and_grad
from .probes import PACKINGS, Probe as Probe, check_options, probes as probes, reference as reference
from ..validate import InputError
from .report import DEFAULT_TOL as DEFAULT_TOL, Report as Report, analyse

__all__ = [
    "CATALOGUE",
    "DEFAULT_TOL",
    "MISTAKES",
    "Mistake",
    "Probe",
    "Report",
    "check",
    "check_results",
    "detect_convention",
    "load_function",
    "probes",
    "reference",
    "variant_cost_and_grad",
    "write_cases",
]

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
