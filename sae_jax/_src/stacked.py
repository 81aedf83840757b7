"""Implementation of :mod:`sae_jax.stacked` (private; import from the public module)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import checked, validate
from .forward import encode
from .minimize import minimize_lbfgs
from .params import Params
from .softmax import (
    SoftmaxParams,
    one_hot,
    softmax_cost,
    softmax_cost_and_grad,
    softmax_predict,
    softmax_probabilities,
    train_softmax,
)
from .softmax_checks import (
    check_features,
    check_labels,
    check_lam,
    check_softmax_params,
    labels_need_host_check,
    softmax_values_ok,
)
from .training import TrainConfig, train
from .validate import InputError

__all__ = [
    "StackedParams",
    "StackedResult",
    "check_stack",
    "stack_activations",
    "stack_features",
    "stacked_cost",
    "stacked_cost_and_grad",
    "stacked_predict",
    "pretrain",
    "init_stack",
    "fine_tune",
    "train_stacked",
]


class StackedParams(NamedTuple):
    """A stack of autoencoder layers and a softmax on top, a pytree (``jax.grad`` returns the same type)."""

    layers: tuple  # tuple[Params, ...]: layer l maps h_{l-1} -> h_l features (its W1, b1)
    softmax: SoftmaxParams  # theta (k, h_L)

    @property
    def dtype(self):
        return self.softmax.theta.dtype


class StackedResult(NamedTuple):
    """:func:`train_stacked`'s result: the stack before and after fine-tuning."""

    pretrained: StackedParams  # greedy layer-wise autoencoders + softmax on their features
    fine_tuned: StackedParams  # the same after fine-tuning the whole stack


def check_stack(stack, *, values: bool = True) -> None:
    """A :class:`StackedParams`: a non-empty tuple of :class:`~sae_jax.Params` whose sizes chain
    (layer l's ``n_visible`` = layer l-1's ``n_hidden``), a :class:`~sae_jax.softmax.SoftmaxParams` with
    ``theta (k, h_L)``, one floating dtype; finite when concrete."""
    if not isinstance(stack, StackedParams):
        raise InputError(f"stack must be a sae_jax.stacked.StackedParams(layers, softmax), got {type(stack).__name__}")
    layers = stack.layers
    if not isinstance(layers, (tuple, list)) or len(layers) == 0:
        raise InputError(f"stack.layers must be a non-empty tuple of sae_jax.Params, got {type(layers).__name__}")
    for l, p in enumerate(layers):
        try:
            validate.check_params(p, values=values)
        except InputError as e:
            raise InputError(f"stack.layers[{l}]: {e}") from None
    check_softmax_params(stack.softmax, values=values, name="stack.softmax")
    dtype = jnp.dtype(layers[0].W1.dtype)
    for l in range(1, len(layers)):
        if layers[l].W1.shape[1] != layers[l - 1].W1.shape[0]:
            raise InputError(
                f"stack.layers[{l}] takes {layers[l].W1.shape[1]} inputs (W1 {tuple(layers[l].W1.shape)}), but "
                f"stack.layers[{l - 1}] gives {layers[l - 1].W1.shape[0]} features"
            )
    h_last = layers[-1].W1.shape[0]
    if stack.softmax.theta.shape[1] != h_last:
        raise InputError(
            f"stack.softmax.theta must have shape (k, {h_last}) to take the last layer's {h_last} features, "
            f"got {tuple(stack.softmax.theta.shape)}"
        )
    for name, a in [(f"layers[{l}]", p.W1) for l, p in enumerate(layers)] + [("softmax.theta", stack.softmax.theta)]:
        if jnp.dtype(a.dtype) != dtype:
            raise InputError(f"stack.{name} must have the stack's dtype ({dtype}, of layers[0]), got {jnp.dtype(a.dtype)}")


def _check_call(stack, x, y=None, lam=None, *, values: bool = True) -> None:
    check_stack(stack, values=values)
    check_features(x, n=stack.layers[0].W1.shape[1], dtype=stack.dtype, what="stack.layers[0]", values=values)
    if y is not None:
        check_labels(y, m=x.shape[0], k=stack.softmax.theta.shape[0], values=values, source="stack.softmax.theta")
    if lam is not None:
        check_lam(lam, dtype=stack.dtype)


def _values_ok(stack, x, y=None, **_):
    """Every array value check of :func:`_check_call`, one boolean inside the compiled call: the
    layers' arrays finite, then :func:`~sae_jax._src.softmax_checks.softmax_values_ok` (``theta``, ``x``, labels)."""
    layers_ok = jnp.isfinite(sum(jnp.sum(a * 0) for a in jax.tree.leaves(stack.layers)))
    return layers_ok & softmax_values_ok(stack.softmax, x, y)


def _check_values(stack, x, y=None, *, lam=None):
    _check_call(stack, x, y, lam)


def _on_values(fn, stack, x, y=None, **kwargs):
    """``fn`` (a public function below, called on values) run compiled by
    :func:`sae_jax._src.checked.compiled_call`: shapes, dtypes and ``lam`` checked here, the array values
    (:func:`_values_ok`) in the compiled call."""
    values = y is not None and labels_need_host_check(y)  # e.g. int64 NumPy labels: all on the host
    _check_call(stack, x, y, kwargs.get("lam"), values=values)
    args = (stack, x) if y is None else (stack, x, y)
    return checked.compiled_call(fn, args, kwargs, values_ok=_values_ok, raise_for_values=_check_values)


def stack_activations(stack: StackedParams, x: jax.Array) -> list[jax.Array]:
    r"""``[a⁽¹⁾ = x, a⁽²⁾, …, a⁽ᴸ⁺¹⁾]``: the input and each layer's :func:`~sae_jax.encode` features, ``(m, h_l)``."""
    _check_call(stack, x, values=checked.all_concrete(stack, x))
    acts = [x]
    for p in stack.layers:
        acts.append(encode(p, acts[-1]))
    return acts


def stack_features(layers: Sequence[Params], x: jax.Array) -> jax.Array:
    """The last layer's features of a list of autoencoders (no softmax needed): ``(m, h_L)``.

    Examples:
      >>> import jax, numpy as np
      >>> from sae_jax import init_params
      >>> layers = (init_params(jax.random.key(0), 4, 3), init_params(jax.random.key(1), 3, 2))
      >>> stack_features(layers, np.full((5, 4), 0.5, np.float32)).shape
      (5, 2)
    """
    if not isinstance(layers, (tuple, list)) or len(layers) == 0:
        raise InputError(f"layers must be a non-empty sequence of sae_jax.Params, got {type(layers).__name__}")
    a = x
    for l, p in enumerate(layers):
        try:
            a = encode(p, a)
        except InputError as e:
            raise InputError(f"layers[{l}]: {e}") from None
    return a


def stacked_cost(stack: StackedParams, x: jax.Array, y: jax.Array, *, lam: ArrayLike) -> jax.Array:
    r""":math:`J`: the softmax cost of the last layer's features, weight decay on :math:`\theta` only (module docstring).

    Args:
      stack: :class:`StackedParams`.
      x: ``(m, n)`` inputs in the stack's dtype (for sigmoid autoencoders, in [0, 1] as they were trained;
        not required here).
      y: ``(m,)`` integer labels in ``[0, k)``.
      lam: :math:`\lambda \ge 0` on the softmax :math:`\theta`.
    """
    if checked.all_concrete(stack, x, y, lam):
        return _on_values(stacked_cost, stack, x, y, lam=lam)
    _check_call(stack, x, y, lam, values=False)
    return softmax_cost(stack.softmax, stack_activations(stack, x)[-1], y, lam=lam)


def stacked_cost_and_grad(
    stack: StackedParams, x: jax.Array, y: jax.Array, *, lam: ArrayLike
) -> tuple[jax.Array, StackedParams]:
    r"""Cost and gradient by the tutorial's fine-tuning backprop (module docstring); a drop-in for
    ``jax.value_and_grad(stacked_cost)``: ``(J, StackedParams(layers=(Params(gW, gb, 0, 0), ...), softmax=...))``."""
    if checked.all_concrete(stack, x, y, lam):
        return _on_values(stacked_cost_and_grad, stack, x, y, lam=lam)
    _check_call(stack, x, y, lam, values=False)
    acts = stack_activations(stack, x)
    a_last, m = acts[-1], x.shape[0]
    theta = stack.softmax.theta
    J, g_softmax = softmax_cost_and_grad(stack.softmax, a_last, y, lam=lam)
    P = softmax_probabilities(stack.softmax, a_last)
    delta = -((one_hot(y, theta.shape[0], theta.dtype) - P) @ theta) * (a_last * (1 - a_last))  # δ^(n_l)
    grads = []
    for l in reversed(range(len(stack.layers))):
        p = stack.layers[l]
        grads.append(
            Params(delta.T @ acts[l] / m, jnp.sum(delta, axis=0) / m, jnp.zeros_like(p.W2), jnp.zeros_like(p.b2))
        )
        if l > 0:  # δ^(l) = (δ^(l+1) W^(l)) ∘ f'(z^(l))
            delta = (delta @ p.W1) * (acts[l] * (1 - acts[l]))
    return J, StackedParams(tuple(reversed(grads)), g_softmax)


def stacked_predict(stack: StackedParams, x: jax.Array) -> jax.Array:
    """The most probable class of each row through the whole stack, integer ``(m,)``."""
    if checked.all_concrete(stack, x):
        return _on_values(stacked_predict, stack, x)
    _check_call(stack, x, values=False)
    return softmax_predict(stack.softmax, stack_activations(stack, x)[-1])


# --- the exercise's pipeline ----------------------------------------------------------------------


def _check_int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        raise InputError(f"{name} must be an integer >= {lo}, got {v!r}")


def pretrain(x, configs: Sequence[TrainConfig]) -> tuple[Params, ...]:
    r"""Greedy layer-wise pretraining: autoencoder :math:`l` trained by :func:`sae_jax.training.train` on layer
    :math:`l-1`'s :func:`~sae_jax.encode` features (layer 1 on ``x``).

    Args:
      x: ``(m, n)`` data (converted to the configs' dtype, as :func:`sae_jax.training.train` converts).
      configs: one :class:`~sae_jax.training.TrainConfig` per layer, all with the same ``dtype`` (the
        exercise: two layers of 200 units, ρ = 0.1, λ = 3e-3, β = 3, 400 L-BFGS iterations).

    Returns:
      A tuple of :class:`~sae_jax.Params`, layer 1 first.
    """
    configs = tuple(configs)
    if not configs or not all(isinstance(c, TrainConfig) for c in configs):
        raise InputError("configs must be a non-empty sequence of sae_jax.training.TrainConfig (one per layer)")
    if len({c.dtype for c in configs}) != 1:
        raise InputError(f"configs must share one dtype, got {[c.dtype for c in configs]}")
    features = jnp.asarray(np.asarray(x), configs[0].dtype)
    layers = []
    for c in configs:
        p = train(features, c, pictures=False).params
        layers.append(p)
        features = encode(p, features)
    return tuple(layers)


def init_stack(
    layers: Sequence[Params], x, y, *, n_classes: int, lam: float = 1e-4, steps: int = 100, seed: int = 0
) -> StackedParams:
    """The stack before fine-tuning: ``layers`` and a softmax trained (:func:`~sae_jax.softmax.train_softmax`)
    on their last features of ``x`` (``x`` in the layers' dtype)."""
    layers = tuple(layers)
    features = stack_features(layers, x)
    theta = train_softmax(features, y, n_classes=n_classes, lam=lam, steps=steps, seed=seed)
    return StackedParams(layers, theta)


def _stacked_value_and_grad(stack, x, y, lam):
    return stacked_cost_and_grad(stack, x, y, lam=lam)


def fine_tune(stack: StackedParams, x, y, *, lam: float = 1e-4, steps: int = 400, memory_size: int = 100) -> StackedParams:
    """Fine-tune every layer and the softmax together: L-BFGS (:func:`~sae_jax.optim.minimize_lbfgs`,
    at most ``steps`` iterations) on :func:`stacked_cost_and_grad` (the exercise: λ = 1e-4, 400 iterations)."""
    _check_int("steps", steps, 0)
    _check_int("memory_size", memory_size, 1)
    _check_call(stack, x, y, lam)
    lam = jnp.asarray(lam, stack.dtype)
    stack = StackedParams(tuple(stack.layers), stack.softmax)
    return minimize_lbfgs(
        _stacked_value_and_grad, stack, (jnp.asarray(x), jnp.asarray(y), lam), steps=steps, memory_size=memory_size
    ).params


def train_stacked(
    x,
    y,
    *,
    configs: Sequence[TrainConfig],
    n_classes: int,
    lam: float = 1e-4,
    softmax_steps: int = 100,
    fine_tune_steps: int = 400,
    seed: int = 0,
) -> StackedResult:
    """The whole exercise: :func:`pretrain`, :func:`init_stack`, :func:`fine_tune`.

    ``x`` ``(m, n)`` (converted to the configs' dtype), ``y`` ``(m,)`` integer labels in
    ``[0, n_classes)``; ``lam`` is the softmax's weight decay in both the softmax training and
    fine-tuning; ``seed`` seeds the softmax's start (each config has its own ``seed``).
    """
    _check_int("n_classes", n_classes, 2)
    layers = pretrain(x, configs)
    xd = jnp.asarray(np.asarray(x), layers[0].W1.dtype)
    before = init_stack(layers, xd, y, n_classes=n_classes, lam=lam, steps=softmax_steps, seed=seed)
    after = fine_tune(before, xd, y, lam=lam, steps=fine_tune_steps)
    return StackedResult(before, after)
