"""Every documented snippet runs as written: README.md's and every page's under docs/.

The documents are README.md and every ``docs/**/*.md`` (the site's pages), in the site's reading order
(:data:`DOCUMENTS`): every ```python block is executed, every shell command is parsed.

Issue 12.4: the README's training snippet failed as written (float64 without x64). Here each Python
block runs in a fresh interpreter with JAX's defaults (float32, standard promotion: the reader, not this
suite's conftest), in a temporary directory. In the default run the variants, training, warm-start and
sweep blocks share one interpreter (:func:`fast_blocks_session`), each block in its own namespace, the
float32 block first; ``-m slow`` runs each in its own. The default run shrinks only the expensive numbers
and draws no pictures in the training and sweep blocks (``pictures=False``: ~2 CPU-s; the verbatim runs
and tests/test_display.py draw them), declared below, each replaced text still in its block, so they
cannot drift apart; ``-m slow`` runs the blocks verbatim. A Python block of a kind not listed here fails the test: documentation cannot grow
untested code. Every ``sae-jax``, ``python3 -m derivations``, ``python3 -m benchmarks`` and ``mkdocs``
line of a shell block must parse with that command's own parser (``mkdocs``: a known subcommand; ``pip
install``: extras that pyproject.toml declares). Issue 22.6: the README's reference sections moved to
docs/guide/; this test followed them.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import compile_speed_flags

ROOT = Path(__file__).resolve().parents[1]


def _documents() -> list[Path]:
    """README.md, then docs/'s pages in mkdocs.yml's nav order, then any other page of docs/ (sorted)."""
    nav = re.findall(r"^\s*- [^:\n]*:\s*(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    pages = [ROOT / "docs" / n for n in nav]
    pages += sorted(p for p in (ROOT / "docs").rglob("*.md") if p not in pages)
    return [ROOT / "README.md", *pages]


DOCUMENTS = _documents()
TEXT = {p.relative_to(ROOT).as_posix(): p.read_text() for p in DOCUMENTS}
README = TEXT["README.md"]


def page(rel: str) -> str:
    """The text of one document, by its path relative to the repository root."""
    return TEXT[rel]


def located_blocks(lang: str) -> list[tuple[str, str]]:
    """``(document, block)`` for every fenced ``lang`` block of every document, top-level or indented
    inside a list item (dedented), in document order."""
    out = []
    for rel, text in TEXT.items():
        found = re.findall(rf"^( *)```{lang}\n(.*?)^\1```", text, flags=re.S | re.M)
        out += [(rel, textwrap.dedent(body)) for _, body in found]
    return out


def blocks(lang: str) -> list[str]:
    """Every fenced ``lang`` block of every document (dedented)."""
    return [b for _, b in located_blocks(lang)]


# kind -> a substring that identifies the block
KINDS = {
    "quick": 'load_dataset("natural", n_patches=10_000',  # README's ten lines
    "pure": "# UFLDL init, W1: (25, 64)",
    "train": 'TrainConfig(), run_dir="runs/demo"',
    "chunked": "scale.chunked_cost_and_grad(params, \"x.npy\", chunk_size",
    "devices": "scale.shard_batch(x, mesh)",
    "hosts": "jax.distributed.initialize(",
    "check": 'from sae_jax.check import check',  # run as written by tests/test_check.py
    "variants": "sae.corrupt(jax.random.key(2), x",
    "warm_start": "init_state=first.state",
    "sweep": 'out_dir="runs/sweep"',
}
# Default (fast) run: exact replacements, each of which must occur in its block.
FAST = {
    "train": {"natural_image_patches(10_000, 8, seed=0)": "natural_image_patches(200, 8, seed=0)",
              "TrainConfig()": "TrainConfig(steps=3)",
              'run_dir="runs/demo")': 'run_dir="runs/demo", pictures=False)'},
    # lbfgs_loop compiles an L-BFGS step over pure_callback (~15 s); its trajectory is
    # tests/test_chunked.py's; here only the name is checked by default.
    "chunked": {"res = lbfgs_loop(vg, params, num_steps=400)": "res = lbfgs_loop"},
    "warm_start": {"natural_image_patches(2_000, 8, seed=0)": "natural_image_patches(200, 8, seed=0)",
                   "steps=50": "steps=3"},
    "sweep": {"natural_image_patches(10_000, 8, seed=0)": "natural_image_patches(200, 8, seed=0)",
              "TrainConfig(steps=200)": "TrainConfig(steps=3)",
              'out_dir="runs/sweep")': 'out_dir="runs/sweep", pictures=False)'},
}


def _block(kind: str) -> str:
    found = [b for b in blocks("python") if KINDS[kind] in b]
    assert len(found) == 1, f"the documents have {len(found)} python blocks of kind {kind!r}"
    return found[0]


def _fast(kind: str, code: str, verbatim: bool) -> str:
    if verbatim:
        return code
    for old, new in FAST.get(kind, {}).items():
        assert old in code, f"the {kind} block no longer contains {old!r}: update FAST"
        code = code.replace(old, new)
    return code


def _run(code: str, tmp_path: Path, env_extra: dict | None = None, timeout: int = 600):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(env_extra or {})
    # The suite's compile-speed settings (tests/conftest.py: TEST_XLA_FLAGS) are the one XLA_ setting
    # passed on: they change how fast programs compile, not what the block does.
    speed = compile_speed_flags()
    if speed:
        env["XLA_FLAGS"] = " ".join([env.get("XLA_FLAGS", ""), *speed]).strip()
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"documented block failed:\n{code}\n--- stderr ---\n{r.stderr[-3000:]}"
    return r


def test_every_python_block_is_known():
    located = located_blocks("python")
    assert {rel for rel, _ in located} >= {"README.md", "docs/guide/math.md", "docs/guide/training.md"}
    for rel, b in located:
        kinds = [k for k, s in KINDS.items() if s in b]
        assert len(kinds) == 1, f"a python block of {rel} this test does not run (add it to KINDS):\n{b}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("verbatim", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["fast", "verbatim"])
def test_pure_chunked_and_devices_blocks_run_in_one_session(tmp_path, verbatim):
    """The chunked and devices blocks continue the pure-functions block (params, x, hp), as a reader would.
    README's ten lines run first in the same interpreter, in a namespace of their own (their shapes and
    dtype are the pure block's, so the two share compilations)."""
    quick = _block("quick") + "\nassert abs(float(J - J_ad)) <= 1e-5 * abs(float(J)) and x.shape == (10_000, 64)\n"
    code = f"exec(compile({quick!r}, '<README quick block>', 'exec'), {{'__name__': '__main__'}})\n"
    code += "\n".join(_fast(k, _block(k), verbatim) for k in ("pure", "chunked", "devices"))
    code += "\nassert float(J) == float(J) and len(mesh.devices.flat) == 2\n"
    _run(code, tmp_path, {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})


def _training_code(verbatim: bool) -> str:
    return _fast("train", _block("train"), verbatim) + "\nprint(repr(float(result.metrics[-1]['cost'])))\n"


def _variants_code() -> str:
    return _block("variants") + (
        "\nassert g.W2 is None and untied.W2.shape == (64, 25)"
        "\nassert abs(float(J - J_ad)) <= 1e-5 * abs(float(J)) and float(terms.l1) > 0\n"
    )


def _warm_start_and_sweep_code(verbatim: bool) -> str:
    return "\n".join(_fast(k, _block(k), verbatim) for k in ("warm_start", "sweep")) + (
        "\nassert int(more.state.step) == 2 * int(first.state.step) > 0"
        "\nassert fresh.params.W1.shape == first.params.W1.shape == (25, 64)"
        "\nassert len(r.summary) == 6 and r.params_at(0).W1.shape == (25, 64)\n"
    )


@pytest.fixture(scope="module")
def fast_blocks_session(tmp_path_factory):
    """The default run's variants, training, warm-start and sweep blocks in ONE fresh interpreter (one
    JAX start-up instead of three), each block exec'd in its own namespace so none can lean on another's
    names; the variants block (float32, JAX's defaults) runs first, before the others enable x64.
    Returns the working directory and the completed process."""
    d = tmp_path_factory.mktemp("doc_blocks")
    parts = [("variants", _variants_code()), ("train", _training_code(False)),
             ("warm_start+sweep", _warm_start_and_sweep_code(False))]
    script = (f"parts = {parts!r}\n"
              "for name, src in parts:\n"
              "    exec(compile(src, f'<docs {name} block>', 'exec'), {'__name__': '__main__'})\n")
    return d, _run(script, d)


@pytest.mark.parametrize("verbatim", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["fast", "verbatim"])
def test_training_block_runs(tmp_path, verbatim, request):
    if verbatim:
        r = _run(_training_code(True), tmp_path)
    else:
        tmp_path, r = request.getfixturevalue("fast_blocks_session")
    assert (tmp_path / "runs" / "demo" / "params.safetensors").exists()
    if verbatim:  # the Training guide's number: final cost of the UFLDL exercise
        assert abs(float(r.stdout.strip().splitlines()[-1]) - 0.4132) < 5e-5


def test_variants_block_runs(fast_blocks_session):
    """Its assertions run inside the shared interpreter (the fixture fails if they do not hold)."""
    assert fast_blocks_session[1].returncode == 0


@pytest.mark.parametrize("verbatim", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["fast", "verbatim"])
def test_warm_start_and_sweep_blocks_run(tmp_path, verbatim, request):
    """The two list-item blocks of the Training guide (indented, run like any other)."""
    if verbatim:
        _run(_warm_start_and_sweep_code(True), tmp_path)
    else:
        tmp_path, _ = request.getfixturevalue("fast_blocks_session")
    assert (tmp_path / "runs" / "sweep" / "summary.csv").exists()


def test_hosts_block_runs_as_a_single_process(tmp_path):
    """The multi-host block with one process on 127.0.0.1 (tests/test_multiprocess.py runs two)."""
    code = _block("hosts").replace("10.0.0.1:1234", f"127.0.0.1:{_free_port()}").replace(
        "num_processes=2", "num_processes=1")
    assert "127.0.0.1" in code and "num_processes=1" in code
    context = (  # numpy only: jax.distributed.initialize must come before JAX's first computation
        "import numpy as np\nfrom sae_jax import Params\ni = 0\n"
        "rng = np.random.default_rng(0)\n"
        "my_rows = rng.uniform(0, 1, (37, 64)).astype(np.float32)\n"
        "params = Params(*(0.1 * rng.standard_normal(s).astype(np.float32) for s in ((25, 64), (25,), (64, 25), (64,))))\n"
        "hp = dict(lam=1e-4, beta=3.0, rho=0.01)\n"
    )
    _run(context + code + "\nassert grads.W1.shape == (25, 64)\n", tmp_path)


def _shell_lines(document: str | None = None) -> list[list[str]]:
    """Every command of every bash block (of ``document`` only, if given), split like a shell."""
    out = []
    for rel, b in located_blocks("bash"):
        if document is not None and rel != document:
            continue
        for line in b.splitlines():
            line = line.split("  #", 1)[0].split(" # ", 1)[0].strip()
            for cmd in filter(None, (c.strip() for c in line.split("&&"))):
                out.append(shlex.split(cmd))
    return out


def test_every_shell_command_parses():
    import benchmarks.__main__ as bench
    import derivations.__main__ as deriv
    from sae_jax.cli import build_parser

    pyproject = (ROOT / "pyproject.toml").read_text()
    seen = set()
    for argv in _shell_lines():
        if argv[0] == "sae-jax":
            build_parser().parse_args(argv[1:])
        elif argv[:3] == ["python3", "-m", "derivations"]:
            deriv.build_parser().parse_args(argv[3:])
        elif argv[:3] == ["python3", "-m", "benchmarks"]:
            bench.build_parser().parse_args(argv[3:])
        elif argv[:4] == ["python3", "-m", "pip", "install"]:
            for extra in re.findall(r"^\.\[([a-z,]+)\]$", argv[-1])[0].split(","):
                assert f"\n{extra} = [" in pyproject, f"pip install names an extra pyproject.toml lacks: {extra}"
        elif argv[:3] == ["python3", "-m", "pytest"]:
            pass
        elif argv[0] == "mkdocs":
            assert argv[1] in ("serve", "build") and set(argv[2:]) <= {"--strict"}, argv
        elif argv[:1] == ["bash"]:
            assert (ROOT / argv[1]).is_file(), argv
        else:
            raise AssertionError(f"a documented shell command this test does not know: {' '.join(argv)}")
        seen.add(argv[0] if argv[0] != "python3" else argv[2])
    assert {"sae-jax", "derivations", "benchmarks", "mkdocs", "pip"} <= seen


@pytest.mark.slow
def test_training_shell_block_runs_verbatim(tmp_path):
    """The digits lines of the Training guide's block, in order (needs scikit-learn)."""
    pytest.importorskip("sklearn")
    from sae_jax.cli import main

    lines = [a for a in _shell_lines("docs/guide/training.md") if a[0] == "sae-jax" and "runs/digits" in " ".join(a)]
    assert len(lines) >= 4
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for argv in lines:
            assert main([*argv[1:], *(["--no-progress"] if argv[1] == "train" else [])]) == 0, argv
    finally:
        os.chdir(cwd)


@pytest.mark.slow
def test_denoising_example_learns_as_the_readme_says(tmp_path, capsys):
    """Issue 20.2: the Variants guide's denoising line, verbatim (about a minute on 2 cores): no health
    warning, few dead units, and the guide's reconstruction (0.388) against the mean predictor's (0.506)."""
    import json

    from sae_jax.cli import main
    from sae_jax.data import load_dataset

    (argv,) = [a for a in _shell_lines("docs/guide/variants.md") if a[:2] == ["sae-jax", "train"] and "runs/dae" in a]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main([*argv[1:], "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    cap = capsys.readouterr()
    assert "warning" not in cap.err and "corrupted training input: rho_hat mean" in cap.out
    last = [json.loads(r) for r in (tmp_path / "runs" / "dae" / "metrics.jsonl").read_text().splitlines()][-1]
    x = load_dataset("natural")
    baseline = 0.5 * np.mean(np.sum((x - x.mean(0)) ** 2, axis=1))
    variants = page("docs/guide/variants.md")
    assert f"mean predictor's {baseline:.3f}" in variants
    assert f"reconstruction {last['reconstruction']:.3f} on the clean patches" in variants
    assert last["dead_fraction"] <= 0.2 and last["reconstruction"] < 0.8 * baseline


EXPERIMENTS = ROOT / "docs" / "experiments"
COMMITTED = {"probe": EXPERIMENTS / "probe.json", "self-taught": EXPERIMENTS / "self-taught" / "results.json",
             "stacked": EXPERIMENTS / "stacked" / "results.json"}


def test_experiment_table_is_the_committed_run():
    """Every accuracy of the committed run (docs/experiments/) is in the experiments guide's table, as mean ± std."""
    import json

    section = page("docs/guide/experiments.md")
    for command, path in COMMITTED.items():
        res = json.loads(path.read_text())
        assert res["command"] == command and res["table"]["seeds"] == [0, 1, 2]
        for row in res["table"]["rows"]:
            assert f"| {row['mean']:.4f} ± {row['std']:.4f} |" in section, (command, row["name"])
    for png in ("self-taught/features.png", "stacked/second_layer.png", "stacked/second_layer_fine_tuned.png"):
        assert f"](../experiments/{png})" in section and (EXPERIMENTS / png).is_file()


@pytest.mark.slow
def test_experiment_commands_reproduce_the_committed_run(tmp_path):
    """The digits self-taught and stacked lines of the experiments guide, verbatim (minutes; needs scikit-learn):
    each seed's accuracies equal the committed run's (to 0.02: another CPU may round differently)."""
    import json

    pytest.importorskip("sklearn")
    from sae_jax.cli import main

    lines = [a for a in _shell_lines("docs/guide/experiments.md") if a[:2] in (["sae-jax", "self-taught"], ["sae-jax", "stacked"])
             and "--data" not in a]
    assert [a[1] for a in lines] == ["self-taught", "stacked"]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for argv in lines:
            assert main([*argv[1:], "--no-progress"]) == 0, argv
            got = json.loads((tmp_path / argv[argv.index("--out") + 1] / "results.json").read_text())["table"]
            want = json.loads(COMMITTED[argv[1]].read_text())["table"]
            assert [r["name"] for r in got["rows"]] == [r["name"] for r in want["rows"]]
            for g, w in zip(got["rows"], want["rows"]):
                np.testing.assert_allclose(g["values"], w["values"], atol=0.02, err_msg=f"{argv[1]}: {g['name']}")
    finally:
        os.chdir(cwd)


def test_cli_docstring_examples_parse():
    """The example invocations in the sae-jax and derivations module docstrings (shown by --help)."""
    import derivations.__main__ as deriv
    import sae_jax._src.cli as cli

    n = 0
    for doc, prefix, parser in ((cli.__doc__, "sae-jax", cli.build_parser()),
                                (deriv.__doc__, "python -m derivations", deriv.build_parser())):
        for line in doc.split("Example invocations::", 1)[1].splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith(prefix):
                parser.parse_args(shlex.split(line[len(prefix):]))
                n += 1
    assert n >= 10


def test_layout_section_matches_the_tree():
    """Issue 13: every module and subpackage of sae_jax, public (``sae_jax/``, two spaces in) and private
    (``sae_jax/_src/``, four), is in the Layout guide (docs/guide/layout.md), and nothing else is."""
    block = page("docs/guide/layout.md").split("```", 2)[1]

    def tree(pkg: Path) -> set[str]:
        names = {p.name for p in pkg.glob("*.py") if p.name != "__main__.py" and (p.name != "__init__.py" or pkg.name == "sae_jax")}
        return names | {p.name + "/" for p in pkg.iterdir() if p.is_dir() and (p / "__init__.py").exists()}

    for indent, pkg in (("  ", ROOT / "sae_jax"), ("    ", ROOT / "sae_jax" / "_src")):
        listed = set(re.findall(rf"^{indent}([a-z_]+(?:\.py|/))\s", block, flags=re.M))
        assert listed == tree(pkg), (f"docs/guide/layout.md lists {sorted(listed - tree(pkg))} not in {pkg.name}/; "
                                     f"misses {sorted(tree(pkg) - listed)}")
    for sub in ("cli", "data"):  # the private subpackages' modules are named in their line
        for p in (ROOT / "sae_jax" / "_src" / sub).glob("*.py"):
            if p.name not in ("__init__.py", "__main__.py"):
                assert p.name in block, f"docs/guide/layout.md's {sub}/ line does not name {p.name}"
