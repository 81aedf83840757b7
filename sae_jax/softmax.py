r"""Softmax regression: the UFLDL exercise (``softmaxCost.m``, ``softmaxTrain.m``, ``softmaxPredict.m``).

For samples :math:`x^{(i)}` (rows of ``x``, shape ``(m, n)``) with labels
:math:`y^{(i)} \in \{0, \dots, k-1\}` (``y``, integer ``(m,)``), parameters
:math:`\theta` of shape ``(k, n)`` (row :math:`j` is class :math:`j`'s weight vector) and
logits :math:`z = x\theta^\top` ``(m, k)``,

.. math::
    P(y = j \mid x^{(i)}) = \frac{e^{z_{ij}}}{\sum_l e^{z_{il}}}, \qquad
    J(\theta) = -\frac1m \sum_{i=1}^m \log P(y^{(i)} \mid x^{(i)}) + \frac\lambda2 \lVert\theta\rVert_F^2,

    \nabla_\theta J = -\frac1m \big(1\{y\} - P\big)^\top x + \lambda\theta,

where :math:`1\{y\}` is the ``(m, k)`` one-hot matrix of the labels (UFLDL's ``groundTruth``,
transposed to samples-as-rows): the tutorial's
:math:`\nabla_{\theta_j} J = -\frac1m\sum_i x^{(i)}(1\{y^{(i)}=j\} - P(y^{(i)}=j\mid x^{(i)})) + \lambda\theta_j`.
The cost is evaluated as :math:`\frac1m\sum_i (\operatorname{logsumexp}_l z_{il} - z_{i,y^{(i)}})`, so
it is exact and finite for any finite logits (``1e4`` included), and :math:`P = e^{z - \operatorname{logsumexp} z}`.

**No bias.** As in the exercise, :math:`\theta` has no intercept and weight decay covers all of
it; softmax is over-parameterised anyway (subtracting one vector from every :math:`\theta_j`
leaves :math:`P` unchanged; :math:`\lambda > 0` makes the minimum unique). Append a column of
ones to ``x`` (:func:`with_intercept`) for an intercept, which is then weight-decayed too, as
in UFLDL. Keeping :math:`\theta` bias-free makes it exactly the top layer of the tutorial's
stacked autoencoder (:mod:`sae_jax._src.stacked`).

Inputs are checked (:class:`~sae_jax.InputError`, one line): ``params`` a :class:`SoftmaxParams`
of a floating ``(k, n)`` array; ``x`` ``(m, n)`` in :math:`\theta`'s dtype; ``y`` an integer
array ``(m,)``; shapes and dtypes always (also under the caller's ``jit``), values (finite
``x`` and :math:`\theta`, labels in :math:`[0, k)`, :math:`\lambda \ge 0` finite) whenever they are
concrete (:mod:`sae_jax._src.softmax_checks`). Called on values, the cost, gradient, probabilities and
prediction run themselves compiled (one compilation per shape), the array value checks fused into
that compiled call (:func:`sae_jax._src.checked.compiled_call`, as the autoencoder's functions do);
under the caller's ``jit``/``vmap``/``grad`` they are the bare math with trace-time shape checks.

Examples:
  >>> import numpy as np
  >>> from sae_jax.softmax import SoftmaxParams, softmax_cost, softmax_cost_and_grad, softmax_predict
  >>> params = SoftmaxParams(np.zeros((3, 2), np.float32))        # k = 3 classes, n = 2 features
  >>> x = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
  >>> y = np.array([0, 2])
  >>> round(float(softmax_cost(params, x, y, lam=1e-4)), 6)         # log 3: all classes equally likely
  1.098612
  >>> J, grads = softmax_cost_and_grad(params, x, y, lam=1e-4)
  >>> grads.theta.shape
  (3, 2)
  >>> softmax_predict(SoftmaxParams(np.eye(3, 2, dtype=np.float32)), x).tolist()
  [0, 1]
  >>> softmax_cost(params, x, np.array([0, 3]), lam=1e-4)          # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ...
  sae_jax._src.validate.InputError: y must hold class indices in [0, 3) (k = 3 classes, from params.theta), got values in [0, 3]
"""

from sae_jax._src.softmax import (
    SoftmaxParams as SoftmaxParams,
    init_softmax as init_softmax,
    one_hot as one_hot,
    softmax_logits as softmax_logits,
    softmax_probabilities as softmax_probabilities,
    softmax_cost as softmax_cost,
    softmax_cost_and_grad as softmax_cost_and_grad,
    softmax_predict as softmax_predict,
    accuracy as accuracy,
    train_softmax as train_softmax,
)

__all__ = [
    "SoftmaxParams",
    "init_softmax",
    "one_hot",
    "softmax_logits",
    "softmax_probabilities",
    "softmax_cost",
    "softmax_cost_and_grad",
    "softmax_predict",
    "accuracy",
    "train_softmax",
]
