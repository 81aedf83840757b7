"""Run the Examples: sections of the library's docstrings, and require them of every public module.

Every module of ``sae_jax`` (the private ``sae_jax._src`` included) has its doctests run. Each
public module in :data:`PUBLIC_MODULES` must also have at least one example (``attempted > 0``): issue 13's
"every public module has a runnable Example". A public module that exists but is not listed
fails :func:`test_every_public_module_is_listed`, so a new module cannot slip through without
one; a listed module that does not exist fails too.
"""

import doctest
import importlib
import importlib.util
import pkgutil

import jax
import pytest

import sae_jax

#: Modules that must carry runnable examples (every public module; a listed module that
#: does not exist fails, so the list follows the tree).
PUBLIC_MODULES = (
    "sae_jax",
    "sae_jax.check",
    "sae_jax.cli",
    "sae_jax.data",
    "sae_jax.display",
    "sae_jax.experiments",
    "sae_jax.gradcheck",
    "sae_jax.metrics",
    "sae_jax.optim",
    "sae_jax.scale",
    "sae_jax.softmax",
    "sae_jax.stacked",
    "sae_jax.training",
)


def _is_public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


#: Every module in the installed package, subpackages included (``__main__`` only runs the CLI).
DISCOVERED = ["sae_jax"] + [
    m.name for m in pkgutil.walk_packages(sae_jax.__path__, "sae_jax.") if not m.name.endswith("__main__")
]


def _run_doctests(module) -> doctest.TestResults:
    # docstring examples are written for a user's default config (float32, standard promotion)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"), jax.enable_x64(False):
        return doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)


@pytest.mark.parametrize("name", sorted(set(DISCOVERED) | set(PUBLIC_MODULES)))
def test_docstring_examples(name):
    if importlib.util.find_spec(name) is None:
        pytest.fail(f"{name} is listed in PUBLIC_MODULES but does not exist: update the list")
    result = _run_doctests(importlib.import_module(name))
    assert result.failed == 0, f"{result.failed} doctest failure(s) in {name}"
    if name in PUBLIC_MODULES:
        assert result.attempted > 0, (
            f"{name} has no doctest examples: add a runnable Examples: block to its module docstring"
        )


def test_every_public_module_is_listed():
    unlisted = sorted(n for n in DISCOVERED if _is_public(n) and n not in PUBLIC_MODULES)
    assert not unlisted, f"public modules missing from PUBLIC_MODULES (each needs Examples): {unlisted}"


def test_a_module_without_examples_fails(tmp_path):
    """The check above can fail: a module with only prose docstrings attempts no example."""
    path = tmp_path / "no_examples.py"
    path.write_text('"""Prose only."""\n\n\ndef f():\n    """No examples."""\n')
    spec = importlib.util.spec_from_file_location("no_examples", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert _run_doctests(module).attempted == 0
