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
an MNIST directory
    the four standard IDX files, found by name (:func:`find_mnist`, :func:`load_mnist`:
    the training part or the t10k test part as ``(x, y)``).

:func:`load_dataset` dispatches on the name, the file's magic bytes or its extension,
and validates the result (finite, 2-D, non-empty, inside [0, 1] for a sigmoid output).
With ``labels=True`` it returns ``(x, y)``, ``y`` int64 class indices: ``"digits"``
carries its own, a data file takes them from ``labels_path`` (MNIST's
``train-labels-idx1-ubyte``, or a ``.npy``); patch sources have none.
:class:`DataSpec` records what was loaded so that a checkpoint can rebuild exactly the
same array on resume (:func:`load_from_spec`).

The parts live in four modules, all re-exported here: :mod:`sae_jax._src.data.images`
(natural images, whitening, sampling, normalisation), :mod:`sae_jax._src.data.files` (file
loaders and format sniffing), :mod:`sae_jax._src.data.mnist` (an MNIST directory's four files)
and :mod:`sae_jax._src.data.datasets` (the registry,
:func:`load_dataset`, :class:`DataSpec`). scikit-image, scipy and scikit-learn are
imported lazily, inside the functions that need them, so ``import sae_jax`` stays fast.

Examples:
  >>> from sae_jax.data import load_dataset
  >>> x = load_dataset("natural", n_patches=200, patch_size=8, seed=0)
  >>> x.shape, x.dtype, bool(0.1 <= x.min() and x.max() <= 0.9)
  ((200, 64), dtype('float64'), True)
  >>> x, y = load_dataset("digits", labels=True, dtype="float32")
  >>> x.shape, x.dtype, y.shape, sorted(set(y.tolist()))
  ((1797, 64), dtype('float32'), (1797,), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
"""

from sae_jax._src.data import (
    NATURAL_IMAGES as NATURAL_IMAGES,
    BUILTIN as BUILTIN,
    DataSpec as DataSpec,
    load_from_spec as load_from_spec,
    load_dataset as load_dataset,
    natural_images as natural_images,
    natural_image_patches as natural_image_patches,
    whiten_images as whiten_images,
    whitened_natural_images as whitened_natural_images,
    sample_patches as sample_patches,
    normalize_patches as normalize_patches,
    load_digits as load_digits,
    load_digit_labels as load_digit_labels,
    load_array as load_array,
    load_mnist_idx as load_mnist_idx,
    load_mnist_idx_labels as load_mnist_idx_labels,
    load_labels as load_labels,
    MNIST_FILES as MNIST_FILES,
    find_mnist as find_mnist,
    load_mnist as load_mnist,
    load_images_mat as load_images_mat,
    patches_from_images_mat as patches_from_images_mat,
)

__all__ = [
    "NATURAL_IMAGES",
    "BUILTIN",
    "DataSpec",
    "load_from_spec",
    "load_dataset",
    "natural_images",
    "natural_image_patches",
    "whiten_images",
    "whitened_natural_images",
    "sample_patches",
    "normalize_patches",
    "load_digits",
    "load_digit_labels",
    "load_array",
    "load_mnist_idx",
    "load_mnist_idx_labels",
    "load_labels",
    "MNIST_FILES",
    "find_mnist",
    "load_mnist",
    "load_images_mat",
    "patches_from_images_mat",
]
