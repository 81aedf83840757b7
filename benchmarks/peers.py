"""Peer implementations of the sparse-autoencoder cost and gradient, for the benchmarks only.

* :func:`numpy_cost_and_grad` is vectorised numpy with the gradient written out by hand,
  the way ports of UFLDL's ``sparseAutoencoderCost.m`` do it: column layout (``data`` is
  ``(n_visible, m)``, one sample per column), ``1 ./ (1 + exp(-z))``, ``bsxfun``-style
  broadcasting of the biases and of the sparsity term.
* :func:`numpy_flat_cost_and_grad` wraps it for ``scipy.optimize.minimize(jac=True)``
  with UFLDL's flat ``theta = [W1(:); W2(:); b1(:); b2(:)]`` (column-major).
* :func:`make_torch_cost_and_grad` is the same cost in PyTorch (rows layout), its gradient
  by ``torch.autograd.grad``. PyTorch is optional (``pip install -e ".[torch]"``):
  :data:`HAVE_TORCH` is False when it is absent and the benchmarks skip this peer.

None of this is imported by ``sae_jax``.
"""

from __future__ import annotations

import numpy as np

import importlib.util

#: PyTorch is optional; it is imported lazily, only when its peer is built.
HAVE_TORCH = importlib.util.find_spec("torch") is not None

__all__ = [
    "HAVE_TORCH",
    "numpy_cost_and_grad",
    "numpy_flat_cost_and_grad",
    "theta_from_arrays",
    "arrays_from_theta",
    "make_torch_cost_and_grad",
]


def numpy_cost_and_grad(W1, b1, W2, b2, data, *, lam, beta, rho):
    """UFLDL's ``sparseAutoencoderCost`` in numpy. ``data`` is ``(n_visible, m)`` (columns are samples).

    Returns ``(cost, (W1grad, b1grad, W2grad, b2grad))`` in the arrays' dtype.
    """
    m = data.shape[1]
    # forward pass
    z2 = W1 @ data + b1[:, None]
    a2 = 1 / (1 + np.exp(-z2))
    z3 = W2 @ a2 + b2[:, None]
    a3 = 1 / (1 + np.exp(-z3))
    rho_hat = np.mean(a2, axis=1)
    # cost
    diff = a3 - data
    cost = (
        0.5 / m * np.sum(diff * diff)
        + lam / 2 * (np.sum(W1 * W1) + np.sum(W2 * W2))
        + beta * np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    )
    # backprop
    delta3 = diff * a3 * (1 - a3)
    sparsity_delta = beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))
    delta2 = (W2.T @ delta3 + sparsity_delta[:, None]) * a2 * (1 - a2)
    W1grad = delta2 @ data.T / m + lam * W1
    W2grad = delta3 @ a2.T / m + lam * W2
    b1grad = np.sum(delta2, axis=1) / m
    b2grad = np.sum(delta3, axis=1) / m
    return cost, (W1grad, b1grad, W2grad, b2grad)


def theta_from_arrays(W1, b1, W2, b2) -> np.ndarray:
    """UFLDL's flat ``theta = [W1(:); W2(:); b1(:); b2(:)]`` (column-major ``(:)``)."""
    return np.concatenate([W1.ravel(order="F"), W2.ravel(order="F"), b1.ravel(), b2.ravel()])


def arrays_from_theta(theta: np.ndarray, n_visible: int, n_hidden: int):
    """Inverse of :func:`theta_from_arrays`: ``(W1, b1, W2, b2)``."""
    n, h = n_visible, n_hidden
    W1 = theta[: h * n].reshape((h, n), order="F")
    W2 = theta[h * n : 2 * h * n].reshape((n, h), order="F")
    b1 = theta[2 * h * n : 2 * h * n + h]
    b2 = theta[2 * h * n + h :]
    return W1, b1, W2, b2


def numpy_flat_cost_and_grad(theta, n_visible, n_hidden, *, lam, beta, rho, data):
    """``(cost, grad_theta)`` for ``scipy.optimize.minimize(..., jac=True)``; ``data`` is ``(n_visible, m)``."""
    W1, b1, W2, b2 = arrays_from_theta(theta, n_visible, n_hidden)
    cost, (gW1, gb1, gW2, gb2) = numpy_cost_and_grad(W1, b1, W2, b2, data, lam=lam, beta=beta, rho=rho)
    return float(cost), theta_from_arrays(gW1, gb1, gW2, gb2)


def make_torch_cost_and_grad(W1, b1, W2, b2, x, *, lam, beta, rho):
    """A zero-argument callable computing ``(cost, grads)`` with PyTorch autograd on the CPU.

    Arguments are numpy arrays (rows layout: ``x`` is ``(m, n_visible)``); they are copied to
    torch tensors once, here, outside the timed call.
    """
    if not HAVE_TORCH:
        raise RuntimeError("PyTorch is not installed (pip install torch==2.13.0)")
    import torch

    t = {k: torch.from_numpy(np.array(v, copy=True, order="C")).requires_grad_(True) for k, v in
         dict(W1=W1, b1=b1, W2=W2, b2=b2).items()}
    xt = torch.from_numpy(np.array(x, copy=True, order="C"))
    m = x.shape[0]

    def cost_and_grad():
        z2 = xt @ t["W1"].T + t["b1"]
        a2 = torch.sigmoid(z2)
        z3 = a2 @ t["W2"].T + t["b2"]
        a3 = torch.sigmoid(z3)
        rho_hat = a2.mean(dim=0)
        J = (
            0.5 * torch.sum((a3 - xt) ** 2) / m
            + lam / 2 * (torch.sum(t["W1"] ** 2) + torch.sum(t["W2"] ** 2))
            + beta * torch.sum(rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat)))
        )
        grads = torch.autograd.grad(J, [t["W1"], t["b1"], t["W2"], t["b2"]])
        return J.detach(), grads

    return cost_and_grad
