r"""``TrainConfig``: everything that defines a training run, and its checks.

Each field carries its own documentation in ``dataclasses.field(metadata=...)``:
``metadata["help"]`` (one line, without the default) and, for fields with a fixed set of
values, ``metadata["choices"]``. The command line builds its flags from these, so a new
option is written once, here.

Examples:
  >>> from sae_jax.training import TrainConfig
  >>> from sae_jax._src.config import validate_config, field_help
  >>> c = TrainConfig(n_hidden=36, steps=200, dtype="float32")
  >>> validate_config(c)
  >>> (c.rho, c.full_batch)
  (0.01, True)
  >>> field_help("optimizer")["choices"]
  ('lbfgs', 'adam', 'sgd')
  >>> TrainConfig.from_dict(c.to_dict()) == c
  True
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import numpy as np

from .forward import OUTPUTS
from .validate import InputError, check_hyperparams, check_output
from .variants import CORRUPTIONS, check_corruption

__all__ = [
    "GRADIENTS",
    "OPTIMIZERS",
    "RHO_HAT",
    "DTYPES",
    "RESUMABLE_FIELDS",
    "TrainConfig",
    "check_choice",
    "check_config_hyperparams",
    "field_help",
    "validate_config",
]

GRADIENTS = ("manual", "autodiff")
OPTIMIZERS = ("lbfgs", "adam", "sgd")
RHO_HAT = ("batch", "ema")
DTYPES = ("float64", "float32")

# Fields that may differ between a checkpoint and the config a resume is asked for: they
# change how long the run is and how it is cut into dispatches, not the trajectory.
RESUMABLE_FIELDS = ("steps", "chunk", "checkpoint_every")


def _field(default, help: str, choices: tuple | None = None):
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults = the UFLDL sparse-autoencoder exercise.

    Attributes:
      n_hidden: hidden units (25).
      lam, beta, rho: weight decay λ (1e-4), sparsity weight β (3), target activation ρ (0.01).
      output: ``"sigmoid"`` (data in [0, 1]) or ``"linear"`` output layer.
      optimizer: ``"lbfgs"`` (full batch, zoom line search), ``"adam"`` or ``"sgd"`` (minibatch).
      steps: total optimizer steps (400 L-BFGS iterations).
      learning_rate: Adam / SGD step size (L-BFGS uses its line search).
      momentum: SGD momentum (0 = plain SGD).
      batch_size: minibatch rows for Adam / SGD.
      rho_hat: ``"batch"`` (the batch's ρ̂) or ``"ema"`` (running estimate; Adam / SGD only).
      ema_decay: α of the running estimate, in [0, 1).
      gradient: ``"manual"`` (the tutorial's backprop) or ``"autodiff"`` (``jax.value_and_grad``).
      dtype: ``"float64"`` (needs ``jax_enable_x64``) or ``"float32"``.
      seed: seeds the initial parameters and the minibatch order.
      lbfgs_memory: L-BFGS history size (100, minFunc's default, which the UFLDL exercise used).
      max_linesearch_steps: zoom line-search evaluations per L-BFGS step, at most.
      chunk: optimizer steps per compiled dispatch (and per metrics row).
      checkpoint_every: write the checkpoint every this many steps (and at the end).
      validation_fraction: rows held out of training, in [0, 1) (0: none, the exercise). The split
        is :func:`sae_jax.metrics.split_validation` seeded by ``seed``; every metrics row then also
        has the held-out ``val_*`` diagnostics (:func:`sae_jax.metrics.evaluate`).
      tied: tied weights :math:`W_2 = W_1^\top` (parameters ``Params(W1, b1, None, b2)``;
        :mod:`sae_jax._src.variants`).
      l1: the L1 activation penalty's weight γ ≥ 0 (0: no term; compiled into the runner).
      corruption: denoising: ``"mask"`` or ``"gaussian"`` corrupts every step's input with a fresh
        key (``fold_in`` of the seed's data key and the step, so a resumed run draws the same
        corruptions); the clean data are the target. ``"none"``: the plain autoencoder.
      corruption_level: the masking probability p in [0, 1), or the Gaussian noise's σ ≥ 0.
        (A ``value_and_grad_fn`` given to ``train`` then receives a
        :class:`~sae_jax._src.step.DenoisingBatch` ``(x, x_input)`` as its batch.)
    """

    n_hidden: int = _field(25, "hidden units")
    lam: float = _field(1e-4, "weight decay lambda")
    beta: float = _field(3.0, "sparsity weight beta")
    rho: float = _field(0.01, "target mean activation rho")
    output: str = _field("sigmoid", "output layer: sigmoid (data in [0, 1]) or linear", OUTPUTS)
    optimizer: str = _field("lbfgs", "lbfgs (full batch, zoom line search), adam or sgd (minibatch)", OPTIMIZERS)
    steps: int = _field(400, "total optimizer steps; with --resume, the new total (not below the checkpoint's step)")
    learning_rate: float = _field(1e-2, "Adam/SGD step size (L-BFGS uses its line search)")
    momentum: float = _field(0.9, "SGD momentum (0: plain SGD)")
    batch_size: int = _field(128, "Adam/SGD minibatch rows")
    rho_hat: str = _field("batch", "sparsity estimate for minibatches: batch (the batch's rho_hat) or ema (running)", RHO_HAT)
    ema_decay: float = _field(0.9, "alpha of the running rho_hat estimate, in [0, 1)")
    gradient: str = _field("manual", "manual (the tutorial's backprop) or autodiff (jax.value_and_grad)", GRADIENTS)
    dtype: str = _field("float64", "float64 (enables JAX x64) or float32", DTYPES)
    seed: int = _field(0, "seed of the initial weights and the minibatch order")
    lbfgs_memory: int = _field(100, "L-BFGS history size (100 as minFunc in the UFLDL exercise)")
    max_linesearch_steps: int = _field(20, "zoom line-search evaluations per L-BFGS step")
    chunk: int = _field(20, "optimizer steps per compiled dispatch and per metrics row")
    checkpoint_every: int = _field(100, "steps between checkpoints (always one at the end)")
    validation_fraction: float = _field(0.0, "rows held out of training for the val_* metrics (seeded split; 0: none)")
    tied: bool = _field(False, "tied weights W2 = W1^T (the decoder's weights are not stored)")
    l1: float = _field(0.0, "L1 activation penalty gamma: + gamma (1/m) sum_i ||a2_i||_1 beside KL (0: none)")
    corruption: str = _field(
        "none", "denoising: corrupt each step's input (mask: zero entries; gaussian: add noise), "
        "reconstruct the clean data", CORRUPTIONS,
    )
    corruption_level: float = _field(0.3, "masking probability p in [0, 1), or the Gaussian noise's sigma")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if not isinstance(d, dict):
            raise InputError(f"config must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"config has unknown field(s) {unknown}; known: {sorted(names)}")
        return cls(**d)

    @property
    def full_batch(self) -> bool:
        return self.optimizer == "lbfgs"


def field_help(name: str) -> dict:
    """``{"name", "type", "default", "help", "choices"}`` of one :class:`TrainConfig` field."""
    for f in dataclasses.fields(TrainConfig):
        if f.name == name:
            typ = {"int": int, "float": float, "str": str, "bool": bool}[f.type if isinstance(f.type, str) else f.type.__name__]
            return dict(name=f.name, type=typ, default=f.default, **f.metadata)
    raise KeyError(name)


def _check_int(name, v, minimum, maximum=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum or (
        maximum is not None and v > maximum
    ):
        rng = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise InputError(f"{name} must be an integer {rng}, got {v!r}")


def _check_real(name, v, *, lo=None, hi=None, lo_open=False, hi_open=False):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise InputError(f"{name} must be a finite real number, got {v!r}")
    f = float(v)
    bad = (lo is not None and (f < lo or (lo_open and f == lo))) or (
        hi is not None and (f > hi or (hi_open and f == hi))
    )
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise InputError(f"{name} must be in {left}{lo_s}, {hi_s}{right}, got {f:g}")


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_choice(name: str, v, choices) -> None:
    """Raise :class:`InputError` unless ``v`` is one of ``choices`` (the message names ``name``)."""
    if v not in choices:
        raise InputError(f"{name} must be one of {choices}, got {v!r}")


def check_config_hyperparams(config: TrainConfig) -> None:
    """The objective's weights of ``config`` as training uses them: λ ≥ 0, β ≥ 0, 0 < ρ < 1 (and
    γ = ``l1``) finite, and, for a known ``dtype``, also *as cast to it* (no overflow: β = 1e39 is
    inf in float32; ρ a normal number below 1: 0.99999999 is 1 in float32).

    :func:`validate_config` runs it for a run's config, and :func:`sae_jax._src.grid.grid_settings`
    for every setting of a sweep (the shared config with that setting's λ, β, ρ), so a sweep
    applies exactly the checks ``train`` applies.

    Examples:
      >>> check_config_hyperparams(TrainConfig(rho=0.99999999, dtype="float32"))
      Traceback (most recent call last):
      ...
      sae_jax.InputError: rho=0.99999999 is 1.0 in float32, where rho must be a normal number in [1.17549e-38, 0.99999994] (else the KL term is NaN); use such a rho or float64
    """
    c = config
    check_hyperparams(lam=c.lam, beta=c.beta, rho=c.rho)
    if c.dtype in DTYPES:  # the values as training uses them: cast to config.dtype
        check_hyperparams(lam=c.lam, beta=c.beta, rho=c.rho, dtype=c.dtype, l1=c.l1 if _is_real(c.l1) else None)


def _check_level_in_dtype(kind: str, level: float, dtype: str) -> None:
    """The corruption level as the trainer uses it, cast to ``dtype``: σ must not overflow
    (1e39 is inf in float32) and a mask probability must stay below 1 (0.99999999 is 1 in float32)."""
    with np.errstate(over="ignore"):
        cast = float(np.asarray(level, dtype))
    if not math.isfinite(cast):
        raise InputError(
            f"corruption_level={level:g} overflows {dtype} (largest finite value {float(np.finfo(dtype).max):g}); "
            f"use a smaller level or float64"
        )
    if kind == "mask" and cast >= 1:
        raise InputError(
            f"corruption_level={level!r} is {cast!r} in {dtype}, where a masking probability must be below 1; "
            f"use a smaller level or float64"
        )


def validate_config(config: TrainConfig) -> None:
    """Every field's type and range, and the combinations (raises :class:`InputError`)."""
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a TrainConfig, got {type(config).__name__}")
    c = config
    _check_int("n_hidden", c.n_hidden, 1)
    check_config_hyperparams(c)
    check_output(c.output)
    check_choice("optimizer", c.optimizer, OPTIMIZERS)
    _check_int("steps", c.steps, 0)
    _check_real("learning_rate", c.learning_rate, lo=0.0, lo_open=True)
    _check_real("momentum", c.momentum, lo=0.0, hi=1.0, hi_open=True)
    _check_int("batch_size", c.batch_size, 1)
    check_choice("rho_hat", c.rho_hat, RHO_HAT)
    _check_real("ema_decay", c.ema_decay, lo=0.0, hi=1.0, hi_open=True)
    check_choice("gradient", c.gradient, GRADIENTS)
    check_choice("dtype", c.dtype, DTYPES)
    _check_int("seed", c.seed, 0, 2**32 - 1)
    _check_int("lbfgs_memory", c.lbfgs_memory, 1)
    _check_int("max_linesearch_steps", c.max_linesearch_steps, 1)
    _check_int("chunk", c.chunk, 1)
    _check_int("checkpoint_every", c.checkpoint_every, 1)
    _check_real("validation_fraction", c.validation_fraction, lo=0.0, hi=1.0, hi_open=True)
    if not isinstance(c.tied, bool):
        raise InputError(f"tied must be True or False, got {c.tied!r}")
    _check_real("l1", c.l1, lo=0.0)
    check_corruption(c.corruption, c.corruption_level)
    if c.dtype in DTYPES and c.corruption != "none":
        _check_level_in_dtype(c.corruption, float(c.corruption_level), c.dtype)
    if c.rho_hat == "ema" and c.full_batch:
        raise InputError(
            "rho_hat='ema' is for minibatch optimizers (adam, sgd); L-BFGS is full-batch and "
            "uses the exact rho_hat"
        )
    if c.dtype == "float64" and not jax.config.jax_enable_x64:
        raise InputError(
            "dtype='float64' needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) "
            "first (the sae-jax CLI does this for --dtype float64), or use dtype='float32'"
        )
