r"""Stacked autoencoders with softmax fine-tuning: the UFLDL exercise (``stackedAECost.m``).

A stack of :math:`L` encoders (each a sparse autoencoder's :class:`~sae_jax.Params`, of which
the encoder ``W1 (h_l, h_{l-1})``, ``b1 (h_l,)`` is used) and a softmax layer
``theta (k, h_L)`` (:mod:`sae_jax._src.softmax`) on top. Samples are rows, :math:`a^{(1)} = x`
``(m, n)``:

.. math::
    z^{(l+1)} = a^{(l)} W^{(l)\top} + b^{(l)}, \quad a^{(l+1)} = f(z^{(l+1)}) \quad (l = 1..L;\
    a^{(l+1)} = \texttt{sae\_jax.encode}(\text{layer}_l, a^{(l)})),

    J = -\frac1m \sum_i \log P(y^{(i)} \mid a^{(L+1)(i)}) + \frac\lambda2\lVert\theta\rVert^2,

the softmax cost of :mod:`sae_jax._src.softmax` on the last features. **Weight decay is on the
softmax** :math:`\theta` **only**, as in UFLDL's ``stackedAECost`` (the encoders were
regularised during pretraining). The tutorial's backpropagation ("Fine-tuning Stacked AEs"),
with :math:`n_l = L+1` the last hidden layer and :math:`1\{y\}` the ``(m, k)`` one-hot labels:

.. math::
    \delta^{(n_l)} = -\big((1\{y\} - P)\,\theta\big) \odot f'(z^{(n_l)}), \qquad
    \delta^{(l)} = \big(\delta^{(l+1)} W^{(l)}\big) \odot f'(z^{(l)}), \quad f' = a(1-a),

    \nabla_{W^{(l)}} J = \frac1m \delta^{(l+1)\top} a^{(l)}, \quad
    \nabla_{b^{(l)}} J = \frac1m \sum_i \delta^{(l+1)(i)}, \quad
    \nabla_\theta J = -\frac1m (1\{y\} - P)^\top a^{(n_l)} + \lambda\theta

(UFLDL's column layout writes :math:`\delta^{(n_l)} = -(\theta^\top(1\{y\} - P)) \odot f'` and
:math:`\frac1m\delta^{(l+1)} a^{(l)\top}`: the same arrays). Each layer's decoder (``W2``, ``b2``)
is carried along unchanged, so a fine-tuned layer is still a whole autoencoder for
:func:`sae_jax.decode` or the filter pictures; it plays no part in :math:`J` and its gradient is zero.

The exercise: :func:`pretrain` trains the autoencoders greedily with :func:`sae_jax.train` (layer 2
on layer 1's :func:`~sae_jax.encode` features), :func:`init_stack` fits the softmax on the last
layer's features (:func:`sae_jax._src.softmax.train_softmax`), :func:`fine_tune` trains the whole stack
by L-BFGS on :func:`stacked_cost_and_grad`; :func:`train_stacked` does all three.

Called on values, :func:`stacked_cost`, :func:`stacked_cost_and_grad` and :func:`stacked_predict`
run themselves compiled, their shapes and ``lam`` checked first and the array values (finite
layers, ``theta`` and ``x``, labels in range) inside the same compiled call
(:func:`sae_jax._src.checked.compiled_call`); under the caller's ``jit``/``vmap``/``grad`` they are the
bare math with trace-time shape checks.

Examples:
  >>> import numpy as np
  >>> from sae_jax import Params
  >>> from sae_jax.softmax import SoftmaxParams
  >>> from sae_jax.stacked import StackedParams, stacked_cost, stacked_cost_and_grad, stacked_predict
  >>> rng = np.random.default_rng(0)
  >>> def layer(n_in, n_out):                      # an autoencoder n_in -> n_out -> n_in
  ...     a = lambda *s: rng.normal(0, 0.5, s).astype(np.float32)
  ...     return Params(a(n_out, n_in), a(n_out), a(n_in, n_out), a(n_in))
  >>> stack = StackedParams((layer(4, 3), layer(3, 2)), SoftmaxParams(rng.normal(size=(5, 2)).astype(np.float32)))
  >>> x, y = rng.uniform(size=(6, 4)).astype(np.float32), np.array([0, 1, 2, 3, 4, 0])
  >>> J, g = stacked_cost_and_grad(stack, x, y, lam=1e-4)
  >>> [tuple(p.W1.shape) for p in g.layers], g.softmax.theta.shape
  ([(3, 4), (2, 3)], (5, 2))
  >>> float(abs(g.layers[0].W2).max())               # the decoders take no part
  0.0
  >>> stacked_predict(stack, x).shape
  (6,)
"""

from sae_jax._src.stacked import (
    StackedParams as StackedParams,
    StackedResult as StackedResult,
    init_stack as init_stack,
    stack_activations as stack_activations,
    stack_features as stack_features,
    stacked_cost as stacked_cost,
    stacked_cost_and_grad as stacked_cost_and_grad,
    stacked_predict as stacked_predict,
    pretrain as pretrain,
    fine_tune as fine_tune,
    train_stacked as train_stacked,
)

__all__ = [
    "StackedParams",
    "StackedResult",
    "init_stack",
    "stack_activations",
    "stack_features",
    "stacked_cost",
    "stacked_cost_and_grad",
    "stacked_predict",
    "pretrain",
    "fine_tune",
    "train_stacked",
]
