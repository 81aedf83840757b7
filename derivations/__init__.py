r"""derivations: sympy derives the sparse autoencoder's gradient and the 1/m cancellation, and checks sae_jax.

The question: the UFLDL tutorial adds :math:`\beta(-\rho/\hat\rho_j + (1-\rho)/(1-\hat\rho_j)) f'(z^{(2)}_j)`
to each sample's hidden delta with no :math:`1/m`, while
:math:`\partial\hat\rho_j/\partial a^{(2)}_j(x^{(i)}) = 1/m`. Is it off by m? No: the
tutorial's :math:`\delta^{(2)}` is :math:`m\,\partial J/\partial z^{(2)}` per sample (reconstruction
part included), and the :math:`1/m` of :math:`\hat\rho` is the common factor of

.. math::
    \frac{\partial J}{\partial W_{1\,p,q}} = \frac1m \sum_i \Big[ (W_2^\top\delta^{(3)(i)})_p
      + \beta\Big(-\frac{\rho}{\hat\rho_p} + \frac{1-\rho}{1-\hat\rho_p}\Big) \Big] f'(z^{(2)}_p(x^{(i)}))\, x^{(i)}_q
      + \lambda W_{1\,p,q}.

Modules (each result is a :class:`~derivations.steps.Derivation`: steps tagged by who
produced them, and :class:`~derivations.steps.Check` verdicts):

- :mod:`derivations.concrete`: exact identities, every array entry symbolic, m = 1…5, both output layers;
  the sigmoid's :math:`f' = f(1-f)`.
- :mod:`derivations.symbolic_m`: the same for symbolic m, n, h with ``IndexedBase``/``Sum``.
- :mod:`derivations.variant`: the questioner's variant (1/m inside δ *and* outside) is m times too
  small in its sparsity part: symbolically, exactly at concrete sizes, and by finite differences.
- :mod:`derivations.ae_variants`: the autoencoder's variants (issue 15): the tied-weights gradient
  (encoder + decoderᵀ, with negative controls), the L1 activation penalty's delta, denoising.
- :mod:`derivations.numeric`: the lambdified sympy gradient, sae_jax's backprop and ``jax.grad``
  agree to 1e-12 in float64.
- :mod:`derivations.softmax`: softmax regression's gradient :math:`-\tfrac1m (1\{y\} - P)^\top X + \lambda\theta`, exact at concrete sizes.
- :mod:`derivations.stacked`: the stacked autoencoder's fine-tuning deltas (UFLDL's stackedAECost), exact at concrete sizes.
- :mod:`derivations.steps`: rendering (plain text and LaTeX).

Run everything with ``python -m derivations`` (``--latex`` for LaTeX, ``--brief`` for verdicts only).
Tested against sympy 1.14.0 (pinned in the ``derivations`` extra). sae_jax never imports this package.
"""

from . import ae_variants as ae_variants
from . import concrete as concrete
from . import numeric as numeric
from . import softmax as softmax, stacked as stacked  # softmax regression and stacked-AE fine-tuning (issue 15)
from . import symbolic_m as symbolic_m
from . import variant as variant
from .report import run_all as run_all, summary as summary
from .steps import (
    Check as Check,
    Derivation as Derivation,
    Step as Step,
    render_latex as render_latex,
    render_text as render_text,
)

__all__ = [
    "ae_variants",
    "Check",
    "Derivation",
    "Step",
    "concrete",
    "numeric",
    "render_latex",
    "render_text",
    "run_all",
    "softmax",
    "stacked",
    "summary",
    "symbolic_m",
    "variant",
]
