"""Regenerate ``docs/experiments/`` by running the documented commands as shipped, then its tables.

Run from anywhere (the commands run in the repository root, with this checkout's ``sae_jax``)::

    python docs/experiments/reproduce.py            # the 8x8 digits: probe, self-taught, stacked (minutes)
    python docs/experiments/reproduce.py --mnist    # also MNIST (../shared/data/mnist-22699; most of an hour)
    python docs/experiments/reproduce.py --tables   # no runs: only the tables, from the committed JSON

Each step is one ``sae-jax`` command line exactly as the docs document it (:data:`DIGITS`,
:data:`MNIST`), run by ``python -m sae_jax.cli``; ``self-taught`` and ``stacked`` write their
``results.json`` and pictures to their ``--out`` directory (replaced), ``probe --json``'s standard
output is saved as ``probe.json``, and the run it probes is the Training guide's ``runs/digits`` command, trained in
a scratch directory. Afterwards :func:`write_tables` renders, from the JSON files alone,

- ``docs/experiments/README.md`` (every table, per seed, with the commands and each run's notes), and
- the two generated blocks of ``docs/guide/experiments.md`` (between ``<!-- reproduce.py: NAME -->`` and
  ``<!-- /reproduce.py: NAME -->``): the digits table and the MNIST table.

``tests/test_experiments_docs.py`` checks that both are exactly what :func:`render` writes from the
committed JSON, so a published number can only change by rerunning this script.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
DOCS = Path("docs") / "experiments"  # relative to the directory the commands run in
#: The guide page whose two marked tables this script writes (relative to the repository root).
GUIDE = Path("docs") / "guide" / "experiments.md"
#: MNIST's first 22,699 training images and its 10,000 test images, beside the repository (absent in a
#: user's clone: ``--mnist`` then stops with one line).
MNIST_DIR = Path("..") / "shared" / "data" / "mnist-22699"


class Step(NamedTuple):
    """One documented command: ``command`` (a ``sae-jax`` line), the JSON it produces (under ``DOCS``)."""

    name: str
    command: str
    results: str  # path under DOCS
    setup: tuple = ()  # commands run first, in the same scratch directory (probe's trained run)
    stdout: bool = False  # the JSON is the command's standard output (``--json``), else it writes it
    scratch: bool = False  # run in a scratch directory (its ``runs/`` must not touch the checkout's)


DIGITS = (
    Step("probe", "sae-jax probe runs/digits --json", "probe.json", stdout=True, scratch=True,
         setup=("sae-jax train --data digits --n-hidden 36 --dtype float32 --gradient autodiff --out runs/digits",)),
    Step("self-taught", "sae-jax self-taught --out docs/experiments/self-taught", "self-taught/results.json"),
    Step("stacked", "sae-jax stacked --out docs/experiments/stacked", "stacked/results.json"),
)
MNIST = (
    Step("mnist stacked", f"sae-jax stacked --data {MNIST_DIR.as_posix()} --preset mnist --seeds 0 "
         "--out docs/experiments/mnist/stacked", "mnist/stacked/results.json"),
    Step("mnist self-taught", f"sae-jax self-taught --data {MNIST_DIR.as_posix()} --preset mnist --seeds 0 "
         "--out docs/experiments/mnist/self-taught", "mnist/self-taught/results.json"),
)


# --- running ----------------------------------------------------------------------------------------


def _sae_jax(command: str) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "sae-jax", command
    return [sys.executable, "-m", "sae_jax.cli", *argv[1:]]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_step(step: Step, root: Path) -> None:
    """Run ``step`` so that its JSON lands in ``root / DOCS / step.results`` (``--out`` replaced)."""
    target = root / DOCS / step.results
    argv = shlex.split(step.command)
    out = root / argv[argv.index("--out") + 1] if "--out" in argv else None
    print(f"[reproduce] {step.command}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="sae-jax-reproduce-") as scratch:
        cwd = Path(scratch) if step.scratch else root
        for setup in step.setup:
            print(f"[reproduce]   first: {setup}", file=sys.stderr, flush=True)
            subprocess.run(_sae_jax(setup), cwd=cwd, env=_env(), check=True, stdout=subprocess.DEVNULL)
        old = None
        if out is not None and out.exists():  # --out must not hold a results.json: set the old one aside
            old = Path(scratch) / "previous"
            shutil.move(out, old)
        try:
            done = subprocess.run(_sae_jax(step.command), cwd=cwd, env=_env(), check=True,
                                  stdout=subprocess.PIPE if step.stdout else None, text=True)
        except BaseException:
            if old is not None:
                shutil.rmtree(out, ignore_errors=True)
                shutil.move(old, out)
            raise
    if step.stdout:
        json.loads(done.stdout)  # one JSON object, nothing else
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(done.stdout if done.stdout.endswith("\n") else done.stdout + "\n")
    assert target.is_file(), f"{step.command} wrote no {target}"


# --- rendering --------------------------------------------------------------------------------------


def load(docs: Path) -> dict:
    """``{step name: results dict}`` of every committed JSON under ``docs`` (MNIST's only if present)."""
    found = {}
    for step in DIGITS + MNIST:
        path = docs / step.results
        if path.is_file() or step in DIGITS:
            found[step.name] = json.loads(path.read_text())
    return found


def _acc(row: dict) -> str:
    return f"{row['mean']:.4f} ± {row['std']:.4f}" if len(row["values"]) > 1 else f"{row['mean']:.4f}"


def _row(res: dict, prefix: str) -> dict:
    rows = [r for r in res["table"]["rows"] if r["name"].startswith(prefix)]
    assert len(rows) == 1, f"{res['command']}: {len(rows)} rows named {prefix!r}..."
    return rows[0]


def _seeds(res: dict) -> str:
    s = res["table"]["seeds"]
    return f"seed {s[0]}" if len(s) == 1 else f"mean ± std, {len(s)} seeds"


def digits_table(results: dict) -> str:
    """The experiments guide's digits table: each row's mean ± std over seeds, beside UFLDL's MNIST figures."""
    probe, st, sk = results["probe"], results["self-taught"], results["stacked"]
    ref = sk["ufldl_mnist_reference"]
    seeds = {_seeds(r) for r in (probe, st, sk)}
    assert len(seeds) == 1, f"the digits runs differ in seeds: {seeds}"
    n_feat = _row(st, "self-taught features")["name"].split("(")[1].rstrip(")")
    rows = [
        ("softmax on raw pixels, 10 classes", _acc(_row(sk, "raw pixels")), ref["softmax on raw pixels"]),
        ("softmax on `runs/digits`' 36 features (`probe`)", _acc(_row(probe, "features")), "—"),
        ("self-taught: raw pixels, digits 0–4", _acc(_row(st, "raw pixels")), "—"),
        (f"self-taught: features from digits 5–9 ({n_feat}; UFLDL 200)", _acc(_row(st, "self-taught features")),
         ref["self-taught, 200 features"]),
        ("stacked 64→64→36→10 (UFLDL 784→200→200→10), before fine-tuning",
         _acc(_row(sk, "stack, before")), ref["stacked, before fine-tuning"]),
        ("stacked, after fine-tuning", _acc(_row(sk, "stack, after")), ref["stacked, after fine-tuning"]),
    ]
    assert _acc(_row(probe, "raw inputs")) == rows[0][1], "probe's and stacked's raw-pixel rows differ"
    lines = [f"| held-out accuracy | sae-jax, 8×8 digits ({seeds.pop()}) | UFLDL, MNIST (published) |",
             "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def _cell(res: dict, prefix: str) -> str:
    """A row's accuracy with its seeds: ``0.9768 (seed 0)`` or ``0.9768 ± 0.0010 (3 seeds)``."""
    seeds = res["table"]["seeds"]
    return f"{_acc(_row(res, prefix))} ({f'seed {seeds[0]}' if len(seeds) == 1 else f'{len(seeds)} seeds'})"


def _count(notes: list, pattern: str) -> tuple:
    for note in notes:
        m = re.search(pattern, note)
        if m:
            return tuple(f"{int(g):,}" for g in m.groups())
    raise AssertionError(f"no note matches {pattern!r}: {notes}")


def mnist_table(results: dict) -> str:
    """The experiments guide's MNIST table: what each row runs, sae-jax on the 22,699-image prefix, UFLDL's figures."""
    sk, st = results["mnist stacked"], results["mnist self-taught"]
    ref = sk["ufldl_mnist_reference"]
    (m_train,) = _count(sk["table"]["notes"], r"(\d+) train / \d+ test rows")
    (m_test,) = _count(sk["table"]["notes"], r"\d+ train / (\d+) test rows")
    (m_unl,) = _count(st["table"]["notes"], r"autoencoder: (\d+) rows")
    n_tr, n_te = _count(st["table"]["notes"], r"classifier: (\d+) train / (\d+) test rows")
    rows = [
        ("`stacked`, raw pixels", f"a softmax on the raw pixels (the softmax exercise): trained on the {m_train} "
         f"`train-*` images, tested on the {m_test} of `t10k-*`", _cell(sk, "raw pixels"),
         ref["softmax on raw pixels"]),
        ("`stacked`, before fine-tuning", "`stackedAEExercise.m`: 784 → 200 → 200 → 10, pretrained on `train-*`, "
         "tested on `t10k-*`", _cell(sk, "stack, before"), ref["stacked, before fine-tuning"]),
        ("`stacked`, after fine-tuning", "the same stack after (at most) 400 L-BFGS iterations of fine-tuning "
         "(weight decay on θ only)", _cell(sk, "stack, after"), ref["stacked, after fine-tuning"]),
        ("`self-taught`, raw pixels", f"a softmax on the raw pixels of `train-*`'s digits 0–4: the first {n_tr} "
         f"train, the other {n_te} test", _cell(st, "raw pixels"), "—"),
        ("`self-taught`, features", f"`stlExercise.m`: 200 features learned on `train-*`'s {m_unl} digits 5–9 "
         "(labels unused); a softmax on them, the same split", _cell(st, "self-taught features"),
         ref["self-taught, 200 features"]),
    ]
    lines = ["| command, row | what it runs | sae-jax, MNIST's first 22,699 training images "
             "| UFLDL, all 60,000 (published) |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def _per_seed(res: dict) -> str:
    t = res["table"]
    lines = [f"| {t['title']} | " + " | ".join(f"seed {s}" for s in t["seeds"]) + " | mean ± std |",
             "|---|" + "---|" * (len(t["seeds"]) + 1)]
    for r in t["rows"]:
        lines.append(f"| {r['name']} | " + " | ".join(f"{v:.4f}" for v in r["values"]) + f" | {_acc(r)} |")
    return "\n".join(lines)


def page(results: dict) -> str:
    """``docs/experiments/README.md``: the commands, each table per seed, the runs' notes and times."""
    out = ["# The committed experiment runs", "",
           "Generated by `python docs/experiments/reproduce.py` from the JSON files beside it; do not edit",
           "(`tests/test_experiments_docs.py` checks that this page and the tables of the experiments guide",
           "(`docs/guide/experiments.md`) are what the script writes). Each JSON is what the command printed (`probe --json`) or wrote (`results.json`);",
           "the times are wall-clock seconds as recorded on whatever machine ran them (a shared 2-core",
           "machine, other jobs running: not benchmarks).", ""]
    for step in DIGITS + MNIST:
        if step.name not in results:
            continue
        res = results[step.name]
        out.append(f"## {step.name}: `{step.results}`")
        out.append("")
        saved = " > docs/experiments/probe.json" if step.stdout else ""
        out += [f"    {c}" for c in (*step.setup, step.command + saved)]
        out.append("")
        out.append(_per_seed(res))
        out.append("")
        data = res["data"]
        where = data["name"] if data.get("sha256") is None else f"{data['name']} (sha256 {data['sha256'][:16]}…)"
        out.append(f"- data: {where}; sae-jax {res['sae_jax_version']}; {res['elapsed_s']} s")
        out += [f"- {note}" for note in res["table"]["notes"]]
        out.append("")
    return "\n".join(out)


def render(docs: Path) -> dict:
    """``{"page": docs/experiments/README.md, "digits": guide block, "mnist": guide block (if run)}``."""
    results = load(docs)
    blocks = {"page": page(results), "digits": digits_table(results)}
    if "mnist stacked" in results and "mnist self-taught" in results:
        blocks["mnist"] = mnist_table(results)
    return blocks


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- reproduce.py: {name} -->\n", f"\n<!-- /reproduce.py: {name} -->"


def marked_block(text: str, name: str) -> str:
    """The text between ``name``'s markers in ``text`` (each exactly once)."""
    start, end = _markers(name)
    assert text.count(start) == 1 and text.count(end) == 1, f"{GUIDE} needs one pair of {name!r} markers"
    return text.split(start, 1)[1].split(end, 1)[0]


def write_tables(root: Path = ROOT) -> None:
    """Write ``docs/experiments/README.md`` and the guide's generated blocks from the JSON under ``root``."""
    blocks = render(root / DOCS)
    (root / DOCS / "README.md").write_text(blocks.pop("page") + "\n")
    guide_path = root / GUIDE
    guide = guide_path.read_text()
    for name, text in blocks.items():
        start, end = _markers(name)
        old = start + marked_block(guide, name) + end
        assert guide.count(old) == 1, f"{GUIDE}'s {name!r} block is not one marked block"
        guide = guide.replace(old, start + text + end)
    guide_path.write_text(guide)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", action="store_true", help=f"also the MNIST runs (needs {MNIST_DIR})")
    parser.add_argument("--tables", action="store_true", help="no runs: only the tables from the committed JSON")
    args = parser.parse_args(argv)
    if not args.tables:
        if args.mnist and not (ROOT / MNIST_DIR).is_dir():
            print(f"reproduce.py: --mnist needs MNIST in {MNIST_DIR} (relative to {ROOT})", file=sys.stderr)
            return 2
        for step in DIGITS + (MNIST if args.mnist else ()):
            run_step(step, ROOT)
    write_tables(ROOT)
    print(f"[reproduce] wrote {DOCS / 'README.md'} and {GUIDE}'s tables", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
