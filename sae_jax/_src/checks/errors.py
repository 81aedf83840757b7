"""The error every public sae-jax entry point raises for bad input: :class:`InputError`.

A leaf: imports nothing. Its ``__module__`` is the public one, ``sae_jax``, where users import it
(so a traceback reads ``sae_jax.InputError: ...`` wherever in the private layer it was raised).

Examples:
  >>> from sae_jax._src.checks.errors import InputError
  >>> raise InputError("rho must be in (0, 1) (a target mean activation), got 1.5")
  Traceback (most recent call last):
  ...
  sae_jax.InputError: rho must be in (0, 1) (a target mean activation), got 1.5
  >>> issubclass(InputError, ValueError)
  True
"""

from __future__ import annotations

__all__ = ["InputError", "CallError"]


class InputError(ValueError):
    """Bad input to a public sae-jax entry point (one clear line: argument, expectation, value)."""


class CallError(InputError, TypeError):
    """A public function called with the wrong arguments (hyperparameters passed by position, a
    required keyword missing, an unknown keyword): an :class:`InputError` that is also the
    ``TypeError`` Python itself would have raised, with a message naming the keywords."""


InputError.__module__ = "sae_jax"
CallError.__module__ = "sae_jax._src.checks.errors"
