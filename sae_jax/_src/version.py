"""The package version, in a leaf module that imports nothing.

``sae_jax/__init__.py`` re-exports it as ``sae_jax.__version__``, and the run directory code
(:mod:`sae_jax._src.rundir`, :mod:`sae_jax._src.sweep`) records it in ``config.json`` / ``sweep.json``
without importing the package's ``__init__``.

Examples:
  >>> import sae_jax
  >>> from sae_jax._src.version import __version__
  >>> __version__ == sae_jax.__version__
  True
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
