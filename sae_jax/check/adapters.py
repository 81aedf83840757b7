"""Running someone else's cost-and-gradient on the probes, in the convention it is written in.

- ``ufldl``: ``f(theta, visibleSize, hiddenSize, lambda, sparsityParam, beta, data) -> (cost, grad)``,
  data as columns ``(n_visible, m)``, ``theta = [W1(:); W2(:); b1(:); b2(:)]`` packed column-major
  (MATLAB) or row-major (numpy ports); the packing is detected.
- ``rows``: ``f(params, x, lam, beta, rho) -> (cost, grads)``, samples as rows ``(m, n_visible)``;
  ``params`` supports ``params.W1``, ``params["W1"]`` and ``W1, b1, W2, b2 = params``; ``grads``
  may be a named tuple, a dict (``W1``/``b1``/``W2``/``b2``, or ``W1grad``...) or a sequence of four
  arrays (``W1, b1, W2, b2`` or theta's order ``W1, W2, b1, b2``). ``lam``, ``beta``, ``rho`` (and
  ``output``) are passed by keyword when the signature names them.

Tied weights (``tied=True``, W2 = W1ᵀ): ``theta = [W1(:); b1(:); b2(:)]`` (packing detected likewise);
rows-form ``params`` is ``Params(W1, b1, None, b2)`` (``params.W2`` None, sae-jax's tied parameters)
and the gradient ``W1, b1, b2`` (a named tuple or dict whose W2 is None or absent, or a sequence
of three arrays, or of four with None third).

Inputs are NumPy float64 arrays, or torch float64 tensors for a function whose module imports
torch (``arrays="torch"``; torch is imported only then). Outputs may be NumPy, JAX or torch.
Every way the code cannot be run raises :class:`~sae_jax.InputError` with one line.

Examples:
  >>> from sae_jax.check.adapters import detect_convention, load_function, make_target
  >>> def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
  ...     pass
  >>> detect_convention(sparseAutoencoderCost), detect_convention(lambda params, x, lam, beta, rho: 0)
  ('ufldl', 'rows')
  >>> fn = load_function("sae_jax.backprop:cost_and_grad")     # "module:function" or "file.py:function"
  >>> make_target(fn).convention                               # params, x + keywords lam, beta, rho
  'rows'
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import types
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..params import Params
from ..validate import InputError
from .probes import Probe, pack_theta, unpack_theta

__all__ = ["load_function", "detect_convention", "Target", "make_target", "ProbeParams", "to_numpy", "to_scalar", "rows_grads"]

CONVENTIONS = ("ufldl", "rows")


class ProbeParams(Params):
    """:class:`~sae_jax.Params` that also answers ``params["W1"]`` (for dict-style code)."""

    __slots__ = ()

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return getattr(self, key)
            except AttributeError:
                raise KeyError(key) from None
        return super().__getitem__(key)

    def keys(self):
        return self._fields


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_function(spec: str) -> Callable:
    """``path/to/file.py:function`` or ``package.module:function`` -> the callable."""
    if not isinstance(spec, str) or ":" not in spec:
        raise InputError(f"target must be 'path/to/file.py:function' or 'package.module:function', got {spec!r}")
    where, name = spec.rsplit(":", 1)
    if not name.isidentifier() or not where:
        raise InputError(f"target must be 'path/to/file.py:function' or 'package.module:function', got {spec!r}")
    try:
        if where.endswith(".py") or os.sep in where or "/" in where:
            path = os.path.abspath(where)
            if not os.path.isfile(path):
                raise InputError(f"target file {where!r} does not exist")
            modname = f"_sae_jax_check_target_{abs(hash(path))}"
            spec_ = importlib.util.spec_from_file_location(modname, path)
            if spec_ is None or spec_.loader is None:
                raise InputError(f"target file {where!r} cannot be imported as Python")
            module = importlib.util.module_from_spec(spec_)
            folder = os.path.dirname(path)
            sys.path.insert(0, folder)  # so the file's own sibling imports work
            try:
                sys.modules[modname] = module
                spec_.loader.exec_module(module)
            finally:
                sys.path.remove(folder)
        else:
            module = importlib.import_module(where)
    except InputError:
        raise
    except (Exception, SystemExit) as e:  # their module failed to import: one line, no traceback
        raise InputError(f"importing {where!r} failed: {_one_line(e)}") from None
    fn = getattr(module, name, None)
    if fn is None:
        raise InputError(f"{where!r} has no attribute {name!r}")
    if not callable(fn):
        raise InputError(f"{spec!r} is not callable (it is a {type(fn).__name__})")
    return fn


def _signature(fn):
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def detect_convention(fn: Callable) -> str | None:
    """``"ufldl"`` for 7 positional parameters, ``"rows"`` for 5 (or params, x + lam/beta/rho); else None."""
    sig = _signature(fn)
    if sig is None:
        return None
    ps = list(sig.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in ps):
        return None
    positional = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    names = {p.name.lower() for p in ps}
    if len(required) == 7 or (len(positional) >= 7 and positional[0].name.lower() == "theta"):
        return "ufldl"
    if len(required) == 5 or (len(required) == 2 and {"lam", "beta", "rho"} <= names):
        return "rows"
    return None


def _arrays_kind(fn) -> str:
    """'torch' when the function's module imports torch, else 'numpy'."""
    g = getattr(inspect.unwrap(fn), "__globals__", {}) or {}
    for v in g.values():
        if isinstance(v, types.ModuleType) and v.__name__.split(".")[0] == "torch":
            return "torch"
    return "numpy"


def to_numpy(a, what: str) -> np.ndarray:
    """``a`` (NumPy, JAX, torch, a list...) as a float64 NumPy array; ``what`` names it in the error."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch tensor
        a = a.detach().cpu().numpy()
    try:
        out = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{what} is not numeric ({type(a).__name__}: {_one_line(e)})") from None
    return out


def to_scalar(a, what: str) -> float:
    """``a`` as a Python float (one element of any shape); ``what`` names it in the error."""
    arr = to_numpy(a, what)
    if arr.size != 1:
        raise InputError(f"{what} must be a scalar, got shape {arr.shape}")
    return float(arr.reshape(()))


def _fit(arr: np.ndarray, shape: tuple, what: str) -> np.ndarray:
    """``arr`` as ``shape`` when it is that shape up to singleton axes (e.g. MATLAB's (h, 1) bias)."""
    if arr.shape == shape:
        return arr
    if arr.size == int(np.prod(shape)) and [d for d in arr.shape if d != 1] == [d for d in shape if d != 1]:
        return arr.reshape(shape)
    raise InputError(f"{what} has shape {arr.shape}, expected {shape}")


_GRAD_KEYS = ("W1", "b1", "W2", "b2")


def _tied_rows_grads(g, probe: Probe, who: str) -> tuple[Params, bool]:
    h, n = probe.n_hidden, probe.n_visible
    keys = ("W1", "b1", "b2")
    if isinstance(g, dict) or hasattr(g, "keys") and not hasattr(g, "_fields"):
        lower = {str(k).lower().replace("grad", "").replace("_", ""): k for k in g.keys()}
        extra = [k for lk, k in lower.items() if lk not in ("w1", "b1", "b2") and not (lk == "w2" and g[k] is None)]
        try:
            arrays = [g[lower[k.lower()]] for k in keys]
        except KeyError:
            arrays = None
        if arrays is None or extra:
            raise InputError(f"{who}: tied weights: the gradient dict must have keys W1, b1, b2 (no W2), "
                             f"got {list(g.keys())}")
    elif hasattr(g, "_fields") and set(keys) <= set(g._fields) and getattr(g, "W2", None) is None:
        arrays = [getattr(g, k) for k in keys]
    elif isinstance(g, (tuple, list)) and (len(g) == 3 or len(g) == 4 and g[2] is None):
        arrays = [g[0], g[1], g[-1]]
    else:
        raise InputError(f"{who}: tied weights: the gradient must be W1, b1, b2 (a named tuple or dict with "
                         f"W2 None or absent, or a sequence of 3 arrays), got {type(g).__name__}"
                         + (f" of length {len(g)}" if isinstance(g, (tuple, list)) else ""))
    W1, b1, b2 = (to_numpy(a, f"{who}: gradient {k}") for a, k in zip(arrays, keys))
    transposed = W1.shape == (n, h) and h != n
    if transposed:  # W1grad computed transposed: read row-major, as numpy code packs
        W1 = W1.reshape((h, n))
    return Params(_fit(W1, (h, n), f"{who}: gradient W1"), _fit(b1, (h,), f"{who}: gradient b1"), None,
                  _fit(b2, (n,), f"{who}: gradient b2")), transposed


def rows_grads(g, probe: Probe, who: str) -> tuple[Params, bool]:
    """Their rows-form gradient as Params (UFLDL shapes); True if the weights came back transposed."""
    if probe.tied:
        return _tied_rows_grads(g, probe, who)
    h, n = probe.n_hidden, probe.n_visible
    shapes = {"W1": (h, n), "b1": (h,), "W2": (n, h), "b2": (n,)}
    if isinstance(g, dict) or hasattr(g, "keys") and not hasattr(g, "_fields"):
        lower = {str(k).lower().replace("grad", "").replace("_", ""): k for k in g.keys()}
        try:
            arrays = [g[lower[k.lower()]] for k in _GRAD_KEYS]
        except KeyError:
            raise InputError(f"{who}: the gradient dict must have keys W1, b1, W2, b2, got {list(g.keys())}") from None
    elif hasattr(g, "_fields") and set(_GRAD_KEYS) <= set(g._fields):
        arrays = [getattr(g, k) for k in _GRAD_KEYS]
    elif isinstance(g, (tuple, list)) and len(g) == 4:
        arrays = list(g)
    else:
        raise InputError(
            f"{who}: the gradient must be W1, b1, W2, b2 (a named tuple, dict or sequence of 4 arrays), "
            f"got {type(g).__name__}"
        )
    arrays = [to_numpy(a, f"{who}: gradient array {i}") for i, a in enumerate(arrays)]
    sq = lambda a: tuple(d for d in a.shape if d != 1) or (1,)  # noqa: E731
    got = [sq(a) for a in arrays]
    want = lambda order: [tuple(d for d in shapes[k] if d != 1) or (1,) for k in order]  # noqa: E731
    transposed = False
    if got == want(("W1", "b1", "W2", "b2")):
        W1, b1, W2, b2 = arrays
    elif got == want(("W1", "W2", "b1", "b2")) and h != n:
        W1, W2, b1, b2 = arrays
    elif got == want(("W2", "b1", "W1", "b2")) and h != n:  # W1grad and W2grad computed transposed
        W1, b1, W2, b2 = arrays
        W1, W2 = W1.reshape(shapes["W1"]), W2.reshape(shapes["W2"])  # read row-major, as numpy code packs
        transposed = True
    else:
        raise InputError(
            f"{who}: gradient arrays have shapes {[a.shape for a in arrays]}, expected W1 {shapes['W1']}, "
            f"b1 {shapes['b1']}, W2 {shapes['W2']}, b2 {shapes['b2']}"
        )
    return Params(*(_fit(a, shapes[k], f"{who}: gradient {k}") for a, k in zip((W1, b1, W2, b2), _GRAD_KEYS))), transposed


@dataclass
class Target:
    """Their function bound to a convention: ``evaluate(probe, params) -> (cost, Params)`` in UFLDL shapes."""

    fn: Callable
    label: str
    convention: str
    arrays: str  # "numpy" or "torch"
    packing: str = "F"  # ufldl only: "F" or "C"
    low_precision: set = field(default_factory=set)  # dtypes below float64 seen in their outputs

    def _inputs(self, a):
        a = np.array(a, dtype=np.float64)  # a fresh copy per call: their code may write into it
        if self.arrays == "torch":
            import torch

            return torch.from_numpy(a)
        return a

    def _call(self, probe: Probe, *args, **kwargs):
        import jax

        who = f"{self.label} on probe {probe.name}"
        try:
            with jax.enable_x64(True):  # JAX code runs in float64 like everything here
                out = self.fn(*args, **kwargs)
        except (Exception, SystemExit) as e:
            raise InputError(f"{who} raised {_one_line(e)}") from None
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise InputError(f"{who} must return (cost, gradient), got {type(out).__name__}"
                             + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
        return out, who

    def _note_dtypes(self, arrays) -> None:
        try:
            for a in arrays:
                name = str(getattr(a, "dtype", "")).replace("torch.", "")
                if name in ("float32", "float16", "bfloat16"):
                    self.low_precision.add(name)
        except TypeError:  # not iterable: the shape check reports it
            pass

    def evaluate(self, probe: Probe, params: Params | None = None) -> tuple[float, Params, bool]:
        """Their (cost, gradient as UFLDL-shaped Params, weights-transposed flag) at ``params`` (default: the probe's)."""
        params = probe.params if params is None else params
        h, n = probe.n_hidden, probe.n_visible
        if self.convention == "ufldl":
            theta = self._inputs(pack_theta(params, self.packing))
            (J, g), who = self._call(probe, theta, n, h, probe.lam, probe.rho, probe.beta, self._inputs(probe.x.T))
            self._note_dtypes([g])
            grad = to_numpy(g, f"{who}: gradient")
            N = (1 if probe.tied else 2) * h * n + h + n
            if grad.size != N or grad.ndim > 2 or (grad.ndim == 2 and 1 not in grad.shape):
                other = (2 if probe.tied else 1) * h * n + h + n
                hint = (" (untied weights? drop --tied)" if probe.tied else " (tied weights? pass --tied)") \
                    if grad.size == other else ""
                raise InputError(f"{who}: gradient has shape {grad.shape}, expected a vector of {N} (like theta){hint}")
            grads, transposed = unpack_theta(grad.ravel(), n, h, self.packing, tied=probe.tied), False
        else:
            p = ProbeParams(*(None if a is None else self._inputs(a) for a in params))
            x = self._inputs(probe.x)
            sig = _signature(self.fn)
            names = set(sig.parameters) if sig is not None else set()
            hp = dict(lam=probe.lam, beta=probe.beta, rho=probe.rho)
            if {"lam", "beta", "rho"} <= names:
                kw = dict(hp, **({"output": probe.output} if "output" in names else {}))
                out, who = self._call(probe, p, x, **kw)
            else:
                out, who = self._call(probe, p, x, probe.lam, probe.beta, probe.rho)
            J, g = out
            self._note_dtypes(g.values() if isinstance(g, dict) else g)
            grads, transposed = rows_grads(g, probe, who)
        cost = to_scalar(J, f"{who}: cost")
        bad = [k for k, a in zip(("cost",) + _GRAD_KEYS, (np.asarray(cost),) + tuple(grads))
               if a is not None and not np.all(np.isfinite(a))]
        if bad:
            raise InputError(f"{who} returned non-finite values (NaN or inf) in {', '.join(bad)}")
        return cost, grads, transposed


def make_target(fn, *, convention: str | None = None, arrays: str = "auto", label: str | None = None) -> Target:
    """Bind a callable (or a ``"file.py:function"`` / ``"module:function"`` string) to its convention."""
    if isinstance(fn, str):
        label = label or fn
        fn = load_function(fn)
    if not callable(fn):
        raise InputError(f"fn must be callable or 'path/to/file.py:function', got {type(fn).__name__}")
    label = label or getattr(fn, "__qualname__", repr(fn))
    detected = detect_convention(fn)
    if convention is None:
        if detected is None:
            sig = _signature(fn)
            raise InputError(
                f"cannot tell the convention of {label}{sig if sig is not None else ''} from its signature; "
                f"pass --convention ufldl (theta, visibleSize, hiddenSize, lambda, sparsityParam, beta, data) "
                f"or --convention rows (params, x, lam, beta, rho)"
            )
        convention = detected
    if convention not in CONVENTIONS:
        raise InputError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if arrays == "auto":
        arrays = _arrays_kind(fn)
    if arrays not in ("numpy", "torch"):
        raise InputError(f"arrays must be 'auto', 'numpy' or 'torch', got {arrays!r}")
    if arrays == "torch":
        if importlib.util.find_spec("torch") is None:
            raise InputError("arrays='torch' needs PyTorch installed")
    return Target(fn, label, convention, arrays)
