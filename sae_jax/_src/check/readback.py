"""Reading their outputs back: any array type to float64 NumPy, a rows-form gradient to UFLDL-shaped Params.

Their code may return NumPy, JAX or torch values, MATLAB-style ``(h, 1)`` biases, a gradient as a
named tuple, a dict (``W1``/``b1``/``W2``/``b2``, or ``W1grad``...) or a sequence (``W1, b1, W2,
b2`` or theta's order ``W1, W2, b1, b2``; tied: ``W1, b1, b2``); every way it cannot be read raises
:class:`~sae_jax.InputError` with one line naming what was returned.

Examples:
  >>> import numpy as np
  >>> from sae_jax.check import probes
  >>> from sae_jax._src.check.readback import rows_grads, to_scalar
  >>> p = probes("sigmoid")[1]
  >>> g = {"W1grad": np.zeros((3, 5)), "b1grad": np.zeros((3, 1)), "W2grad": np.zeros((5, 3)), "b2grad": np.zeros(5)}
  >>> grads, transposed = rows_grads(g, p, "their code")
  >>> [a.shape for a in grads], transposed
  ([(3, 5), (3,), (5, 3), (5,)], False)
  >>> to_scalar(np.array([[2.5]]), "cost")
  2.5
"""

from __future__ import annotations

import numpy as np

from ..params import Params
from ..validate import InputError
from .probes import Probe

__all__ = ["GRAD_KEYS", "one_line", "to_numpy", "to_scalar", "rows_grads"]

GRAD_KEYS = ("W1", "b1", "W2", "b2")


def one_line(e: BaseException) -> str:
    """An exception as one line: ``Type: first line of its message``."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def to_numpy(a, what: str) -> np.ndarray:
    """``a`` (NumPy, JAX, torch, a list...) as a float64 NumPy array; ``what`` names it in the error."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch tensor
        a = a.detach().cpu().numpy()
    try:
        out = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{what} is not numeric ({type(a).__name__}: {one_line(e)})") from None
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
            arrays = [g[lower[k.lower()]] for k in GRAD_KEYS]
        except KeyError:
            raise InputError(f"{who}: the gradient dict must have keys W1, b1, W2, b2, got {list(g.keys())}") from None
    elif hasattr(g, "_fields") and set(GRAD_KEYS) <= set(g._fields):
        arrays = [getattr(g, k) for k in GRAD_KEYS]
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
    return Params(*(_fit(a, shapes[k], f"{who}: gradient {k}") for a, k in zip((W1, b1, W2, b2), GRAD_KEYS))), transposed
