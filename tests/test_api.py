"""The public API's hygiene: a few public modules over ``sae_jax._src``, one home per name.

- at most 15 public module files in ``sae_jax/`` (everything else under ``sae_jax/_src``);
- every public module defines ``__all__`` and only re-exports from ``sae_jax._src`` (no logic);
- each public name is exported by exactly one public module, one object has one public name, and a
  name spelled like a public module is that module's own main function (``sae_jax.check.check``);
- no test, notebook, benchmark, derivation or doc imports from ``sae_jax._src`` a name a public
  module exports (they import what users import);
- every public function and class has its own docstring with an ``Examples`` block that
  ``tests/test_doctests.py`` runs (doctest collects it from the module that defines it), and every
  public constant is documented where it is defined (a ``#:`` comment or a docstring after it).

``python tests/test_api.py [REV]`` prints the counts the issue's closing note asks for (public module
files, distinct public names, names in more than one ``__all__``, ``raise InputError(`` sites, lines
of ``sae_jax``) for the working tree and, read from git, for REV (default 9833f39, before the move).
"""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import inspect
import json
import pathlib
import re
import subprocess
import sys
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sae_jax"
SRC = "sae_jax._src"
MAX_PUBLIC_FILES = 15

#: Public functions/classes whose own docstring has no runnable example yet (issue 22's standard:
#: every public name has one; most of these are shown only in their module's docstring). Written
#: ``module.name`` without the ``sae_jax.`` prefix (``sae_jax.X`` for the top level). The list may only
#: shrink: a name that gains an example must leave it (the test says so); a public name not listed
#: must have one. 129 at the start (2026-12-05).
MISSING_EXAMPLES: frozenset[str] = frozenset({
    'sae_jax.Activations', 'sae_jax.CostTerms', 'sae_jax.InputError', 'sae_jax.Params',
    'sae_jax.autodiff_cost_and_grad', 'check.Mistake', 'check.Probe', 'check.Report', 'check.check',
    'check.check_results', 'check.detect_convention', 'check.load_function', 'check.probes',
    'check.reference', 'check.variant_cost_and_grad', 'check.write_cases', 'cli.build_parser', 'cli.main',
    'sae_jax.corrupt', 'sae_jax.cost_terms', 'sae_jax.cost_terms_and_grad', 'data.DataSpec',
    'data.find_mnist', 'data.load_array', 'data.load_dataset', 'data.load_digit_labels', 'data.load_digits',
    'data.load_from_spec', 'data.load_images_mat', 'data.load_labels', 'data.load_mnist',
    'data.load_mnist_idx', 'data.load_mnist_idx_labels', 'data.natural_images', 'data.normalize_patches',
    'data.patches_from_images_mat', 'data.sample_patches', 'data.whiten_images',
    'data.whitened_natural_images', 'sae_jax.decode', 'sae_jax.decoder_weights',
    'display.save_evaluation_png', 'display.save_filters_png', 'display.save_sweep_png',
    'display.save_training_curve_png', 'display.tile_filters', 'experiments.Row', 'experiments.Table',
    'experiments.probe', 'experiments.self_taught', 'experiments.stacked_digits', 'sae_jax.forward',
    'gradcheck.GradcheckRow', 'gradcheck.default_step', 'gradcheck.format_table', 'gradcheck.gradcheck',
    'gradcheck.relative_error', 'gradcheck.row_passes', 'sae_jax.hidden_delta', 'sae_jax.is_tied',
    'sae_jax.kl_sparsity_penalty',
    'metrics.dead_units', 'metrics.quantiles', 'metrics.rho_hat_histogram',
    'metrics.saturated_units', 'metrics.split_validation', 'metrics.unit_activation_range',
    'optim.MinimizeResult', 'optim.ScaleByCompactLBFGSState', 'optim.lbfgs', 
    'optim.scale_by_compact_lbfgs', 'sae_jax.output_delta', 'sae_jax.params_to_theta', 'sae_jax.reconstruct',
    'sae_jax.reconstruction', 'scale.ShardedBatch', 'scale.batch_mesh',
    'scale.chunk_size_for_budget', 'scale.chunked_cost', 'scale.chunked_cost_and_grad',
    'scale.chunked_cost_terms', 'scale.device_chunks', 'scale.make_chunked_value_and_grad', 'scale.replicate',
    'scale.shard_batch', 'scale.shard_map_cost_and_grad', 'scale.sharded_cost_and_grad',
    'scale.sharded_cost_terms_and_grad', 'sae_jax.sigmoid', 'sae_jax.sigmoid_prime', 'softmax.SoftmaxParams',
    'softmax.one_hot', 'softmax.softmax_cost', 'softmax.softmax_logits', 'softmax.softmax_predict',
    'stacked.StackedParams', 'stacked.StackedResult',
    'stacked.fine_tune', 'stacked.init_stack', 'stacked.pretrain', 'stacked.stack_activations',
    'stacked.stacked_cost', 'stacked.stacked_cost_and_grad', 'stacked.stacked_predict',
    'stacked.train_stacked', 'sae_jax.theta_to_params', 'sae_jax.tie', 'training.RunDir',
    'training.SweepResult', 'training.TrainConfig', 'training.TrainResult', 'training.TrainingDiverged',
    'training.find_params_file', 'training.load_checkpoint', 'training.load_params',
    'training.make_optimizer', 'training.read_metrics', 'training.save_checkpoint', 'training.save_params',
    'training.train', 'sae_jax.untie', 'sae_jax.weight_decay'
})

#: Public constants without a ``#:`` comment (or docstring) where they are defined, which the API
#: reference shows as their description. Only shrinks, like :data:`MISSING_EXAMPLES`.
UNDOCUMENTED_CONSTANTS: frozenset[str] = frozenset({
    'check.CATALOGUE', 'check.MISTAKES', 'experiments.STACKED_MNIST_CONFIGS', 'gradcheck.AUTODIFF_TOL',
    'gradcheck.FD_TOL', 'metrics.DEAD_THRESHOLD', 'metrics.QUANTILES', 'metrics.SATURATION_THRESHOLD',
    'scale.BATCH_AXIS', 'scale.DEFAULT_CHUNK_SIZE', 'training.CHECKPOINT_NAME', 'training.CONFIG_NAME',
    'training.DTYPES', 'training.GRADIENTS', 'training.METRICS_NAME', 'training.OPTIMIZERS',
    'training.PARAMS_NAME', 'training.RHO_HAT'
})


def public_module_names() -> list[str]:
    """``sae_jax`` and ``sae_jax.<file>`` for every ``sae_jax/*.py`` but ``__main__``."""
    names = ["sae_jax"]
    names += [f"sae_jax.{p.stem}" for p in sorted(PACKAGE.glob("*.py")) if not p.stem.startswith("_")]
    return names


def _module_path(name: str) -> pathlib.Path:
    return PACKAGE / "__init__.py" if name == "sae_jax" else PACKAGE / f"{name.split('.', 1)[1]}.py"


def _literal_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


def homes() -> dict[str, list[str]]:
    """public name -> the public modules whose ``__all__`` lists it."""
    found: dict[str, list[str]] = {}
    for module in public_module_names():
        for name in importlib.import_module(module).__all__:
            found.setdefault(name, []).append(module)
    return found


def public_objects() -> dict[str, tuple[str, object]]:
    """public name -> (its public module, the object)."""
    return {name: (mods[0], getattr(importlib.import_module(mods[0]), name)) for name, mods in homes().items()}


# --- the layout -------------------------------------------------------------------------------


def test_at_most_15_public_module_files_and_the_rest_private():
    files = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(files) <= MAX_PUBLIC_FILES, f"{len(files)} module files in sae_jax/ (at most {MAX_PUBLIC_FILES}): {files}"
    packages = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name not in ("_src", "__pycache__"))
    assert not packages, f"subpackages outside sae_jax/_src (move them under _src): {packages}"


def _allowed_statement(module: str, node: ast.stmt) -> bool:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
        return True  # the docstring
    if isinstance(node, ast.ImportFrom):
        return node.module == "__future__" or (not node.level and (node.module == SRC or node.module.startswith(SRC + ".")))
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        name = node.targets[0].id
        return name == "__all__" or (module == "sae_jax" and name == "_SUBMODULES")
    if module == "sae_jax" and isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
        return True  # the lazy public submodules (``sae_jax.training`` on first use)
    if isinstance(node, ast.If) and ast.unparse(node.test) in ("__name__ == '__main__'", '__name__ == "__main__"'):
        return True  # ``python -m sae_jax.cli``
    return False


@pytest.mark.parametrize("module", public_module_names())
def test_public_module_only_reexports_from_src(module):
    tree = ast.parse(_module_path(module).read_text())
    logic = [f"line {n.lineno}: {ast.unparse(n).splitlines()[0]}" for n in tree.body if not _allowed_statement(module, n)]
    assert not logic, f"{module} has code other than re-exports from {SRC} (move it to _src): {logic}"
    listed = _literal_all(tree)
    assert listed is not None, f"{module} defines no literal __all__"
    assert len(listed) == len(set(listed)), f"{module}.__all__ lists a name twice"
    imported = {(a.asname or a.name) for n in tree.body if isinstance(n, ast.ImportFrom) and n.module != "__future__"
                for a in n.names}
    assert not set(listed) - imported, f"{module}.__all__ names what it does not import: {sorted(set(listed) - imported)}"
    unlisted = sorted(n for n in imported - set(listed) if not n.startswith("__"))
    assert not unlisted, f"{module} imports names it does not export (drop them or list them): {unlisted}"
    if module == "sae_jax":
        sub = ast.literal_eval(next(n.value for n in tree.body if isinstance(n, ast.Assign)
                                    and n.targets[0].id == "_SUBMODULES"))
        assert sorted(sub) == sorted(m.split(".", 1)[1] for m in public_module_names()[1:])


def test_the_reexport_check_can_fail():
    allowed = [_allowed_statement("sae_jax.x", n) for n in ast.parse(
        '"""Doc."""\nfrom sae_jax._src.cost import cost as cost\n__all__ = ["cost"]\n'
        'from sae_jax.training import train\nimport numpy\nX = 1\ndef f():\n    pass\n'
        'def __getattr__(name):\n    pass\n').body]
    assert allowed == [True, True, True, False, False, False, False, False]


def test_one_home_per_name():
    twice = {name: mods for name, mods in homes().items() if len(mods) > 1}
    assert not twice, f"public names exported by more than one public module (pick one home): {twice}"


def test_one_public_name_per_object():
    """Two public names for one function or class would be two spellings of one thing."""
    seen: dict[int, str] = {}
    aliases = []
    for name, (module, obj) in public_objects().items():
        if inspect.isroutine(obj) or inspect.isclass(obj):
            if id(obj) in seen:
                aliases.append((seen[id(obj)], f"{module}.{name}"))
            seen.setdefault(id(obj), f"{module}.{name}")
    assert not aliases, f"one object, several public names: {aliases}"


def test_a_name_spelled_like_a_public_module_is_that_modules_main_function():
    """``sae_jax.check`` (the module) and ``check`` (its function) are one idea; ``sae_jax.X`` as a
    module and ``X`` as an unrelated name elsewhere would be two meanings of one spelling."""
    modules = {m.split(".", 1)[1]: m for m in public_module_names()[1:]}
    clashes = [(name, mods) for name, mods in homes().items() if name in modules and mods != [modules[name]]]
    assert not clashes, f"public names spelled like a public module but exported elsewhere: {clashes}"
    top = set(importlib.import_module("sae_jax").__all__)
    assert not top & set(modules), f"sae_jax's top level exports names that shadow its submodules: {top & set(modules)}"


# --- who imports what -------------------------------------------------------------------------

SCANNED = ("tests", "derivations", "benchmarks", "notebooks", "docs")
_FROM_SRC = re.compile(r"from\s+(sae_jax\._src(?:\.\w+)*)\s+import\s+(\([^)]*\)|[^\n#]*)")


def _scanned_files() -> list[pathlib.Path]:
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*")) if p.suffix in (".py", ".md", ".ipynb")]
    return files + [ROOT / "README.md"]


def _source_text(path: pathlib.Path) -> str:
    if path.suffix != ".ipynb":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells)


def _public_identity() -> dict[tuple[str, int], str]:
    return {(name, id(obj)): f"{module}.{name}" for name, (module, obj) in public_objects().items()}


def _src_attr(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def private_imports_of_public_names(text: str, public=None) -> list[str]:
    """``from sae_jax._src.X import name`` where ``name`` is a public object; and, in Python code,
    ``from sae_jax._src[.pkg] import mod`` followed by ``mod.name`` for a public ``name``."""
    public = _public_identity() if public is None else public
    patched = set(re.findall(r"setattr\(\s*(\w+)\s*,\s*[\"'](\w+)[\"']", text))  # monkeypatching the implementation
    found = []
    for match in _FROM_SRC.finditer(text):
        module = match.group(1)
        for item in re.split(r"[,\n]", match.group(2).strip("()")):
            words = item.strip().lstrip(".>").split()
            if not words or not words[0].isidentifier():
                continue
            obj = _src_attr(module, words[0])
            if isinstance(obj, types.ModuleType):
                alias = words[2] if len(words) == 3 and words[1] == "as" else words[0]
                if not alias.isidentifier():
                    continue
                for attr in sorted(set(re.findall(rf"(?<![\w.]){alias}\.(\w+)", text))):
                    inner = _src_attr(obj.__name__, attr)
                    if inner is not None and (attr, id(inner)) in public and (alias, attr) not in patched:
                        found.append(f"{alias}.{attr} (from {obj.__name__}; public: {public[(attr, id(inner))]})")
            elif obj is not None and (words[0], id(obj)) in public:
                found.append(f"{words[0]} from {module} (public: {public[(words[0], id(obj))]})")
    return sorted(set(found), key=found.index)


def test_no_test_or_doc_imports_a_public_name_from_src():
    public = _public_identity()
    bad = {}
    for path in _scanned_files():
        if path == pathlib.Path(__file__).resolve():
            continue  # this file's own planted example
        text = _source_text(path)
        if "sae_jax._src" in text:
            found = private_imports_of_public_names(text, public)
            if found:
                bad[str(path.relative_to(ROOT))] = found
    assert not bad, "import these from their public module, as users do:\n" + "\n".join(
        f"  {f}: {', '.join(v)}" for f, v in bad.items())


def test_the_import_scan_can_fail():
    hits = private_imports_of_public_names(
        "from sae_jax._src.backprop import cost_and_grad, delta_sums\n"
        "from sae_jax._src import chunked as ch\nch.chunked_cost(p, x)\nch.jax.numpy\n"
        ">>> from sae_jax._src.config import (\n...     TrainConfig)\n")
    assert hits == ["cost_and_grad from sae_jax._src.backprop (public: sae_jax.cost_and_grad)",
                    "ch.chunked_cost (from sae_jax._src.chunked; public: sae_jax.scale.chunked_cost)",
                    "TrainConfig from sae_jax._src.config (public: sae_jax.training.TrainConfig)"]


# --- every public name documented with an example ----------------------------------------------

_FINDER = doctest.DocTestFinder()


def _collected_examples(module: str) -> dict[str, int]:
    """doctest name -> number of examples, as ``doctest.testmod`` of that module collects them."""
    return {t.name: len(t.examples) for t in _FINDER.find(importlib.import_module(module))}


def _documented_constant(module: str, name: str, depth: int = 0) -> bool:
    """``#:`` comment above, or a string right after, the constant's top-level assignment, found by
    following ``from X import name`` re-exports from ``module`` to the module that assigns it."""
    path = pathlib.Path(importlib.import_module(module).__file__)
    lines = path.read_text().splitlines()
    body = ast.parse("\n".join(lines)).body
    for i, node in enumerate(body):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(getattr(t, "id", None) == name for t in targets):
            after = body[i + 1] if i + 1 < len(body) else None
            docstring_after = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(
                after.value.value, str)
            return lines[node.lineno - 2].lstrip().startswith("#:") or docstring_after
    for node in body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names) and depth < 5:
            package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
            source = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level \
                else node.module
            original = next(a.name for a in node.names if (a.asname or a.name) == name)
            return _documented_constant(source, original, depth + 1)
    return False


def _source_module_of_constant(public_module: str, name: str) -> str:
    tree = ast.parse(_module_path(public_module).read_text())
    return next(n.module for n in tree.body if isinstance(n, ast.ImportFrom)
                and any((a.asname or a.name) == name for a in n.names))


def _short(qualified: str) -> str:
    return qualified.replace("sae_jax.", "", 1) if qualified.count(".") > 1 else qualified


def names_without_examples() -> tuple[list[str], list[str]]:
    """(functions/classes without a collected example, constants without documentation)."""
    no_example, undocumented = [], []
    cache: dict[str, dict[str, int]] = {}
    for name, (module, obj) in sorted(public_objects().items()):
        if inspect.isroutine(obj) or inspect.isclass(obj):
            where = obj.__module__
            if where not in cache:
                cache[where] = _collected_examples(where)
            if cache[where].get(f"{where}.{obj.__qualname__}", 0) == 0:
                no_example.append(_short(f"{module}.{name}"))
        elif not isinstance(obj, types.ModuleType):
            if not _documented_constant(_source_module_of_constant(module, name), name):
                undocumented.append(_short(f"{module}.{name}"))
    return no_example, undocumented


def test_every_public_function_and_class_has_a_runnable_example():
    no_example, _ = names_without_examples()
    assert "sae_jax.cost_and_grad" not in no_example and "training.sweep" not in no_example  # the finder sees examples
    new = sorted(set(no_example) - MISSING_EXAMPLES)
    assert not new, (f"{len(new)} public names have no Examples block in their own docstring (collected and "
                     f"run by tests/test_doctests.py from the module that defines them): {new}")
    gained = sorted(MISSING_EXAMPLES - set(no_example))
    assert not gained, f"these now have examples: remove them from MISSING_EXAMPLES: {gained}"


def test_every_public_constant_is_documented_where_it_is_defined():
    _, undocumented = names_without_examples()
    new = sorted(set(undocumented) - UNDOCUMENTED_CONSTANTS)
    assert not new, f"public constants without a '#:' comment or docstring at their definition: {new}"
    gained = sorted(UNDOCUMENTED_CONSTANTS - set(undocumented))
    assert not gained, f"these are documented now: remove them from UNDOCUMENTED_CONSTANTS: {gained}"


# --- the closing note's counts ----------------------------------------------------------------


def _git_files(rev: str) -> dict[str, str]:
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "sae_jax"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    return {n: subprocess.run(["git", "show", f"{rev}:{n}"], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout for n in names if n.endswith(".py")}


def _tree_files() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


def counts(files: dict[str, str]) -> dict[str, int]:
    """The issue's counts for a tree of ``sae_jax`` files (path -> text). A public module is one
    whose dotted name has no part starting with ``_`` (a package counts by its ``__init__.py``)."""
    public = {}
    for path, text in files.items():
        parts = pathlib.PurePosixPath(path).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if not any(p.startswith("_") for p in parts):
            public[".".join(parts)] = text
    listed: dict[str, int] = {}
    for text in public.values():
        for name in _literal_all(ast.parse(text)) or []:
            listed[name] = listed.get(name, 0) + 1
    return {
        "public modules (packages by their __init__.py)": len(public),
        "public module files, __init__.py not counted (the issue's count)": sum(
            1 for path in files if not any(p.startswith("_") for p in pathlib.PurePosixPath(path).parts)),
        "distinct public names": len(listed),
        "names in more than one __all__": sum(1 for n in listed.values() if n > 1),
        "raise InputError sites (also raise validate.InputError)": sum(
            len(re.findall(r"\braise\s+(?:\w+\.)*InputError\b", t)) for t in files.values()),
        "lines of sae_jax": sum(len(t.splitlines()) for t in files.values()),
    }


def test_counts_of_this_tree():
    now = counts(_tree_files())
    assert now["public modules (packages by their __init__.py)"] == len(public_module_names()) <= MAX_PUBLIC_FILES
    assert now["distinct public names"] == len(homes())
    assert now["names in more than one __all__"] == 0


if __name__ == "__main__":
    rev = sys.argv[1] if len(sys.argv) > 1 else "9833f39"
    before, after = counts(_git_files(rev)), counts(_tree_files())
    print(f"| | {rev} | this tree |\n|---|---:|---:|")
    for key in before:
        print(f"| {key} | {before[key]:,} | {after[key]:,} |")
