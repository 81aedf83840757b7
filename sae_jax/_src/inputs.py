r"""What enters training, checked once where it enters: the data, warm-start parameters, a state.

:func:`load_training_data` turns ``x`` (or the data a :class:`~sae_jax.data.DataSpec` names)
into a :class:`TrainingData`: the rows in ``config.dtype``, checked (finite, in the output's
range), split into training and held-out rows (``config.validation_fraction``,
:func:`sae_jax.metrics.split_validation`), on the device, with the SHA-256 of all rows that a
resume compares. :func:`check_warm_params` and :func:`check_init_state` check what
``train(..., params=...)`` and ``train(..., init_state=...)`` continue from against the state
the config would start from. Every failure is one :class:`~sae_jax.InputError` naming the
argument; nothing here writes files.

Examples:
  >>> import numpy as np
  >>> from sae_jax.training import TrainConfig
  >>> from sae_jax._src.inputs import load_training_data
  >>> cfg = TrainConfig(n_hidden=2, dtype="float32", validation_fraction=0.25)
  >>> d = load_training_data(np.full((8, 4), 0.5), None, cfg)
  >>> d.x.shape, d.x_val.shape, d.x.dtype, d.n_samples
  ((6, 4), (2, 4), dtype('float32'), 8)
  >>> load_training_data(np.full((8, 4), 2.0), None, cfg)
  Traceback (most recent call last):
  ...
  sae_jax.InputError: x must lie in [0, 1] for output='sigmoid' ...
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .checkpoint import data_sha256
from .config import TrainConfig
from .data import load_from_spec
from .loop import TrainState
from .metrics import split_validation
from .params import Params
from .step import invalidate_cache
from .validate import InputError, check_data_values, check_params

__all__ = [
    "TrainingData",
    "spec_dict",
    "training_data",
    "load_training_data",
    "check_batch_size",
    "check_start_options",
    "check_callables",
    "check_warm_params",
    "check_init_state",
]


class TrainingData(NamedTuple):
    x: jax.Array  # (m, n_visible) training rows on the device, in config.dtype
    x_val: jax.Array | None  # held-out rows (validation_fraction > 0), else None
    n_visible: int
    n_samples: int  # all rows, held-out ones included
    sha256: str  # of all rows (the split is a function of the config)
    spec: dict | None  # the data spec, keys sorted as the checkpoint stores them


def spec_dict(spec) -> dict | None:
    """A :class:`~sae_jax.data.DataSpec` (or dict, or None) as a plain dict (or None)."""
    if spec is None or isinstance(spec, dict):
        return spec
    for attr in ("to_dict", "_asdict"):
        if hasattr(spec, attr):
            return dict(getattr(spec, attr)())
    if dataclasses.is_dataclass(spec):
        return dataclasses.asdict(spec)
    raise InputError(f"data_spec must be a dict or a DataSpec, got {type(spec).__name__}")


def training_data(x, data_spec: dict | None, config: TrainConfig, who: str) -> np.ndarray:
    """``x``, or the data ``data_spec`` names, as a checked ``(m, n_visible)`` array in ``config.dtype``."""
    if x is None:
        if data_spec is None:
            raise InputError(f"{who} needs data: pass x (m, n_visible) or data_spec")
        x = load_from_spec(data_spec, output=config.output)
    if isinstance(x, (str, bytes, os.PathLike)):
        raise InputError(
            f"x must be an array (m, n_visible); to load a file use sae_jax.data.load_dataset({x!r})"
        )
    try:
        a = np.asarray(x)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise InputError(f"x must be an array (m, n_visible), got {type(x).__name__} ({e})") from None
    if a.dtype == bool or a.dtype.kind not in "fiu":
        raise InputError(f"x must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise InputError(f"x must be 2-D (m, n_visible) with samples as rows, got shape {a.shape}")
    x_np = np.ascontiguousarray(a, dtype=np.dtype(config.dtype))
    if x_np.shape[0] < 1 or x_np.shape[1] < 1:
        raise InputError(f"x must have at least one sample and one feature, got shape {x_np.shape}")
    check_data_values(x_np, output=config.output, name="x")
    return x_np


def check_batch_size(config: TrainConfig, m: int) -> None:
    """A minibatch optimizer's ``batch_size`` fits in the ``m`` training rows."""
    if not config.full_batch and config.batch_size > m:
        raise InputError(f"batch_size must be <= the number of samples ({m}), got {config.batch_size}")


def load_training_data(x, data_spec, config: TrainConfig, who: str = "train") -> TrainingData:
    """The checked data of a run (see the module docstring); ``config`` is already valid."""
    spec = spec_dict(data_spec)
    if spec is not None:  # keys sorted, as the checkpoint stores it: the same config.json on resume
        spec = json.loads(json.dumps(spec, sort_keys=True))
    x_all = training_data(x, spec, config, who)
    x_np, x_val = x_all, None
    if config.validation_fraction > 0:
        if x_all.shape[0] < 2:
            raise InputError(f"validation_fraction > 0 needs at least 2 samples, got {x_all.shape[0]}")
        idx_train, idx_val = split_validation(x_all.shape[0], config.validation_fraction, config.seed)
        x_np, x_val = x_all[idx_train], jnp.asarray(x_all[idx_val])
    check_batch_size(config, x_np.shape[0])
    return TrainingData(jnp.asarray(x_np), x_val, int(x_all.shape[1]), int(x_all.shape[0]), data_sha256(x_all), spec)


def check_start_options(*, resume: bool, params, init_state) -> None:
    """At most one of ``resume``, ``params=`` and ``init_state=`` (they say where a run starts)."""
    if params is not None and init_state is not None:
        raise InputError("pass params= (fresh optimizer state) or init_state= (continue a state), not both")
    if resume and (params is not None or init_state is not None):
        raise InputError("resume=True continues run_dir's checkpoint; it cannot be combined with params= or init_state=")


def check_callables(**named) -> None:
    """Each keyword argument is ``None`` or callable (``train``'s ``progress=``, ``value_and_grad_fn=``):
    checked before any work, not a ``TypeError`` deep inside the run.

    Examples:
      >>> check_callables(progress=print, value_and_grad_fn=None)
      >>> check_callables(progress=3)
      Traceback (most recent call last):
      ...
      sae_jax.InputError: progress must be a function or None, got int 3
    """
    for name, f in named.items():
        if f is not None and not callable(f):
            raise InputError(f"{name} must be a function or None, got {type(f).__name__} {f!r}")


def check_warm_params(params, template: TrainState, name: str = "params") -> Params:
    """``params`` checked against the state ``train`` would start from (shapes, dtype, finite)."""
    try:
        check_params(params)
    except InputError as e:
        if name == "params":
            raise
        raise InputError(f"{name}: {e}") from None
    if (params.W2 is None) != (template.params.W2 is None):
        what = "tied (W2 is None)" if params.W2 is None else "untied (they have W2)"
        raise InputError(
            f"{name} are {what} but the config has tied={template.params.W2 is None}; "
            f"set TrainConfig.tied to match (or sae_jax.tie / sae_jax.untie them)"
        )
    for field, a, t in zip(Params._fields, params, template.params):
        if a is None:
            continue
        if tuple(a.shape) != tuple(t.shape) or jnp.dtype(a.dtype) != t.dtype:
            raise InputError(
                f"{name}.{field} has shape {tuple(a.shape)} and dtype {jnp.dtype(a.dtype)}, expected "
                f"{tuple(t.shape)} {t.dtype} (n_hidden={template.params.W1.shape[0]} from the config, "
                f"n_visible={template.params.W1.shape[1]} from x, dtype from the config)"
            )
        if not bool(jnp.all(jnp.isfinite(jnp.asarray(a)))):
            raise InputError(f"{name}.{field} has non-finite values; warm start needs finite parameters")
    return jax.tree.map(jnp.asarray, params)


def check_init_state(state, template: TrainState, config: TrainConfig) -> TrainState:
    """A :class:`~sae_jax._src.loop.TrainState` to continue from, checked against the config's fresh state.

    The line search's cached objective is invalidated (the data or λ, β, ρ may differ from
    the run that produced ``state``), so the first step evaluates the objective afresh.
    """
    if not isinstance(state, TrainState):
        raise InputError(
            f"init_state must be a TrainState (e.g. a TrainResult's .state), got {type(state).__name__}"
        )
    params = check_warm_params(state.params, template, "init_state.params")
    t_leaves, t_def = jax.tree.flatten(template.opt_state)
    leaves, treedef = jax.tree.flatten(state.opt_state)
    layout = f"optimizer={config.optimizer!r}" + (f", lbfgs_memory={config.lbfgs_memory}" if config.full_batch else "")
    if treedef != t_def or any(
        tuple(np.shape(a)) != tuple(t.shape) or jnp.dtype(jnp.asarray(a).dtype) != t.dtype
        for a, t in zip(leaves, t_leaves)
    ):
        raise InputError(
            f"init_state.opt_state does not match the configured {layout} ({config.dtype}): "
            "continue with the config the state was trained with (λ, β, ρ, steps may change)"
        )
    if any(bool(jnp.any(jnp.isnan(jnp.asarray(a)))) for a in leaves if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating)):
        raise InputError("init_state.opt_state has NaN values; warm start needs a state from a finite run")
    step = np.asarray(state.step)
    if step.shape != () or not np.issubdtype(step.dtype, np.integer) or int(step) < 0:
        raise InputError(f"init_state.step must be a non-negative integer scalar, got {state.step!r}")
    key = np.asarray(state.key)
    if key.shape != tuple(template.key.shape) or key.dtype != template.key.dtype:
        raise InputError(
            f"init_state.key must be raw key data of shape {tuple(template.key.shape)} {template.key.dtype}, "
            f"got {key.shape} {key.dtype}"
        )
    rho_ema = None
    if template.rho_ema is not None:
        r = state.rho_ema
        if r is None or tuple(np.shape(r)) != tuple(template.rho_ema.shape) or jnp.dtype(jnp.asarray(r).dtype) != template.rho_ema.dtype:
            raise InputError(
                f"init_state.rho_ema must be the running rho_hat of shape {tuple(template.rho_ema.shape)} "
                f"{template.rho_ema.dtype} (rho_hat='ema'), got "
                + ("None (a state trained with rho_hat='batch')" if r is None else f"{np.shape(r)}")
            )
        rho_ema = jnp.asarray(r)
        if not bool(jnp.all(jnp.isfinite(rho_ema))):
            raise InputError("init_state.rho_ema has non-finite values")
    elif state.rho_ema is not None:
        raise InputError("init_state has a running rho_hat (rho_hat='ema') but the config has rho_hat='batch'")
    opt_state = jax.tree.unflatten(t_def, [jnp.asarray(a) for a in leaves])
    return TrainState(
        params, invalidate_cache(opt_state), jnp.asarray(int(step), jnp.int32), jnp.asarray(key), rho_ema
    )
