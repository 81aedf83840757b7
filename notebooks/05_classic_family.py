# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The classic family: autoencoder variants, softmax regression and stacked autoencoders, derived and checked
#
# Researchers reach for three variants of the sparse autoencoder: **tied weights** (W2 = W1ᵀ),
# **denoising** (a corrupted input, the clean input as target) and an **L1 activation penalty**.
# And after the sparse autoencoder, the UFLDL tutorial goes on to **softmax regression** (a classifier
# for the learned features) and **stacked autoencoders** (two sparse autoencoders trained greedily,
# a softmax on top, then the whole stack *fine-tuned* by backpropagation: the exercise's
# `stackedAECost`). Each has a hand-written gradient in the notes; this notebook shows, as notebook 01
# did for the sparse autoencoder, that sympy derives the same thing exactly, that `sae_jax`'s
# hand-written gradients equal `jax.grad` and finite differences, and what the features are worth
# on labelled digits.
#
# Every formula comes from the `derivations` package and every number from `sae_jax`; nothing is
# re-derived here. The notebook ends with `assert` cells, so running it is a test.

# %%
import time

import jax
import jax.numpy as jnp
import numpy as np
from IPython.display import Markdown, display

import derivations
from derivations import ae_variants, softmax as dsoftmax, stacked as dstacked
from sae_jax.data import load_dataset
from sae_jax.experiments import split
from sae_jax.softmax import SoftmaxParams, accuracy, softmax_cost, softmax_cost_and_grad, softmax_predict, train_softmax
from sae_jax.stacked import StackedParams, stacked_cost, stacked_cost_and_grad

jax.config.update("jax_enable_x64", True)
t_start = time.perf_counter()


def show(d):
    """Render a derivation: each step as LaTeX, then its verdicts."""
    display(Markdown(derivations.render_latex(d)))


# %% [markdown]
# ## 0. The variants of the autoencoder
#
# With tied weights the decoder is the encoder's transpose, so W1 receives **two** contributions:
# the encoder's (1/m)δ⁽²⁾ᵀX̃ + λW1, and the decoder's ((1/m)δ⁽³⁾ᵀA⁽²⁾ + λW2)ᵀ at W2 = W1ᵀ. sympy
# differentiates the tied cost with every entry symbolic and finds exactly that sum; either
# contribution alone (the untied formula for W1, a common slip) is *not* an identity. The L1 term
# γ(1/m)Σᵢ‖a⁽²⁾⁽ⁱ⁾‖₁ adds γ to each sample's δ⁽²⁾ before f′, with the same single 1/m outside
# as the KL term (γ/m inside would be the 1/m question's mistake again). Denoising feeds the
# corrupted X̃ forward and into δ⁽²⁾ᵀX̃ while the target stays the clean X.
# (`sae_jax` represents tied parameters as `Params(W1, b1, None, b2)`; see the Variants guide, docs/guide/variants.md.)

# %%
d_tied = ae_variants.tied_weights(ms=(1, 2))
show(d_tied)
d_l1 = ae_variants.l1_delta(ms=(1, 2))
show(d_l1)
d_denoising = ae_variants.denoising(ms=(1,))
show(d_denoising)
d_variants_numbers = ae_variants.agreement(cases=((2, 2, 3, True), (2, 2, 3, False)))  # tied and untied; `python -m derivations` runs more sizes
show(d_variants_numbers)

# %% [markdown]
# ## 1. Softmax regression
#
# With θ of shape (k, n) (one row per class, no bias, as in the exercise), Z = Xθᵀ and
# P_ij = exp(Z_ij) / Σ_l exp(Z_il), the cost is J = −(1/m) Σᵢ log P_{i,yᵢ} + (λ/2)‖θ‖² and the
# tutorial's gradient is
#
# $$\nabla_\theta J = -\frac1m\,(1\{y\} - P)^\top X + \lambda\theta .$$
#
# sympy differentiates J with every entry of θ and X its own symbol, for every labelling of m
# samples, and the difference from the tutorial's formula is decided to be exactly zero. The same
# holds for the form `sae_jax` evaluates (log-sum-exp, stable for logits of any size).

# %%
show(dsoftmax.exp_derivative())
d_softmax = dsoftmax.identities(ms=(1, 2), n=3, k=3)
show(d_softmax)

# %% [markdown]
# UFLDL remarks that the parameterisation is redundant: subtracting the same vector ψ from every
# θⱼ leaves P unchanged (which is why weight decay is needed for a unique minimiser).

# %%
d_over = dsoftmax.overparameterised()
show(d_over)

# %% [markdown]
# The same gradient, three ways, in float64: the lambdified sympy gradient,
# `sae_jax.softmax.softmax_cost_and_grad` (the tutorial's form, by hand) and `jax.grad` of
# `softmax_cost`.

# %%
d_softmax_numbers = dsoftmax.agreement()
show(d_softmax_numbers)

# %% [markdown]
# And against central finite differences, which share no code with either: a few coordinates of
# θ at a random point with logits of a few tens (printed below).

# %%
rng = np.random.default_rng(0)
x_small = jnp.asarray(rng.normal(size=(5, 4)) * 10.0)
y_small = jnp.asarray([0, 2, 1, 2, 0])
theta = SoftmaxParams(jnp.asarray(rng.normal(size=(3, 4))))
J, g = softmax_cost_and_grad(theta, x_small, y_small, lam=1e-3)
h = 1e-6
fd_errors = []
for j, q in [(0, 0), (1, 3), (2, 1)]:
    e = np.zeros((3, 4))
    e[j, q] = h
    plus = softmax_cost(SoftmaxParams(theta.theta + e), x_small, y_small, lam=1e-3)
    minus = softmax_cost(SoftmaxParams(theta.theta - e), x_small, y_small, lam=1e-3)
    fd = float(plus - minus) / (2 * h)
    fd_errors.append(abs(fd - float(g.theta[j, q])) / max(1.0, abs(fd)))
print("max |logit|:", float(jnp.max(jnp.abs(x_small @ theta.theta.T))))
print("finite differences vs manual, relative:", [f"{v:.1e}" for v in fd_errors])

# %% [markdown]
# ## 2. Stacked autoencoders: the fine-tuning deltas
#
# Two sigmoid layers and a softmax: A⁽²⁾ = f(XW⁽¹⁾ᵀ + b⁽¹⁾), A⁽³⁾ = f(A⁽²⁾W⁽²⁾ᵀ + b⁽²⁾), P = softmax(A⁽³⁾θᵀ),
# J = −(1/m)Σᵢ log P_{i,yᵢ} + (λ/2)‖θ‖² (weight decay on θ only, as in `stackedAECost`). The
# tutorial's backprop:
#
# $$\delta^{(3)} = -\big((1\{y\}-P)\,\theta\big)\odot f'(Z^{(3)}),\qquad
#   \delta^{(2)} = \big(\delta^{(3)} W^{(2)}\big)\odot f'(Z^{(2)}),\qquad
#   \nabla_{W^{(l)}} J = \tfrac1m\,\delta^{(l+1)\top} A^{(l)} .$$
#
# As for the sparse autoencoder, the 1/m sits once, outside: each sample's δ is m times its
# ∂J/∂z. sympy checks every entry exactly at a small size, and the check is not vacuous: three
# plausible mistakes (weight decay on the encoders too, a missing f′, the delta's sign) are each
# caught.

# %%
d_stacked = dstacked.identities(sizes=((1, 2, 2, 2, 2),), labellings=2)
show(d_stacked)
d_controls = dstacked.negative_controls()
show(d_controls)

# %%
d_stacked_numbers = dstacked.agreement(cases=((2, 3, 2, 2, 3),))  # one size here; `python -m derivations` runs three
show(d_stacked_numbers)

# %% [markdown]
# ## 3. Labelled digits: what a softmax gets from raw pixels
#
# `load_dataset("digits", labels=True)` returns scikit-learn's 8×8 digits in [0, 1] with their
# labels 0–9. A softmax trained by L-BFGS on the manual gradient (UFLDL's `softmaxTrain`: λ = 1e-4,
# 100 iterations) on 70 % of them, tested on the rest. The commands `sae-jax probe`,
# `sae-jax self-taught` and `sae-jax stacked` run the full experiments over several seeds (README).

# %%
x, y = load_dataset("digits", labels=True)
train_rows, test_rows = split(len(y), test_fraction=0.3, seed=0)
x_tr, y_tr, x_te, y_te = x[train_rows], y[train_rows], x[test_rows], y[test_rows]
clf = train_softmax(x_tr, y_tr, n_classes=10, lam=1e-4, steps=100)
acc_raw = accuracy(softmax_predict(clf, x_te), y_te)
print(f"softmax on raw pixels: {acc_raw:.3f} held-out accuracy ({len(y_te)} test digits)")

# %% [markdown]
# ## Verdicts

# %%
all_derivations = [d_tied, d_l1, d_denoising, d_variants_numbers, d_softmax, d_over, d_softmax_numbers, d_stacked, d_controls, d_stacked_numbers]
for d in all_derivations:
    print(("PASS " if d.passed else "FAIL ") + d.title)
assert all(d.passed for d in all_derivations)
assert max(fd_errors) < 1e-6, fd_errors
assert acc_raw > 0.9, acc_raw
print(f"notebook ran in {time.perf_counter() - t_start:.1f} s")
