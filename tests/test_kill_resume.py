"""SIGKILL during training, then resume: bit-identical to an uninterrupted run, no leftovers.

Runs ``benchmarks/kill_resume.py`` (separate ``sae-jax train`` processes): by default one
tiny trial killed as soon as its step-15 checkpoint is on disk; under ``-m slow`` the full
32 trials at random moments on the default (exercise-sized) run.
"""

import pytest

from benchmarks import kill_resume


def _check(results):
    bad = [r for r in results if not r["ok"]]
    assert not bad, bad


def test_one_kill_mid_training_then_resume_is_bit_identical(tmp_path):
    results = kill_resume.run_trials(1, size="tiny", optimizer="adam", workdir=tmp_path, after_step=15,
                                     log=lambda *a: None)
    assert results[0]["killed"] and results[0]["checkpoint_step"] >= 15
    _check(results)


@pytest.mark.slow  # 33 training processes plus 32 resumes: minutes
def test_32_random_kills_then_resume_are_bit_identical(tmp_path):
    results = kill_resume.run_trials(32, seed=0, workdir=tmp_path, log=print)
    assert sum(r["killed"] for r in results) >= 16  # most trials really were interrupted
    _check(results)
