r"""One optimizer step: the objective, the optax transformation, and the step that joins them.

``make_value_and_grad(gradient, lam=, beta=, rho=, ...)``
    The objective as ``value_and_grad_fn(params, batch) -> ((cost, aux), grads)`` — the
    convention of ``jax.value_and_grad(f, has_aux=True)``, with ``aux`` a
    :class:`~sae_jax.CostTerms`. ``gradient="manual"`` is the tutorial's backprop
    (:func:`sae_jax.cost_terms_and_grad`), ``"autodiff"`` is ``jax.value_and_grad`` of
    :func:`sae_jax.cost_terms`; the two give the same trajectory to float tolerance (tested).

``make_optimizer(config)``
    The optax transformation of a :class:`~sae_jax.training.TrainConfig`: L-BFGS
    (:mod:`sae_jax._src.lbfgs`, zoom line search), Adam or SGD.

``make_step(value_and_grad_fn, optimizer)``
    One step ``step(params, opt_state, batch) -> (params, opt_state, StepOutput)``. **This is
    the seam for other gradients**: any function with the signature above — e.g. a
    data-sharded or chunked gradient that sums per-device partial results — plugs in here
    (and into :func:`sae_jax.training.train` through its ``value_and_grad_fn`` argument), unchanged
    for every optimizer. Line searches evaluate the objective through the same function
    (:func:`value_fn_from` wraps it in a ``jax.custom_vjp``), so they never fall back to
    ``jax.grad``; the value and gradient a line search caches at the accepted point are
    reused through ``optax.value_and_grad_from_state``.

Everything here is pure and traceable; the compiled loop around it is :mod:`sae_jax._src.loop`.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax import init_params
  >>> from sae_jax.training import TrainConfig
  >>> from sae_jax.training import make_optimizer
  >>> from sae_jax._src.step import make_step, make_value_and_grad
  >>> p = init_params(jax.random.key(0), 4, 2)
  >>> x = jnp.full((8, 4), 0.5)
  >>> vg = make_value_and_grad("manual", lam=1e-4, beta=3.0, rho=0.1)
  >>> opt = make_optimizer(TrainConfig(optimizer="adam", learning_rate=0.1, dtype="float32"))
  >>> step = jax.jit(make_step(vg, opt))
  >>> p1, s1, out = step(p, opt.init(p), x)
  >>> out.value.shape, bool(out.grads_finite), p1.W1.shape
  ((), True, (2, 4))
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .backprop import cost_terms_and_grad
from .config import GRADIENTS, OPTIMIZERS, RHO_HAT, TrainConfig, check_choice
from .cost import cost_terms
from .lbfgs import lbfgs as compact_lbfgs
from .minibatch import autodiff_ema_cost_terms_and_grad, ema_cost_terms_and_grad
from .objective import value_with_grad
from .params import Params

__all__ = [
    "ValueAndGradFn",
    "StepOutput",
    "DenoisingBatch",
    "make_value_and_grad",
    "value_fn_from",
    "make_optimizer",
    "make_step",
    "prime_cache",
    "invalidate_cache",
    "optax_promotion",
    "all_finite",
]

ValueAndGradFn = Callable[[Params, Any], tuple[tuple[jax.Array, Any], Params]]

# optax >= 0.2.5 has optax.tree; older releases optax.tree_utils
_tree_get = optax.tree.get if hasattr(optax, "tree") else optax.tree_utils.tree_get
_tree_set = optax.tree.set if hasattr(optax, "tree") else optax.tree_utils.tree_set


def make_value_and_grad(
    gradient: str = "manual",
    *,
    lam,
    beta,
    rho,
    output: str = "sigmoid",
    rho_hat: str = "batch",
    ema_decay=0.9,
    l1=None,
    denoising: bool = False,
) -> ValueAndGradFn:
    r"""The objective as ``value_and_grad_fn(params, batch) -> ((cost, CostTerms), grads)``.

    Args:
      gradient: ``"manual"`` (the tutorial's backprop) or ``"autodiff"`` (``jax.value_and_grad``).
      lam, beta, rho, output: as for :func:`sae_jax.cost`.
      rho_hat: ``"batch"``: ``batch`` is the data ``(m, n_visible)``; ``"ema"``: ``batch`` is an
        :class:`~sae_jax._src.minibatch.EmaBatch` ``(x, rho_prev)`` and ``CostTerms.rho_hat`` is the
        new running estimate.
      ema_decay: α for ``rho_hat="ema"``.
      l1: the L1 activation penalty's weight (``None``: no term; :mod:`sae_jax._src.variants`).
      denoising: ``batch`` is a :class:`DenoisingBatch` ``(x, x_input)``: the data (or
        ``EmaBatch``) and its corrupted copy, which the network reads (``x_input=``).

    Traceable: call it inside ``jit`` (under a trace the public math functions check shapes
    and dtypes only; :func:`sae_jax.training.train` checks the values once, where the data enter).
    """
    check_choice("gradient", gradient, GRADIENTS)
    check_choice("rho_hat", rho_hat, RHO_HAT)
    hp = dict(lam=lam, beta=beta, rho=rho, output=output)
    if l1 is not None:
        hp["l1"] = l1

    def split(params, batch):  # (data, {x_input: the corrupted copy}) of a denoising batch
        if not denoising:
            return batch, {}
        return batch.x, {"x_input": _in_dtype_of(params, batch.x_input)}

    if rho_hat == "ema":
        impl = ema_cost_terms_and_grad if gradient == "manual" else autodiff_ema_cost_terms_and_grad

        def value_and_grad_fn(params, batch):
            batch, noisy = split(params, batch)
            terms, grads = impl(params, batch, ema_decay=ema_decay, **hp, **noisy)
            return (terms.cost, terms), grads

    elif gradient == "manual":

        def value_and_grad_fn(params, batch):
            x, noisy = split(params, batch)
            terms, grads = cost_terms_and_grad(params, _in_dtype_of(params, x), **hp, **noisy)
            return (terms.cost, terms), grads

    else:

        def f(params, batch):
            x, noisy = split(params, batch)
            terms = cost_terms(params, _in_dtype_of(params, x), **hp, **noisy)
            return terms.cost, terms

        value_and_grad_fn = jax.value_and_grad(f, has_aux=True)
    value_and_grad_fn.__doc__ = f"sae-jax objective ({gradient} gradient, rho_hat={rho_hat})"
    return value_and_grad_fn


def _in_dtype_of(params, x):
    """``x`` in ``params``' dtype (a no-op for data in the training dtype).

    With 64-bit JAX enabled, optax's zoom line search computes its step sizes in float64 (its
    internal scalars have the default float type), so the trial points of a float32 run are
    float64 parameters; they are evaluated, as they always were, on the data promoted to
    float64 (the public cost functions refuse mixed dtypes). The accepted step is cast back to
    float32 by ``optax.apply_updates``.
    """
    return x.astype(params.W1.dtype) if x.dtype != params.W1.dtype else x


def value_fn_from(value_and_grad_fn: ValueAndGradFn) -> Callable:
    """``value_fn(params, batch) -> cost`` whose ``jax.grad`` *is* ``value_and_grad_fn``'s gradient.

    The objective's convention (``((cost, aux), grads)``) passed to the package's one
    ``custom_vjp`` helper, :func:`sae_jax._src.objective.value_with_grad`: optax's line searches call
    ``jax.value_and_grad(value_fn)``, and this makes them use the given (manual, autodiff,
    sharded...) gradient rather than autodiff of whatever the forward computation is.
    """
    value = value_with_grad(value_and_grad_fn, has_aux=True)

    def value_fn(params, batch):  # optax passes the line search's extra argument as batch=
        return value(params, batch)

    return value_fn


def make_optimizer(config: TrainConfig) -> optax.GradientTransformationExtraArgs:
    """The optax transformation a config asks for.

    ``lbfgs``: :func:`sae_jax.optim.lbfgs` (``optax.lbfgs``'s algorithm, with the compact
    matrix form of the inverse-Hessian product instead of optax's two sequential loops over
    the history: the same directions, 3-4x less optimizer overhead per step at memory 100)
    with optax's zoom line search (``initial_guess_strategy="one"``, as optax recommends for
    quasi-Newton methods).
    ``adam``: ``optax.adam(learning_rate)``. ``sgd``: ``optax.sgd(learning_rate, momentum)``.
    """
    if config.optimizer == "lbfgs":
        return compact_lbfgs(
            memory_size=config.lbfgs_memory,
            linesearch=optax.scale_by_zoom_linesearch(
                max_linesearch_steps=config.max_linesearch_steps, initial_guess_strategy="one"
            ),
        )
    if config.optimizer == "adam":
        return optax.adam(config.learning_rate)
    if config.optimizer == "sgd":
        return optax.sgd(config.learning_rate, momentum=config.momentum or None)
    check_choice("optimizer", config.optimizer, OPTIMIZERS)
    raise AssertionError("unreachable")


class DenoisingBatch(NamedTuple):
    """A batch for a denoising objective: the data (the target; or an ``EmaBatch``) and the
    corrupted copy the network reads (:func:`sae_jax.corrupt`)."""

    x: Any  # shape=(b, n_visible), or an EmaBatch
    x_input: jax.Array  # shape=(b, n_visible)


class StepOutput(NamedTuple):
    value: jax.Array  # shape=(), the objective at the parameters *before* this step
    grads_finite: jax.Array  # shape=(), bool: every gradient entry finite
    aux: Any  # the objective's aux (CostTerms) when computed this step, else None


def _has_cache(opt_state) -> bool:
    """Whether an optax line search in ``opt_state`` stores the objective's ``value`` and ``grad``."""
    return _tree_get(opt_state, "value") is not None and _tree_get(opt_state, "grad") is not None


def make_step(
    value_and_grad_fn: ValueAndGradFn, optimizer: optax.GradientTransformation, *, trust_cache: bool = False
) -> Callable:
    r"""One optimizer step, pure and jittable: ``step(params, opt_state, batch)``.

    Args:
      value_and_grad_fn: ``(params, batch) -> ((cost, aux), grads)``, the convention of
        ``jax.value_and_grad(f, has_aux=True)``; ``grads`` has ``params``' structure. Any
        implementation — :func:`make_value_and_grad`'s manual or autodiff one, or a sharded /
        chunked one — works unchanged.
      optimizer: an optax transformation. It receives the extra arguments ``value``, ``grad``,
        ``value_fn`` (:func:`value_fn_from`) and ``batch``, which line searches use and other
        optimizers ignore.
      trust_cache: read the line search's cache without testing it (see below).

    Returns:
      ``step(params, opt_state, batch) -> (new_params, new_opt_state, StepOutput)``.

    If the optimizer state caches the objective's value and gradient at the current
    parameters (optax's line searches store them under ``value`` and ``grad``), they are
    reused — valid for a deterministic full-batch objective, which is how :func:`sae_jax.training.train`
    uses L-BFGS — by ``optax.value_and_grad_from_state``: the cache starts at ``inf``, so the
    first step computes them (through :func:`value_fn_from`'s ``custom_vjp``, i.e. by
    ``value_and_grad_fn``). ``trust_cache=True`` uses the cache without that utility's
    ``lax.cond`` on its finiteness — for callers that fill it first (:func:`prime_cache`):
    under ``vmap`` the ``cond`` becomes a select that evaluates the objective every step,
    whether or not the cache is valid. Without a cache (Adam, SGD) the objective is evaluated
    directly, and its ``aux`` is handed back in :class:`StepOutput`.
    """
    value_fn = value_fn_from(value_and_grad_fn)
    from_state = optax.value_and_grad_from_state(value_fn)

    def step(params, opt_state, batch):
        aux = None
        if not _has_cache(opt_state):
            (value, aux), grads = value_and_grad_fn(params, batch)
        elif trust_cache:
            value, grads = _tree_get(opt_state, "value"), _tree_get(opt_state, "grad")
        else:
            value, grads = from_state(params, batch, state=opt_state)
        with optax_promotion():
            updates, opt_state = optimizer.update(
                grads, opt_state, params, value=value, grad=grads, value_fn=value_fn, batch=batch
            )
        new_params = optax.apply_updates(params, updates)
        return new_params, opt_state, StepOutput(value, all_finite(grads), aux)

    return step


def prime_cache(value_and_grad_fn: ValueAndGradFn, params, opt_state, batch):
    """``opt_state`` with the line search's cached ``(value, grad)`` filled in at ``params``
    where it is not finite (it starts at ``inf``); unchanged if the state has no cache.

    The same ``optax.value_and_grad_from_state`` test as :func:`make_step`'s, once, so that
    ``make_step(..., trust_cache=True)`` may then read the cache unconditionally.
    """
    if not _has_cache(opt_state):
        return opt_state
    value, grad = optax.value_and_grad_from_state(value_fn_from(value_and_grad_fn))(params, batch, state=opt_state)
    return _tree_set(opt_state, value=value, grad=grad)


def invalidate_cache(opt_state):
    """``opt_state`` with the line search's cached value set to ``inf`` (recomputed at the next step)."""
    if not _has_cache(opt_state):
        return opt_state
    return _tree_set(opt_state, value=jnp.full_like(_tree_get(opt_state, "value"), jnp.inf))


def optax_promotion():
    """The dtype-promotion scope optax's own calls run in (a context manager).

    optax's L-BFGS mixes int32 and int64 indices under x64 (fine with JAX's default
    "standard" promotion, an error under "strict"); scope "standard" to optax's own calls so
    training works whatever the caller's global setting. sae-jax's own math is strict-clean.
    """
    return jax.numpy_dtype_promotion("standard")


def all_finite(tree) -> jax.Array:
    """``True`` (a 0-d bool array) iff every entry of every leaf of ``tree`` is finite."""
    leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)
