"""Input checks, run in Python before anything is traced or compiled.

Every check raises :class:`InputError` (a ``ValueError``) with one line naming
the argument, what was expected and what was given. Shape and dtype checks need
only static information and always run, also under ``jit``/``vmap`` (at trace
time, so they cost nothing per call). Value checks (ranges, finiteness) run
whenever the value is concrete; under the caller's own ``jit``/``vmap`` they are
skipped, so call :func:`check_call` once, before tracing, to check them there.

A leaf of the package: it imports nothing from ``sae_jax`` (the math modules import it).
It owns :data:`OUTPUTS`, the output layers every entry point accepts.

Examples:
  >>> from sae_jax import InputError
  >>> from sae_jax._src.validate import check_hyperparams, check_output
  >>> check_output("linear")
  >>> check_hyperparams(lam=1e-4, beta=3.0, rho=0.01)
  >>> try:
  ...     check_hyperparams(lam=1e-4, beta=3.0, rho=1.5)
  ... except InputError as e:
  ...     print(e)
  rho must be in (0, 1) (a target mean activation), got 1.5
"""

from __future__ import annotations

import math
import numbers
import os
import weakref

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "OUTPUTS",
    "PARAM_FIELDS",
    "InputError",
    "is_concrete",
    "check_sizes",
    "available_bytes",
    "check_fits_in_memory",
    "check_output",
    "check_params",
    "check_data",
    "check_hyperparams",
    "is_checked",
    "remember_checked",
    "data_checked",
    "remember_checked_data",
    "check_input",
    "check_call",
    "check_layer_input",
]

#: The output layers (``output=``): the sigmoid (data in [0, 1]) or the identity (a linear decoder).
OUTPUTS: tuple[str, ...] = ("sigmoid", "linear")
#: The fields of :class:`sae_jax.Params`, in order.
PARAM_FIELDS: tuple[str, ...] = ("W1", "b1", "W2", "b2")


class InputError(ValueError):
    """Bad input to a public sae-jax entry point (one clear line: argument, expectation, value)."""


def is_concrete(value) -> bool:
    """True unless ``value`` is a tracer (inside the caller's ``jit``, ``vmap``, ``grad``...)."""
    return not isinstance(value, jax.core.Tracer)


def _shape(a):
    return tuple(np.shape(a))


def check_sizes(*, n_visible, n_hidden) -> None:
    """``n_visible`` and ``n_hidden`` are integers ``>= 1``."""
    for name, v in (("n_visible", n_visible), ("n_hidden", n_hidden)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise InputError(f"{name} must be an integer >= 1, got {v!r}")


def available_bytes(device=None) -> int | None:
    """Bytes that an allocation can still take: on an accelerator its free memory
    (``memory_stats()``: ``bytes_limit - bytes_in_use``), else the host's available memory
    (``MemAvailable`` in ``/proc/meminfo``, or all physical memory). ``None`` if unknown."""
    if device is not None:
        try:
            stats = device.memory_stats()
        except Exception:  # pragma: no cover - backends without memory statistics
            stats = None
        if stats and "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        pass
    try:  # pragma: no cover - not Linux
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover
        return None


def check_fits_in_memory(what: str, nbytes: int, *, device=None, hint: str = "") -> None:
    """Refuse, before allocating, ``what`` needing ``nbytes`` bytes where fewer are available
    (:func:`available_bytes`): one :class:`InputError` stating both sizes in bytes, instead of a
    ``MemoryError`` or an XLA ``RESOURCE_EXHAUSTED`` (or abort) part-way through.

    Examples:
      >>> check_fits_in_memory("a small array", 800)
      >>> check_fits_in_memory("x (10**12, 64) float64", 8 * 64 * 10**12)   # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      sae_jax.InputError: x (10**12, 64) float64 needs 512000000000000 bytes (512 TB), more than the ... available in memory
    """
    avail = available_bytes(device)
    if avail is not None and nbytes > avail:
        where = f"on {device}" if device is not None and device.platform != "cpu" else "in memory"
        raise InputError(
            f"{what} needs {nbytes} bytes ({_human(nbytes)}), more than the {avail} bytes "
            f"({_human(avail)}) available {where}{hint}"
        )


def _human(n: int) -> str:
    for unit, k in (("EB", 10**18), ("PB", 10**15), ("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= k:
            return f"{n / k:.3g} {unit}"
    return f"{n} B"


def check_output(output) -> None:
    """``output`` is one of :data:`OUTPUTS`."""
    if output not in OUTPUTS:
        raise InputError(f"output must be one of {OUTPUTS}, got {output!r}")


def check_params(params, *, values: bool = True) -> None:
    """A :class:`~sae_jax.Params` of floating arrays of one dtype with UFLDL shapes
    ``W1 (h, n)``, ``b1 (h,)``, ``W2 (n, h)`` or ``None`` (tied: ``W2 = W1.T``), ``b2 (n,)``;
    finite values when concrete (unless ``values=False``: shapes and dtypes only)."""
    names = PARAM_FIELDS
    # Params is the NamedTuple with these fields (recognised by them, subclasses included: this
    # module is a leaf and does not import it).
    if not (isinstance(params, tuple) and getattr(type(params), "_fields", None) == PARAM_FIELDS):
        hint = (
            "; wrap it: sae_jax.Params(*params)"
            if isinstance(params, (tuple, list)) and len(params) == 4 else ""
        )
        raise InputError(
            f"params must be a sae_jax.Params(W1, b1, W2, b2) of 4 arrays, got {type(params).__name__}{hint}"
        )
    present = [(name, a) for name, a in zip(names, params) if not (name == "W2" and a is None)]  # W2=None: tied
    for name, a in present:
        if not hasattr(a, "shape") or not hasattr(a, "dtype"):
            raise InputError(f"params.{name} must be an array, got {type(a).__name__}")
    W1 = params[0]
    if W1.ndim != 2:
        raise InputError(f"params.W1 must be 2-D (n_hidden, n_visible), got shape {_shape(W1)}")
    h, n = W1.shape
    if h < 1 or n < 1:
        raise InputError(f"params.W1 must have n_hidden >= 1 and n_visible >= 1, got shape {_shape(W1)}")
    expected = {"b1": (h,), "W2": (n, h), "b2": (n,)}
    for name, a in present[1:]:
        if _shape(a) != expected[name]:
            raise InputError(
                f"params.{name} must have shape {expected[name]} to match W1 {(h, n)} "
                f"(n_hidden={h}, n_visible={n}), got {_shape(a)}"
            )
    dtype = jnp.dtype(W1.dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise InputError(f"params must be floating point, got params.W1 of dtype {dtype}")
    for name, a in present[1:]:
        if jnp.dtype(a.dtype) != dtype:
            raise InputError(
                f"params.{name} must have the same dtype as params.W1 ({dtype}), got {jnp.dtype(a.dtype)}"
            )
    arrays = [a for _, a in present]
    if values and all(is_concrete(a) for a in arrays):
        if all(isinstance(a, np.ndarray) for a in arrays):
            finite = all(bool(np.isfinite(a).all()) for a in arrays)
        else:
            with jax.ensure_compile_time_eval():  # one dispatch for the arrays
                finite = bool(_all_finite_jit(tuple(arrays)))
        if not finite:
            for name, a in present:
                a = np.asarray(a)
                if not np.isfinite(a).all():
                    raise InputError(f"params.{name} must be finite, but has {_describe_nonfinite(a)}")


@jax.jit
def _all_finite_jit(arrays):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in arrays]))


def _describe_nonfinite(x: np.ndarray) -> str:
    bad = ~np.isfinite(x)
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"{int(bad.sum())} non-finite value(s) (first {float(x[idx])} at index {idx})"


@jax.jit
def _stats(x):
    return jnp.all(jnp.isfinite(x)), jnp.min(x), jnp.max(x)


def check_data_values(x, *, output: str = "sigmoid", name: str = "x") -> None:
    """``x`` is finite and, for a sigmoid output layer, inside [0, 1] (the sigmoid's range)."""
    if isinstance(x, np.ndarray):
        finite = bool(np.isfinite(x).all())
        lo, hi = (x.min(), x.max()) if finite else (None, None)
    else:
        # Concrete data closed over inside someone's jit trace is still concrete:
        # evaluate the summary eagerly rather than staging it into their trace.
        with jax.ensure_compile_time_eval():
            finite, lo, hi = (v.item() for v in _stats(x))
    if not finite:
        raise InputError(f"{name} must be finite, but has {_describe_nonfinite(np.asarray(x))}")
    if output == "sigmoid" and (lo < 0 or hi > 1):
        raise InputError(
            f"{name} must lie in [0, 1] for output='sigmoid' (the sigmoid's range), "
            f"got values in [{float(lo):.6g}, {float(hi):.6g}]; rescale the data or use output='linear'"
        )


def check_data(x, params, *, output: str = "sigmoid", name: str = "x", values: bool = True) -> None:
    """``x`` is ``(m, n_visible)`` with ``m >= 1``, in ``params``' dtype; values checked if concrete
    (unless ``values=False``)."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise InputError(f"{name} must be an array of shape (m, n_visible), got {type(x).__name__}")
    n = params.W1.shape[1]
    if x.ndim != 2:
        raise InputError(
            f"{name} must be 2-D (m, n_visible) with samples as rows, got shape {_shape(x)}"
            + ("; use x[None, :] for a single sample" if x.ndim == 1 else "")
        )
    if x.shape[1] != n:
        hint = ""
        if x.shape[0] == n:
            hint = " (samples look like columns, UFLDL's layout: pass x.T)"
        raise InputError(
            f"{name} must have shape (m, {n}) to match params (n_visible={n}), got {_shape(x)}{hint}"
        )
    if x.shape[0] < 1:
        raise InputError(f"{name} must have at least one sample (row), got shape {_shape(x)}")
    dtype = jnp.dtype(params.W1.dtype)
    if jnp.dtype(x.dtype) != dtype:
        raise InputError(
            f"{name} must have the same dtype as params ({dtype}), got {jnp.dtype(x.dtype)}; "
            f"convert one of them (e.g. x.astype({dtype.name!r}), or load_dataset(..., dtype={dtype.name!r}))"
        )
    if values and is_concrete(x):
        check_data_values(x, output=output, name=name)


def check_hyperparams(*, lam, beta, rho, dtype=None, l1=None) -> None:
    """Scalars with ``lam >= 0``, ``beta >= 0``, ``0 < rho < 1`` (and, if given, ``l1 >= 0``), all
    finite (values checked if concrete).

    With ``dtype`` (the parameters' dtype, in which the cost uses them), the values are also
    checked *as cast to it*: ``lam`` and ``beta`` must not overflow (``1e39`` is ``inf`` in
    float32) and ``rho`` must stay a normal number below 1 (``0.99999999`` rounds to 1 and
    ``1e-46`` to 0 in float32; either makes the KL term NaN).

    A value that passed is remembered (Python and NumPy scalars by value, a ``jax.Array`` by
    identity: both immutable), so a loop that passes the same hyperparameters pays once.
    """
    named = (("lam", lam), ("beta", beta), ("rho", rho)) + ((("l1", l1),) if l1 is not None else ())
    for name, v in named:
        key = _scalar_key(v)
        if key is not None:
            key = (name, key, dtype)
            if key in _SCALARS_CHECKED:
                continue
        elif isinstance(v, jax.Array) and is_checked(v, (name, dtype)):
            continue
        _check_scalar(name, v, dtype)
        if key is not None:
            if len(_SCALARS_CHECKED) > 1024:
                _SCALARS_CHECKED.clear()
            _SCALARS_CHECKED[key] = True
        elif is_concrete(v):
            remember_checked(v, (name, dtype))


_SCALARS_CHECKED: dict = {}


def _scalar_key(v):
    """A hashable key for an immutable Python or NumPy scalar (``None`` for anything else)."""
    t = type(v)
    if t is float or t is int or isinstance(v, np.generic):
        return (t, v)
    return None


def _check_scalar(name: str, v, dtype) -> None:
    if isinstance(v, (str, bytes)) or v is None:
        raise InputError(f"{name} must be a real scalar, got {v!r}")
    shape = _shape(v)
    if shape != ():
        raise InputError(
            f"{name} must be a scalar, got shape {shape} (to sweep values, jax.vmap over scalars)"
        )
    if type(v) is int:  # jit takes a Python int as JAX's default integer: one that does not fit is an OverflowError there
        info = np.iinfo(jax.dtypes.canonicalize_dtype(np.int64))
        if not info.min <= v <= info.max:
            raise InputError(
                f"{name}={_int_str(v)} is a Python int outside JAX's {info.dtype} range [{info.min}, {info.max}]; "
                "pass it as a float"
            )
    dt = v.dtype if hasattr(v, "dtype") else np.asarray(v).dtype  # no cast (1e39 in float32)
    if not (jnp.issubdtype(dt, jnp.floating) or jnp.issubdtype(dt, jnp.integer)):
        raise InputError(f"{name} must be a real number, got dtype {dt}")
    if not is_concrete(v):
        return
    f = float(v)
    if not math.isfinite(f):
        raise InputError(f"{name} must be finite, got {f}")
    if name in ("lam", "beta", "l1") and f < 0:
        raise InputError(f"{name} must be >= 0, got {f}")
    if name == "rho" and not 0 < f < 1:
        raise InputError(f"rho must be in (0, 1) (a target mean activation), got {f}")
    if dtype is not None:
        _check_in_dtype(name, f, dtype)


def _int_str(v: int) -> str:
    d = str(abs(v))
    return str(v) if len(d) <= 24 else f"{'-' if v < 0 else ''}{d[0]}.{d[1:4]}e{len(d) - 1} (an int of {len(d)} digits)"


def _check_in_dtype(name: str, f: float, dtype) -> None:
    """``f`` (already checked in float64) as the cost will use it: cast to ``dtype``."""
    dt = jnp.dtype(dtype)
    if not jnp.issubdtype(dt, jnp.floating):
        return
    fi = jnp.finfo(dt)
    with np.errstate(over="ignore", under="ignore"):
        c = float(np.asarray(f, dt))
    if not math.isfinite(c):
        raise InputError(
            f"{name}={f:g} overflows {dt.name} (largest finite value {float(fi.max):g}); "
            f"use a smaller {name} or float64"
        )
    if name == "rho" and not (float(fi.tiny) <= c < 1):
        raise InputError(
            f"rho={f!r} is {c!r} in {dt.name}, where rho must be a normal number in "
            f"[{float(fi.tiny):g}, {1 - float(fi.epsneg):.9g}] "
            f"(else the KL term is NaN); use such a rho or float64"
        )


def check_input(x_input, x, params, *, values: bool = True) -> None:
    """A denoising call's corrupted input: ``x``'s shape and params' dtype, finite (if concrete and
    ``values``); any range (only the target ``x`` is the sigmoid's output)."""
    want = f"an array of the shape of x, the clean target {_shape(x)}, in params' dtype ({jnp.dtype(params.W1.dtype)})"
    if not hasattr(x_input, "dtype") or _shape(x_input) != _shape(x) or x_input.dtype != params.W1.dtype:
        kind = "an array" if isinstance(x_input, (jax.Array, np.ndarray)) else type(x_input).__name__  # never a tracer's class
        got = f"{kind} {_shape(x_input)} {getattr(x_input, 'dtype', '')}".rstrip()
        raise InputError(f"x_input (the corrupted input) must be {want}, got {got}")
    if values and is_concrete(x_input):
        check_data_values(x_input, output="linear", name="x_input")


def check_call(
    params, x, *, lam, beta, rho, output="sigmoid", values: bool = True, l1=None, x_input=None
) -> None:
    """All checks of a ``cost(params, x, lam=, beta=, rho=, output=, l1=, x_input=)`` call.

    ``values=False`` leaves out the array values (finite parameters, finite data in the output's
    range) but still checks the hyperparameters' values: the compiled entry points check the
    arrays inside their own compiled call instead (:func:`checked_call`, :func:`values_ok`).

    With ``values=False``, shapes and dtypes that passed are remembered (by the arrays' types,
    shapes and dtypes), so a loop calling with the same structure pays a set lookup for them.
    """
    if values:
        check_output(output)
        check_params(params)
        check_data(x, params, output=output)
        if x_input is not None:
            check_input(x_input, x, params)
    else:
        key = _structure_key(params, x, output, x_input)
        if key is None or key not in _STRUCTURES_CHECKED:
            check_output(output)
            check_params(params, values=False)
            check_data(x, params, output=output, values=False)
            if x_input is not None:
                check_input(x_input, x, params, values=False)
            if key is not None:
                if len(_STRUCTURES_CHECKED) > 256:
                    _STRUCTURES_CHECKED.clear()
                _STRUCTURES_CHECKED.add(key)
    check_hyperparams(lam=lam, beta=beta, rho=rho, dtype=params.W1.dtype, l1=l1)


_STRUCTURES_CHECKED: set = set()


def _structure_key(params, x, output, x_input=None):
    """What the shape and dtype checks of a call depend on, or ``None`` (then they run in full)."""
    try:
        return (
            output, type(params), type(x), x.shape, x.dtype,
            *[None if a is None else (type(a), a.shape, a.dtype) for a in (*params, x_input)],
        )
    except (AttributeError, TypeError):
        return None


# Arrays whose values passed a check, by identity. jax.Arrays are immutable, so an array that
# passed once passes again: a training or benchmark loop that calls the public functions on the
# same data (or the same hyperparameter arrays) pays for its check once. (numpy arrays are mutable
# and are checked every call.) An entry leaves with its array (weakref callback).
_CHECKED: dict[int, tuple] = {}


def is_checked(a, tag) -> bool:
    """``a`` (a ``jax.Array``) already passed the value check named by ``tag``."""
    entry = _CHECKED.get(id(a))
    return entry is not None and entry[0]() is a and tag in entry[1]


def remember_checked(a, tag) -> None:
    """Record that ``a`` passed the value check named by ``tag`` (``jax.Array`` only, else nothing)."""
    if not isinstance(a, jax.Array) or isinstance(a, jax.core.Tracer):
        return
    key = id(a)
    entry = _CHECKED.get(key)
    tags = entry[1] | {tag} if entry is not None and entry[0]() is a else {tag}
    try:
        ref = weakref.ref(a, lambda _, key=key: _CHECKED.pop(key, None))
    except TypeError:
        return
    if len(_CHECKED) > 256:
        _CHECKED.clear()
    _CHECKED[key] = (ref, frozenset(tags))


def data_checked(x, output: str) -> bool:
    """``x`` (a ``jax.Array``) already passed the data value checks for ``output``."""
    return is_checked(x, output)


def remember_checked_data(x, output: str) -> None:
    """Record that ``x`` passed the data value checks for ``output`` (``jax.Array`` only)."""
    remember_checked(x, output)


def check_layer_input(params, x, *, width: int, name: str = "x", what: str = "n_visible") -> None:
    """The input of :func:`~sae_jax.encode` / ``decode`` / ``forward``: an array ``(..., width)`` in params' dtype.

    The dtype rule of every sae-jax math function: **data must already be in the parameters'
    dtype** (float32 params take float32 data, float64 params float64 data); nothing is
    converted silently, so precision is never lost or promoted behind the caller's back.
    Shapes and dtypes only (static, so also under ``jit``/``vmap``); values are not checked here.
    """
    dtype = jnp.dtype(params[0].dtype)
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise InputError(
            f"{name} must be an array of shape (m, {width}) in params' dtype ({dtype}), got "
            f"{type(x).__name__}; convert it with jnp.asarray({name}, dtype={dtype.name!r})"
        )
    if x.ndim < 1 or x.shape[-1] != width:
        hint = ""
        if x.ndim == 2 and x.shape[0] == width:
            hint = " (samples look like columns, UFLDL's layout: pass x.T)"
        raise InputError(
            f"{name} must have shape (m, {width}) or ({width},) to match params ({what}={width}), "
            f"got {_shape(x)}{hint}"
        )
    if jnp.dtype(x.dtype) != dtype:
        raise InputError(
            f"{name} must have the same dtype as params ({dtype}), got {jnp.dtype(x.dtype)}; "
            f"convert one of them (e.g. {name}.astype({dtype.name!r}), or load_dataset(..., dtype={dtype.name!r}))"
        )
