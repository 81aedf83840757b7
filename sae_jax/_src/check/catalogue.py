"""The catalogue of known mistakes, each an executable variant of the cost and gradient.

:func:`variant_cost_and_grad` is a plain NumPy transcription of the tutorial's cost and
backprop (samples as rows) with a switch per catalogued mistake; with no switch it is the
correct algorithm (the tests hold it equal to :func:`sae_jax.cost_and_grad` to 1e-12).
Diagnosis runs every variant on the probes and names the one whose outputs equal the user's.

Examples:
  >>> import numpy as np
  >>> from sae_jax.check import MISTAKES, variant_cost_and_grad
  >>> from sae_jax.check import probes
  >>> p = probes("sigmoid")[1]                                   # m = 7
  >>> kw = dict(lam=p.lam, beta=p.beta, rho=p.rho)
  >>> J, g = variant_cost_and_grad(p.params, p.x, **kw)          # the correct algorithm
  >>> J_bad, g_bad = variant_cost_and_grad(p.params, p.x, mistakes=("sparsity_delta_divided_by_m",), **kw)
  >>> bool(J_bad == J), bool(np.allclose(g_bad.W1, g.W1)), bool(np.allclose(g_bad.W2, g.W2))
  (True, False, True)
  >>> MISTAKES["sparsity_delta_divided_by_m"].title
  '1/m inside the sparsity delta, with the outer 1/m kept'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..params import Params

__all__ = ["Mistake", "CATALOGUE", "MISTAKES", "variant_cost_and_grad", "as_read"]

# Where the right form is derived (the Derivation guide, docs/guide/derivation.md;
# `python -m derivations` prints each named derivation step by step).
_D_SPARSITY = ("derivations/symbolic_m.py, 'Sparsity term, per sample: ∂(β Σ_j KL(ρ‖ρ̂_j)) / ∂z_(k,p)' "
               "and 'Weight gradient: ∂J/∂W1_(p,q)' (python -m derivations; docs/guide/derivation.md)")
_D_DELTA = ("derivations/symbolic_m.py, 'Whole cost, per sample: ∂J/∂z_(k,p) = δ⁽²⁾_(k,p) / m' and "
            "'Weight gradient: ∂J/∂W1_(p,q)' (python -m derivations; docs/guide/derivation.md)")
_D_COST = ("the cost's definition, J = (1/m) Σ_i ½‖x̂⁽ⁱ⁾ − x⁽ⁱ⁾‖² + (λ/2)(‖W1‖² + ‖W2‖²) + β Σ_j KL(ρ‖ρ̂_j) "
           "(sae_jax/_src/cost.py; docs/guide/math.md), differentiated in derivations/concrete.py "
           "'Exact identities at concrete sizes' (python -m derivations)")
_D_TIED = ("derivations/ae_variants.py, the tied-weights gradient: the hand formula with both contributions "
           "minus sympy's diff is 0, with either alone it is not (python -m derivations; docs/guide/variants.md)")
_D_TIED_DECAY = ("sae_jax/_src/variants.py: a tied cost is the untied cost at W2 = W1ᵀ, J = ... + (λ/2)(‖W1‖² + ‖W1ᵀ‖²) "
                 "= ... + λ‖W1‖², gradient ... + 2λW1 (docs/guide/variants.md)")
_D_L1 = ("derivations/ae_variants.py, 'The L1 activation penalty's delta: δ⁽²⁾ += γ f'(z⁽²⁾), one 1/m outside' "
         "(its negative control: γ/m inside; python -m derivations); the term γ(1/m)Σᵢ‖a⁽²⁾⁽ⁱ⁾‖₁ in "
         "sae_jax/_src/variants.py (docs/guide/variants.md)")
_D_DENOISING = ("derivations/ae_variants.py, 'Denoising: input X̃ in the forward pass and in δ⁽²⁾ᵀX̃, target X in "
                "δ⁽³⁾' (its negative control: the clean X in δ⁽²⁾ᵀX; python -m derivations); sae_jax/_src/variants.py "
                "(docs/guide/variants.md): ρ̂ and the L1 term are of x̃'s hidden activations")
_D_SIGMOID = ("derivations/concrete.py, 'The sigmoid's derivative: f' = f(1 − f)' (f' at z, written with "
              "a = f(z); python -m derivations)")


@dataclass(frozen=True)
class Mistake:
    """A catalogued mistake: its name, what it is, its predicted signature, where the right form is derived."""

    name: str
    title: str
    signature: str
    derivation: str
    outputs: tuple[str, ...] = ("sigmoid", "linear")  # decoders on which it is visible
    weights: tuple[str, ...] = ("untied", "tied")  # the weights (untied, tied W2 = W1ᵀ) it applies to
    needs: str | None = None  # the variant it belongs to: "l1" (an L1 penalty), "denoising", or None (any)
    convention: bool = False  # a documented alternative convention, not a bug: an exact match passes (exit 0)

    def applies(self, output: str, *, tied: bool = False, l1: bool = False, denoising: bool = False) -> bool:
        """Whether this mistake is a candidate for code of that decoder and variant."""
        return (output in self.outputs and ("tied" if tied else "untied") in self.weights
                and self.needs in (None, "l1" if l1 else None, "denoising" if denoising else None))


CATALOGUE: tuple[Mistake, ...] = (
    Mistake(
        "sparsity_delta_divided_by_m",
        "1/m inside the sparsity delta, with the outer 1/m kept",
        "∂J/∂W1 and ∂J/∂b1: the sparsity part is 1/m of the correct value (correct at m = 1); cost correct",
        _D_SPARSITY + "; the variant itself: derivations/variant.py",
    ),
    Mistake(
        "sparsity_missing_from_backprop",
        "the sparsity term is in the cost but not in the backprop",
        "∂J/∂W1 and ∂J/∂b1: sparsity part 0 (correct where β = 0); cost correct",
        _D_SPARSITY,
    ),
    Mistake(
        "kl_derivative_sign_flipped",
        "the KL derivative's sign is flipped: β(ρ/ρ̂ − (1−ρ)/(1−ρ̂))",
        "∂J/∂W1 and ∂J/∂b1: sparsity part −1 times the correct value; cost correct",
        _D_SPARSITY,
    ),
    Mistake(
        "beta_applied_twice",
        "β applied twice in the backprop (β²(−ρ/ρ̂ + (1−ρ)/(1−ρ̂)))",
        "∂J/∂W1 and ∂J/∂b1: sparsity part β times the correct value; cost correct",
        _D_SPARSITY,
    ),
    Mistake(
        "rho_hat_wrong_axis",
        "ρ̂ averaged over the wrong axis (over hidden units per sample instead of over samples per unit)",
        "cost's sparsity term and the sparsity part of ∂J/∂W1, ∂J/∂b1 wrong, on every probe with β > 0",
        _D_COST,
    ),
    Mistake(
        "rho_hat_summed",
        "ρ̂ summed over the samples instead of averaged (ρ̂ⱼ = Σᵢ a⁽²⁾ⱼ⁽ⁱ⁾, the 1/m missing)",
        "correct at m = 1; for m > 1 ρ̂ exceeds 1 on active units, so log(1 − ρ̂) is NaN: a non-finite cost, and "
        "the sparsity part of ∂J/∂W1, ∂J/∂b1 wrong",
        _D_COST,
    ),
    Mistake(
        "kl_reversed",
        "KL(ρ̂‖ρ) instead of KL(ρ‖ρ̂), in the cost and its derivative",
        "cost's sparsity term and the sparsity part of ∂J/∂W1, ∂J/∂b1 wrong, consistently with each other",
        _D_COST,
    ),
    Mistake(
        "weight_decay_on_biases",
        "weight decay applied to the biases too",
        "cost + (λ/2)(‖b1‖² + ‖b2‖²); ∂J/∂b1, ∂J/∂b2 + λb (correct where λ = 0)",
        _D_COST,
    ),
    Mistake(
        "weight_decay_divided_by_m",
        "weight decay divided by m",
        "cost's weight decay and the λW part of ∂J/∂W1, ∂J/∂W2 are 1/m of the correct value (correct at m = 1)",
        _D_COST,
    ),
    Mistake(
        "lambda_applied_twice",
        "λ applied twice in the gradient (2λW, or λW added twice)",
        "∂J/∂W1, ∂J/∂W2: the weight-decay part is 2 times the correct value; cost correct",
        _D_COST,
    ),
    Mistake(
        "reconstruction_summed",
        "reconstruction summed over samples instead of averaged (cost and gradient)",
        "cost's reconstruction term and the reconstruction part of every gradient are m times the correct "
        "value (correct at m = 1)",
        _D_COST,
    ),
    Mistake(
        "reconstruction_missing_half",
        "the cost's reconstruction term misses its ½ (the gradient, the tutorial's, assumes it)",
        "cost: reconstruction term 2 times the correct value; gradient correct; their gradient disagrees with "
        "finite differences of their cost",
        _D_COST,
    ),
    Mistake(
        "gradient_not_averaged",
        "the gradient's sums over samples are not divided by m (cost correct)",
        "every gradient except the λW part is m times the correct value (correct at m = 1)",
        _D_DELTA,
    ),
    Mistake(
        "fprime_of_z",
        "f′ taken of z instead of a: z(1 − z) where a(1 − a) belongs",
        "every gradient wrong on every probe (the sigmoid layers' f′ is off); cost correct",
        _D_SIGMOID,
    ),
    Mistake(
        "fprime_of_activation",
        "f′ evaluated at a instead of z: f(a)(1 − f(a)), the sigmoid applied twice",
        "every gradient wrong on every probe; cost correct",
        _D_SIGMOID,
    ),
    Mistake(
        "output_delta_missing_fprime",
        "the output delta misses the output layer's f′: δ⁽³⁾ = −(x − a⁽³⁾) with a sigmoid decoder",
        "sigmoid decoder: every reconstruction part wrong; cost correct",
        _D_DELTA,
        outputs=("sigmoid",),
    ),
    Mistake(
        "sigmoid_fprime_in_linear_decoder",
        "the linear decoder keeps the sigmoid's f′ in the output delta: δ⁽³⁾ = −(x − a⁽³⁾)·a⁽³⁾(1 − a⁽³⁾)",
        "linear decoder: every reconstruction part wrong; cost correct",
        _D_DELTA,
        outputs=("linear",),
    ),
    Mistake(
        "transposed_weight_gradients",
        "transposed weight gradients (W1grad, W2grad computed as data·δᵀ, i.e. (n_visible × n_hidden) "
        "instead of (n_hidden × n_visible), then packed)",
        "∂J/∂W1, ∂J/∂W2 hold the right numbers in the wrong places (biases and cost correct)",
        _D_DELTA,
    ),
    Mistake(
        "tied_decoder_contribution_missing",
        "tied weights: ∂J/∂W1 misses the decoder's contribution ((1/m)δ⁽³⁾ᵀa⁽²⁾ + λW1ᵀ)ᵀ — the untied W1 formula",
        "tied ∂J/∂W1 equals the untied ∂J/∂W1 at W2 = W1ᵀ: encoder contribution ×1, decoder ×0; biases and "
        "cost correct",
        _D_TIED,
        weights=("tied",),
    ),
    Mistake(
        "tied_encoder_contribution_missing",
        "tied weights: ∂J/∂W1 misses the encoder's contribution (1/m)δ⁽²⁾ᵀx + λW1 (only the decoder's, transposed)",
        "tied ∂J/∂W1: encoder contribution ×0, decoder ×1; biases and cost correct",
        _D_TIED,
        weights=("tied",),
    ),
    Mistake(
        "tied_weight_decay_counted_once",
        "tied weights: weight decay counts W1 once, UFLDL-style (λ/2)‖W1‖² — a convention difference: sae-jax "
        "counts both copies, (λ/2)(‖W1‖² + ‖W1ᵀ‖²) = λ‖W1‖², so a tied J equals the untied J at untie(params)",
        "cost's weight decay and the decay part of ∂J/∂W1 are ½ of sae-jax's (correct where λ = 0); cost and "
        "gradient consistent with each other",
        _D_TIED_DECAY,
        weights=("tied",),
        convention=True,
    ),
    # the L1 activation penalty (l1= gamma): gamma (1/m) sum_i ||a2_i||_1, delta2 += gamma f'(z2)
    Mistake(
        "l1_missing_from_backprop",
        "the L1 penalty is in the cost but not in the backprop (no +γ in δ⁽²⁾)",
        "∂J/∂W1 and ∂J/∂b1: L1 part 0; cost correct",
        _D_L1,
        needs="l1",
    ),
    Mistake(
        "l1_missing_from_cost",
        "the L1 penalty is in the backprop but not in the cost",
        "cost: L1 term 0; gradient correct; their gradient disagrees with finite differences of their cost",
        _D_L1,
        needs="l1",
    ),
    Mistake(
        "l1_delta_missing_fprime",
        "the L1 delta added after the f′: δ⁽²⁾ = (W2ᵀδ⁽³⁾ + sparsity delta)·f′(z⁽²⁾) + γ instead of "
        "(W2ᵀδ⁽³⁾ + sparsity delta + γ)·f′(z⁽²⁾)",
        "∂J/∂W1 and ∂J/∂b1 wrong on every probe, not a rescaling of the L1 part; cost correct",
        _D_L1,
        needs="l1",
    ),
    Mistake(
        "l1_delta_divided_by_m",
        "1/m inside the L1 delta (γ/m per sample) with the outer 1/m kept: L1 divided by m twice",
        "∂J/∂W1 and ∂J/∂b1: the L1 part is 1/m of the correct value (correct at m = 1); cost correct",
        _D_L1,
        needs="l1",
    ),
    Mistake(
        "l1_not_averaged",
        "the L1 penalty summed over samples, never divided by m: γΣᵢ‖a⁽²⁾⁽ⁱ⁾‖₁ in the cost and its gradient",
        "cost's L1 term and the L1 part of ∂J/∂W1, ∂J/∂b1 are m times the correct value (correct at m = 1); "
        "cost and gradient consistent with each other (the penalty of γ·m)",
        _D_L1,
        needs="l1",
    ),
    # denoising (x_input = x̃ corrupted, x the clean target)
    Mistake(
        "denoising_target_is_corrupted_input",
        "denoising: the reconstruction's target is the corrupted input x̃ (‖x̂ − x̃‖², δ⁽³⁾ from x̃), not the "
        "clean x",
        "cost's reconstruction term and every reconstruction part wrong; correct where x̃ = x",
        _D_DENOISING,
        needs="denoising",
    ),
    Mistake(
        "denoising_clean_input_in_weight_gradient",
        "denoising: ∂J/∂W1 = (1/m)δ⁽²⁾ᵀx + λW1 with the clean x where the network read x̃",
        "∂J/∂W1 wrong (the encoder's contribution); cost, b1, W2, b2 correct; correct where x̃ = x",
        _D_DENOISING,
        needs="denoising",
    ),
    Mistake(
        "denoising_rho_hat_from_clean_input",
        "denoising: ρ̂ from a forward pass on the clean x while the network reads x̃",
        "cost's sparsity term and the sparsity part of ∂J/∂W1, ∂J/∂b1 wrong (correct where β = 0 or x̃ = x)",
        _D_DENOISING,
        needs="denoising",
    ),
    Mistake(
        "denoising_input_ignored",
        "denoising: the corrupted input is never used: the network reads the clean x (a plain autoencoder)",
        "cost and every gradient wrong, equal to the plain autoencoder's on x; correct where x̃ = x",
        _D_DENOISING,
        needs="denoising",
    ),
)

MISTAKES = {mk.name: mk for mk in CATALOGUE}


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def variant_cost_and_grad(params, x, *, lam, beta, rho, output="sigmoid", l1=0.0, x_input=None, mistakes=()):
    """The cost and gradient with the named catalogued mistakes made (none: the correct algorithm).

    Samples as rows: ``x: (m, n_visible)``, ``params`` in UFLDL shapes. Returns
    ``(cost, Params)`` as NumPy float64. ``transposed_weight_gradients`` is a matter of
    packing and is applied by :func:`as_read`, not here. Tied weights (``params.W2`` None):
    the untied cost and gradient at W2 = W1ᵀ, with ``∂J/∂W1 = ∂J/∂W1 + (∂J/∂W2)ᵀ`` and the
    gradient's W2 None. ``l1``: the L1 activation penalty's γ; ``x_input``: denoising, the
    corrupted input the network reads (``x`` the clean target), as in :func:`sae_jax.cost_and_grad`.
    """
    mk = frozenset(mistakes)
    unknown = mk - set(MISTAKES)
    if unknown:
        raise ValueError(f"unknown mistakes {sorted(unknown)}; known: {sorted(MISTAKES)}")
    tied = params[2] is None
    W1, b1, W2, b2 = (None if a is None else np.asarray(a, np.float64) for a in params)
    W2 = W1.T if tied else W2
    x = np.asarray(x, np.float64)
    xin = x if x_input is None or "denoising_input_ignored" in mk else np.asarray(x_input, np.float64)
    target = xin if "denoising_target_is_corrupted_input" in mk else x
    m = x.shape[0]
    z2 = xin @ W1.T + b1
    a2 = _sigmoid(z2)
    z3 = a2 @ W2.T + b2
    a3 = _sigmoid(z3) if output == "sigmoid" else z3

    wrong_axis = "rho_hat_wrong_axis" in mk
    a2_rho = _sigmoid(x @ W1.T + b1) if "denoising_rho_hat_from_clean_input" in mk else a2
    rh = a2_rho.mean(axis=1) if wrong_axis else a2_rho.mean(axis=0)
    if "rho_hat_summed" in mk:
        rh = rh * a2_rho.shape[1 if wrong_axis else 0]

    sq = 0.5 * np.sum((a3 - target) ** 2)
    if "reconstruction_missing_half" in mk:
        sq = 2.0 * sq
    rec = sq if "reconstruction_summed" in mk else sq / m
    wsum = np.sum(W1**2) + (0.0 if "tied_weight_decay_counted_once" in mk else np.sum(W2**2))
    if "weight_decay_on_biases" in mk:
        wsum = wsum + np.sum(b1**2) + np.sum(b2**2)
    wd = 0.5 * lam * wsum
    if "weight_decay_divided_by_m" in mk:
        wd = wd / m
    if "kl_reversed" in mk:
        kl = rh * np.log(rh / rho) + (1 - rh) * np.log((1 - rh) / (1 - rho))
    else:
        kl = rho * np.log(rho / rh) + (1 - rho) * np.log((1 - rho) / (1 - rh))
    # the L1 term, gamma (1/m) sum |a2| (a2 > 0), and its per-sample delta gamma (times f' below)
    l1_sum, l1_delta = l1 * np.sum(np.abs(a2)), l1 * np.sign(a2)
    if "l1_not_averaged" in mk:
        l1_delta = m * l1_delta
    l1_cost = 0.0 if "l1_missing_from_cost" in mk else l1_sum if "l1_not_averaged" in mk else l1_sum / m
    if "l1_delta_divided_by_m" in mk:
        l1_delta = l1_delta / m
    if "l1_missing_from_backprop" in mk:
        l1_delta = 0.0 * l1_delta
    J = rec + wd + beta * np.sum(kl) + l1_cost

    def fprime(z, a):
        if "fprime_of_z" in mk:
            return z * (1 - z)
        if "fprime_of_activation" in mk:
            return _sigmoid(a) * (1 - _sigmoid(a))
        return a * (1 - a)

    if output == "sigmoid":
        fp3 = 1.0 if "output_delta_missing_fprime" in mk else fprime(z3, a3)
    else:
        fp3 = a3 * (1 - a3) if "sigmoid_fprime_in_linear_decoder" in mk else 1.0
    d3 = (a3 - target) * fp3
    if "reconstruction_summed" in mk:
        d3 = m * d3
    if "kl_reversed" in mk:
        sd = np.log(rh / rho) - np.log((1 - rh) / (1 - rho))
    else:
        sd = -rho / rh + (1 - rho) / (1 - rh)
    if "kl_derivative_sign_flipped" in mk:
        sd = -sd
    if "sparsity_delta_divided_by_m" in mk:
        sd = sd / m
    if "sparsity_missing_from_backprop" in mk:
        sd = 0.0 * sd
    bsd = beta * sd
    if "beta_applied_twice" in mk:
        bsd = beta * bsd
    bsd = bsd[:, None] if wrong_axis else bsd[None, :]
    if "l1_delta_missing_fprime" in mk:
        d2 = (d3 @ W2 + bsd) * fprime(z2, a2) + l1_delta
    else:
        d2 = (d3 @ W2 + bsd + l1_delta) * fprime(z2, a2)

    avg = 1.0 if "gradient_not_averaged" in mk else 1.0 / m
    W1g = avg * (d2.T @ (x if "denoising_clean_input_in_weight_gradient" in mk else xin))
    b1g, W2g, b2g = avg * d2.sum(axis=0), avg * (d3.T @ a2), avg * d3.sum(axis=0)
    lw = lam / m if "weight_decay_divided_by_m" in mk else lam
    if "lambda_applied_twice" in mk:
        lw = 2 * lw
    W1g, W2g = W1g + lw * W1, W2g + (0.0 if "tied_weight_decay_counted_once" in mk else lw) * W2
    if "weight_decay_on_biases" in mk:
        b1g, b2g = b1g + lw * b1, b2g + lw * b2
    if tied:  # the encoder's and the decoder's contributions, summed
        encoder = 0.0 if "tied_encoder_contribution_missing" in mk else W1g
        decoder = 0.0 if "tied_decoder_contribution_missing" in mk else W2g.T
        return float(J), Params(encoder + decoder, b1g, None, b2g)
    return float(J), Params(W1g, b1g, W2g, b2g)


def as_read(grads: Params, packing: str, mistakes=()) -> Params:
    """The gradient as sae-jax reads it back from code with the given mistakes.

    With ``transposed_weight_gradients`` the code computes ``W1grad.T`` (n_visible × n_hidden)
    and packs it in its own ``packing``; unpacking that as ``W1`` (n_hidden × n_visible)
    puts the right numbers in the wrong places.
    """
    if "transposed_weight_gradients" not in mistakes:
        return grads
    W1, b1, W2, b2 = grads
    W1r = W1.T.ravel(order=packing).reshape(W1.shape, order=packing)
    W2r = None if W2 is None else W2.T.ravel(order=packing).reshape(W2.shape, order=packing)
    return Params(W1r, b1, W2r, b2)
