"""sae_jax.rundir on its own (no training, nothing compiled): opening and refusing directories,
patch shapes, torn metrics files, and the in-memory RunDir that writes nothing.

The run directory inside real runs (resume bit for bit, checkpoints only of finite states,
stale temp files, pictures) is tested through train() in tests/test_training.py and
tests/test_checkpoint.py.
"""

import dataclasses

import pytest

from sae_jax import InputError
from sae_jax.config import TrainConfig
from sae_jax.rundir import RunDir, check_patch_shape, check_run_dir, read_metrics


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
