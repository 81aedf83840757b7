"""Implementation of :mod:`sae_jax.softmax` (private; import from the public module)."""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import checked
from .minimize import minimize_lbfgs
from .softmax_checks import (
    check_features,
    check_labels,
    check_lam,
    check_softmax_call,
    check_softmax_params,
    labels_need_host_check,
    softmax_values_ok,
)
from .params import check_key
from .validate import InputError

__all__ = [
    "SoftmaxParams",
    "init_softmax",
    "with_intercept",
    "check_softmax_params",
    "check_features",
    "check_labels",
    "check_lam",
    "check_softmax_call",
    "one_hot",
    "softmax_logits",
    "softmax_probabilities",
    "softmax_cost",
    "softmax_cost_and_grad",
    "softmax_predict",
    "accuracy",
    "train_softmax",
]


class SoftmaxParams(NamedTuple):
    """Softmax-regression parameters, a pytree: ``jax.grad`` and ``optax`` return the same type."""

    theta: jax.Array  # shape=(k, n): row j is class j's weights (UFLDL's theta, k x n)

    @property
    def n_classes(self) -> int:
        return int(self.theta.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.theta.shape[1])

    @property
    def dtype(self):
        return self.theta.dtype


def init_softmax(key: jax.Array, n_features: int, n_classes: int, *, dtype=jnp.float32) -> SoftmaxParams:
    r"""UFLDL ``softmaxTrain``'s start: :math:`\theta = 0.005\,\mathcal N(0, 1)`, shape ``(n_classes, n_features)``.

    Examples:
      >>> import jax
      >>> init_softmax(jax.random.key(0), 64, 10).theta.shape
      (10, 64)
    """
    for name, v, lo in (("n_features", n_features, 1), ("n_classes", n_classes, 1)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
            raise InputError(f"{name} must be an integer >= {lo}, got {v!r}")
    check_key(key)
    dtype = _float_dtype(dtype)
    return SoftmaxParams(0.005 * jax.random.normal(key, (n_classes, n_features), dtype))


def _float_dtype(dtype):
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise InputError(f"dtype must be a floating dtype such as 'float32', got {dtype!r}") from None
    if not jnp.issubdtype(dt, jnp.floating):
        raise InputError(f"dtype must be a floating dtype, got {dt}")
    if jax.dtypes.canonicalize_dtype(dt) != dt:
        raise InputError(
            f"dtype={dt.name!r} needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) first"
        )
    return dt


def with_intercept(x: ArrayLike) -> jax.Array:
    """``x`` ``(m, n)`` with a column of ones appended, ``(m, n + 1)``: an intercept as an extra input feature.

    Examples:
      >>> import numpy as np
      >>> with_intercept(np.zeros((2, 3), np.float32)).tolist()
      [[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]]
    """
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise InputError(f"x must be 2-D (m, n), got shape {tuple(x.shape)}")
    return jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)


# --- called on values: checked in Python, then compiled with the value checks fused -----------------


def _check_values(params, x, y=None, *, lam=None):
    check_softmax_call(params, x, y, lam=lam)


def _on_values(fn, params, x, y=None, **kwargs):
    """``fn`` (a public function below, called on values) run compiled by
    :func:`sae_jax._src.checked.compiled_call`: shapes, dtypes and ``lam`` checked here, the array values
    (:func:`~sae_jax._src.softmax_checks.softmax_values_ok`) in the compiled call."""
    values = y is not None and labels_need_host_check(y)  # e.g. int64 NumPy labels: all on the host
    check_softmax_call(params, x, y, values=values, **kwargs)
    args = (params, x) if y is None else (params, x, y)
    return checked.compiled_call(fn, args, kwargs, values_ok=softmax_values_ok, raise_for_values=_check_values,
                                 raise_for_result=_raise_not_finite)


def _raise_not_finite(out, params, x, y=None, **kwargs):
    """A valid call whose result is not a finite float (e.g. ``theta @ x`` overflowing float32): one line."""
    checked.raise_not_finite(
        out, name="softmax", hint=f" (x up to {float(np.max(np.abs(np.asarray(x)))):g}, theta up to "
        f"{float(np.max(np.abs(np.asarray(params.theta)))):g}"
        + (f", lam={float(kwargs['lam']):g}" if kwargs.get("lam") is not None else "")
        + "); rescale x, use a smaller lam, or float64",
    )


# --- the math -----------------------------------------------------------------------------------


def one_hot(y: jax.Array, k: int, dtype) -> jax.Array:
    r""":math:`1\{y\}`: ``(m, k)``, row :math:`i` the indicator of class :math:`y^{(i)}` (UFLDL's ``groundTruth.T``)."""
    return jax.nn.one_hot(y, k, dtype=dtype)


def softmax_logits(params: SoftmaxParams, x: jax.Array) -> jax.Array:
    r"""Logits :math:`z = x\theta^\top`, ``(m, k)`` (shapes and dtypes checked)."""
    check_softmax_call(params, x, values=False)
    return x @ params.theta.T


def softmax_probabilities(params: SoftmaxParams, x: jax.Array) -> jax.Array:
    r""":math:`P_{ij} = P(y = j \mid x^{(i)}) = e^{z_{ij} - \operatorname{logsumexp}_l z_{il}}`, ``(m, k)``, rows sum to 1.

    Examples:
      >>> import numpy as np
      >>> P = softmax_probabilities(SoftmaxParams(np.zeros((4, 2), np.float32)), np.ones((3, 2), np.float32))
      >>> P.shape, float(P[0, 0])
      ((3, 4), 0.25)
    """
    if checked.all_concrete(params, x):
        return _on_values(softmax_probabilities, params, x)
    check_softmax_call(params, x, values=False)
    z = softmax_logits(params, x)
    return jnp.exp(z - jax.nn.logsumexp(z, axis=1, keepdims=True))


def softmax_cost(params: SoftmaxParams, x: jax.Array, y: jax.Array, *, lam: ArrayLike) -> jax.Array:
    r""":math:`J(\theta) = -\frac1m\sum_i \log P(y^{(i)}\mid x^{(i)}) + \frac\lambda2\lVert\theta\rVert^2` (module docstring).

    Args:
      params: :class:`SoftmaxParams`, ``theta (k, n)``.
      x: ``(m, n)`` features, samples as rows, in ``theta``'s dtype.
      y: ``(m,)`` integer labels in ``[0, k)``.
      lam: weight decay :math:`\lambda \ge 0` (traced: a sweep compiles once).

    Returns:
      Scalar, in ``theta``'s dtype; computed as :math:`\frac1m\sum_i(\operatorname{logsumexp} z_i - z_{i,y_i})`,
      exact for any finite logits.
    """
    if checked.all_concrete(params, x, y, lam):
        return _on_values(softmax_cost, params, x, y, lam=lam)
    check_softmax_call(params, x, y, lam=lam)
    z = softmax_logits(params, x)
    picked = jnp.take_along_axis(z, y[:, None], axis=1)[:, 0]
    nll = jnp.mean(jax.nn.logsumexp(z, axis=1) - picked)
    lam = jnp.asarray(lam, params.theta.dtype)
    return nll + lam / 2 * jnp.sum(params.theta**2)


def softmax_cost_and_grad(
    params: SoftmaxParams, x: jax.Array, y: jax.Array, *, lam: ArrayLike
) -> tuple[jax.Array, SoftmaxParams]:
    r"""Cost and the tutorial's gradient :math:`-\frac1m(1\{y\} - P)^\top x + \lambda\theta`; a drop-in for
    ``jax.value_and_grad(softmax_cost)`` (same arguments, same result structure).

    Examples:
      >>> import jax, numpy as np
      >>> rng = np.random.default_rng(0)
      >>> params = SoftmaxParams(rng.normal(size=(3, 4)).astype(np.float32))
      >>> x, y = rng.normal(size=(5, 4)).astype(np.float32), np.array([0, 1, 2, 1, 0])
      >>> J, g = softmax_cost_and_grad(params, x, y, lam=1e-3)
      >>> J_ad, g_ad = jax.jit(jax.value_and_grad(softmax_cost))(params, x, y, lam=1e-3)
      >>> bool(np.allclose(g.theta, g_ad.theta, rtol=1e-5, atol=1e-6))
      True
    """
    if checked.all_concrete(params, x, y, lam):
        return _on_values(softmax_cost_and_grad, params, x, y, lam=lam)
    check_softmax_call(params, x, y, lam=lam)
    theta = params.theta
    k, m = theta.shape[0], x.shape[0]
    J = softmax_cost(params, x, y, lam=lam)
    P = softmax_probabilities(params, x)
    lam = jnp.asarray(lam, theta.dtype)
    grad = -((one_hot(y, k, theta.dtype) - P).T @ x) / m + lam * theta
    return J, SoftmaxParams(grad)


def softmax_predict(params: SoftmaxParams, x: jax.Array) -> jax.Array:
    r"""The most probable class :math:`\arg\max_j \theta_j^\top x^{(i)}` of each row, integer ``(m,)`` (``softmaxPredict.m``)."""
    if checked.all_concrete(params, x):
        return _on_values(softmax_predict, params, x)
    check_softmax_call(params, x)
    return jnp.argmax(softmax_logits(params, x), axis=1)


def accuracy(predicted: ArrayLike, y: ArrayLike) -> float:
    """Fraction of ``predicted`` equal to ``y`` (both ``(m,)`` integer), a Python float.

    Examples:
      >>> import numpy as np
      >>> accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]))
      0.75
    """
    p, t = np.asarray(predicted), np.asarray(y)
    if p.shape != t.shape or p.ndim != 1 or p.size == 0:
        raise InputError(f"predicted and y must be non-empty 1-D arrays of one shape, got {p.shape} and {t.shape}")
    return float(np.mean(p == t))


# --- training -----------------------------------------------------------------------------------


def _softmax_value_and_grad(params, x, y, lam):
    return softmax_cost_and_grad(params, x, y, lam=lam)


def train_softmax(
    x: jax.Array,
    y: jax.Array,
    *,
    n_classes: int,
    lam: float = 1e-4,
    steps: int = 100,
    seed: int = 0,
    params: SoftmaxParams | None = None,
    memory_size: int = 100,
) -> SoftmaxParams:
    r"""Fit softmax regression by L-BFGS on the manual gradient: UFLDL's ``softmaxTrain`` (``lambda = 1e-4``, 100 iterations).

    Args:
      x: ``(m, n)`` floating features, samples as rows (their dtype is the parameters' dtype).
      y: ``(m,)`` integer labels in ``[0, n_classes)``.
      n_classes: :math:`k \ge 2`.
      lam: weight decay :math:`\lambda \ge 0`.
      steps: L-BFGS iterations at most (:func:`sae_jax.optim.minimize_lbfgs`'s stopping rules otherwise).
      seed: seeds the start :math:`0.005\,\mathcal N(0,1)` (:func:`init_softmax`), unless ``params`` is given.
      params: a :class:`SoftmaxParams` ``(n_classes, n)`` to start from instead.
      memory_size: L-BFGS history (100, minFunc's, as UFLDL used).

    Returns:
      :class:`SoftmaxParams` ``theta (n_classes, n)``.

    Examples:
      >>> import numpy as np
      >>> x = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]], np.float32)
      >>> y = np.array([0, 1, 0, 1])
      >>> model = train_softmax(x, y, n_classes=2, lam=1e-4, steps=50)
      >>> softmax_predict(model, x).tolist()
      [0, 1, 0, 1]
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 2:
        raise InputError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    for name, v, lo in (("steps", steps, 0), ("seed", seed, 0), ("memory_size", memory_size, 1)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
            raise InputError(f"{name} must be an integer >= {lo}, got {v!r}")
    if not hasattr(x, "dtype") or not jnp.issubdtype(x.dtype, jnp.floating) or getattr(x, "ndim", 0) != 2:
        what = f"dtype {x.dtype} and shape {tuple(x.shape)}" if hasattr(x, "dtype") else type(x).__name__
        raise InputError(f"x must be a 2-D floating array (m, n), got {what}")
    if params is None:
        params = init_softmax(jax.random.key(seed), int(x.shape[1]), n_classes, dtype=_float_dtype(x.dtype))
    check_softmax_params(params)
    if params.theta.shape != (n_classes, x.shape[1]):
        raise InputError(
            f"params.theta must have shape ({n_classes}, {x.shape[1]}) (n_classes, x's columns), got {tuple(params.theta.shape)}"
        )
    check_features(x, n=int(x.shape[1]), dtype=params.theta.dtype)
    check_labels(y, m=int(x.shape[0]), k=n_classes, source="n_classes")
    check_lam(lam, dtype=params.theta.dtype)
    x, y = jnp.asarray(x), jnp.asarray(y)
    lam = jnp.asarray(lam, params.theta.dtype)
    result = minimize_lbfgs(_softmax_value_and_grad, params, (x, y, lam), steps=steps, memory_size=memory_size)
    return result.params
