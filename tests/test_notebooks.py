"""Every notebook runs, and its committed ``.ipynb`` matches its jupytext source.

For each ``notebooks/NN_name.py`` (jupytext py:percent; found automatically, so new notebooks are
picked up without editing this file):

- the paired ``notebooks/NN_name.ipynb`` exists, has the same cells (type and source) and was
  executed (every code cell has an execution count, no error outputs);
- the ``.py`` source executes top to bottom with nbclient in a kernel running *this* interpreter
  (``sys.executable``, via a throwaway kernelspec; nothing is registered globally), with the
  notebooks directory as working directory. A failing cell fails the test.

jupytext, nbclient, nbformat and ipykernel are in the ``test`` extra; if one is missing this module
errors at import (it is never skipped silently).

Regenerate a committed notebook after editing its source (same kernel set-up as the test)::

    python tests/test_notebooks.py notebooks/01_derivation.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import ipykernel  # noqa: F401  (required: the kernel the notebooks run in)
import jupytext
import nbformat
import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
KERNEL_NAME = "sae-jax-current-interpreter"
#: Per-cell limit; each notebook is meant to run in well under a minute at its default sizes.
CELL_TIMEOUT_S = 600


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def _kernel_manager(kernel_dir: Path) -> KernelManager:
    """A KernelManager whose only kernelspec runs ipykernel under ``sys.executable``."""
    spec = kernel_dir / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": f"Python ({sys.executable})",
                "language": "python",
            }
        )
    )
    ksm = KernelSpecManager(kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)


def execute(source: Path, kernel_dir: Path):
    """Execute the jupytext source in a fresh kernel (cwd = notebooks/); returns the executed notebook."""
    nb = jupytext.read(source)
    client = NotebookClient(
        nb,
        km=_kernel_manager(kernel_dir),
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(source.parent)}},
    )
    # We own the kernel manager, so ask nbclient to shut the kernel down and close its channels.
    client.execute(cleanup_kc=True)
    return nb


def test_notebooks_are_found_and_paired():
    assert SOURCES, f"no notebooks/NN_*.py found in {NOTEBOOKS}"
    ipynbs = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert [p.stem for p in ipynbs] == [p.stem for p in SOURCES], "every .py needs its .ipynb and vice versa"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_in_sync_and_executed(source):
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing: run `python tests/test_notebooks.py {source.relative_to(NOTEBOOKS.parent)}`"
    committed = nbformat.read(paired, as_version=4)
    assert _cells(committed) == _cells(jupytext.read(source)), f"{paired.name} is out of sync with {source.name}"
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert code, f"{source.name} has no code cells"
    not_run = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not not_run, f"{paired.name}: code cells {not_run} were not executed (commit the executed notebook)"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{paired.name} has error outputs: {[e.get('ename') for e in errors]}"


#: The default run executes the derivation and the gradient check (01, 02); 03-05 (training, checking
#: your implementation, the classic family) run under ``-m slow``: what they show is tested directly
#: by test_training, test_check, test_variants/softmax/stacked, and every notebook's committed
#: outputs are checked above to come from a complete run without errors.
DEFAULT_NOTEBOOKS = ("01_derivation", "02_gradient_check")


@pytest.mark.parametrize("source", [s if s.stem in DEFAULT_NOTEBOOKS else pytest.param(s, marks=pytest.mark.slow)
                                    for s in SOURCES], ids=lambda p: p.stem)
def test_notebook_executes(source, tmp_path):
    nb = execute(source, tmp_path / "kernels")
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def main(argv: list[str]) -> int:
    """Execute each given ``notebooks/NN_name.py`` and write the paired ``.ipynb`` with its outputs."""
    if not argv:
        print(__doc__.split("Regenerate", 1)[1].strip())
        return 2
    for arg in argv:
        source = Path(arg).resolve()
        with tempfile.TemporaryDirectory() as tmp:
            nb = execute(source, Path(tmp))
        jupytext.write(nb, source.with_suffix(".ipynb"), fmt="ipynb")
        print(f"wrote {source.with_suffix('.ipynb')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
