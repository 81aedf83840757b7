r"""Value-and-gradient functions as the value functions optimizers differentiate.

optax's line searches (and anything else that calls ``jax.value_and_grad(value_fn)``) take a
*value* function and differentiate it. sae-jax's objectives come as value-and-gradient functions
instead (the tutorial's backprop, a sharded or chunked evaluation). :func:`value_with_grad` turns
one into the other with a ``jax.custom_vjp`` whose backward pass *is* the given gradient, so the
line search runs the manual backprop, not autodiff through it. :func:`traceable` does the same for
a Python (host) function, e.g. a chunked pass over a file, through ``jax.pure_callback``.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax._src.objective import value_with_grad
  >>> def value_and_grad(w):                     # J = |w|^2 with its gradient by hand
  ...     return jnp.sum(w * w), 2 * w
  >>> value = value_with_grad(value_and_grad)
  >>> J, g = jax.value_and_grad(value)(jnp.array([1.0, 2.0]))
  >>> float(J), g.tolist()
  (5.0, [2.0, 4.0])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp

from .params import Params

__all__ = ["value_with_grad", "traceable", "result_shapes"]


def _promoted_like(params, args):
    """``args`` with their floating arrays narrower than ``params``' dtype cast up to it.

    optax's line searches form trial points ``params + t * direction`` in their own precision:
    under x64 float32 parameters arrive as float64 while the data stay float32. JAX's standard
    promotion would compute in float64 anyway; casting the data up first gives the same numbers
    and keeps the public functions' same-dtype check (:func:`sae_jax._src.validate.check_data`) true.
    """
    leaves = jax.tree.leaves(params)
    if not leaves:
        return args
    dtype = jnp.result_type(*leaves)
    if not jnp.issubdtype(dtype, jnp.floating):
        return args

    def cast(a):
        dt = getattr(a, "dtype", None)
        if dt is None or not jnp.issubdtype(dt, jnp.floating) or dt == dtype:
            return a
        return a.astype(dtype) if jnp.dtype(dt).itemsize < jnp.dtype(dtype).itemsize else a

    return jax.tree.map(cast, args)


def value_with_grad(value_and_grad: Callable, *, has_aux: bool = False) -> Callable:
    r"""``value(params, *args, **kwargs) -> J`` whose ``jax.grad`` (in ``params``) is ``value_and_grad``'s gradient.

    A ``jax.custom_vjp``: ``jax.value_and_grad(value)`` calls ``value_and_grad`` once and returns
    its ``(J, grads)``; the other arguments (data, a batch) get zero cotangents (they are not
    trained). Floating arguments narrower than the parameters are cast up to their dtype first
    (as JAX's promotion would; optax's line searches promote the parameters under x64).

    Args:
      value_and_grad: ``(params, *args, **kwargs) -> (J, grads)``, or with ``has_aux=True``
        ``(params, *args, **kwargs) -> ((J, aux), grads)`` (the convention of
        ``jax.value_and_grad(f, has_aux=True)``; ``aux`` is dropped).
      has_aux: see above.

    Returns:
      ``value(params, *args, **kwargs) -> J``, jit-able wherever ``value_and_grad`` is (optax's
      line searches call it as ``value_fn(params, batch=...)``).
    """

    def value_of(out):
        return out[0] if has_aux else out

    @jax.custom_vjp
    def value_of_call(params, args, kwargs):
        args, kwargs = _promoted_like(params, (args, kwargs))
        return value_of(value_and_grad(params, *args, **kwargs)[0])

    def fwd(params, args, kwargs):
        args, kwargs = _promoted_like(params, (args, kwargs))
        out, grads = value_and_grad(params, *args, **kwargs)
        return value_of(out), grads

    def bwd(grads, ct):
        return jax.tree.map(lambda g: ct * g, grads), None, None

    value_of_call.defvjp(fwd, bwd)

    def value(params, *args, **kwargs):
        return value_of_call(params, args, kwargs)

    try:  # value_and_grad's parameter names: optax passes a line search's extra arguments by name
        value.__signature__ = inspect.signature(value_and_grad)
    except (TypeError, ValueError):
        pass
    return value


def result_shapes(like: Params):
    """``(J, grads)`` shapes and dtypes for a callback returning a cost and a gradient like ``like``."""
    return (
        jax.ShapeDtypeStruct((), like.W1.dtype),
        jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), like),
    )


def traceable(
    value_and_grad: Callable[[Params], tuple[jax.Array, Params]], like: Params
) -> Callable[[Params], jax.Array]:
    r"""Wrap a Python ``params -> (J, grads)`` function as a differentiable, jit-able JAX value function.

    Returns ``value(params) -> J`` such that, under ``jit``, ``jax.value_and_grad(value)`` calls
    ``value_and_grad`` **once** on the host (``jax.pure_callback``) and returns its ``(J, grads)``
    (:func:`value_with_grad`). This is what lets a chunked full-batch pass, a Python loop over data
    that never sits in memory at once, serve optax's L-BFGS and its zoom line search, which call
    ``jax.value_and_grad(value_fn)`` inside ``lax.while_loop``.

    Only first derivatives are available (the backward pass returns the host gradient).
    The host function itself runs JAX computations; that works on the CPU backend and is how
    :func:`sae_jax._src.host_lbfgs.lbfgs` uses it.

    Args:
      value_and_grad: e.g. :func:`sae_jax.scale.make_chunked_value_and_grad`'s result.
      like: parameters with the shapes and dtype the function will be called with.
    """
    shapes = result_shapes(like)

    def host(params):
        J, g = value_and_grad(Params(*params))
        return jnp.asarray(J), Params(*g)

    def both(params):
        return jax.pure_callback(host, shapes, params, vmap_method="sequential")

    return value_with_grad(both)
