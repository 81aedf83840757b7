"""An MNIST directory: the four standard IDX files found by their usual names, loaded as ``(x, y)``.

MNIST is distributed as four files (training images and labels, and the 10,000-image test set
``t10k``), each optionally gzip-compressed. :func:`find_mnist` finds them in a directory under any
of the names they commonly carry (``train-images-idx3-ubyte``, ``train-images.idx3-ubyte``, either
with ``.gz``); :func:`load_mnist` reads one part (``"train"`` or ``"test"``) as float64 ``(m, n)``
rows in [0, 1] (bytes / 255, as UFLDL's ``loadMNISTImages``) and int64 ``(m,)`` labels, checking
that the two files agree. The UFLDL exercises train on ``"train"`` and test on ``"test"``.

Examples:
  >>> import os, struct, tempfile
  >>> d = tempfile.mkdtemp()
  >>> for part, m in (("train", 3), ("t10k", 2)):  # m images of 2 x 2 pixels, their labels
  ...     with open(os.path.join(d, f"{part}-images-idx3-ubyte"), "wb") as f:
  ...         _ = f.write(struct.pack(">iiii", 2051, m, 2, 2) + bytes(range(4 * m)))
  ...     with open(os.path.join(d, f"{part}-labels-idx1-ubyte"), "wb") as f:
  ...         _ = f.write(struct.pack(">ii", 2049, m) + bytes(range(m)))
  >>> sorted(os.path.basename(p) for p in find_mnist(d)["test"])
  ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']
  >>> x, y = load_mnist(d, "train")
  >>> x.shape, y.tolist(), float(x[0, 1])
  ((3, 4), [0, 1, 2], 0.00392156862745098)
"""

from __future__ import annotations

import os

import numpy as np

from ..validate import InputError
from .files import load_mnist_idx, load_mnist_idx_labels

__all__ = ["MNIST_FILES", "find_mnist", "load_mnist"]

#: part -> (images, labels): the standard names (each also found as ``*.idx?-ubyte`` and with ``.gz``).
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _candidates(name: str) -> tuple[str, ...]:
    dotted = name.replace("-idx", ".idx")  # train-images.idx3-ubyte: another common spelling
    return (name, dotted, name + ".gz", dotted + ".gz")


def _find(directory: str, name: str) -> str:
    for c in _candidates(name):
        path = os.path.join(directory, c)
        if os.path.isfile(path):
            return path
    raise InputError(
        f"MNIST directory {directory} has no {name} (looked for {', '.join(_candidates(name))}); it needs "
        f"{', '.join(n for pair in MNIST_FILES.values() for n in pair)}"
    )


def find_mnist(directory, parts=("train", "test")) -> dict[str, tuple[str, str]]:
    """The paths of the MNIST files in ``directory``: ``{part: (images, labels)}`` for each of ``parts``.

    Each standard name (:data:`MNIST_FILES`) is looked for as is, with ``-idx`` spelled ``.idx``,
    and with ``.gz`` (the first that exists wins, in that order).

    Raises:
      InputError: ``directory`` is not a directory, or a file of ``parts`` is missing (naming it).
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise InputError(f"MNIST directory not found: {directory}")
    unknown = [p for p in parts if p not in MNIST_FILES]
    if unknown:
        raise InputError(f"MNIST parts are {list(MNIST_FILES)}, got {unknown}")
    return {p: tuple(_find(directory, n) for n in MNIST_FILES[p]) for p in parts}


def load_mnist(directory, part: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """One part of an MNIST directory (:func:`find_mnist`): ``(x, y)``.

    Returns:
      ``x`` float64 ``(m, rows * cols)`` in [0, 1] (60,000 x 784 for ``"train"``, 10,000 x 784 for
      ``"test"``), image ``i`` row-major in ``x[i]``; ``y`` int64 ``(m,)``, the digit of each image.

    Raises:
      InputError: a missing or malformed file, or an images file and a labels file that disagree
        on the number of samples.
    """
    images, labels = find_mnist(directory, (part,))[part]
    x = load_mnist_idx(images)
    y = load_mnist_idx_labels(labels)
    if len(y) != len(x):
        raise InputError(f"{labels} holds {len(y)} labels but {images} has {len(x)} images; expected one label per image")
    return x, y
