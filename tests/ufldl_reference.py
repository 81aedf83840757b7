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


def variant_autoencoder_cost(
    theta, visible_size, hidden_size, lam, sparsity_param, beta, data,
    *, tied=False, l1=0.0, data_input=None, linear=False,
):
    """The variants of issue 15 in the same column layout, written from their definitions.

    ``tied``: ``theta = [W1(:); b1(:); b2(:)]`` and the decoder uses W1' (weight decay at the
    untied point: (lam/2)(||W1||^2 + ||W1'||^2)); ``l1``: + l1 * (1/m) sum_i ||a2_i||_1;
    ``data_input``: the corrupted input the network reads (``data`` is the clean target).
    Returns ``(cost, grad)`` with ``grad`` laid out like ``theta``.
    """
    hv = hidden_size * visible_size
    W1 = theta[:hv].reshape(hidden_size, visible_size, order="F")
    if tied:
        W2 = W1.T
        b1 = theta[hv : hv + hidden_size]
        b2 = theta[hv + hidden_size :]
    else:
        W2 = theta[hv : 2 * hv].reshape(visible_size, hidden_size, order="F")
        b1 = theta[2 * hv : 2 * hv + hidden_size]
        b2 = theta[2 * hv + hidden_size :]
    inp = data if data_input is None else data_input
    m = data.shape[1]
    a2 = 1.0 / (1.0 + np.exp(-(W1 @ inp + b1[:, None])))
    z3 = W2 @ a2 + b2[:, None]
    a3 = z3 if linear else 1.0 / (1.0 + np.exp(-z3))
    rho, rho_hat = sparsity_param, a2.mean(axis=1)
    kl = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    cost = (
        np.sum((a3 - data) ** 2) / (2 * m)
        + (lam / 2) * (np.sum(W1**2) + np.sum(W2**2))
        + beta * kl
        + l1 * np.sum(np.abs(a2)) / m
    )
    delta3 = (a3 - data) * (1.0 if linear else a3 * (1 - a3))
    sparsity_delta = beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))
    # d|a|/da = sign(a) (sign(0) = 0), per sample
    delta2 = (W2.T @ delta3 + sparsity_delta[:, None] + l1 * np.sign(a2)) * a2 * (1 - a2)
    W1grad = delta2 @ inp.T / m + lam * W1
    W2grad = delta3 @ a2.T / m + lam * W2
    b1grad, b2grad = delta2.sum(axis=1) / m, delta3.sum(axis=1) / m
    if tied:  # d/dW1 of W2 = W1': the decoder's gradient, transposed, adds to the encoder's
        return cost, np.concatenate([(W1grad + W2grad.T).ravel(order="F"), b1grad, b2grad])
    return cost, np.concatenate([W1grad.ravel(order="F"), W2grad.ravel(order="F"), b1grad, b2grad])
