"""Public entry points run compiled, with every input check at almost no cost per call.

:func:`sae_jax.cost_and_grad`, :func:`~sae_jax.cost_terms_and_grad`,
:func:`~sae_jax.autodiff_cost_and_grad` and :func:`~sae_jax.cost_terms` called on values
(:func:`all_concrete`) run through :func:`checked_call`: their shapes, dtypes and hyperparameters
are checked in Python (remembered between calls: :mod:`sae_jax.validate`), the function itself
runs under ``jit``, where it is the bare math, and the array values (finite parameters, data finite
and in the output's range) are reduced inside that same compiled call to one boolean
(:func:`values_ok`), read back once. Under the caller's own ``jit``/``vmap``/``grad`` the public
functions skip all of this: their shape checks then run once, at trace time.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> import sae_jax
  >>> from sae_jax.checked import all_concrete, checked_call
  >>> p = sae_jax.init_params(jax.random.key(0), 4, 2)
  >>> x = jnp.full((3, 4), 0.5)
  >>> all_concrete(p, x, 1e-4, 3.0, 0.1)
  True
  >>> J = checked_call(sae_jax.cost, p, x, lam=1e-4, beta=3.0, rho=0.1)
  >>> bool(J == sae_jax.cost(p, x, lam=1e-4, beta=3.0, rho=0.1))
  True
  >>> checked_call(sae_jax.cost, p, x + 1, lam=1e-4, beta=3.0, rho=0.1)   # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ...
  sae_jax.validate.InputError: x must lie in [0, 1] for output='sigmoid' (the sigmoid's range), got values in [1.5, 1.5]; ...
"""

from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np

from . import validate

__all__ = ["all_concrete", "checked_call", "values_ok", "raise_for_values"]


class _Inside(threading.local):
    active = False


_INSIDE = _Inside()


def all_concrete(params, x, *others) -> bool:
    """``params`` is a tuple and every argument of the call is a value (none is a tracer of the
    caller's ``jit``/``vmap``/``grad``): the call can run through :func:`checked_call`."""
    tracer = jax.core.Tracer
    return (
        not _INSIDE.active  # checked_call's own call of fn (only ever concrete under jax.disable_jit())
        and isinstance(params, tuple)
        and not isinstance(x, tracer)
        and not any(isinstance(a, tracer) for a in params)
        and not any(isinstance(a, tracer) for a in others)
    )


def values_ok(params, x=None, *, output: str = "sigmoid", x_input=None) -> jax.Array:
    """One boolean scalar: the parameters are finite and ``x`` is finite and, for a sigmoid output,
    in [0, 1]: every value check of :func:`~sae_jax.validate.check_call`, computed inside a compiled entry point's
    own program and read back as one number.

    ``x=None``: the parameters only, for data already checked (:func:`~sae_jax.validate.data_checked`). Finiteness
    is read off sums and extrema (a NaN or inf makes ``sum(a * 0)`` NaN, and ``min``/``max`` of
    ``x`` non-finite), so each array is reduced once. ``x_input`` (a denoising call's corrupted
    input): finite, any range.
    """
    ok = jnp.isfinite(sum(jnp.sum(a * 0) for a in jax.tree.leaves(params)))
    if x_input is not None:
        ok = ok & jnp.isfinite(jnp.sum(x_input * 0))
    if x is not None:
        lo, hi = jnp.min(x), jnp.max(x)
        ok = ok & jnp.isfinite(lo) & jnp.isfinite(hi)
        if output == "sigmoid":
            ok = ok & (lo >= 0) & (hi <= 1)
    return ok


def raise_for_values(params, x, *, output: str = "sigmoid", name: str = "x", x_input=None) -> None:
    """After :func:`values_ok` said no: the one-line error :func:`~sae_jax.validate.check_call` would raise (the
    arrays are inspected again, on the host, for the bad entry and its index)."""
    validate.check_params(params)
    validate.check_data_values(x, output=output, name=name)
    if x_input is not None:
        validate.check_data_values(x_input, output="linear", name="x_input")


_WITH_STATS: dict = {}




def _with_value_stats(fn, data: bool):
    """``jit`` of ``fn`` that also returns :func:`values_ok` of its arrays (cached per ``fn``)."""
    key = (fn, data)
    compiled = _WITH_STATS.get(key)
    if compiled is None:
        def with_stats(params, x, lam, beta, rho, output, options):
            _INSIDE.active = True
            try:
                out = fn(params, x, lam=lam, beta=beta, rho=rho, output=output, **options)
            finally:
                _INSIDE.active = False
            x_input = options.get("x_input")
            return out, values_ok(params, x if data else None, output=output, x_input=x_input)

        compiled = _WITH_STATS[key] = jax.jit(with_stats, static_argnums=5)
    return compiled


def checked_call(fn, params, x, *, lam, beta, rho, output: str = "sigmoid", l1=None, x_input=None):
    """``fn(params, x, lam=, beta=, rho=, output=)`` compiled, with every input checked at almost no cost.

    The variants' options (``l1=``, ``x_input=``: :mod:`sae_jax.cost`) are passed on when given
    (traced; ``None`` leaves them out of the program).

    For the public entry points (:func:`sae_jax.cost_and_grad` and co.) called on values. ``fn``
    is the public function itself: inside the ``jit`` made here it sees tracers and checks only
    shapes and dtypes (at trace time). Here, in Python, the shapes, dtypes and hyperparameters
    are checked first (remembered: :func:`~sae_jax.validate.check_hyperparams`); the array values (finite
    parameters; finite data in the output's range, for a ``jax.Array`` only the first time:
    :func:`~sae_jax.validate.data_checked`) are reduced *inside the same compiled call* (:func:`values_ok`)
    and read back as one boolean, instead of separate eager reductions before it. A failure
    raises the same :class:`~sae_jax.InputError` as :func:`~sae_jax.validate.check_call` and the result is never returned.

    Call it only when :func:`all_concrete` holds (under the caller's ``jit``/``vmap``/``grad``
    the public function checks what is concrete and computes in place).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import sae_jax
      >>> from sae_jax.checked import checked_call
      >>> p = sae_jax.init_params(jax.random.key(0), 4, 2)
      >>> x = jnp.full((3, 4), 0.5)
      >>> J = checked_call(sae_jax.cost, p, x, lam=1e-4, beta=3.0, rho=0.1)
      >>> bool(J == sae_jax.cost(p, x, lam=1e-4, beta=3.0, rho=0.1))
      True
    """
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output, values=False, l1=l1, x_input=x_input)
    data = not validate.is_checked(x, output)
    options = {k: v for k, v in (("l1", l1), ("x_input", x_input)) if v is not None}
    out, ok = _with_value_stats(fn, data)(params, x, lam, beta, rho, output, options)
    ok.block_until_ready()  # (waiting first, then reading through NumPy, is the cheapest way to the bool)
    if not np.asarray(ok):
        raise_for_values(params, x, output=output, x_input=x_input)
    if data:
        validate.remember_checked(x, output)
    return out
