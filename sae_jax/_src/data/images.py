r"""Natural images: the bundled photographs, Olshausen's whitening, patch sampling, UFLDL normalisation.

The UFLDL exercise's training set is rebuilt offline from photographs that ship inside
scikit-image (:data:`NATURAL_IMAGES`): grayscale and square (:func:`natural_images`),
whitened by :math:`R(f) = f\,e^{-(f/f_0)^4}` (:func:`whiten_images`), cut into random
``p × p`` patches clear of the border (:func:`sample_patches`), each patch's mean removed
and the whole set clipped at ±3σ and rescaled to [0.1, 0.9] (:func:`normalize_patches`).
:func:`natural_image_patches` runs the whole pipeline: ``(m, p²)`` float64, rows = patches
flattened row-major. scikit-image is imported lazily, inside :func:`natural_images`.

Examples:
  >>> import numpy as np
  >>> from sae_jax.data import normalize_patches, sample_patches
  >>> img = np.arange(400.0).reshape(20, 20)
  >>> p = sample_patches([img], 5, 3, np.random.default_rng(0))
  >>> p.shape
  (5, 9)
  >>> x = normalize_patches(np.random.default_rng(0).normal(size=(50, 9)))
  >>> x.shape, bool(x.min() >= 0.1), bool(x.max() <= 0.9)
  ((50, 9), True, True)
"""

from __future__ import annotations

import functools

import numpy as np

from ..validate import InputError, check_fits_in_memory
from .checks import check_int

__all__ = [
    "NATURAL_IMAGES",
    "BORDER",
    "natural_images",
    "whiten_images",
    "whitened_natural_images",
    "sample_patches",
    "normalize_patches",
    "natural_image_patches",
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
    check_int("downsample", downsample, minimum=1)
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
def whitened_natural_images(f0_factor: float = 0.4, downsample: int = 2) -> tuple[np.ndarray, ...]:
    """:func:`natural_images` through :func:`whiten_images`, cached in-process.

    ``functools.lru_cache`` keeps the last 8 ``(f0_factor, downsample)`` pairs, so
    :func:`natural_image_patches` whitens once and afterwards only re-samples. The arrays
    are shared between calls and therefore read-only.

    Returns:
      a tuple of read-only 2-D float64 arrays, one per photograph of :data:`NATURAL_IMAGES`.
    """
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
    check_int("n_patches", n_patches, minimum=1)
    check_int("patch_size", patch_size, minimum=1)
    check_int("border", border, minimum=0)
    check_patches_fit(n_patches, patch_size)
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


#: Peak bytes per patch entry while sampling and normalising: three float64 copies of the patches
#: (:func:`normalize_patches`' temporaries; tracemalloc measured 3.00 copies at 200000 × 8² and 10⁶ × 2²).
_BYTES_PER_ENTRY = 3 * 8
_BYTES_PER_PATCH = 3 * 8  # the image index, row and column drawn for each patch (int64)


def check_patches_fit(n_patches: int, patch_size: int) -> None:
    """``n_patches`` patches of ``patch_size²`` float64 entries can be sampled and normalised in the
    memory available (:func:`~sae_jax._src.validate.check_fits_in_memory`): checked before allocating."""
    check_fits_in_memory(
        f"n_patches={n_patches} patches of patch_size={patch_size} ({patch_size}x{patch_size} float64, "
        f"sampled and normalised)",
        n_patches * (patch_size * patch_size * _BYTES_PER_ENTRY + _BYTES_PER_PATCH),
        hint="; ask for fewer or smaller patches",
    )


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

    The whitened images are cached in-process (:func:`whitened_natural_images`), so
    repeated calls only re-sample.

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
    check_int("n_patches", n_patches, minimum=1)
    check_int("patch_size", patch_size, minimum=1)
    check_int("seed", seed, minimum=0)
    check_int("downsample", downsample, minimum=1)
    check_patches_fit(n_patches, patch_size)  # before whitening: a size that cannot fit fails at once
    if images is None:
        white = whitened_natural_images(float(f0_factor), int(downsample))
    else:
        prepared = [
            _block_average(_centre_square(img), downsample) for img in _image_list(images, "images")
        ]
        white = whiten_images(prepared, f0_factor=f0_factor)
    rng = np.random.default_rng(seed)
    return normalize_patches(sample_patches(white, n_patches, patch_size, rng))
