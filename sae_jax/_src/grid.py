r"""A sweep's grid: the (β, ρ, λ) settings it stands for, checked, named and recorded.

:func:`grid_settings` expands a grid — a mapping of value lists (the Cartesian product, β slowest,
λ fastest; a missing key takes the config's value) or a list of settings — into a list of
``{"beta", "rho", "lam"}`` dicts, every setting checked by the function ``train`` checks its
config's with (:func:`sae_jax._src.config.check_config_hyperparams`, in the config's dtype) and no
setting twice. :func:`setting_label` and :func:`setting_dir` name a setting (in
messages, picture titles, and ``settings/`` directories); :func:`grid_json` is the grid as
``sweep.json`` records it. :mod:`sae_jax._src.sweep` trains the settings.

Examples:
  >>> from sae_jax._src.grid import grid_settings, setting_dir, setting_label
  >>> settings = grid_settings({"beta": [0, 3], "rho": 0.05})
  >>> [tuple(s.values()) for s in settings]  # (beta, rho, lam)
  [(0.0, 0.05, 0.0001), (3.0, 0.05, 0.0001)]
  >>> setting_label(settings[1]), setting_dir(1, settings[1])
  ('beta=3, rho=0.05, lam=0.0001', '001-beta3-rho0.05-lam0.0001')
  >>> grid_settings({"beta": [1, 1]})
  Traceback (most recent call last):
  ...
  sae_jax.InputError: grid has the setting beta=1, rho=0.01, lam=0.0001 twice (settings 0 and 1)
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from .config import DTYPES, TrainConfig, check_config_hyperparams
from .validate import InputError

__all__ = ["SWEPT", "grid_settings", "setting_label", "setting_dir", "grid_json"]

SWEPT = ("beta", "rho", "lam")  # the sweepable fields, in the order the grid is expanded


def _as_values(name: str, v) -> list:
    if isinstance(v, (str, bytes)) or v is None:
        raise InputError(f"grid[{name!r}] must be a number or a non-empty sequence of numbers, got {v!r}")
    if isinstance(v, numbers.Real) or (hasattr(v, "shape") and np.ndim(v) == 0):
        vals = [v]
    elif isinstance(v, Sequence) or hasattr(v, "shape"):
        vals = list(np.asarray(v, dtype=object).ravel()) if hasattr(v, "shape") else list(v)
    else:
        raise InputError(f"grid[{name!r}] must be a number or a non-empty sequence of numbers, got {type(v).__name__}")
    if not vals:
        raise InputError(f"grid[{name!r}] is empty; give at least one value")
    out = []
    for a in vals:
        if isinstance(a, bool) or not isinstance(a, (numbers.Real, np.generic)) or not np.isreal(a):
            raise InputError(f"grid[{name!r}] must hold real numbers, got {a!r}")
        out.append(float(a))
    return out


def _check_keys(keys, where: str) -> None:
    unknown = sorted(set(keys) - set(SWEPT), key=str)
    if unknown:
        raise InputError(
            f"{where} has unknown key(s) {unknown}; a sweep varies {', '.join(SWEPT)} "
            "(other TrainConfig fields are shared: set them in the config)"
        )


def grid_settings(grid, config: TrainConfig | None = None) -> list[dict]:
    """The settings a grid stands for, checked: a list of ``{"beta", "rho", "lam"}`` dicts.

    Args:
      grid: a mapping ``{"beta": [...], "rho": [...], "lam": [...]}`` (each a number or a
        non-empty sequence; a missing key takes ``config``'s value), expanded as the Cartesian
        product with β varying slowest and λ fastest; or a sequence of such mappings with one
        number per key, taken as the settings themselves.
      config: supplies the values of keys the grid leaves out (default :class:`TrainConfig`).

    Raises:
      InputError: an empty grid, an unknown key, a value ``train`` would refuse in
        ``config`` (:func:`sae_jax._src.config.check_config_hyperparams`: finite, λ ≥ 0, β ≥ 0,
        0 < ρ < 1, and no overflow or rounding to 0 / 1 in ``config.dtype``), or the same
        setting twice (also two settings equal once cast to ``config.dtype``).
    """
    config = TrainConfig() if config is None else config
    base = {k: float(getattr(config, k)) for k in SWEPT}
    if grid is None:
        raise InputError("grid is required: e.g. {'beta': [0, 1, 3], 'rho': [0.01, 0.05]}")
    if isinstance(grid, Mapping):
        _check_keys(grid, "grid")
        if not grid:
            raise InputError(f"grid is empty; give values for at least one of {', '.join(SWEPT)}")
        axes = [_as_values(k, grid[k]) if k in grid else [base[k]] for k in SWEPT]
        settings = [dict(zip(SWEPT, vals)) for vals in itertools.product(*axes)]
    elif isinstance(grid, Sequence) and not isinstance(grid, (str, bytes)):
        if not grid:
            raise InputError("grid is an empty list of settings")
        settings = []
        for i, g in enumerate(grid):
            if not isinstance(g, Mapping):
                raise InputError(f"grid[{i}] must be a mapping like {{'beta': 3.0, 'rho': 0.01}}, got {type(g).__name__}")
            _check_keys(g, f"grid[{i}]")
            s = dict(base)
            for k in g:
                vals = _as_values(k, g[k])
                if len(vals) != 1:
                    raise InputError(f"grid[{i}][{k!r}] must be one number (a list of settings), got {len(vals)}")
                s[k] = vals[0]
            settings.append(s)
    else:
        raise InputError(f"grid must be a mapping of value lists or a list of settings, got {type(grid).__name__}")
    seen = {}
    dtype = config.dtype if config.dtype in DTYPES else None
    for i, s in enumerate(settings):
        try:  # train's own checks of its config (shared, not repeated): with this setting's values
            check_config_hyperparams(dataclasses.replace(config, **s))
        except InputError as e:
            raise InputError(f"grid setting {i} ({setting_label(s)}): {e}") from None
        key = tuple(s[k] for k in SWEPT)
        if key in seen:
            raise InputError(f"grid has the setting {setting_label(s)} twice (settings {seen[key]} and {i})")
        cast = key if dtype is None else tuple(float(np.asarray(v, dtype)) for v in key)  # as training uses them
        if cast in seen:
            j = seen[cast]
            raise InputError(
                f"grid settings {j} and {i} are the same setting in {dtype}: (beta, rho, lam) = "
                f"{tuple(settings[j][k] for k in SWEPT)!r} and {key!r} are equal cast to {dtype}; "
                "drop one or use float64"
            )
        seen[key] = seen[cast] = i
    return settings


def setting_label(s: dict) -> str:
    """``"beta=3, rho=0.01, lam=0.0001"``: a setting in messages and picture titles."""
    return ", ".join(f"{k}={s[k]:g}" for k in SWEPT)


def setting_dir(k: int, s: dict) -> str:
    """Setting ``k``'s directory name under ``settings/``: ``"000-beta3-rho0.01-lam0.0001"``."""
    return f"{k:03d}-" + "-".join(f"{name}{s[name]:g}" for name in SWEPT)


def grid_json(grid):
    """The grid as given, its values as floats (what ``sweep.json`` records)."""
    if isinstance(grid, Mapping):
        return {k: _as_values(k, v) for k, v in grid.items()}
    return [{k: _as_values(k, v)[0] for k, v in g.items()} for g in grid]
