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
# # Training on natural images: the UFLDL exercise, smaller
#
# The exercise trains 25 hidden units on 10,000 whitened 8×8 natural-image patches with 400
# iterations of L-BFGS and shows the learned filters: localized, oriented edge detectors.
# This notebook runs the same pipeline at a size that executes in seconds (3,000 patches,
# 150 iterations; `sae-jax train` runs the full exercise), then checks (the manual gradient vs
# `jax.grad` is in `02_gradient_check`; `tests/test_training.py` checks both drive the same trajectory):
#
# * the cost decreases and ρ̂ ends near ρ = 0.01;
# * a run cut in two and resumed from its checkpoint is bit-identical to an uninterrupted one.
#
# Everything comes from `sae_jax`: `data.natural_image_patches` (1/f-whitened photographs bundled
# with scikit-image), `training.train` (jitted L-BFGS: optax's algorithm and zoom line search, the
# direction computed in the compact matrix form by `sae_jax.optim.lbfgs`), and `display.tile_filters`
# (the tutorial's `display_network`).

# %%
import jax

jax.config.update("jax_enable_x64", True)

import dataclasses
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from sae_jax.data import natural_image_patches
from sae_jax.display import tile_filters
from sae_jax.training import TrainConfig, train

x = natural_image_patches(3_000, 8, seed=0)
print(x.shape, x.min(), x.max())

# %% [markdown]
# ## L-BFGS, the tutorial's hyperparameters

# %%
config = TrainConfig(steps=150, chunk=25)  # 25 hidden, rho=0.01, lam=1e-4, beta=3, float64, manual gradient
result = train(x, config)
for row in result.metrics:
    print(f"step {row['step']:4d}  cost {row['cost']:.5f}  recon {row['reconstruction']:.5f}  "
          f"sparsity {row['sparsity']:.5f}  rho_hat mean {row['rho_hat_mean']:.4f}")
print(f"compile {result.compile_s:.1f} s, training {result.train_s:.1f} s")

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
ax0.imshow(tile_filters(np.asarray(result.params.W1)), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
ax0.set_title("learned filters (rows of W1)")
ax0.set_axis_off()
steps = [r["step"] for r in result.metrics]
ax1.semilogy(steps, [r["cost"] for r in result.metrics], label="cost")
ax1.semilogy(steps, [r["reconstruction"] for r in result.metrics], label="reconstruction")
ax1.semilogy(steps, [r["sparsity"] for r in result.metrics], label="sparsity")
ax1.set_xlabel("L-BFGS iteration")
ax1.legend()
plt.show()

# %%
first, last = result.metrics[0], result.metrics[-1]
assert last["cost"] < 0.02 * first["cost"]
assert abs(last["rho_hat_mean"] - 0.01) < 0.005

# %% [markdown]
# ## Resume is bit-identical
#
# Train 30 iterations in one go; train 12, stop (the checkpoint holds parameters, L-BFGS memory,
# line-search state, step and RNG), resume to 30. The parameters are equal bit for bit.

# %%
short = dataclasses.replace(config, steps=30)
p_straight = train(x, short).params
with tempfile.TemporaryDirectory() as d:
    train(x, dataclasses.replace(short, steps=12), run_dir=d, pictures=False)
    resumed = train(x, short, run_dir=d, resume=True, pictures=False)
same = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(resumed.params, p_straight))
print("bit-identical after resume:", same)
assert same
