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
# # Gradient check: the tutorial's backprop vs `jax.grad` vs finite differences
#
# The UFLDL exercise asks you to check your backprop numerically before training. Here the
# claim is checked three ways, in float64, on every device JAX sees:
#
# 1. **manual vs autodiff** — `sae_jax.cost_and_grad` (the tutorial's δ⁽³⁾, δ⁽²⁾ with the sparsity
#    term and *no* 1/m in it) against `jax.value_and_grad(sae_jax.cost)`: the same math summed in
#    another order, so they agree to ~1e-12;
# 2. **vs finite differences** — five-point central differences along random directions
#    (`sae_jax.gradcheck.gradcheck`), truncation O(h⁴), step h = ε^(1/5); each direction's error is
#    divided by ‖∇ₚJ‖·‖v‖ (never by the directional derivative, which can be ~0), and each row shows
#    its rounding floor 1.5·ε·|J|/(h‖∇ₚJ‖);
# 3. **`jax.test_util.check_grads`** on the cost itself (first and second order, reverse mode).
#
# Everything is imported from `sae_jax`; nothing is redefined here. Small sizes: 8×8 natural
# patches (64 visible), 25 hidden, 500 samples.

# %%
import jax

jax.config.update("jax_enable_x64", True)  # finite differences need float64

import functools

import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

import sae_jax as sae
from sae_jax.data import natural_image_patches
from sae_jax.gradcheck import format_table, gradcheck

print("devices:", jax.devices())

# %%
x = jnp.asarray(natural_image_patches(500, 8, seed=0))  # (500, 64) in [0.1, 0.9]
params = sae.init_params(jax.random.key(0), 64, 25, dtype=jnp.float64)
# nonzero biases so their gradients are exercised away from the initial point
params = params._replace(b1=0.1 * jnp.arange(25.0) / 25, b2=-0.05 * jnp.ones(64))
hp = dict(lam=1e-4, beta=3.0, rho=0.01)
x.shape, float(sae.cost(params, x, **hp))

# %% [markdown]
# ## 1. Manual backprop vs `jax.value_and_grad`

# %%
J_m, g_m = sae.cost_and_grad(params, x, **hp)
autodiff = jax.jit(jax.value_and_grad(sae.cost))  # jax.grad of the cost, compiled once (hyperparameters traced)
J_a, g_a = autodiff(params, x, **hp)
rel = {k: float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) for k, a, b in zip(sae.Params._fields, g_m, g_a)}
print(f"cost: manual {float(J_m):.15f}  autodiff {float(J_a):.15f}")
for k, v in rel.items():
    print(f"  d{k}: max relative difference {v:.2e}")
assert max(rel.values()) < 1e-10

# %% [markdown]
# ## 2. Finite differences, on every device

# %%
rows = gradcheck(params, x, **hp, key=jax.random.key(1), n_directions=1)
print(format_table(rows))
worst_fd = max(max(r.manual_vs_fd, r.autodiff_vs_fd) for r in rows if r.array != "cost")
worst_ad = max(r.manual_vs_autodiff for r in rows)
print(f"worst manual-vs-autodiff {worst_ad:.1e}, worst vs finite differences {worst_fd:.1e}")
assert worst_ad < 1e-10 and worst_fd < 1e-7

# %% [markdown]
# ## 3. `jax.test_util.check_grads` on the cost (orders 1 and 2)

# %%
x_small = x[:50]
check_grads(jax.jit(functools.partial(sae.cost, x=x_small, **hp)), (params,), order=2, modes=("rev",))
print("check_grads passed (order 2, reverse mode)")

# %% [markdown]
# ## The sparsity term carries no 1/m, and it is right
#
# The difference between the gradients at β = 3 and at β = 0 (λ = 0) is the sparsity penalty's
# part alone. Manual and autodiff agree on it too, although the manual code adds
# `sparsity_delta` to every sample's δ⁽²⁾ without dividing by m (see `sae_jax/_src/backprop.py`).

# %%
_, g3 = sae.cost_and_grad(params, x, lam=0.0, beta=3.0, rho=0.01)
_, g0 = sae.cost_and_grad(params, x, lam=0.0, beta=0.0, rho=0.01)
_, a3 = autodiff(params, x, lam=0.0, beta=3.0, rho=0.01)
_, a0 = autodiff(params, x, lam=0.0, beta=0.0, rho=0.01)
d_manual = g3.W1 - g0.W1
d_auto = a3.W1 - a0.W1
err = float(jnp.max(jnp.abs(d_manual - d_auto)) / jnp.max(jnp.abs(d_auto)))
print(f"sparsity part of dJ/dW1: max |manual - autodiff| / max|autodiff| = {err:.1e}")
assert err < 1e-10
