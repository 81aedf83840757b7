"""sae_jax._src.rundir on its own (no training, nothing compiled): opening and refusing directories,
patch shapes, torn metrics files, and the in-memory RunDir that writes nothing.

The run directory inside real runs (resume bit for bit, checkpoints only of finite states,
stale temp files, pictures) is tested through train() in tests/test_training.py and
tests/test_checkpoint.py.
"""

import dataclasses
import os

import jax
import numpy as np

import pytest

from sae_jax import InputError
from sae_jax.training import TrainConfig
from sae_jax.training import RunDir, read_metrics
from sae_jax._src.rundir import check_patch_shape, check_run_dir


def test_open_a_fresh_directory_writes_nothing_and_refuses_one_with_a_checkpoint(tmp_path):
    run = RunDir.open(tmp_path / "new", TrainConfig(steps=3))
    assert run.config.steps == 3 and not run.resuming and not (tmp_path / "new").exists()
    assert RunDir.open(None).config == TrainConfig()  # in memory, the exercise's config
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "checkpoint.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(InputError, match="already holds a checkpoint; resume it or choose another directory"):
        RunDir.open(tmp_path / "old")
    with pytest.raises(InputError, match="n_hidden must be an integer >= 1"):
        RunDir.open(tmp_path / "new", dataclasses.replace(TrainConfig(), n_hidden=0))


def test_resume_needs_a_directory_with_a_readable_checkpoint(tmp_path):
    with pytest.raises(InputError, match="resume=True needs run_dir"):
        RunDir.open(None, resume=True)
    with pytest.raises(InputError, match="checkpoint .* does not exist"):
        RunDir.open(tmp_path, resume=True)
    (tmp_path / "checkpoint.safetensors").write_bytes(b"\1" * 16)
    with pytest.raises(InputError, match="corrupt or truncated"):
        RunDir.open(tmp_path, resume=True)


def test_run_dir_below_a_file_and_patch_shapes(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(InputError, match=r"is below '.*/f', which is a file"):
        check_run_dir(f / "run")
    check_run_dir(tmp_path / "a" / "b")  # creatable: fine
    assert check_patch_shape(None, 50) is None and check_patch_shape((5, 10), 50) == (5, 10)
    for bad in ((7, 7), (50,), (0, 50), "5x10", 3.5):
        with pytest.raises(InputError, match=r"patch_shape must be \(rows, cols\) with rows\*cols == n_visible=50"):
            check_patch_shape(bad, 50)


def test_read_metrics_drops_a_torn_last_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    assert read_metrics(p) == []
    p.write_text('{"step": 0}\n\n{"step": 5}\n{"step": 1')
    assert read_metrics(p) == [{"step": 0}, {"step": 5}]


def test_in_memory_run_keeps_rows_and_is_never_due_a_checkpoint():
    run = RunDir(None, TrainConfig(checkpoint_every=1))
    run.log({"step": 0})
    assert run.metrics == [{"step": 0}] and not run.checkpoint_due(1)
    assert run.kept_note() == "" and run.checkpoint_step is None


# --- the lock and writability (issue 21) -----------------------------------------------------------


def _holder(d):
    """Another process holding ``d``'s lock, as a running ``sae-jax train`` does."""
    import subprocess
    import sys

    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code, str(d)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def _kill(p):
    p.kill()
    p.wait()
    p.stdout.close()


def _lockable_elsewhere(d) -> bool:
    """Whether another process can take ``d``'s lock now."""
    import subprocess
    import sys

    code = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY)\n"
            "try: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
            "except BlockingIOError: print('held')")
    return subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True).stdout.strip() == "free"


def test_a_run_directory_is_locked_from_open_to_finish_and_a_crash_releases_it(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    run = RunDir.open(d, TrainConfig(steps=3))
    assert not _lockable_elsewhere(d) and list(d.iterdir()) == []  # held; nothing written (a flock on the directory)
    run.close()
    assert _lockable_elsewhere(d)
    p = _holder(d)
    try:
        with pytest.raises(InputError, match=r"run directory '.*run' is in use by another process"):
            RunDir.open(d, TrainConfig(steps=3))
    finally:
        _kill(p)  # SIGKILL: the OS drops the dead holder's lock
    RunDir.open(d, TrainConfig(steps=3)).close()


def test_one_process_may_reopen_its_own_directory(tmp_path):
    # sequential calls in one process (a resume after a caught divergence) take the lock over
    a = RunDir.open(tmp_path, TrainConfig(steps=3))
    b = RunDir.open(tmp_path, TrainConfig(steps=3))
    assert not _lockable_elsewhere(tmp_path)
    a.close()  # the earlier holder's release does not drop the later one's lock
    assert not _lockable_elsewhere(tmp_path)
    b.close()
    assert _lockable_elsewhere(tmp_path)


def test_a_directory_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    import errno
    import tempfile

    from sae_jax._src.rundir import check_writable

    ro = tmp_path / "ro"
    ro.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):
        if dir is not None and os.path.samefile(dir, ro):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    with pytest.raises(InputError, match=r"run directory '.*ro' is not writable: Permission denied"):
        RunDir.open(ro, TrainConfig(steps=3))
    with pytest.raises(InputError, match=r"'.*ro/a/b' is not writable \(cannot create it in '.*ro'\): Permission"):
        RunDir.open(ro / "a" / "b", TrainConfig(steps=3))
    with pytest.raises(InputError, match=r"output directory '.*ro' is not writable"):
        check_writable(ro, "output directory")
    assert list(ro.iterdir()) == [] and _lockable_elsewhere(ro)  # a refused open keeps no lock
    check_writable(tmp_path)  # writable: passes and leaves nothing behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro"]


def test_a_train_that_raises_releases_its_lock(tmp_path):
    # an error after the directory was opened (here: data of the wrong width for a warm start)
    # must not leave the lock held in a live Python session
    from sae_jax import init_params
    from sae_jax.training import train

    (tmp_path / "run").mkdir()  # an existing directory: open() takes the lock
    x = np.full((6, 4), 0.5, np.float32)
    p = init_params(jax.random.key(0), 5, 2)  # n_visible 5, data has 4 columns
    try:
        train(x, TrainConfig(steps=2, n_hidden=2, dtype="float32"), run_dir=tmp_path / "run", params=p)
    except InputError as e:
        kept = e  # a live session keeps the error, its traceback, and so train's frame and its RunDir
    assert "params.W1 has shape" in str(kept)
    assert _lockable_elsewhere(tmp_path / "run")
