"""Implementation of :mod:`sae_jax.gradcheck` (private; import from the public module)."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import validate
from .backprop import autodiff_cost_and_grad, cost_and_grad
from .cost import cost
from .params import Params

__all__ = [
    "AUTODIFF_TOL", "FD_TOL", "GradcheckRow", "default_step", "gradcheck", "format_table", "relative_error",
    "row_passes",
]

FIELDS = ("W1", "b1", "W2", "b2")

# manual vs jax.grad: the same math summed in another order (float64; max-norm relative).
AUTODIFF_TOL = 1e-10
# vs finite differences, relative to ||g_P|| (float64, h = eps**(1/5)): see the module docstring.
FD_TOL = 1e-8

_MANUAL = jax.jit(cost_and_grad, static_argnames="output")
_AUTODIFF = jax.jit(autodiff_cost_and_grad, static_argnames="output")


class GradcheckRow(NamedTuple):
    device: str
    array: str  # "W1", "b1", "W2", "b2" or "cost"
    shape: tuple
    manual_vs_autodiff: float  # max |manual - autodiff| / max |autodiff|
    manual_vs_fd: float  # max over directions of |D_h - <g_manual, v>| / ||g||
    autodiff_vs_fd: float  # the same for jax.grad's gradient
    fd_floor: float = float("nan")  # FD rounding bound 1.5 eps max|J| / (h ||g||); NaN for "cost"


def relative_error(a, b) -> float:
    """``max|a - b| / max(max|b|, tiny)`` in float64 numpy."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b))) / scale if a.size else 0.0


def gradcheck(
    params: Params,
    x,
    *,
    lam,
    beta,
    rho,
    output: str = "sigmoid",
    key: jax.Array | None = None,
    n_directions: int = 8,
    step: float | None = None,
    devices=None,
    manual=None,
) -> list[GradcheckRow]:
    """Compare manual, autodiff and finite-difference gradients on every device.

    Args:
      params, x, lam, beta, rho, output: as for :func:`sae_jax.cost` (float64 required).
      key: PRNG key for the random directions.
      n_directions: random directions per parameter array.
      step: finite-difference step ``h`` (default :func:`default_step`: ``eps**(1/5)``).
      devices: devices to run on (default ``jax.devices()``).
      manual: the ``(params, x, *, lam, beta, rho, output) -> (J, grads)`` function under test
        (default :func:`sae_jax.cost_and_grad`, jitted); ``jax.grad`` of :func:`sae_jax.cost` is
        the reference.

    Returns:
      one :class:`GradcheckRow` per (device, array; tied parameters have no ``W2`` row), plus a ``"cost"`` row
      (its ``manual_vs_autodiff`` compares the two cost values). ``manual_vs_fd`` and
      ``autodiff_vs_fd`` are :math:`e_P` of the module docstring; :func:`row_passes` judges a row.
    """
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output)
    if jnp.dtype(params.W1.dtype) != jnp.float64:
        raise validate.InputError(
            f"gradcheck needs float64 params and data (finite differences in float32 are "
            f"meaningless), got {jnp.dtype(params.W1.dtype)}; enable jax_enable_x64"
        )
    step = default_step(params.W1.dtype) if step is None else float(step)
    if not (math.isfinite(step) and step > 0):
        raise validate.InputError(f"step must be a finite number > 0, got {step!r}")
    key = jax.random.key(0) if key is None else key
    devices = jax.devices() if devices is None else devices
    hp = dict(lam=lam, beta=beta, rho=rho, output=output)
    cost_fn = jax.jit(lambda p, x: cost(p, x, **hp))
    manual = _MANUAL if manual is None else manual

    rows = []
    for device in devices:
        p = jax.device_put(params, device)
        xd = jax.device_put(x, device)
        J_m, g_m = manual(p, xd, **hp)
        J_a, g_a = _AUTODIFF(p, xd, **hp)
        rows.append(
            GradcheckRow(str(device), "cost", (), relative_error(J_m, J_a), float("nan"), float("nan"))
        )
        for i, name in enumerate(FIELDS):
            if p[i] is None:  # tied weights: no W2 (its contribution is in W1's row)
                continue
            key, sub = jax.random.split(key)
            dirs = jax.random.normal(sub, (n_directions,) + p[i].shape, jnp.float64)
            dirs = dirs / jnp.linalg.norm(dirs.reshape(n_directions, -1), axis=1).reshape(
                (n_directions,) + (1,) * p[i].ndim
            )
            g_norm = max(float(jnp.linalg.norm(g_a[i])), float(jnp.linalg.norm(g_m[i])), np.finfo(np.float64).tiny)
            err_m = err_a = 0.0
            J_max = abs(float(J_a))
            for v in dirs:
                J_at = lambda t: cost_fn(p._replace(**{name: p[i] + t * v}), xd)  # noqa: E731
                Js = [float(J_at(t * step)) for t in (2, 1, -1, -2)]
                J_max = max(J_max, *map(abs, Js))
                fd = (-Js[0] + 8 * Js[1] - 8 * Js[2] + Js[3]) / (12 * step)
                dm = float(jnp.vdot(g_m[i], v))
                da = float(jnp.vdot(g_a[i], v))
                err_m = max(err_m, abs(dm - fd) / g_norm)
                err_a = max(err_a, abs(da - fd) / g_norm)
            floor = 1.5 * float(np.finfo(np.float64).eps) * J_max / (step * g_norm)
            rows.append(
                GradcheckRow(
                    str(device), name, tuple(p[i].shape), relative_error(g_m[i], g_a[i]), err_m, err_a, floor
                )
            )
    return rows


def default_step(dtype=jnp.float64) -> float:
    """``eps**(1/5)`` of ``dtype``: balances the five-point stencil's O(h^4) truncation and O(eps/h) rounding."""
    return float(np.finfo(np.dtype(dtype)).eps) ** 0.2


def row_passes(row: GradcheckRow, *, fd_tol: float = FD_TOL, autodiff_tol: float = AUTODIFF_TOL) -> bool:
    """The verdict on one row: manual vs jax.grad within ``autodiff_tol``, both vs FD within
    ``max(fd_tol, 10 * row.fd_floor)`` (an error near the rounding floor is noise, not a bug)."""
    if not row.manual_vs_autodiff <= autodiff_tol:
        return False
    if row.array == "cost":
        return True
    tol = max(fd_tol, 10.0 * row.fd_floor)
    return row.manual_vs_fd <= tol and row.autodiff_vs_fd <= tol


def format_table(rows: list[GradcheckRow]) -> str:
    """A plain-text table of :func:`gradcheck` rows, with each row's verdict (:func:`row_passes`)."""
    head = ("device", "array", "shape", "manual vs jax.grad", "manual vs FD", "jax.grad vs FD", "FD floor",
            "verdict")
    body = [
        (
            r.device,
            r.array,
            "x".join(map(str, r.shape)) or "()",
            f"{r.manual_vs_autodiff:.2e}",
            "" if np.isnan(r.manual_vs_fd) else f"{r.manual_vs_fd:.2e}",
            "" if np.isnan(r.autodiff_vs_fd) else f"{r.autodiff_vs_fd:.2e}",
            "" if np.isnan(r.fd_floor) else f"{r.fd_floor:.1e}",
            "ok" if row_passes(r) else "FAIL",
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])
