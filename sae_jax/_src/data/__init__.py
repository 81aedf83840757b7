"""Implementation of :mod:`sae_jax.data` (private; import from the public module)."""

from ..checks.errors import InputError
from .datasets import BUILTIN, DataSpec, data_spec, load_dataset, load_digit_labels, load_digits, load_from_spec
from .files import (
    IDX_LABELS_MAGIC,
    load_array,
    load_images_mat,
    load_labels,
    load_mnist_idx,
    load_mnist_idx_labels,
    patches_from_images_mat,
    sniff_format,
)
from .images import (
    BORDER,
    NATURAL_IMAGES,
    natural_image_patches,
    natural_images,
    normalize_patches,
    sample_patches,
    whiten_images,
    whitened_natural_images,
)
from .mnist import MNIST_FILES, find_mnist, load_mnist

