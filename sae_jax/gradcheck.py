r"""Gradient check: the tutorial's backprop vs ``jax.grad`` vs central finite differences.

For each parameter array :math:`P` and random unit directions :math:`v` supported on
:math:`P` alone, the five-point central difference

.. math::
    D_h = \frac{-J(\theta + 2h v) + 8 J(\theta + h v) - 8 J(\theta - h v) + J(\theta - 2h v)}{12 h}
      \approx \langle \nabla_P J, v \rangle

is compared with the manual and the autodiff gradient. The error of a direction is scaled by
the Cauchy–Schwarz bound of the quantity measured, :math:`\lVert\nabla_P J\rVert\,\lVert v\rVert`
(:math:`\lVert v\rVert = 1`):

.. math::
    e_P = \max_v \frac{|D_h - \langle g_P, v\rangle|}{\lVert g_P \rVert_2},

never by the directional derivative itself, which a random direction can make arbitrarily
small (then rounding noise alone "fails"; issue 12). The error of :math:`D_h` has two parts:
truncation :math:`\tfrac{h^4}{30}|D^5_v J|` and rounding, at most
:math:`\tfrac{1+8+8+1}{12}\,\varepsilon \max|J| / h = 1.5\,\varepsilon \max|J|/h` when each
cost evaluation is correct to :math:`\varepsilon |J|`. The default step
:math:`h = \varepsilon^{1/5}` (7.4e-4 in float64) balances the two for derivatives of order one.
Each row reports the rounding floor relative to :math:`\lVert g_P\rVert`,
``fd_floor`` :math:`= 1.5\,\varepsilon\max|J| / (h \lVert g_P\rVert)`; an error below a few times
the floor cannot be told from rounding. :data:`FD_TOL` (1e-8) is the verdict's tolerance: above
the floor and the truncation at the UFLDL sizes (``sae-jax gradcheck``'s defaults: errors
≤ 2.3e-11, floors ≤ 1.4e-10 measured) and far below what a wrong term gives (a missing sparsity
term in :math:`\delta^{(2)}`: > 1e-3). :func:`row_passes` applies ``max(FD_TOL, 10 * fd_floor)``.

Finite differences are meaningful only in float64; :func:`gradcheck` refuses float32.

Examples:
  >>> import jax
  >>> from sae_jax.gradcheck import gradcheck, row_passes
  >>> from sae_jax import init_params
  >>> with jax.enable_x64(True):
  ...     p = init_params(jax.random.key(0), 4, 3, dtype="float64")
  ...     x = jax.random.uniform(jax.random.key(1), (5, 4), dtype="float64")
  ...     rows = gradcheck(p, x, lam=1e-3, beta=3.0, rho=0.1, n_directions=2, devices=jax.devices()[:1])
  >>> [r.array for r in rows], all(row_passes(r) for r in rows)
  (['cost', 'W1', 'b1', 'W2', 'b2'], True)
"""

from sae_jax._src.gradcheck import (
    gradcheck as gradcheck,
    GradcheckRow as GradcheckRow,
    format_table as format_table,
    relative_error as relative_error,
    row_passes as row_passes,
    default_step as default_step,
    AUTODIFF_TOL as AUTODIFF_TOL,
    FD_TOL as FD_TOL,
)

__all__ = [
    "gradcheck",
    "GradcheckRow",
    "format_table",
    "relative_error",
    "row_passes",
    "default_step",
    "AUTODIFF_TOL",
    "FD_TOL",
]
