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
# # Check your implementation: `sae-jax check`
#
# A student has ported the UFLDL exercise's `sparseAutoencoderCost` to numpy. Their gradient check
# fails, and they suspect the sparsity delta: ρ̂ⱼ = (1/m) Σᵢ a⁽²⁾ⱼ, so shouldn't the sparsity term in
# δ⁽²⁾ carry a 1/m? They added one. A finite-difference check can only say "wrong";
# `sae_jax.check` runs their function on designed float64 probes (m = 1 and m > 1, β = 0, λ = 0,
# nonzero biases, saturated units), compares with sae-jax's float64 reference, and names the
# mistake by matching their outputs to a catalogue of known mistakes, each run as code.

# %%
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import scipy.io

from sae_jax.check import CATALOGUE, check, check_results, probes, write_cases

work = Path(tempfile.mkdtemp(prefix="sae-check-"))

# %% [markdown]
# ## 1. The student's code, as they wrote it
#
# UFLDL's signature, data as columns, `theta` unpacked the numpy way (row-major `reshape`), and the
# suspicious `/ m` in the sparsity delta.

# %%
student = textwrap.dedent('''
    import numpy as np

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
        hv = hiddenSize * visibleSize
        W1 = theta[:hv].reshape(hiddenSize, visibleSize)
        W2 = theta[hv:2 * hv].reshape(visibleSize, hiddenSize)
        b1 = theta[2 * hv:2 * hv + hiddenSize]
        b2 = theta[2 * hv + hiddenSize:]
        m = data.shape[1]
        rho = sparsityParam

        a2 = sigmoid(W1 @ data + b1[:, None])
        a3 = sigmoid(W2 @ a2 + b2[:, None])
        rho_hat = a2.mean(axis=1)
        cost = (0.5 / m * np.sum((a3 - data) ** 2)
                + lambda_ / 2 * (np.sum(W1 ** 2) + np.sum(W2 ** 2))
                + beta * np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))))

        delta3 = -(data - a3) * a3 * (1 - a3)
        sparsity_delta = (-rho / rho_hat + (1 - rho) / (1 - rho_hat)) / m      # <- "the missing 1/m"
        delta2 = (W2.T @ delta3 + beta * sparsity_delta[:, None]) * a2 * (1 - a2)

        W1grad = delta2 @ data.T / m + lambda_ * W1
        W2grad = delta3 @ a2.T / m + lambda_ * W2
        b1grad = delta2.sum(axis=1) / m
        b2grad = delta3.sum(axis=1) / m
        return cost, np.concatenate([W1grad.ravel(), W2grad.ravel(), b1grad, b2grad])
''')
_ = (work / "student_sae.py").write_text(student)

# %% [markdown]
# ## 2. Check it
#
# `check` reads the convention from the signature (seven parameters: UFLDL's), detects the
# row-major theta packing (from the cost, which depends only on how theta is unpacked), and runs the
# seven sigmoid-decoder probes:

# %%
for p in probes("sigmoid"):
    print(f"{p.name:<24} m={p.m:<3} beta={p.beta:<4g} lam={p.lam:<5g} {p.what}")

# %%
report = check(f"{work / 'student_sae.py'}:sparseAutoencoderCost")
print(report.text)
assert report.match == ("sparsity_delta_divided_by_m",)

# %% [markdown]
# The m = 1 probe agrees (there 1/m = 1, so the extra factor is invisible); at m = 7 and m = 20 only
# ∂J/∂W1 and ∂J/∂b1 differ, and only their sparsity part, by exactly 1/7 and 1/20: the 1/m is applied
# twice. The tutorial's δ⁽²⁾ is m·∂J/∂z⁽²⁾, and the 1/m of ∂ρ̂/∂a is the outer 1/m of the
# averaged weight gradient (README, "The 1/m question"; `python -m derivations`).
#
# ## 3. The same from the command line
#
# Exit status 0 when everything agrees, 1 with a diagnosis, 2 when the code cannot be run.

# %%
cli = [sys.executable, "-m", "sae_jax", "check"]
run = subprocess.run(cli + [f"{work / 'student_sae.py'}:sparseAutoencoderCost"], capture_output=True, text=True)
print("exit status", run.returncode)
print("\n".join(ln for ln in run.stdout.splitlines() if ln.startswith(("FAIL", "Diagnosis"))))
assert run.returncode == 1

# %% [markdown]
# ## 4. The fix, and the check passes

# %%
_ = (work / "student_fixed.py").write_text(student.replace(") / m      # <- \"the missing 1/m\"", ")"))
fixed = check(f"{work / 'student_fixed.py'}:sparseAutoencoderCost")
print(fixed.text.splitlines()[-1])
assert fixed.passed

# %% [markdown]
# ## 5. Any language: probe files and a results file
#
# `sae-jax check --write-cases DIR` writes the probes with their expected outputs as `.mat`, `.npz`
# and `.json`, and a README on producing a results file. Here the MATLAB route is simulated: read
# `cases.mat`, call the function on each sigmoid probe with its column-major `theta`, save
# `results.mat` with one struct per probe. (The student's numpy code unpacks row-major, so it takes
# `theta_rowmajor` and the results hold `grad_rowmajor`.)

# %%
write_cases(work / "cases")
print((work / "cases" / "README.md").read_text().split("MATLAB / Octave:")[0])

# %%
sys.path.insert(0, str(work))
from student_sae import sparseAutoencoderCost  # noqa: E402  (the student's, with the 1/m inside)

cases = scipy.io.loadmat(work / "cases" / "cases.mat", squeeze_me=True, struct_as_record=False)
results = {}
for name, c in cases.items():
    if name.startswith("__") or c.output != "sigmoid":
        continue
    data = np.reshape(c.data, (int(c.visibleSize), -1))  # loadmat squeezes the m = 1 probe
    cost, grad = sparseAutoencoderCost(c.theta_rowmajor, int(c.visibleSize), int(c.hiddenSize),
                                       float(getattr(c, "lambda")), float(c.sparsityParam), float(c.beta), data)
    results[name] = {"cost": cost, "grad_rowmajor": grad}
scipy.io.savemat(work / "results.mat", {"results": results}, oned_as="column")

from_file = check_results(work / "results.mat")
print("\n".join(from_file.text.splitlines()[-14:]))
assert from_file.match == ("sparsity_delta_divided_by_m",)

# %% [markdown]
# ## 6. Tied weights
#
# Next the student ties the decoder to the encoder, W2 = W1ᵀ, so `theta = [W1(:); b1; b2]`, and
# keeps the untied exercise's W1 gradient. `check(..., tied=True)` (`sae-jax check --tied`) runs the
# same probes with W2 dropped against sae-jax's tied reference, where the cost is the untied cost at
# W2 = W1ᵀ (weight decay λ‖W1‖²) and ∂J/∂W1 sums the encoder's and the decoder's contributions.

# %%
tied_student = textwrap.dedent('''
    import numpy as np

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
        hv = hiddenSize * visibleSize
        W1 = theta[:hv].reshape(hiddenSize, visibleSize)
        b1 = theta[hv:hv + hiddenSize]
        b2 = theta[hv + hiddenSize:]
        m = data.shape[1]
        rho = sparsityParam

        a2 = sigmoid(W1 @ data + b1[:, None])
        a3 = sigmoid(W1.T @ a2 + b2[:, None])                                   # W2 = W1.T
        rho_hat = a2.mean(axis=1)
        cost = (0.5 / m * np.sum((a3 - data) ** 2) + lambda_ * np.sum(W1 ** 2)   # both copies of W1
                + beta * np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))))

        delta3 = -(data - a3) * a3 * (1 - a3)
        delta2 = (W1 @ delta3 + beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))[:, None]) * a2 * (1 - a2)
        W1grad = delta2 @ data.T / m + lambda_ * W1                             # <- the untied formula
        return cost, np.concatenate([W1grad.ravel(), delta2.sum(axis=1) / m, delta3.sum(axis=1) / m])
''')
_ = (work / "tied_sae.py").write_text(tied_student)
tied = check(f"{work / 'tied_sae.py'}:sparseAutoencoderCost", tied=True)
print("\n".join(ln for ln in tied.text.splitlines() if ln.startswith(("FAIL", "Diagnosis", "    sigmoid_tied_m7 "))))
assert tied.match == ("tied_decoder_contribution_missing",)

# %% [markdown]
# W1's gradient is exactly the encoder's contribution; the decoder's, ((1/m)δ⁽³⁾ᵀa⁽²⁾ + λW1ᵀ)ᵀ, is
# missing. Adding it, the check passes:

# %%
_ = (work / "tied_fixed.py").write_text(tied_student.replace(
    "lambda_ * W1                             # <- the untied formula",
    "lambda_ * W1 + (delta3 @ a2.T / m + lambda_ * W1.T).T"))
tied_fixed = check(f"{work / 'tied_fixed.py'}:sparseAutoencoderCost", tied=True)
print(tied_fixed.text.splitlines()[-1])
assert tied_fixed.passed

# %% [markdown]
# ## 7. A mistake the catalogue has no name for
#
# Suppose the student divides every sum by m except in W1grad. No catalogued mistake (nor a pair)
# matches, so the Diagnosis line leads with what the evidence shows: which array, which parts, by
# what factor, and the likely cause. ("Nearest variants" appear only when one is within 0.05.)

# %%
_ = (work / "student_w1.py").write_text(student.replace(") / m      # <- \"the missing 1/m\"", ")").replace(
    "W1grad = delta2 @ data.T / m + lambda_ * W1", "W1grad = delta2 @ data.T + lambda_ * W1"))
unnamed = check(f"{work / 'student_w1.py'}:sparseAutoencoderCost")
print("\n".join(ln for ln in unnamed.text.splitlines() if ln.startswith(("FAIL", "Diagnosis", "  No catalogued"))))
assert unnamed.match is None and unnamed.located[0].startswith("W1grad's reconstruction and sparsity parts")

# %% [markdown]
# ## The catalogue
#
# Every mistake below is implemented as a variant of the cost and gradient; diagnosis runs them all
# on the same probes (and pairs of them, if no single one matches) and names the one that equals
# the code under test. Those marked (l1) or (denoising) are candidates when the code implements that
# variant (`check(..., l1=GAMMA)`, `check(..., denoising=True)`; `sae-jax check --l1 GAMMA --denoising`).

# %%
for mk in CATALOGUE:
    print(f"{mk.name:<41} {f'({mk.needs}) ' if mk.needs else ''}{mk.title}")
