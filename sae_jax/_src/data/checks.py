"""Argument checks shared by the data loaders: one clear :class:`~sae_jax.InputError` each.

Examples:
  >>> from sae_jax._src.data.checks import check_int
  >>> check_int("n_patches", 10, minimum=1)
  >>> check_int("n_patches", 0, minimum=1)
  Traceback (most recent call last):
  ...
  sae_jax.InputError: n_patches must be an integer >= 1, got 0
"""

from __future__ import annotations

import os

import numpy as np

from ..validate import InputError

__all__ = ["check_int", "check_file"]


def check_int(name: str, v, *, minimum: int) -> None:
    """Raise unless ``v`` is an integer (not a bool) ``>= minimum``; the message names ``name``."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {v!r}")


def check_file(path) -> str:
    """``path`` as a string, or ``InputError("data file not found: PATH")`` if it is no file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"data file not found: {path}")
    return path
