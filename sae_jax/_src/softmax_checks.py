r"""Softmax regression's input checks (:mod:`sae_jax.softmax`, :mod:`sae_jax.stacked`), eager and in-kernel.

Every check raises :class:`~sae_jax.InputError` (one line: the argument, what was expected, what was
given). Shapes and dtypes are static and always checked, also under the caller's ``jit``; values
(finite :math:`\theta` and ``x``, labels in :math:`[0, k)`, :math:`\lambda \ge 0` finite) whenever
they are concrete, unless ``values=False``. :func:`softmax_values_ok` is the same array value
checks as one boolean computed inside a compiled call (:func:`sae_jax._src.checked.compiled_call`), for
the public functions called on values; :func:`labels_need_host_check` says when labels must be
checked here instead (an ``int64`` NumPy array that ``jit`` would narrow to ``int32``).

A :class:`~sae_jax.softmax.SoftmaxParams` is recognised by its one field, ``theta`` (this module
does not import :mod:`sae_jax.softmax`, which imports it).

Examples:
  >>> import numpy as np
  >>> from sae_jax.softmax import SoftmaxParams
  >>> from sae_jax._src.softmax_checks import check_softmax_call, softmax_values_ok
  >>> params = SoftmaxParams(np.zeros((3, 2), np.float32))
  >>> x, y = np.ones((4, 2), np.float32), np.array([0, 1, 2, 2])
  >>> check_softmax_call(params, x, y, lam=1e-4)
  >>> bool(softmax_values_ok(params, x, y))
  True
  >>> check_softmax_call(params, x, np.array([0, 1, 2, 3]), lam=1e-4)
  Traceback (most recent call last):
  ...
  sae_jax.InputError: y must hold class indices in [0, 3) (k = 3 classes, from params.theta), got values in [0, 3]
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from . import validate
from .validate import InputError

__all__ = [
    "check_softmax_params",
    "check_features",
    "check_labels",
    "check_lam",
    "check_softmax_call",
    "softmax_values_ok",
    "labels_need_host_check",
]


def _finite(a) -> bool:
    if isinstance(a, np.ndarray):
        return bool(np.isfinite(a).all())
    with jax.ensure_compile_time_eval():
        return bool(jnp.all(jnp.isfinite(a)))


def _nonfinite(a) -> str:
    a = np.asarray(a)
    bad = ~np.isfinite(a)
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"{int(bad.sum())} non-finite value(s) (first {float(a[idx])} at index {idx})"


def check_softmax_params(params, *, values: bool = True, name: str = "params") -> None:
    """A :class:`~sae_jax.softmax.SoftmaxParams` whose ``theta`` is a floating ``(k, n)`` array, ``k, n >= 1``; finite when concrete."""
    if getattr(type(params), "_fields", None) != ("theta",):  # SoftmaxParams, recognised by its field
        hint = "; wrap it: SoftmaxParams(theta)" if hasattr(params, "shape") else ""
        raise InputError(f"{name} must be a sae_jax.softmax.SoftmaxParams(theta), got {type(params).__name__}{hint}")
    theta = params.theta
    if not hasattr(theta, "shape") or not hasattr(theta, "dtype"):
        raise InputError(f"{name}.theta must be an array of shape (k, n), got {type(theta).__name__}")
    if theta.ndim != 2 or theta.shape[0] < 1 or theta.shape[1] < 1:
        raise InputError(f"{name}.theta must be 2-D (k classes, n features), got shape {tuple(theta.shape)}")
    if not jnp.issubdtype(theta.dtype, jnp.floating):
        raise InputError(f"{name}.theta must be floating point, got dtype {theta.dtype}")
    if values and validate.is_concrete(theta) and not _finite(theta):
        raise InputError(f"{name}.theta must be finite, but has {_nonfinite(theta)}")


def check_features(x, *, n: int, dtype, name: str = "x", what: str = "params.theta", values: bool = True) -> None:
    """``x`` is a 2-D ``(m, n)`` array, ``m >= 1``, in ``dtype``; finite when concrete."""
    dtype = jnp.dtype(dtype)
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise InputError(
            f"{name} must be an array of shape (m, {n}) in {dtype}, got {type(x).__name__}; "
            f"convert it with jnp.asarray({name}, dtype={dtype.name!r})"
        )
    if x.ndim != 2 or x.shape[1] != n:
        hint = "; use x[None, :] for a single sample" if x.ndim == 1 and x.shape[0] == n else ""
        if x.ndim == 2 and x.shape[0] == n:
            hint = " (samples look like columns, UFLDL's layout: pass x.T)"
        raise InputError(f"{name} must have shape (m, {n}) to match {what} (n = {n}), got {tuple(x.shape)}{hint}")
    if x.shape[0] < 1:
        raise InputError(f"{name} must have at least one sample (row), got shape {tuple(x.shape)}")
    if jnp.dtype(x.dtype) != dtype:
        raise InputError(
            f"{name} must have the same dtype as {what} ({dtype}), got {jnp.dtype(x.dtype)}; "
            f"convert one of them (e.g. {name}.astype({dtype.name!r}))"
        )
    if values and validate.is_concrete(x) and not _finite(x):
        raise InputError(f"{name} must be finite, but has {_nonfinite(x)}")


def check_labels(y, *, m: int, k: int, name: str = "y", values: bool = True, source: str = "params.theta") -> None:
    """``y`` is an integer array ``(m,)`` of class indices in ``[0, k)`` (values checked when concrete)."""
    if not hasattr(y, "shape") or not hasattr(y, "dtype"):
        raise InputError(f"{name} must be an integer array of shape ({m},) (class indices), got {type(y).__name__}")
    if tuple(y.shape) != (m,):
        raise InputError(f"{name} must have shape ({m},) (one class index per row of x), got {tuple(y.shape)}")
    if not jnp.issubdtype(y.dtype, jnp.integer) or jnp.dtype(y.dtype) == jnp.dtype(bool):
        raise InputError(
            f"{name} must be integer class indices in [0, {k}), got dtype {jnp.dtype(y.dtype)}; "
            f"convert whole-number labels with {name}.astype(int)"
        )
    if values and validate.is_concrete(y):
        lo, hi = int(np.min(np.asarray(y))), int(np.max(np.asarray(y)))
        if lo < 0 or hi >= k:
            raise InputError(
                f"{name} must hold class indices in [0, {k}) (k = {k} classes, from {source}), "
                f"got values in [{lo}, {hi}]"
            )


def check_lam(lam, *, dtype=None) -> None:
    """``lam`` is a finite real scalar ``>= 0`` (and finite when cast to ``dtype``), value checked when concrete."""
    if isinstance(lam, (str, bytes, bool)) or lam is None:
        raise InputError(f"lam must be a real scalar >= 0, got {lam!r}")
    if np.shape(lam) != ():
        raise InputError(f"lam must be a scalar, got shape {np.shape(lam)} (to sweep values, jax.vmap over scalars)")
    dt = lam.dtype if hasattr(lam, "dtype") else np.asarray(lam).dtype
    if not (jnp.issubdtype(dt, jnp.floating) or jnp.issubdtype(dt, jnp.integer)):
        raise InputError(f"lam must be a real number, got dtype {dt}")
    if not validate.is_concrete(lam):
        return
    f = float(lam)
    if not math.isfinite(f) or f < 0:
        raise InputError(f"lam must be a finite number >= 0, got {f}")
    if dtype is not None:
        with np.errstate(over="ignore"):
            if not math.isfinite(float(np.asarray(f, jnp.dtype(dtype)))):
                raise InputError(f"lam={f:g} overflows {jnp.dtype(dtype).name}; use a smaller lam or float64")


def check_softmax_call(params, x, y=None, *, lam=None, values: bool = True) -> None:
    """Every check of a ``softmax_cost(params, x, y, lam=)`` call (``y``/``lam`` skipped when ``None``)."""
    check_softmax_params(params, values=values)
    k, n = params.theta.shape
    check_features(x, n=n, dtype=params.theta.dtype, values=values)
    if y is not None:
        check_labels(y, m=x.shape[0], k=k, values=values)
    if lam is not None:
        check_lam(lam, dtype=params.theta.dtype)


def labels_need_host_check(y) -> bool:
    """``y``'s dtype is not one ``jit`` keeps (``int64`` without ``jax_enable_x64`` becomes ``int32``,
    which could wrap an out-of-range label into range): check its values on the host, not in-kernel."""
    dt = getattr(y, "dtype", None)
    return dt is None or jax.dtypes.canonicalize_dtype(dt) != jnp.dtype(dt)


def softmax_values_ok(params, x, y=None, **_) -> jax.Array:
    """One boolean scalar, every array value check of :func:`check_softmax_call` at once: ``theta``
    and ``x`` finite (read off ``sum(a * 0)``, NaN for any NaN or inf) and, with ``y``, every label
    in ``[0, k)``. Computed inside a compiled call; other keyword arguments (``lam=``) are ignored
    (their values are checked in Python)."""
    ok = jnp.isfinite(jnp.sum(params.theta * 0) + jnp.sum(x * 0))
    if y is not None:
        ok = ok & (jnp.min(y) >= 0) & (jnp.max(y) < params.theta.shape[0])
    return ok
