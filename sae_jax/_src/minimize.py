r"""Full-batch L-BFGS to convergence in one jitted loop: what the UFLDL exercises did with minFunc.

:func:`minimize_lbfgs` minimises any deterministic objective given as ``value_and_grad_fn(params,
*args) -> (value, grads)`` with :func:`sae_jax.optim.lbfgs` (``optax.lbfgs``'s directions, compact
form) and optax's zoom line search, whose trial points are evaluated through the *given* gradient
(a ``jax.custom_vjp``), so a hand-written gradient drives the whole run. The loop is one
``lax.while_loop`` inside one ``jax.jit``: at most ``steps`` iterations, stopping as minFunc does
(``optTol``: :math:`\max|\nabla| \le` ``grad_tol``; ``progTol``: an objective change below
``progress_tol``), or when a step would give a non-finite objective (undone).
:func:`sae_jax.softmax.train_softmax` and :func:`sae_jax.stacked.fine_tune` use it; the sparse
autoencoder's own trainer is :func:`sae_jax.training.train` (checkpoints, metrics, minibatches).

Examples:
  >>> import jax.numpy as jnp
  >>> from sae_jax.optim import minimize_lbfgs
  >>> def vg(p, c):                                   # J = ||p - c||^2 and its gradient
  ...     return jnp.sum((p - c) ** 2), 2 * (p - c)
  >>> r = minimize_lbfgs(vg, jnp.zeros(3), (jnp.array([1.0, 2.0, 3.0]),), steps=20)
  >>> [round(float(v), 4) for v in r.params], int(r.steps) <= 20
  ([1.0, 2.0, 3.0], True)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .lbfgs import lbfgs as compact_lbfgs

__all__ = ["MinimizeResult", "minimize_lbfgs"]


class MinimizeResult(NamedTuple):
    """What :func:`minimize_lbfgs` returns."""

    params: Any  # the final parameters (same pytree as the start)
    value: jax.Array  # shape=(), the objective there
    grad_max: jax.Array  # shape=(), max |gradient| there
    steps: jax.Array  # shape=(), int: iterations taken


def _tree_get(tree, name):
    get = optax.tree.get if hasattr(optax, "tree") else optax.tree_utils.tree_get
    return get(tree, name)


def _tree_set(tree, **kw):
    put = optax.tree.set if hasattr(optax, "tree") else optax.tree_utils.tree_set
    return put(tree, **kw)


def _max_abs(tree) -> jax.Array:
    return jnp.max(jnp.stack([jnp.max(jnp.abs(a)).astype(jnp.float32) for a in jax.tree.leaves(tree)]))


@partial(jax.jit, static_argnames=("value_and_grad_fn", "memory_size", "max_linesearch_steps"))
def minimize_lbfgs(
    value_and_grad_fn: Callable,
    params,
    args: tuple = (),
    *,
    steps,
    memory_size: int = 100,
    max_linesearch_steps: int = 20,
    grad_tol=1e-5,
    progress_tol=1e-9,
) -> MinimizeResult:
    r"""Minimise a deterministic objective by L-BFGS (:func:`sae_jax.optim.lbfgs`, optax's zoom line search), one jitted loop.

    What the UFLDL exercises did with minFunc (``'lbfgs'``, ``maxIter``, history 100): at most
    ``steps`` iterations, stopping early, as minFunc does, when :math:`\max|\nabla| \le` ``grad_tol``
    (minFunc's ``optTol``) or the objective changes by less than ``progress_tol`` (``progTol``),
    or when a step gives a non-finite objective (that step is undone).

    Args:
      value_and_grad_fn: ``(params, *args) -> (value, grads)``, ``grads`` with ``params``' structure; the
        line search uses this gradient too (a ``jax.custom_vjp``). Static: pass a module-level function
        (not a fresh lambda) so repeated calls reuse the compilation.
      params: starting point, any pytree of floating arrays.
      args: the data, passed to ``value_and_grad_fn`` as traced arguments.
      steps: the iteration limit (traced: no recompilation for another value).

    Returns:
      :class:`MinimizeResult` (module docstring: an example).
    """

    # Under x64 the zoom line search proposes float64 trial points for float32 params: the objective
    # sees them in the params' dtypes (as without x64), the line search gets the gradient in its own.
    dtypes = jax.tree.map(lambda a: a.dtype, params)

    def in_params_dtypes(p):
        return jax.tree.map(lambda a, d: a.astype(d), p, dtypes)

    @jax.custom_vjp
    def value_fn(p):
        return value_and_grad_fn(in_params_dtypes(p), *args)[0]

    def fwd(p):
        v, g = value_and_grad_fn(in_params_dtypes(p), *args)
        return v, jax.tree.map(lambda a, q: a.astype(q.dtype), g, p)

    def bwd(g, ct):
        return (jax.tree.map(lambda a: ct * a, g),)

    value_fn.defvjp(fwd, bwd)
    opt = compact_lbfgs(
        memory_size=memory_size,
        linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=max_linesearch_steps, initial_guess_strategy="one"
        ),
    )
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32/int64 indices under x64
        state = opt.init(params)
        v0, g0 = value_and_grad_fn(params, *args)
        state = _tree_set(state, value=jnp.asarray(v0, _tree_get(state, "value").dtype), grad=g0)

    def cond(c):
        i, _, _, v, v_prev, g, ok = c
        return (i < steps) & ok & (_max_abs(g) > grad_tol) & (jnp.abs(v_prev - v) >= progress_tol)

    def body(c):
        i, p, s, v, _, g, _ = c
        with jax.numpy_dtype_promotion("standard"):
            updates, s_new = opt.update(g, s, p, value=v, grad=g, value_fn=value_fn)
            p_new = optax.apply_updates(p, updates)
        v_new, g_new = _tree_get(s_new, "value"), _tree_get(s_new, "grad")
        ok = jnp.isfinite(v_new) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(g_new)]))
        pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
        p_new, s_new, g_new = pick(p_new, p), pick(s_new, s), pick(g_new, g)
        v_new = jnp.where(ok, v_new, v)
        return i + ok.astype(i.dtype), p_new, s_new, v_new, v, g_new, ok

    v = _tree_get(state, "value")
    init = (jnp.zeros((), jnp.int32), params, state, v, jnp.full_like(v, jnp.inf), g0, jnp.ones((), bool))
    i, p, _, v, _, g, _ = jax.lax.while_loop(cond, body, init)
    return MinimizeResult(p, v.astype(jax.tree.leaves(params)[0].dtype), _max_abs(g), i)
