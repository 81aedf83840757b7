"""Implementation of :mod:`sae_jax.display` (private; import from the public module)."""

from __future__ import annotations

import math
import os

import numpy as np

from .validate import InputError
from .metrics import rho_hat_histogram

__all__ = ["tile_filters", "save_filters_png", "save_training_curve_png", "save_evaluation_png", "save_sweep_png", "grid_shape"]


def grid_shape(n: int) -> tuple[int, int]:
    """``(rows, cols)`` of ``display_network``'s near-square grid for ``n`` tiles.

    A perfect square gives a square grid; otherwise ``cols`` starts at ``ceil(sqrt(n))``
    and grows (up to ``1.2 sqrt(n)``) looking for a divisor of ``n``; ``rows = ceil(n/cols)``.
    """
    if n < 1:
        raise InputError(f"need at least one filter, got {n}")
    r = math.isqrt(n)
    if r * r == n:
        return r, r
    cols = math.ceil(math.sqrt(n))
    while n % cols != 0 and cols < 1.2 * math.sqrt(n):
        cols += 1
    return math.ceil(n / cols), cols


def _weights(W1) -> np.ndarray:
    if hasattr(W1, "W1"):  # a Params
        W1 = W1.W1
    W = np.asarray(W1, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] < 1 or W.shape[1] < 1:
        raise InputError(f"W1 must be 2-D (n_hidden, n_visible), got shape {W.shape}")
    if not np.isfinite(W).all():
        raise InputError("W1 must be finite to be displayed, but has non-finite values")
    return W


def _patch_shape(n_visible: int, patch_shape) -> tuple[int, int]:
    if patch_shape is None:
        s = math.isqrt(n_visible)
        if s * s != n_visible:
            raise InputError(
                f"n_visible={n_visible} is not a square; pass patch_shape=(rows, cols) to display the filters"
            )
        return s, s
    shape = tuple(int(v) for v in patch_shape)
    if len(shape) != 2 or shape[0] * shape[1] != n_visible or min(shape) < 1:
        raise InputError(f"patch_shape must be (rows, cols) with rows*cols == n_visible={n_visible}, got {patch_shape!r}")
    return shape


def tile_filters(W1, *, patch_shape=None, pad: int = 1) -> np.ndarray:
    r"""Arrange each hidden unit's weights as a patch in a grid (UFLDL ``display_network``).

    As in ``display_network.m``: the overall mean of ``W1`` is subtracted, then each
    hidden unit's row is divided by its own largest absolute value,

    .. math::
        \text{tile}_j = \frac{W^{(1)}_{j\cdot} - \bar W}{\max_i |W^{(1)}_{ji} - \bar W|}
        \in [-1, 1],

    reshaped row-major to ``patch_shape`` (the layout :func:`sae_jax.data.sample_patches`
    flattens with), and placed in a near-square grid (:func:`grid_shape`), filling rows
    first, separated by ``pad`` pixels of background −1 (black).

    Args:
      W1: ``(n_hidden, n_visible)`` encoder weights (or a ``Params``).
      patch_shape: ``(rows, cols)`` of one filter; default square ``sqrt(n_visible)``.
      pad: background pixels between and around the tiles, ``>= 0``.

    Returns:
      float64 image ``(pad + R (rows + pad), pad + C (cols + pad))`` with values in [-1, 1].
    """
    W = _weights(W1)
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise InputError(f"pad must be an integer >= 0, got {pad!r}")
    h, n = W.shape
    pr, pc = _patch_shape(n, patch_shape)
    W = W - W.mean()
    clim = np.abs(W).max(axis=1, keepdims=True)
    W = W / np.where(clim > 0, clim, 1.0)
    R, C = grid_shape(h)
    out = -np.ones((pad + R * (pr + pad), pad + C * (pc + pad)))
    for j in range(h):
        r, c = divmod(j, C)
        y, x = pad + r * (pr + pad), pad + c * (pc + pad)
        out[y : y + pr, x : x + pc] = W[j].reshape(pr, pc)
    return out


def _figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


# Minor-tick labels a log axis may keep, richest first: matplotlib labels several (e.g. 2, 3, 4, 6
# x 10^k) on an axis spanning one or two decades, which on a 5-inch panel run into each other.
_MINOR_LABEL_SETS = ((2, 3, 5), (2, 5), (3,), ())


def _log_tick_label_boxes(axis, renderer) -> list:
    """Window extents of the tick labels ``axis`` draws (in its view, non-empty), major and minor."""
    lo, hi = sorted(axis.get_view_interval())
    ticks = [t for t in axis.get_major_ticks() + axis.get_minor_ticks()
             if lo * (1 - 1e-9) <= t.get_loc() <= hi * (1 + 1e-9) and t.label1.get_visible() and t.label1.get_text()]
    return sorted((t.label1.get_window_extent(renderer) for t in ticks), key=lambda b: (b.x0, b.y0))


def _untangle_log_ticks(fig) -> None:
    """Label fewer ticks on each log axis of ``fig`` whose tick labels overlap, until none do:
    fewer minor labels first (:data:`_MINOR_LABEL_SETS`), then fewer decades."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator

    class MinorLabels(LogFormatterSciNotation):  # matplotlib's choice of minor labels, within `keep`
        def __init__(self, keep):
            super().__init__(labelOnlyBase=False)
            self.keep = {1, *keep}

        def set_locs(self, locs=None):
            super().set_locs(locs)
            if self._sublabels is not None:
                self._sublabels = self._sublabels & self.keep

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()

    def tangled(axis, redraw=True):
        if redraw:
            fig.canvas.draw()
        boxes = _log_tick_label_boxes(axis, renderer)
        return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log" or not tangled(axis, redraw=False):
                continue
            for keep in _MINOR_LABEL_SETS:
                axis.set_minor_formatter(MinorLabels(keep))
                if not tangled(axis):
                    break
            else:
                for numticks in (6, 4, 3, 2):
                    axis.set_major_locator(LogLocator(numticks=numticks))
                    if not tangled(axis):
                        break


def _save(fig, path, **kw) -> None:
    if any(a.get_scale() == "log" for ax in fig.axes for a in (ax.xaxis, ax.yaxis)):
        _untangle_log_ticks(fig)
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png", **kw)


def save_filters_png(W1, path, *, patch_shape=None, title=None, pad: int = 1) -> np.ndarray:
    """Write :func:`tile_filters` as a grayscale PNG (nearest-neighbour, no smoothing).

    Args:
      W1: ``(n_hidden, n_visible)`` encoder weights (or a ``Params``).
      path: the PNG file to write (parent directories are created).
      patch_shape: ``(rows, cols)`` of one filter; default square.
      title: optional title above the grid.
      pad: background pixels between tiles.

    Returns:
      the tiled image that was drawn.
    """
    img = tile_filters(W1, patch_shape=patch_shape, pad=pad)
    H, W = img.shape
    # 500 px on the long side at 100 dpi, more for big grids (>= 2 px per weight, <= 2000 px).
    scale = max(5.0, min(20.0, 2 * max(H, W) / 100)) / max(H, W)
    fig = _figure((max(W * scale, 1.0), max(H * scale, 1.0) + (0.4 if title else 0.0)))
    ax = fig.add_axes((0.0, 0.0, 1.0, (H * scale) / fig.get_figheight()))
    ax.imshow(img, cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10, y=0.99)
    _save(fig, path, dpi=100)
    return img


_TERMS = ("cost", "reconstruction", "weight_decay", "sparsity")


def save_training_curve_png(metrics_rows, path, *, rho=None, title=None) -> None:
    """Cost and its terms against the step (log y), and the mean activation ρ̂ below.

    Args:
      metrics_rows: a sequence of dicts (e.g. the run's ``metrics.jsonl``) with ``step``
        and any of ``cost``, ``reconstruction``, ``weight_decay``, ``sparsity``,
        ``val_reconstruction`` (dashed), ``rho_hat_mean`` (and optionally ``rho_hat_min``/``rho_hat_max``); missing keys
        are skipped, non-positive values are left off the log axis.
      path: the PNG file to write.
      rho: the target ρ, drawn as a dashed line on the ρ̂ panel if given.
      title: optional figure title.
    """
    rows = [r for r in metrics_rows if isinstance(r, dict) and "step" in r]
    if not rows:
        raise InputError("metrics_rows must contain at least one row with a 'step' key")

    def series(key):
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if not pts:
            return None
        s, v = np.array(pts, dtype=np.float64).T
        return s, v

    fig = _figure((7.0, 6.0))
    ax, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (2, 1)})
    drawn = False
    for key in _TERMS:
        sv = series(key)
        if sv is None:
            continue
        s, v = sv
        ok = np.isfinite(v) & (v > 0)
        if ok.any():
            ax.plot(s[ok], v[ok], label=key.replace("_", " "), lw=2.0 if key == "cost" else 1.2)
            drawn = True
    sv = series("val_reconstruction")  # held out (TrainConfig.validation_fraction)
    if sv is not None and np.isfinite(sv[1]).all() and (sv[1] > 0).all():
        ax.plot(*sv, color="C1", ls="--", lw=1.2, label="reconstruction (held out)")
        drawn = True
    if drawn:
        ax.set_yscale("log")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylabel("cost terms")
    ax.grid(True, which="both", alpha=0.3)
    sv = series("rho_hat_mean")
    if sv is not None:
        ax2.plot(*sv, color="C4", label="mean ρ̂")
        lo, hi = series("rho_hat_min"), series("rho_hat_max")
        if lo is not None and hi is not None and len(lo[0]) == len(hi[0]):
            ax2.fill_between(lo[0], lo[1], hi[1], color="C4", alpha=0.15, label="min–max ρ̂")
    if rho is not None:
        ax2.axhline(float(rho), color="k", ls="--", lw=1.0, label=f"ρ = {float(rho):g}")
    if sv is not None or rho is not None:
        ax2.legend(loc="upper right", fontsize=8)
    ax2.set_ylabel("ρ̂")
    ax2.set_xlabel("step")
    ax2.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path, dpi=100)


def save_evaluation_png(columns: dict, path, *, rho: float, title=None) -> None:
    """Two panels: the histogram of ρ̂ over hidden units (log scale) with the target ρ marked, and
    the histogram of the per-sample reconstruction error e_i = ½‖x̂ − x‖² (log scale) with its
    median and mean marked.

    Args:
      columns: ``{name: metrics}`` with each ``metrics`` from
        :func:`sae_jax.metrics.evaluate` ``(..., details=True)`` (arrays ``rho_hat`` and
        ``errors``); the first is drawn filled, the others (e.g. held-out rows) as outlines.
      path: the PNG file to write.
      rho: the target ρ.
      title: optional figure title.
    """
    if not columns:
        raise InputError("columns must hold at least one evaluation")
    fig = _figure((10.0, 4.0))
    ax_r, ax_e = fig.subplots(1, 2)
    all_rh = np.concatenate([np.asarray(m["rho_hat"], np.float64) for m in columns.values()])
    _, edges = rho_hat_histogram(all_rh, rho=float(rho), bins=30)
    errs = [np.asarray(m["errors"], np.float64) for m in columns.values()]
    pos = np.concatenate([e[e > 0] for e in errs])
    lo, hi = (pos.min(), pos.max()) if pos.size else (1e-12, 1.0)
    e_edges = np.geomspace(lo / 1.5, hi * 1.5, 41)
    for i, (name, m) in enumerate(columns.items()):
        rh = np.clip(np.asarray(m["rho_hat"], np.float64), edges[0], edges[-1])
        e = np.clip(np.asarray(m["errors"], np.float64), e_edges[0], e_edges[-1])
        style = dict(alpha=0.6) if i == 0 else dict(histtype="step", lw=1.5)
        ax_r.hist(rh, edges, color=f"C{i}", label=f"{name} ({len(rh)} units)", **style)
        w = np.full(e.shape, 1.0 / max(len(e), 1))  # fractions, so columns of different m compare
        ax_e.hist(e, e_edges, weights=w, color=f"C{i}", label=f"{name} ({len(e)} samples)", **style)
        ax_e.axvline(float(np.median(m["errors"])), color=f"C{i}", ls="--", lw=1.0,
                     label=f"median {float(np.median(m['errors'])):.3g}")
        ax_e.axvline(float(np.mean(m["errors"])), color=f"C{i}", ls=":", lw=1.0,
                     label=f"mean {float(np.mean(m['errors'])):.3g}")
    ax_r.axvline(float(rho), color="k", ls="--", lw=1.2, label=f"target ρ = {float(rho):g}")
    ax_r.set_xscale("log")
    ax_r.set_xlabel("mean activation ρ̂ⱼ of a hidden unit")
    ax_r.set_ylabel("hidden units")
    ax_r.set_title("ρ̂ against ρ", fontsize=10)
    ax_r.legend(fontsize=8)
    ax_e.set_xscale("log")
    ax_e.set_xlabel("reconstruction error per sample, ½‖x̂ − x‖²")
    ax_e.set_ylabel("fraction of samples")
    ax_e.set_title("per-sample reconstruction error", fontsize=10)
    ax_e.legend(fontsize=8)
    for ax in (ax_r, ax_e):
        ax.grid(True, which="major", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path, dpi=100)


def save_sweep_png(summary, path, *, title=None) -> None:
    r"""The trade-off across a hyperparameter sweep (:func:`sae_jax.training.sweep`'s summary).

    Left: the reconstruction term :math:`\frac1m\sum_i\tfrac12\lVert\hat x^{(i)}-x^{(i)}\rVert^2`
    against the unweighted sparsity term :math:`\sum_j\mathrm{KL}(\rho\Vert\hat\rho_j)` (log y),
    one line per (ρ, λ) through its settings in order of β, each point labelled with its β.
    Right: the mean activation :math:`\hat\rho` (bars: min–max over hidden units) against the
    target ρ (log–log, the diagonal :math:`\hat\rho = \rho` dashed), one series per (β, λ).
    Diverged settings are drawn hollow.

    Args:
      summary: a sequence of dicts with ``beta``, ``rho``, ``lam``, ``reconstruction``,
        ``kl_sum``, ``rho_hat_mean`` (and optionally ``rho_hat_min``, ``rho_hat_max``,
        ``diverged_step``).
      path: the PNG file to write.
      title: optional figure title.
    """
    need = ("beta", "rho", "lam", "reconstruction", "kl_sum", "rho_hat_mean")
    rows = [r for r in summary if isinstance(r, dict) and all(r.get(k) is not None for k in need)]
    if not rows:
        raise InputError(f"summary must contain at least one row with {', '.join(need)}")
    from matplotlib import colormaps

    lams = sorted({r["lam"] for r in rows})
    rhos = sorted({r["rho"] for r in rows})
    betas = sorted({r["beta"] for r in rows})
    markers = "osD^v<>ph*"

    def lam_label(lam):
        return f", λ={lam:g}" if len(lams) > 1 else ""

    fig = _figure((11.5, 5.0))
    ax, ax2 = fig.subplots(1, 2)
    xr = np.array([r["reconstruction"] for r in rows], np.float64)
    x_span = float(np.ptp(xr[np.isfinite(xr)])) if np.isfinite(xr).any() else 0.0
    labelled: list = []  # (x, log10 y, text): one label for settings drawn at the same place

    def label(xv, yv, text):
        ly = math.log10(yv) if yv > 0 and math.isfinite(yv) else 0.0
        for lx, lly, t in labelled:
            if abs(xv - lx) <= 0.01 * x_span and abs(ly - lly) <= 0.12 and t == text:
                return
        labelled.append((xv, ly, text))
        ax.annotate(text, (xv, yv), textcoords="offset points", xytext=(4, 3), fontsize=7)

    for i, rho in enumerate(rhos):
        for j, lam in enumerate(lams):
            pts = sorted((r for r in rows if r["rho"] == rho and r["lam"] == lam), key=lambda r: r["beta"])
            if not pts:
                continue
            color = f"C{i % 10}"
            xs = np.array([r["reconstruction"] for r in pts], np.float64)
            ys = np.array([r["kl_sum"] for r in pts], np.float64)
            ax.plot(xs, ys, "-", color=color, lw=1.0, alpha=0.6)
            for r, xv, yv in zip(pts, xs, ys):
                hollow = r.get("diverged_step") is not None
                ax.plot([xv], [yv], markers[j % len(markers)], color=color, ms=6,
                        mfc="none" if hollow else color)
                label(xv, yv, f"β={r['beta']:g}")
            ax.plot([], [], markers[j % len(markers)] + "-", color=color, label=f"ρ={rho:g}{lam_label(lam)}")
    ys_all = np.array([r["kl_sum"] for r in rows], np.float64)
    if np.all(np.isfinite(ys_all) & (ys_all > 0)):
        ax.set_yscale("log")
    ax.set_xlabel("reconstruction term  (1/m) Σ ½‖x̂ − x‖²")
    ax.set_ylabel("sparsity term without β:  Σⱼ KL(ρ ‖ ρ̂ⱼ)")
    ax.set_title("reconstruction vs sparsity (lines: increasing β)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")

    cmap = colormaps["viridis"]
    nb = len(betas)
    for bi, beta in enumerate(betas):
        color = cmap(0.0 if nb == 1 else bi / (nb - 1) * 0.9)
        for j, lam in enumerate(lams):
            pts = sorted((r for r in rows if r["beta"] == beta and r["lam"] == lam), key=lambda r: r["rho"])
            if not pts:
                continue
            # spread the series a little along x so bars at the same rho do not overlap
            shift = 1.0 + 0.06 * ((bi * len(lams) + j) - (nb * len(lams) - 1) / 2)
            xs = np.array([r["rho"] for r in pts], np.float64) * shift
            ys = np.array([r["rho_hat_mean"] for r in pts], np.float64)
            lo = np.array([r.get("rho_hat_min", r["rho_hat_mean"]) for r in pts], np.float64)
            hi = np.array([r.get("rho_hat_max", r["rho_hat_mean"]) for r in pts], np.float64)
            ax2.errorbar(xs, ys, yerr=np.vstack([ys - lo, hi - ys]), fmt=markers[j % len(markers)] + "-",
                         color=color, ms=5, lw=1.0, capsize=2, alpha=0.9, label=f"β={beta:g}{lam_label(lam)}")
            for r, xv, yv in zip(pts, xs, ys):
                if r.get("diverged_step") is not None:
                    ax2.plot([xv], [yv], "x", color="r", ms=8)
    lo_all = min(min(rhos), min(r.get("rho_hat_min", r["rho_hat_mean"]) for r in rows))
    if lo_all > 0:
        ax2.set_xscale("log")
        ax2.set_yscale("log")
    ref = np.array([min(rhos) / 1.5, max(rhos) * 1.5])
    ax2.plot(ref, ref, "k--", lw=1.0, label="ρ̂ = ρ")
    ax2.set_xlabel("target ρ")
    ax2.set_ylabel("mean ρ̂ over hidden units (bars: min–max)")
    ax2.set_title("achieved vs target activation", fontsize=10)
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _save(fig, path, dpi=100)
