r"""Gradient check: the tutorial's backprop vs ``jax.grad`` vs central finite differences.

For each parameter array :math:`P` and random unit directions :math:`v` supported on
:math:`P` alone, the central difference

.. math::
    \frac{-J(\theta + 2h v) + 8 J(\theta + h v) - 8 J(\theta - h v) + J(\theta - 2h v)}{12 h}
      \approx \langle \nabla_P J, v \rangle

(the five-point stencil, truncation error :math:`O(h^4)`) is compared with the
manual and the autodiff gradient.
Finite differences are meaningful only in float64; :func:`gradcheck` refuses float32.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import validate
from .backprop import _autodiff_cost_and_grad_jit, _cost_and_grad_jit
from .cost import _cost_terms
from .params import Params

__all__ = ["GradcheckRow", "gradcheck", "format_table", "relative_error"]

FIELDS = ("W1", "b1", "W2", "b2")


class GradcheckRow(NamedTuple):
    device: str
    array: str  # "W1", "b1", "W2", "b2" or "cost"
    shape: tuple
    manual_vs_autodiff: float  # max |manual - autodiff| / max |autodiff|
    manual_vs_fd: float  # max over directions of relative directional error
    autodiff_vs_fd: float


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
    step: float = 1e-4,
    devices=None,
) -> list[GradcheckRow]:
    """Compare manual, autodiff and finite-difference gradients on every device.

    Args:
      params, x, lam, beta, rho, output: as for :func:`sae_jax.cost` (float64 required).
      key: PRNG key for the random directions.
      n_directions: random directions per parameter array.
      step: finite-difference step ``h``.
      devices: devices to run on (default ``jax.devices()``).

    Returns:
      one :class:`GradcheckRow` per (device, array), plus a ``"cost"`` row
      (its ``manual_vs_autodiff`` compares the two cost values).
    """
    validate.check_call(params, x, lam=lam, beta=beta, rho=rho, output=output)
    if jnp.dtype(params.W1.dtype) != jnp.float64:
        raise validate.InputError(
            f"gradcheck needs float64 params and data (finite differences in float32 are "
            f"meaningless), got {jnp.dtype(params.W1.dtype)}; enable jax_enable_x64"
        )
    key = jax.random.key(0) if key is None else key
    devices = jax.devices() if devices is None else devices
    hp = dict(lam=lam, beta=beta, rho=rho, output=output)
    cost_fn = jax.jit(lambda p, x: _cost_terms(p, x, **hp).cost)

    rows = []
    for device in devices:
        p = jax.device_put(params, device)
        xd = jax.device_put(x, device)
        J_m, g_m = _cost_and_grad_jit(p, xd, **hp)
        J_a, g_a = _autodiff_cost_and_grad_jit(p, xd, **hp)
        rows.append(
            GradcheckRow(str(device), "cost", (), relative_error(J_m, J_a), float("nan"), float("nan"))
        )
        for i, name in enumerate(FIELDS):
            key, sub = jax.random.split(key)
            dirs = jax.random.normal(sub, (n_directions,) + p[i].shape, jnp.float64)
            dirs = dirs / jnp.linalg.norm(dirs.reshape(n_directions, -1), axis=1).reshape(
                (n_directions,) + (1,) * p[i].ndim
            )
            err_m = err_a = 0.0
            for v in dirs:
                J_at = lambda t: cost_fn(p._replace(**{name: p[i] + t * v}), xd)  # noqa: E731
                fd = float(
                    (-J_at(2 * step) + 8 * J_at(step) - 8 * J_at(-step) + J_at(-2 * step)) / (12 * step)
                )
                dm = float(jnp.vdot(g_m[i], v))
                da = float(jnp.vdot(g_a[i], v))
                scale = max(abs(fd), abs(dm), 1e-12)
                err_m = max(err_m, abs(dm - fd) / scale)
                err_a = max(err_a, abs(da - fd) / scale)
            rows.append(
                GradcheckRow(
                    str(device), name, tuple(p[i].shape), relative_error(g_m[i], g_a[i]), err_m, err_a
                )
            )
    return rows


def format_table(rows: list[GradcheckRow]) -> str:
    """A plain-text table of :func:`gradcheck` rows."""
    head = ("device", "array", "shape", "manual vs jax.grad", "manual vs FD", "jax.grad vs FD")
    body = [
        (
            r.device,
            r.array,
            "x".join(map(str, r.shape)) or "()",
            f"{r.manual_vs_autodiff:.2e}",
            "" if np.isnan(r.manual_vs_fd) else f"{r.manual_vs_fd:.2e}",
            "" if np.isnan(r.autodiff_vs_fd) else f"{r.autodiff_vs_fd:.2e}",
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])
