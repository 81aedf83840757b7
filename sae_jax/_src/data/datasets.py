"""The dataset registry: built-in names, :func:`load_dataset`, and the :class:`DataSpec` of a run.

``"natural"`` (the UFLDL exercise's whitened patches, :mod:`sae_jax._src.data.images`) and
``"digits"`` (scikit-learn's 8×8 digits, with their labels) are built in (:data:`BUILTIN`);
anything else is a path read by :mod:`sae_jax._src.data.files`. :func:`load_dataset` validates
what it returns; :class:`DataSpec` records what was asked for, so a checkpoint can rebuild
exactly the same array on resume (:func:`load_from_spec`). scikit-learn is imported lazily.

Examples:
  >>> from sae_jax.data import DataSpec, load_dataset
  >>> from sae_jax._src.data.datasets import data_spec
  >>> x, y = load_dataset("digits", labels=True)
  >>> x.shape, x.dtype, y.shape, y.dtype, y[:5].tolist()
  ((1797, 64), dtype('float64'), (1797,), dtype('int64'), [0, 1, 2, 3, 4])
  >>> spec = data_spec("natural", n_patches=100)
  >>> DataSpec.from_dict(spec.to_dict()) == spec
  True
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

import numpy as np

from ..validate import InputError, check_data_values, check_output
from .checks import check_file, check_int
from .files import load_array, load_labels, load_mnist_idx, patches_from_images_mat, sniff_format
from .images import natural_image_patches

__all__ = [
    "BUILTIN",
    "load_digits",
    "load_digit_labels",
    "load_dataset",
    "DataSpec",
    "data_spec",
    "load_from_spec",
]

#: The names :func:`load_dataset` reads without a file.
BUILTIN = ("natural", "digits")


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
        kind = sniff_format(src)
    if key is not None and kind not in ("npy", "npz"):
        what = f"the built-in {kind!r} dataset" if kind in BUILTIN else f"{src} (a {kind} file)"
        raise InputError(f"key={key!r} (--npz-key) names an array inside a .npz file, but the data is {what}; leave key out")
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
    check_file(labels_path)


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
            check_int(f"data spec {f!r}", getattr(spec, f), minimum=1)
        check_int("data spec 'seed'", spec.seed, minimum=0)
        return spec


def data_spec(
    name_or_path="natural", *, n_patches: int = 10_000, patch_size: int = 8, seed: int = 0,
    key: str | None = None,
) -> DataSpec:
    """The :class:`DataSpec` of a :func:`load_dataset` call (absolute path + file hash)."""
    src = os.fspath(name_or_path)
    sha = None
    if src not in BUILTIN:
        src = os.path.abspath(check_file(src))
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
        check_file(spec.name)
        if _sha256(spec.name) != spec.sha256:
            raise InputError(
                f"data file {spec.name} changed since the checkpoint was written (sha256 differs)"
            )
    return load_dataset(
        spec.name, n_patches=spec.n_patches, patch_size=spec.patch_size, seed=spec.seed,
        output=output, key=spec.key, labels=labels, labels_path=labels_path,
    )
