"""sae-jax: the classic (UFLDL / CS294A) KL-sparsity autoencoder as pure JAX functions.

Public API::

    Params, init_params                  # parameters (UFLDL shapes) and initialisation
    encode, decode, forward, reconstruct # the forward pass (samples as rows)
    rho_hat, kl_divergence, log_rho_hat, cost, cost_terms  # exact at saturation (sae_jax.cost)
    kl_sparsity_penalty                  # the KL penalty on anyone's activations (sae_jax.penalty)
    sparsity_delta, cost_and_grad        # the tutorial's backprop, jitted
    autodiff_cost_and_grad               # jax.value_and_grad(cost), jitted: the reference
    chunked_cost_and_grad                # full batch streamed in chunks, global rho_hat (sae_jax.chunked)
    batch_mesh, shard_batch, shard_map_cost_and_grad  # data parallel, global rho_hat (sae_jax.sharded)
    tie, untie, corrupt, activation_l1   # variants: tied weights (W2=None), denoising (x_input=), l1=
    train, TrainConfig                   # jitted L-BFGS / Adam / SGD training (sae_jax.training)
    sae_jax.metrics                      # diagnostics: per-sample error, dead/saturated units, rho_hat vs rho
    SoftmaxParams, sae_jax.softmax       # softmax regression (UFLDL softmaxCost/Train/Predict)
    StackedParams, sae_jax.stacked       # stacked autoencoders + softmax, fine-tuning (stackedAECost)
    sae_jax.minimize                     # minimize_lbfgs: jitted L-BFGS over any pytree (softmax, stack)
    sae_jax.experiments                  # probe, self_taught, stacked_digits: held-out accuracy over seeds

Data must be in the parameters' dtype everywhere (nothing is converted silently; see README "Dtypes").

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

from .backprop import (
    autodiff_cost_and_grad as autodiff_cost_and_grad,
    cost_and_grad as cost_and_grad,
    cost_terms_and_grad as cost_terms_and_grad,
    hidden_delta as hidden_delta,
    output_delta as output_delta,
    sparsity_delta as sparsity_delta,
)
from .cost import (
    CostTerms as CostTerms,
    cost as cost,
    cost_terms as cost_terms,
    kl_divergence as kl_divergence,
    reconstruction as reconstruction,
    rho_hat as rho_hat,
    kl_divergence_from_logs as kl_divergence_from_logs,
    log_rho_hat as log_rho_hat,
    sparsity as sparsity,
    weight_decay as weight_decay,
)
from .forward import (
    Activations as Activations,
    decode as decode,
    encode as encode,
    forward as forward,
    reconstruct as reconstruct,
    sigmoid as sigmoid,
    sigmoid_prime as sigmoid_prime,
)
from .params import (
    Params as Params,
    init_params as init_params,
    params_to_theta as params_to_theta,
    theta_to_params as theta_to_params,
)
from .validate import InputError as InputError
from .params import (  # the variants (tied weights: Params(W1, b1, None, b2))
    decoder_weights as decoder_weights,
    is_tied as is_tied,
    tie as tie,
    untie as untie,
)
from . import variants as variants  # noqa: E402
from .variants import activation_l1 as activation_l1, corrupt as corrupt  # noqa: E402
from . import chunked as chunked, penalty as penalty, sharded as sharded  # noqa: E402
from .penalty import kl_sparsity_penalty as kl_sparsity_penalty  # noqa: E402
from .chunked import (  # noqa: E402
    chunked_cost_and_grad as chunked_cost_and_grad,
    chunked_cost_terms_and_grad as chunked_cost_terms_and_grad,
)
from .sharded import (  # noqa: E402
    batch_mesh as batch_mesh,
    shard_batch as shard_batch,
    shard_map_cost_and_grad as shard_map_cost_and_grad,
    sharded_cost_and_grad as sharded_cost_and_grad,
)
from .training import (  # noqa: E402  (after the math it uses)
    TrainConfig as TrainConfig,
    TrainingDiverged as TrainingDiverged,
    TrainResult as TrainResult,
    train as train,
)
from . import sweep as sweep  # noqa: E402  (sae_jax.sweep.sweep: a grid of settings in one vmapped run)
from . import minimize as minimize, softmax as softmax, stacked as stacked  # noqa: E402
from . import experiments as experiments  # noqa: E402  (display imports matplotlib only when drawing)
from .softmax import SoftmaxParams as SoftmaxParams  # noqa: E402
from .stacked import StackedParams as StackedParams  # noqa: E402

from .version import __version__ as __version__  # noqa: E402

__all__ = [
    "activation_l1",
    "corrupt",
    "decoder_weights",
    "is_tied",
    "tie",
    "untie",
    "kl_sparsity_penalty",
    "Activations",
    "CostTerms",
    "InputError",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "Params",
    "SoftmaxParams",
    "StackedParams",
    "autodiff_cost_and_grad",
    "batch_mesh",
    "chunked_cost_and_grad",
    "chunked_cost_terms_and_grad",
    "cost",
    "cost_and_grad",
    "cost_terms",
    "cost_terms_and_grad",
    "decode",
    "encode",
    "experiments",
    "forward",
    "hidden_delta",
    "init_params",
    "kl_divergence",
    "kl_divergence_from_logs",
    "log_rho_hat",
    "minimize",
    "output_delta",
    "params_to_theta",
    "reconstruct",
    "reconstruction",
    "rho_hat",
    "shard_batch",
    "shard_map_cost_and_grad",
    "sharded_cost_and_grad",
    "sigmoid",
    "sigmoid_prime",
    "softmax",
    "sparsity",
    "sparsity_delta",
    "stacked",
    "theta_to_params",
    "train",
    "weight_decay",
]
