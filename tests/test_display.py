"""Tests for sae_jax._src.display: display_network's tiling geometry and the PNG files."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sae_jax import InputError, init_params
from sae_jax._src.display import grid_shape
from sae_jax.display import save_filters_png, save_training_curve_png, tile_filters


@pytest.mark.parametrize(
    "n, shape",
    [(1, (1, 1)), (2, (1, 2)), (3, (1, 3)), (5, (2, 3)), (25, (5, 5)), (30, (5, 6)), (100, (10, 10)), (200, (12, 17))],
)
def test_grid_shape_matches_display_network(n, shape):
    assert grid_shape(n) == shape
    rows, cols = shape
    assert rows * cols >= n


def _reference_tile(W, pr, pc, pad):
    """display_network.m in numpy, patch by patch (row-major reshape, as our data layout)."""
    A = W - W.mean()
    R, C = grid_shape(W.shape[0])
    out = -np.ones((pad + R * (pr + pad), pad + C * (pc + pad)))
    k = 0
    for i in range(R):
        for j in range(C):
            if k >= W.shape[0]:
                continue
            clim = np.abs(A[k]).max()
            y, x = pad + i * (pr + pad), pad + j * (pc + pad)
            out[y : y + pr, x : x + pc] = A[k].reshape(pr, pc) / clim
            k += 1
    return out


@pytest.mark.parametrize("h, patch_shape, pad", [(25, None, 1), (7, (2, 5), 2), (1, None, 0), (30, (8, 8), 1)])
def test_tile_geometry_and_values(h, patch_shape, pad):
    pr, pc = patch_shape or (8, 8)
    W = np.random.default_rng(h).normal(size=(h, pr * pc))
    img = tile_filters(W, patch_shape=patch_shape, pad=pad)
    R, C = grid_shape(h)
    assert img.shape == (pad + R * (pr + pad), pad + C * (pc + pad))
    assert img.min() >= -1.0 and img.max() <= 1.0
    np.testing.assert_allclose(img, _reference_tile(W, pr, pc, pad), atol=1e-15)
    if pad:
        assert (img[:pad] == -1).all() and (img[:, :pad] == -1).all()  # background -1
    # each tile is scaled by its own max |w|: one entry of magnitude 1 per tile
    for k in range(h):
        i, j = divmod(k, C)
        y, x = pad + i * (pr + pad), pad + j * (pc + pad)
        assert np.isclose(np.abs(img[y : y + pr, x : x + pc]).max(), 1.0)


def test_tile_row_major_layout():
    W = np.zeros((1, 6))
    W[0, 1] = 1.0  # row 0, column 1 of a 2×3 patch
    img = tile_filters(W, patch_shape=(2, 3), pad=0)
    assert img.shape == (2, 3)
    assert img.argmax() == 1


def test_tile_accepts_params_and_jax_arrays():
    p = init_params(jax.random.key(0), 16, 4, dtype=jnp.float32)
    np.testing.assert_allclose(tile_filters(p), tile_filters(np.asarray(p.W1)), atol=1e-6)


def test_tile_zero_row_does_not_divide_by_zero():
    W = np.zeros((4, 4))
    img = tile_filters(W)
    assert np.isfinite(img).all()


@pytest.mark.parametrize(
    "W, kw, match",
    [
        (np.zeros((3, 10)), {}, "not a square; pass patch_shape"),
        (np.zeros((3, 10)), {"patch_shape": (3, 3)}, "rows\\*cols == n_visible=10"),
        (np.zeros(10), {}, "must be 2-D"),
        (np.full((2, 4), np.nan), {}, "must be finite"),
        (np.zeros((2, 4)), {"pad": -1}, "pad must be"),
    ],
)
def test_tile_bad_input(W, kw, match):
    with pytest.raises(InputError, match=match):
        tile_filters(W, **kw)


def _read_png(path):
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def test_save_filters_png(tmp_path):
    W = np.random.default_rng(0).normal(size=(25, 64))
    path = tmp_path / "sub" / "filters.png"
    img = save_filters_png(W, path, title="filters")
    assert img.shape == (46, 46)
    pix = _read_png(path)
    assert pix.ndim == 3 and min(pix.shape[:2]) >= 300
    gray = pix[..., :3]
    assert np.allclose(gray[..., 0], gray[..., 2])  # grayscale colormap
    save_filters_png(W, tmp_path / "plain.png")
    _read_png(tmp_path / "plain.png")
    big = np.random.default_rng(1).normal(size=(196, 784))  # MNIST-sized: >= 2 px per weight
    save_filters_png(big, tmp_path / "big.png")
    assert min(_read_png(tmp_path / "big.png").shape[:2]) >= 2 * tile_filters(big).shape[0]


def test_save_training_curve_png(tmp_path):
    rows = [
        dict(step=s, cost=10 / (s + 1) + 0.3, reconstruction=5 / (s + 1), weight_decay=0.01,
             sparsity=0.0 if s == 0 else 1 / s, rho_hat_mean=0.01 + 0.1 / (s + 1),
             rho_hat_min=0.001, rho_hat_max=0.3, step_time=0.01)
        for s in range(50)
    ]
    save_training_curve_png(rows, tmp_path / "curve.png", rho=0.01, title="run")
    assert _read_png(tmp_path / "curve.png").shape[0] > 100
    save_training_curve_png([{"step": 0, "cost": 1.0}], tmp_path / "one.png")  # sparse rows are fine
    _read_png(tmp_path / "one.png")
    with pytest.raises(InputError, match="at least one row"):
        save_training_curve_png([], tmp_path / "none.png")


def test_drawing_leaves_pyplot_and_backend_alone(tmp_path):
    import matplotlib

    before = matplotlib.get_backend() if "matplotlib.pyplot" in sys.modules else None
    save_filters_png(np.eye(4), tmp_path / "f.png")
    if before is None:
        assert "matplotlib.pyplot" not in sys.modules
    else:
        assert matplotlib.get_backend() == before


def _overlapping_log_tick_labels(fig) -> list:
    """Pairs of tick labels drawn on a log axis of ``fig`` whose boxes overlap, measured with the
    figure's own renderer (only ticks inside the view, with non-empty visible labels)."""
    import itertools

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pairs = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            lo, hi = sorted(axis.get_view_interval())
            labels = [t.label1 for t in axis.get_major_ticks() + axis.get_minor_ticks()
                      if lo * (1 - 1e-9) <= t.get_loc() <= hi * (1 + 1e-9) and t.label1.get_visible()
                      and t.label1.get_text()]
            for a, b in itertools.combinations(labels, 2):
                if a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer)):
                    pairs.append((axis.axis_name, a.get_text(), b.get_text()))
    return pairs


def _sweep_rows(rhos, rng):
    rows = []
    for rho in rhos:
        for beta in (0.0, 1.0, 3.0):
            mean = rho * (1 + rng.uniform(0, 0.5)) if beta else 0.5
            rows.append(dict(beta=beta, rho=rho, lam=1e-4, reconstruction=rng.uniform(0.05, 0.3),
                             kl_sum=10 ** rng.uniform(-3, 1), rho_hat_mean=mean, rho_hat_min=0.9 * mean,
                             rho_hat_max=1.1 * mean))
    return rows


def test_log_axis_tick_labels_never_overlap(tmp_path, monkeypatch):
    """Issue 20: on axes spanning one or two decades matplotlib labels minor ticks (2, 3, 4, 6 x 10^k)
    that ran into each other (e.g. tradeoff.png of the README's sweep, rho 0.01 and 0.05). Measured on
    the figures as saved: no two drawn tick labels of a log axis overlap, and each log axis keeps at
    least two labels."""
    from sae_jax._src import display

    figs = []
    save = display._save
    monkeypatch.setattr(display, "_save", lambda fig, path, **kw: (figs.append(fig), save(fig, path, **kw)))
    rng = np.random.default_rng(0)
    for rho, spread, e_spread in ((0.01, 0.2, 1.0), (0.1, 0.5, 0.3)):  # both overlapped before
        rh = rho * np.exp(rng.normal(0, spread, 25))
        e = np.exp(rng.normal(0, e_spread, 500))
        display.save_evaluation_png({"data": {"rho_hat": rh, "errors": e}, "held out": {"rho_hat": 1.1 * rh,
                                     "errors": 1.2 * e[:100]}}, tmp_path / "evaluation.png", rho=rho)
    for rhos in ([0.01, 0.05], [0.001, 0.3]):  # the README's sweep overlapped before
        display.save_sweep_png(_sweep_rows(rhos, rng), tmp_path / "tradeoff.png")
    assert len(figs) == 4
    for fig in figs:
        assert _overlapping_log_tick_labels(fig) == []
        fig.canvas.draw()
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                if axis.get_scale() == "log":
                    lo, hi = sorted(axis.get_view_interval())
                    drawn = [t for t in axis.get_major_ticks() + axis.get_minor_ticks()
                             if lo <= t.get_loc() <= hi and t.label1.get_text()]
                    assert len(drawn) >= 2, (axis.axis_name, [t.label1.get_text() for t in drawn])


def test_the_overlap_measure_sees_overlapping_labels():
    """The measure above is not vacuous: matplotlib's own labels on such an axis do overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([0.006, 0.07], [1, 2])
    ax.set_xscale("log")
    assert _overlapping_log_tick_labels(fig)
