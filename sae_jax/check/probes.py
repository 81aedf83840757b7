"""The probe cases of :mod:`sae_jax.check` and sae-jax's float64 reference on them.

Every probe is a small float64 problem (``n_visible = 5``, ``n_hidden = 3``: unequal, so a
transposed weight array or a wrong theta packing cannot pass unnoticed) with nonzero biases,
built from a fixed seed so every machine and every language sees the same numbers.

Examples:
  >>> import numpy as np
  >>> from sae_jax.check.probes import pack_theta, probes, reference, unpack_theta
  >>> [p.name for p in probes("sigmoid")][:3]
  ['sigmoid_m1', 'sigmoid_m7', 'sigmoid_m20']
  >>> p = probes("sigmoid")[1]
  >>> p.x.shape, [a.shape for a in p.params]                     # (m, n_visible); W1, b1, W2, b2
  ((7, 5), [(3, 5), (3,), (5, 3), (5,)])
  >>> theta = pack_theta(p.params, "F")                           # MATLAB's [W1(:); W2(:); b1(:); b2(:)]
  >>> theta.shape, all(np.array_equal(a, b) for a, b in zip(unpack_theta(theta, 5, 3, "F"), p.params))
  ((38,), True)
  >>> round(reference(p.name).cost, 6)                            # sae-jax's float64 cost on it
  5.579476
  >>> t = probes("sigmoid", tied=True)[1]                         # the same probe, tied: W2 dropped
  >>> t.name, t.params.W2, pack_theta(t.params, "F").shape        # theta = [W1(:); b1(:); b2(:)]
  ('sigmoid_tied_m7', None, (23,))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..backprop import cost_and_grad
from ..cost import cost_terms
from ..params import Params, untie

__all__ = ["Probe", "Reference", "probes", "probe_named", "reference", "pack_theta", "unpack_theta", "PACKINGS"]

N_VISIBLE = 5
N_HIDDEN = 3
#: theta packings: "F" = MATLAB's column-major W1(:), "C" = numpy's row-major W1.ravel().
PACKINGS = {"F": "column-major (MATLAB's W1(:))", "C": "row-major (numpy's W1.ravel())"}
_SEED = 20111
#: Default hyperparameters of the probes (beta != 1, lam large enough that every term is visible).
LAM, BETA, RHO = 0.01, 3.0, 0.05


@dataclass(frozen=True)
class Probe:
    """One probe: parameters (UFLDL shapes), data as rows ``x: (m, n_visible)``, hyperparameters."""

    name: str
    output: str  # "sigmoid" or "linear"
    params: Params  # numpy float64, W1 (h, n), b1 (h,), W2 (n, h) or None (tied), b2 (n,)
    x: np.ndarray  # (m, n_visible) float64
    lam: float
    beta: float
    rho: float
    what: str  # what the probe isolates, for the report

    @property
    def tied(self) -> bool:
        """Tied weights: ``params.W2`` is None (W2 = W1ᵀ)."""
        return self.params.W2 is None

    @property
    def m(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_visible(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_hidden(self) -> int:
        return int(self.params.W1.shape[0])


def pack_theta(arrays, packing: str = "F") -> np.ndarray:
    """UFLDL's ``theta = [W1(:); W2(:); b1(:); b2(:)]`` in the given packing ("F" MATLAB, "C" numpy).

    Tied weights (``W2`` None): ``theta = [W1(:); b1(:); b2(:)]``.
    """
    W1, b1, W2, b2 = (None if a is None else np.asarray(a, np.float64) for a in arrays)
    ws = [W1.ravel(order=packing)] + ([] if W2 is None else [W2.ravel(order=packing)])
    return np.concatenate(ws + [b1.ravel(), b2.ravel()])


def unpack_theta(theta, n_visible: int, n_hidden: int, packing: str = "F", *, tied: bool = False) -> Params:
    """Inverse of :func:`pack_theta` (``theta`` must already have the right size)."""
    theta = np.asarray(theta, np.float64).ravel()
    hv = n_hidden * n_visible
    W1 = theta[:hv].reshape((n_hidden, n_visible), order=packing)
    if tied:
        return Params(W1, theta[hv : hv + n_hidden], None, theta[hv + n_hidden :])
    W2 = theta[hv : 2 * hv].reshape((n_visible, n_hidden), order=packing)
    return Params(W1, theta[2 * hv : 2 * hv + n_hidden], W2, theta[2 * hv + n_hidden :])


def _params(rng, n, h, *, scale=0.8, bias=0.3) -> Params:
    return Params(
        rng.uniform(-scale, scale, (h, n)),
        rng.normal(0.0, bias, h),
        rng.uniform(-scale, scale, (n, h)),
        rng.normal(0.0, bias, n),
    )


def _data(rng, m, n, output):
    if output == "sigmoid":
        return rng.uniform(0.05, 0.95, (m, n))
    return rng.normal(0.0, 0.7, (m, n))


def _make(output: str, rng) -> list[Probe]:
    n, h = N_VISIBLE, N_HIDDEN
    out: list[Probe] = []

    def add(name, m, what, *, lam=LAM, beta=BETA, params=None):
        p = _params(rng, n, h) if params is None else params
        out.append(Probe(f"{output}_{name}", output, p, _data(rng, m, n, output), lam, beta, RHO, what))

    add("m1", 1, "m = 1: every 1/m is invisible")
    add("m7", 7, "m = 7: all three terms")
    add("m20", 20, "m = 20: all three terms")
    add("m7_beta0", 7, "beta = 0: no sparsity term", beta=0.0)
    add("m7_lam0", 7, "lambda = 0: no weight decay", lam=0.0)
    # Saturated-ish hidden units: unit 0 almost always off (rho_hat ~ 1e-5), unit 1 almost always
    # on (1 - rho_hat ~ 1e-4); rho_hat stays far inside (1e-15, 1 - 1e-15), where the plain
    # formula is finite and accurate in float64.
    p = _params(rng, n, h)
    W1 = p.W1.copy()
    W1[0] *= 0.2
    W1[1] *= 0.2
    b1 = p.b1.copy()
    b1[0], b1[1] = -11.5, 9.0
    b2 = p.b2.copy()
    b2[0] = 4.0
    add("m20_saturated", 20, "saturated hidden units (rho_hat near 0 and near 1)",
        params=Params(W1, b1, p.W2, b2))
    return out


@functools.lru_cache(maxsize=None)
def _all_probes() -> tuple[Probe, ...]:
    rng = np.random.default_rng(_SEED)
    return tuple(_make("sigmoid", rng) + _make("linear", rng))


@functools.lru_cache(maxsize=None)
def _tied_probes() -> tuple[Probe, ...]:
    return tuple(Probe(p.name.replace(p.output, f"{p.output}_tied", 1), p.output, p.params._replace(W2=None),
                       p.x, p.lam, p.beta, p.rho, p.what) for p in _all_probes())


def probes(output: str | None = None, *, tied: bool = False) -> tuple[Probe, ...]:
    """The probe cases: 6 per decoder (``output="sigmoid"`` or ``"linear"``; ``None``: all 12).

    Per decoder: m = 1, 7, 20 with every term on; beta = 0 and lambda = 0 at m = 7; and
    m = 20 with saturated-ish hidden units. Nonzero biases everywhere; lam = 0.01,
    beta = 3, rho = 0.05 unless the probe switches a term off. ``tied=True``: the same
    probes with W2 dropped (``Params(W1, b1, None, b2)``, W2 = W1ᵀ), named ``*_tied_*``.
    """
    allp = _tied_probes() if tied else _all_probes()
    if output is None:
        return allp
    return tuple(p for p in allp if p.output == output)


def probe_named(name: str) -> Probe:
    """The probe (untied or tied) called ``name``."""
    (probe,) = [p for p in _all_probes() + _tied_probes() if p.name == name]
    return probe


def _np(params) -> Params:
    return Params(*(None if a is None else np.asarray(a, np.float64) for a in params))


@dataclass(frozen=True)
class Reference:
    """sae-jax's float64 values on one probe, with the gradient split into its three parts."""

    cost: float
    grads: Params  # numpy float64, UFLDL shapes (W2 None for tied probes)
    reconstruction: float
    weight_decay: float
    sparsity: float
    rho_hat: np.ndarray
    recon_grad: Params  # the reconstruction term's gradient (lam = beta = 0)
    decay_grad: Params  # lam * W (zero for the biases)
    sparsity_grad: Params  # the sparsity term's gradient
    contributions: tuple | None = None  # tied: W1's (encoder, decoder) contributions, summing to grads.W1


@functools.lru_cache(maxsize=None)
def reference(probe_name: str) -> Reference:
    """sae-jax's float64 reference (:func:`sae_jax.cost_and_grad`, :func:`sae_jax.cost_terms`) on a probe."""
    probe = probe_named(probe_name)
    with jax.enable_x64(True):
        params = Params(*(None if a is None else jnp.asarray(a, jnp.float64) for a in probe.params))
        x = jnp.asarray(probe.x, jnp.float64)
        kw = dict(rho=probe.rho, output=probe.output)
        J, g = cost_and_grad(params, x, lam=probe.lam, beta=probe.beta, **kw)
        _, g_rec = cost_and_grad(params, x, lam=0.0, beta=0.0, **kw)
        _, g_nosp = cost_and_grad(params, x, lam=probe.lam, beta=0.0, **kw)
        t = cost_terms(params, x, lam=probe.lam, beta=probe.beta, **kw)
        contributions = None
        if probe.tied:  # the untied gradient at W2 = W1ᵀ: W1's row is the encoder's, W2ᵀ the decoder's
            _, gu = cost_and_grad(untie(params), x, lam=probe.lam, beta=probe.beta, **kw)
            contributions = (np.asarray(gu.W1, np.float64), np.asarray(gu.W2, np.float64).T)
        g, g_rec, g_nosp = (_np(gg) for gg in (g, g_rec, g_nosp))
        decay = Params(*(None if a is None else b - a for a, b in zip(g_rec, g_nosp)))
        spars = Params(*(None if a is None else a - b for a, b in zip(g, g_nosp)))
        return Reference(
            float(J), g, float(t.reconstruction), float(t.weight_decay), float(t.sparsity),
            np.asarray(t.rho_hat, np.float64), g_rec, decay, spars, contributions,
        )
