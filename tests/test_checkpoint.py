"""Run-directory files: atomic writes survive a crash, checksums catch corruption, exports load in numpy."""

import dataclasses
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

from sae_jax import InputError, Params, init_params
from sae_jax._src import checkpoint as ckpt
from sae_jax.training import TrainConfig, train


def _save(path, step=3, scale=1.0):
    p = init_params(jax.random.key(0), 6, 4, dtype=jnp.float64)
    p = jax.tree.map(lambda a: a * scale, p)
    ckpt.save_checkpoint(
        path, params=p, opt_leaves=[jnp.zeros((), jnp.int32), jnp.ones((2, 3))], step=step,
        key_data=np.array([1, 2], np.uint32), config=_CONFIG, data_spec={"name": "natural"},
        data_sha256=_SHA,
    )
    return p


_CONFIG = TrainConfig(n_hidden=4).to_dict()  # what a checkpoint of 6-4 float64 parameters records
_SHA = "ab" * 32


def test_checkpoint_roundtrip_is_exact(tmp_path):
    f = tmp_path / "c.safetensors"
    p = _save(f)
    tensors, meta = ckpt.load_checkpoint(f)
    for name, a in zip(Params._fields, p):
        np.testing.assert_array_equal(tensors[f"params/{name}"], np.asarray(a))
    assert meta["step"] == 3 and meta["config"] == _CONFIG and meta["n_opt_leaves"] == 2
    assert tensors["opt/00000"].dtype == np.int32 and tensors["opt/00000"].shape == ()
    assert meta["data_spec"] == {"name": "natural"}


def test_corrupt_truncated_missing_or_foreign_checkpoint_is_an_input_error(tmp_path):
    f = tmp_path / "c.safetensors"
    _save(f)
    data = bytearray(f.read_bytes())
    data[-5] ^= 0x01  # one flipped bit in the last tensor
    bad = tmp_path / "flip.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match="corrupt: its SHA-256 checksum does not match"):
        ckpt.load_checkpoint(bad)
    short = tmp_path / "short.safetensors"
    short.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(InputError, match="corrupt or truncated"):
        ckpt.load_checkpoint(short)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="corrupt or truncated"):
        ckpt.load_checkpoint(empty)
    with pytest.raises(InputError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "nope.safetensors")
    foreign = tmp_path / "foreign.safetensors"
    safetensors.numpy.save_file({"w": np.zeros(3)}, str(foreign))
    with pytest.raises(InputError, match="not a sae-jax training checkpoint"):
        ckpt.load_checkpoint(foreign)


@pytest.mark.parametrize("fail_at", ["write", "fsync", "replace"])
def test_crash_mid_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch, fail_at):
    f = tmp_path / "c.safetensors"
    _save(f, step=3)
    before = f.read_bytes()

    class Crash(Exception):
        pass

    def boom(*a, **k):
        raise Crash(fail_at)

    if fail_at == "replace":
        monkeypatch.setattr(os, "replace", boom)
    elif fail_at == "fsync":
        monkeypatch.setattr(os, "fsync", boom)
    else:
        real_fdopen = os.fdopen

        class Torn:
            """A file object that writes half of the data, then dies (like a kill mid-write)."""

            def __init__(self, *a, **k):
                self.f = real_fdopen(*a, **k)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, b):
                self.f.write(b[: len(b) // 2])
                raise Crash("write")

        monkeypatch.setattr(os, "fdopen", Torn)
    with pytest.raises(Crash):
        _save(f, step=4, scale=2.0)
    monkeypatch.undo()
    assert f.read_bytes() == before
    _, meta = ckpt.load_checkpoint(f)
    assert meta["step"] == 3
    assert os.listdir(tmp_path) == ["c.safetensors"]  # no temp file left behind


def test_atomic_write_keeps_file_mode_sane(tmp_path):
    f = tmp_path / "x.txt"
    ckpt.atomic_write_text(f, "hi")
    assert f.read_text() == "hi"
    assert os.stat(f).st_mode & 0o044  # readable by group/others under the usual umask


# The same sizes and compiled config as tests/test_training.py's ADAM, so a full run compiles it once.
X = np.random.default_rng(0).uniform(0.1, 0.9, (120, 16))
CFG = TrainConfig(n_hidden=5, optimizer="adam", learning_rate=0.05, batch_size=32, steps=10, chunk=5,
                  checkpoint_every=5)


class Killed(BaseException):
    """Stands in for a SIGKILL/KeyboardInterrupt arriving mid-write."""


def test_crash_while_checkpointing_during_training_then_resume(tmp_path, monkeypatch):
    full = train(X, CFG)
    calls = {"n": 0}
    real_replace = os.replace

    def crash_on_third(src, dst):
        if str(dst).endswith(ckpt.CHECKPOINT_NAME):
            calls["n"] += 1
            if calls["n"] == 3:  # checkpoints at steps 0, 5, then the one at step 10 dies
                raise Killed("killed while writing the step-10 checkpoint")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_third)
    with pytest.raises(Killed):
        train(X, CFG, run_dir=tmp_path, pictures=False)
    monkeypatch.undo()
    _, meta = ckpt.load_checkpoint(tmp_path / ckpt.CHECKPOINT_NAME)
    assert meta["step"] == 5
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    resumed = train(X, CFG, run_dir=tmp_path, resume=True, pictures=False)
    for a, b in zip(resumed.params, full.params):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    steps = [json.loads(line)["step"] for line in (tmp_path / ckpt.METRICS_NAME).read_text().splitlines()]
    assert steps == [0, 5, 10]  # the row logged after the lost checkpoint was dropped, then redone


def test_run_directory_exports_load_with_plain_numpy(tmp_path):
    cfg = dataclasses.replace(CFG, steps=5)
    r = train(X, cfg, run_dir=tmp_path)
    d = safetensors.numpy.load_file(str(tmp_path / ckpt.PARAMS_NAME))
    assert {k: v.shape for k, v in d.items()} == {"W1": (5, 16), "b1": (5,), "W2": (16, 5), "b2": (16,)}
    np.testing.assert_array_equal(d["W1"], np.asarray(r.params.W1))
    conf = json.loads((tmp_path / ckpt.CONFIG_NAME).read_text())
    assert conf["config"]["n_hidden"] == 5 and conf["n_visible"] == 16
    rows = [json.loads(line) for line in (tmp_path / ckpt.METRICS_NAME).read_text().splitlines()]
    keys = {"step", "cost", "reconstruction", "weight_decay", "sparsity", "rho_hat_mean", "rho_hat_min",
            "rho_hat_max", "mse", "step_time_s"}
    assert all(keys <= set(row) for row in rows)
    assert (tmp_path / "filters.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "training_curve.png").read_bytes()[:4] == b"\x89PNG"
    p, config = ckpt.load_params(tmp_path)
    assert config["n_visible"] == 16
    p2, _ = ckpt.load_params(tmp_path / ckpt.CHECKPOINT_NAME)
    np.testing.assert_array_equal(p.W1, p2.W1)


def test_load_params_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        ckpt.load_params(tmp_path / "nope")
    with pytest.raises(InputError, match="has neither"):
        ckpt.load_params(tmp_path)
    f = tmp_path / "w.safetensors"
    safetensors.numpy.save_file({"w": np.zeros(3)}, str(f))
    with pytest.raises(InputError, match="no sae-jax parameters"):
        ckpt.load_params(f)


# --- reproducible files, verified params ----------------------------------------------


def _header(path):
    import struct

    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n])


_WRITE_BOTH = """
import sys, jax, numpy as np
from sae_jax import init_params
from sae_jax._src import checkpoint as ckpt
from sae_jax.training import TrainConfig
p = init_params(jax.random.key(0), 6, 4)
ckpt.save_params(sys.argv[1] + "/params.safetensors", p, config={"b": 2, "a": [1, 2], "c": "x"})
ckpt.save_checkpoint(sys.argv[1] + "/checkpoint.safetensors", params=p, opt_leaves=[np.zeros((2, 3))],
    step=7, key_data=np.array([1, 2], np.uint32), rho_ema=np.ones(4, np.float32),
    config=dict(TrainConfig(n_hidden=4, optimizer="adam", rho_hat="ema", dtype="float32").to_dict()),
    data_spec=None, data_sha256="ab" * 32, extra={"n": 1})
"""


def test_identical_contents_give_byte_identical_files_across_processes(tmp_path):
    # safetensors' own writer put the metadata in hash-map order, which differs between processes.
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
        subprocess.run([sys.executable, "-c", _WRITE_BOTH, str(d)], check=True, env=env)
    for name in (ckpt.PARAMS_NAME, ckpt.CHECKPOINT_NAME):
        a, b = (d / name for d in dirs)
        assert a.read_bytes() == b.read_bytes(), name
        md = _header(a)["__metadata__"]
        assert list(md) == sorted(md)
    # and the files are ordinary safetensors: numpy's loader and sae-jax's readers agree
    tensors, meta = ckpt.load_checkpoint(dirs[0] / ckpt.CHECKPOINT_NAME)
    assert meta["step"] == 7 and tensors["step"].shape == () and tensors["rho_ema"].dtype == np.float32
    plain = safetensors.numpy.load_file(str(dirs[0] / ckpt.CHECKPOINT_NAME))
    assert set(plain) == set(tensors) and all(np.array_equal(plain[k], tensors[k]) for k in plain)
    p, config = ckpt.load_params(dirs[0] / ckpt.PARAMS_NAME)
    assert config == {"b": 2, "a": [1, 2], "c": "x"} and p.W1.shape == (4, 6)


def test_checkpoints_written_by_safetensors_itself_still_load(tmp_path):
    # Files from before the fixed-order writer (safetensors.numpy.save) keep loading.
    f = tmp_path / "c.safetensors"
    p = _save(f)
    tensors, md = ckpt.read_safetensors(f, "checkpoint")
    f.write_bytes(safetensors.numpy.save(tensors, metadata=md))
    tensors2, meta = ckpt.load_checkpoint(f)
    assert meta["step"] == 3
    np.testing.assert_array_equal(tensors2["params/W1"], np.asarray(p.W1))
    q = tmp_path / "p.safetensors"
    safetensors.numpy.save_file({k: np.asarray(v) for k, v in zip(Params._fields, p)}, str(q),
                                metadata={"format": "sae-jax-params", "config": "{}"})
    np.testing.assert_array_equal(ckpt.load_params(q)[0].W1, np.asarray(p.W1))  # no checksum: read as is


def test_params_file_checksum_catches_a_flipped_bit(tmp_path):
    # visualize/encode read params.safetensors first; one flipped bit used to change W1 silently.
    f = tmp_path / ckpt.PARAMS_NAME
    p = init_params(jax.random.key(0), 6, 4, dtype=jnp.float64)
    ckpt.save_params(f, p, config={"n_visible": 6})
    np.testing.assert_array_equal(ckpt.load_params(f)[0].W1, np.asarray(p.W1))
    data = bytearray(f.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little") + _header(f)["W1"]["data_offsets"][0]
    data[start + 3] ^= 0x10
    f.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"params file .* is corrupt: its SHA-256 checksum does not match"):
        ckpt.load_params(tmp_path)


def test_stale_temp_files_are_removed_on_start_and_on_resume(tmp_path):
    # A SIGKILL during an atomic write leaves its temp file; the next start or resume removes it.
    stale = [".checkpoint.safetensors.k1l2m3.tmp", ".params.safetensors.abc.tmp", ".config.json.x.tmp",
             ".metrics.jsonl.y.tmp", ".filters.png.tmp.png"]
    tmp_path.mkdir(exist_ok=True)
    for n in [*stale, ".notes.tmp"]:
        (tmp_path / n).write_bytes(b"\0" * 64)
    cfg = dataclasses.replace(CFG, steps=5)
    train(X, cfg, run_dir=tmp_path, pictures=False)
    left = sorted(n for n in os.listdir(tmp_path) if n.startswith("."))
    assert left == [".notes.tmp"]  # not sae-jax's: kept
    for n in stale:
        (tmp_path / n).write_bytes(b"\0" * 64)
    train(X, CFG, run_dir=tmp_path, resume=True, pictures=False)
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith(".")) == [".notes.tmp"]


# --- crafted files (issue 21): every field validated on load, one line naming the file and field ------

_CRAFT_CONFIG = TrainConfig(n_hidden=4, optimizer="adam", steps=10).to_dict()


def _write_run(d):
    """A run directory written by hand (no training): checkpoint, params file and config.json of a
    6-4 float64 Adam run on the digits spec, valid in every field."""
    d.mkdir()
    rng = np.random.default_rng(0)
    p = Params(rng.uniform(-0.1, 0.1, (4, 6)), np.zeros(4), rng.uniform(-0.1, 0.1, (6, 4)), np.zeros(6))
    spec = {"name": "digits", "n_patches": 10000, "patch_size": 8, "seed": 0, "key": None, "sha256": None}
    ckpt.save_checkpoint(d / ckpt.CHECKPOINT_NAME, params=p, opt_leaves=[np.zeros((), np.int32), np.ones((4, 6))],
                         step=3, key_data=np.array([1, 2], np.uint32), config=_CRAFT_CONFIG, data_spec=spec,
                         data_sha256=_SHA)
    ckpt.save_params(d / ckpt.PARAMS_NAME, p, config=_CRAFT_CONFIG)
    (d / ckpt.CONFIG_NAME).write_text(json.dumps({"config": _CRAFT_CONFIG, "data_spec": spec}))
    return d


def _craft(f, *, metadata=None, tensors=None, drop=()):
    """Rewrite a safetensors file with changed metadata/tensors and a recomputed (valid) checksum."""
    t, md = ckpt.read_safetensors(f, "file")
    t.update(tensors or {})
    md.update(metadata or {})
    for k in drop:
        t.pop(k)
    md["sha256"] = ckpt._digest(t, md)
    f.write_bytes(ckpt._serialize(t, md))


def _one_line(e, *parts):
    msg = str(e.value)
    assert "\n" not in msg, msg
    for p in parts:
        assert p in msg, msg
    return msg


def test_a_valid_hand_written_run_loads(tmp_path):
    d = _write_run(tmp_path / "run")
    tensors, meta = ckpt.load_checkpoint(d / ckpt.CHECKPOINT_NAME)
    assert meta["step"] == 3 and meta["config"] == _CRAFT_CONFIG
    assert ckpt.load_params(d)[1] == _CRAFT_CONFIG
    assert ckpt.read_run_config(d / ckpt.CONFIG_NAME)["data_spec"]["name"] == "digits"


_DEEP = "[" * 100_000 + "]" * 100_000

_BAD_CHECKPOINTS = [
    # (metadata, tensors, drop, field named, expectation)
    ({"config": "[1, 2]"}, None, (), "metadata 'config'", "must be a JSON object, got a list"),
    ({"config": "null"}, None, (), "metadata 'config'", "must be a JSON object, got null"),
    ({"config": _DEEP}, None, (), "metadata 'config'", "nested too deeply"),
    ({"config": "{not json"}, None, (), "metadata 'config'", "is not valid JSON"),
    ({"config": json.dumps({**_CRAFT_CONFIG, "rho": 5})}, None, (), "metadata 'config'", "rho must be in (0, 1)"),
    ({"config": json.dumps({**_CRAFT_CONFIG, "zzz": 1})}, None, (), "metadata 'config'", "unknown field(s) ['zzz']"),
    ({"step": "-5"}, {"step": np.asarray(-5, np.int64)}, (), "metadata 'step'", "must be a non-negative integer, got '-5'"),
    (None, {"step": np.asarray(-5, np.int64)}, (), "tensor 'step'", "equal to metadata 'step' (3)"),
    (None, {"key": np.zeros(3, np.uint32)}, (), "tensor 'key'", "shape (2,) uint32, got (3,) uint32"),
    (None, {"key": np.zeros(2, np.float32)}, (), "tensor 'key'", "shape (2,) uint32, got (2,) float32"),
    (None, {"opt/00001": np.full((4, 6), np.nan)}, (), "tensor 'opt/00001'", "has NaN values"),
    (None, {"params/W1": np.full((4, 6), np.inf)}, (), "params.W1", "must be finite"),
    (None, {"params/W1": np.zeros((5, 6)), "params/b1": np.zeros(5), "params/W2": np.zeros((6, 5))}, (),
     "tensor 'params/W1'", "n_hidden=4"),
    (None, {"params/W1": np.zeros((4, 6), np.float32)}, (), "params.", "dtype"),
    (None, {"rho_ema": np.ones(4)}, (), "unexpected tensor(s) ['rho_ema']", "rho_hat='batch'"),
    (None, None, ("params/b2",), "lacks tensor(s) ['params/b2']", "tied=False"),
    ({"n_opt_leaves": "3"}, None, (), "lacks tensor(s) ['opt/00002']", "n_opt_leaves=3"),
    ({"data_spec": json.dumps({"name": "digits", "n_patches": -1})}, None, (), "data spec 'n_patches'", ">= 1"),
    ({"data_spec": "[]"}, None, (), "data spec", "must be a JSON object"),
    ({"data_sha256": "abc"}, None, (), "metadata 'data_sha256'", "64 lowercase hex digits"),
    ({"extra": "[1]"}, None, (), "metadata 'extra'", "must be a JSON object, got a list"),
]


@pytest.mark.parametrize("metadata, tensors, drop, field, want", _BAD_CHECKPOINTS)
def test_a_crafted_checkpoint_is_one_input_error_naming_file_and_field(tmp_path, metadata, tensors, drop, field, want):
    d = _write_run(tmp_path / "run")
    f = d / ckpt.CHECKPOINT_NAME
    _craft(f, metadata=metadata, tensors=tensors, drop=drop)  # a valid checksum: only the fields are wrong
    with pytest.raises(InputError) as e:
        ckpt.load_checkpoint(f)
    _one_line(e, f"checkpoint {str(f)!r}", field, want)


@pytest.mark.parametrize("config, want", [
    ("[1, 2]", "metadata 'config' must be a JSON object, got a list"),
    ("null", "metadata 'config' must be a JSON object, got null"),
    (_DEEP, "metadata 'config' is JSON nested too deeply to read"),
    (json.dumps({"rho": 5}), "metadata 'config': rho must be in (0, 1)"),
    (json.dumps({"output": "tanh"}), "metadata 'config': output must be one of"),
    (json.dumps({"lam": "x"}), "metadata 'config': lam must be a real scalar"),
])
def test_a_crafted_params_file_is_one_input_error(tmp_path, config, want):
    d = _write_run(tmp_path / "run")
    f = d / ckpt.PARAMS_NAME
    _craft(f, metadata={"config": config})
    with pytest.raises(InputError) as e:
        ckpt.load_params(d)
    _one_line(e, f"params file {str(f)!r}", want)


def test_a_params_file_config_may_hold_other_keys_and_may_be_absent(tmp_path):
    f = tmp_path / ckpt.PARAMS_NAME
    p = init_params(jax.random.key(0), 6, 4)
    ckpt.save_params(f, p, config={"note": [1, 2], "rho": 0.2})
    assert ckpt.load_params(f)[1] == {"note": [1, 2], "rho": 0.2}
    safetensors.numpy.save_file({k: np.asarray(v) for k, v in zip(Params._fields, p)}, str(f))
    assert ckpt.load_params(f)[1] == {}


@pytest.mark.parametrize("text, want", [
    (_DEEP, "is JSON nested too deeply to read"),
    ("[1]", "must be a JSON object, got a list"),
    ("{", "is not valid JSON"),
    (json.dumps({"data_spec": {"name": "natural", "n_patches": 0}}), "field 'data_spec': data spec 'n_patches'"),
])
def test_a_crafted_config_json_is_one_input_error(tmp_path, text, want):
    f = tmp_path / ckpt.CONFIG_NAME
    f.write_text(text)
    with pytest.raises(InputError) as e:
        ckpt.read_run_config(f)
    _one_line(e, f"run config {str(f)!r}", want)


def _cli_refuses(argv, capsys, *parts):
    from sae_jax.cli import main

    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "error:" in err[0], err
    for p in parts:
        assert p in err[0], err[0]


def _files(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.mark.parametrize("craft, field", [
    (dict(metadata={"config": "[1, 2]"}), "metadata 'config' must be a JSON object"),
    (dict(tensors={"key": np.zeros(2, np.float32)}), "tensor 'key'"),
    (dict(metadata={"step": "-5"}, tensors={"step": np.asarray(-5, np.int64)}), "metadata 'step'"),
    (dict(tensors={"opt/00001": np.full((4, 6), np.nan)}), "tensor 'opt/00001' has NaN values"),
    (dict(metadata={"config": _DEEP}), "nested too deeply"),
])
def test_cli_resume_of_a_crafted_checkpoint_is_exit_2_one_line_nothing_written(tmp_path, capsys, craft, field):
    d = _write_run(tmp_path / "run")
    _craft(d / ckpt.CHECKPOINT_NAME, **craft)
    before = _files(d)
    _cli_refuses(["train", "--resume", d, "--steps", "12", "--no-progress"], capsys, "checkpoint", field)
    assert _files(d) == before


@pytest.mark.parametrize("command", ["encode", "evaluate", "probe"])
@pytest.mark.parametrize("config", ["[1, 2]", "null"])
def test_cli_commands_reading_a_crafted_params_file_exit_2(tmp_path, capsys, command, config):
    d = _write_run(tmp_path / "run")
    _craft(d / ckpt.PARAMS_NAME, metadata={"config": config})
    before = _files(d)
    out = {"encode": ["--out", d / "codes.npy"], "evaluate": ["--out", d / "ev.png"], "probe": ["--softmax-steps", "2"]}[command]
    _cli_refuses([command, d, *out], capsys, "params file", "metadata 'config' must be a JSON object")
    assert _files(d) == before


def test_cli_encode_with_a_checkpoint_whose_config_is_a_list_exits_2(tmp_path, capsys):
    d = _write_run(tmp_path / "run")
    (d / ckpt.PARAMS_NAME).unlink()
    _craft(d / ckpt.CHECKPOINT_NAME, metadata={"config": "[1, 2]"})
    before = _files(d)
    _cli_refuses(["encode", d, "--out", d / "codes.npy"], capsys, "checkpoint", "metadata 'config' must be a JSON object")
    assert _files(d) == before


@pytest.mark.parametrize("text, want", [
    (_DEEP, "nested too deeply"),
    (json.dumps({"data_spec": {"name": "natural", "n_patches": 10**12, "patch_size": 8, "seed": 0, "key": None,
                               "sha256": None}}), "needs 1560000000000000 bytes (1.56 PB), more than the"),
])
def test_cli_encode_with_a_crafted_config_json_exits_2(tmp_path, capsys, text, want):
    d = _write_run(tmp_path / "run")
    (d / ckpt.CHECKPOINT_NAME).unlink()  # the params file's directory: its config.json names the data
    (d / ckpt.CONFIG_NAME).write_text(text)
    before = _files(d)
    _cli_refuses(["encode", d, "--out", d / "codes.npy"], capsys, want)
    assert _files(d) == before


def test_cli_resume_of_a_checkpoint_recording_a_huge_data_spec_exits_2_before_allocating(tmp_path, capsys):
    d = _write_run(tmp_path / "run")
    spec = {"name": "natural", "n_patches": 10**12, "patch_size": 8, "seed": 0, "key": None, "sha256": None}
    _craft(d / ckpt.CHECKPOINT_NAME, metadata={"data_spec": json.dumps(spec)})
    before = _files(d)
    _cli_refuses(["train", "--resume", d, "--no-progress"], capsys, "n_patches=1000000000000", "bytes", "available")
    assert _files(d) == before


_LOAD_FLOAT64_WITHOUT_X64 = """
import sys, json, jax, numpy as np
from sae_jax import Params
from sae_jax._src import checkpoint as ckpt
from sae_jax.training import TrainConfig
assert not jax.config.jax_enable_x64
d = sys.argv[1]
p = Params(np.zeros((4, 6)), np.zeros(4), np.zeros((6, 4)), np.zeros(6))
config = TrainConfig(n_hidden=4).to_dict()
ckpt.save_checkpoint(d + "/checkpoint.safetensors", params=p, opt_leaves=[], step=0,
                     key_data=np.array([1, 2], np.uint32), config=config, data_spec=None, data_sha256="ab" * 32)
ckpt.save_params(d + "/params.safetensors", p, config=config)
print(ckpt.load_checkpoint(d + "/checkpoint.safetensors")[1]["config"]["dtype"], ckpt.load_params(d)[1]["dtype"])
config["rho"] = 2.0
ckpt.save_params(d + "/params.safetensors", p, config=config)
try:
    ckpt.load_params(d)
except ckpt.InputError as e:
    print(e)
"""


def test_a_float64_run_loads_before_the_cli_turns_x64_on(tmp_path):
    # The CLI reads a run's files first and then enables x64 for a float64 run: validating the
    # config on load must not require x64 of the reading process (the other fields still checked).
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    env.pop("JAX_ENABLE_X64", None)
    out = subprocess.run([sys.executable, "-c", _LOAD_FLOAT64_WITHOUT_X64, str(tmp_path)], check=True, env=env,
                         capture_output=True, text=True).stdout.splitlines()
    assert out[0] == "float64 float64"
    assert out[1].endswith("metadata 'config': rho must be in (0, 1) (a target mean activation), got 2.0")


# --- the OS refuses a write (issue 21): one clear error, the previous file intact ---------------------


@pytest.mark.parametrize("fail_at", ["mkstemp", "fsync", "replace"])
def test_an_os_error_writing_is_a_write_error_naming_the_file_and_the_old_one_stays(tmp_path, monkeypatch, fail_at):
    import errno
    import tempfile

    f = tmp_path / "c.safetensors"
    _save(f, step=3)
    before = f.read_bytes()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr({"mkstemp": tempfile, "fsync": os, "replace": os}[fail_at], fail_at, full)
    with pytest.raises(ckpt.WriteError) as e:
        _save(f, step=4, scale=2.0)
    monkeypatch.undo()
    assert str(e.value) == f"cannot write checkpoint {str(f)!r}: No space left on device"
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(f) and isinstance(e.value, OSError)
    assert f.read_bytes() == before and os.listdir(tmp_path) == ["c.safetensors"]


def test_a_full_disk_at_a_training_checkpoint_keeps_the_last_one(tmp_path, monkeypatch):
    import errno

    full = train(X, CFG)
    real_replace = os.replace
    kept = {}

    def replace(src, dst):
        if str(dst).endswith(ckpt.CHECKPOINT_NAME) and os.path.exists(dst):
            if ckpt.load_checkpoint(dst)[1]["step"] == 5:  # the step-10 checkpoint meets a full disk
                kept["bytes"] = Path(dst).read_bytes()
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(ckpt.WriteError) as e:
        train(X, CFG, run_dir=tmp_path, pictures=False)
    monkeypatch.undo()
    assert e.value.exit_code == 1 and e.value.errno == errno.ENOSPC
    assert str(e.value) == (f"cannot write checkpoint {str(tmp_path / ckpt.CHECKPOINT_NAME)!r}: No space left on "
                            f"device; the last good checkpoint (step 5) in {str(tmp_path)!r} is kept")
    assert (tmp_path / ckpt.CHECKPOINT_NAME).read_bytes() == kept["bytes"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]
    resumed = train(X, CFG, run_dir=tmp_path, resume=True, pictures=False)  # the same process takes the lock over
    for a, b in zip(resumed.params, full.params):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_metrics_row_that_cannot_be_appended_stops_the_run_naming_the_checkpoint(tmp_path, monkeypatch):
    import builtins
    import errno

    real_open = builtins.open

    def open_(file, mode="r", *a, **k):
        if str(file).endswith(ckpt.METRICS_NAME) and "a" in mode:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", open_)
    with pytest.raises(ckpt.WriteError, match=r"cannot write metrics '.*metrics.jsonl': Disk quota exceeded; the last "
                                              r"good checkpoint \(step 0\) in '.*' is kept") as e:
        train(X, CFG, run_dir=tmp_path, pictures=False)
    assert e.value.exit_code == 1
