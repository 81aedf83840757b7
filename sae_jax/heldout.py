r"""Held-out evaluation over seeds: a seeded train/test split and a table of one accuracy per seed.

:func:`split` draws the held-out rows of one seed; :class:`Row` holds one method's accuracy on
each seed with their mean and sample standard deviation; :class:`Table` is an experiment's
result (:mod:`sae_jax.experiments`), printed by :meth:`Table.text` (mean ± std, range, each seed)
and saved by :meth:`Table.to_dict` (JSON-ready).

Examples:
  >>> train, test = split(10, test_fraction=0.3, seed=0)
  >>> len(train), len(test)
  (7, 3)
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
from typing import NamedTuple

import numpy as np

from .validate import InputError

__all__ = ["Row", "Table", "split"]


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


def split(m: int, *, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``range(m)`` into ``(train, test)`` index arrays, ``round(test_fraction * m)`` in test.

    Examples:
      >>> train, test = split(10, test_fraction=0.3, seed=0)
      >>> len(train), len(test), sorted(np.concatenate([train, test]).tolist()) == list(range(10))
      (7, 3, True)
    """
    if not (isinstance(test_fraction, numbers.Real) and 0 < test_fraction < 1):
        raise InputError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    n_test = int(round(test_fraction * m))
    if n_test < 1 or n_test > m - 1:
        raise InputError(f"test_fraction={test_fraction} leaves no training or no test rows of m = {m}")
    perm = np.random.default_rng(seed).permutation(m)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])
