"""Input checking, in one place: the error, the argument checks, the compiled value check.

- :mod:`~sae_jax._src.checks.errors`: :class:`~sae_jax.InputError` (and ``CallError``, a wrong call
  of a public function's signature). A leaf.
- :mod:`~sae_jax._src.checks.args`: every argument check, eager and at trace time (shapes, dtypes,
  hyperparameter ranges, finite arrays, labels, the loaders' integers and files), one
  ``InputError`` each. Imports only ``errors``.
- :mod:`~sae_jax._src.checks.fused`: :func:`~sae_jax._src.checks.fused.entry`, the one decorator
  over every public math function: the signature checked, the bare math under the caller's
  transformations, and called on values the math compiled with its array value checks fused into
  the same program (:func:`~sae_jax._src.checks.fused.compiled_call`).

The math modules import from here; this package imports nothing else of sae_jax.
"""
