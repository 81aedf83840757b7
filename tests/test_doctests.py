"""Run the Examples: sections of the library's docstrings."""

import doctest
import importlib
import pkgutil

import jax
import pytest

import sae_jax

MODULES = sorted(
    m.name for m in pkgutil.iter_modules(sae_jax.__path__, "sae_jax.") if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    # docstring examples are written for a user's default config (float32, standard promotion)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"), jax.enable_x64(False):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest failure(s) in {name}"
