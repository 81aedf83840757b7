r"""Training data, all offline: natural-image patches, digits, and the user's own files.

Every loader returns a float64 NumPy array of shape ``(m, n_visible)``, samples as rows.

Sources
-------
``"natural"`` (the default, the UFLDL exercise)
    8×8 patches of natural photographs bundled inside scikit-image (no network),
    prepared the way Olshausen's ``IMAGES.mat`` was (see :func:`natural_image_patches`).
``"digits"``
    scikit-learn's bundled 8×8 handwritten digits (1797 × 64), scaled to [0, 1].
a path
    ``.npy`` / ``.npz`` (rows = samples), MNIST-style IDX files (optionally ``.gz``),
    or a MATLAB ``IMAGES.mat`` from the original exercise (patches are sampled from it).

:func:`load_dataset` dispatches on the name, the file's magic bytes or its extension,
and validates the result (finite, 2-D, non-empty, inside [0, 1] for a sigmoid output).
With ``labels=True`` it returns ``(x, y)``, ``y`` int64 class indices: ``"digits"``
carries its own, a data file takes them from ``labels_path`` (MNIST's
``train-labels-idx1-ubyte``, or a ``.npy``); patch sources have none.
:class:`DataSpec` records what was loaded so that a checkpoint can rebuild exactly the
same array on resume (:func:`load_from_spec`).

scikit-image, scipy and scikit-learn are imported lazily, inside the functions that
need them, so ``import sae_jax`` stays fast.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
from typing import NamedTuple, Sequence

import numpy as np

from .validate import InputError, check_data_values, check_output

__all__ = [
    "NATURAL_IMAGES",
    "DataSpec",
    "data_spec",
    "load_from_spec",
    "load_dataset",
    "natural_images",
    "natural_image_patches",
    "whiten_images",
    "sample_patches",
    "normalize_patches",
    "load_digits",
    "load_digit_labels",
    "load_array",
    "load_mnist_idx",
    "load_mnist_idx_labels",
    "load_labels",
    "load_images_mat",
    "patches_from_images_mat",
]

#: The scikit-image photographs used for ``"natural"`` (all ship inside the scikit-image
#: wheel; none needs a download). Scenes and textures with natural image statistics;
#: synthetic images, text, astronomy and microscopy are left out.
NATURAL_IMAGES: tuple[str, ...] = (
    "camera",
    "grass",
    "gravel",
    "brick",
    "moon",
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "coins",
)

#: Pixels left out at every image border when sampling: the FFT whitening treats the
#: image as periodic, so the outermost rows/columns carry wrap-around artefacts
#: (Olshausen's ``sparsenet.m`` uses the same ``BUFF = 4``).
BORDER = 4


# --------------------------------------------------------------------------------------
# Natural images
# --------------------------------------------------------------------------------------


def _as_gray_float(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype == np.uint8:
        img = img.astype(np.float64) / 255.0
    else:
        img = img.astype(np.float64)
    if img.ndim == 3:
        if img.shape[2] == 4:  # RGBA: drop alpha
            img = img[:, :, :3]
        img = img @ np.array([0.2125, 0.7154, 0.0721])  # skimage.color.rgb2gray weights
    return img


def _centre_square(img: np.ndarray) -> np.ndarray:
    h, w = img.shape
    s = min(h, w)
    r, c = (h - s) // 2, (w - s) // 2
    return img[r : r + s, c : c + s]


def _block_average(img: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return img
    h, w = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
    return img[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def natural_images(*, downsample: int = 2) -> list[np.ndarray]:
    """The bundled photographs (:data:`NATURAL_IMAGES`), unwhitened.

    Each is converted to grayscale in [0, 1], centre-cropped to a square and
    block-averaged ``downsample × downsample`` (``1`` keeps full resolution).

    Returns:
      a list of 2-D float64 arrays (sizes differ: 512 px photos give 256 px at ``downsample=2``).
    """
    try:
        import skimage.data
    except ImportError as e:  # pragma: no cover - scikit-image is a runtime dependency
        raise InputError(
            "the 'natural' dataset needs scikit-image: python3 -m pip install scikit-image"
        ) from e
    _check_int("downsample", downsample, minimum=1)
    return [
        _block_average(_centre_square(_as_gray_float(getattr(skimage.data, name)())), downsample)
        for name in NATURAL_IMAGES
    ]


def _whitening_filter(shape: tuple[int, int], f0_factor: float) -> np.ndarray:
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    f = np.sqrt(fx * fx + fy * fy)  # cycles per pixel, Nyquist = 0.5
    return f * np.exp(-((f / f0_factor) ** 4))


def whiten_images(images, f0_factor: float = 0.4) -> list[np.ndarray]:
    r"""Olshausen's 1/f whitening with a low-pass roll-off, applied to each image.

    .. math::
        \hat I_w(f) = \hat I(f)\, R(f), \qquad R(f) = f\, e^{-(f/f_0)^4},
        \qquad f_0 = \texttt{f0\_factor}\ \text{cycles/pixel}

    Natural images have an amplitude spectrum falling roughly as :math:`1/f`; the ramp
    :math:`f` flattens it (whitening, and the DC component becomes exactly 0), the
    :math:`e^{-(f/f_0)^4}` factor suppresses the highest frequencies where noise and
    aliasing live. Olshausen's ``make_your_own_images.m`` writes
    ``f_0 = 0.4*N`` with ``f`` in cycles per picture of an ``N × N`` image, i.e.
    0.4 cycles per pixel (Nyquist is 0.5): that is ``f0_factor = 0.4``. Writing the
    filter in cycles per pixel (``numpy.fft.fftfreq``) makes it identical for square
    images and well defined for any shape.

    After filtering, all images are scaled together so that the mean per-image variance is
    0.1 (``IMAGES = sqrt(0.1)*IMAGES/sqrt(mean(var(IMAGES)))`` in Olshausen's code).

    Args:
      images: a 2-D image, or a sequence of 2-D images (sizes may differ).
      f0_factor: roll-off frequency in cycles per pixel, ``> 0``.

    Returns:
      a list of float64 arrays, each the shape of its input.
    """
    if not (isinstance(f0_factor, (int, float, np.floating)) and np.isfinite(f0_factor) and f0_factor > 0):
        raise InputError(f"f0_factor must be a finite number > 0 (cycles per pixel), got {f0_factor!r}")
    images = _image_list(images, "images")
    out = []
    for img in images:
        filt = _whitening_filter(img.shape, float(f0_factor))
        out.append(np.real(np.fft.ifft2(np.fft.fft2(img) * filt)))
    mean_var = float(np.mean([w.var() for w in out]))
    if mean_var > 0:
        scale = np.sqrt(0.1 / mean_var)
        out = [w * scale for w in out]
    return out


@functools.lru_cache(maxsize=8)
def _whitened_natural_images(f0_factor: float, downsample: int) -> tuple[np.ndarray, ...]:
    imgs = whiten_images(natural_images(downsample=downsample), f0_factor=f0_factor)
    for w in imgs:
        w.setflags(write=False)  # cached: shared between calls
    return tuple(imgs)


def _image_list(images, name: str) -> list[np.ndarray]:
    """A 2-D image, a sequence of 2-D images, or a MATLAB-layout ``(H, W, K)`` stack → list."""
    if isinstance(images, np.ndarray):
        if images.ndim == 2:
            seq = [images]
        elif images.ndim == 3:
            seq = [images[:, :, k] for k in range(images.shape[2])]
        else:
            raise InputError(
                f"{name} must be a 2-D image, an (H, W, K) stack or a list of 2-D images, "
                f"got an array of shape {images.shape}"
            )
    else:
        seq = list(images)
    if not seq:
        raise InputError(f"{name} must contain at least one image, got none")
    out = []
    for k, img in enumerate(seq):
        a = np.asarray(img)
        if a.ndim != 2:
            raise InputError(f"{name}[{k}] must be a 2-D grayscale image, got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise InputError(f"{name}[{k}] must be real numbers, got dtype {a.dtype}")
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise InputError(f"{name}[{k}] must be finite, but has {int((~np.isfinite(a)).sum())} non-finite value(s)")
        out.append(a)
    return out


def sample_patches(
    images, n_patches: int, patch_size: int, rng: np.random.Generator, *, border: int = BORDER
) -> np.ndarray:
    """Random square patches, UFLDL ``sampleIMAGES`` style (pick an image, then a position).

    Each patch comes from an image chosen uniformly at random, at a position chosen
    uniformly among those that keep it at least ``border`` pixels from the image edge.
    Patches are flattened row-major (C order), so ``x[i].reshape(patch_size, patch_size)``
    is the patch and ``W1[j].reshape(patch_size, patch_size)`` is hidden unit j's filter.

    Args:
      images: a sequence of 2-D images, or a MATLAB-layout ``(H, W, K)`` array.
      n_patches: number of patches ``m >= 1``.
      patch_size: side ``p >= 1`` of each square patch.
      rng: a ``numpy.random.Generator`` (the only source of randomness).
      border: pixels to leave out at every edge.

    Returns:
      float64 array ``(n_patches, patch_size**2)``.
    """
    _check_int("n_patches", n_patches, minimum=1)
    _check_int("patch_size", patch_size, minimum=1)
    _check_int("border", border, minimum=0)
    images = _image_list(images, "images")
    need = patch_size + 2 * border
    for k, img in enumerate(images):
        if min(img.shape) < need:
            raise InputError(
                f"images[{k}] of shape {img.shape} is too small for patch_size={patch_size} "
                f"with a {border}-pixel border (needs at least {need} × {need})"
            )
    heights = np.array([img.shape[0] for img in images])
    widths = np.array([img.shape[1] for img in images])
    which = rng.integers(len(images), size=n_patches)
    rows = rng.integers(border, heights[which] - patch_size - border + 1)
    cols = rng.integers(border, widths[which] - patch_size - border + 1)
    out = np.empty((n_patches, patch_size * patch_size), dtype=np.float64)
    for k, img in enumerate(images):
        sel = np.flatnonzero(which == k)
        if sel.size:
            windows = np.lib.stride_tricks.sliding_window_view(img, (patch_size, patch_size))
            out[sel] = windows[rows[sel], cols[sel]].reshape(sel.size, -1)
    return out


def normalize_patches(patches) -> np.ndarray:
    r"""UFLDL ``normalizeData``: remove each patch's mean, clip at ±3σ, rescale to [0.1, 0.9].

    .. math::
        x' = x - \bar x_\text{patch}, \quad
        s = 3\,\operatorname{std}(x'), \quad
        x'' = 0.1 + 0.4\,\bigl(1 + \operatorname{clip}(x', -s, s)/s\bigr)

    with σ the (``ddof=1``, MATLAB ``std``) standard deviation over all entries of all
    patches. [0.1, 0.9] keeps the targets inside the sigmoid's range, away from its
    flat tails.

    Args:
      patches: ``(m, n)`` array, one patch per row.

    Returns:
      float64 ``(m, n)`` in [0.1, 0.9]; a constant input maps to 0.5.
    """
    x = np.asarray(patches, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        raise InputError(f"patches must be a non-empty 2-D array (m, n), got shape {x.shape}")
    x = x - x.mean(axis=1, keepdims=True)
    s = 3.0 * x.std(ddof=1) if x.size > 1 else 0.0
    if not s > 0:
        return np.full_like(x, 0.5)
    return (np.clip(x, -s, s) / s + 1.0) * 0.4 + 0.1


def natural_image_patches(
    n_patches: int = 10_000,
    patch_size: int = 8,
    *,
    seed: int = 0,
    images=None,
    f0_factor: float = 0.4,
    downsample: int = 2,
) -> np.ndarray:
    r"""The UFLDL exercise's training set, rebuilt from photographs bundled in scikit-image.

    Pipeline (the tutorial's ``IMAGES.mat`` + ``sampleIMAGES`` + ``normalizeData``):

    1. the ten photographs of :data:`NATURAL_IMAGES` (``camera``, ``grass``, ``gravel``,
       ``brick``, ``moon``, ``astronaut``, ``coffee``, ``chelsea``, ``rocket``, ``coins``),
       grayscale, centre-cropped to a square;
    2. block-averaged ``downsample × downsample`` (default 2);
    3. whitened with :math:`R(f) = f\,e^{-(f/f_0)^4}`, :math:`f_0` = ``f0_factor`` = 0.4
       cycles per pixel (:func:`whiten_images`; Olshausen's ``f_0 = 0.4 N``);
    4. ``n_patches`` random ``patch_size × patch_size`` patches, 4 pixels clear of each border
       (:func:`sample_patches`);
    5. each patch's mean removed, clipped at ±3σ, rescaled to [0.1, 0.9]
       (:func:`normalize_patches`).

    Why these defaults: the filters an autoencoder learns from whitened patches depend on
    the scale of the image structure relative to the 8-pixel patch. Olshausen's images
    were 512 × 512 photographs of wide natural scenes; scikit-image's photographs are
    closer-up, so at full resolution an 8×8 patch sees smoother, larger-scale structure.
    Measured with 400 L-BFGS iterations at the exercise's sizes (64-25, ρ = 0.01,
    λ = 1e-4, β = 3): ``f0`` = 0.2 cycles/pixel gives broad oriented gratings filling the
    patch; 0.3, or 0.4 at full resolution, gives broad, blurred edges; 0.4 *plus* a 2×
    block-average downsample gives sharp, localized light/dark edge pairs, the classic
    result (a 3× downsample looks much the same). ZCA whitening of the patches instead gave
    pixel noise at small ε and broad gratings at larger ε, so the 1/f filter is used.

    The whitened images are cached in-process (``functools.lru_cache``), so repeated calls
    only re-sample.

    Args:
      n_patches: number of patches (rows), ``>= 1``.
      patch_size: side of each square patch, ``>= 1`` (``n_visible = patch_size**2``).
      seed: seed of the ``numpy.random.Generator`` that picks the patches; the same seed
        always gives the same array.
      images: optional sequence of 2-D grayscale photographs (unwhitened) to use instead
        of the bundled ones; they go through steps 2–5 (not cached).
      f0_factor: whitening roll-off in cycles per pixel.
      downsample: block-average factor before whitening (``1`` = full resolution).

    Returns:
      float64 ``(n_patches, patch_size**2)`` in [0.1, 0.9], patches flattened row-major.

    Examples:
      >>> x = natural_image_patches(100, 8, seed=0)
      >>> x.shape, bool(x.min() >= 0.1), bool(x.max() <= 0.9)
      ((100, 64), True, True)
    """
    _check_int("n_patches", n_patches, minimum=1)
    _check_int("patch_size", patch_size, minimum=1)
    _check_int("seed", seed, minimum=0)
    _check_int("downsample", downsample, minimum=1)
    if images is None:
        white = _whitened_natural_images(float(f0_factor), int(downsample))
    else:
        prepared = [
            _block_average(_centre_square(img), downsample) for img in _image_list(images, "images")
        ]
        white = whiten_images(prepared, f0_factor=f0_factor)
    rng = np.random.default_rng(seed)
    return normalize_patches(sample_patches(white, n_patches, patch_size, rng))


# --------------------------------------------------------------------------------------
# Other sources
# --------------------------------------------------------------------------------------


def _sklearn_digits():
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as e:
        raise InputError(
            "the 'digits' dataset needs scikit-learn, which is not installed: "
            "python3 -m pip install scikit-learn"
        ) from e
    return sk_load_digits()


def load_digits() -> np.ndarray:
    """scikit-learn's bundled 8×8 handwritten digits, scaled from 0..16 to [0, 1].

    Returns:
      float64 ``(1797, 64)``, rows flattened row-major (``x[i].reshape(8, 8)``).
    """
    return np.asarray(_sklearn_digits().data, dtype=np.float64) / 16.0


def load_digit_labels() -> np.ndarray:
    """The class (0..9) of each of :func:`load_digits`' rows (scikit-learn's ``target``).

    Returns:
      int64 ``(1797,)``.
    """
    return np.asarray(_sklearn_digits().target, dtype=np.int64)


def _check_file(path) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"data file not found: {path}")
    return path


def _as_float_rows(a, where: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise InputError(f"{where} must hold real numbers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise InputError(f"{where} must hold real numbers, got dtype {a.dtype}")
    return a.astype(np.float64)


def load_array(path, *, key: str | None = None) -> np.ndarray:
    """A ``.npy`` or ``.npz`` file of samples as rows.

    Args:
      path: the file.
      key: for ``.npz``, the array's name; may be left out when the archive holds one array.

    Returns:
      the stored array as float64 (shape unchanged; :func:`load_dataset` checks it is 2-D).
    """
    path = _check_file(path)
    arr, where = _read_npy_or_npz(path, key)
    return _as_float_rows(arr, where)


def _read_npy_or_npz(path: str, key: str | None) -> tuple[np.ndarray, str]:
    """The array in a ``.npy``, or array ``key`` (or the only one) of a ``.npz``; and its name."""
    # Open the file ourselves: np.load(path) leaks its handle when a .npz is corrupt.
    with open(path, "rb") as f:
        try:
            loaded = np.load(f, allow_pickle=False)
        except ValueError as e:
            raise InputError(f"cannot read {path} as .npy/.npz without pickle: {e}") from e
        except Exception as e:  # truncated/corrupt files raise OSError, EOFError, BadZipFile...
            raise InputError(f"cannot read {path} as .npy/.npz: {type(e).__name__}: {e}") from e
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return loaded, f"data in {path}"
        with loaded:
            names = list(loaded.files)
            if key is None:
                if len(names) != 1:
                    raise InputError(
                        f"{path} holds {len(names)} arrays {names}; name one with key= (--npz-key)"
                    )
                key = names[0]
            elif key not in names:
                raise InputError(f"{path} has no array {key!r}; it holds {names}")
            try:
                return loaded[key], f"array {key!r} in {path}"
            except ValueError as e:
                raise InputError(f"cannot read array {key!r} in {path} without pickle: {e}") from e
            except Exception as e:
                raise InputError(f"cannot read array {key!r} in {path}: {type(e).__name__}: {e}") from e


_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open_maybe_gz(path: str):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _read_idx_bytes(path: str) -> bytes:
    try:
        with _open_maybe_gz(path) as f:
            return f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InputError(f"cannot read IDX file {path}: {e}") from e


def load_mnist_idx(path) -> np.ndarray:
    """An IDX file (MNIST's ``*-images-idx3-ubyte``), optionally gzip-compressed.

    The IDX header is two zero bytes, a type code (``0x08`` = unsigned byte, ...), the
    number of dimensions and each dimension as a big-endian int32. Unsigned-byte data are
    scaled to [0, 1] (divided by 255); other types are returned unscaled. The first
    dimension indexes samples; the others are flattened row-major.

    Returns:
      float64 ``(n, prod(dims[1:]))``, e.g. ``(60000, 784)`` for MNIST's training images.
    """
    path = _check_file(path)
    raw = _read_idx_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise InputError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    if ndim < 2:
        raise InputError(
            f"IDX file {path} has {ndim} dimension(s) (a labels file?); expected samples "
            "with features, e.g. images (n, rows, cols)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(f"IDX file {path} is truncated (header needs {header} bytes, file has {len(raw)})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if min(dims) < 1:
        raise InputError(
            f"IDX file {path} has dimensions {dims}; expected at least one sample and one "
            "feature (every dimension >= 1)"
        )
    count = math.prod(dims)
    if len(raw) - header != count * dtype.itemsize:
        raise InputError(
            f"IDX file {path} holds {len(raw) - header} data bytes, but its header "
            f"{dims} of {dtype.name} needs {count * dtype.itemsize}"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims[0], -1)
    if raw[2] == 0x08:
        return data.astype(np.float64) / 255.0
    return data.astype(np.float64)


#: IDX magic number of a labels file: two zero bytes, type 0x08 (unsigned byte), 1 dimension.
IDX_LABELS_MAGIC = 0x00000801  # 2049 (MNIST's images files have 2051 = 0x00000803)


def load_mnist_idx_labels(path) -> np.ndarray:
    """An IDX labels file (MNIST's ``*-labels-idx1-ubyte``), optionally gzip-compressed.

    The header is the big-endian int32 magic number 2049 (``0x00000801``: unsigned bytes,
    one dimension) and the number of labels ``n``; then ``n`` bytes, each a class index
    0..255 (0..9 for MNIST).

    Returns:
      int64 ``(n,)`` class indices, e.g. ``(60000,)`` for ``train-labels-idx1-ubyte``.

    Raises:
      InputError: missing or unreadable file, a magic number other than 2049 (an images
        file has 2051), or a byte count that disagrees with the header.
    """
    path = _check_file(path)
    raw = _read_idx_bytes(path)
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic != IDX_LABELS_MAGIC:
        found = "no header" if magic is None else f"magic number {magic}"
        hint = " (an IDX images file? pass it as the data, the labels file as labels_path)" if magic == 2051 else ""
        raise InputError(
            f"{path} is not an IDX labels file: {found}, expected {IDX_LABELS_MAGIC} "
            f"(unsigned bytes, 1 dimension){hint}"
        )
    if len(raw) < 8:
        raise InputError(f"IDX labels file {path} is truncated (header needs 8 bytes, file has {len(raw)})")
    n = int.from_bytes(raw[4:8], "big", signed=True)
    if n < 1 or len(raw) - 8 != n:
        raise InputError(
            f"IDX labels file {path} holds {len(raw) - 8} label bytes, but its header says {n} "
            "(expected at least one label)"
        )
    return np.frombuffer(raw, dtype=np.uint8, count=n, offset=8).astype(np.int64)


def load_labels(path) -> np.ndarray:
    """Class labels from an IDX labels file (:func:`load_mnist_idx_labels`) or a ``.npy``.

    A ``.npy`` must hold a 1-D array of non-negative integers (class indices).

    Returns:
      int64 ``(n,)``.
    """
    path = _check_file(path)
    if _sniff(path) == "idx":
        return load_mnist_idx_labels(path)
    y, _ = _read_npy_or_npz(path, None)
    where = f"labels in {path}"
    if y.ndim != 1 or y.size == 0:
        raise InputError(f"{where} must be a non-empty 1-D array of class indices, got shape {y.shape}")
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{where} must be integer class indices, got dtype {y.dtype}")
    if y.min() < 0:
        raise InputError(f"{where} must be class indices >= 0, got minimum {int(y.min())}")
    return y.astype(np.int64)


def load_images_mat(path, *, key: str | None = None) -> np.ndarray:
    """The original exercise's ``IMAGES.mat`` (scipy.io), as an ``(H, W, K)`` array.

    Takes the variable ``key``, else ``IMAGES``, else the file's single variable. A 2-D
    variable is one image and comes back as ``(H, W, 1)``.
    """
    path = _check_file(path)
    try:
        import scipy.io
    except ImportError as e:  # pragma: no cover - scipy is a runtime dependency
        raise InputError("reading .mat files needs scipy: python3 -m pip install scipy") from e
    try:
        contents = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises many types for a bad file
        raise InputError(f"cannot read {path} as a MATLAB .mat file: {e}") from e
    names = [k for k in contents if not k.startswith("__")]
    if key is None:
        if "IMAGES" in names:
            key = "IMAGES"
        elif len(names) == 1:
            key = names[0]
        else:
            raise InputError(f"{path} has no variable 'IMAGES' and holds {names}; name one with key=")
    elif key not in names:
        raise InputError(f"{path} has no variable {key!r}; it holds {names}")
    arr = _as_float_rows(contents[key], f"variable {key!r} in {path}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise InputError(f"variable {key!r} in {path} must be images (H, W, K), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"variable {key!r} in {path} must be finite, but has non-finite values")
    return arr


def patches_from_images_mat(
    path, n_patches: int = 10_000, patch_size: int = 8, seed: int = 0
) -> np.ndarray:
    """Patches from an ``IMAGES.mat`` (already whitened, as the exercise ships it).

    The same sampling and normalisation as :func:`natural_image_patches`
    (:func:`sample_patches` + :func:`normalize_patches`), without whitening again.
    """
    images = load_images_mat(path)
    rng = np.random.default_rng(seed)
    return normalize_patches(sample_patches(images, n_patches, patch_size, rng))


# --------------------------------------------------------------------------------------
# Dispatch, validation and the data spec
# --------------------------------------------------------------------------------------

BUILTIN = ("natural", "digits")


def _sniff(path: str) -> str:
    """``'npy'``, ``'npz'``, ``'mat'`` or ``'idx'`` from magic bytes, then the extension."""
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK"):
        return "npz"
    if head.startswith(b"MATLAB"):
        return "mat"
    if len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in _IDX_DTYPES:
        return "idx"
    if head.startswith(b"\x1f\x8b"):  # gzip: IDX is the only compressed format we read
        return "idx"
    lower = path.lower()
    for ext in ("npy", "npz", "mat"):
        if lower.endswith("." + ext):
            return ext
    if "idx" in os.path.basename(lower) or "ubyte" in lower:
        return "idx"
    if head.startswith(b"\x00\x00\x00\x00"):  # MATLAB v4 files have no text header
        return "mat"
    raise InputError(
        f"cannot tell the format of {path}: expected .npy, .npz, .mat or an IDX file (optionally .gz)"
    )


def _check_int(name: str, v, *, minimum: int) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {v!r}")


def load_dataset(
    name_or_path="natural",
    *,
    n_patches: int = 10_000,
    patch_size: int = 8,
    seed: int = 0,
    output: str = "sigmoid",
    key: str | None = None,
    dtype="float64",
    labels: bool = False,
    labels_path=None,
):
    """Load and validate a dataset by name (``"natural"``, ``"digits"``) or path.

    Paths are read by format (magic bytes, then extension): ``.npy``/``.npz``
    (:func:`load_array`, ``key`` names the ``.npz`` array), ``.mat``
    (:func:`patches_from_images_mat`) or IDX (:func:`load_mnist_idx`).
    ``n_patches``, ``patch_size`` and ``seed`` apply to the patch sources
    (``"natural"`` and ``.mat``) and are ignored by the others.

    The result is checked: 2-D ``(m, n)`` with ``m, n >= 1``, finite, and inside [0, 1]
    when ``output == "sigmoid"`` (the sigmoid's range).

    Labels: with ``labels=True`` the result is ``(x, y)``, ``y`` int64 ``(m,)`` class
    indices, ``y[i]`` the class of ``x[i]``. ``"digits"`` carries its own (scikit-learn's
    targets 0..9). A data file (IDX, ``.npy``, ``.npz``) takes them from ``labels_path``:
    an IDX labels file (MNIST's ``train-labels-idx1-ubyte``, optionally ``.gz``; see
    :func:`load_mnist_idx_labels`) or a ``.npy`` of integer class indices
    (:func:`load_labels`), one per row of ``x``. Patch sources (``"natural"``, ``.mat``)
    are random patches and have no labels.

    Returns:
      ``x``: ``(m, n_visible)`` in ``dtype`` (default float64), samples as rows; or
      ``(x, y)`` when ``labels=True``. sae-jax's functions take data in the parameters'
      dtype and never convert it; ``init_params`` defaults to float32, so pass
      ``dtype=params.W1.dtype`` (or ``"float32"``) to use the result with them.

    Raises:
      InputError: unknown name, missing or unreadable file ("data file not found: PATH"),
        wrong shape, non-finite values, values outside [0, 1] for a sigmoid output;
        with ``labels=True``: a source without labels, a missing ``labels_path`` for a
        data file, a labels file that is not one, or a label count that differs from ``m``.
    """
    check_output(output)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind != "f":
        raise InputError(f"dtype must be a floating dtype such as 'float32' or 'float64', got {dtype!r}")
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InputError(f"data must be 'natural', 'digits' or a file path, got {name_or_path!r}")
    if not isinstance(labels, bool):
        raise InputError(f"labels must be True or False, got {labels!r}")
    if labels_path is not None and not labels:
        raise InputError("labels_path is given but labels=False; pass labels=True to get (x, y)")
    src = os.fspath(name_or_path)
    kind = src if src in BUILTIN else None
    if kind is None:
        if not os.path.isfile(src):
            hint = "" if os.sep in src or "." in src else " (built-in datasets: 'natural', 'digits')"
            raise InputError(f"data file not found: {src}{hint}")
        kind = _sniff(src)
    if labels:
        _check_labels_source(src, kind, labels_path)
    if kind == "natural":
        x = natural_image_patches(n_patches, patch_size, seed=seed)
        where = "natural-image patches"
    elif kind == "digits":
        x = load_digits()
        where = "digits"
    else:
        where = f"data in {src}"
        if kind in ("npy", "npz"):
            x = load_array(src, key=key)
            if key is not None:
                where = f"array {key!r} in {src}"
        elif kind == "mat":
            x = patches_from_images_mat(src, n_patches, patch_size, seed)
        else:
            x = load_mnist_idx(src)
    if x.ndim != 2:
        hint = " (one sample? reshape to (1, n))" if x.ndim == 1 else ""
        if x.ndim == 3:
            hint = " (images? flatten each to a row: x.reshape(len(x), -1))"
        raise InputError(f"{where} must be 2-D (m, n_visible), samples as rows, got shape {x.shape}{hint}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise InputError(f"{where} must have at least one sample and one feature, got shape {x.shape}")
    check_data_values(x, output=output, name=where)
    x = x if x.dtype == dtype else x.astype(dtype)
    if not labels:
        return x
    y = load_digit_labels() if kind == "digits" else load_labels(labels_path)
    if y.shape[0] != x.shape[0]:
        raise InputError(
            f"labels_path {os.fspath(labels_path)} holds {y.shape[0]} labels but {where} has "
            f"{x.shape[0]} samples; expected one label per sample"
        )
    return x, y


def _check_labels_source(src: str, kind: str, labels_path) -> None:
    """One clear error when ``labels=True`` cannot be honoured for this source."""
    if kind in ("natural", "mat"):
        what = "the 'natural' dataset" if kind == "natural" else f"patches sampled from {src}"
        raise InputError(
            f"labels=True: {what} has no labels (random image patches); labels come with "
            "'digits', or with a data file (IDX, .npy, .npz) and labels_path="
        )
    if kind == "digits":
        if labels_path is not None:
            raise InputError("labels_path is for data files; 'digits' carries its own labels (leave it None)")
        return
    if labels_path is None:
        raise InputError(
            f"labels=True for {src} needs labels_path= naming its labels file (an IDX labels file "
            "such as train-labels-idx1-ubyte, or a .npy of integer class indices)"
        )
    if not isinstance(labels_path, (str, os.PathLike)):
        raise InputError(f"labels_path must be a file path, got {labels_path!r}")
    _check_file(labels_path)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class DataSpec(NamedTuple):
    """What :func:`load_dataset` was asked for: enough to rebuild the same array on resume.

    ``name`` is ``"natural"``, ``"digits"`` or a file path (made absolute by
    :func:`data_spec`); ``sha256`` is the file's hash (``None`` for built-in data), so a
    resume on a changed file fails loudly instead of silently training on other data.
    JSON-serialisable through :meth:`to_dict` / :meth:`from_dict`.
    """

    name: str = "natural"
    n_patches: int = 10_000
    patch_size: int = 8
    seed: int = 0
    key: str | None = None
    sha256: str | None = None

    def to_dict(self) -> dict:
        return dict(self._asdict())

    @classmethod
    def from_dict(cls, d) -> "DataSpec":
        if not isinstance(d, dict):
            raise InputError(f"data spec must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - set(cls._fields)
        if unknown or "name" not in d:
            raise InputError(
                f"data spec must have keys {list(cls._fields)} ('name' required), got {sorted(d)}"
            )
        spec = cls(**d)
        if not isinstance(spec.name, str):
            raise InputError(f"data spec 'name' must be a string, got {spec.name!r}")
        for f in ("n_patches", "patch_size"):
            _check_int(f"data spec {f!r}", getattr(spec, f), minimum=1)
        _check_int("data spec 'seed'", spec.seed, minimum=0)
        return spec


def data_spec(
    name_or_path="natural", *, n_patches: int = 10_000, patch_size: int = 8, seed: int = 0,
    key: str | None = None,
) -> DataSpec:
    """The :class:`DataSpec` of a :func:`load_dataset` call (absolute path + file hash)."""
    src = os.fspath(name_or_path)
    sha = None
    if src not in BUILTIN:
        src = os.path.abspath(_check_file(src))
        sha = _sha256(src)
    return DataSpec(src, int(n_patches), int(patch_size), int(seed), key, sha)


def load_from_spec(
    spec: DataSpec | dict, *, output: str = "sigmoid", labels: bool = False, labels_path=None
):
    """Rebuild the array a :class:`DataSpec` describes (checks a file's hash if recorded).

    ``labels`` and ``labels_path`` are passed to :func:`load_dataset`: with
    ``labels=True`` the result is ``(x, y)``.
    """
    if isinstance(spec, dict):
        spec = DataSpec.from_dict(spec)
    if spec.sha256 is not None and spec.name not in BUILTIN:
        _check_file(spec.name)
        if _sha256(spec.name) != spec.sha256:
            raise InputError(
                f"data file {spec.name} changed since the checkpoint was written (sha256 differs)"
            )
    return load_dataset(
        spec.name, n_patches=spec.n_patches, patch_size=spec.patch_size, seed=spec.seed,
        output=output, key=spec.key, labels=labels, labels_path=labels_path,
    )
