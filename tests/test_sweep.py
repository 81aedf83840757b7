"""Sweeps: one compiled vmapped run per grid, each setting equal to its own train() run, the files,
the divergence of one setting, bad grids (InputError; the CLI exits 2 and writes nothing).

Small sizes (120 samples of 16 = 4x4 pixels, 5 hidden units: tests/test_training.py's configs,
whose single-run runners are shared) and few grid sizes, because every grid size K compiles its
vmapped runner once. Tolerance (float64): a vmapped setting runs batched matrix products that may
sum in another order than its single run; after 12 L-BFGS steps the two agree to ~1e-12 relative
(measured), and SWEEP_RTOL = 1e-9 leaves room for other BLAS backends.
"""

import csv
import dataclasses
import io
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import count_compiles, rerun_at_xla_defaults

from sae_jax import InputError
from sae_jax.training import load_params
from sae_jax.cli import main
from sae_jax.data import natural_image_patches
from sae_jax._src.sweep import grid_settings
from sae_jax.training import sweep
from sae_jax._src.sweep import sweep_runner
from sae_jax.training import TrainConfig, TrainingDiverged, train

H = 5
X = natural_image_patches(120, 4, seed=0)  # (120, 16): the CLI's --patch-size 4 --n-patches 120
LBFGS = TrainConfig(n_hidden=H, steps=12, chunk=5, checkpoint_every=5)
ADAM = TrainConfig(n_hidden=H, optimizer="adam", learning_rate=0.05, batch_size=32, steps=12, chunk=5,
                   checkpoint_every=5)
SWEEP_RTOL = 1e-9
GRID16 = {"beta": [0.0, 0.5, 3.0, 10.0], "rho": [0.01, 0.05, 0.1, 0.3]}
GRID4 = {"beta": [0.0, 3.0], "rho": [0.01, 0.2], "lam": 1e-3}


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _assert_each_setting_is_its_own_run(r, base):
    # "map" runs each setting's loop as the single run does: bit for bit the same on the CPU
    rtol = 0.0 if r.batching == "map" and jax.default_backend() == "cpu" else SWEEP_RTOL
    for k, s in enumerate(r.settings):
        one = train(X, dataclasses.replace(base, **s))
        for name, got, want in zip(("W1", "b1", "W2", "b2"), r.params_at(k), one.params):
            assert _rel(got, want) <= rtol, (k, s, name, _rel(got, want))
        # the sweep evaluates its metrics for all settings at once (vmapped): rounding-level differences
        np.testing.assert_allclose([m["cost"] for m in r.metrics[k]], [m["cost"] for m in one.metrics],
                                   rtol=max(rtol, 1e-14))
        assert r.summary[k]["cost"] == r.metrics[k][-1]["cost"]


@pytest.mark.parametrize("batching", ["map", "vmap"])
def test_16_settings_compile_once_and_each_is_its_own_adam_run(batching):
    r = sweep(X, ADAM, GRID16, batching=batching)
    assert r.batching == batching
    assert len(r.settings) == 16 and r.params.W1.shape == (16, H, 16)
    assert [m["step"] for m in r.metrics[0]] == [0, 5, 10, 12]
    # chunks of 5, 5, 2 for all 16 settings ran one executable
    assert sweep_runner(ADAM, batching)._cache_size() == 1
    # another 16 values of λ, β, ρ: nothing compiles at all (runner and metrics alike)
    other = {"beta": [0.1, 1.0, 2.0, 5.0], "rho": [0.02, 0.04, 0.2, 0.4], "lam": 3e-3}
    with count_compiles() as c:
        r2 = sweep(X, ADAM, other, batching=batching)
    assert c.n == 0
    assert r2.settings[5] == {"beta": 1.0, "rho": 0.04, "lam": 3e-3}
    _assert_each_setting_is_its_own_run(r, ADAM)


@pytest.mark.parametrize("batching", ["map", "vmap"])
def test_lbfgs_sweep_equals_single_runs_and_writes_the_directory(tmp_path, batching, request):
    # "map" is bit for bit its single runs in the machine code XLA's defaults emit (users' programs);
    # the suite's compile-speed flags round L-BFGS's line search differently (1e-14) between the two
    if batching == "map" and rerun_at_xla_defaults(request):
        return
    out = tmp_path / "sw"
    r = sweep(X, LBFGS, GRID4, out_dir=out, batching=batching)
    _assert_each_setting_is_its_own_run(r, LBFGS)
    # sparsity does its job: at beta=3 the mean activation is near rho, at beta=0 it is not
    by = {(s["beta"], s["rho"]): s for s in r.summary}
    for rho in (0.01, 0.2):
        assert abs(by[(3.0, rho)]["rho_hat_mean"] - rho) < abs(by[(0.0, rho)]["rho_hat_mean"] - rho)
        assert by[(3.0, rho)]["kl_sum"] < by[(0.0, rho)]["kl_sum"]
        assert by[(3.0, rho)]["reconstruction"] > by[(0.0, rho)]["reconstruction"]
    # a setting continues in memory exactly as its own run would
    more = train(X, dataclasses.replace(LBFGS, **r.settings[3], steps=3), init_state=r.state_at(3))
    longer = train(X, dataclasses.replace(LBFGS, **r.settings[3], steps=15))
    for got, want in zip(more.params, longer.params):
        assert _rel(got, want) <= (0.0 if batching == "map" else SWEEP_RTOL)
    # the files: summary, per-setting parameters (loadable as a run), metrics, pictures
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["batching"] == batching
    assert doc["grid"] == {"beta": [0.0, 3.0], "rho": [0.01, 0.2], "lam": [1e-3]}
    assert [s["dir"] for s in doc["summary"]] == [s["dir"] for s in r.summary]
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert len(rows) == 4 and float(rows[3]["cost"]) == r.summary[3]["cost"]
    assert rows[0]["diverged_step"] == ""
    for k, s in enumerate(r.summary):
        d = out / s["dir"]
        p, cfg = load_params(d)
        for a, b in zip(p, r.params_at(k)):
            np.testing.assert_array_equal(a, np.asarray(b))
        assert (cfg["beta"], cfg["rho"], cfg["lam"]) == (s["beta"], s["rho"], s["lam"])
        assert TrainConfig.from_dict(json.loads((d / "config.json").read_text())["config"]) == \
            dataclasses.replace(LBFGS, **r.settings[k])
        assert len((d / "metrics.jsonl").read_text().splitlines()) == len(r.metrics[k])
        assert (d / "filters.png").stat().st_size > 0
    assert (out / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="already holds a sweep.json"):
        sweep(X, LBFGS, GRID4, out_dir=out, batching=batching)


@pytest.mark.parametrize("batching", ["map", "vmap"])
def test_a_diverging_setting_is_frozen_at_its_last_good_state(batching):
    # SGD with lr * lam = 1e150: the weights grow x1e150 per step and overflow; lam = 1e-4 trains.
    cfg = TrainConfig(n_hidden=H, optimizer="sgd", learning_rate=1.0, momentum=0.0, batch_size=40,
                      steps=12, chunk=5)
    r = sweep(X, cfg, [{"lam": 1e-4}, {"lam": 1e150}], batching=batching)
    with pytest.raises(TrainingDiverged) as e:
        train(X, dataclasses.replace(cfg, lam=1e150))
    good, bad = r.summary
    assert good["diverged_step"] is None and good["step"] == 12
    assert bad["diverged_step"] == e.value.step and bad["diverged_cause"] == e.value.cause
    for got, want in zip(r.params_at(1), e.value.state.params):  # the last good parameters
        assert _rel(got, want) <= SWEEP_RTOL
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in r.params_at(1))
    assert len(r.metrics[1]) == len(r.metrics[0])  # logged to the end, frozen
    assert r.metrics[1][-1]["cost"] == r.metrics[1][2]["cost"]  # chunks after the divergence: unchanged
    np.testing.assert_allclose(r.params_at(0).W1, train(X, dataclasses.replace(cfg, lam=1e-4)).params.W1,
                               rtol=SWEEP_RTOL)


@pytest.mark.parametrize(
    "grid, match",
    [
        (None, r"grid is required"),
        ({}, r"grid is empty"),
        ([], r"grid is an empty list of settings"),
        ({"beta": []}, r"grid\['beta'\] is empty"),
        ({"alpha": [1.0]}, r"unknown key\(s\) \['alpha'\]; a sweep varies beta, rho, lam"),
        ({"beta": "1,2"}, r"grid\['beta'\] must be a number or a non-empty sequence"),
        ({"beta": [1.0, None]}, r"grid\['beta'\] must hold real numbers, got None"),
        ({"rho": [0.01, 1.0]}, r"grid setting 1 \(beta=3, rho=1, lam=0.0001\): rho must be in \(0, 1\)"),
        ({"beta": [-1.0]}, r"beta must be >= 0"),
        ({"lam": [float("nan")]}, r"lam must be finite"),
        ({"beta": [1, 1.0]}, r"the setting beta=1, rho=0.01, lam=0.0001 twice \(settings 0 and 1\)"),
        ([{"beta": [1.0, 2.0]}], r"grid\[0\]\['beta'\] must be one number"),
        ([3.0], r"grid\[0\] must be a mapping"),
        ("beta", r"grid must be a mapping of value lists or a list of settings"),
    ],
)
def test_bad_grids_are_one_input_error(grid, match):
    with pytest.raises(InputError, match=match):
        grid_settings(grid, LBFGS)


def test_grid_order_and_explicit_settings():
    s = grid_settings({"lam": [1e-4, 1e-3], "beta": np.array([0.0, 3.0])}, LBFGS)
    assert [(d["beta"], d["rho"], d["lam"]) for d in s] == [
        (0.0, 0.01, 1e-4), (0.0, 0.01, 1e-3), (3.0, 0.01, 1e-4), (3.0, 0.01, 1e-3)]
    s = grid_settings([{"beta": 1.0}, {"rho": 0.2, "lam": 0.0}], LBFGS)
    assert s == [{"beta": 1.0, "rho": 0.01, "lam": 1e-4}, {"beta": 3.0, "rho": 0.2, "lam": 0.0}]


def test_sweep_checks_its_inputs_before_writing(tmp_path):
    out = tmp_path / "none"
    for kw, match in [
        (dict(x=X, config=LBFGS, grid={"beta": [-1.0]}), "beta must be >= 0"),
        (dict(x=X * 2, config=LBFGS, grid=GRID4), r"\[0, 1\]"),
        (dict(x=X, config=dataclasses.replace(ADAM, batch_size=500), grid=GRID4), "batch_size must be <="),
        (dict(x=X, config="lbfgs", grid=GRID4), "config must be a TrainConfig"),
        (dict(x=X, config=LBFGS, grid=GRID4, batching="pmap"), r"batching must be one of \('auto', 'vmap', 'map'\)"),
    ]:
        with pytest.raises(InputError, match=match):
            sweep(**kw, out_dir=out)
        assert not out.exists()


# --- the CLI ---------------------------------------------------------------------------

CLI_SMALL = ["--patch-size", "4", "--n-patches", "120", "--n-hidden", "5", "--steps", "12", "--chunk", "5",
             "--lam", "1e-3", "--no-progress"]


def test_cli_sweep_writes_the_sweep(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--beta", "0,3", "--rho", "0.01,0.2", *CLI_SMALL, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "4 settings" in text and "wrote" in text
    r = sweep(X, LBFGS, GRID4)  # the same grid from Python: the same numbers
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    np.testing.assert_allclose([float(row["cost"]) for row in rows], [s["cost"] for s in r.summary],
                               rtol=1e-12)
    # a second sweep into the same directory: exit 2, nothing changed
    before = (out / "sweep.json").read_bytes()
    assert main(["sweep", "--beta", "1", *CLI_SMALL, "--out", str(out)]) == 2
    assert "already holds a sweep.json" in capsys.readouterr().err
    assert (out / "sweep.json").read_bytes() == before


@pytest.mark.parametrize(
    "args, match",
    [
        (["--beta", "0,x"], "--beta must be comma-separated numbers"),
        (["--rho", "0.01,"], "--rho must be comma-separated numbers"),
        (["--beta", "1", "--n-patches", "0"], "n_patches"),
        (["--lam", "inf"], "--lam values must be finite"),
        (["--rho", "0.5,1.5"], r"rho must be in \(0, 1\)"),
        (["--beta", "1,1"], "twice"),
        ([], "at least one of --beta, --rho, --lam"),
        (["--beta", "1", "--steps", "-1"], "steps must be an integer >= 0"),
        (["--beta", "1", "--data", "no_such.npy"], "no_such.npy"),
    ],
)
def test_cli_bad_sweeps_exit_2_and_write_nothing(tmp_path, capsys, args, match):
    out = tmp_path / "bad"
    assert main(["sweep", *args, "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sae-jax sweep: error: ")
    assert re.search(match, err)
    assert not out.exists()


# --- library: train's checks, the output directory, a killed sweep resumed (issue 21) ---------------


@pytest.mark.parametrize("grid, match", [
    ({"rho": [0.99999999]}, r"grid setting 0 .*rho=0\.99999999 is 1\.0 in float32"),
    ({"beta": [1.0, 1e39]}, r"grid setting 1 .*beta=1e\+39 overflows float32"),
    ({"lam": [1e39]}, r"lam=1e\+39 overflows float32"),
    ({"rho": [0.1, 0.1000000001]}, r"grid settings 0 and 1 are the same setting in float32"),
    ([{"rho": 0.05}, {"rho": 0.05000000001}], r"the same setting in float32"),
])
def test_float32_grids_get_trains_checks(tmp_path, grid, match):
    cfg = dataclasses.replace(LBFGS, dtype="float32")
    with pytest.raises(InputError, match=match):
        sweep(X, cfg, grid, out_dir=tmp_path / "s")
    assert not (tmp_path / "s").exists()
    # one check, train's own: a single setting of the grid fails train with the same words
    s = grid if isinstance(grid, dict) else grid[1]
    one = {k: (v[-1] if isinstance(v, list) else v) for k, v in s.items()}
    if "same setting" not in match:
        with pytest.raises(InputError, match=match.split(" .*")[-1]):
            train(X, dataclasses.replace(cfg, **one))
    # the same grid in float64 is fine (values distinct, finite and below 1 there)
    assert len(grid_settings(grid, LBFGS)) == (len(grid) if isinstance(grid, list) else len(next(iter(grid.values()))))


def test_out_dir_that_is_a_file_or_below_one_is_an_input_error(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(InputError, match=r"sweep directory '.*afile' is a file"):
        sweep(X, LBFGS, GRID4, out_dir=f)
    with pytest.raises(InputError, match=r"sweep directory '.*sub' is below '.*afile', which is a file"):
        sweep(X, LBFGS, GRID4, out_dir=f / "sub")
    assert f.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


class _Killed(BaseException):
    """Stands in for a SIGKILL between two chunks."""


def _kill_at(step):
    def progress(info):
        if info["step"] == step:
            raise _Killed

    return progress


def _files(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _untimed(rows):
    return [{k: v for k, v in r.items() if k not in ("step_time_s", "elapsed_s")} for r in rows]


def test_a_killed_sweep_resumes_to_the_uninterrupted_result(tmp_path):
    cfg = LBFGS  # steps 12, chunk 5, checkpoint_every 5: checkpoints at 0, 5, 10, 12
    full = sweep(X, cfg, GRID4, out_dir=tmp_path / "full", batching="map", pictures=False)
    cut = tmp_path / "cut"
    with pytest.raises(_Killed):
        sweep(X, cfg, GRID4, out_dir=cut, batching="map", pictures=False, progress=_kill_at(10))
    assert sorted(p.name for p in cut.iterdir()) == ["sweep-checkpoint.safetensors"]  # nothing half-written
    (cut / ".tradeoff.png.tmp.png").write_bytes(b"\0")  # a killed picture writer's temp file
    with pytest.raises(InputError, match="holds an unfinished sweep .*resume it"):
        sweep(X, cfg, GRID4, out_dir=cut)
    with pytest.raises(InputError, match="different config: beta"):
        sweep(X, dataclasses.replace(cfg, beta=1.0), None, out_dir=cut, resume=True)
    with pytest.raises(InputError, match="different grid"):
        sweep(X, cfg, {"beta": [0.0]}, out_dir=cut, resume=True)
    with pytest.raises(InputError, match="data differ"):
        sweep(X[:100], cfg, None, out_dir=cut, resume=True)
    with pytest.raises(InputError, match="sweep-checkpoint.safetensors' does not exist"):
        sweep(X, cfg, None, out_dir=tmp_path / "none", resume=True)
    r = sweep(X, None, None, out_dir=cut, resume=True, pictures=False)  # config, grid, data: the checkpoint's
    assert r.config == cfg and r.settings == full.settings and r.batching == "map"
    for got, want in zip(jax.tree.leaves(r.state), jax.tree.leaves(full.state)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))  # bit for bit
    assert [_untimed(m) for m in r.metrics] == [_untimed(m) for m in full.metrics]
    assert r.summary == full.summary
    a, b = _files(tmp_path / "full"), _files(cut)
    assert sorted(a) == sorted(b)
    for name in a:  # every file alike but for the timings (sweep.json, metrics) and the directory's name
        if name.endswith("config.json"):
            da, db = json.loads(a[name]), json.loads(b[name])
            assert da["sweep"].pop("dir") != db["sweep"].pop("dir") and da == db
        elif not name.endswith(("sweep.json", "metrics.jsonl", "sweep-checkpoint.safetensors")):
            assert a[name] == b[name], name
    # a finished sweep resumes to more steps, as train does
    more = sweep(X, dataclasses.replace(cfg, steps=15), None, out_dir=cut, resume=True, pictures=False)
    assert int(more.state.step) == 15 and json.loads((cut / "sweep.json").read_text())["config"]["steps"] == 15


def test_a_full_disk_mid_sweep_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import errno
    import os

    from sae_jax.training import WriteError
    from sae_jax._src.sweep import SWEEP_CHECKPOINT

    out = tmp_path / "s"
    real_replace = os.replace
    kept = {}

    def replace(src, dst):
        if str(dst).endswith(SWEEP_CHECKPOINT) and os.path.exists(dst):
            kept["bytes"] = Path(dst).read_bytes()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(WriteError) as e:
        sweep(X, LBFGS, GRID4, out_dir=out, batching="map", pictures=False)
    monkeypatch.undo()
    assert e.value.exit_code == 1 and e.value.errno == errno.ENOSPC
    assert re.fullmatch(r"cannot write sweep checkpoint '.*sweep-checkpoint\.safetensors': No space left on device; "
                        r"the last good sweep checkpoint \(step 0\) in '.*' is kept: resume it .*", str(e.value))
    assert (out / SWEEP_CHECKPOINT).read_bytes() == kept["bytes"]
    assert sorted(p.name for p in out.iterdir()) == [SWEEP_CHECKPOINT]
    r = sweep(X, None, None, out_dir=out, resume=True, pictures=False)
    assert int(r.state.step) == 12 and (out / "sweep.json").exists()


def test_a_sweep_directory_in_use_is_refused(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "s"
    out.mkdir()
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match="sweep directory '.*' is in use by another process"):
            sweep(X, LBFGS, GRID4, out_dir=out)
        assert list(out.iterdir()) == []
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
