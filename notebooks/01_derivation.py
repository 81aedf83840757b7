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
# # The sparsity gradient and the 1/m question, derived by sympy
#
# The UFLDL / CS294A tutorial adds β(−ρ/ρ̂ⱼ + (1−ρ)/(1−ρ̂ⱼ))·f′(z⁽²⁾ⱼ) to **each sample's** hidden delta δ⁽²⁾,
# with no 1/m, although ρ̂ⱼ = (1/m)Σᵢ a⁽²⁾ⱼ(x⁽ⁱ⁾), so ∂ρ̂ⱼ/∂a⁽²⁾ⱼ(x⁽ⁱ⁾) = 1/m. Is the tutorial off by a factor m?
#
# **No.** The tutorial's δ⁽²⁾ is not ∂J/∂z⁽²⁾ per sample but *m times* it — for the reconstruction part
# as much as for the sparsity part — and the 1/m from ρ̂ is the same 1/m that averages the weight gradient
# ∂J/∂W1 = (1/m)Σᵢ δ⁽²⁾⁽ⁱ⁾x⁽ⁱ⁾ᵀ + λW1.
#
# This notebook walks from the cost to that answer. Every formula below comes from the `derivations`
# package; nothing is re-derived here. Each step is tagged with who produced it:
# *definition*, *derived by sympy*, *substitution (checked)*, or *stated by hand (checked below)* —
# a formula typed by hand is never presented as derived, it is compared with sympy's result.
# The notebook ends with `assert` cells, so running it is a test.

# %%
import time

import sympy as sp
from IPython.display import Markdown, display

import derivations
from derivations import concrete, numeric, symbolic_m, variant

t_start = time.perf_counter()
print("sympy", sp.__version__)


def show(d):
    """Render a derivation: each step as LaTeX, then its verdicts."""
    display(Markdown(derivations.render_latex(d)))


# %% [markdown]
# ## 1. The cost, for symbolic m, n, h
#
# Samples are rows (as in `sae_jax`): x[i, s] is visible unit s of sample i, z[i, j] the hidden
# pre-activation of unit j on sample i, f the sigmoid (kept opaque, with derivative f′), and for the
# sigmoid output layer x̂ = f(z3). ρ̂ⱼ = (1/m)Σᵢ f(z[i, j]).

# %%
J = symbolic_m.cost_of_params("sigmoid")
display(Markdown(f"$$J = {sp.latex(symbolic_m.abbreviate(J))}$$"))
display(Markdown("with " + symbolic_m.ABBREVIATIONS))

# %% [markdown]
# ## 2. The sigmoid's derivative
#
# At concrete sizes the sigmoid is an opaque f whose only rule is f′ = f(1 − f); here is why that rule is right.

# %%
show(concrete.sigmoid_derivative())

# %% [markdown]
# ## 3. The sparsity term, per sample
#
# sympy differentiates β Σⱼ KL(ρ‖ρ̂ⱼ) with respect to one hidden pre-activation z[k, p]. The
# Kronecker deltas are summed out, and the one step sympy cannot find by itself,
# Σᵢ f(z[i, p]) = m·ρ̂ₚ, is substituted — only where the sum *is* that definition.

# %%
sparsity = symbolic_m.sparsity_wrt_z()
show(sparsity)

# %% [markdown]
# So ∂(βΣKL)/∂z[k, p] carries a 1/m — the questioner is right about that. But the tutorial's δ⁽²⁾ is not
# ∂J/∂z: the whole per-sample gradient is δ⁽²⁾/m, reconstruction part included.

# %%
per_sample = symbolic_m.cost_wrt_z("sigmoid")
show(per_sample)

# %% [markdown]
# ## 4. The weight gradient, through both layers
#
# Differentiating J itself with respect to W1[p, q] gives the tutorial's formula, and m·(∂J/∂W1 − λW1)
# has no 1/m left in any term: the 1/m is the common factor of the averaged gradient.

# %%
weights, dJ_dW1 = symbolic_m.cost_wrt_W1("sigmoid")
show(weights)

# %% [markdown]
# ## 5. The questioner's variant
#
# Putting the 1/m inside δ⁽²⁾ **and** keeping the outer 1/m counts it twice: the sparsity part of the
# gradient comes out m times too small. sympy shows it for symbolic m; at concrete sizes the difference is
# exactly (1 − 1/m) × the sparsity part (zero only at m = 1); and a finite-difference check of
# `sae_jax.cost` accepts the tutorial's gradient and rejects the variant.

# %%
variant_symbolic = variant.symbolic("sigmoid")
show(variant_symbolic)

# %%
variant_exact = variant.concrete_sizes((1, 2, 3), n=2, h=2)
variant_numeric = variant.numeric(n=6, h=4, m=10)
show(variant_exact)
show(variant_numeric)

# %% [markdown]
# ## 6. Exact identities at concrete sizes, and the three-way numeric check
#
# With every entry of W1, b1, W2, b2 and x a separate symbol (ρ, β, λ symbolic too), sympy's gradient
# minus the tutorial's is exactly 0. The notebook checks m = 1…3 (n = h = 2) to stay fast;
# `python -m derivations` checks m = 1…5. Then the lambdified sympy gradient, `sae_jax.cost_and_grad` and
# `jax.grad(sae_jax.cost)` agree in float64.

# %%
exact = concrete.identities(range(1, 4), n=2, h=2)
display(Markdown(derivations.render_latex(exact, show_steps=False)))
agree = numeric.agreement(((2, 2, 3, "sigmoid"), (2, 2, 3, "linear")))
display(Markdown(derivations.render_latex(agree, show_steps=False)))

# %% [markdown]
# ## 7. Checks
#
# Every claim above, as an assertion.

# %%
m, p, q, k = symbolic_m.m, symbolic_m.p, symbolic_m.q, symbolic_m.k
assert concrete.sigmoid_derivative().passed
assert sparsity.passed and per_sample.passed and weights.passed
# the tutorial's sparsity term is exactly m × ∂(βΣKL)/∂z[k, p]
ratio = next(s.rhs for s in sparsity.steps if s.title.startswith("ratio"))
assert ratio == 1 / m
# ∂J/∂W1 equals the tutorial's formula for symbolic m (sympy expressions compared, not strings)
assert symbolic_m.equal(dJ_dW1, symbolic_m.tutorial_W1("sigmoid"))
# the variant's sparsity gradient is m times too small, and finite differences catch it
assert variant_symbolic.passed and variant_exact.passed and variant_numeric.passed
assert next(s.rhs for s in variant_symbolic.steps if s.title.startswith("sympy's sparsity gradient")) == m
assert exact.passed and agree.passed
print(f"all checks hold ({time.perf_counter() - t_start:.1f} s)")
