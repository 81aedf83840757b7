r"""L-BFGS driven from Python, one jitted step at a time, over any ``params -> (J, grads)``.

:func:`lbfgs` runs :func:`sae_jax.optim.lbfgs` (``optax.lbfgs``'s algorithm with the compact
inverse-Hessian product, optax's zoom line search) on a value-and-gradient function: a jit-able
one (``traced=True``: it is traced into the step) or a Python one, e.g. a chunked pass over a
``.npy`` file (:func:`sae_jax.scale.make_chunked_value_and_grad`), called from the compiled step
through a host callback (:func:`sae_jax._src.objective.value_with_grad` of a ``jax.pure_callback``).
The compiled step depends only on the parameters' shapes: the host function is looked up by an
integer token passed as a traced argument, so every run with the same shapes reuses it.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax._src.host_lbfgs import lbfgs
  >>> from sae_jax import Params
  >>> target = Params(*(jnp.full(s, 0.5) for s in [(2, 3), (2,), (3, 2), (3,)]))
  >>> def value_and_grad(p):                           # a Python function: |p - target|^2
  ...     d = jax.tree.map(lambda a, b: a - b, p, target)
  ...     return sum(float(jnp.sum(a * a)) for a in d), jax.tree.map(lambda a: 2 * a, d)
  >>> start = jax.tree.map(jnp.zeros_like, target)
  >>> result = lbfgs(value_and_grad, start, num_steps=5)
  >>> result.values[0] > 1, result.values[-1] < 1e-10
  (True, True)
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from . import validate
from .lbfgs import lbfgs as compact_lbfgs
from .objective import result_shapes, value_with_grad
from .params import Params
from .validate import InputError

__all__ = ["LbfgsResult", "lbfgs"]

# Host functions for the cached L-BFGS step, looked up by an integer token passed as a traced
# argument: the compiled step depends only on shapes, so every run with the same shapes reuses it.
_HOST_FUNCTIONS: dict[int, Callable] = {}
_TOKENS = itertools.count()


def _host_by_token(token, params):
    params = Params(*params)
    J, g = _HOST_FUNCTIONS[int(token)](params)
    return jnp.asarray(J, params.W1.dtype), Params(*(jnp.asarray(a, params.W1.dtype) for a in g))


def _host_value_and_grad(params, token):
    return jax.pure_callback(_host_by_token, result_shapes(params), token, params, vmap_method="sequential")


_token_value = value_with_grad(_host_value_and_grad)


@functools.lru_cache(maxsize=None)
def _default_lbfgs(memory_size: int):
    # One object per memory size, so the cached compiled step (keyed on it) is reused.
    return compact_lbfgs(memory_size=memory_size)


def _lbfgs_step(value_fn, params, state, opt):
    # optax's own recipe: the line search stores the accepted point's value and gradient in the
    # state, so each iteration evaluates the objective only inside the line search.
    with jax.numpy_dtype_promotion("standard"):
        J, g = optax.value_and_grad_from_state(value_fn)(params, state=state)
        updates, state = opt.update(g, state, params, value=J, grad=g, value_fn=value_fn)
        new = optax.apply_updates(params, updates)
        stored = (optax.tree.get(state, "value"), optax.tree.norm(optax.tree.get(state, "grad")))
    return new, state, (J, optax.tree.norm(g)), stored


@functools.partial(jax.jit, static_argnames=("optimizer",))
def _host_lbfgs_step(params, state, token, *, optimizer):
    return _lbfgs_step(lambda q: _token_value(q, token), params, state, optimizer)


class LbfgsResult(NamedTuple):
    """What :func:`lbfgs` returns."""

    params: Params
    values: list  # J at each iterate, values[0] at the start
    grad_norms: list  # ||grad J|| at each iterate


def lbfgs(
    value_and_grad: Callable[[Params], tuple[jax.Array, Params]],
    params: Params,
    *,
    num_steps: int,
    memory_size: int = 10,
    optimizer: optax.GradientTransformationExtraArgs | None = None,
    tol: float = 0.0,
    callback: Callable[[int, Params, float], None] | None = None,
    traced: bool = False,
) -> LbfgsResult:
    r"""Minimise with :func:`sae_jax.optim.lbfgs` (``optax.lbfgs``'s algorithm, zoom line search), one jitted step per Python iteration.

    ``value_and_grad`` is any ``params -> (J, grads)``: a jit-able one (e.g. ``partial`` of
    :func:`sae_jax.cost_and_grad`) is traced into the step with ``traced=True``; a Python one (e.g.
    :func:`sae_jax.scale.make_chunked_value_and_grad` over a ``.npy`` file) is wrapped with :func:`sae_jax._src.objective.traceable`.
    Same algorithm either way, so a chunked run follows the in-memory run's trajectory.

    Args:
      value_and_grad: ``params -> (J, grads)``.
      params: starting point.
      num_steps: maximum number of L-BFGS iterations.
      memory_size: L-BFGS history length (for the default ``sae_jax.optim.lbfgs(memory_size=...)``).
      optimizer: another optax transformation taking ``value``, ``grad``, ``value_fn``, e.g.
        :func:`sae_jax.training.make_optimizer` of a ``TrainConfig``, to follow the trainer's exact
        L-BFGS (its memory and line-search settings).
      tol: stop when :math:`\lVert\nabla J\rVert \le` ``tol``.
      callback: called as ``callback(step, params, J)`` after each step.
      traced: ``True``: ``value_and_grad`` is jit-able (in-memory data) and is traced into the step;
        ``False`` (default): it is a Python function (e.g. chunked) called from the host through
        :func:`sae_jax._src.objective.traceable`. Never pass ``True`` for a chunked function: tracing it would bake the
        whole dataset into the program as constants.

    Returns:
      :class:`LbfgsResult` ``(params, values, grad_norms)``.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
        raise InputError(f"num_steps must be an integer >= 0, got {num_steps!r}")
    validate.check_params(params)
    opt = _default_lbfgs(int(memory_size)) if optimizer is None else optimizer
    with jax.numpy_dtype_promotion("standard"):
        state = opt.init(params)
    if num_steps == 0:
        J, g = value_and_grad(params)
        return LbfgsResult(params, [float(J)], [float(optax.tree.norm(g))])
    if traced:
        value_fn = value_with_grad(value_and_grad)
        step = jax.jit(lambda p, s: _lbfgs_step(value_fn, p, s, opt))
    else:
        token = next(_TOKENS)
        _HOST_FUNCTIONS[token] = value_and_grad
        token_arr = jnp.asarray(token, jnp.int32)

        def step(p, s):
            return _host_lbfgs_step(p, s, token_arr, optimizer=opt)

    values: list = []
    norms: list = []
    try:
        for k in range(num_steps):
            new_params, state, (J, gn), (J_new, gn_new) = step(params, state)
            if k == 0:
                values.append(float(J))
                norms.append(float(gn))
                if norms[0] <= tol:
                    break
            params = new_params
            values.append(float(J_new))
            norms.append(float(gn_new))
            if callback is not None:
                callback(k + 1, params, values[-1])
            if norms[-1] <= tol:
                break
    finally:
        if not traced:
            del _HOST_FUNCTIONS[token]
    return LbfgsResult(params, values, norms)
