"""Run the Examples: sections of the library's docstrings, and require them of every public module.

Every module of ``sae_jax`` (the private ``sae_jax._src`` included) has its doctests run (the
private docstrings' under ``-m slow``). Each
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


def _public_docstrings() -> tuple[set, set]:
    """(the public modules, the public objects' ``module.qualname`` where they are defined): the
    docstrings the docs site shows. A public class's methods count as public too."""
    objects = set()
    for module in PUBLIC_MODULES:
        m = importlib.import_module(module)
        for n in m.__all__:
            obj = getattr(m, n)
            home, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
            if isinstance(home, str) and isinstance(qual, str):
                objects.add(f"{home}.{qual}")
    return set(PUBLIC_MODULES), objects


def is_public_docstring(test_name: str) -> bool:
    modules, objects = _PUBLIC
    return test_name in modules or any(test_name == o or test_name.startswith(o + ".") for o in objects)


_PUBLIC = _public_docstrings()


def _run_doctests(module, select=None) -> doctest.TestResults:
    """``doctest.testmod(module)``, keeping only the docstrings whose name ``select`` accepts."""
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    # docstring examples are written for a user's default config (float32, standard promotion)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"), jax.enable_x64(False):
        for test in finder.find(module, module.__name__):
            if select is None or select(test.name):
                runner.run(test)
    return runner.summarize(verbose=False)


#: The default run executes the examples of every public name and public module (what the docs site
#: shows); the examples in private docstrings (``sae_jax._src`` module docstrings and private
#: functions, for contributors) run under ``-m slow``.
@pytest.mark.parametrize("part", ["public", pytest.param("private", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", sorted(set(DISCOVERED) | set(PUBLIC_MODULES)))
def test_docstring_examples(name, part):
    if importlib.util.find_spec(name) is None:
        pytest.fail(f"{name} is listed in PUBLIC_MODULES but does not exist: update the list")
    wanted = is_public_docstring if part == "public" else (lambda n: not is_public_docstring(n))
    result = _run_doctests(importlib.import_module(name), wanted)
    assert result.failed == 0, f"{result.failed} doctest failure(s) in {name} ({part} docstrings)"
    if name in PUBLIC_MODULES and part == "public":
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


def test_public_docstrings_are_the_public_names():
    """The split above sees public names where they are defined, methods included, and not private ones."""
    assert is_public_docstring("sae_jax._src.backprop.cost_and_grad")
    assert is_public_docstring("sae_jax._src.rundir.RunDir.open")
    assert is_public_docstring("sae_jax.training")
    assert not is_public_docstring("sae_jax._src.backprop")  # a private module's docstring
    assert not is_public_docstring("sae_jax._src.step.make_step")
