r"""L-BFGS: the optax transformation (compact form) and the one driver every L-BFGS loop runs.

**The transformation.** :func:`lbfgs` is ``optax.lbfgs`` with :func:`scale_by_compact_lbfgs` in
place of ``optax.scale_by_lbfgs``. optax multiplies the gradient by the L-BFGS inverse-Hessian
approximation with the two-loop recursion (Nocedal & Wright, Algorithm 7.4): two ``lax.scan``\ s of
``memory_size`` steps, each a handful of tiny vector operations. With the UFLDL exercise's
history of 100 pairs and 3,289 parameters that is ~2 ms per iteration on a CPU, a fifth to a
quarter of the whole iteration (the cost+gradient call is 5-10 ms): the loop is
dispatch-bound, not arithmetic-bound.

Byrd, Nocedal & Schnabel (1994, Theorem 2.2) write the same matrix in closed form. With the
stored pairs in chronological order as the columns of :math:`S = [s_i]` (parameter
differences) and :math:`Y = [y_i]` (gradient differences), :math:`H_0 = \gamma I`,
:math:`R` the upper triangle of :math:`S^\top Y` (:math:`R_{ij} = s_i^\top y_j`,
:math:`i \le j`) and :math:`D` its diagonal,

.. math::
    H g = \gamma g + S\,t - \gamma\,Y r, \qquad
    r = R^{-1} S^\top g, \qquad
    t = R^{-\top}\big( (D + \gamma\, Y^\top Y)\, r - \gamma\, Y^\top g \big).

That is two matrix-vector products with the history, two 100×100 triangular solves and two
more products: no sequential loop. :math:`S^\top Y` and :math:`Y^\top Y` are kept in the
state and updated by one row and column per step (three more products), so the per-step work
stays :math:`O(\texttt{memory\_size} \cdot d)`.

Everything else is optax's, so the two are the same algorithm and interchangeable:

- the same state fields as ``optax.ScaleByLBFGSState`` (plus the two Gram matrices) and the
  same circular buffer;
- the same :math:`\gamma` (``scale_init_precond``) and the same first step (the gradient
  scaled by a capped reciprocal of its norm);
- a pair with :math:`s^\top y = 0` is skipped, as optax's weight 0 skips it.

``tests/test_lbfgs.py`` checks that the direction equals ``optax.scale_by_lbfgs``'s to
rounding at every step of real runs (partly filled history, wrap-around, skipped pairs),
and that training with it matches training with ``optax.lbfgs``. ``benchmarks/NOTES.md``
has the timings.

**The driver.** optax's recipe for a line-search method: the zoom line search stores the value
and gradient of the point it accepts in the optimizer state (its *cache*, ``value`` and
``grad``), so each iteration evaluates the objective only inside the line search. Every L-BFGS
loop in sae-jax is that recipe, written once here:

- :func:`value_with_grad`: a value-and-gradient function as the *value* function the line search
  differentiates (a ``jax.custom_vjp`` whose backward pass is the given gradient: the manual
  backprop, a sharded or chunked sum, a host callback; never autodiff through it);
- :func:`prime_linesearch`: the one way the cache is filled at the current parameters (where it
  is not finite: at the start, or after :func:`invalidate_linesearch`);
- :func:`optimizer_step`: one step, *how to evaluate* being its arguments: the value function
  (traced, or a host callback), the cache primed in the step or trusted as the caller primed it,
  or a value and gradient given (an optimizer without a line search, e.g. Adam);
- and the three loops over it: the trainer's (:func:`sae_jax._src.step.make_step`, inside the
  ``lax.while_loop`` of :mod:`sae_jax._src.loop`), :func:`lbfgs_loop` (one jitted step per Python
  iteration; the objective may be a host function, e.g. a chunked pass over a file) and
  :func:`minimize_lbfgs` (one jitted ``lax.while_loop`` with minFunc's stopping rules: softmax,
  stacked fine-tuning).

optax >= 0.2.5 (``pyproject.toml``): ``optax.tree``'s utilities and a zoom line search whose
state keeps the parameters' dtypes (0.2.4 has neither; ``tests/test_lbfgs.py`` holds the floor).

Examples:
  A drop-in for ``optax.lbfgs``, in optax's own loop:

  >>> import jax, jax.numpy as jnp, optax
  >>> from sae_jax.optim import lbfgs
  >>> f = lambda w: jnp.sum((w - jnp.arange(3.0)) ** 2)      # minimum at (0, 1, 2)
  >>> opt = lbfgs(memory_size=5)
  >>> w = jnp.zeros(3)
  >>> state = opt.init(w)
  >>> vg = optax.value_and_grad_from_state(f)
  >>> @jax.jit
  ... def step(w, state):
  ...     value, grad = vg(w, state=state)
  ...     updates, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=f)
  ...     return optax.apply_updates(w, updates), state
  >>> for _ in range(5):
  ...     w, state = step(w, state)
  >>> [round(float(v), 4) for v in w]
  [0.0, 1.0, 2.0]

  The same with this module's driver, the gradient given by hand:

  >>> from sae_jax._src.lbfgs import optimizer_step, value_with_grad
  >>> value_fn = value_with_grad(lambda w: (f(w), 2 * (w - jnp.arange(3.0))))
  >>> w, state = jnp.zeros(3), opt.init(jnp.zeros(3))
  >>> for _ in range(5):
  ...     w, state, value, grad = jax.jit(optimizer_step, static_argnums=(0, 1))(opt, value_fn, w, state)
  >>> [round(float(v), 4) for v in w]
  [0.0, 1.0, 2.0]

  A host (Python) objective, one jitted step per iteration: :func:`lbfgs_loop`; a jitted loop to
  convergence: :func:`minimize_lbfgs` (each with its example).
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import solve_triangular

from .checks import args as validate
from .params import Params
from .checks.errors import InputError

__all__ = [
    "ScaleByCompactLBFGSState", "scale_by_compact_lbfgs", "lbfgs",
    "zoom_linesearch", "optax_promotion",
    "value_with_grad", "traceable",
    "has_linesearch_cache", "prime_linesearch", "invalidate_linesearch", "optimizer_step",
    "LbfgsResult", "lbfgs_loop", "MinimizeResult", "minimize_lbfgs",
]


# ---------------------------------------------------------------------------------------------
# optax: the line search every L-BFGS here uses, and the promotion scope of optax's calls


def zoom_linesearch(max_linesearch_steps: int = 20) -> optax.GradientTransformationExtraArgs:
    """optax's zoom line search as every L-BFGS here uses it: at most ``max_linesearch_steps``
    evaluations, initial step 1 (``initial_guess_strategy="one"``, as optax recommends for
    quasi-Newton methods). Its state keeps the parameters' dtype for the value and the step size
    from optax 0.2.5 on (``pyproject.toml``'s floor: 0.2.4's does not, and fails under x64 with
    float32 parameters; ``tests/test_lbfgs.py``).

    Examples:
      >>> import jax.numpy as jnp
      >>> state = zoom_linesearch().init(jnp.zeros(2, jnp.float32))
      >>> state.value.dtype, float(state.value)
      (dtype('float32'), inf)
    """
    return optax.scale_by_zoom_linesearch(max_linesearch_steps=max_linesearch_steps, initial_guess_strategy="one")


def optax_promotion():
    """The dtype-promotion scope optax's own calls run in (a context manager).

    optax's L-BFGS mixes int32 and int64 indices under x64 (fine with JAX's default
    "standard" promotion, an error under "strict"); scope "standard" to optax's own calls so
    training works whatever the caller's global setting. sae-jax's own math is strict-clean.
    """
    return jax.numpy_dtype_promotion("standard")


# ---------------------------------------------------------------------------------------------
# The transformation


class ScaleByCompactLBFGSState(NamedTuple):
    r"""``optax.ScaleByLBFGSState``'s fields (the history flattened), plus its Gram matrices.

    Attributes:
      count: iterations so far (int32).
      params, updates: the parameters and gradient at the last call.
      diff_params_memory, diff_updates_memory: ``(memory_size, d)``: :math:`s_i`, :math:`y_i`
        as rows, each the flattened parameter tree (``jax.flatten_util.ravel_pytree``'s
        order); slot ``(count - 1) % memory_size`` is the newest.
      weights_memory: ``(memory_size,)`` :math:`1 / s_i^\top y_i`, 0 for an empty or
        skipped slot.
      sy_memory: ``(memory_size, memory_size)`` :math:`s_i^\top y_j`.
      yy_memory: ``(memory_size, memory_size)`` :math:`y_i^\top y_j`.
    """

    count: jax.Array
    params: optax.Params
    updates: optax.Params
    diff_params_memory: jax.Array
    diff_updates_memory: jax.Array
    weights_memory: jax.Array
    sy_memory: jax.Array
    yy_memory: jax.Array


def _flat(tree) -> jax.Array:
    return ravel_pytree(tree)[0]


def _precondition(updates, state: ScaleByCompactLBFGSState, identity_scale, memory_idx):
    """:math:`H g` by the compact form (module docstring); ``memory_idx`` = the oldest slot."""
    memory_size = state.weights_memory.shape[0]
    dtype = state.sy_memory.dtype
    order = (memory_idx + jnp.arange(memory_size, dtype=memory_idx.dtype)) % memory_size  # oldest ... newest
    valid = state.weights_memory[order] != 0
    both = valid[:, None] & valid[None, :]
    zero = jnp.zeros((), dtype)
    sy = jnp.where(both, state.sy_memory[order][:, order], zero)
    yy = jnp.where(both, state.yy_memory[order][:, order], zero)
    # Empty or skipped slots: zero rows and columns and a unit diagonal, so they drop out.
    R = jnp.triu(sy) + jnp.diag(jnp.where(valid, zero, jnp.ones((), dtype)))
    d = jnp.diagonal(sy)
    gamma = jnp.asarray(identity_scale, dtype)
    g, unravel = ravel_pytree(updates)
    S, Y = state.diff_params_memory, state.diff_updates_memory
    a = jnp.where(valid, (S @ g).astype(dtype)[order], zero)
    b = jnp.where(valid, (Y @ g).astype(dtype)[order], zero)
    r = solve_triangular(R, a, lower=False)
    t = solve_triangular(R, d * r + gamma * (yy @ r) - gamma * b, lower=False, trans="T")
    # Back to storage order: coefficient i belongs to slot order[i].
    coef_s = jnp.zeros_like(t).at[order].set(t)
    coef_y = jnp.zeros_like(r).at[order].set(-gamma * r)
    hg = gamma.astype(g.dtype) * g + coef_s.astype(S.dtype) @ S + coef_y.astype(Y.dtype) @ Y
    return jax.tree.map(lambda h, u: h.astype(u.dtype), unravel(hg.astype(g.dtype)), updates)


def scale_by_compact_lbfgs(memory_size: int = 10, scale_init_precond: bool = True) -> optax.GradientTransformation:
    r"""``optax.scale_by_lbfgs``'s direction :math:`H_k g_k`, by the compact matrix form.

    A drop-in for ``optax.scale_by_lbfgs(memory_size, scale_init_precond)``: the same
    algorithm, arguments and result (to rounding), with no sequential loop over the history
    (module docstring). Chain it with a line search as ``optax.lbfgs`` does, or use
    :func:`lbfgs`.

    Args:
      memory_size: number of :math:`(s, y)` pairs kept (100 in minFunc, which UFLDL used).
      scale_init_precond: :math:`H_0 = \gamma I` with
        :math:`\gamma = s^\top y / y^\top y` of the newest pair (else :math:`H_0 = I`).
    """
    if memory_size < 1:
        raise ValueError(f"memory_size must be >= 1, got {memory_size}")

    def init_fn(params) -> ScaleByCompactLBFGSState:
        flat = _flat(params)
        stacked = jnp.zeros((memory_size, flat.size), flat.dtype)
        gram = jnp.zeros((memory_size, memory_size), flat.dtype)
        return ScaleByCompactLBFGSState(
            count=jnp.asarray(0, jnp.int32),
            params=jax.tree.map(jnp.zeros_like, params),
            updates=jax.tree.map(jnp.zeros_like, params),
            diff_params_memory=stacked,
            diff_updates_memory=stacked,
            weights_memory=jnp.zeros(memory_size),  # optax's dtype (the default float)
            sy_memory=gram,
            yy_memory=gram,
        )

    def update_fn(updates, state: ScaleByCompactLBFGSState, params=None):
        if params is None:
            raise ValueError("scale_by_compact_lbfgs needs params")
        memory_idx = state.count % memory_size
        prev_memory_idx = (state.count - 1) % memory_size
        started = state.count > 0

        # 1. The newest pair (zero before the first step), as optax computes it.
        diff_params = optax.tree.sub(params, state.params)
        diff_updates = optax.tree.sub(updates, state.updates)
        curvature = optax.tree.real(optax.tree.vdot(diff_updates, diff_params))
        weight = jnp.where(curvature == 0.0, 0.0, 1.0 / curvature)
        diff_params, diff_updates, weight = jax.tree.map(
            lambda v: jnp.where(started, v, jnp.zeros_like(v)), (diff_params, diff_updates, weight)
        )
        s_new, y_new = _flat(diff_params), _flat(diff_updates)
        s_mem = state.diff_params_memory.at[prev_memory_idx].set(s_new)
        y_mem = state.diff_updates_memory.at[prev_memory_idx].set(y_new)
        w_mem = state.weights_memory.at[prev_memory_idx].set(weight)

        # 2. One new row and column of S^T Y and Y^T Y.
        dtype = state.sy_memory.dtype
        s_dot_y_new = (s_mem @ y_new).astype(dtype)  # s_i^T y_new
        y_dot_s_new = (y_mem @ s_new).astype(dtype)  # y_j^T s_new = s_new^T y_j
        y_dot_y_new = (y_mem @ y_new).astype(dtype)
        sy = state.sy_memory.at[:, prev_memory_idx].set(s_dot_y_new).at[prev_memory_idx, :].set(y_dot_s_new)
        yy = state.yy_memory.at[:, prev_memory_idx].set(y_dot_y_new).at[prev_memory_idx, :].set(y_dot_y_new)

        # 3. gamma, exactly as optax.scale_by_lbfgs.
        if scale_init_precond:
            numerator = optax.tree.real(optax.tree.vdot(diff_updates, diff_params))
            denominator = optax.tree.norm(diff_updates, squared=True)
            identity_scale = jnp.where(denominator > 0.0, numerator / denominator, 1.0)
            update_norm = optax.tree.norm(jax.lax.stop_gradient(updates))
            capped_inv_norm = jnp.minimum(1.0, 1.0 / update_norm)
            identity_scale = jnp.where(started, identity_scale, capped_inv_norm)
        else:
            identity_scale = 1.0

        new_state = ScaleByCompactLBFGSState(
            count=optax.safe_increment(state.count),
            params=params,
            updates=updates,
            diff_params_memory=s_mem,
            diff_updates_memory=y_mem,
            weights_memory=w_mem,
            sy_memory=sy,
            yy_memory=yy,
        )
        precond = _precondition(updates, new_state, identity_scale, memory_idx)
        return precond, new_state

    return optax.GradientTransformation(init_fn, update_fn)


_ZOOM = zoom_linesearch()


def lbfgs(
    learning_rate=None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: optax.GradientTransformationExtraArgs | None = _ZOOM,
) -> optax.GradientTransformationExtraArgs:
    """``optax.lbfgs`` with :func:`scale_by_compact_lbfgs` in place of ``optax.scale_by_lbfgs``.

    Same arguments and defaults as ``optax.lbfgs``: the zoom line search (at most 20
    evaluations, initial step 1) unless ``linesearch`` is given, no line search for ``None``;
    ``learning_rate=None`` means a step of 1 times the line search's.
    """
    base_scaling = optax.scale(-1.0) if learning_rate is None else optax.scale_by_learning_rate(learning_rate)
    if linesearch is None:
        linesearch = optax.identity()
    return optax.chain(scale_by_compact_lbfgs(memory_size, scale_init_precond), base_scaling, linesearch)


# ---------------------------------------------------------------------------------------------
# Value functions from value-and-gradient functions: the one custom_vjp


def _promoted_like(params, args):
    """``args`` with their floating arrays narrower than ``params``' dtype cast up to it.

    optax's line searches form trial points ``params + t * direction`` in their own precision:
    under x64 float32 parameters arrive as float64 while the data stay float32. JAX's standard
    promotion would compute in float64 anyway; casting the data up first gives the same numbers
    and keeps the public functions' same-dtype check (:func:`sae_jax._src.checks.args.check_data`) true.
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
        ``jax.value_and_grad(f, has_aux=True)``; ``aux`` is dropped). ``grads`` must have
        ``params``' structure and dtypes.
      has_aux: see above.

    Returns:
      ``value(params, *args, **kwargs) -> J``, jit-able wherever ``value_and_grad`` is (optax's
      line searches call it as ``value_fn(params, batch=...)``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> def value_and_grad(w):                     # J = |w|^2 with its gradient by hand
      ...     return jnp.sum(w * w), 2 * w
      >>> value = value_with_grad(value_and_grad)
      >>> J, g = jax.value_and_grad(value)(jnp.array([1.0, 2.0]))
      >>> float(J), g.tolist()
      (5.0, [2.0, 4.0])
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


def _result_shapes(like):
    """``(J, grads)`` shapes and dtypes for a callback returning a cost and a gradient like ``like``."""
    leaves = jax.tree.leaves(like)
    return (
        jax.ShapeDtypeStruct((), jnp.result_type(*leaves)),
        jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), like),
    )


def _on_host(host_fn: Callable, params, *operands):
    """``host_fn(*operands, params) -> (J, grads)`` run on the host (``jax.pure_callback``), its
    results in ``params``' structure and dtypes (``J`` in their common dtype)."""
    shapes = _result_shapes(params)
    treedef, leaf_shapes = jax.tree.structure(params), jax.tree.leaves(shapes[1])

    def host(*args):
        *ops, leaves = args
        J, g = host_fn(*ops, jax.tree.unflatten(treedef, leaves))
        return jnp.asarray(J, shapes[0].dtype), [jnp.asarray(a, s.dtype) for a, s in zip(jax.tree.leaves(g), leaf_shapes)]

    J, leaves = jax.pure_callback(
        host, (shapes[0], leaf_shapes), *operands, jax.tree.leaves(params), vmap_method="sequential"
    )
    return J, jax.tree.unflatten(treedef, leaves)


def traceable(value_and_grad: Callable) -> Callable:
    r"""Wrap a Python ``params -> (J, grads)`` function as a differentiable, jit-able JAX value function.

    Returns ``value(params) -> J`` such that, under ``jit``, ``jax.value_and_grad(value)`` calls
    ``value_and_grad`` **once** on the host (``jax.pure_callback``) and returns its ``(J, grads)``
    (:func:`value_with_grad`). This is what lets a chunked full-batch pass, a Python loop over data
    that never sits in memory at once, serve optax's L-BFGS and its zoom line search, which call
    ``jax.value_and_grad(value_fn)`` inside ``lax.while_loop``.

    The results are returned in the structure and dtypes of the parameters it is called with.
    Only first derivatives are available (the backward pass returns the host gradient).
    The host function itself runs JAX computations; that works on the CPU backend.

    Args:
      value_and_grad: e.g. :func:`sae_jax._src.chunked.make_chunked_value_and_grad`'s result.

    Examples:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> value = traceable(lambda w: (float(np.sum(np.asarray(w) ** 2)), 2 * np.asarray(w)))
      >>> J, g = jax.jit(jax.value_and_grad(value))(jnp.array([1.0, 2.0]))
      >>> float(J), g.tolist()
      (5.0, [2.0, 4.0])
    """
    return value_with_grad(lambda params: _on_host(value_and_grad, params))


# ---------------------------------------------------------------------------------------------
# The driver: the line search's cache, and one step


def has_linesearch_cache(opt_state) -> bool:
    """Whether an optax line search in ``opt_state`` stores the objective's ``value`` and ``grad``."""
    return optax.tree.get(opt_state, "value") is not None and optax.tree.get(opt_state, "grad") is not None


def prime_linesearch(value_fn: Callable, params, opt_state, **extra):
    """``opt_state`` with the line search's cached ``(value, grad)`` filled in at ``params`` where
    the cached value is not finite (it starts at ``inf``; :func:`invalidate_linesearch`); unchanged
    if the state has no cache. The one way every L-BFGS loop here fills it.

    ``optax.value_and_grad_from_state`` decides (a ``lax.cond``: one evaluation of
    ``jax.value_and_grad(value_fn)(params, **extra)`` when needed, none otherwise); the value is
    stored in the cache's dtype (optax 0.2.4 keeps it in the default float type).

    Args:
      value_fn: ``value_fn(params, **extra) -> J`` (:func:`value_with_grad`).
      params: the current parameters.
      opt_state: an optax state, e.g. of :func:`lbfgs`.
      extra: the objective's extra arguments (the trainer's ``batch=``), as optax passes them.
    """
    if not has_linesearch_cache(opt_state):
        return opt_state
    cached = optax.tree.get(opt_state, "value")

    def value_in_cache_dtype(p, **kw):
        v = value_fn(p, **kw)
        return v if jnp.result_type(v) == jnp.result_type(cached) else jnp.asarray(v, jnp.result_type(cached))

    with optax_promotion():
        value, grad = optax.value_and_grad_from_state(value_in_cache_dtype)(params, state=opt_state, **extra)
    return optax.tree.set(opt_state, value=value, grad=grad)


def invalidate_linesearch(opt_state):
    """``opt_state`` with the line search's cached value set to ``inf`` (recomputed by the next
    :func:`prime_linesearch`); unchanged if the state has no cache."""
    if not has_linesearch_cache(opt_state):
        return opt_state
    return optax.tree.set(opt_state, value=jnp.full_like(optax.tree.get(opt_state, "value"), jnp.inf))


def optimizer_step(
    optimizer: optax.GradientTransformationExtraArgs,
    value_fn: Callable,
    params,
    opt_state,
    *,
    value_and_grad: tuple | None = None,
    trust_cache: bool = False,
    **extra,
):
    r"""One step of ``optimizer`` by optax's line-search recipe: ``(new_params, new_state, value, grads)``.

    ``value, grads`` are the objective and its gradient at ``params`` (before the step), taken

    - from ``value_and_grad`` when given (an optimizer without a line-search cache, e.g. Adam,
      evaluated by the caller);
    - else from the line search's cache: filled here where stale (:func:`prime_linesearch`), or,
      with ``trust_cache=True``, read as the caller primed it (under ``vmap`` the priming's
      ``lax.cond`` becomes a select that evaluates the objective every step, so a vmapped loop
      primes once and trusts).

    The update receives ``value``, ``grad``, ``value_fn`` and ``extra`` (a line search evaluates
    trial points with ``value_fn(params, **extra)``; other transformations ignore them). Pure and
    jit-able; optax's calls run under :func:`optax_promotion`.
    """
    with optax_promotion():
        if value_and_grad is not None:
            value, grads = value_and_grad
        else:
            if not trust_cache:
                opt_state = prime_linesearch(value_fn, params, opt_state, **extra)
            value, grads = _cached(opt_state)
        updates, opt_state = optimizer.update(
            grads, opt_state, params, value=value, grad=grads, value_fn=value_fn, **extra
        )
        new_params = optax.apply_updates(params, updates)
    return new_params, opt_state, value, grads


def _cached(opt_state):
    return optax.tree.get(opt_state, "value"), optax.tree.get(opt_state, "grad")


# ---------------------------------------------------------------------------------------------
# Loop 1 (of 3; the trainer's is sae_jax._src.step.make_step): one jitted step per Python iteration


# Host functions for the cached L-BFGS step, looked up by an integer token passed as a traced
# argument: the compiled step depends only on shapes, so every run with the same shapes reuses it.
_HOST_FUNCTIONS: dict[int, Callable] = {}
_TOKENS = itertools.count()


def _token_value_and_grad(params, token):
    return _on_host(lambda t, p: _HOST_FUNCTIONS[int(t)](p), params, token)


_token_value = value_with_grad(_token_value_and_grad)


@functools.lru_cache(maxsize=None)
def _default_lbfgs(memory_size: int):
    # One object per memory size, so the cached compiled step (keyed on it) is reused.
    return lbfgs(memory_size=memory_size)


def _loop_step(value_fn, params, state, opt):
    new, state, J, g = optimizer_step(opt, value_fn, params, state)
    with optax_promotion():
        stored = (optax.tree.get(state, "value"), optax.tree.norm(optax.tree.get(state, "grad")))
        return new, state, (J, optax.tree.norm(g)), stored


@functools.partial(jax.jit, static_argnames=("optimizer",))
def _host_loop_step(params, state, token, *, optimizer):
    return _loop_step(lambda q: _token_value(q, token), params, state, optimizer)


class LbfgsResult(NamedTuple):
    """What :func:`lbfgs_loop` returns: the final parameters, and J and ‖∇J‖ at every iterate.

    ``values[0]`` and ``grad_norms[0]`` are at the starting point, so both lists have one entry
    more than the number of steps taken.

    Examples:
      >>> import jax.numpy as jnp
      >>> from sae_jax.optim import LbfgsResult
      >>> res = LbfgsResult(params=jnp.zeros(2), values=[2.0, 0.02, 0.0], grad_norms=[2.83, 0.28, 0.0])
      >>> len(res.values) - 1                            # steps taken (lbfgs_loop's example runs one)
      2
    """

    params: Any  # the final parameters
    values: list  # J at each iterate, values[0] at the start
    grad_norms: list  # ||grad J|| at each iterate


def lbfgs_loop(
    value_and_grad: Callable,
    params,
    *,
    num_steps: int,
    memory_size: int = 10,
    optimizer: optax.GradientTransformationExtraArgs | None = None,
    tol: float = 0.0,
    callback: Callable | None = None,
    traced: bool = False,
) -> LbfgsResult:
    r"""Minimise with :func:`lbfgs` (``optax.lbfgs``'s algorithm, zoom line search), one jitted step per Python iteration.

    ``value_and_grad`` is any ``params -> (J, grads)``: a jit-able one (e.g. ``partial`` of
    :func:`sae_jax.cost_and_grad`) is traced into the step with ``traced=True``; a Python one (e.g.
    :func:`sae_jax.scale.make_chunked_value_and_grad` over a ``.npy`` file) is called from the
    compiled step through a host callback (``jax.pure_callback`` under :func:`value_with_grad`), looked
    up by an integer token passed as a traced argument, so every run with the same shapes reuses the
    compiled step. Same algorithm either way, so a chunked run follows the in-memory run's trajectory.

    Args:
      value_and_grad: ``params -> (J, grads)``.
      params: starting point (any pytree of floating arrays).
      num_steps: maximum number of L-BFGS iterations.
      memory_size: L-BFGS history length (for the default ``lbfgs(memory_size=...)``).
      optimizer: another optax transformation taking ``value``, ``grad``, ``value_fn``, e.g.
        :func:`sae_jax.training.make_optimizer` of a ``TrainConfig``, to follow the trainer's exact
        L-BFGS (its memory and line-search settings).
      tol: stop when :math:`\lVert\nabla J\rVert \le` ``tol``.
      callback: called as ``callback(step, params, J)`` after each step.
      traced: ``True``: ``value_and_grad`` is jit-able (in-memory data) and is traced into the step;
        ``False`` (default): it is a Python function (e.g. chunked) called from the host. Never pass
        ``True`` for a chunked function: tracing it would bake the whole dataset into the program as
        constants.

    Returns:
      :class:`LbfgsResult` ``(params, values, grad_norms)``.

    Examples:
      A host (Python) objective, as for data streamed from disk: here J = Σ (p − c)², evaluated
      in NumPy outside the compiled step.

      >>> import numpy as np
      >>> import jax.numpy as jnp
      >>> from sae_jax.optim import lbfgs_loop
      >>> c = np.array([1.0, -2.0, 3.0], np.float32)
      >>> def value_and_grad(p):                      # called from the compiled step via a host callback
      ...     d = np.asarray(p) - c
      ...     return np.float32(np.sum(d ** 2)), (2 * d).astype(np.float32)
      >>> res = lbfgs_loop(value_and_grad, jnp.zeros(3), num_steps=10, tol=1e-6)
      >>> [round(float(v), 3) for v in res.params]
      [1.0, -2.0, 3.0]
      >>> res.values[0], round(res.values[-1], 6)
      (14.0, 0.0)
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
        raise InputError(f"num_steps must be an integer >= 0, got {num_steps!r}")
    if isinstance(params, Params):
        validate.check_params(params)
    elif not jax.tree.leaves(params) or not all(
        jnp.issubdtype(jnp.result_type(a), jnp.floating) for a in jax.tree.leaves(params)
    ):
        raise InputError(f"params must be a pytree of floating arrays, got {type(params).__name__}")
    opt = _default_lbfgs(int(memory_size)) if optimizer is None else optimizer
    with optax_promotion():
        state = opt.init(params)
    if num_steps == 0:
        J, g = value_and_grad(params)
        with optax_promotion():
            return LbfgsResult(params, [float(J)], [float(optax.tree.norm(g))])
    if traced:
        value_fn = value_with_grad(value_and_grad)
        step = jax.jit(lambda p, s: _loop_step(value_fn, p, s, opt))
    else:
        token = next(_TOKENS)
        _HOST_FUNCTIONS[token] = value_and_grad
        token_arr = jnp.asarray(token, jnp.int32)

        def step(p, s):
            return _host_loop_step(p, s, token_arr, optimizer=opt)

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


# ---------------------------------------------------------------------------------------------
# Loop 2: one jitted lax.while_loop to convergence (minFunc's stopping rules)


class MinimizeResult(NamedTuple):
    """What :func:`minimize_lbfgs` returns."""

    params: Any  # the final parameters (same pytree as the start)
    value: jax.Array  # shape=(), the objective there
    grad_max: jax.Array  # shape=(), max |gradient| there
    steps: jax.Array  # shape=(), int: iterations taken


def _max_abs(tree) -> jax.Array:
    return jnp.max(jnp.stack([jnp.max(jnp.abs(a)).astype(jnp.float32) for a in jax.tree.leaves(tree)]))


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))


@functools.partial(jax.jit, static_argnames=("value_and_grad_fn", "memory_size", "max_linesearch_steps"))
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
    r"""Minimise a deterministic objective by L-BFGS (:func:`lbfgs`, optax's zoom line search), one jitted loop.

    What the UFLDL exercises did with minFunc (``'lbfgs'``, ``maxIter``, history 100): at most
    ``steps`` iterations, stopping early, as minFunc does, when :math:`\max|\nabla| \le` ``grad_tol``
    (minFunc's ``optTol``) or the objective changes by less than ``progress_tol`` (``progTol``),
    or when a step gives a non-finite objective (that step is undone). The line search's trial
    points are evaluated through the *given* gradient (:func:`value_with_grad`), so a hand-written
    gradient drives the whole run. :func:`sae_jax.softmax.train_softmax` and
    :func:`sae_jax.stacked.fine_tune` use it; the sparse autoencoder's own trainer is
    :func:`sae_jax.training.train` (checkpoints, metrics, minibatches).

    Args:
      value_and_grad_fn: ``(params, *args) -> (value, grads)``, ``grads`` with ``params``' structure. Static:
        pass a module-level function (not a fresh lambda) so repeated calls reuse the compilation.
      params: starting point, any pytree of floating arrays.
      args: the data, passed to ``value_and_grad_fn`` as traced arguments.
      steps: the iteration limit (traced: no recompilation for another value).
      memory_size, max_linesearch_steps: L-BFGS history length and the zoom line search's limit.
      grad_tol, progress_tol: minFunc's ``optTol`` and ``progTol``.

    Returns:
      :class:`MinimizeResult` ``(params, value, grad_max, steps)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> def vg(p, c):                                   # J = ||p - c||^2 and its gradient
      ...     return jnp.sum((p - c) ** 2), 2 * (p - c)
      >>> r = minimize_lbfgs(vg, jnp.zeros(3), (jnp.array([1.0, 2.0, 3.0]),), steps=20)
      >>> [round(float(v), 4) for v in r.params], int(r.steps) <= 20
      ([1.0, 2.0, 3.0], True)
    """
    # Under x64 the zoom line search proposes float64 trial points for float32 params: the objective
    # sees them in the params' dtypes (as without x64), the line search gets the gradient in its own.
    dtypes = jax.tree.map(lambda a: a.dtype, params)

    def in_trial_dtypes(p):
        v, g = value_and_grad_fn(jax.tree.map(lambda a, d: a.astype(d), p, dtypes), *args)
        return v, jax.tree.map(lambda a, q: a.astype(q.dtype), g, p)

    value_fn = value_with_grad(in_trial_dtypes)
    opt = lbfgs(
        memory_size=memory_size,
        linesearch=zoom_linesearch(max_linesearch_steps),
    )
    with optax_promotion():  # optax mixes int32/int64 indices under x64
        state = prime_linesearch(value_fn, params, opt.init(params))
    v, g = _cached(state)

    def cond(c):
        i, _, _, v, v_prev, g, ok = c
        return (i < steps) & ok & (_max_abs(g) > grad_tol) & (jnp.abs(v_prev - v) >= progress_tol)

    def body(c):
        i, p, s, v, _, g, _ = c
        p_new, s_new, _, _ = optimizer_step(opt, value_fn, p, s, trust_cache=True)
        v_new, g_new = _cached(s_new)
        ok = jnp.isfinite(v_new) & _all_finite(g_new)
        pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
        p_new, s_new, g_new = pick(p_new, p), pick(s_new, s), pick(g_new, g)
        v_new = jnp.where(ok, v_new, v)
        return i + ok.astype(i.dtype), p_new, s_new, v_new, v, g_new, ok

    init = (jnp.zeros((), jnp.int32), params, state, v, jnp.full_like(v, jnp.inf), g, jnp.ones((), bool))
    i, p, _, v, _, g, _ = jax.lax.while_loop(cond, body, init)
    return MinimizeResult(p, v.astype(jax.tree.leaves(params)[0].dtype), _max_abs(g), i)
