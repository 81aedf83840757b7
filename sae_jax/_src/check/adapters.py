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

The L1 and denoising variants (:func:`variant_slots`) add parameters: a ``x_input`` / ``l1``
parameter takes the corrupted input / γ by name, else the required parameters after the
convention's, in that order (ufldl ``..., data, corruptedData, gamma``); γ with no parameter is
taken as fixed in their code.

Inputs are NumPy float64 arrays, or torch float64 tensors for a function whose module imports
torch (``arrays="torch"``; torch is imported only then). Outputs may be NumPy, JAX or torch.
Every way the code cannot be run raises :class:`~sae_jax.InputError` with one line.

Examples:
  >>> from sae_jax.check import detect_convention, load_function
  >>> from sae_jax._src.check.adapters import make_target
  >>> def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
  ...     pass
  >>> detect_convention(sparseAutoencoderCost), detect_convention(lambda params, x, lam, beta, rho: 0)
  ('ufldl', 'rows')
  >>> fn = load_function("sae_jax._src.backprop:cost_and_grad")     # "module:function" or "file.py:function"
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
from .readback import GRAD_KEYS, one_line, rows_grads, to_numpy, to_scalar

__all__ = ["load_function", "detect_convention", "variant_slots", "ufldl_arg_order", "nonfinite", "Target", "make_target",
           "ProbeParams"]

CONVENTIONS = ("ufldl", "rows")
#: UFLDL's order of the arguments after theta (their names in :meth:`Target.evaluate`).
UFLDL_ORDER = ("visibleSize", "hiddenSize", "lam", "rho", "beta", "data")


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
        raise InputError(f"importing {where!r} failed: {one_line(e)}") from None
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


def _extra_counts(l1: bool, denoising: bool) -> set[int]:
    """How many extra positional parameters the variants may add: the corrupted input, then γ (or γ fixed)."""
    return {int(denoising), int(denoising) + int(l1)}


def detect_convention(fn: Callable, *, l1: bool = False, denoising: bool = False) -> str | None:
    """``"ufldl"`` for 7 positional parameters, ``"rows"`` for 5 (or params, x + lam/beta/rho); else None.

    With the variants, the extra parameters they add count too (``denoising``: the corrupted
    input; ``l1``: γ, unless it is fixed in their code): ufldl 7–9, rows 5–7.
    """
    sig = _signature(fn)
    if sig is None:
        return None
    ps = list(sig.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in ps):
        return None
    positional = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    names = {p.name.lower() for p in ps}
    extra = _extra_counts(l1, denoising)
    if len(required) - 7 in extra or (len(positional) >= 7 and positional[0].name.lower() == "theta"):
        return "ufldl"
    if len(required) - 5 in extra or (len(required) == 2 and {"lam", "beta", "rho"} <= names):
        return "rows"
    return None


def variant_slots(fn: Callable, convention: str, *, l1: bool, denoising: bool, label: str) -> dict[str, str | None]:
    """Where their function takes the variants' inputs: ``{"x_input": param, "l1": param or None}``.

    A parameter named ``x_input`` / ``l1`` (sae-jax's names) takes it by that name; otherwise the
    required parameters after the convention's own ones, in the order corrupted input, γ. γ with
    no parameter left: ``None``, fixed in their code (at the ``l1=`` asked for).
    """
    sig = _signature(fn)
    ps = [p for p in (sig.parameters.values() if sig is not None else ())
          if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    positional = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if convention == "ufldl":
        own = {p.name for p in positional[:7]}
    elif {"lam", "beta", "rho"} <= {p.name for p in ps}:
        own = {p.name for p in positional[:2]} | {"lam", "beta", "rho", "output"}
    else:
        own = {p.name for p in positional[:5]}
    rest = [p for p in ps if p.name not in own]
    free = [p.name for p in rest if p.default is p.empty and p.name not in ("x_input", "l1")]
    slots: dict[str, str | None] = {}
    for key, on in (("x_input", denoising), ("l1", l1)):
        if not on:
            continue
        if key in {p.name for p in rest}:
            slots[key] = key
        elif free:
            slots[key] = free.pop(0)
        elif key == "l1":
            slots[key] = None
        else:
            raise InputError(
                f"{label}: with --denoising the function must take the corrupted input: ufldl f(theta, visibleSize, "
                f"hiddenSize, lambda, sparsityParam, beta, data, corruptedData[, gamma]) or rows f(params, x, lam, "
                f"beta, rho, x_input[, l1]) (or a keyword x_input)")
    if free:
        raise InputError(f"{label}: parameter(s) {', '.join(free)} are not filled: the check passes the convention's "
                         f"arguments" + ("" if denoising else ", the corrupted input with --denoising")
                         + ("" if l1 else ", γ with --l1 GAMMA"))
    return slots


def _arrays_kind(fn) -> str:
    """'torch' when the function's module imports torch, else 'numpy'."""
    g = getattr(inspect.unwrap(fn), "__globals__", {}) or {}
    for v in g.values():
        if isinstance(v, types.ModuleType) and v.__name__.split(".")[0] == "torch":
            return "torch"
    return "numpy"


@dataclass
class Target:
    """Their function bound to a convention: ``evaluate(probe, params) -> (cost, Params)`` in UFLDL shapes."""

    fn: Callable
    label: str
    convention: str
    arrays: str  # "numpy" or "torch"
    packing: str = "F"  # ufldl only: "F" or "C"
    slots: dict = field(default_factory=dict)  # variant input -> their parameter's name (None: fixed in their code)
    low_precision: set = field(default_factory=set)  # dtypes below float64 seen in their outputs
    arg_order: tuple = UFLDL_ORDER  # ufldl: which value goes to their parameters 2..7 (read from their names)
    mutated: dict = field(default_factory=dict)  # input name -> max |change| their code made to it in place

    def _inputs(self, a):
        a = np.array(a, dtype=np.float64)  # a fresh copy per call: their code may write into it
        if self.arrays == "torch":
            import torch

            return torch.from_numpy(a)
        return a

    def _call(self, probe: Probe, args: tuple, kwargs: dict, watch: dict):
        """Call their function; ``watch``: the input arrays by name, compared before and after the call."""
        import jax

        who = f"{self.label} on probe {probe.name}"
        before = {k: to_numpy(v, k).copy() for k, v in watch.items()}
        try:
            with jax.enable_x64(True), np.errstate(all="ignore"):  # float64 like everything here; their
                out = self.fn(*args, **kwargs)  # overflow warnings are reported as NaN/inf findings instead
        except (Exception, SystemExit) as e:
            hint = ""
            if self.convention == "ufldl" and self.arg_order == UFLDL_ORDER and isinstance(e, (ValueError, IndexError)):
                hint = (" (the check calls f(theta, visibleSize, hiddenSize, lambda, sparsityParam, beta, data), data "
                        "as columns; if yours takes them in another order, name its parameters so (e.g. hidden_size, "
                        "visible_size) or wrap it)")
            raise InputError(f"{who} raised {one_line(e)}{hint}") from None
        for k, v in watch.items():  # their code wrote into its input (an optimizer's theta would change under it)
            try:
                after = to_numpy(v, k)
            except InputError:
                continue
            if after.shape != before[k].shape or not np.array_equal(after, before[k], equal_nan=True):
                d = float(np.max(np.abs(after - before[k]))) if after.shape == before[k].shape else float("inf")
                self.mutated[k] = max(self.mutated.get(k, 0.0), d)
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

    def _extras(self, probe: Probe, *, columns: bool) -> dict:
        """The variants' inputs, by their parameters' names: the corrupted input (as columns for ufldl), γ."""
        out = {}
        if self.slots.get("x_input") is not None:
            out[self.slots["x_input"]] = self._inputs(probe.x_input.T if columns else probe.x_input)
        if self.slots.get("l1") is not None:
            out[self.slots["l1"]] = probe.l1
        return out

    def evaluate(self, probe: Probe, params: Params | None = None, *, finite: bool = True
                 ) -> tuple[float, Params, bool]:
        """Their (cost, gradient as UFLDL-shaped Params, weights-transposed flag) at ``params`` (default: the probe's).

        ``finite=False``: NaN or inf outputs are returned (see :func:`nonfinite`) instead of raising.
        """
        params = probe.params if params is None else params
        h, n = probe.n_hidden, probe.n_visible
        if self.convention == "ufldl":
            theta = self._inputs(pack_theta(params, self.packing))
            data = self._inputs(probe.x.T)
            values = dict(visibleSize=n, hiddenSize=h, lam=probe.lam, rho=probe.rho, beta=probe.beta, data=data)
            extras = self._extras(probe, columns=True)
            watch = {"theta": theta, "data": data, **{k: v for k, v in extras.items() if not np.isscalar(v)}}
            (J, g), who = self._call(probe, (theta, *(values[k] for k in self.arg_order)), extras, watch)
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
            extras = self._extras(probe, columns=False)
            watch = {**{f"params.{k}": a for k, a in zip(GRAD_KEYS, p) if a is not None}, "x": x,
                     **{k: v for k, v in extras.items() if not np.isscalar(v)}}
            if {"lam", "beta", "rho"} <= names:
                kw = dict(hp, **({"output": probe.output} if "output" in names else {}))
                out, who = self._call(probe, (p, x), {**kw, **extras}, watch)
            else:
                out, who = self._call(probe, (p, x, probe.lam, probe.beta, probe.rho), extras, watch)
            J, g = out
            self._note_dtypes(g.values() if isinstance(g, dict) else g)
            grads, transposed = rows_grads(g, probe, who)
        cost = to_scalar(J, f"{who}: cost")
        bad = nonfinite(cost, grads)
        if bad and finite:
            raise InputError(f"{who} returned non-finite values (NaN or inf) in {', '.join(bad)}")
        return cost, grads, transposed


def nonfinite(cost: float, grads: Params) -> list[str]:
    """The outputs (``cost``, ``W1``, ...) holding NaN or inf."""
    return [k for k, a in zip(("cost",) + GRAD_KEYS, (np.asarray(cost),) + tuple(grads))
            if a is not None and not np.all(np.isfinite(a))]


def _slot_of(name: str) -> str | None:
    """Which UFLDL argument a parameter's name says it takes (None: the name does not say)."""
    s = name.lower().replace("_", "")
    if "hidden" in s or s in ("nhid", "nh", "h"):
        return "hiddenSize"
    if "visible" in s or s in ("inputsize", "ninput", "ninputs", "nvis", "nv", "inputdim", "n"):
        return "visibleSize"
    if "beta" in s:
        return "beta"
    if "lambda" in s or s in ("lam", "decay", "weightdecay", "wd", "l2"):
        return "lam"
    if "sparsityparam" in s or "rho" in s or s in ("sparsity", "sparsitytarget", "p", "target"):
        return "rho"
    if "data" in s or s in ("x", "patches", "inputs", "input", "samples", "images", "xs"):
        return "data"
    return None


def ufldl_arg_order(fn: Callable) -> tuple[str, ...]:
    """The UFLDL arguments in the order their function takes them after theta, read from its parameter names.

    UFLDL's own order (:data:`UFLDL_ORDER`) unless the names of parameters 2..7 say another one, e.g.
    published code's ``(theta, hidden_size, visible_size, lambda_, sparsity_param, beta, data)``.
    """
    sig = _signature(fn)
    if sig is None:
        return UFLDL_ORDER
    ps = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:7]
    if len(ps) < 6:
        return UFLDL_ORDER
    said = [_slot_of(p.name) for p in ps]
    if sorted(s for s in said if s) == sorted(UFLDL_ORDER):
        return tuple(said)
    order = list(UFLDL_ORDER)
    if said[0] == "hiddenSize" or said[1] == "visibleSize":  # the sizes swapped, the rest unnamed or in order
        order[0], order[1] = "hiddenSize", "visibleSize"
    return tuple(order)


def make_target(fn, *, convention: str | None = None, arrays: str = "auto", label: str | None = None,
                l1: bool = False, denoising: bool = False) -> Target:
    """Bind a callable (or a ``"file.py:function"`` / ``"module:function"`` string) to its convention.

    ``l1`` / ``denoising``: their function implements that variant (see :func:`variant_slots`).
    """
    if isinstance(fn, str):
        label = label or fn
        fn = load_function(fn)
    if not callable(fn):
        raise InputError(f"fn must be callable or 'path/to/file.py:function', got {type(fn).__name__}")
    label = label or getattr(fn, "__qualname__", repr(fn))
    detected = detect_convention(fn, l1=l1, denoising=denoising)
    if convention is None:
        if detected is None:
            sig = _signature(fn)
            hint = "" if (l1 and denoising) else " (a variant's extra parameter? pass " + " or ".join(
                ([] if denoising else ["--denoising"]) + ([] if l1 else ["--l1 GAMMA"])) + ")"
            raise InputError(
                f"cannot tell the convention of {label}{sig if sig is not None else ''} from its signature; "
                f"pass --convention ufldl (theta, visibleSize, hiddenSize, lambda, sparsityParam, beta, data) "
                f"or --convention rows (params, x, lam, beta, rho){hint}"
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
    slots = variant_slots(fn, convention, l1=l1, denoising=denoising, label=label)
    order = ufldl_arg_order(fn) if convention == "ufldl" else UFLDL_ORDER
    return Target(fn, label, convention, arrays, slots=slots, arg_order=order)
