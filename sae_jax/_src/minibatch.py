r"""The sparsity penalty on minibatches: the batch estimate of :math:`\hat\rho`, or a running (EMA) one.

On a minibatch :math:`B` of size :math:`b`, the plain cost (:func:`sae_jax.cost` applied to the
batch) uses the *batch estimate* :math:`\hat\rho^B_j = \frac1b \sum_{i \in B} a^{(2)}_j(x^{(i)})`.
Its KL penalty is a biased, noisy estimate of the full-data penalty (KL is convex in
:math:`\hat\rho`, and with :math:`\rho = 0.01` and small batches :math:`\hat\rho^B` is very noisy).
That is what ``rho_hat="batch"`` trains (the default, and the only choice with full-batch L-BFGS,
where the "batch" is all the data and the estimate is exact).

``rho_hat="ema"`` instead penalises a running estimate carried between steps,

.. math::
    \hat\rho^{\text{ema}}_t = \alpha \, \operatorname{sg}(\hat\rho^{\text{ema}}_{t-1})
        + (1 - \alpha) \, \hat\rho^B_t,
    \qquad
    J_t = \frac1b \sum_{i\in B} \tfrac12 \lVert \hat x^{(i)} - x^{(i)} \rVert^2
        + \frac\lambda2 (\lVert W_1\rVert^2 + \lVert W_2\rVert^2)
        + \beta \sum_j \mathrm{KL}(\rho \Vert \hat\rho^{\text{ema}}_{t,j}),

with :math:`\operatorname{sg}` = ``stop_gradient`` (the past is a constant) and
:math:`\alpha` = ``ema_decay``. The gradient flows only through the batch term, so in the
tutorial's backprop the sparsity term of :math:`\delta^{(2)}` becomes

.. math::
    (1 - \alpha) \, \beta \left( -\frac{\rho}{\hat\rho^{\text{ema}}_j}
        + \frac{1-\rho}{1-\hat\rho^{\text{ema}}_j} \right),

the derivative *at the running estimate*, times :math:`1-\alpha`. :math:`\alpha = 0` is the batch
estimate exactly. The running estimate returned in :attr:`CostTerms.rho_hat` becomes the next
step's :math:`\hat\rho^{\text{ema}}_{t-1}`. :func:`ema_cost_terms_and_grad` (manual) and
:func:`autodiff_ema_cost_terms_and_grad` (``jax.value_and_grad``) are tested equal.

The manual gradient is the package's one backprop core (:func:`sae_jax._src.backprop.backprop` with
``rho_prev``/``ema_decay``); this module adds only the running estimate.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax import init_params
  >>> from sae_jax._src.minibatch import EmaBatch, ema_cost_terms_and_grad, autodiff_ema_cost_terms_and_grad
  >>> p = init_params(jax.random.key(0), 4, 2)
  >>> batch = EmaBatch(jnp.full((3, 4), 0.5), rho_prev=jnp.full((2,), 0.1))
  >>> hp = dict(lam=1e-4, beta=3.0, rho=0.1, ema_decay=0.9)
  >>> t, g = ema_cost_terms_and_grad(p, batch, **hp)
  >>> t_ad, g_ad = autodiff_ema_cost_terms_and_grad(p, batch, **hp)
  >>> bool(jnp.allclose(g.W1, g_ad.W1, atol=1e-6)), t.rho_hat.shape
  (True, (2,))
"""

from __future__ import annotations

from typing import NamedTuple

import jax
from jax.typing import ArrayLike

from .backprop import backprop
from .cost import CostTerms, running_estimate, terms_from_activations
from .forward import Output, forward
from .params import Params

__all__ = [
    "EmaBatch",
    "ema_rho_hat",
    "ema_cost_terms",
    "ema_cost_terms_and_grad",
    "autodiff_ema_cost_terms_and_grad",
]


class EmaBatch(NamedTuple):
    """A minibatch and the running estimate it is combined with."""

    x: jax.Array  # shape=(b, n_visible), the minibatch (rows = samples)
    rho_prev: jax.Array  # shape=(n_hidden,), the previous running estimate (treated as a constant)


def ema_rho_hat(rho_prev: jax.Array, rho_batch: jax.Array, *, ema_decay: ArrayLike) -> jax.Array:
    r""":math:`\alpha\,\operatorname{sg}(\hat\rho_{\text{prev}}) + (1-\alpha)\,\hat\rho^B`, shape ``(n_hidden,)``."""
    return running_estimate(rho_batch, rho_prev, ema_decay)


def ema_cost_terms(
    params: Params, batch: EmaBatch, *, lam: ArrayLike, beta: ArrayLike, rho: ArrayLike,
    ema_decay: ArrayLike, output: Output = "sigmoid", l1: ArrayLike | None = None, x_input: jax.Array | None = None,
) -> CostTerms:
    r""":class:`~sae_jax.CostTerms` of the EMA objective; ``rho_hat`` is the new running estimate.

    Shapes and dtypes are checked (at trace time); values are not (call it inside ``jit``;
    :func:`sae_jax.training.train` validates its inputs). ``l1``, ``x_input`` and tied parameters:
    the variants of :func:`sae_jax.cost` (the L1 term is of the batch's activations, not the running estimate).
    """
    acts = forward(params, batch.x if x_input is None else x_input, output=output)
    return terms_from_activations(
        params, batch.x, acts, lam=lam, beta=beta, rho=rho, rho_prev=batch.rho_prev, ema_decay=ema_decay, l1=l1
    )


def ema_cost_terms_and_grad(
    params: Params, batch: EmaBatch, *, lam: ArrayLike, beta: ArrayLike, rho: ArrayLike,
    ema_decay: ArrayLike, output: Output = "sigmoid", l1: ArrayLike | None = None, x_input: jax.Array | None = None,
) -> tuple[CostTerms, Params]:
    r"""The tutorial's backprop for the EMA objective: the sparsity delta at
    :math:`\hat\rho^{\text{ema}}`, times :math:`1 - \alpha`. Returns ``(CostTerms, grads)``."""
    # sparsity_terms_and_delta gives the delta at the running estimate times 1 - alpha
    return backprop(
        params, batch.x, lam=lam, beta=beta, rho=rho, output=output, rho_prev=batch.rho_prev, ema_decay=ema_decay,
        l1=l1, x_input=x_input,
    )


def autodiff_ema_cost_terms_and_grad(
    params: Params, batch: EmaBatch, *, lam: ArrayLike, beta: ArrayLike, rho: ArrayLike,
    ema_decay: ArrayLike, output: Output = "sigmoid", l1: ArrayLike | None = None, x_input: jax.Array | None = None,
) -> tuple[CostTerms, Params]:
    """The reference: ``jax.value_and_grad`` of :func:`ema_cost_terms` (``has_aux``). Returns ``(CostTerms, grads)``."""

    def f(p):
        t = ema_cost_terms(
            p, batch, lam=lam, beta=beta, rho=rho, ema_decay=ema_decay, output=output, l1=l1, x_input=x_input
        )
        return t.cost, t

    (_, terms), grads = jax.value_and_grad(f, has_aux=True)(params)
    return terms, grads
