"""Kill ``sae-jax train`` at random moments with SIGKILL, resume, and compare with an uninterrupted run.

Usage::

    python benchmarks/kill_resume.py                  # 32 trials; prints "32/32 bit-identical"
    python benchmarks/kill_resume.py --trials 4 --seed 1 --optimizer adam

One uninterrupted ``sae-jax train`` run is the reference. Each trial starts the same command
in a fresh run directory and sends SIGKILL after a random delay: in even trials uniform over
the time the reference took to reach its training loop (start-up, data, the step-0
checkpoint, compilation), counted from the start; in odd trials uniform over the duration of
the reference's loop (chunks, checkpoint writes, the final export), counted from the moment
the trial's own loop starts (its first metrics row). Then it finishes the run the way a user
would: ``sae-jax train --resume DIR`` if a checkpoint exists, else the original command again.
A trial passes when

- ``checkpoint.safetensors``, ``params.safetensors`` and ``config.json`` are byte-identical
  to the reference's, and ``metrics.jsonl`` has the same rows (ignoring its timing fields);
- the run directory holds exactly the reference's files: no temp file of an interrupted
  write (``.checkpoint.safetensors.*.tmp`` ...) is left over.

The default run is L-BFGS (memory 100: a 3 MB checkpoint, so some kills land mid-write) on
2,000 natural 8x8 patches, checkpointing every 5 of 150 steps. Exit status 0 iff every trial
passes. ``tests/test_kill_resume.py`` runs one trial by default and the full 32 under
``-m slow``. A committed run: ``benchmarks/results/kill_resume.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMING_FIELDS = ("step_time_s", "elapsed_s")
COMPARED = ("checkpoint.safetensors", "params.safetensors", "config.json")


def train_args(optimizer: str = "lbfgs", size: str = "exercise") -> list[str]:
    """The ``sae-jax train`` flags of the run that is killed (without ``--out``).

    ``size="exercise"``: 2,000 natural 8x8 patches, 25 hidden units, 150 steps (the default);
    ``"tiny"``: 200 4x4 patches, 5 hidden units, 40 steps (the quick test).
    """
    if size == "tiny":
        common = ["--data", "natural", "--n-patches", "200", "--patch-size", "4", "--n-hidden", "5",
                  "--steps", "40", "--chunk", "5", "--checkpoint-every", "5", "--no-progress"]
    else:
        common = ["--data", "natural", "--n-patches", "2000", "--patch-size", "8", "--n-hidden", "25",
                  "--steps", "150", "--chunk", "5", "--checkpoint-every", "5", "--no-progress"]
    if optimizer == "lbfgs":
        return [*common, "--optimizer", "lbfgs"]
    return [*common, "--optimizer", optimizer, "--learning-rate", "0.01", "--batch-size", "100"]


def _cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "sae_jax", "train", *args]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _run(args: list[str]) -> None:
    r = subprocess.run(_cmd(args), env=_env(), cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"sae-jax train {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")


def _metrics(d: Path) -> list[dict]:
    rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rows]


def _checkpoint_step(d: Path):
    """The step of the checkpoint a kill left (None if none), read without sae_jax's import cost."""
    f = d / "checkpoint.safetensors"
    if not f.exists():
        return None
    data = f.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return int(json.loads(data[8 : 8 + n])["__metadata__"]["step"])


def reference(workdir: Path, args: list[str]) -> tuple[Path, float, float]:
    """Run uninterrupted once: its directory, wall time, and when its first metrics row
    (written after compilation, when the training loop starts) appeared."""
    ref = workdir / "reference"
    t0 = time.perf_counter()
    p = subprocess.Popen(_cmd([*args, "--out", str(ref)]), env=_env(), cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t_loop = None
    while p.poll() is None:
        if t_loop is None and (ref / "metrics.jsonl").exists() and (ref / "metrics.jsonl").stat().st_size:
            t_loop = time.perf_counter() - t0
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    err = p.stderr.read()
    p.stderr.close()
    if p.returncode != 0:
        raise RuntimeError(f"reference run failed ({p.returncode}): {err.strip()[-2000:]}")
    return ref, wall, wall if t_loop is None else t_loop


def _loop_started(d: Path) -> bool:
    f = d / "metrics.jsonl"
    return f.exists() and f.stat().st_size > 0


def trial(workdir: Path, name: str, args: list[str], ref: Path, delay: float | None,
          after_step: int | None = None, in_loop: bool = False) -> dict:
    """One SIGKILL ``delay`` seconds after the start (``in_loop``: after the training loop
    started, i.e. the first metrics row appeared; ``after_step``: as soon as a checkpoint at
    that step or later is on disk), then finish the run; compare with ``ref``."""
    d = workdir / name
    p = subprocess.Popen(_cmd([*args, "--out", str(d)]), env=_env(), cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if after_step is not None:
        while p.poll() is None and (_checkpoint_step(d) or 0) < after_step:
            time.sleep(0.002)
        delay = 0.0
    elif in_loop:
        while p.poll() is None and not _loop_started(d):
            time.sleep(0.002)
    try:
        p.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        killed = True
    left = sorted(os.listdir(d)) if d.exists() else []
    at_kill = {
        "killed": killed,
        "checkpoint_step": _checkpoint_step(d) if d.exists() else None,
        "temp_files": [n for n in left if n.endswith(".tmp") or n.endswith(".tmp.png")],
    }
    if at_kill["checkpoint_step"] is not None:
        _run(["--resume", str(d), "--no-progress"])
    else:  # killed before the first checkpoint: start again, as a user would
        _run([*args, "--out", str(d)])
    problems = [n for n in COMPARED if (d / n).read_bytes() != (ref / n).read_bytes()]
    if _metrics(d) != _metrics(ref):
        problems.append("metrics.jsonl")
    extra = sorted(set(os.listdir(d)) - set(os.listdir(ref)))
    missing = sorted(set(os.listdir(ref)) - set(os.listdir(d)))
    return {"name": name, "delay_s": round(delay, 3), **at_kill, "differs": problems,
            "leftovers": extra, "missing": missing, "ok": not problems and not extra and not missing}


def run_trials(n: int, *, seed: int = 0, optimizer: str = "lbfgs", size: str = "exercise", workdir=None,
               keep: bool = False, after_step: int | None = None, log=print) -> list[dict]:
    """``n`` trials against one reference run; a list of per-trial dicts (``ok`` says it passed).

    ``after_step``: kill every trial as soon as its checkpoint reaches that step, instead of
    after a random delay (the quick test's deterministic variant)."""
    args = train_args(optimizer, size)
    tmp = Path(tempfile.mkdtemp(prefix="sae-jax-kill-", dir=workdir))
    try:
        ref, wall, t_loop = reference(tmp, args)
        log(f"reference: {wall:.1f} s uninterrupted, training loop from {t_loop:.1f} s "
            f"({optimizer}, {' '.join(args)})")
        rng = random.Random(seed)
        results = []
        for i in range(n):
            # even trials: from the start, before the reference's loop began (start-up, data,
            # the step-0 checkpoint, compilation); odd trials: inside the training loop (chunks,
            # checkpoint writes, the final export), timed from the trial's own loop start so a
            # machine busier or idler than during the reference still lands there.
            in_loop = i % 2 == 1
            delay = rng.uniform(0.0, wall - t_loop) if in_loop else rng.uniform(0.0, t_loop)
            r = trial(tmp, f"trial{i:03d}", args, ref, delay, after_step=after_step, in_loop=in_loop)
            if after_step is not None:
                r["delay_s"] = None
            results.append(r)
            where = ("after the end" if not r["killed"] else
                     "before any checkpoint" if r["checkpoint_step"] is None else
                     f"checkpoint at step {r['checkpoint_step']}")
            when = ("at step " + str(after_step) if r["delay_s"] is None else
                    f"{r['delay_s']:6.2f} s {'into the loop' if in_loop else 'after the start'}")
            log(f"trial {i + 1:3d}/{n}: kill {when}, {where}"
                f"{', ' + str(len(r['temp_files'])) + ' temp file(s) left by the kill' if r['temp_files'] else ''}"
                f" -> {'bit-identical' if r['ok'] else 'DIFFERS: ' + json.dumps(r)}")
        return results
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    ap.add_argument("--optimizer", choices=("lbfgs", "adam", "sgd"), default="lbfgs")
    ap.add_argument("--size", choices=("exercise", "tiny"), default="exercise",
                    help="exercise: 2,000 8x8 patches, 25 hidden, 150 steps; tiny: 200 4x4, 5 hidden, 40")
    ap.add_argument("--workdir", default=None, help="where the run directories go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    a = ap.parse_args(argv)
    if a.trials < 1:
        ap.error(f"--trials must be >= 1, got {a.trials}")
    results = run_trials(a.trials, seed=a.seed, optimizer=a.optimizer, size=a.size, workdir=a.workdir,
                         keep=a.keep)
    ok = sum(r["ok"] for r in results)
    killed = [r for r in results if r["killed"]]
    leftovers = sum(bool(r["leftovers"]) for r in results)
    print(f"{ok}/{len(results)} bit-identical; {len(killed)} killed "
          f"({sum(r['checkpoint_step'] is None for r in killed)} before the first checkpoint, "
          f"{sum(bool(r['temp_files']) for r in results)} leaving a temp file of a write); "
          f"{leftovers} run directories with leftovers after the resume")
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
