"""sae-jax: the classic (UFLDL / CS294A) KL-sparsity autoencoder as pure JAX functions.

The math, at the top level::

    Params, init_params, tie, untie         # parameters (UFLDL shapes; tied: Params(W1, b1, None, b2))
    encode, decode, forward, reconstruct    # the forward pass (samples as rows)
    rho_hat, kl_divergence, cost, cost_terms  # the cost, exact at saturation
    kl_sparsity_penalty                     # the KL penalty on anyone's activations
    sparsity_delta, cost_and_grad           # the tutorial's backprop, jitted
    autodiff_cost_and_grad                  # jax.value_and_grad(cost), jitted: the reference
    corrupt, activation_l1                  # variants: denoising (x_input=), an L1 activation penalty (l1=)
    InputError                              # every refused input

and one public module per idea: :mod:`sae_jax.training` (train, sweep, the run directory),
:mod:`sae_jax.optim` (L-BFGS), :mod:`sae_jax.scale` (chunked and sharded gradients),
:mod:`sae_jax.data`, :mod:`sae_jax.metrics`, :mod:`sae_jax.softmax`, :mod:`sae_jax.stacked`,
:mod:`sae_jax.experiments`, :mod:`sae_jax.check`, :mod:`sae_jax.gradcheck`, :mod:`sae_jax.display`
and :mod:`sae_jax.cli`. Everything under ``sae_jax._src`` is private and may move.

Data must be in the parameters' dtype everywhere (nothing is converted silently; see the math guide, "Dtypes").

Importing sae_jax never imports sympy (that lives in the top-level ``derivations`` package).

Examples:
  >>> import jax, jax.numpy as jnp
  >>> import sae_jax
  >>> from sae_jax.data import load_dataset
  >>> params = sae_jax.init_params(jax.random.key(0), 64, 25)       # n_visible = 64, n_hidden = 25
  >>> x = load_dataset("natural", n_patches=100, dtype=params.W1.dtype)   # (m, 64) patches as rows
  >>> J, grads = sae_jax.cost_and_grad(params, x, lam=1e-4, beta=3.0, rho=0.01)
  >>> J.shape, grads.W1.shape, grads.b2.shape
  ((), (25, 64), (64,))
"""

from sae_jax._src.backprop import (
    autodiff_cost_and_grad as autodiff_cost_and_grad,
    cost_and_grad as cost_and_grad,
    cost_terms_and_grad as cost_terms_and_grad,
    hidden_delta as hidden_delta,
    output_delta as output_delta,
)
from sae_jax._src.cost import (
    CostTerms as CostTerms,
    cost as cost,
    cost_terms as cost_terms,
    reconstruction as reconstruction,
    weight_decay as weight_decay,
)
from sae_jax._src.forward import (
    OUTPUTS as OUTPUTS,
    Activations as Activations,
    decode as decode,
    encode as encode,
    forward as forward,
    reconstruct as reconstruct,
    sigmoid as sigmoid,
    sigmoid_prime as sigmoid_prime,
)
from sae_jax._src.params import (
    Params as Params,
    decoder_weights as decoder_weights,
    init_params as init_params,
    is_tied as is_tied,
    params_to_theta as params_to_theta,
    theta_to_params as theta_to_params,
    tie as tie,
    untie as untie,
)
from sae_jax._src.penalty import (
    kl_sparsity_penalty as kl_sparsity_penalty,
)
from sae_jax._src.sparsity import (
    kl_divergence as kl_divergence,
    kl_divergence_from_logs as kl_divergence_from_logs,
    log_rho_hat as log_rho_hat,
    rho_hat as rho_hat,
    sparsity as sparsity,
    sparsity_delta as sparsity_delta,
)
from sae_jax._src.checks.errors import (
    InputError as InputError,
)
from sae_jax._src.variants import (
    CORRUPTIONS as CORRUPTIONS,
    activation_l1 as activation_l1,
    corrupt as corrupt,
)
from sae_jax._src.version import __version__ as __version__

__all__ = [
    "Activations",
    "CORRUPTIONS",
    "CostTerms",
    "InputError",
    "OUTPUTS",
    "Params",
    "activation_l1",
    "autodiff_cost_and_grad",
    "corrupt",
    "cost",
    "cost_and_grad",
    "cost_terms",
    "cost_terms_and_grad",
    "decode",
    "decoder_weights",
    "encode",
    "forward",
    "hidden_delta",
    "init_params",
    "is_tied",
    "kl_divergence",
    "kl_divergence_from_logs",
    "kl_sparsity_penalty",
    "log_rho_hat",
    "output_delta",
    "params_to_theta",
    "reconstruct",
    "reconstruction",
    "rho_hat",
    "sigmoid",
    "sigmoid_prime",
    "sparsity",
    "sparsity_delta",
    "theta_to_params",
    "tie",
    "untie",
    "weight_decay",
]


def __getattr__(name):
    # The public submodules load on first use (``sae_jax.training`` etc.), so ``import sae_jax``
    # stays the math only.
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"sae_jax.{name}")
    raise AttributeError(f"module 'sae_jax' has no attribute {name!r}")


_SUBMODULES = ("training", "optim", "scale", "data", "metrics", "softmax", "stacked", "experiments",
               "check", "gradcheck", "display", "cli")
