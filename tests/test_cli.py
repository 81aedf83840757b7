"""The sae-jax command: train / visualize / encode / gradcheck, and every error path (exit 2, one line)."""

import json
import os

import numpy as np
import pytest

from sae_jax.training import CHECKPOINT_NAME, PARAMS_NAME, load_checkpoint
from sae_jax.cli import main

# Small runs: 120 natural 4x4 patches, 5 hidden units, chunks of 5 -- the sizes and compiled config
# of tests/test_training.py's LBFGS, so a full test run compiles that L-BFGS runner once.
SMALL = ["--patch-size", "4", "--n-patches", "120", "--n-hidden", "5", "--steps", "10", "--chunk", "5",
         "--no-progress"]


def _snapshot(d):
    return {n: (d / n).read_bytes() for n in sorted(os.listdir(d))}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    assert main(["train", "--out", str(d), *SMALL]) == 0
    return d


def test_train_writes_the_run_directory(run_dir, capsys):
    names = set(os.listdir(run_dir))
    assert {"config.json", "checkpoint.safetensors", "params.safetensors", "metrics.jsonl", "filters.png",
            "training_curve.png"} <= names
    conf = json.loads((run_dir / "config.json").read_text())
    assert conf["config"]["n_hidden"] == 5 and conf["n_visible"] == 16
    assert conf["data_spec"]["name"] == "natural" and conf["data_spec"]["patch_size"] == 4
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 5, 10]


def test_resume_extends_the_run(run_dir, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(run_dir, d)
    assert main(["train", "--resume", str(d), "--steps", "15", "--no-progress"]) == 0
    _, meta = load_checkpoint(d / CHECKPOINT_NAME)
    assert meta["step"] == 15


def test_visualize_and_encode(run_dir, tmp_path, capsys):
    png = tmp_path / "f.png"
    assert main(["visualize", str(run_dir), "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["visualize", str(run_dir / CHECKPOINT_NAME), "--out", str(png)]) == 0
    out = tmp_path / "feat.npy"
    assert main(["encode", str(run_dir), "--data", "natural", "--patch-size", "4", "--n-patches", "50",
                 "--out", str(out)]) == 0
    a = np.load(out)
    assert a.shape == (50, 5) and a.dtype == np.float64 and (a > 0).all() and (a < 1).all()


def test_encode_defaults_to_the_runs_own_data(run_dir, tmp_path, capsys):
    """Issue 12.3: without --data, encode used the 8x8 natural patches whatever the run was trained on
    (here 4x4 patches: it exited 2 with 'n_visible=16'). Now it is the run's recorded data spec."""
    out = tmp_path / "own.npy"
    assert main(["encode", str(run_dir), "--out", str(out)]) == 0
    assert np.load(out).shape == (120, 5)  # the run's 120 4x4 patches
    ref = tmp_path / "ref.npy"
    assert main(["encode", str(run_dir), "--data", "natural", "--patch-size", "4", "--n-patches", "120",
                 "--out", str(ref)]) == 0
    np.testing.assert_array_equal(np.load(out), np.load(ref))
    # from the checkpoint file too, and a flag overrides one field of the recorded spec
    assert main(["encode", str(run_dir / CHECKPOINT_NAME), "--n-patches", "7", "--out", str(out)]) == 0
    assert np.load(out).shape == (7, 5)
    # a params file away from its run directory records no data: say so (exit 2)
    import shutil

    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(run_dir / PARAMS_NAME, lone / PARAMS_NAME)
    _bad(["encode", str(lone / PARAMS_NAME), "--out", str(tmp_path / "x.npy")], capsys, "--data")
    assert not (tmp_path / "x.npy").exists()


def test_train_on_non_square_data_skips_filters_with_a_note_or_draws_them_with_patch_shape(tmp_path, capsys):
    """Issue 12.2: 50 features trained, wrote params, then exited 2 ('pass patch_shape', no such flag)
    without training_curve.png. Now exit 0 with a note, or filters drawn with --patch-shape 5x10;
    a --patch-shape that does not fit is refused before any work (config of test_training's NONSQUARE)."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "own50.npy", np.clip(rng.uniform(0.1, 0.9, (40, 1)) + 0.2 * rng.standard_normal((40, 50)),
                                            0.1, 0.9))
    args = ["--data", str(tmp_path / "own50.npy"), "--n-hidden", "3", "--steps", "4", "--chunk", "4",
            "--checkpoint-every", "4", "--no-progress"]
    assert main(["train", "--out", str(tmp_path / "a"), *args]) == 0
    cap = capsys.readouterr()
    assert "note: filters.png not drawn: n_visible=50 is not a square" in cap.err and "--patch-shape" in cap.err
    assert "filters.png" not in cap.out.splitlines()[-1]
    assert {"params.safetensors", "training_curve.png"} <= set(os.listdir(tmp_path / "a"))
    assert "filters.png" not in os.listdir(tmp_path / "a")
    assert main(["train", "--out", str(tmp_path / "b"), *args, "--patch-shape", "5x10"]) == 0
    assert "filters.png" in os.listdir(tmp_path / "b") and "note:" not in capsys.readouterr().err
    _bad(["train", "--out", str(tmp_path / "c"), *args, "--patch-shape", "7x7"], capsys, "n_visible=50")
    _bad(["train", "--out", str(tmp_path / "c"), *args, "--patch-shape", "5by10"], capsys, "ROWSxCOLS")
    assert not (tmp_path / "c").exists()
    # visualize takes the same spelling (and still ROWS COLS)
    assert main(["visualize", str(tmp_path / "a"), "--patch-shape", "10x5"]) == 0
    assert main(["visualize", str(tmp_path / "a"), "--patch-shape", "10", "5"]) == 0
    _bad(["visualize", str(tmp_path / "a")], capsys, "--patch-shape ROWSxCOLS")


def test_evaluate_prints_diagnostics_and_draws_them(run_dir, tmp_path, capsys):
    png = tmp_path / "e.png"
    assert main(["evaluate", str(run_dir), "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "on natural" in out and "dead units" in out and "saturated units" in out and "e_i median" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    np.save(tmp_path / "w.npy", np.full((3, 7), 0.5))
    _bad(["evaluate", str(run_dir), "--data", str(tmp_path / "w.npy"), "--out", str(tmp_path / "f.png")], capsys,
         "n_visible=16")
    _bad(["evaluate", str(run_dir), "--out", str(tmp_path / "f.jpg")], capsys, ".png")
    assert not (tmp_path / "f.png").exists()


def test_train_with_validation_split_then_evaluate_both_parts(tmp_path, capsys):
    """--validation-fraction: val_* metrics per chunk; evaluate shows training and held-out rows."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "own50.npy", np.clip(rng.uniform(0.1, 0.9, (40, 1)) + 0.2 * rng.standard_normal((40, 50)),
                                            0.1, 0.9))
    d = tmp_path / "v"
    assert main(["train", "--out", str(d), "--data", str(tmp_path / "own50.npy"), "--n-hidden", "3", "--steps", "4",
                 "--chunk", "4", "--checkpoint-every", "4", "--no-progress", "--validation-fraction", "0.25",
                 "--patch-shape", "5x10"]) == 0
    rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert all("val_reconstruction" in r and "dead_fraction" in r for r in rows)
    assert json.loads((d / "config.json").read_text())["n_validation"] == 10
    capsys.readouterr()
    assert main(["evaluate", str(d)]) == 0
    out = capsys.readouterr().out
    assert "training rows" in out and "held out" in out and "30" in out and "10" in out
    assert (d / "evaluation.png").exists()


def test_help_has_examples(capsys):
    for argv in (["--help"], ["train", "--help"], ["visualize", "--help"], ["encode", "--help"], ["evaluate", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
        assert "sae-jax" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "sae-jax train" in out and "sae-jax encode" in out


def _bad(argv, capsys, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], err
    assert match in lines[0], lines[0]
    return lines[0]


def test_train_error_paths(tmp_path, capsys, run_dir):
    out = tmp_path / "o"
    _bad(["train", "--out", str(out), "--data", str(tmp_path / "missing.npy"), *SMALL], capsys,
         "data file not found")
    np.save(tmp_path / "cube.npy", np.full((4, 4, 4), 0.5))
    _bad(["train", "--out", str(out), "--data", str(tmp_path / "cube.npy"), *SMALL], capsys, "must be 2-D")
    np.save(tmp_path / "big.npy", np.full((10, 4), 5.0))
    _bad(["train", "--out", str(out), "--data", str(tmp_path / "big.npy"), *SMALL], capsys, "[0, 1]")
    _bad(["train", "--out", str(out), "--rho", "1.5", *SMALL], capsys, "rho must be in (0, 1)")
    _bad(["train", "--out", str(out), "--beta", "-1", *SMALL], capsys, "beta must be >= 0")
    _bad(["train", "--out", str(out), *SMALL, "--steps", "-5"], capsys, "steps must be")
    _bad(["train", "--out", str(out), "--rho-hat", "ema", *SMALL], capsys, "minibatch")
    assert not out.exists()  # nothing written for bad input
    # an existing run is never overwritten
    before = _snapshot(run_dir)
    _bad(["train", "--out", str(run_dir), *SMALL], capsys, "already holds a checkpoint")
    _bad(["train", "--resume", str(run_dir), "--beta", "1.0", "--no-progress"], capsys, "different config")
    _bad(["train", "--resume", str(run_dir), "--out", str(out)], capsys, "--resume")
    _bad(["train", "--resume", str(tmp_path)], capsys, "does not exist")
    assert _snapshot(run_dir) == before


def test_corrupt_checkpoint_is_exit_2_and_untouched(run_dir, tmp_path, capsys):
    import shutil

    d = tmp_path / "corrupt"
    shutil.copytree(run_dir, d)
    f = d / CHECKPOINT_NAME
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    before = _snapshot(d)
    _bad(["train", "--resume", str(d), "--steps", "15", "--no-progress"], capsys, "corrupt")
    f.write_bytes(bytes(data[:100]))
    before = _snapshot(d)
    _bad(["train", "--resume", str(d), "--no-progress"], capsys, "corrupt or truncated")
    _bad(["visualize", str(f)], capsys, "corrupt or truncated")
    assert _snapshot(d) == before


def test_visualize_and_encode_error_paths(run_dir, tmp_path, capsys):
    _bad(["visualize", str(tmp_path / "nope")], capsys, "does not exist")
    _bad(["visualize", str(run_dir), "--out", str(tmp_path / "x.jpg")], capsys, ".png")
    _bad(["visualize", str(run_dir), "--patch-shape", "3", "3"], capsys, "n_visible=16")
    _bad(["encode", str(run_dir), "--data", "digits", "--out", str(tmp_path / "f.npy")], capsys,
         "n_visible=16")
    _bad(["encode", str(run_dir), "--data", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "f.npy")],
         capsys, "not found")
    _bad(["encode", str(run_dir), "--patch-size", "4", "--out", str(tmp_path / "f.txt")], capsys, ".npy")
    assert not (tmp_path / "f.npy").exists()


def test_divergence_exits_1_naming_the_step(tmp_path, capsys):
    rc = main(["train", "--out", str(tmp_path / "d"), "--optimizer", "sgd", "--learning-rate", "1e200",
               "--momentum", "0", "--batch-size", "50", *SMALL])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert "training stopped at step" in err[-1] and "non-finite" in err[-1]
    _, meta = load_checkpoint(tmp_path / "d" / CHECKPOINT_NAME)  # the last good one is kept
    assert meta["step"] == 0


def test_gradcheck_needs_a_square_n_visible_for_natural_patches(capsys):
    _bad(["gradcheck", "--n-visible", "15", "--m", "10"], capsys, "square")


@pytest.mark.slow  # compiles the gradient check once per device (8 host CPUs under the conftest)
def test_gradcheck_still_passes_on_natural_patches(capsys):
    rc = main(["gradcheck", "--m", "50", "--n-visible", "16", "--n-hidden", "3", "--directions", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "data=natural" in out and "PASS" in out


# --- issue 11: bad input is exit 2 and one line, never a traceback or a divergence ------


def test_hyperparameters_are_checked_in_the_dtype_used(tmp_path, capsys):
    # rho=0.99999999 is 1.0 in float32: this used to train, diverge (exit 1) and leave a run directory
    out = tmp_path / "o"
    _bad(["train", "--out", str(out), "--dtype", "float32", "--rho", "0.99999999", *SMALL], capsys,
         "rho=0.99999999 is 1.0 in float32")
    _bad(["train", "--out", str(out), "--dtype", "float32", "--lam", "1e39", *SMALL], capsys,
         "lam=1e+39 overflows float32")
    assert not out.exists()


def test_out_paths_that_are_files_or_directories(run_dir, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    _bad(["train", "--out", str(f), *SMALL], capsys, "is a file; choose a directory")
    _bad(["train", "--out", str(f / "run"), *SMALL], capsys, "which is a file")
    (tmp_path / "feat.npy").mkdir()
    _bad(["encode", str(run_dir), "--patch-size", "4", "--n-patches", "20", "--out", str(tmp_path / "feat.npy")],
         capsys, "is a directory; name the .npy file")
    (tmp_path / "f.png").mkdir()
    _bad(["visualize", str(run_dir), "--out", str(tmp_path / "f.png")], capsys, "is a directory")
    assert f.read_text() == "x" and sorted(os.listdir(tmp_path)) == ["f.png", "feat.npy", "file"]


@pytest.mark.parametrize("argv, match", [
    (["train", "--bogus"], "sae-jax: error: unrecognized arguments: --bogus (see 'sae-jax --help')"),
    (["train", "--optimizer", "newton"], "sae-jax train: error: argument --optimizer: invalid choice"),
    (["train", "--steps", "ten"], "sae-jax train: error: argument --steps: invalid int value: 'ten'"),
    (["encode", "run"], "sae-jax encode: error: the following arguments are required: --out"),
    ([], "sae-jax: error: the following arguments are required: command"),
])
def test_usage_errors_are_one_line_with_a_pointer_to_help(argv, match, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(match) and err[0].endswith("--help')"), err


def test_resume_to_fewer_steps_is_refused_and_rewrites_nothing(run_dir, capsys):
    # used to exit 0 and rewrite config.json and params.safetensors to say steps = 5
    before = _snapshot(run_dir)
    _bad(["train", "--resume", str(run_dir), "--steps", "5", "--no-progress"], capsys,
         "its checkpoint is already at step 10")
    assert _snapshot(run_dir) == before


def test_visualize_and_encode_detect_a_flipped_bit_in_params(run_dir, tmp_path, capsys):
    import shutil

    d = tmp_path / "flipped"
    shutil.copytree(run_dir, d)
    f = d / PARAMS_NAME
    data = bytearray(f.read_bytes())
    data[-5] ^= 0x01  # inside b2, the last tensor
    f.write_bytes(bytes(data))
    _bad(["visualize", str(d), "--out", str(tmp_path / "f.png")], capsys, "corrupt: its SHA-256 checksum")
    _bad(["encode", str(d), "--patch-size", "4", "--n-patches", "20", "--out", str(tmp_path / "a.npy")], capsys,
         "corrupt: its SHA-256 checksum")
    assert not (tmp_path / "f.png").exists() and not (tmp_path / "a.npy").exists()


def test_every_train_config_field_is_a_flag_of_train_and_sweep():
    """Issue 13: the flags are generated from TrainConfig's field metadata, so a new field is a new
    flag (type, choices, help and default from config.py) without touching the CLI. sweep takes the
    fields that change a sweep (issue 20: not validation_fraction)."""
    import dataclasses

    from sae_jax.cli import build_parser
    from sae_jax._src.cli.flags import SWEEP_FIELDS
    from sae_jax.training import TrainConfig
    from sae_jax._src.config import field_help

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    defaults = TrainConfig()
    assert set(f.name for f in dataclasses.fields(TrainConfig)) - set(SWEEP_FIELDS) == {"validation_fraction"}
    for command in ("train", "sweep"):
        fields = [f.name for f in dataclasses.fields(TrainConfig)] if command == "train" else list(SWEEP_FIELDS)
        by_dest = {a.dest: a for a in sub[command]._actions}
        assert ("validation_fraction" in by_dest) == (command == "train")
        argv = []
        for name in fields:
            info, action = field_help(name), by_dest[name]
            flag = "--" + name.replace("_", "-")
            assert action.default is None  # not given: the config's (or the checkpoint's) value
            assert info["help"] in action.help and "(default " in action.help
            if info["type"] is bool:  # --x / --no-x
                assert action.option_strings == [flag, "--no-" + name.replace("_", "-")]
                argv.append(flag if not getattr(defaults, name) else "--no-" + name.replace("_", "-"))
                continue
            assert action.option_strings == [flag]
            if command == "sweep" and name in ("lam", "beta", "rho"):
                assert action.type is None and "comma-separated" in action.help
                argv += [action.option_strings[0], f"{info['default']!r},{info['default']!r}"]
                continue
            assert action.type is info["type"] and action.choices == info["choices"]
            other = info["choices"][-1] if info["choices"] else info["type"](1)
            argv += [action.option_strings[0], str(other)]
        args = parser.parse_args([command, *argv])
        for name in fields:
            value = getattr(args, name)
            if command == "sweep" and name in ("lam", "beta", "rho"):
                assert value == f"{getattr(defaults, name)!r},{getattr(defaults, name)!r}"
            elif field_help(name)["type"] is bool:
                assert value is (not getattr(defaults, name)), name
            else:
                want = field_help(name)["choices"][-1] if field_help(name)["choices"] else field_help(name)["type"](1)
                assert value == want and type(value) is field_help(name)["type"], name
    # gradcheck's hyperparameters are the same fields, with the config's defaults
    g = parser.parse_args(["gradcheck"])
    assert (g.n_hidden, g.lam, g.beta, g.rho, g.output) == (defaults.n_hidden, defaults.lam, defaults.beta,
                                                            defaults.rho, defaults.output)


def test_every_command_has_its_module():
    """main imports a command's module when it runs (sae_jax._src.cli.COMMANDS): one per subcommand."""
    import importlib

    from sae_jax._src.cli import COMMANDS
    from sae_jax.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert list(sub) == list(COMMANDS)
    for command, module in COMMANDS.items():
        assert callable(getattr(importlib.import_module(f"sae_jax._src.cli.{module}"), "cmd_" + command.replace("-", "_")))


def _warning_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "warning" in line]


def test_train_and_evaluate_warn_in_one_stderr_line_for_a_dead_run_only(tmp_path, capsys):
    """Issue 20.2: λ = 100 decays the weights to 0 (every unit dead, the reconstruction the mean
    predictor's): train and evaluate each print one warning line on stderr and exit 0. The same run
    with ρ = 0.1 and 30 steps learns (reconstruction ~0.07 against the mean predictor's 0.119): no
    warning from either."""
    assert main(["train", "--out", str(tmp_path / "dead"), *SMALL, "--lam", "100"]) == 0
    cap = capsys.readouterr()
    assert "untied, no L1, no corruption" in cap.out.splitlines()[0]
    assert "rho_hat mean" in cap.out and "(clean data = the training input)" in cap.out
    (line,) = _warning_lines(cap.err)
    assert line.startswith("sae-jax train: warning (training rows): 100% of the hidden units are dead")
    assert "no better than the mean predictor's" in line and "warning" not in cap.out
    assert main(["evaluate", str(tmp_path / "dead")]) == 0
    (line,) = _warning_lines(capsys.readouterr().err)
    assert line.startswith("sae-jax evaluate: warning (data): 100% of the hidden units are dead")

    assert main(["train", "--out", str(tmp_path / "good"), *SMALL, "--rho", "0.1", "--steps", "30"]) == 0
    assert _warning_lines(capsys.readouterr().err) == []
    assert main(["evaluate", str(tmp_path / "good")]) == 0
    assert _warning_lines(capsys.readouterr().err) == []
