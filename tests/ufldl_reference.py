"""An independent NumPy transcription of UFLDL's ``sparseAutoencoderCost.m``.

Written from the exercise's MATLAB solution structure, in UFLDL's own column
layout (``data`` is visibleSize x m) and flat ``theta``, with no code shared
with sae_jax, so agreement is evidence about the layout conversion and the
formulas, not a tautology.
"""

import numpy as np


def sparse_autoencoder_cost(theta, visible_size, hidden_size, lam, sparsity_param, beta, data, linear=False):
    hv = hidden_size * visible_size
    W1 = theta[:hv].reshape(hidden_size, visible_size, order="F")
    W2 = theta[hv : 2 * hv].reshape(visible_size, hidden_size, order="F")
    b1 = theta[2 * hv : 2 * hv + hidden_size]
    b2 = theta[2 * hv + hidden_size :]
    m = data.shape[1]

    def sigm(z):
        return 1.0 / (1.0 + np.exp(-z))

    z2 = W1 @ data + b1[:, None]
    a2 = sigm(z2)
    z3 = W2 @ a2 + b2[:, None]
    a3 = z3 if linear else sigm(z3)
    rho_hat = a2.sum(axis=1) / m
    rho = sparsity_param
    kl = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    cost = (
        (0.5 / m) * np.sum((a3 - data) ** 2)
        + (lam / 2) * (np.sum(W1**2) + np.sum(W2**2))
        + beta * kl
    )
    delta3 = -(data - a3) * (1.0 if linear else a3 * (1 - a3))
    sparsity_delta = -rho / rho_hat + (1 - rho) / (1 - rho_hat)
    delta2 = (W2.T @ delta3 + beta * sparsity_delta[:, None]) * a2 * (1 - a2)
    W1grad = delta2 @ data.T / m + lam * W1
    W2grad = delta3 @ a2.T / m + lam * W2
    b1grad = delta2.sum(axis=1) / m
    b2grad = delta3.sum(axis=1) / m
    grad = np.concatenate([W1grad.ravel(order="F"), W2grad.ravel(order="F"), b1grad, b2grad])
    return cost, grad
