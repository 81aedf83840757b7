"""Public math functions run compiled when called on values, their value checks fused in.

One mechanism for every public math function of the package (the autoencoder's cost and
gradients, softmax regression's, the stacked network's). Called on concrete values
(:func:`all_concrete`), the function checks in Python what needs no array values (shapes,
dtypes, hyperparameters: cheap, remembered where they can be), then hands itself to
:func:`compiled_call`, which runs it under ``jit`` — where it sees tracers and is the bare
math — together with a ``values_ok`` function of the same arguments that reduces every array
value check (finite parameters, finite data in range, labels in range) to one boolean inside
that same compiled program. The boolean is read back once; when it is false, the function's
``raise_for_values`` finds the bad entry on the host and raises the one :class:`~sae_jax.InputError`
an eager check would have raised, and the result is never returned. The result's own finiteness
(:func:`result_finite`) is folded into that same read-back (one array of two booleans): valid
inputs whose result is not a finite float (its true value overflows the dtype, e.g. float32 data
of 1e19 with a linear decoder, or a ``lam`` whose product with the weights overflows) raise one
line saying so instead of returning ``inf``. Under the caller's own ``jit``/``vmap``/``grad``
none of this happens: the function is the math, its shape checks run once at trace time, and
nothing can be raised, so an overflowing result is the float arithmetic's ``inf``/``NaN``.

:func:`checked_call` is that mechanism for the autoencoder's signature
``fn(params, x, *, lam, beta, rho, output, l1=, x_input=)`` (:func:`sae_jax.cost_and_grad`,
:func:`~sae_jax.cost_terms_and_grad`, :func:`~sae_jax.autodiff_cost_and_grad`,
:func:`~sae_jax.cost_terms`, :func:`sae_jax.metrics.evaluate`), with :func:`values_ok` its
in-kernel check and a ``jax.Array`` of data value-checked only the first time it is seen
(:mod:`sae_jax._src.validate`). :mod:`sae_jax.softmax` and :mod:`sae_jax.stacked` call
:func:`compiled_call` with their own ``values_ok``.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> import sae_jax
  >>> from sae_jax._src.checked import all_concrete, checked_call, compiled_call
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
  sae_jax.InputError: x must lie in [0, 1] for output='sigmoid' (the sigmoid's range), got values in [1.5, 1.5]; ...

  Any function, with its own in-kernel check and its own error:

  >>> def halve(v): return v / 2
  >>> def positive(v): return jnp.all(v > 0)
  >>> def complain(v): raise sae_jax.InputError(f"v must be > 0, got min {float(v.min())}")
  >>> compiled_call(halve, (jnp.ones(3),), {}, values_ok=positive, raise_for_values=complain).tolist()
  [0.5, 0.5, 0.5]
  >>> compiled_call(halve, (-jnp.ones(3),), {}, values_ok=positive, raise_for_values=complain)
  Traceback (most recent call last):
  ...
  sae_jax.InputError: v must be > 0, got min -1.0
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import validate

__all__ = ["all_concrete", "compiled_call", "checked_call", "values_ok", "hyperparams_ok", "result_finite", "raise_not_finite"]


class _Inside(threading.local):
    active = False


_INSIDE = _Inside()

# What a value's type says about it, remembered per type (an isinstance test against JAX's
# Tracer for every leaf of every call is the larger part of the check): 0 a tracer, 1 a concrete
# leaf, 2 a tuple or list (NamedTuples included), 3 a dict.
_KIND: dict[type, int] = {}


def _kind(t: type) -> int:
    if issubclass(t, jax.core.Tracer):
        k = 0
    elif issubclass(t, (tuple, list)):
        k = 2
    elif issubclass(t, dict):
        k = 3
    else:
        k = 1
    _KIND[t] = k
    return k


def _no_tracer(items) -> bool:
    kinds = _KIND
    for a in items:
        k = kinds.get(type(a))
        if k is None:
            k = _kind(type(a))
        if k == 1:
            continue
        if k == 0 or not _no_tracer(a if k == 2 else a.values()):
            return False
    return True


def all_concrete(*args) -> bool:
    """No argument holds a tracer of the caller's ``jit``/``vmap``/``grad`` (tuples, lists and dicts
    are looked into: :class:`~sae_jax.Params` and the other parameter NamedTuples): the call can run
    through :func:`compiled_call`."""
    # checked_call's own call of fn is only ever concrete under jax.disable_jit(): the math, then.
    return not _INSIDE.active and _no_tracer(args)


# --- the mechanism ------------------------------------------------------------------------------

_COMPILED: dict = {}


def result_finite(out) -> jax.Array:
    """One boolean scalar: every floating array in ``out`` (a pytree) is finite (read off
    ``sum(a * 0)``, NaN for any NaN or inf entry: one reduction per array).

    Examples:
      >>> import jax.numpy as jnp
      >>> bool(result_finite((jnp.ones(3), jnp.arange(2)))), bool(result_finite({"J": jnp.float32(jnp.inf)}))
      (True, False)
    """
    ok = jnp.bool_(True)
    for a in jax.tree.leaves(out):
        if jnp.issubdtype(jnp.result_type(a), jnp.inexact):
            ok = ok & jnp.isfinite(jnp.sum(a * 0))
    return ok


def _compiled(fn, values_ok_fn, n_args: int, names: tuple, static_argnames: tuple, check_result: bool = False):
    """``jit`` of ``(*args, *kwarg_values) -> (fn(*args, **kwargs), flags)`` with
    ``kwargs = dict(zip(names, kwarg_values))`` (positional: ``jit``'s quickest dispatch), the
    ``static_argnames`` among ``names`` static; ``flags`` is ``values_ok_fn(*args, **kwargs)`` or,
    with ``check_result``, the pair ``[values_ok, result finite]`` in one array (one read-back
    either way). One per distinct key, remembered."""
    key = (fn, values_ok_fn, n_args, names, static_argnames, check_result)
    compiled = _COMPILED.get(key)
    if compiled is None:
        def with_values_ok(*flat):
            args, kwargs = flat[:n_args], dict(zip(names, flat[n_args:]))
            ok = values_ok_fn(*args, **kwargs)  # first: its trace-time checks guard fn's trace
            _INSIDE.active = True
            try:
                out = fn(*args, **kwargs)
            finally:
                _INSIDE.active = False
            if check_result:
                ok = jnp.stack([jnp.asarray(ok, bool), result_finite(out)])
            return out, ok

        with_values_ok.__name__ = getattr(fn, "__name__", "checked")
        static = tuple(n_args + i for i, name in enumerate(names) if name in static_argnames)
        compiled = _COMPILED[key] = jax.jit(with_values_ok, static_argnums=static)
    return compiled


def compiled_call(
    fn: Callable,
    args: tuple,
    kwargs: dict,
    *,
    values_ok: Callable,
    raise_for_values: Callable,
    static_argnames: tuple = (),
    raise_for_result: Callable | None = None,
):
    """``fn(*args, **kwargs)`` run compiled, with ``values_ok(*args, **kwargs)`` in the same program.

    ``fn`` is a public math function, called here on values after its caller checked what needs
    no array values (shapes, dtypes, hyperparameters); inside the ``jit`` made here it sees
    tracers and is the bare math. ``values_ok`` returns one boolean scalar, every array value
    check at once (finite, in range), computed in the same compiled call and read back once
    (reading it waits for the call). When it is false, ``raise_for_values(*args, **kwargs)``
    inspects the arrays on the host and raises the one clear :class:`~sae_jax.InputError` an
    eager check would; the result is never returned. ``static_argnames``: keyword arguments that
    are static (strings such as ``output``); the rest are traced, so new values of a
    hyperparameter reuse the executable. One compilation per ``(fn, values_ok, static_argnames)``
    and argument structure.

    ``raise_for_result``: the result must be finite too. Its finiteness (every floating array of
    the result, :func:`result_finite`) is computed in the same program and read back with
    ``values_ok``'s boolean, in one array, so it costs one reduction per result array and no
    extra synchronisation. When the inputs are valid but the result is not finite (its true value
    is not a finite float in that dtype, or the computation overflows it),
    ``raise_for_result(out, *args, **kwargs)`` raises the one line that says so; the ``inf`` is
    never returned. Under the caller's own ``jit`` nothing can be raised: there the function
    returns the float arithmetic's ``inf``/``NaN`` as it is.
    """
    check_result = raise_for_result is not None
    try:
        out, ok = _compiled(fn, values_ok, len(args), tuple(kwargs), static_argnames, check_result)(
            *args, *kwargs.values()
        )
    except validate.InputError as e:  # from a trace-time check: the one line, without jit's frames
        raise validate.InputError(str(e)) from None
    ok = np.asarray(ok)  # the one read back: it waits for the call (benchmarks/NOTES.md #17)
    if not ok.all():
        if not ok.flat[0]:
            raise_for_values(*args, **kwargs)
            raise validate.InputError(  # values_ok and raise_for_values disagree: only after a conversion
                f"the inputs of {getattr(fn, '__name__', 'the call')} are non-finite or out of range as the "
                f"compiled call sees them (64-bit arrays are converted to 32 bits unless jax_enable_x64 is set)"
            )
        raise_for_result(out, *args, **kwargs)
        raise validate.InputError(f"the result of {getattr(fn, '__name__', 'the call')} is not finite")
    return out


def raise_not_finite(out, *args, name: str = "the call", hint: str = "", **kwargs) -> None:
    """The generic :class:`~sae_jax.InputError` of a result that is not finite (``raise_for_result``
    of :func:`compiled_call`): its dtype, its first value, and ``hint``."""
    leaves = [np.asarray(a) for a in jax.tree.leaves(out) if jnp.issubdtype(jnp.result_type(a), jnp.inexact)]
    bad = next((a for a in leaves if not np.isfinite(a).all()), leaves[0] if leaves else np.zeros(()))
    first = bad.ravel()[~np.isfinite(bad.ravel())][:1].tolist() or ["?"]
    raise validate.InputError(
        f"{name}: the result is not a finite {bad.dtype} at these inputs (a value {first[0]}): its true value "
        f"overflows {bad.dtype} or the inputs are too large to compute with in it{hint}"
    )


# --- the autoencoder's signature ----------------------------------------------------------------


def values_ok(params, x=None, *, output: str = "sigmoid", x_input=None) -> jax.Array:
    """One boolean scalar: the parameters are finite and ``x`` is finite and, for a sigmoid output,
    in [0, 1]: every value check of :func:`~sae_jax._src.validate.check_call`, computed inside a compiled entry point's
    own program and read back as one number.

    ``x=None``: the parameters only, for data already checked (:func:`~sae_jax._src.validate.data_checked`). Finiteness
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


def hyperparams_ok(params, *, lam, beta, rho, l1=None) -> jax.Array:
    """One boolean scalar: :func:`~sae_jax._src.validate.check_hyperparams`' value checks, in the compiled call.

    ``lam``, ``beta`` (and ``l1``) finite and ``>= 0``, ``0 < rho < 1``, each as given and as cast
    to the parameters' dtype (no overflow; ``rho`` a normal number below 1 there).
    """
    dtype = jnp.dtype(params[0].dtype)
    ok = jnp.bool_(True)
    for v in (lam, beta) + (() if l1 is None else (l1,)):
        v = jnp.asarray(v)
        ok = ok & jnp.isfinite(v) & (v >= 0) & jnp.isfinite(v.astype(dtype))
    r = jnp.asarray(rho)
    c = r.astype(dtype)
    return ok & jnp.isfinite(r) & (r > 0) & (r < 1) & (c >= jnp.finfo(dtype).tiny) & (c < 1)


# In compiled_call's calling convention (fn's arguments). At trace time they first check the
# shapes and dtypes (on tracers: static, once per compiled structure; jit's cache remembers the
# structures that passed), then reduce every value check to one boolean.
def _all_ok(params, x, *, lam, beta, rho, output, l1=None, x_input=None):
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output, values=False, l1=l1, x_input=x_input)
    return values_ok(params, x, output=output, x_input=x_input) & hyperparams_ok(params, lam=lam, beta=beta, rho=rho, l1=l1)


def _all_but_data_ok(params, x, *, lam, beta, rho, output, l1=None, x_input=None):
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output, values=False, l1=l1, x_input=x_input)
    return values_ok(params, None, output=output, x_input=x_input) & hyperparams_ok(params, lam=lam, beta=beta, rho=rho, l1=l1)


def _raise_eagerly(params, x, *, lam, beta, rho, output, l1=None, x_input=None):
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output, l1=l1, x_input=x_input)


_OUTPUT = ("output",)
_NUMBERS = frozenset({float, int, bool})  # Python numbers: jit takes them as scalars (bool: a dtype error, at trace time)
_ARRAYS: dict[type, bool] = {}  # type -> a concrete jax.Array (remembered: an ABC isinstance is slow)


def _is_array(a) -> bool:
    t = type(a)
    r = _ARRAYS.get(t)
    if r is None:
        r = _ARRAYS[t] = issubclass(t, jax.Array) and not issubclass(t, jax.core.Tracer)
    return r


def _checkable_in_trace(params, x, x_input, output, hypers) -> bool:
    """``jit`` sees these arguments as they are: every array a concrete ``jax.Array`` (its exact
    shape and dtype; a NumPy array would be converted to JAX's default dtypes first), every
    hyperparameter a Python number or such an array, ``output`` a string. Their shape and dtype
    checks can then run at trace time."""
    if type(output) is not str or not isinstance(params, tuple) or not _is_array(x):
        return False
    if x_input is not None and not _is_array(x_input):
        return False
    for a in params:
        if a is not None and not _is_array(a):
            return False
    for v in hypers:
        if v is not None and type(v) not in _NUMBERS and not _is_array(v):
            return False
        if type(v) is int and not -_INT32 <= v < _INT32:  # may not fit JAX's int: checked in Python first
            return False
    return True


_INT32 = 2**31


def _raise_cost_not_finite(out, params, x, *, lam, beta, rho, output, l1=None, x_input=None):
    """The autoencoder's result is not finite at valid inputs: one line with the scales that overflowed."""
    dt = jnp.dtype(params[0].dtype)
    xs = np.asarray(x if x_input is None else x_input)
    big = float(np.max(np.abs(xs))) if xs.size else 0.0
    wmax = max(float(np.max(np.abs(np.asarray(a)))) for a in params if a is not None)
    leaves = [np.asarray(a) for a in jax.tree.leaves(out) if jnp.issubdtype(jnp.result_type(a), jnp.inexact)]
    cost = leaves[0].ravel()[0] if leaves and leaves[0].size else None
    what = "cost" if cost is not None and not np.isfinite(cost) else "gradient"
    raise validate.InputError(
        f"the {what} is not a finite {dt.name} at these inputs ({what} {cost if what == 'cost' else 'non-finite'}): "
        f"its true value overflows {dt.name} (largest {float(jnp.finfo(dt).max):g}) with data up to {big:g} "
        f"(output={output!r}), weights up to {wmax:g}, lam={float(lam):g}, beta={float(beta):g}; "
        f"rescale the data, use smaller weights or hyperparameters, or float64"
    )


def checked_call(
    fn, params, x, *, lam, beta, rho, output: str = "sigmoid", l1=None, x_input=None, finite_result: bool = True
):
    """``fn(params, x, lam=, beta=, rho=, output=)`` compiled, with every input checked at almost no cost.

    The variants' options (``l1=``, ``x_input=``: :mod:`sae_jax.cost`) are passed on when given
    (traced; ``None`` leaves them out of the program).

    For the public entry points (:func:`sae_jax.cost_and_grad` and co.) called on values, through
    :func:`compiled_call` (``output`` static). Shapes and dtypes are checked at trace time, in the
    compiled call (so once per structure: ``jit``'s cache remembers it); where ``jit`` would convert
    an argument first (a NumPy array, a list) they are checked here, in Python, before it
    (remembered: :func:`~sae_jax._src.validate.check_call`). Every value — finite parameters, finite
    data in the output's range (for a ``jax.Array`` only the first time:
    :func:`~sae_jax._src.validate.data_checked`), the hyperparameters' ranges (:func:`hyperparams_ok`) — is
    reduced in the same compiled call to one boolean. A failure raises the same
    :class:`~sae_jax.InputError` as :func:`~sae_jax._src.validate.check_call`.

    The result is checked too (``finite_result``, default on): where the cost or gradient is not
    a finite float at valid inputs (data of ~1e19 and more with a linear decoder in float32, a
    ``lam`` whose product with ``‖W‖²`` overflows), one :class:`~sae_jax.InputError` says so and
    names the scales, instead of returning ``inf``. Folded into the same read-back as the input
    checks, it costs one reduction per result array. ``finite_result=False`` returns such a result
    as it is (:func:`sae_jax.metrics.evaluate`: the trainer reads a non-finite cost as divergence).

    Call it only when :func:`all_concrete` holds (under the caller's ``jit``/``vmap``/``grad``
    the public function checks what is concrete and computes in place, and nothing can be raised
    there: a non-finite result is returned as the float arithmetic gives it).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import sae_jax
      >>> from sae_jax._src.checked import checked_call
      >>> p = sae_jax.init_params(jax.random.key(0), 4, 2)
      >>> x = jnp.full((3, 4), 0.5)
      >>> J = checked_call(sae_jax.cost, p, x, lam=1e-4, beta=3.0, rho=0.1)
      >>> bool(J == sae_jax.cost(p, x, lam=1e-4, beta=3.0, rho=0.1))
      True
    """
    if not _checkable_in_trace(params, x, x_input, output, (lam, beta, rho, l1)):
        validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output, values=False, l1=l1, x_input=x_input)
    fresh = not validate.is_checked(x, output)
    kwargs = {"lam": lam, "beta": beta, "rho": rho, "output": output}
    if l1 is not None:
        kwargs["l1"] = l1
    if x_input is not None:
        kwargs["x_input"] = x_input
    out = compiled_call(
        fn, (params, x), kwargs, values_ok=_all_ok if fresh else _all_but_data_ok,
        raise_for_values=_raise_eagerly, static_argnames=_OUTPUT,
        raise_for_result=_raise_cost_not_finite if finite_result else None,
    )
    if fresh:
        validate.remember_checked(x, output)
    return out
