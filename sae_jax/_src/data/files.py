"""File loaders: ``.npy``/``.npz`` rows, MNIST IDX images and labels, MATLAB ``IMAGES.mat``.

Each loader reads one format and raises one clear :class:`~sae_jax.InputError` for a
missing, unreadable or malformed file (naming the file). Data come back as float64
``(m, n)`` rows (IDX unsigned bytes scaled to [0, 1]); labels as int64 ``(m,)`` class
indices. :func:`sniff_format` tells the formats apart by magic bytes, then extension.
scipy is imported lazily, inside :func:`load_images_mat`.

Examples:
  >>> import os, struct, tempfile
  >>> import numpy as np
  >>> from sae_jax.data import load_mnist_idx, load_mnist_idx_labels
  >>> from sae_jax._src.data.files import sniff_format
  >>> d = tempfile.mkdtemp()
  >>> images = os.path.join(d, "train-images-idx3-ubyte")
  >>> with open(images, "wb") as f:  # 2 images of 2 × 3 pixels: magic 2051, then the dims
  ...     _ = f.write(struct.pack(">iiii", 2051, 2, 2, 3) + bytes(range(0, 240, 20)))
  >>> labels = os.path.join(d, "train-labels-idx1-ubyte")
  >>> with open(labels, "wb") as f:  # magic 2049, count, one byte per label
  ...     _ = f.write(struct.pack(">ii", 2049, 2) + bytes([7, 3]))
  >>> sniff_format(images), load_mnist_idx(images).shape
  ('idx', (2, 6))
  >>> load_mnist_idx_labels(labels)
  array([7, 3])
"""

from __future__ import annotations

import gzip
import math
import os

import numpy as np

from ..validate import InputError
from .checks import check_file
from .images import normalize_patches, sample_patches

__all__ = [
    "IDX_LABELS_MAGIC",
    "sniff_format",
    "load_array",
    "load_mnist_idx",
    "load_mnist_idx_labels",
    "load_labels",
    "load_images_mat",
    "patches_from_images_mat",
]

def _as_float_rows(a, where: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == np.bool_:  # as train(x=...) refuses a boolean array: say what to convert
        raise InputError(
            f"{where} must hold real numbers, got dtype bool; save it as numbers, e.g. a.astype('float32')"
        )
    if a.dtype == object or not np.issubdtype(a.dtype, np.number):
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
    path = check_file(path)
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
            if key is not None:
                raise InputError(
                    f"key={key!r} (--npz-key) names an array inside a .npz, but {path} is a .npy "
                    "holding one array; leave key out"
                )
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
    path = check_file(path)
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
    path = check_file(path)
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
    path = check_file(path)
    if sniff_format(path) == "idx":
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
    path = check_file(path)
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


def sniff_format(path) -> str:
    """``'npy'``, ``'npz'``, ``'mat'`` or ``'idx'`` from magic bytes, then the extension.

    Raises:
      InputError: a missing file, or one whose format none of the loaders reads.
    """
    path = check_file(path)
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
