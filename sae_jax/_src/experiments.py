"""Implementation of :mod:`sae_jax.experiments` (private; import from the public module)."""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from .display import save_filters_png
from .heldout import Row, Table, check_labelled, check_seeds, ordered_split, softmax_accuracy, split
from .params import Params
from .presets import SELF_TAUGHT_CONFIG, SELF_TAUGHT_MNIST_CONFIG, STACKED_CONFIGS, STACKED_MNIST_CONFIGS, UFLDL_MNIST
from .softmax import accuracy
from .stacked import fine_tune, init_stack, pretrain, stack_features, stacked_predict
from .training import TrainConfig, train
from .validate import InputError

__all__ = [
    "Row",
    "Table",
    "split",
    "probe",
    "self_taught",
    "stacked_digits",
    "second_layer_filters",
    "SELF_TAUGHT_CONFIG",
    "STACKED_CONFIGS",
    "SELF_TAUGHT_MNIST_CONFIG",
    "STACKED_MNIST_CONFIGS",
    "UFLDL_MNIST",
]

# --- helpers ------------------------------------------------------------------------------------


def _check_int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        raise InputError(f"{name} must be an integer >= {lo}, got {v!r}")


def _rows(m, test, *, test_fraction, seed):
    """``(train, test)`` row indices into ``x`` (+ the test set's rows, appended after its ``m``)."""
    if test is None:
        return split(m, test_fraction=test_fraction, seed=seed)
    return np.arange(m), np.arange(m, m + len(test[1]))


def _with_test(x, y, test):
    """``x`` and ``y`` with the test set's rows appended (the rows :func:`_rows` indexes)."""
    return (x, y) if test is None else (np.concatenate([x, test[0]]), np.concatenate([y, test[1]]))


def _test_set(test, x, y):
    """``test`` = ``(x_test, y_test)`` checked against the training data ``x`` (same features), or None."""
    if test is None:
        return None
    if not isinstance(test, (tuple, list)) or len(test) != 2:
        raise InputError(f"test must be a pair (x_test, y_test) or None, got {type(test).__name__}")
    x_te, y_te = check_labelled(*test, name="x_test")
    if x_te.shape[1] != x.shape[1]:
        raise InputError(f"x_test has {x_te.shape[1]} features per row, x has {x.shape[1]}; expected the same")
    return x_te, y_te


def _features(layers, x):
    return stack_features(layers, jnp.asarray(x, layers[0].W1.dtype))


def second_layer_filters(layers: Sequence[Params]) -> np.ndarray:
    r"""A picture of the second layer's units in input space: the rows of :math:`W^{(2)}W^{(1)}`, ``(h_2, n)``.

    Each second-layer unit's weights over the first layer's features, mapped back through the
    first layer's filters (the linear approximation UFLDL's notes use to display deeper units;
    it ignores the sigmoid between the layers). Pass it to :func:`sae_jax.display.save_filters_png`.

    Examples:
      >>> import jax
      >>> from sae_jax import init_params
      >>> second_layer_filters([init_params(jax.random.key(0), 64, 25), init_params(jax.random.key(1), 25, 9)]).shape
      (9, 64)
    """
    if len(layers) < 2:
        raise InputError(f"need at least two layers for a second-layer picture, got {len(layers)}")
    return np.asarray(layers[1].W1) @ np.asarray(layers[0].W1)


def _stages(progress, total: int):
    """``tick(stage)``: calls ``progress(done, total, stage)`` before each stage; ``tick(None)`` at the end."""
    done = [0]

    def tick(stage):
        if progress is not None:
            progress(done[0], total, "done" if stage is None else stage)
        done[0] += 1

    return tick


def _save_filters(W, path, title) -> str:
    save_filters_png(W, path, title=title)
    return os.fspath(path)


# --- the experiments ------------------------------------------------------------------------------


def probe(
    params,
    x,
    y,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.3,
    test=None,
    lam: float = 1e-4,
    steps: int = 100,
    progress: Callable[[int, int, str], None] | None = None,
) -> Table:
    """Held-out softmax accuracy on an autoencoder's features against raw inputs.

    Args:
      params: a :class:`~sae_jax.Params` (features :func:`~sae_jax.encode`) or a sequence of them (a
        stack's last features, :func:`sae_jax.stacked.stack_features`).
      x: ``(m, n)`` inputs (converted to the params' dtype); ``y``: ``(m,)`` integer labels.
      seeds: one random split (and softmax start) per seed.
      test_fraction: the held-out share of the rows.
      test: optional ``(x_test, y_test)``, a separate test set (MNIST's t10k): the classifiers then
        train on every row of ``x`` and are tested on it (``test_fraction`` unused; the seeds vary
        only the softmax start), as the UFLDL softmax exercise does.
      lam, steps: the softmax's weight decay and L-BFGS iterations (UFLDL: 1e-4, 100).
      progress: optional ``progress(done, total, stage)``, called before each stage (``done`` of
        ``total`` finished, ``stage`` names the next, e.g. ``"seed 0: softmax on features"``) and
        once at the end (``done == total``, ``"done"``).

    Returns:
      :class:`Table` with rows ``raw inputs (n)`` and ``features (h)``.
    """
    layers = (params,) if isinstance(params, Params) else tuple(params)
    if not layers or not all(isinstance(p, Params) for p in layers):
        raise InputError(f"params must be a sae_jax.Params or a sequence of them, got {type(params).__name__}")
    x, y = check_labelled(x, y)
    test = _test_set(test, x, y)
    seeds = check_seeds(seeds)
    m = len(y)
    x, y = _with_test(x, y, test)
    n_classes = max(int(y.max()) + 1, 2)
    dtype = layers[0].W1.dtype
    xd = np.asarray(x, dtype)
    feats = np.asarray(_features(layers, xd))
    raw, ours = [], []
    tick = _stages(progress, 2 * len(seeds))
    for s in seeds:
        tr, te = _rows(m, test, test_fraction=test_fraction, seed=s)
        kw = dict(n_classes=n_classes, lam=lam, steps=steps, seed=s)
        tick(f"seed {s}: softmax on raw inputs")
        raw.append(softmax_accuracy(xd[tr], y[tr], xd[te], y[te], **kw))
        tick(f"seed {s}: softmax on features")
        ours.append(softmax_accuracy(feats[tr], y[tr], feats[te], y[te], **kw))
    tick(None)
    held = (f"{len(te)} of {m} rows held out" if test is None else
            f"trained on {m} rows, tested on a separate test set of {len(te)}")
    return Table(
        f"Softmax probe: held-out accuracy ({held}, {n_classes} classes)",
        seeds,
        (Row(f"raw inputs ({x.shape[1]})", tuple(raw)), Row(f"features ({feats.shape[1]})", tuple(ours))),
        (f"softmax: lambda = {lam:g}, at most {steps} L-BFGS iterations, no intercept (UFLDL's softmaxTrain)",),
    )


def self_taught(
    x,
    y,
    *,
    config: TrainConfig = SELF_TAUGHT_CONFIG,
    unlabelled_classes: Sequence[int] = (5, 6, 7, 8, 9),
    labelled_classes: Sequence[int] = (0, 1, 2, 3, 4),
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.5,
    ordered: bool = False,
    lam: float = 1e-4,
    softmax_steps: int = 100,
    picture=None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Table:
    """UFLDL's self-taught learning: features from the unlabelled classes, a classifier on the others.

    Per seed: a sparse autoencoder (``config`` with ``seed`` set to the seed) trained with
    :func:`sae_jax.training.train` on the rows of ``unlabelled_classes``; the rows of ``labelled_classes``
    (relabelled ``0..len-1`` in the given order) split by the seed (``test_fraction`` held out; the
    exercise: half); softmax on the features and on the raw pixels.

    Args:
      ordered: the exercise's split instead of a random one per seed
        (:func:`~sae_jax._src.heldout.ordered_split`: the first ``1 - test_fraction`` of the labelled
        rows, in the data's order, train; the same rows for every seed).
      picture: optional PNG path for the first seed's learned filters (square inputs only).
      progress: optional ``progress(done, total, stage)`` as for :func:`probe` (two stages per
        seed: the autoencoder, the two classifiers).

    Returns:
      :class:`Table` with rows ``raw pixels (n)`` and ``self-taught features (h)``.
    """
    x, y = check_labelled(x, y)
    seeds = check_seeds(seeds)
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a sae_jax.training.TrainConfig, got {type(config).__name__}")
    unl, lab = tuple(int(c) for c in unlabelled_classes), tuple(int(c) for c in labelled_classes)
    if len(lab) < 2 or set(unl) & set(lab) or not unl:
        raise InputError(
            f"labelled_classes (at least 2) and unlabelled_classes (at least 1) must not overlap, got {lab} and {unl}"
        )
    u_rows = np.isin(y, unl)
    l_rows = np.isin(y, lab)
    for name, rows, cls in (("unlabelled", u_rows, unl), ("labelled", l_rows, lab)):
        if rows.sum() < 2:
            raise InputError(f"y has {int(rows.sum())} rows of the {name} classes {cls}; need at least 2")
    x_unl = x[u_rows]
    x_lab = x[l_rows]
    order = {c: i for i, c in enumerate(lab)}
    y_lab = np.asarray([order[int(c)] for c in y[l_rows]], np.int64)
    raw, ours, written = [], [], []
    tick = _stages(progress, 2 * len(seeds))
    for s in seeds:
        tick(f"seed {s}: autoencoder on classes {list(unl)}")
        ae = train(x_unl, dataclasses.replace(config, seed=s), pictures=False).params
        xd = np.asarray(x_lab, ae.W1.dtype)
        feats = np.asarray(_features((ae,), xd))
        if ordered:
            tr, te = ordered_split(len(y_lab), test_fraction=test_fraction)
        else:
            tr, te = split(len(y_lab), test_fraction=test_fraction, seed=s)
        kw = dict(n_classes=len(lab), lam=lam, steps=softmax_steps, seed=s)
        tick(f"seed {s}: softmax on raw pixels and features")
        raw.append(softmax_accuracy(xd[tr], y_lab[tr], xd[te], y_lab[te], **kw))
        ours.append(softmax_accuracy(feats[tr], y_lab[tr], feats[te], y_lab[te], **kw))
        if picture is not None and s == seeds[0]:
            written.append(_save_filters(ae.W1, picture, f"self-taught features (classes {unl}), seed {s}"))
    tick(None)
    notes = [
        f"autoencoder: {x_unl.shape[0]} rows of classes {list(unl)}, n_hidden = {config.n_hidden}, rho = {config.rho:g}, "
        f"lambda = {config.lam:g}, beta = {config.beta:g}, {config.steps} {config.optimizer} steps",
        f"classifier: {len(tr)} train / {len(te)} test rows of classes {list(lab)} "
        f"({'the first and the last rows, in order' if ordered else 'a random split per seed'}); "
        f"softmax lambda = {lam:g}, {softmax_steps} iterations",
    ] + [f"wrote {p}" for p in written]
    return Table(
        "Self-taught learning: held-out accuracy on the labelled classes",
        seeds,
        (Row(f"raw pixels ({x.shape[1]})", tuple(raw)), Row(f"self-taught features ({config.n_hidden})", tuple(ours))),
        tuple(notes),
    )


def stacked_digits(
    x,
    y,
    *,
    configs: Sequence[TrainConfig] = STACKED_CONFIGS,
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.3,
    test=None,
    lam: float = 1e-4,
    softmax_steps: int = 100,
    fine_tune_steps: int = 400,
    picture=None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Table:
    """UFLDL's stacked autoencoder exercise: accuracy before and after fine-tuning, against raw pixels.

    Per seed: a split (``test_fraction`` held out); :func:`sae_jax.stacked.pretrain` on the training
    rows (each config's ``seed`` offset by the seed); a softmax on the last layer's features
    (:func:`~sae_jax.stacked.init_stack`); :func:`~sae_jax.stacked.fine_tune` of the whole stack.

    Args:
      test: optional ``(x_test, y_test)``, a separate test set (MNIST's t10k, as the exercise):
        every row of ``x`` then trains, the test set tests (``test_fraction`` unused; the seeds vary
        the initialisations only).
      picture: optional PNG path: the first seed's second layer, :func:`second_layer_filters`
        (before fine-tuning; a second file ``*_fine_tuned.png`` after), square inputs only.
      progress: optional ``progress(done, total, stage)`` as for :func:`probe` (three stages per
        seed: pretraining, the softmax layers, fine-tuning).

    Returns:
      :class:`Table` with rows ``raw pixels``, ``stack, before fine-tuning``, ``stack, after fine-tuning``.
    """
    x, y = check_labelled(x, y)
    seeds = check_seeds(seeds)
    configs = tuple(configs)
    if len(configs) < 1 or not all(isinstance(c, TrainConfig) for c in configs):
        raise InputError("configs must be a non-empty sequence of sae_jax.training.TrainConfig (one per layer)")
    _check_int("fine_tune_steps", fine_tune_steps, 0)
    test = _test_set(test, x, y)
    m = len(y)
    x, y = _with_test(x, y, test)
    n_classes = max(int(y.max()) + 1, 2)
    raw, before, after, written = [], [], [], []
    tick = _stages(progress, 3 * len(seeds))
    for s in seeds:
        tr, te = _rows(m, test, test_fraction=test_fraction, seed=s)
        cfgs = [dataclasses.replace(c, seed=c.seed + s) for c in configs]
        tick(f"seed {s}: pretraining {len(cfgs)} autoencoder(s)")
        layers = pretrain(x[tr], cfgs)
        xd = np.asarray(x, layers[0].W1.dtype)
        x_tr, x_te = jnp.asarray(xd[tr]), jnp.asarray(xd[te])
        y_tr = jnp.asarray(y[tr])
        tick(f"seed {s}: softmax on the stack and on raw pixels")
        stack0 = init_stack(layers, x_tr, y_tr, n_classes=n_classes, lam=lam, steps=softmax_steps, seed=s)
        raw.append(softmax_accuracy(xd[tr], y[tr], xd[te], y[te], n_classes=n_classes, lam=lam, steps=softmax_steps, seed=s))
        tick(f"seed {s}: fine-tuning")
        stack1 = fine_tune(stack0, x_tr, y_tr, lam=lam, steps=fine_tune_steps)
        before.append(accuracy(stacked_predict(stack0, x_te), y[te]))
        after.append(accuracy(stacked_predict(stack1, x_te), y[te]))
        if picture is not None and s == seeds[0] and len(layers) >= 2:
            root, ext = os.path.splitext(os.fspath(picture))
            written.append(_save_filters(second_layer_filters(stack0.layers), picture, f"second layer (W2 W1), seed {s}"))
            written.append(
                _save_filters(second_layer_filters(stack1.layers), f"{root}_fine_tuned{ext or '.png'}",
                              f"second layer (W2 W1) after fine-tuning, seed {s}")
            )
    tick(None)
    sizes = " -> ".join([str(x.shape[1])] + [str(c.n_hidden) for c in configs] + [str(n_classes)])
    notes = [
        f"network {sizes}; pretraining: " + "; ".join(
            f"rho = {c.rho:g}, lambda = {c.lam:g}, beta = {c.beta:g}, {c.steps} steps" for c in configs
        ),
        f"softmax lambda = {lam:g} ({softmax_steps} iterations); fine-tuning: lambda on theta only, "
        f"at most {fine_tune_steps} L-BFGS iterations; {len(tr)} train / {len(te)} test rows"
        + (" (a separate test set)" if test is not None else ""),
    ] + [f"wrote {p}" for p in written]
    return Table(
        "Stacked autoencoder: held-out accuracy before and after fine-tuning",
        seeds,
        (
            Row(f"raw pixels ({x.shape[1]})", tuple(raw)),
            Row("stack, before fine-tuning", tuple(before)),
            Row("stack, after fine-tuning", tuple(after)),
        ),
        tuple(notes),
    )
