r"""L-BFGS with the compact (matrix) form of the inverse-Hessian product: ``optax.lbfgs``'s
directions, without its two sequential loops over the history.

``optax.scale_by_lbfgs`` multiplies the gradient by the L-BFGS inverse-Hessian approximation
with the two-loop recursion (Nocedal & Wright, Algorithm 7.4): two ``lax.scan``\ s of
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

Examples:
  A drop-in for ``optax.lbfgs``: the same loop, with optax's own value-and-grad helper.

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
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import solve_triangular

__all__ = ["ScaleByCompactLBFGSState", "scale_by_compact_lbfgs", "lbfgs"]


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


_ZOOM = optax.scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one")


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
