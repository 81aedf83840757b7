r"""The tutorial's backpropagation, vectorised and jit-compiled, and the autodiff reference.

With samples as rows (:mod:`sae_jax.params`), the UFLDL equations read

.. math::
    \delta^{(3)} &= (\hat x - x) \odot g'(z^{(3)})
        \qquad (g' = a^{(3)}(1-a^{(3)}) \text{ for a sigmoid output, } 1 \text{ for a linear one}) \\
    \delta^{(2)} &= \Big( \delta^{(3)} W_2
        + \underbrace{\beta \big( -\tfrac{\rho}{\hat\rho} + \tfrac{1-\rho}{1-\hat\rho} \big)}_{\texttt{sparsity\_delta}} \Big)
        \odot f'(z^{(2)}) \\
    \frac{\partial J}{\partial W_1} &= \frac{1}{m} \delta^{(2)\top} x + \lambda W_1, \qquad
    \frac{\partial J}{\partial b_1} = \frac{1}{m} \sum_i \delta^{(2)(i)} \\
    \frac{\partial J}{\partial W_2} &= \frac{1}{m} \delta^{(3)\top} a^{(2)} + \lambda W_2, \qquad
    \frac{\partial J}{\partial b_2} = \frac{1}{m} \sum_i \delta^{(3)(i)}

(UFLDL's column-layout :math:`\frac1m \delta^{(2)} x^\top` is the same array.)

**The 1/m question.** The sparsity term in :math:`\delta^{(2)}` carries no
:math:`1/m`, although :math:`\partial\hat\rho_j / \partial a^{(2)}_j(x^{(i)}) = 1/m`.
That is not a missing factor: :math:`\delta^{(2)(i)}` is *m times*
:math:`\partial J / \partial z^{(2)}(x^{(i)})`, for the reconstruction part (whose
:math:`1/m` is also left out of :math:`\delta^{(3)}`) and the sparsity part alike,
and the single :math:`1/m` that averages :math:`\delta^{(2)\top} x` is exactly the
:math:`1/m` of :math:`\partial\hat\rho/\partial a`. The tests check this gradient
against ``jax.grad``, finite differences and (in ``derivations/``) sympy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import validate
from .cost import CostTerms, _cost_terms, reconstruction, rho_hat, safe_rho_hat, sparsity, weight_decay
from .forward import Output, _forward as forward, sigmoid_prime  # unchecked: inputs checked here
from .params import Params

__all__ = [
    "sparsity_delta",
    "output_delta",
    "hidden_delta",
    "weight_gradients",
    "cost_and_grad",
    "cost_terms_and_grad",
    "autodiff_cost_and_grad",
]


def sparsity_delta(rho_hat: jax.Array, *, rho: ArrayLike, beta: ArrayLike) -> jax.Array:
    r"""The sparsity term added to every sample's hidden delta: :math:`\beta\left(-\frac{\rho}{\hat\rho_j} + \frac{1-\rho}{1-\hat\rho_j}\right)`.

    This is :math:`m \cdot \partial(\beta \sum_k \mathrm{KL}(\rho\Vert\hat\rho_k)) / \partial a^{(2)}_j(x^{(i)})`:
    the derivative of the penalty with respect to :math:`\hat\rho_j`, without the
    :math:`1/m` of :math:`\partial\hat\rho_j/\partial a^{(2)}_j`, which the weight
    gradient's average supplies. Where :math:`\hat\rho_j` is outside
    :math:`(\epsilon, 1-\epsilon)` it is 0, matching the cost's
    :func:`~sae_jax.cost.safe_rho_hat` (never inf or NaN).

    Args:
      rho_hat: ``(n_hidden,)`` mean hidden activations.
      rho: target activation, scalar.
      beta: sparsity weight, scalar.

    Returns:
      ``(n_hidden,)``.
    """
    dtype = rho_hat.dtype
    rho = jnp.asarray(rho, dtype)
    beta = jnp.asarray(beta, dtype)
    rh, inside = safe_rho_hat(rho_hat)
    return jnp.where(inside, beta * (-rho / rh + (1 - rho) / (1 - rh)), jnp.zeros((), dtype))


def output_delta(x_hat: jax.Array, x: jax.Array, *, output: Output = "sigmoid") -> jax.Array:
    r""":math:`\delta^{(3)} = (\hat x - x) \odot g'(z^{(3)})`, shape ``(m, n_visible)`` (no :math:`1/m`)."""
    if output == "sigmoid":
        return (x_hat - x) * sigmoid_prime(x_hat)
    if output == "linear":
        return x_hat - x
    validate.check_output(output)
    raise AssertionError("unreachable")


def hidden_delta(delta3: jax.Array, W2: jax.Array, a2: jax.Array, sparsity_delta: jax.Array) -> jax.Array:
    r""":math:`\delta^{(2)} = (\delta^{(3)} W_2 + \texttt{sparsity\_delta}) \odot f'(z^{(2)})`, shape ``(m, n_hidden)``."""
    return (delta3 @ W2 + sparsity_delta[None, :]) * sigmoid_prime(a2)


def _terms(params: Params, x, acts, *, lam, beta, rho) -> CostTerms:
    # The cost's terms, as cost.terms_from_activations computes them, except that the
    # reconstruction is written reconstruction(x, x_hat): the same value bit for bit
    # ((x - x_hat)^2 == (x_hat - x)^2 exactly), but XLA no longer shares one (m, n) array
    # x_hat - x between the cost and delta3, so it fuses each difference into its consumer
    # instead of writing it out and reading it back (6-9 % at 784x196x10k; benchmarks/NOTES.md).
    rh = rho_hat(acts.a2)
    rec = reconstruction(x, acts.a3)
    wd = weight_decay(params, lam=lam)
    sp = sparsity(rh, rho=rho, beta=beta)
    return CostTerms(rec + wd + sp, rec, wd, sp, rh)


def weight_gradients(params: Params, x, a2, delta2, delta3, *, lam) -> Params:
    r"""The averaged gradient from the deltas, with the one :math:`1/m`.

    .. math::
        \frac1m \delta^{(2)\top} x + \lambda W_1, \quad \frac1m \sum_i \delta^{(2)(i)}, \quad
        \frac1m \delta^{(3)\top} a^{(2)} + \lambda W_2, \quad \frac1m \sum_i \delta^{(3)(i)}
    """
    m = x.shape[0]
    lam = jnp.asarray(lam, params.W1.dtype)
    return Params(
        W1=(delta2.T @ x) / m + lam * params.W1,
        b1=jnp.sum(delta2, axis=0) / m,
        W2=(delta3.T @ a2) / m + lam * params.W2,
        b2=jnp.sum(delta3, axis=0) / m,
    )


def _cost_terms_and_grad(params: Params, x, *, lam, beta, rho, output="sigmoid"):
    acts = forward(params, x, output=output)
    terms = _terms(params, x, acts, lam=lam, beta=beta, rho=rho)
    delta3 = output_delta(acts.a3, x, output=output)
    delta2 = hidden_delta(delta3, params.W2, acts.a2, sparsity_delta(terms.rho_hat, rho=rho, beta=beta))
    return terms, weight_gradients(params, x, acts.a2, delta2, delta3, lam=lam)


_cost_terms_and_grad_jit = jax.jit(_cost_terms_and_grad, static_argnames=("output",))


def _cost_and_grad(params, x, *, lam, beta, rho, output="sigmoid"):
    terms, grads = _cost_terms_and_grad(params, x, lam=lam, beta=beta, rho=rho, output=output)
    return terms.cost, grads


_cost_and_grad_jit = jax.jit(_cost_and_grad, static_argnames=("output",))


def cost_and_grad(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
) -> tuple[jax.Array, Params]:
    r"""Cost and gradient by the tutorial's backprop; a drop-in for ``jax.value_and_grad(cost)``.

    Same arguments as :func:`sae_jax.cost` and the same result structure as
    ``jax.value_and_grad(cost)(params, x, lam=..., beta=..., rho=..., output=...)``:
    ``(J, Params(dW1, db1, dW2, db2))``. jit-compiled (``output`` static;
    hyperparameters traced, so a sweep over them compiles once). Inputs are
    checked as :func:`sae_jax.cost` checks them.

    Examples:
      >>> import jax
      >>> from sae_jax import init_params, cost, cost_and_grad
      >>> p = init_params(jax.random.key(0), 64, 25)
      >>> x = jax.random.uniform(jax.random.key(1), (100, 64))
      >>> hp = dict(lam=1e-4, beta=3.0, rho=0.01)
      >>> J, g = cost_and_grad(p, x, **hp)
      >>> J_ad, g_ad = jax.value_and_grad(cost)(p, x, **hp)
      >>> bool(jax.numpy.allclose(g.W1, g_ad.W1, rtol=1e-4, atol=1e-7))
      True
    """
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output)
    return _cost_and_grad_jit(params, x, lam=lam, beta=beta, rho=rho, output=output)


def cost_terms_and_grad(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
):
    """Like :func:`cost_and_grad` but returns ``(CostTerms, grads)``, as ``jax.value_and_grad(..., has_aux=True)`` would allow; for logging."""
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output)
    return _cost_terms_and_grad_jit(params, x, lam=lam, beta=beta, rho=rho, output=output)


def _autodiff_cost_and_grad(params, x, *, lam, beta, rho, output="sigmoid"):
    return jax.value_and_grad(lambda p: _cost_terms(p, x, lam=lam, beta=beta, rho=rho, output=output).cost)(
        params
    )


_autodiff_cost_and_grad_jit = jax.jit(_autodiff_cost_and_grad, static_argnames=("output",))


def autodiff_cost_and_grad(
    params: Params,
    x: jax.Array,
    *,
    lam: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    output: Output = "sigmoid",
) -> tuple[jax.Array, Params]:
    """The reference: ``jax.value_and_grad(cost)``, jit-compiled, with the same checks and signature as :func:`cost_and_grad`."""
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output)
    return _autodiff_cost_and_grad_jit(params, x, lam=lam, beta=beta, rho=rho, output=output)
