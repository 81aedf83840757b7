r"""Held-out evaluation over seeds: train/test splits, labelled-data checks, a table of one accuracy per seed.

:func:`split` draws the held-out rows of one seed; :func:`ordered_split` is the UFLDL exercises'
(the first rows train, the rest test, the same for every seed); :func:`check_labelled` and
:func:`check_seeds` check an experiment's inputs; :func:`softmax_accuracy` is one classifier's
held-out accuracy. :class:`Row` holds one method's accuracy on each seed with their mean and
sample standard deviation; :class:`Table` is an experiment's result (:mod:`sae_jax.experiments`),
printed by :meth:`Table.text` (mean ± std, range, each seed) and saved by :meth:`Table.to_dict`.

Examples:
  >>> train, test = split(10, test_fraction=0.3, seed=0)
  >>> len(train), len(test)
  (7, 3)
  >>> [a.tolist() for a in ordered_split(5, test_fraction=0.5)]  # MATLAB's round(5/2) = 3 train
  [[0, 1, 2], [3, 4]]
  >>> t = Table("Accuracy", (0, 1), (Row("raw pixels", (0.95, 0.97)),))
  >>> round(t.rows[0].mean, 4), round(t.rows[0].std, 4)
  (0.96, 0.0141)
  >>> print(t.text())
  Accuracy
  ========
              accuracy (mean ± std)            range  per seed [0, 1]
  raw pixels         0.9600 ± 0.0141    0.9500–0.9700  0.9500, 0.9700
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .softmax import accuracy, softmax_predict, train_softmax
from .validate import InputError

__all__ = ["Row", "Table", "split", "ordered_split", "check_labelled", "check_seeds", "softmax_accuracy"]


class Row(NamedTuple):
    """One method's accuracy on each seed."""

    name: str
    values: tuple  # tuple[float, ...], one per seed

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (0 for one seed)."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0


class Table(NamedTuple):
    """An experiment's result: rows of accuracies over ``seeds``, printable with :meth:`text`."""

    title: str
    seeds: tuple
    rows: tuple  # tuple[Row, ...]
    notes: tuple = ()  # tuple[str, ...]: sizes, settings, files written

    def text(self) -> str:
        """A plain-text table: method, mean ± std over seeds, range, and each seed's value."""
        width = max(len(r.name) for r in self.rows)
        lines = [self.title, "=" * len(self.title)]
        head = f"{'':<{width}}  {'accuracy (mean ± std)':>22}  {'range':>15}  per seed {list(self.seeds)}"
        lines.append(head)
        for r in self.rows:
            rng = f"{min(r.values):.4f}–{max(r.values):.4f}"
            per = ", ".join(f"{v:.4f}" for v in r.values)
            lines.append(f"{r.name:<{width}}  {r.mean:>13.4f} ± {r.std:.4f}  {rng:>15}  {per}")
        lines += list(self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "seeds": list(self.seeds),
            "rows": [{"name": r.name, "values": list(r.values), "mean": r.mean, "std": r.std} for r in self.rows],
            "notes": list(self.notes),
        }


def _check_test_fraction(test_fraction) -> None:
    if not (isinstance(test_fraction, numbers.Real) and 0 < test_fraction < 1):
        raise InputError(f"test_fraction must be in (0, 1), got {test_fraction!r}")


def _check_sizes(n_train: int, m: int, test_fraction) -> None:
    if n_train < 1 or n_train > m - 1:
        raise InputError(f"test_fraction={test_fraction} leaves no training or no test rows of m = {m}")


def split(m: int, *, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``range(m)`` into ``(train, test)`` index arrays, ``round(test_fraction * m)`` in test.

    Examples:
      >>> train, test = split(10, test_fraction=0.3, seed=0)
      >>> len(train), len(test), sorted(np.concatenate([train, test]).tolist()) == list(range(10))
      (7, 3, True)
    """
    _check_test_fraction(test_fraction)
    n_test = int(round(test_fraction * m))
    _check_sizes(m - n_test, m, test_fraction)
    perm = np.random.default_rng(seed).permutation(m)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def ordered_split(m: int, *, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The UFLDL exercises' split of ``range(m)``: the first ``n`` rows train, the other ``m - n`` test.

    ``n = round((1 - test_fraction) m)``, rounding halves up as MATLAB's ``round`` does
    (``stlExercise.m``: ``numTrain = round(numel(labeledSet)/2); trainSet = labeledSet(1:numTrain)``).
    No randomness: the same rows for every seed.

    Examples:
      >>> [len(a) for a in ordered_split(7, test_fraction=0.5)]  # round(3.5) = 4 train
      [4, 3]
    """
    _check_test_fraction(test_fraction)
    n_train = int(np.floor((1 - test_fraction) * m + 0.5))
    _check_sizes(n_train, m, test_fraction)
    return np.arange(n_train), np.arange(n_train, m)


def check_labelled(x, y, *, name: str = "x") -> tuple[np.ndarray, np.ndarray]:
    """``x`` as a 2-D finite float numpy array ``(m, n)``, ``m >= 2``; ``y`` as its ``(m,)`` integer labels >= 0.

    Raises:
      InputError: naming ``name`` (and ``y`` as ``name``'s labels) and what was expected.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    ys = "y" if name == "x" else f"the labels of {name}"
    if x.ndim != 2 or x.shape[0] < 2 or not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"{name} must be a 2-D floating array (m, n) with m >= 2, got dtype {x.dtype} and shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"{name} must be finite")
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{ys} must be integer class indices of shape ({x.shape[0]},) (one per row of {name}), "
                         f"got dtype {y.dtype} and shape {y.shape}")
    if y.min() < 0:
        raise InputError(f"{ys} must hold class indices >= 0, got {int(y.min())}")
    return x, y


def check_seeds(seeds: Sequence[int]) -> tuple:
    """``seeds`` as a non-empty tuple of integers >= 0 (else one :class:`~sae_jax.InputError`)."""
    seeds = tuple(seeds)
    if not seeds:
        raise InputError("seeds must be a non-empty sequence of integers >= 0")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise InputError(f"each seed must be an integer >= 0, got {s!r}")
    return seeds


def softmax_accuracy(f_train, y_train, f_test, y_test, *, n_classes: int, lam: float, steps: int, seed: int) -> float:
    """Held-out accuracy of a softmax (:func:`sae_jax.softmax.train_softmax`) trained on ``(f_train, y_train)``."""
    model = train_softmax(f_train, y_train, n_classes=n_classes, lam=lam, steps=steps, seed=seed)
    return accuracy(softmax_predict(model, f_test), y_test)
