"""``docs/architecture.md`` is true of the code: its layer list against every import in ``sae_jax``.

The page lists the private modules (``sae_jax._src``) in numbered layers, from the math up to the
command line, as lines ``layer N (title): module, module`` in a fenced block. Read with :mod:`ast`
(nothing is imported), every import inside ``sae_jax`` -- module-level and function-level (lazy),
relative ones resolved, and the CLI's command modules loaded by name -- must point to a module in
the same layer or a lower one; every ``_src`` module must be in exactly one layer; the public
modules (``sae_jax/*.py``) sit above every layer and ``_src`` never imports them; and the
module-level imports among all of ``sae_jax``'s modules have no cycle. The page's table of public
modules names, for each, the ``_src`` modules it re-exports from and the test files that import
it (tests mirror the public modules); both columns are checked against the code. And every
```module.name``` the prose cites (module in a layer) exists there.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sae_jax"
SRC = "sae_jax._src"
DOC = ROOT / "docs" / "architecture.md"

LAYER_LINE = re.compile(r"^layer (\d+) \(([^)]*)\): (.+)$")


# --- reading the code ---------------------------------------------------------------------------


def modules(package: pathlib.Path = PACKAGE) -> dict[str, tuple[pathlib.Path, bool]]:
    """Every module of the package: dotted name -> (file, is a package's ``__init__``)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


def _resolve(module: str, is_package: bool, node: ast.AST, known) -> list[str]:
    """The modules of ours an import statement loads (a ``from P import x`` loads ``P.x`` if it is a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names]
    out = []
    for name in names:
        if name != "sae_jax" and not name.startswith("sae_jax."):
            continue
        while name not in known and "." in name:  # ``sae_jax._src.cost.kl`` -> the module ``sae_jax._src.cost``
            name = name.rsplit(".", 1)[0]
        if name in known and name != module:
            out.append(name)
    return out


class _Imports(ast.NodeVisitor):
    def __init__(self, module, is_package, known):
        self.module, self.is_package, self.known = module, is_package, known
        self.depth = 0
        self.found: list[tuple[str, bool, int]] = []  # (target, lazy, line)

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node):
        for target in _resolve(self.module, self.is_package, node, self.known):
            self.found.append((target, self.depth > 0, node.lineno))

    visit_ImportFrom = visit_Import


def _command_modules(module: str, tree: ast.Module, known) -> list[tuple[str, bool, int]]:
    """The CLI loads each command's module by name from ``COMMANDS`` (``importlib``): lazy edges."""
    out = []
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMMANDS" for t in node.targets)
                and isinstance(node.value, ast.Dict)):
            for value in node.value.values:
                target = f"{module}.{value.value}"
                assert target in known, f"{module}.COMMANDS names {value.value!r}, which is not a module"
                out.append((target, True, node.lineno))
    return out


def import_edges(package: pathlib.Path = PACKAGE) -> dict[str, list[tuple[str, bool, int]]]:
    """module -> [(imported module of ours, lazy?, line)] for every module of the package."""
    known = modules(package)
    edges = {}
    for name, (path, is_package) in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        visitor = _Imports(name, is_package, known)
        visitor.visit(tree)
        edges[name] = visitor.found + _command_modules(name, tree, known)
    return edges


def cycles(edges: dict[str, list[tuple[str, bool, int]]]) -> list[list[str]]:
    """The strongly connected components (more than one module) of the module-level import graph."""
    graph = {m: sorted({t for t, lazy, _ in targets if not lazy}) for m, targets in edges.items()}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan, iterative enough for a few hundred modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# --- reading the page ---------------------------------------------------------------------------


def doc_layers(text: str | None = None) -> dict[int, tuple[str, list[str]]]:
    """The page's layer list: N -> (title, [module relative to sae_jax._src]). Lines inside fences only."""
    text = DOC.read_text() if text is None else text
    layers: dict[int, tuple[str, list[str]]] = {}
    in_fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        match = LAYER_LINE.match(line.strip()) if in_fence else None
        if match:
            number = int(match.group(1))
            assert number not in layers, f"layer {number} is listed twice in {DOC.name}"
            layers[number] = (match.group(2), [m.strip() for m in match.group(3).split(",") if m.strip()])
    return layers


def doc_public_table(text: str | None = None) -> dict[str, tuple[list[str], list[str]]]:
    """The page's table ``| `sae_jax.x` | src modules | test files |`` -> {public: (srcs, tests)}."""
    text = DOC.read_text() if text is None else text
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| `sae_jax") else []
        if len(cells) == 3:
            public = cells[0].strip("`")
            rows[public] = tuple(re.findall(r"`([\w./]+)`", cell) for cell in cells[1:])
    return rows


def layer_of(layers) -> dict[str, int]:
    return {f"{SRC}.{m}": n for n, (_, mods) in layers.items() for m in mods}


def _public_modules() -> list[str]:
    return sorted(m for m in modules() if not m.startswith(SRC) and m != "sae_jax.__main__")


# --- the tests ----------------------------------------------------------------------------------


def test_every_private_module_is_in_exactly_one_layer():
    layers = doc_layers()
    assert layers, f"{DOC.name} has no layer list (lines 'layer N (title): module, ...' in a fence)"
    listed = [f"{SRC}.{m}" for _, mods in layers.values() for m in mods]
    twice = sorted({m for m in listed if listed.count(m) > 1})
    assert not twice, f"listed in more than one layer of {DOC.name}: {twice}"
    private = {m for m in modules() if m.startswith(SRC + ".")}
    missing = sorted(private - set(listed))
    assert not missing, f"modules in no layer of {DOC.name} (add each to the layer it belongs to): {missing}"
    stale = sorted(set(listed) - private)
    assert not stale, f"{DOC.name} lists modules that do not exist: {stale}"
    assert sorted(layers) == list(range(len(layers))), f"layers are numbered 0..N without gaps: {sorted(layers)}"


def test_private_imports_go_down_or_within_a_layer():
    """Every import inside ``_src``, lazy ones included, points to the same layer or a lower one."""
    rank = layer_of(doc_layers())
    upward = []
    for module, targets in import_edges().items():
        if module not in rank:
            continue
        for target, lazy, line in targets:
            if target in rank and rank[target] > rank[module]:
                kind = "lazy " if lazy else ""
                upward.append(f"{module} (layer {rank[module]}) -> {target} (layer {rank[target]}), "
                              f"{kind}import at line {line}")
    assert not upward, "imports that go up a layer of docs/architecture.md:\n  " + "\n  ".join(upward)


def test_private_modules_never_import_the_public_ones():
    """The public modules re-export ``_src``; ``_src`` building on them would be a loop through the API."""
    public = set(_public_modules()) | {"sae_jax.__main__"}
    bad = [f"{m} -> {t} (line {line})" for m, targets in import_edges().items() if m.startswith(SRC)
           for t, _, line in targets if t in public]
    assert not bad, f"sae_jax._src imports a public module: {bad}"


def test_public_modules_import_only_private_ones():
    edges = import_edges()
    bad = [f"{m} -> {t}" for m in _public_modules() for t, _, _ in edges[m] if not t.startswith(SRC)]
    assert not bad, f"a public module imports another public module (re-export from sae_jax._src): {bad}"
    assert [t for t, _, _ in edges["sae_jax.__main__"]] == ["sae_jax.cli"]


def test_no_import_cycles():
    found = cycles(import_edges())
    assert found == [], f"module-level import cycles (make one import lazy or move the function): {found}"


def test_the_checks_can_fail(tmp_path):
    """A planted upward import, a planted cycle and a lazy import are all seen."""
    pkg = tmp_path / "sae_jax"
    (pkg / "_src" / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from sae_jax._src.low import f\n")
    (pkg / "_src" / "__init__.py").write_text("")
    (pkg / "_src" / "low.py").write_text("from .high import g\n\ndef f():\n    from . import sub\n")
    (pkg / "_src" / "high.py").write_text("from . import low\n")
    (pkg / "_src" / "sub" / "__init__.py").write_text("from ..low import f\n")
    edges = import_edges(pkg)
    assert ("sae_jax._src.high", False, 1) in edges["sae_jax._src.low"]
    assert ("sae_jax._src.sub", True, 4) in edges["sae_jax._src.low"]
    assert ("sae_jax._src.low", False, 1) in edges["sae_jax._src.sub"]
    assert cycles(edges) == [["sae_jax._src.high", "sae_jax._src.low"]]
    layers = doc_layers("```text\nlayer 0 (bottom): low, sub\nlayer 1 (top): high\n```\n")
    assert layer_of(layers) == {"sae_jax._src.low": 0, "sae_jax._src.sub": 0, "sae_jax._src.high": 1}


def test_the_real_graph_is_what_the_page_describes():
    """Spot checks of the resolver on this repository (a resolver that found nothing would pass the rest)."""
    edges = {m: {t for t, _, _ in targets} for m, targets in import_edges().items()}
    assert f"{SRC}.forward" in edges[f"{SRC}.cost"]
    assert f"{SRC}.check" in edges[f"{SRC}.cli.check"]
    assert f"{SRC}.cli.train" in edges[f"{SRC}.cli"]  # loaded by name from COMMANDS
    assert f"{SRC}.config" in edges[f"{SRC}.checkpoint"]  # a function-level import
    assert sum(len(t) for t in edges.values()) > 200


_FILE_SUFFIXES = ("json", "jsonl", "safetensors", "png", "npy", "npz", "md", "py")


def dangling_references(text: str, layers) -> list[str]:
    """```module.name``` references of the page (module in a layer) that name nothing there."""
    listed = {m for _, mods in layers.values() for m in mods}
    bad = []
    for ref in sorted(set(re.findall(r"`([A-Za-z_][\w.]*\.\w+)`", text))):
        parts = ref.split(".")
        if parts[-1] in _FILE_SUFFIXES:
            continue  # a file name (metrics.jsonl)
        for k in range(len(parts) - 1, 0, -1):
            if ".".join(parts[:k]) in listed:
                obj = importlib.import_module(f"{SRC}.{'.'.join(parts[:k])}")
                for part in parts[k:]:
                    if not hasattr(obj, part):
                        bad.append(ref)
                        break
                    obj = getattr(obj, part)
                break
    return bad


def test_the_pages_module_references_exist():
    """``backprop.terms_and_grads_from_sums`` in the prose must be where the page says it is."""
    text = DOC.read_text()
    layers = doc_layers(text)
    assert dangling_references(text, layers) == [], "docs/architecture.md cites names that are not there"
    assert dangling_references("`cost.no_such_function` and `metrics.jsonl`", layers) == ["cost.no_such_function"]


def _test_files_importing() -> dict[str, set[str]]:
    """public module -> test files that import it (``import sae_jax.x``, ``from sae_jax.x import``,
    ``from sae_jax import x``; for ``sae_jax`` itself, any import of the top level's names)."""
    public = set(_public_modules())
    found: dict[str, set[str]] = {p: set() for p in public}
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                if node.module == "sae_jax":
                    subs = [f"sae_jax.{a.name}" for a in node.names if f"sae_jax.{a.name}" in public]
                    targets = subs + (["sae_jax"] if len(subs) < len(node.names) else [])
                else:
                    targets = [node.module]
            for target in targets:
                if target in public:
                    found[target].add(path.name)
    return found


def test_public_module_table_matches_the_code():
    """The page's table: each public module, the ``_src`` modules it re-exports from, its test files."""
    table = doc_public_table()
    public = _public_modules()
    assert sorted(table) == public, f"the table's public modules {sorted(table)} are not the package's {public}"
    edges = import_edges()
    importers = _test_files_importing()
    for name, (srcs, tests) in table.items():
        real = sorted(t[len(SRC) + 1:] for t, _, _ in edges[name] if t.startswith(SRC + "."))
        assert sorted(set(srcs)) == sorted(set(real)), f"{name} re-exports from {real}; the table says {srcs}"
        assert tests, f"{name}: no test file listed (tests mirror the public modules)"
        not_importing = sorted(set(tests) - importers[name])
        assert not not_importing, f"{name}: listed test files that do not import it: {not_importing}"


def test_every_public_module_has_a_test_file_that_imports_it():
    untested = sorted(p for p, files in _test_files_importing().items() if not files)
    assert not untested, f"public modules no test file imports: {untested}"


if __name__ == "__main__":  # print the real graph by layer, to write the page from
    rank = layer_of(doc_layers())
    for module, targets in sorted(import_edges().items()):
        print(module, rank.get(module), sorted({(t.replace(SRC + ".", ""), lazy) for t, lazy, _ in targets}))
    pytest.main([__file__, "-q"])
