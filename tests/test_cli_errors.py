"""The CLI where the operating system says no, where two runs meet, and where a command skipped a
check ``train`` makes (issue 21): each case exits 2 (or 1 mid-run, naming the checkpoint kept) with
ONE stderr line, and writes nothing.

Tests run as root here, for whom ``chmod`` makes nothing read-only, so a read-only directory is
simulated where the OS answers: :func:`tempfile.mkstemp` and :func:`os.mkdir` raise
``PermissionError`` for it (``read_only`` below), and a full disk is ``os.replace`` raising
``ENOSPC`` for the checkpoint. A directory another run is writing is a second process holding
its lock (``flock``), as a concurrent ``sae-jax train`` would; killing that process releases it.

Sizes: test_cli.py's SMALL (120 natural 4x4 patches, 5 hidden units, chunks of 5), so the
compiled runners are the ones test_cli.py compiles.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from sae_jax.training import CHECKPOINT_NAME, load_checkpoint, save_params
from sae_jax import init_params
from sae_jax.cli import main

SMALL = ["--patch-size", "4", "--n-patches", "120", "--n-hidden", "5", "--steps", "10", "--chunk", "5",
         "--no-progress"]
SWEEP = ["--patch-size", "4", "--n-patches", "120", "--n-hidden", "5", "--steps", "10", "--chunk", "5",
         "--lam", "1e-3", "--no-progress"]


def _one_line(capsys, argv, code, *needles):
    """``main(argv)`` returns ``code`` with exactly one stderr line, ``sae-jax CMD: error: ...``."""
    capsys.readouterr()
    assert main(argv) == code, argv
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"sae-jax {argv[0]}: error: "), err
    for n in needles:
        assert n in err, (n, err)
    return err


def _snapshot(d: Path) -> dict:
    """Every file under ``d`` (names and bytes, hidden ones too): 'nothing written' compares two."""
    return {str(p.relative_to(d)): p.read_bytes() if p.is_file() else None for p in sorted(d.rglob("*"))}


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(d, ...)``: creating a file or directory in ``d`` raises ``PermissionError``."""
    dirs: list[Path] = []
    real_mkstemp, real_mkdir = tempfile.mkstemp, os.mkdir

    def refused(d) -> bool:
        return d is not None and Path(d).resolve() in dirs

    def mkstemp(*a, dir=None, **k):
        if refused(dir):
            raise PermissionError(errno.EACCES, "Permission denied", str(Path(dir) / "tmpfile"))
        return real_mkstemp(*a, dir=dir, **k)

    def mkdir(p, *a, **k):
        if refused(Path(p).resolve().parent):
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_mkdir(p, *a, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "mkdir", mkdir)
    return lambda *ds: dirs.extend(Path(d).resolve() for d in ds)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("run") / "r"
    assert main(["train", "--out", str(d), *SMALL]) == 0
    return d


@pytest.fixture(scope="module")
def params_file(tmp_path_factory):
    import jax

    f = tmp_path_factory.mktemp("params") / "params.safetensors"
    save_params(f, init_params(jax.random.key(0), 16, 5), config={"n_hidden": 5})
    return f


class _Holder:
    """Another process holding the lock of directory ``d`` (as a running ``sae-jax train`` does)."""

    def __init__(self, d: Path):
        code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
                "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)")
        self.p = subprocess.Popen([sys.executable, "-c", code, str(d)], stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "locked"

    def kill(self):  # SIGKILL: no clean-up runs; the OS drops the lock
        self.p.kill()
        self.p.wait()
        self.p.stdout.close()


# --- two runs, one directory -------------------------------------------------------------------------


def test_a_directory_in_use_is_refused_and_released_when_its_holder_dies(tmp_path, capsys):
    d = tmp_path / "same"
    d.mkdir()
    holder = _Holder(d)
    try:
        _one_line(capsys, ["train", "--out", str(d), *SMALL], 2, "in use by another process", str(d))
        _one_line(capsys, ["sweep", "--beta", "0,3", *SWEEP, "--out", str(d)], 2, "in use by another process")
        assert _snapshot(d) == {}  # nothing written
    finally:
        holder.kill()
    assert main(["train", "--out", str(d), *SMALL]) == 0  # a killed holder leaves no stale lock
    before = _snapshot(d)
    holder = _Holder(d)
    try:
        _one_line(capsys, ["train", "--resume", str(d), "--steps", "15", "--no-progress"], 2, "in use")
    finally:
        holder.kill()
    assert _snapshot(d) == before


@pytest.mark.slow
def test_two_train_processes_started_apart_one_is_refused(tmp_path):
    # The reproduction: two `sae-jax train --out same` 0.3 s apart.
    d = tmp_path / "same"
    cmd = [sys.executable, "-m", "sae_jax", "train", "--data", "digits", "--out", str(d), "--steps", "40",
           "--chunk", "5", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    a = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    import time

    time.sleep(0.3)
    b = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    (_, ea), (_, eb) = a.communicate(timeout=600), b.communicate(timeout=600)
    assert sorted([a.returncode, b.returncode]) == [0, 2], (ea, eb)
    err = ea if a.returncode == 2 else eb
    assert err.count("\n") == 1 and ("in use by another process" in err or "already holds a checkpoint" in err)
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 40  # one run's rows, not two interleaved


# --- the OS refuses a write: one line, nothing written -------------------------------------------------


def test_train_into_a_read_only_directory(tmp_path, capsys, read_only):
    d = tmp_path / "ro"
    d.mkdir()
    read_only(d)
    _one_line(capsys, ["train", "--out", str(d), *SMALL], 2, "not writable", str(d), "Permission denied")
    _one_line(capsys, ["train", "--out", str(d / "sub"), *SMALL], 2, "not writable", "Permission denied")
    assert _snapshot(d) == {}


def test_resume_of_a_read_only_run(run, capsys, read_only):
    before = _snapshot(run)
    read_only(run)
    _one_line(capsys, ["train", "--resume", str(run), "--steps", "15", "--no-progress"], 2, "not writable", str(run))
    assert _snapshot(run) == before


def test_a_full_disk_at_a_checkpoint_is_exit_1_naming_the_kept_checkpoint(tmp_path, capsys, monkeypatch):
    d = tmp_path / "full"
    real_replace = os.replace
    kept = {}

    def replace(src, dst):
        if str(dst).endswith(CHECKPOINT_NAME) and Path(dst).exists():  # every checkpoint after step 0
            kept["bytes"] = Path(dst).read_bytes()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    err = _one_line(capsys, ["train", "--out", str(d), *SMALL, "--checkpoint-every", "5"], 1,
                    "cannot write checkpoint", "No space left on device", "last good checkpoint (step 0)")
    assert str(d / CHECKPOINT_NAME) in err
    monkeypatch.undo()
    assert (d / CHECKPOINT_NAME).read_bytes() == kept["bytes"]  # the previous checkpoint, intact
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")]
    assert load_checkpoint(d / CHECKPOINT_NAME)[1]["step"] == 0
    assert main(["train", "--resume", str(d), "--no-progress"]) == 0  # and it resumes


def test_sweep_into_a_read_only_directory(tmp_path, capsys, read_only):
    d = tmp_path / "ro"
    d.mkdir()
    read_only(d)
    _one_line(capsys, ["sweep", "--beta", "0,3", *SWEEP, "--out", str(d)], 2, "not writable", str(d))
    _one_line(capsys, ["sweep", "--beta", "0,3", *SWEEP, "--out", str(d / "s")], 2, "not writable")
    assert _snapshot(d) == {}


def test_visualize_encode_evaluate_into_a_read_only_directory(tmp_path, capsys, read_only, params_file, run):
    d = tmp_path / "ro"
    d.mkdir()
    read_only(d)
    _one_line(capsys, ["visualize", str(params_file), "--out", str(d / "f.png")], 2, "not writable", str(d))
    _one_line(capsys, ["encode", str(run), "--out", str(d / "f.npy")], 2, "not writable", str(d))
    _one_line(capsys, ["evaluate", str(run), "--out", str(d / "e.png")], 2, "not writable", str(d))
    assert _snapshot(d) == {}


def test_check_write_cases_into_a_read_only_directory(tmp_path, capsys, read_only):
    d = tmp_path / "ro"
    d.mkdir()
    read_only(d)
    _one_line(capsys, ["check", "--write-cases", str(d)], 2, "not writable", str(d))
    _one_line(capsys, ["check", "--write-cases", str(d / "cases")], 2, "not writable")
    assert _snapshot(d) == {}


def test_self_taught_into_a_read_only_directory(tmp_path, capsys, read_only):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    x = np.clip(rng.uniform(0.1, 0.9, (4, 16))[y] + 0.1 * rng.normal(size=(120, 16)), 0, 1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    d = tmp_path / "ro"
    d.mkdir()
    read_only(d)
    _one_line(capsys, ["self-taught", "--data", str(tmp_path / "x.npy"), "--labels-path", str(tmp_path / "y.npy"),
                       "--unlabelled-classes", "2,3", "--labelled-classes", "0,1", "--n-hidden", "4",
                       "--steps", "5", "--out", str(d / "st")], 2, "not writable")
    assert _snapshot(d) == {}


def test_an_os_error_anywhere_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch, params_file):
    # past the up-front checks (the disk fills between them and the write): still one line, exit 2
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".f.npy.x.tmp"))

    monkeypatch.setattr(os, "fsync", full)
    _one_line(capsys, ["encode", str(params_file), "--data", "natural", "--patch-size", "4", "--n-patches", "20",
                       "--out", str(tmp_path / "f.npy")], 2, "cannot write features", str(tmp_path / "f.npy"),
              "No space left on device")
    assert sorted(os.listdir(tmp_path)) == []


# --- a regular file in the way, a directory where a file goes --------------------------------------


def test_sweep_out_is_a_file_or_below_one(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    _one_line(capsys, ["sweep", "--beta", "0,3", *SWEEP, "--out", str(f)], 2, "is a file")
    _one_line(capsys, ["sweep", "--beta", "0,3", *SWEEP, "--out", str(f / "sub")], 2, "which is a file")
    assert sorted(os.listdir(tmp_path)) == ["afile"] and f.read_text() == "x"


def test_evaluate_out_is_a_directory(tmp_path, capsys, run):
    d = tmp_path / "adir.png"
    d.mkdir()
    _one_line(capsys, ["evaluate", str(run), "--out", str(d)], 2, "is a directory")
    assert _snapshot(tmp_path) == {"adir.png": None}


# --- sweep applies train's checks ---------------------------------------------------------------------


@pytest.mark.parametrize("argv, needle, train_argv", [
    (["--rho", "0.99999999", "--dtype", "float32"], "rho=0.99999999 is 1.0 in float32", ["--rho", "0.99999999"]),
    (["--beta", "1e39", "--dtype", "float32"], "beta=1e+39 overflows float32", ["--beta", "1e39"]),
    (["--beta", "1", "--lam", "1e39", "--dtype", "float32"], "lam=1e+39 overflows float32", ["--lam", "1e39"]),
    (["--rho", "0.1,0.1000000001", "--dtype", "float32"], "the same setting in float32", None),
])
def test_sweep_grids_get_trains_float32_checks(tmp_path, capsys, monkeypatch, argv, needle, train_argv):
    monkeypatch.chdir(tmp_path)  # the default --out is under ./runs: nothing may appear
    err = _one_line(capsys, ["sweep", *SWEEP, *argv], 2, needle)
    if train_argv is not None:  # train refuses the same value with the same words (one shared check)
        train_err = _one_line(capsys, ["train", *train_argv, "--dtype", "float32", *SMALL], 2, needle)
        assert train_err.split(": error: ")[1].strip() in err
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("argv, needle", [
    (["--corruption", "gaussian", "--corruption-level", "1e39"], "corruption_level=1e+39 overflows float32"),
    (["--corruption", "mask", "--corruption-level", "0.99999999"], "is 1.0 in float32"),
])
def test_train_corruption_level_in_float32(tmp_path, capsys, argv, needle):
    d = tmp_path / "run"
    _one_line(capsys, ["train", *argv, "--dtype", "float32", "--out", str(d), *SMALL], 2, needle)
    assert not d.exists()


# --- a killed sweep resumes -----------------------------------------------------------------------------


@pytest.mark.slow  # a killed sweep resumes by default in test_sweep (in process)
def test_cli_sweep_resume_after_a_kill(tmp_path, capsys, monkeypatch):
    """A sweep killed after its step-5 checkpoint leaves only that checkpoint; ``--resume`` ends where
    an uninterrupted sweep ends (the same parameters, bit for bit)."""
    import sae_jax._src.sweep as sweep_mod

    full, cut = tmp_path / "full", tmp_path / "cut"
    grid = ["--beta", "0,3"]
    assert main(["sweep", *grid, *SWEEP, "--out", str(full), "--checkpoint-every", "5"]) == 0

    class Killed(BaseException):
        pass

    real = sweep_mod._save_sweep_checkpoint

    def die_after_step_5(path, state, **kw):
        real(path, state, **kw)
        if int(state.step) == 5:
            raise Killed

    monkeypatch.setattr(sweep_mod, "_save_sweep_checkpoint", die_after_step_5)
    with pytest.raises(Killed):
        main(["sweep", *grid, *SWEEP, "--out", str(cut), "--checkpoint-every", "5"])
    monkeypatch.undo()
    assert sorted(os.listdir(cut)) == ["sweep-checkpoint.safetensors"]  # nothing half-written
    _one_line(capsys, ["sweep", *grid, *SWEEP, "--out", str(cut)], 2, "unfinished sweep", "--resume")
    _one_line(capsys, ["sweep", "--resume", str(cut), "--beta", "1"], 2, "--beta cannot be combined with --resume")
    assert main(["sweep", "--resume", str(cut), "--no-progress"]) == 0
    for k in ("000-beta0-rho0.01-lam0.001", "001-beta3-rho0.01-lam0.001"):
        a = (full / "settings" / k / "params.safetensors").read_bytes()
        assert (cut / "settings" / k / "params.safetensors").read_bytes() == a
