r"""``sae_jax.check``: test anyone's sparse-autoencoder cost and gradient, and name its defect.

Running a ``"file.py:function"`` target imports that file, which executes its top-level code with
your permissions: check only code you trust.

The UFLDL exercise's gradient check says "wrong", never why. :func:`check` runs someone
else's cost-and-gradient on a designed set of float64 probes, compares it with sae-jax's
float64 reference (:func:`sae_jax.cost_and_grad`, :func:`sae_jax.cost_terms`) and, when they
differ, runs every catalogued mistake as an executable variant on the same probes and names
the one whose outputs equal theirs, with the evidence and the derivation step that shows the
right form. ``sae-jax check`` is the command-line front end.

Their code, as it is written (:mod:`sae_jax._src.check.adapters`)
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

Probe cases (:func:`sae_jax._src.check.probes.probes`), per decoder, all float64
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
    sae-jax's convention (:mod:`sae_jax._src.variants`): the tied cost is the untied cost at W2 = W1ᵀ
    (weight decay λ‖W1‖², both copies) and ∂J/∂W1 sums the encoder's and the decoder's
    contributions; their ``theta = [W1(:); b1(:); b2(:)]`` (packing detected) or rows-form
    ``Params(W1, b1, None, b2)``. The report compares cost, W1, b1, b2 and splits a wrong W1 into
    the two contributions ("encoder contribution ×1, decoder contribution ×0").
    ``write_cases(DIR, tied=True)`` (``--write-cases DIR --tied``) writes the tied probes; a
    results file's probe names tell :func:`check_results` that it is tied.

L1 activation penalty (``l1=`` γ, ``sae-jax check --l1 GAMMA``)
    Their cost adds γ(1/m)Σᵢ‖a⁽²⁾⁽ⁱ⁾‖₁ (sigmoid activations: γΣⱼρ̂ⱼ) and δ⁽²⁾ gains +γf′(z⁽²⁾) per
    sample (:mod:`sae_jax._src.variants`); the probes (``*_l1_*``) carry that γ. It goes to their ``l1``
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

Catalogue (:data:`sae_jax._src.check.catalogue.CATALOGUE`; each is a switch of
:func:`~sae_jax._src.check.catalogue.variant_cost_and_grad`)
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

Diagnosis (:func:`sae_jax._src.check.report.analyse`)
    Every variant (and, if none matches, every pair of them) is run on the probes; a variant
    matches when it agrees with their outputs within ``tol`` everywhere. The report shows the
    per-probe error table, the matched mistake with its signature, evidence (for each array and
    probe that differs, the least-squares ratios of their reconstruction / weight-decay /
    sparsity parts to the correct parts, e.g. "sparsity ×0.142857 (1/7)" at m = 7, and the
    cost as a rescaled term), and the derivation step (``derivations/``, the Derivation
    guide) with the right form. For code (not a results file) it also checks their
    gradient against five-point central differences of *their own* cost: consistent means a
    different objective (a convention difference in the cost), inconsistent means a gradient bug.

Locating what the catalogue has no name for (:mod:`sae_jax._src.check.locate`)
    When nothing matches, the Diagnosis line leads with what the evidence shows, in the student's
    words: which array, which part, by what factor and the likely cause ("W1grad's reconstruction
    and sparsity parts are m times too large (×5 at m = 5, ×7 at m = 7, ...): not divided by m"; the
    cost's term that is off; an array that is the right numbers transposed; a flat gradient whose
    blocks are in another order or packing); outputs that differ only on the square probe (data
    transposed when square); outputs that are the other decoder's (run it with the other
    ``output``); NaN or inf on some probes (diagnosed on the probes where they stay finite); for a
    results file, a cost computed from θ unpacked in the other layout ("layout mismatch").
    "Nearest variants" are listed only when one is within a max relative difference of
    :data:`~sae_jax._src.check.locate.NEAR` (0.05). A function that writes into its inputs (θ, the data,
    params) fails even when its outputs agree (exit 1): an optimizer's θ would change under it.

Any language (:mod:`sae_jax._src.check.cases`)
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

from sae_jax._src.check import (
    CATALOGUE as CATALOGUE,
    DEFAULT_TOL as DEFAULT_TOL,
    MISTAKES as MISTAKES,
    Mistake as Mistake,
    Probe as Probe,
    Report as Report,
    check as check,
    check_results as check_results,
    detect_convention as detect_convention,
    load_function as load_function,
    probes as probes,
    reference as reference,
    variant_cost_and_grad as variant_cost_and_grad,
    write_cases as write_cases,
)

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
