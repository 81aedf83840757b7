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


# --- softmaxCost.m and stackedAECost.m ------------------------------------------------------------
# Transcribed from the UFLDL exercises' MATLAB (column layout: data is inputSize x m, labels are
# MATLAB's 1..numClasses, theta flat and column-major), again with no code shared with sae_jax.


def _ground_truth(labels, num_classes):
    """``full(sparse(labels, 1:m, 1))``: numClasses x m, with MATLAB's 1-based labels."""
    m = labels.shape[0]
    gt = np.zeros((num_classes, m))
    gt[labels - 1, np.arange(m)] = 1.0
    return gt


def softmax_cost(theta, num_classes, input_size, lam, data, labels):
    """``[cost, grad] = softmaxCost(theta, numClasses, inputSize, lambda, data, labels)``."""
    theta = theta.reshape(num_classes, input_size, order="F")
    m = data.shape[1]
    gt = _ground_truth(labels, num_classes)
    M = theta @ data
    M = M - M.max(axis=0, keepdims=True)
    h = np.exp(M)
    h = h / h.sum(axis=0, keepdims=True)
    cost = -1.0 / m * np.sum(gt * np.log(h)) + lam / 2 * np.sum(theta**2)
    thetagrad = -1.0 / m * ((gt - h) @ data.T) + lam * theta
    return cost, thetagrad.ravel(order="F")


def stack2params(stack):
    """``[stack{1}.w(:); stack{1}.b(:); stack{2}.w(:); ...]`` for a list of ``(w, b)``."""
    return np.concatenate([np.concatenate([w.ravel(order="F"), b.ravel()]) for w, b in stack])


def params2stack(params, layer_sizes):
    """Inverse of :func:`stack2params`; ``layer_sizes = [inputSize, h1, h2, ...]`` (UFLDL's netconfig)."""
    stack, pos = [], 0
    for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        w = params[pos : pos + n_out * n_in].reshape(n_out, n_in, order="F")
        pos += n_out * n_in
        b = params[pos : pos + n_out]
        pos += n_out
        stack.append((w, b))
    return stack


def stacked_ae_cost(theta, input_size, hidden_size, num_classes, layer_sizes, lam, data, labels):
    """``[cost, grad] = stackedAECost(theta, inputSize, hiddenSize, numClasses, netconfig, lambda, data, labels)``.

    ``theta = [softmaxTheta(:); stack2params(stack)]``; weight decay on softmaxTheta only.
    """

    def sigm(z):
        return 1.0 / (1.0 + np.exp(-z))

    softmax_theta = theta[: hidden_size * num_classes].reshape(num_classes, hidden_size, order="F")
    stack = params2stack(theta[hidden_size * num_classes :], layer_sizes)
    m = data.shape[1]
    gt = _ground_truth(labels, num_classes)
    depth = len(stack)
    a = [data]
    for w, b in stack:
        a.append(sigm(w @ a[-1] + b[:, None]))
    M = softmax_theta @ a[depth]
    M = M - M.max(axis=0, keepdims=True)
    p = np.exp(M) / np.exp(M).sum(axis=0, keepdims=True)
    cost = -1.0 / m * (gt.ravel(order="F") @ np.log(p.ravel(order="F"))) + lam / 2 * np.sum(softmax_theta**2)
    softmax_theta_grad = -1.0 / m * (gt - p) @ a[depth].T + lam * softmax_theta
    d = [None] * (depth + 1)
    d[depth] = -(softmax_theta.T @ (gt - p)) * a[depth] * (1 - a[depth])
    for layer in range(depth - 1, 0, -1):
        d[layer] = (stack[layer][0].T @ d[layer + 1]) * a[layer] * (1 - a[layer])
    stackgrad = [(d[layer + 1] @ a[layer].T / m, d[layer + 1].sum(axis=1) / m) for layer in range(depth)]
    return cost, np.concatenate([softmax_theta_grad.ravel(order="F"), stack2params(stackgrad)])
