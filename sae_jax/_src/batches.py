r"""The batch plan: what each optimizer step's objective is evaluated on.

A :class:`BatchPlan` (from a config: :func:`batch_plan`) decides, for step :math:`t` of a run
whose data are ``x`` ``(m, n_visible)`` and whose minibatch key is ``key``:

* **which rows**: all of them (full batch: L-BFGS), or rows
  :math:`\pi_e[(t \bmod s) b : (t \bmod s) b + b]` of the permutation
  :math:`\pi_e` = ``permutation(fold_in(key, e), m)`` of epoch :math:`e = \lfloor t / s \rfloor`,
  with :math:`b` = ``batch_size`` and :math:`s = \max(\lfloor m / b \rfloor, 1)` batches per
  epoch (the last incomplete batch of an epoch is dropped);
* **which** :math:`\hat\rho`: the batch's own (``rho_hat="batch"``), or the running estimate
  carried in the state (``rho_hat="ema"``: the batch is an
  :class:`~sae_jax._src.minibatch.EmaBatch`, and the step's new estimate is carried on,
  :meth:`BatchPlan.next_rho_ema`);
* **which input**: the rows themselves, or (denoising) a fresh corruption of them drawn from
  :func:`corruption_key` ``(key, t)`` — a function of the seed and the step only, so a resumed
  run draws the same corruptions (the batch is then a
  :class:`~sae_jax._src.step.DenoisingBatch` ``(target, corrupted input)``).

The compiled loop (:mod:`sae_jax._src.loop`) carries the epoch's permutation between steps
(:meth:`BatchPlan.start`, then :meth:`BatchPlan.draw` once per step); everything here is pure
and traceable, and a plan is a hashable constant of the compiled program.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from sae_jax._src.batches import batch_plan
  >>> from sae_jax.training import TrainConfig
  >>> plan = batch_plan(TrainConfig(optimizer="adam", batch_size=2))
  >>> x = jnp.arange(10.0).reshape(5, 2)
  >>> key = jax.random.key_data(jax.random.key(0))
  >>> perm = plan.start(key, jnp.int32(0), 5)
  >>> batch, perm = plan.draw(x, key, jnp.int32(1), perm, None)
  >>> batch.shape, plan.full_batch, plan.fresh_objective
  ((2, 2), False, False)
  >>> full = batch_plan(TrainConfig())  # L-BFGS: every row, every step
  >>> full.draw(x, key, jnp.int32(1), full.start(key, 0, 5), None)[0] is x
  True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .config import TrainConfig
from .minibatch import EmaBatch
from .step import DenoisingBatch
from .variants import corrupt

__all__ = ["NOISE_STREAM", "BatchPlan", "batch_plan", "corruption_key"]

#: ``fold_in`` constant of the denoising corruptions' key stream (beside the minibatch epochs' stream).
NOISE_STREAM = 2**31 - 1


def corruption_key(key: jax.Array, step) -> jax.Array:
    """The key of step ``step``'s corruption, from the run's raw minibatch key data ``key`` ``(2,)``."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(key), NOISE_STREAM), step)


class BatchPlan(NamedTuple):
    """How each step's batch is drawn (static: part of the compiled program)."""

    batch_size: int | None  # rows per step; None: every row (full batch)
    ema: bool  # the batch carries the running rho_hat (EmaBatch)
    corruption: str  # "none", or the denoising corruption of each step's input
    corruption_level: float

    @property
    def full_batch(self) -> bool:
        return self.batch_size is None

    @property
    def fresh_objective(self) -> bool:
        """Whether the objective changes every step (a new corruption): a line search's cached
        value and gradient, of the previous step's objective, must not be reused."""
        return self.corruption != "none"

    def _batches_per_epoch(self, m: int) -> int:
        return max(m // self.batch_size, 1)

    def _permutation(self, key: jax.Array, step, m: int) -> jax.Array:
        epoch = step // self._batches_per_epoch(m)
        return jax.random.permutation(jax.random.fold_in(jax.random.wrap_key_data(key), epoch), m)

    def start(self, key: jax.Array, step, m: int) -> jax.Array:
        """The carry of a run (or chunk) starting at ``step``: the epoch's row permutation
        ``(m,)`` (full batch: an empty array)."""
        return jnp.zeros((0,), jnp.int32) if self.full_batch else self._permutation(key, step, m)

    def draw(self, x: jax.Array, key: jax.Array, step, perm: jax.Array, rho_ema) -> tuple[Any, jax.Array]:
        """``(batch, perm)``: step ``step``'s batch of ``x`` for the objective, and the carry (a
        new permutation at the start of each epoch). ``rho_ema`` is the running ρ̂ (EMA plans)."""
        if self.full_batch:
            xb = x
        else:
            m, b = x.shape[0], self.batch_size
            pos = step % self._batches_per_epoch(m)
            perm = lax.cond(pos == 0, lambda: self._permutation(key, step, m), lambda: perm)
            xb = jnp.take(x, lax.dynamic_slice(perm, (pos * b,), (b,)), axis=0)
        batch = EmaBatch(xb, rho_ema) if self.ema else xb
        if self.fresh_objective:
            x_tilde = corrupt(corruption_key(key, step), xb, kind=self.corruption, level=self.corruption_level)
            batch = DenoisingBatch(batch, x_tilde)
        return batch, perm

    def next_rho_ema(self, rho_ema, aux):
        """The running ρ̂ after a step whose objective's ``aux`` (:class:`~sae_jax.CostTerms`) it
        returned: the step's new estimate (EMA plans), else ``rho_ema`` unchanged (``None``)."""
        return aux.rho_hat if self.ema else rho_ema


def batch_plan(config: TrainConfig) -> BatchPlan:
    """``config``'s plan: full batch for L-BFGS, else ``batch_size`` rows; its ρ̂ and corruption."""
    return BatchPlan(
        batch_size=None if config.full_batch else config.batch_size,
        ema=config.rho_hat == "ema",
        corruption=config.corruption,
        corruption_level=config.corruption_level,
    )
