"""sae-jax probe / self-taught / stacked (sae_jax._src.cli.experiments) at tiny sizes, and every error path.

The data: 120 rows of 4x4 "images", 4 classes of 30 (prototypes plus noise), as a .npy with a .npy
of labels, and two MNIST directories of tiny IDX files (ten digits: 120 + 40 images; four digits:
60 + 60); autoencoders of 3-5 units trained for 10 L-BFGS steps, softmaxes for 20. Errors exit 2
with one line on stderr and write nothing. The digits defaults (minutes) run in the slow README test.

Compilations are shared: the probed run has tests/test_cli.py's sizes and config ((120, 16), 5
hidden, chunk 5); every self-taught autoencoder and stacked first layer trains on 60 rows (digits
5-9 of the ten-digit directory; half of 120; the four-digit directory's train-*), the self-taught
softmaxes on 30 rows of 5 classes, and the probe's and the stack's softmaxes on 60 rows of 4.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from sae_jax.cli import main

AE = ["--n-hidden", "4", "--steps", "10"]
RUN = ["--n-hidden", "5", "--steps", "10", "--chunk", "5", "--no-progress"]  # test_cli.py's SMALL


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    proto = rng.uniform(0.1, 0.9, (4, 16))
    y = np.repeat(np.arange(4), 30)
    x = np.clip(proto[y] + 0.1 * rng.normal(size=(len(y), 16)), 0, 1)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    np.save(d / "y_short.npy", y[:-1])
    return {"x": str(d / "x.npy"), "y": str(d / "y.npy"), "y_short": str(d / "y_short.npy"), "dir": d}


@pytest.fixture(scope="module")
def run_dir(files):
    d = files["dir"] / "run"
    assert main(["train", "--data", files["x"], "--out", str(d), *RUN]) == 0
    return d


def _error(capsys, argv, *needles):
    """``argv`` exits 2 with one line on stderr naming each of ``needles``."""
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:  # refused by the parser (a flag that is not this command's)
        rc = e.code
    assert rc == 2, argv
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"sae-jax {argv[0]}: error: "), err
    for n in needles:
        assert n in err, (n, err)
    return err


@pytest.mark.slow  # sae-jax probe runs by default (test_probe_json_matches_the_library); this adds the text table
def test_probe_prints_one_table_over_seeds(run_dir, files, capsys):
    capsys.readouterr()
    assert main(["probe", str(run_dir), "--labels-path", files["y"], "--seeds", "0,1", "--softmax-steps", "20",
                 "--test-fraction", "0.5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "held-out accuracy (60 of 120 rows held out, 4 classes)" in out
    assert "per seed [0, 1]" in out and "raw inputs (16)" in out and "features (5)" in out
    # the run's prototypes are far apart: raw pixels classify the held-out rows perfectly
    raw = next(line for line in out.splitlines() if line.startswith("raw inputs"))
    assert raw.split()[-2:] == ["1.0000,", "1.0000"]


def test_probe_json_matches_the_library(run_dir, files, capsys):
    from sae_jax.training import load_params
    from sae_jax.experiments import probe
    from sae_jax import Params

    capsys.readouterr()
    assert main(["probe", str(run_dir), "--labels-path", files["y"], "--seeds", "1", "--softmax-steps", "20", "--json",
                 "--test-fraction", "0.5"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["command"] == "probe" and res["data"]["name"] == files["x"] and res["data"]["sha256"]
    assert res["settings"] == {"run": str(run_dir), "seeds": [1], "test_fraction": 0.5, "softmax_lam": 1e-4,
                               "softmax_steps": 20}
    params, _ = load_params(run_dir)
    want = probe(Params(*params), np.load(files["x"]), np.load(files["y"]), seeds=(1,), test_fraction=0.5, steps=20)
    assert [r["values"] for r in res["table"]["rows"]] == [list(r.values) for r in want.rows]


def test_probe_errors(run_dir, files, capsys):
    run = str(run_dir)
    _error(capsys, ["probe", run], "needs --labels-path", files["x"])  # the run's data has no labels of its own
    _error(capsys, ["probe", run, "--data", "natural"], "--data natural", "without labels")
    _error(capsys, ["probe", run, "--labels-path", files["y_short"]], "119 labels", "120 samples")
    _error(capsys, ["probe", run, "--labels-path", files["x"]], "labels")
    _error(capsys, ["probe", run, "--labels-path", files["y"], "--seeds", "0,x"], "--seeds")
    _error(capsys, ["probe", run, "--labels-path", files["y"], "--seeds", "1,1"], "--seeds must be distinct")
    _error(capsys, ["probe", run, "--labels-path", files["y"], "--test-fraction", "1"], "--test-fraction")
    _error(capsys, ["probe", run, "--labels-path", files["y"], "--softmax-lam", "-1"], "--softmax-lam")
    _error(capsys, ["probe", run, "--labels-path", files["y"], "--softmax-steps", "0"], "--softmax-steps")
    _error(capsys, ["probe", str(files["dir"] / "nowhere")], "nowhere")


def test_probe_of_a_natural_run_says_it_has_no_labels(files, tmp_path, capsys):
    d = tmp_path / "natural"
    assert main(["train", "--patch-size", "4", "--n-patches", "120", "--out", str(d), *RUN]) == 0
    _error(capsys, ["probe", str(d)], f"the data of {d}", "'natural'", "without labels", "--data digits")


@pytest.mark.slow  # self_taught runs by default in test_experiments; this adds the command's files
def test_self_taught_writes_results_and_features(mnist, tmp_path, capsys):
    """On the ten-digit MNIST directory below (its defaults: 5-9 unlabelled, 0-4 labelled), preset digits."""
    out = tmp_path / "st"
    capsys.readouterr()
    assert main(["self-taught", "--data", str(mnist[0]), *AE, "--seeds", "0", "--softmax-steps", "20", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "Self-taught learning" in text and "self-taught features (4)" in text and "per seed [0]" in text
    assert sorted(os.listdir(out)) == ["features.png", "results.json"]
    assert (out / "features.png").read_bytes()[:4] == b"\x89PNG"
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "self-taught" and res["settings"]["preset"] == "digits"
    assert res["settings"]["config"]["n_hidden"] == 4 and res["settings"]["config"]["lam"] == 3e-4
    assert res["settings"]["unlabelled_classes"] == [5, 6, 7, 8, 9] and res["settings"]["ordered"] is False
    assert res["ufldl_mnist_reference"]["stacked, after fine-tuning"] == 0.976
    assert [r["name"] for r in res["table"]["rows"]] == ["raw pixels (16)", "self-taught features (4)"]
    assert all(0 <= v <= 1 for r in res["table"]["rows"] for v in r["values"])
    # the same directory again: refused before any work, nothing changed
    before = (out / "results.json").read_bytes()
    _error(capsys, ["self-taught", "--data", str(mnist[0]), "--out", str(out)], "already holds a results.json")
    assert (out / "results.json").read_bytes() == before


@pytest.mark.slow  # stacked_digits runs by default in test_experiments; this adds the command's files
def test_stacked_writes_results_and_second_layer_pictures(files, tmp_path, capsys):
    out = tmp_path / "stacked"
    capsys.readouterr()
    assert main(["stacked", "--data", files["x"], "--labels-path", files["y"], "--n-hidden", "4,3", "--steps", "10",
                 "--seeds", "0", "--softmax-steps", "20", "--fine-tune-steps", "10", "--test-fraction", "0.5",
                 "--out", str(out), "--json", "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res == json.loads((out / "results.json").read_text())
    assert sorted(os.listdir(out)) == ["results.json", "second_layer.png", "second_layer_fine_tuned.png"]
    assert [r["name"] for r in res["table"]["rows"]] == [
        "raw pixels (16)", "stack, before fine-tuning", "stack, after fine-tuning"]
    assert [c["n_hidden"] for c in res["settings"]["configs"]] == [4, 3]
    assert res["settings"]["fine_tune_steps"] == 10 and res["table"]["seeds"] == [0]
    assert "network 16 -> 4 -> 3 -> 4" in res["table"]["notes"][0]


def test_experiment_errors_write_nothing(files, tmp_path, capsys):
    out = tmp_path / "nothing"
    data = ["--data", files["x"], "--labels-path", files["y"], "--out", str(out)]
    _error(capsys, ["self-taught", *data, "--unlabelled-classes", "0,1", "--labelled-classes", "1,2"], "overlap")
    _error(capsys, ["self-taught", *data, "--labelled-classes", "0,1", "--unlabelled-classes", "7"],
           "unlabelled classes (7,)")
    _error(capsys, ["self-taught", *data, "--n-hidden", "4,3"], "--n-hidden takes 1 value")
    _error(capsys, ["stacked", *data, "--n-hidden", "4,0"], "--n-hidden")
    _error(capsys, ["stacked", *data, "--lam", "-1"], "--lam must")
    _error(capsys, ["stacked", *data, "--steps", "-1"], "--steps must")
    _error(capsys, ["stacked", *data, "--softmax-lam", "-1"], "--softmax-lam")
    _error(capsys, ["stacked", *data, "--rho", "1.5"], "--rho")
    _error(capsys, ["stacked", *data, "--fine-tune-steps", "-1"], "--fine-tune-steps")
    _error(capsys, ["stacked", *data, "--softmax-steps", "0"], "--softmax-steps")
    _error(capsys, ["stacked", "--data", "natural", "--out", str(out)], "without labels")
    _error(capsys, ["stacked", "--data", files["x"], "--out", str(out)], "needs --labels-path")
    (tmp_path / "file").write_text("")
    _error(capsys, ["stacked", *data[:4], "--out", str(tmp_path / "file")], "is a file")
    assert not out.exists()


def test_presets_and_flags():
    from sae_jax.cli import build_parser
    from sae_jax._src.cli.experiments import autoencoder_configs
    from sae_jax.experiments import SELF_TAUGHT_CONFIG, STACKED_CONFIGS, STACKED_MNIST_CONFIGS

    p = build_parser()
    assert autoencoder_configs(p.parse_args(["stacked"]), layers=None) == STACKED_CONFIGS
    assert autoencoder_configs(p.parse_args(["self-taught"]), layers=1) == (SELF_TAUGHT_CONFIG,)
    assert autoencoder_configs(p.parse_args(["stacked", "--preset", "mnist"]), layers=None) == STACKED_MNIST_CONFIGS
    three = autoencoder_configs(p.parse_args(["stacked", "--n-hidden", "50,40,30", "--rho", "0.05"]), layers=None)
    assert [(c.n_hidden, c.rho, c.lam) for c in three] == [(50, 0.05, 3e-4), (40, 0.05, 3e-4), (30, 0.05, 3e-4)]
    args = p.parse_args(["self-taught"])
    assert (args.seeds, args.default_test_fraction, args.softmax_lam, args.softmax_steps) == ("0,1,2", 0.5, 1e-4, 100)
    assert (args.lam, args.steps) == (None, None)  # the autoencoder's: the preset's unless given
    assert (args.test_fraction, args.split) == (None, None)  # not given: the command's default, the preset's split
    args = p.parse_args(["stacked"])
    assert (args.default_test_fraction, args.fine_tune_steps, args.out) == (0.3, 400, None)


def test_digits_defaults_parse_and_load(capsys):
    """The digits source: labels 0-9 carried by the data; a run's feature count must match."""
    pytest.importorskip("sklearn")
    from sae_jax.cli import build_parser
    from sae_jax._src.cli.experiments import load_labelled

    x, y, spec = load_labelled(build_parser().parse_args(["stacked"]))
    assert x.shape == (1797, 64) and sorted(set(y.tolist())) == list(range(10)) and spec.name == "digits"


# --- MNIST: the four IDX files in a directory (4x4 "digits" here), the exercises' splits --------------


def _idx(arr) -> bytes:
    """IDX bytes: two zero bytes, type 0x08 (unsigned byte), the rank, big-endian int32 dims, the data."""
    arr = np.asarray(arr, np.uint8)
    return bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, ">i4").tobytes() + arr.tobytes()


def _write_mnist(d, rng, sizes, *, classes=10, t10k_style=".idx", gz=True):
    """MNIST's four files in ``d``: 4x4 "digits" (a prototype per class plus noise), shuffled, ``sizes``
    = (train, t10k) rows; train-* spelled as MNIST ships them, t10k-* as ``t10k_style`` (gzipped)."""
    import gzip

    proto = rng.uniform(30, 225, (classes, 4, 4))
    parts = {}
    for part, m in zip(("train", "t10k"), sizes):
        y = rng.permutation(np.repeat(np.arange(classes), m // classes))
        x = np.clip(proto[y] + 20 * rng.normal(size=(len(y), 4, 4)), 0, 255).astype(np.uint8)
        parts[part] = (x.reshape(len(y), 16) / 255.0, y)
        style, pack = ("-idx", bytes) if part == "train" else (t10k_style, gzip.compress if gz else bytes)
        ext = ".gz" if part == "t10k" and gz else ""
        (d / f"{part}-images{style}3-ubyte{ext}").write_bytes(pack(_idx(x)))
        (d / f"{part}-labels{style}1-ubyte{ext}").write_bytes(pack(_idx(y)))
    return d, parts


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    """Ten digits: train 120 images (12 of each), t10k 40 (gzipped, spelled t10k-images.idx3-ubyte.gz)."""
    return _write_mnist(tmp_path_factory.mktemp("mnist"), np.random.default_rng(1), (120, 40))


@pytest.fixture(scope="module")
def mnist4(tmp_path_factory):
    """Four digits, train 60 and t10k 60: the shapes the tests above compiled for (60 training rows)."""
    return _write_mnist(tmp_path_factory.mktemp("mnist4"), np.random.default_rng(2), (60, 60), classes=4)


def _record(monkeypatch, name):
    """Wrap ``sae_jax._src.experiments.<name>``: every call's positional arguments (as numpy) are recorded."""
    import sae_jax._src.experiments as ex

    calls, real = [], getattr(ex, name)

    def wrapper(*a, **kw):
        calls.append([np.asarray(v) if hasattr(v, "shape") else v for v in a])
        return real(*a, **kw)

    monkeypatch.setattr(ex, name, wrapper)
    return calls


def test_self_taught_mnist_preset_is_the_exercise_split(mnist, tmp_path, monkeypatch, capsys):
    """--data DIR --preset mnist: the autoencoder sees exactly the 5-9 rows of train-*, in order; the
    classifiers the 0-4 rows, the first half training and the second half testing (stlExercise.m)."""
    d, parts = mnist
    x, y = parts["train"]
    trains, softmaxes = _record(monkeypatch, "train"), _record(monkeypatch, "softmax_accuracy")
    out = tmp_path / "st"
    assert main(["self-taught", "--data", str(d), "--preset", "mnist", *AE, "--dtype", "float64", "--seeds", "0,1",
                 "--softmax-steps", "20", "--out", str(out), "--no-progress", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [len(t[0]) for t in trains] == [60, 60]
    np.testing.assert_array_equal(trains[0][0], x[y >= 5])  # exactly the unlabelled rows, in file order
    lab = np.flatnonzero(y <= 4)
    first, second = lab[:30], lab[30:]
    assert len(softmaxes) == 4  # raw pixels and features, per seed
    for f_tr, y_tr, f_te, y_te in (c[:4] for c in softmaxes[::2]):  # the raw-pixel classifiers: the same rows each seed
        np.testing.assert_array_equal(f_tr, x[first])
        np.testing.assert_array_equal(f_te, x[second])
        np.testing.assert_array_equal(y_tr, y[first])  # digits 0-4 keep their labels 0-4
        np.testing.assert_array_equal(y_te, y[second])
    assert res["settings"]["ordered"] is True and res["settings"]["test_fraction"] == 0.5
    assert res["settings"]["config"]["lam"] == 3e-3 and res["settings"]["config"]["rho"] == 0.1
    assert res["data"]["name"] == str(d / "train-images-idx3-ubyte") and res["data"]["sha256"]
    assert "30 train / 30 test rows of classes [0, 1, 2, 3, 4] (the first and the last rows, in order)" in \
        res["table"]["notes"][1]
    assert sorted(os.listdir(out)) == ["features.png", "results.json"]


def test_stacked_mnist_trains_on_train_and_tests_on_t10k(mnist4, tmp_path, monkeypatch, capsys):
    d, parts = mnist4
    pretrains, softmaxes = _record(monkeypatch, "pretrain"), _record(monkeypatch, "softmax_accuracy")
    out = tmp_path / "stacked"
    assert main(["stacked", "--data", str(d), "--n-hidden", "4,3", "--steps", "10", "--seeds", "0",
                 "--softmax-steps", "20", "--fine-tune-steps", "10", "--out", str(out), "--json", "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out)
    np.testing.assert_array_equal(pretrains[0][0], parts["train"][0])  # every training row, none held out
    (f_tr, y_tr, f_te, y_te, *_), = softmaxes  # the raw-pixel softmax: train-* against t10k-*
    np.testing.assert_array_equal(f_tr, parts["train"][0])
    np.testing.assert_array_equal(f_te, parts["t10k"][0])
    np.testing.assert_array_equal(y_te, parts["t10k"][1])
    assert res["settings"]["test_fraction"] is None
    assert res["settings"]["test_data"]["name"] == str(d / "t10k-images.idx3-ubyte.gz")
    assert res["settings"]["test_data"]["labels"] == str(d / "t10k-labels.idx1-ubyte.gz")
    assert "60 train / 60 test rows (a separate test set)" in res["table"]["notes"][1]
    assert "network 16 -> 4 -> 3 -> 4" in res["table"]["notes"][0]
    assert sorted(os.listdir(out)) == ["results.json", "second_layer.png", "second_layer_fine_tuned.png"]


def test_probe_with_a_separate_test_set(run_dir, mnist4, tmp_path, capsys):
    d, parts = mnist4
    capsys.readouterr()
    assert main(["probe", str(run_dir), "--data", str(d), "--seeds", "0", "--softmax-steps", "20", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert "trained on 60 rows, tested on a separate test set of 60, 4 classes" in res["table"]["title"]
    assert res["settings"]["test_fraction"] is None and res["settings"]["test_data"]["sha256"]
    # the same files named one by one (.npy here): the same accuracies
    for part in ("train", "t10k"):
        np.save(tmp_path / f"x_{part}.npy", parts[part][0])
        np.save(tmp_path / f"y_{part}.npy", parts[part][1])
    assert main(["probe", str(run_dir), "--data", str(tmp_path / "x_train.npy"), "--labels-path",
                 str(tmp_path / "y_train.npy"), "--test-data", str(tmp_path / "x_t10k.npy"), "--test-labels",
                 str(tmp_path / "y_t10k.npy"), "--seeds", "0", "--softmax-steps", "20", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["table"]["rows"] == res["table"]["rows"]


def test_mnist_errors_write_nothing(mnist, files, tmp_path, capsys):
    d, _ = mnist
    out = tmp_path / "nothing"
    mn = ["--data", str(d), "--out", str(out)]
    _error(capsys, ["stacked", *mn, "--labels-path", files["y"]], "--labels-path is for data files", "MNIST directory")
    _error(capsys, ["stacked", *mn, "--test-fraction", "0.3"], "--test-fraction", "separate test set")
    _error(capsys, ["self-taught", *mn, "--test-data", files["x"], "--test-labels", files["y"]],
           "--test-data is for probe and stacked")
    _error(capsys, ["self-taught", *mn, "--test-labels", files["y"]], "--test-labels is for probe and stacked")
    _error(capsys, ["stacked", "--data", files["x"], "--labels-path", files["y"], "--test-data", files["x"],
                    "--out", str(out)], "--test-data needs --test-labels")
    _error(capsys, ["stacked", "--data", files["x"], "--labels-path", files["y"], "--test-labels", files["y"],
                    "--out", str(out)], "--test-labels is given without --test-data")
    np.save(tmp_path / "wide.npy", np.zeros((120, 17)))
    _error(capsys, ["stacked", "--data", files["x"], "--labels-path", files["y"], "--test-data",
                    str(tmp_path / "wide.npy"), "--test-labels", files["y"], "--out", str(out)], "17 features")
    # broken directories: a missing t10k, a labels file whose count disagrees, a corrupt images file
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (broken / f).write_bytes((d / f).read_bytes())
    bad = ["--data", str(broken), "--out", str(out)]
    _error(capsys, ["stacked", *bad], f"MNIST directory {broken} has no t10k-images-idx3-ubyte")
    (broken / "train-labels-idx1-ubyte").write_bytes(_idx(np.zeros(119)))
    _error(capsys, ["self-taught", *bad], "holds 119 labels", "120 images")
    (broken / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04junk")
    _error(capsys, ["self-taught", *bad], "is not an IDX file")
    assert not out.exists()
