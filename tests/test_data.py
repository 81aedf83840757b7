"""Tests for sae_jax._src.data: every data source, the preprocessing, and every error path.

The natural-image pipeline is checked property by property (shape, range, per-patch mean
removed before the rescale, determinism) and the whitening filter against an independent
transcription of Olshausen's ``make_your_own_images.m``. Small IDX / .npy / .npz / .mat
files are written by the tests themselves.
"""

import gzip
import json
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

from sae_jax._src import data
from sae_jax.data import DataSpec
from sae_jax import InputError


# ------------------------------------------------------------------ natural images


@pytest.fixture(scope="module")
def natural():
    return data.natural_image_patches(2_000, 8, seed=0)


def test_natural_shape_dtype_range(natural):
    assert natural.shape == (2_000, 64)
    assert natural.dtype == np.float64
    assert natural.min() >= 0.1 and natural.max() <= 0.9
    # ±3σ clipping is active on whitened (heavy-tailed) data: both bounds are reached.
    assert np.isclose(natural.min(), 0.1) and np.isclose(natural.max(), 0.9)


def test_natural_patch_mean_removed_before_rescale(natural):
    """Each unclipped patch had mean 0 before ``(x/3σ + 1)·0.4 + 0.1``, so its mean is 0.5."""
    clipped = np.isclose(natural, 0.1, atol=1e-12, rtol=0) | np.isclose(natural, 0.9, atol=1e-12, rtol=0)
    free = ~clipped.any(axis=1)
    assert free.sum() > 1_000
    np.testing.assert_allclose(natural[free].mean(axis=1), 0.5, atol=1e-12, rtol=0)


def test_natural_deterministic_per_seed(natural):
    again = data.natural_image_patches(2_000, 8, seed=0)
    np.testing.assert_array_equal(natural, again)
    other = data.natural_image_patches(2_000, 8, seed=1)
    assert not np.allclose(natural, other)


def test_natural_whitened_images_are_cached():
    data.natural_image_patches(10, 8, seed=0)
    hits = data.whitened_natural_images.cache_info().hits
    data.natural_image_patches(10, 8, seed=3)
    assert data.whitened_natural_images.cache_info().hits == hits + 1
    img = data.whitened_natural_images(0.4, 2)[0]
    with pytest.raises(ValueError):
        img[0, 0] = 1.0  # the cache is read-only, so no caller can corrupt it


@pytest.mark.parametrize("patch_size", [1, 4, 12])
def test_natural_patch_sizes(patch_size):
    x = data.natural_image_patches(50, patch_size, seed=0)
    assert x.shape == (50, patch_size**2)
    assert x.min() >= 0.1 and x.max() <= 0.9


def test_natural_images_bundled_and_prepared():
    imgs = data.natural_images(downsample=2)
    assert len(imgs) == len(data.NATURAL_IMAGES) == 10
    for img in imgs:
        assert img.ndim == 2 and img.shape[0] == img.shape[1]  # centre-cropped square
        assert 0.0 <= img.min() and img.max() <= 1.0  # grayscale in [0, 1]
    assert imgs[0].shape == (256, 256)  # camera: 512 px, 2× block average


def test_natural_user_images():
    rng = np.random.default_rng(0)
    imgs = [rng.random((64, 80)), rng.random((48, 48))]
    x = data.natural_image_patches(100, 6, seed=0, images=imgs, downsample=1)
    assert x.shape == (100, 36) and x.min() >= 0.1 and x.max() <= 0.9
    np.testing.assert_array_equal(x, data.natural_image_patches(100, 6, seed=0, images=imgs, downsample=1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_patches=0), "n_patches must be an integer >= 1"),
        (dict(n_patches=2.5), "n_patches must be an integer >= 1"),
        (dict(patch_size=0), "patch_size must be an integer >= 1"),
        (dict(seed=-1), "seed must be an integer >= 0"),
        (dict(downsample=0), "downsample must be an integer >= 1"),
        (dict(f0_factor=0.0), "f0_factor must be a finite number > 0"),
        (dict(patch_size=200), "too small for patch_size=200"),
        (dict(images=[np.zeros((4, 4, 4, 4))]), r"images\[0\] must be a 2-D grayscale image"),
        (dict(images=[np.full((32, 32), np.nan)]), r"images\[0\] must be finite"),
        (dict(images=[]), "at least one image"),
    ],
)
def test_natural_bad_arguments(kwargs, match):
    args = dict(n_patches=10, patch_size=8, seed=0)
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        data.natural_image_patches(args.pop("n_patches"), args.pop("patch_size"), **args)


# ------------------------------------------------------------------ whitening


def _olshausen_whiten(img, f0_factor=0.4):
    """Transcription of make_your_own_images.m for one N×N image (MATLAB → numpy)."""
    N = img.shape[0]
    fx, fy = np.meshgrid(np.arange(-N // 2, N // 2), np.arange(-N // 2, N // 2))
    rho = np.sqrt(fx * fx + fy * fy)
    f_0 = f0_factor * N
    filt = rho * np.exp(-((rho / f_0) ** 4))
    return np.real(np.fft.ifft2(np.fft.fft2(img) * np.fft.fftshift(filt)))


def _pink_noise(n, rng):
    """An image with a 1/f amplitude spectrum, like a natural image's."""
    f = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2)
    f[0, 0] = 1.0
    spec = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) / f
    return np.real(np.fft.ifft2(spec))


def test_whiten_matches_olshausen_code():
    img = _pink_noise(64, np.random.default_rng(0)) + 3.0
    ours = data.whiten_images([img], f0_factor=0.4)[0]
    ref = _olshausen_whiten(img, 0.4)
    ref = ref * np.sqrt(0.1 / ref.var())  # IMAGES = sqrt(0.1)*IMAGES/sqrt(mean(var(IMAGES)))
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def _radial_amplitude(img, bands):
    n = img.shape[0]
    F = np.abs(np.fft.fft2(img))
    f = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2)
    return [F[(f >= lo) & (f < hi)].mean() for lo, hi in bands]


def test_whiten_flattens_the_spectrum_and_removes_dc():
    img = _pink_noise(128, np.random.default_rng(1)) + 5.0
    white = data.whiten_images([img])[0]
    bands = [(0.02, 0.04), (0.08, 0.12), (0.16, 0.24)]
    raw_amp = _radial_amplitude(img, bands)
    white_amp = _radial_amplitude(white, bands)
    # 1/f in: amplitude falls ~8× from the lowest to the highest band; whitened: ~flat.
    assert raw_amp[0] / raw_amp[-1] > 4
    assert 0.5 < white_amp[0] / white_amp[-1] < 2
    assert abs(np.fft.fft2(white)[0, 0]) < 1e-9 * np.abs(np.fft.fft2(white)).max()  # DC is 0
    assert abs(white.mean()) < 1e-12


def test_whiten_scales_jointly_and_keeps_shapes():
    rng = np.random.default_rng(2)
    imgs = [rng.random((40, 56)), 2 * rng.random((32, 32))]
    out = data.whiten_images(imgs)
    assert [o.shape for o in out] == [(40, 56), (32, 32)]
    assert np.isclose(np.mean([o.var() for o in out]), 0.1)
    assert out[1].var() > out[0].var()  # relative contrast between images survives
    stack = data.whiten_images(np.stack(imgs[:1] * 3, axis=2))  # (H, W, K) MATLAB layout
    assert len(stack) == 3 and stack[0].shape == (40, 56)


def test_whiten_low_pass_rolls_off_high_frequencies():
    img = np.random.default_rng(3).normal(size=(64, 64))  # white noise in
    lo = _radial_amplitude(data.whiten_images([img], f0_factor=0.1)[0], [(0.05, 0.08), (0.3, 0.5)])
    assert lo[1] < 0.1 * lo[0]  # beyond f0 = 0.1 the exp(-(f/f0)^4) factor kills the signal


# ------------------------------------------------------------------ sampling, normalisation


def test_sample_patches_positions_border_and_layout():
    H, W = 30, 40
    img = np.arange(H)[:, None] * 1000.0 + np.arange(W)[None, :]  # value encodes (row, col)
    x = data.sample_patches([img], 500, 5, np.random.default_rng(0), border=4)
    assert x.shape == (500, 25)
    r, c = x[:, 0] // 1000, x[:, 0] % 1000
    assert r.min() >= 4 and r.max() <= H - 5 - 4
    assert c.min() >= 4 and c.max() <= W - 5 - 4
    assert r.min() == 4 and r.max() == H - 9  # every admissible position can be drawn
    patches = x.reshape(500, 5, 5)
    np.testing.assert_array_equal(patches[:, 0, 1], x[:, 0] + 1)  # row-major: next column
    np.testing.assert_array_equal(patches[:, 1, 0], x[:, 0] + 1000)  # next row


def test_sample_patches_stack_uses_every_image():
    stack = np.stack([np.full((20, 20), k, dtype=np.float64) for k in range(3)], axis=2)
    x = data.sample_patches(stack, 300, 4, np.random.default_rng(0))
    assert set(np.unique(x)) == {0.0, 1.0, 2.0}


def _ufldl_normalize(patches_cols):
    """Transcription of UFLDL's normalizeData (patches as columns)."""
    p = patches_cols - patches_cols.mean(axis=0, keepdims=True)
    pstd = 3 * p.std(ddof=1)
    p = np.maximum(np.minimum(p, pstd), -pstd) / pstd
    return (p + 1) * 0.4 + 0.1


def test_normalize_patches_matches_ufldl():
    x = np.random.default_rng(0).standard_t(3, size=(200, 16))
    np.testing.assert_allclose(data.normalize_patches(x), _ufldl_normalize(x.T).T, atol=1e-15)


def test_normalize_patches_edge_cases():
    np.testing.assert_array_equal(data.normalize_patches(np.ones((3, 4))), 0.5)
    with pytest.raises(InputError, match="non-empty 2-D"):
        data.normalize_patches(np.ones(5))


# ------------------------------------------------------------------ digits


def test_digits():
    x = data.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float64
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(data.load_dataset("digits"), x)


def test_digits_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(InputError, match="pip install scikit-learn"):
        data.load_digits()


# ------------------------------------------------------------------ .npy / .npz


def test_npy_and_npz(tmp_path):
    x = np.random.default_rng(0).random((7, 5)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "one.npz", x=x)
    np.savez(tmp_path / "two.npz", x=x, y=2 * x)
    for path, kw in [("a.npy", {}), ("one.npz", {}), ("two.npz", {"key": "x"})]:
        got = data.load_dataset(tmp_path / path, **kw)
        assert got.dtype == np.float64 and got.shape == (7, 5)
        np.testing.assert_array_equal(got, x.astype(np.float64))
    np.testing.assert_array_equal(data.load_array(tmp_path / "two.npz", key="y"), 2 * x.astype(np.float64))


def test_npz_key_errors(tmp_path):
    np.savez(tmp_path / "two.npz", x=np.zeros((2, 2)), y=np.zeros((2, 2)))
    with pytest.raises(InputError, match=r"holds 2 arrays \['x', 'y'\]; name one with key= \(--npz-key\)"):
        data.load_dataset(tmp_path / "two.npz")
    with pytest.raises(InputError, match="has no array 'z'"):
        data.load_dataset(tmp_path / "two.npz", key="z")


@pytest.mark.parametrize(
    "array, output, match",
    [
        (np.zeros(5), "sigmoid", r"must be 2-D \(m, n_visible\).*got shape \(5,\)"),
        (np.zeros((2, 3, 4)), "sigmoid", r"got shape \(2, 3, 4\).*flatten"),
        (np.zeros((0, 4)), "sigmoid", "at least one sample"),
        (np.zeros((4, 0)), "sigmoid", "at least one sample and one feature"),
        (np.array([[0.5, np.nan]]), "sigmoid", "must be finite"),
        (np.array([[0.5, np.inf]]), "linear", "must be finite"),
        (np.array([[0.5, 1.5]]), "sigmoid", r"must lie in \[0, 1\] for output='sigmoid'"),
        (np.array([[-0.1, 0.5]]), "sigmoid", r"must lie in \[0, 1\]"),
        (np.array([["a", "b"]]), "sigmoid", "must hold real numbers"),
    ],
)
def test_bad_arrays(tmp_path, array, output, match):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(InputError, match=match) as e:
        data.load_dataset(path, output=output)
    if "numbers" not in match:
        assert str(path) in str(e.value)  # the message names the file


def test_linear_output_accepts_unbounded(tmp_path):
    np.save(tmp_path / "w.npy", np.array([[-3.0, 7.0]]))
    np.testing.assert_array_equal(data.load_dataset(tmp_path / "w.npy", output="linear"), [[-3.0, 7.0]])


def test_corrupt_npz_and_npy(tmp_path):
    np.savez(tmp_path / "ok.npz", x=np.zeros((3, 3)))
    raw = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="cannot read .*cut.npz"):
        data.load_dataset(tmp_path / "cut.npz")
    np.save(tmp_path / "ok.npy", np.zeros((30, 30)))
    raw = (tmp_path / "ok.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="cannot read .*cut.npy"):
        data.load_dataset(tmp_path / "cut.npy")


def test_pickled_npy_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="without pickle"):
        data.load_dataset(tmp_path / "obj.npy")


def test_missing_file_and_unknown_source(tmp_path):
    missing = tmp_path / "nope.npy"
    with pytest.raises(InputError, match=f"^data file not found: {missing}$"):
        data.load_dataset(missing)
    with pytest.raises(InputError, match="data file not found: mnist.*built-in datasets"):
        data.load_dataset("mnist")
    with pytest.raises(InputError, match="data file not found"):
        data.load_array(missing)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="cannot tell the format"):
        data.load_dataset(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="output must be one of"):
        data.load_dataset("digits", output="tanh")
    with pytest.raises(InputError, match="data must be"):
        data.load_dataset(3)


# ------------------------------------------------------------------ MNIST IDX


def _idx_bytes(arr, code=0x08, dtype=">u1"):
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
    return head + np.asarray(arr, dtype=dtype).tobytes()


@pytest.fixture
def idx_images():
    return np.random.default_rng(0).integers(0, 256, size=(5, 3, 4), dtype=np.uint8)


@pytest.mark.parametrize("name, compress", [("t10k-images-idx3-ubyte", False), ("imgs.idx3-ubyte.gz", True), ("plainname", False)])
def test_mnist_idx(tmp_path, idx_images, name, compress):
    raw = _idx_bytes(idx_images)
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw) if compress else raw)
    expected = idx_images.reshape(5, 12).astype(np.float64) / 255.0
    np.testing.assert_array_equal(data.load_mnist_idx(path), expected)
    np.testing.assert_array_equal(data.load_dataset(path), expected)  # found by magic bytes


def test_idx_float_unscaled(tmp_path):
    arr = np.linspace(0, 1, 24).reshape(2, 3, 4)
    (tmp_path / "f.idx").write_bytes(_idx_bytes(arr, 0x0D, ">f4"))
    np.testing.assert_allclose(data.load_mnist_idx(tmp_path / "f.idx"), arr.reshape(2, 12), atol=1e-7)


def test_idx_errors(tmp_path, idx_images):
    (tmp_path / "labels-idx1-ubyte").write_bytes(_idx_bytes(np.arange(5)))
    with pytest.raises(InputError, match="labels file"):
        data.load_dataset(tmp_path / "labels-idx1-ubyte")
    (tmp_path / "short-idx3-ubyte").write_bytes(_idx_bytes(idx_images)[:-3])
    with pytest.raises(InputError, match="holds 57 data bytes.*needs 60"):
        data.load_dataset(tmp_path / "short-idx3-ubyte")
    (tmp_path / "junk-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(InputError, match="not an IDX file"):
        data.load_mnist_idx(tmp_path / "junk-idx3-ubyte")
    # a header that says 0 samples (or 0 features) used to end in numpy's reshape ValueError
    for shape in [(0, 3, 4), (5, 0, 4)]:
        (tmp_path / "empty-idx3-ubyte").write_bytes(_idx_bytes(np.zeros(shape, np.uint8)))
        with pytest.raises(InputError, match=rf"has dimensions {re.escape(str(shape))}; expected at least one sample"):
            data.load_dataset(tmp_path / "empty-idx3-ubyte")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(InputError, match="cannot read IDX file"):
        data.load_dataset(tmp_path / "bad.gz")


# ------------------------------------------------------------------ IMAGES.mat


@pytest.fixture
def images_mat(tmp_path):
    import scipy.io

    imgs = np.random.default_rng(0).normal(size=(32, 32, 3))
    path = tmp_path / "IMAGES.mat"
    scipy.io.savemat(path, {"IMAGES": imgs})
    return path, imgs


def test_images_mat(images_mat):
    path, imgs = images_mat
    np.testing.assert_array_equal(data.load_images_mat(path), imgs)
    x = data.patches_from_images_mat(path, 300, 8, seed=0)
    assert x.shape == (300, 64) and x.min() >= 0.1 and x.max() <= 0.9
    np.testing.assert_array_equal(x, data.load_dataset(path, n_patches=300, patch_size=8, seed=0))
    assert not np.array_equal(x, data.patches_from_images_mat(path, 300, 8, seed=1))


def test_images_mat_variables(tmp_path):
    import scipy.io

    scipy.io.savemat(tmp_path / "one.mat", {"IMAGES_RAW": np.ones((20, 20))})
    assert data.load_images_mat(tmp_path / "one.mat").shape == (20, 20, 1)
    scipy.io.savemat(tmp_path / "two.mat", {"a": np.ones((20, 20)), "b": np.ones((20, 20))})
    with pytest.raises(InputError, match="no variable 'IMAGES'"):
        data.load_dataset(tmp_path / "two.mat")
    assert data.load_images_mat(tmp_path / "two.mat", key="b").shape == (20, 20, 1)
    scipy.io.savemat(tmp_path / "vec.mat", {"IMAGES": np.ones((2, 2, 2, 2))})
    with pytest.raises(InputError, match=r"must be images \(H, W, K\)"):
        data.load_dataset(tmp_path / "vec.mat")
    (tmp_path / "broken.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage")
    with pytest.raises(InputError, match="cannot read .* as a MATLAB .mat file"):
        data.load_dataset(tmp_path / "broken.mat")


# ------------------------------------------------------------------ DataSpec


def test_data_spec_roundtrip_builtin():
    spec = data.data_spec("natural", n_patches=300, patch_size=6, seed=4)
    assert spec == DataSpec("natural", 300, 6, 4, None, None)
    back = DataSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec
    np.testing.assert_array_equal(
        data.load_from_spec(back), data.load_dataset("natural", n_patches=300, patch_size=6, seed=4)
    )
    np.testing.assert_array_equal(data.load_from_spec(spec.to_dict()), data.load_from_spec(spec))


def test_data_spec_file_hash(tmp_path, monkeypatch):
    x = np.random.default_rng(0).random((4, 3))
    np.save(tmp_path / "x.npy", x)
    monkeypatch.chdir(tmp_path)
    spec = data.data_spec("x.npy")
    assert spec.name == os.path.join(str(tmp_path), "x.npy") and len(spec.sha256) == 64
    np.testing.assert_array_equal(data.load_from_spec(spec), x)
    np.save(tmp_path / "x.npy", x * 0.5)
    with pytest.raises(InputError, match="changed since the checkpoint"):
        data.load_from_spec(spec)
    os.remove(tmp_path / "x.npy")
    with pytest.raises(InputError, match="data file not found"):
        data.load_from_spec(spec)


@pytest.mark.parametrize(
    "d", [{"n_patches": 3}, {"name": "natural", "colour": 1}, {"name": 3}, {"name": "natural", "seed": -2}, [1]]
)
def test_data_spec_from_dict_rejects_bad(d):
    with pytest.raises(InputError, match="data spec"):
        DataSpec.from_dict(d)


# ------------------------------------------------------------------ import cost


def test_import_sae_jax_stays_light():
    code = (
        "import sys, sae_jax, sae_jax._src.data, sae_jax._src.display; "
        "print(sorted(m for m in ('skimage', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ labels


def _idx_labels_bytes(y, magic=0x00000801, count=None):
    return struct.pack(">ii", magic, len(y) if count is None else count) + np.asarray(y, np.uint8).tobytes()


def test_digits_labels():
    x, y = data.load_dataset("digits", labels=True)
    np.testing.assert_array_equal(x, data.load_digits())
    assert y.shape == (1797,) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(10))
    np.testing.assert_array_equal(y, data.load_digit_labels())
    np.testing.assert_array_equal(y[:10], np.arange(10))  # scikit-learn's order: 0, 1, ..., 9, 0, ...
    x32, y32 = data.load_dataset("digits", labels=True, dtype="float32")
    assert x32.dtype == np.float32 and y32.dtype == np.int64


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_with_labels(tmp_path, idx_images, compress):
    y = np.array([7, 0, 255, 3, 9], dtype=np.uint8)
    pack = gzip.compress if compress else (lambda b: b)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(pack(_idx_bytes(idx_images)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(pack(_idx_labels_bytes(y)))
    got = data.load_mnist_idx_labels(tmp_path / "train-labels-idx1-ubyte")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [7, 0, 255, 3, 9])
    x, yy = data.load_dataset(
        tmp_path / "train-images-idx3-ubyte", labels=True, labels_path=tmp_path / "train-labels-idx1-ubyte"
    )
    np.testing.assert_array_equal(x, data.load_mnist_idx(tmp_path / "train-images-idx3-ubyte"))
    np.testing.assert_array_equal(yy, got)


def _write_mnist(d, part, images, labels, *, name_style="-", gz=False):
    """MNIST's files of ``part`` ("train" / "t10k") in ``d``, spelled ``-idx`` or ``.idx``, optionally gzipped."""
    pack = gzip.compress if gz else (lambda b: b)
    for kind, raw in (("images-idx3", _idx_bytes(images)), ("labels-idx1", _idx_labels_bytes(labels))):
        name = f"{part}-{kind}-ubyte".replace("-idx", f"{name_style}idx") + (".gz" if gz else "")
        (d / name).write_bytes(pack(raw))


@pytest.mark.parametrize("style, gz", [("-", False), (".", True), ("-", True)])
def test_mnist_directory(tmp_path, idx_images, style, gz):
    """find_mnist finds the four files under their usual spellings; load_mnist reads one part as (x, y)."""
    y = np.array([3, 1, 4, 1, 5])
    _write_mnist(tmp_path, "train", idx_images, y, name_style=style, gz=gz)
    _write_mnist(tmp_path, "t10k", idx_images[:2], y[:2], name_style=style, gz=not gz)
    found = data.find_mnist(tmp_path)
    suffix = ".gz" if gz else ""
    assert os.path.basename(found["train"][0]) == f"train-images{style}idx3-ubyte{suffix}"
    assert os.path.basename(found["test"][1]).startswith(f"t10k-labels{style}idx1-ubyte")
    x, yy = data.load_mnist(tmp_path, "train")
    np.testing.assert_array_equal(x, idx_images.reshape(5, 12) / 255.0)
    np.testing.assert_array_equal(yy, y)
    xt, yt = data.load_mnist(tmp_path, "test")
    assert xt.shape == (2, 12) and yt.tolist() == [3, 1]


def test_mnist_directory_errors(tmp_path, idx_images):
    with pytest.raises(InputError, match="MNIST directory not found"):
        data.find_mnist(tmp_path / "nowhere")
    _write_mnist(tmp_path, "train", idx_images, np.arange(5))
    assert list(data.find_mnist(tmp_path, ("train",))) == ["train"]  # t10k not needed for "train"
    with pytest.raises(InputError, match="has no t10k-images-idx3-ubyte .looked for t10k-images-idx3-ubyte, "
                                         "t10k-images.idx3-ubyte, t10k-images-idx3-ubyte.gz"):
        data.find_mnist(tmp_path)
    with pytest.raises(InputError, match="MNIST parts are"):
        data.find_mnist(tmp_path, ("validation",))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_labels_bytes(np.arange(4)))
    with pytest.raises(InputError, match="holds 4 labels but .* has 5 images"):
        data.load_mnist(tmp_path, "train")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(idx_images))  # an images file as labels
    with pytest.raises(InputError, match="is not an IDX labels file"):
        data.load_mnist(tmp_path, "train")


def test_npy_data_with_npy_labels(tmp_path):
    np.save(tmp_path / "x.npy", np.full((3, 2), 0.5))
    np.save(tmp_path / "y.npy", np.array([2, 0, 1], dtype=np.int32))
    x, y = data.load_dataset(tmp_path / "x.npy", labels=True, labels_path=tmp_path / "y.npy")
    assert x.shape == (3, 2) and y.dtype == np.int64
    np.testing.assert_array_equal(y, [2, 0, 1])
    for bad, match in [
        (np.array([0.0, 1.0, 2.0]), "must be integer class indices, got dtype float64"),
        (np.array([[0, 1, 2]]), r"must be a non-empty 1-D array of class indices, got shape \(1, 3\)"),
        (np.array([0, -1, 2]), "must be class indices >= 0, got minimum -1"),
    ]:
        np.save(tmp_path / "bad.npy", bad)
        with pytest.raises(InputError, match=match):
            data.load_dataset(tmp_path / "x.npy", labels=True, labels_path=tmp_path / "bad.npy")


def test_labels_errors(tmp_path, idx_images, images_mat):
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(_idx_bytes(idx_images))
    lab = tmp_path / "train-labels-idx1-ubyte"
    # wrong magic: an images file (2051) given as labels, and a 2-D "labels" file
    with pytest.raises(InputError, match=r"not an IDX labels file: magic number 2051, expected 2049.*images file"):
        data.load_mnist_idx_labels(images)
    lab.write_bytes(_idx_labels_bytes([1, 2], magic=0x00000802))
    with pytest.raises(InputError, match="not an IDX labels file: magic number 2050, expected 2049"):
        data.load_dataset(images, labels=True, labels_path=lab)
    # header count disagrees with the bytes, and label count disagrees with the images
    lab.write_bytes(_idx_labels_bytes([1, 2, 3], count=4))
    with pytest.raises(InputError, match="holds 3 label bytes, but its header says 4"):
        data.load_mnist_idx_labels(lab)
    lab.write_bytes(_idx_labels_bytes([1, 2, 3]))
    with pytest.raises(InputError, match=r"holds 3 labels but data in .* has 5 samples; expected one label per sample"):
        data.load_dataset(images, labels=True, labels_path=lab)
    # sources without labels, and labels_path misuse
    with pytest.raises(InputError, match="labels=True: the 'natural' dataset has no labels"):
        data.load_dataset("natural", labels=True)
    with pytest.raises(InputError, match="labels=True: patches sampled from .*IMAGES.mat has no labels"):
        data.load_dataset(images_mat[0], labels=True, labels_path=lab)
    with pytest.raises(InputError, match="needs labels_path= naming its labels file"):
        data.load_dataset(images, labels=True)
    with pytest.raises(InputError, match="labels_path is given but labels=False"):
        data.load_dataset(images, labels_path=lab)
    with pytest.raises(InputError, match="'digits' carries its own labels"):
        data.load_dataset("digits", labels=True, labels_path=lab)
    with pytest.raises(InputError, match="data file not found: .*nope"):
        data.load_dataset(images, labels=True, labels_path=tmp_path / "nope")
    with pytest.raises(InputError, match="labels must be True or False"):
        data.load_dataset("digits", labels=1)


def test_load_from_spec_with_labels():
    x, y = data.load_from_spec(data.data_spec("digits"), labels=True)
    np.testing.assert_array_equal(y, data.load_digit_labels())
    np.testing.assert_array_equal(x, data.load_digits())


# --- issue 21: sizes bounded before allocating; booleans and a stray key= refused -----------------


def test_a_bool_npy_is_refused_as_train_refuses_a_bool_array(tmp_path):
    np.save(tmp_path / "b.npy", np.ones((3, 4), bool))
    with pytest.raises(InputError) as e:
        data.load_dataset(tmp_path / "b.npy")
    assert str(e.value) == (f"data in {tmp_path / 'b.npy'} must hold real numbers, got dtype bool; "
                            "save it as numbers, e.g. a.astype('float32')")


def test_a_key_for_anything_but_an_npz_is_refused(tmp_path):
    np.save(tmp_path / "f.npy", np.full((3, 4), 0.5))
    with pytest.raises(InputError) as e:
        data.load_dataset(tmp_path / "f.npy", key="x")
    assert str(e.value) == (f"key='x' (--npz-key) names an array inside a .npz, but {tmp_path / 'f.npy'} is a .npy "
                            "holding one array; leave key out")
    with pytest.raises(InputError) as e:
        data.load_dataset("digits", key="x")
    assert str(e.value) == ("key='x' (--npz-key) names an array inside a .npz file, but the data is the built-in "
                            "'digits' dataset; leave key out")


@pytest.mark.parametrize("load", [
    lambda: data.load_dataset("natural", n_patches=10**12),
    lambda: data.load_from_spec({"name": "natural", "n_patches": 10**12, "patch_size": 8, "seed": 0}),
    lambda: data.sample_patches([np.zeros((20, 20))], 10**12, 8, np.random.default_rng(0)),
])
def test_a_patch_count_that_cannot_fit_is_refused_before_allocating(load):
    # 10^12 8x8 patches: a MemoryError (or the OS killer) part-way through, before
    with pytest.raises(InputError) as e:
        load()
    msg = str(e.value)
    assert "\n" not in msg
    assert re.match(r"n_patches=1000000000000 patches of patch_size=8 \(8x8 float64, sampled and normalised\) needs "
                    r"1560000000000000 bytes \(1\.56 PB\), more than the \d+ bytes \(.*\) available in memory; "
                    r"ask for fewer or smaller patches$", msg), msg


def test_the_patch_bound_is_the_measured_peak(monkeypatch):
    # tracemalloc measured 3 float64 copies of the patches at the peak of sampling + normalising
    import tracemalloc

    from sae_jax._src.data import images

    images.whitened_natural_images(0.4, 2)  # cached: not part of the peak
    tracemalloc.start()
    images.natural_image_patches(20000, 4)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    bound = 20000 * (16 * images._BYTES_PER_ENTRY + images._BYTES_PER_PATCH)
    assert 0.8 * bound <= peak <= 1.05 * bound, (peak, bound)
    monkeypatch.setattr(images, "check_fits_in_memory", lambda what, n, **k: (_ for _ in ()).throw(InputError(str(n))))
    with pytest.raises(InputError, match=f"^{bound}$"):
        images.natural_image_patches(20000, 4)


def test_cli_patch_flags_that_cannot_fit_exit_2_before_anything_is_written(tmp_path, capsys):
    from sae_jax.cli import main

    out = tmp_path / "run"
    rc = main(["train", "--n-patches", str(10**11), "--patch-size", "2", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "n_patches=100000000000 patches of patch_size=2" in err[0] and "bytes" in err[0], err[0]
    assert not out.exists()
