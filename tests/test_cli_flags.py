"""One meaning per flag, help that is true (issue 20 §3), for every sae-jax command.

- Every flag a command's ``--help`` lists is read by that command's code (a namespace that records
  the attributes read, over tiny invocations of each command), and the flags it does not list are
  refused at parse time, in one line naming the flag to use instead (exit 2, nothing written).
- ``--lam``, ``--beta``, ``--rho``, ``--steps``, ``--n-hidden`` are the autoencoder's wherever they
  exist; the softmax's are ``--softmax-lam``, ``--softmax-steps``.
- ``sweep`` takes exactly the ``TrainConfig`` fields that change a sweep: each field is changed in a
  setting where it matters to ``train`` and the two sweeps compared, checkpoints included (slow).
- ``sae-jax --version``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os

import numpy as np
import pytest

from sae_jax._src.cli import COMMANDS
from sae_jax.cli import build_parser, main
from sae_jax._src.cli.args import UsageError
from sae_jax import InputError


def _subparsers():
    return next(a for a in build_parser()._actions if a.dest == "command").choices


def _listed(parser) -> dict[str, argparse.Action]:
    """``{dest: action}`` of what ``parser``'s --help lists (not --help itself, not refused flags)."""
    return {a.dest: a for a in parser._actions
            if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)}


class _Recording(argparse.Namespace):
    """A parsed namespace that records every attribute the command's code reads."""

    def __init__(self, **kw):
        object.__setattr__(self, "_read", set())
        super().__init__(**kw)

    def __getattribute__(self, name):
        if not name.startswith("_"):
            object.__getattribute__(self, "_read").add(name)
        return object.__getattribute__(self, name)


def _reads(argv) -> set[str]:
    """The attributes of the parsed ``argv`` that its command's code reads (bad input allowed)."""
    args = _Recording(**vars(build_parser().parse_args(argv)))
    module = importlib.import_module(f"sae_jax._src.cli.{COMMANDS[args.command]}")
    try:
        getattr(module, "cmd_" + args.command.replace("-", "_"))(args)
    except (InputError, UsageError):
        pass
    return object.__getattribute__(args, "_read")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny labelled data set (120 x 16, 4 classes) and a run trained on it (test_cli.py's sizes)."""
    d = tmp_path_factory.mktemp("flags")
    rng = np.random.default_rng(0)
    proto = rng.uniform(0.1, 0.9, (4, 16))
    y = np.repeat(np.arange(4), 30)
    np.save(d / "x.npy", np.clip(proto[y] + 0.1 * rng.normal(size=(120, 16)), 0, 1))
    np.save(d / "y.npy", y)
    assert main(["train", "--data", str(d / "x.npy"), "--out", str(d / "run"), "--n-hidden", "5", "--steps", "10",
                 "--chunk", "5", "--no-progress"]) == 0
    return d


def _invocations(d) -> dict[str, list[list[str]]]:
    x, y, run = str(d / "x.npy"), str(d / "y.npy"), str(d / "run")
    lab = ["--data", x, "--labels-path", y]
    ae = ["--n-hidden", "4", "--steps", "10", "--seeds", "0", "--softmax-steps", "20", "--no-progress"]
    return {
        "gradcheck": [["gradcheck", "--data", "random", "--n-visible", "6", "--n-hidden", "3", "--m", "20",
                       "--directions", "1"]],
        "train": [["train", "--data", x, "--out", str(d / "t"), "--n-hidden", "5", "--steps", "10", "--chunk", "5",
                   "--no-progress"]],
        "visualize": [["visualize", run, "--out", str(d / "f.png")]],
        "encode": [["encode", run, "--out", str(d / "a.npy")]],
        "evaluate": [["evaluate", run, "--out", str(d / "e.png")]],
        "check": [["check", "--write-cases", str(d / "cases")], ["check", str(d / "nowhere.py") + ":f"],
                  ["check", "--results", str(d / "nowhere.npz")]],
        "sweep": [["sweep", "--beta", "0,3", "--data", x, "--n-hidden", "3", "--steps", "4", "--chunk", "2",
                   "--out", str(d / "sw"), "--no-progress"]],
        "probe": [["probe", run, *lab, "--seeds", "0", "--softmax-steps", "20", "--json"],
                  ["probe", run, *lab, "--test-data", x, "--test-labels", y, "--seeds", "0", "--softmax-steps", "20"]],
        "self-taught": [["self-taught", *lab, "--unlabelled-classes", "2,3", "--labelled-classes", "0,1", *ae,
                         "--out", str(d / "st")]],
        "stacked": [["stacked", *lab, "--n-hidden", "4,3", "--steps", "10", "--seeds", "0", "--softmax-steps", "20",
                     "--fine-tune-steps", "5", "--out", str(d / "sk"), "--no-progress"]],
    }


@pytest.mark.slow  # trains tiny runs with every command: ~100 s of CPU
def test_every_flag_in_help_is_read_by_its_command(work, capsys):
    """No command lists (or accepts) a flag its code never looks at, e.g. sweep's --checkpoint-every."""
    sub = _subparsers()
    invocations = _invocations(work)
    assert set(invocations) == set(sub)
    for command, argvs in invocations.items():
        read = set().union(*(_reads(argv) for argv in argvs))
        unread = sorted(set(_listed(sub[command])) - read)
        assert not unread, f"sae-jax {command} lists flags its code never reads: {unread}"
    capsys.readouterr()


def test_help_mentions_only_flags_the_command_has(capsys):
    """The help text names no flag of another command (sweep's used to mention --resume)."""
    import re

    for command, parser in _subparsers().items():
        flags = {s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
        text = " ".join([parser.description or "", parser.epilog or "",
                         *(a.help for a in parser._actions if a.help and a.help != argparse.SUPPRESS)])
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))
        assert named <= flags, f"sae-jax {command} --help names flags it does not take: {sorted(named - flags)}"


def test_sweep_help_is_sweeps_own():
    text = " ".join(_subparsers()["sweep"].format_help().split())
    assert "--patch-shape" not in text and "--validation-fraction" not in text and "--devices" not in text
    assert "map, the default on CPU" in text and "vmapped" not in text
    listed = _listed(_subparsers()["sweep"])
    assert "validation_fraction" not in listed and "patch_shape" not in listed
    assert "resume" in listed and "checkpoint_every" in listed  # resumable sweeps (issue 21)


def test_self_taught_help_says_it_reads_only_train_files():
    sub = _subparsers()
    st = " ".join(_listed(sub["self-taught"])["data"].help.split())
    assert "reads only train-*" in st and "t10k-* is not read" in st and "tests on t10k" not in st
    assert "tests on t10k-*" in " ".join(_listed(sub["stacked"])["data"].help.split())


def test_gradcheck_help_shows_every_default():
    for dest, action in _listed(_subparsers()["gradcheck"]).items():
        assert "default" in action.help.lower(), (dest, action.help)


def test_autoencoder_flags_mean_the_same_in_every_command():
    """--lam, --beta, --rho, --steps, --n-hidden: the autoencoder's wherever a command has them."""
    from sae_jax._src.cli.experiments import autoencoder_configs

    p = build_parser()
    for argv, layers in ((["self-taught"], 1), (["stacked"], None)):
        args = p.parse_args([*argv, "--lam", "1e-3", "--beta", "2", "--rho", "0.2", "--steps", "7",
                             "--softmax-lam", "5e-4", "--softmax-steps", "9"])
        for c in autoencoder_configs(args, layers=layers):
            assert (c.lam, c.beta, c.rho, c.steps) == (1e-3, 2.0, 0.2, 7)
        assert (args.softmax_lam, args.softmax_steps) == (5e-4, 9)
    t = p.parse_args(["train", "--lam", "1e-3", "--steps", "7"])
    assert (t.lam, t.steps) == (1e-3, 7)
    for command, parser in _subparsers().items():
        for dest in ("lam", "beta", "rho", "steps", "n_hidden"):
            action = _listed(parser).get(dest)
            if action is not None:
                assert "softmax" not in action.help, (command, dest, action.help)


@pytest.mark.parametrize("argv, says", [
    (["self-taught", "--ae-lam", "3e-3"], "--ae-lam is now --lam"),
    (["stacked", "--ae-lam", "3e-3"], "--ae-lam is now --lam"),
    (["probe", "RUN", "--lam", "1e-4"], "--softmax-lam"),
    (["probe", "RUN", "--steps", "100"], "--softmax-steps"),
    (["probe", "--steps"], "--softmax-steps"),
    (["self-taught", "--test-data", "x.npy"], "--test-data is for probe and stacked"),
])
def test_old_spellings_exit_2_in_one_line_writing_nothing(argv, says, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default --out would be under runs/ here
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", "out"] if argv[0] != "probe" else argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sae-jax {argv[0]}: error: ") and says in err[0], err
    assert os.listdir(tmp_path) == []
    refused = next(a for a in argv if a.startswith("--"))
    assert refused not in {s for a in _listed(_subparsers()[argv[0]]).values() for s in a.option_strings}


def test_version(capsys):
    from sae_jax import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"sae-jax {__version__}"


# --- sweep takes exactly the fields that change a sweep --------------------------------------------

# field -> (base config, the field's other value): a setting where the field matters to train.
_TINY = dict(n_hidden=2, steps=4, chunk=2, dtype="float64", batch_size=4)
_ADAM = dict(_TINY, optimizer="adam", batch_size=4)
_CHANGES = {
    "n_hidden": ({}, 3), "output": ({}, "linear"), "optimizer": ({}, "adam"), "steps": ({}, 3),
    "learning_rate": (_ADAM, 0.05), "momentum": (dict(_ADAM, optimizer="sgd"), 0.5), "batch_size": (_ADAM, 6),
    "rho_hat": (_ADAM, "ema"), "ema_decay": (dict(_ADAM, rho_hat="ema"), 0.5), "gradient": ({}, "autodiff"),
    "dtype": ({}, "float32"), "seed": ({}, 1), "lbfgs_memory": ({}, 1), "max_linesearch_steps": ({}, 1),
    "chunk": ({}, 3), "checkpoint_every": ({}, 1), "validation_fraction": ({}, 0.25), "tied": ({}, True),
    "l1": ({}, 0.1), "corruption": ({}, "mask"), "corruption_level": (dict(corruption="mask"), 0.6),
}


@pytest.mark.slow  # ~20 tiny sweeps, each its own compilation
def test_sweep_takes_exactly_the_fields_that_change_a_sweep(tmp_path, monkeypatch):
    import sae_jax._src.sweep as sweep_module
    from sae_jax.training import TrainConfig
    from sae_jax.training import sweep
    from sae_jax._src.cli.flags import CONFIG_FIELDS, SWEPT

    x = np.random.default_rng(0).uniform(0.1, 0.9, (12, 4))
    grid = {"beta": [0.0, 3.0]}

    counter = iter(range(10**6))
    saved_steps = []
    save = sweep_module._save_sweep_checkpoint
    monkeypatch.setattr(sweep_module, "_save_sweep_checkpoint",
                        lambda path, state, **kw: (saved_steps.append(int(state.step)), save(path, state, **kw)))

    def outcome(config):
        """The sweep's metrics and parameters, and the steps its checkpoints were written at."""
        saved_steps.clear()
        r = sweep(x, config, grid, out_dir=tmp_path / f"s{next(counter)}", pictures=False, batching="map")
        rows = [[{k: v for k, v in row.items() if k not in ("step_time_s", "elapsed_s")} for row in m]
                for m in r.metrics]
        params = [np.asarray(a).tobytes() for a in r.params if a is not None]
        return json.dumps(rows, sort_keys=True), params, list(saved_steps)

    listed = _listed(_subparsers()["sweep"])
    assert set(_CHANGES) == set(CONFIG_FIELDS) - set(SWEPT)
    for field, (base, other) in _CHANGES.items():
        a = TrainConfig(**{**_TINY, **base})
        b = dataclasses.replace(a, **{field: other})
        changed = outcome(a) != outcome(b)
        assert changed == (field in listed), (field, "changes the sweep" if changed else "changes nothing",
                                              "but is" if field in listed else "but is not", "a flag of sweep")
