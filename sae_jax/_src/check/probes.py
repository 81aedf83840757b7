"""The probe cases of :mod:`sae_jax.check` and sae-jax's float64 reference on them.

Every probe is a small float64 problem (``n_visible = 5``, ``n_hidden = 3``: unequal, so a
transposed weight array or a wrong theta packing cannot pass unnoticed) with nonzero biases,
built from a fixed seed so every machine and every language sees the same numbers.

Examples:
  >>> import numpy as np
  >>> from sae_jax._src.check.probes import pack_theta, unpack_theta
  >>> from sae_jax.check import probes, reference
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

from ..backprop import cost_terms_and_grad
from ..params import Params, untie
from ..validate import InputError

__all__ = ["Probe", "Reference", "check_options", "probes", "probe_named", "parse_name", "variant_name", "reference", "pack_theta",
           "unpack_theta", "PACKINGS"]

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
    l1: float = 0.0  # the L1 activation penalty's gamma (0: none)
    x_input: np.ndarray | None = None  # denoising: the corrupted input (m, n_visible); x is the target

    @property
    def tied(self) -> bool:
        """Tied weights: ``params.W2`` is None (W2 = W1ᵀ)."""
        return self.params.W2 is None

    @property
    def denoising(self) -> bool:
        """Denoising: the network reads ``x_input`` and reconstructs ``x``."""
        return self.x_input is not None

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


def _square(output: str, rng) -> Probe:
    """m = n_visible: the data matrix is square, so code that decides the data's orientation from its shape
    (``if x.shape[0] == n_visible: x = x.T``) transposes it here and nowhere else."""
    return Probe(f"{output}_m5_square", output, _params(rng, N_VISIBLE, N_HIDDEN), _data(rng, N_VISIBLE, N_VISIBLE, output),
                 LAM, BETA, RHO, "m = n_visible = 5: square data (rows and columns look alike)")


@functools.lru_cache(maxsize=None)
def _all_probes() -> tuple[Probe, ...]:
    rng = np.random.default_rng(_SEED)
    sig, lin = _make("sigmoid", rng), _make("linear", rng)
    sq = np.random.default_rng(_SEED + 2)  # its own stream: the other probes keep their numbers
    return tuple(sig + [_square("sigmoid", sq)] + lin + [_square("linear", sq)])


#: Denoising probes' corruption: masking noise (p = 0.3) for the sigmoid decoder's data in (0, 1),
#: Gaussian noise (sigma = 0.3) for the linear decoder's; drawn once from a fixed seed.
MASK_P, NOISE_SIGMA = 0.3, 0.3


def _corrupted(p: Probe, rng) -> np.ndarray:
    if p.output == "sigmoid":
        return np.where(rng.uniform(size=p.x.shape) < MASK_P, 0.0, p.x)
    return p.x + NOISE_SIGMA * rng.standard_normal(p.x.shape)


def check_options(tied, l1, denoising) -> None:
    """``tied``, ``denoising`` booleans and ``l1`` None or a finite γ > 0, else one :class:`~sae_jax.InputError`."""
    for name, v in (("tied", tied), ("denoising", denoising)):
        if not isinstance(v, bool):
            raise InputError(f"{name} must be True or False, got {v!r}")
    if l1 is not None and (isinstance(l1, bool) or not isinstance(l1, (int, float)) or not 0 < l1 < float("inf")):
        raise InputError(f"l1 (--l1 GAMMA) must be a number > 0, the L1 penalty's gamma (omit it for no L1 term), "
                         f"got {l1!r}")


def variant_name(output: str, base: str, *, tied: bool = False, l1: bool = False, denoising: bool = False) -> str:
    """A probe's name: ``{output}[_tied][_l1][_denoising]_{base}``, e.g. ``sigmoid_tied_l1_m7``."""
    return "_".join([output] + [t for t, on in (("tied", tied), ("l1", l1), ("denoising", denoising)) if on] + [base])


def parse_name(name: str) -> tuple[str, dict] | None:
    """``(base name, dict(output, tied, l1, denoising))`` for a probe name, or None if it names none.

    ``l1`` is True or False: the name tells that the probe has an L1 penalty, not its gamma.
    """
    parts = str(name).split("_")
    if parts[0] not in ("sigmoid", "linear"):
        return None
    flags, i = {}, 1
    for flag in ("tied", "l1", "denoising"):
        flags[flag] = i < len(parts) and parts[i] == flag
        i += flags[flag]
    base = "_".join(parts[i:])
    bases = [p.name.split("_", 1)[1] for p in _all_probes() if p.output == "sigmoid"] + (["m7_uncorrupted"] if flags["denoising"] else [])
    return (base, dict(output=parts[0], **flags)) if base in bases else None


@functools.lru_cache(maxsize=None)
def _variant_probes(tied: bool, l1: float, denoising: bool) -> tuple[Probe, ...]:
    rng = np.random.default_rng(_SEED + 1)
    out = []
    for output in ("sigmoid", "linear"):
        base = [p for p in _all_probes() if p.output == output]
        if denoising:  # x_input = x: where every denoising mistake is invisible
            m7 = base[1]
            base = base + [Probe(f"{output}_m7_uncorrupted", output, m7.params, m7.x, m7.lam, m7.beta, m7.rho,
                                 "denoising with x_input = x: every denoising mistake is invisible")]
        for p in base:
            x_input = None
            if denoising:
                x_input = p.x.copy() if p.name.endswith("uncorrupted") else _corrupted(p, rng)
            name = variant_name(output, p.name.split("_", 1)[1], tied=tied, l1=l1 > 0, denoising=denoising)
            out.append(Probe(name, output, p.params._replace(W2=None) if tied else p.params, p.x, p.lam, p.beta,
                             p.rho, p.what, float(l1), x_input))
    return tuple(out)


def probes(output: str | None = None, *, tied: bool = False, l1: float = 0.0, denoising: bool = False
           ) -> tuple[Probe, ...]:
    """The probe cases: 7 per decoder (``output="sigmoid"`` or ``"linear"``; ``None``: both).

    Per decoder: m = 1, 7, 20 with every term on; beta = 0 and lambda = 0 at m = 7;
    m = 20 with saturated-ish hidden units; and m = n_visible = 5 (square data). Nonzero biases everywhere; lam = 0.01,
    beta = 3, rho = 0.05 unless the probe switches a term off. The same probes for the
    variants (:mod:`sae_jax._src.variants`), named ``{output}[_tied][_l1][_denoising]_{probe}``:
    ``tied=True`` drops W2 (``Params(W1, b1, None, b2)``, W2 = W1ᵀ); ``l1=`` gamma > 0 adds the
    L1 activation penalty at that gamma on every probe; ``denoising=True`` gives every probe a
    corrupted input ``x_input`` (masking, p = 0.3, for the sigmoid decoder; Gaussian, sigma = 0.3,
    for the linear one; ``x`` stays the target) and adds ``m7_uncorrupted`` (``x_input = x``).
    """
    l1 = float(l1)
    allp = _all_probes() if not (tied or l1 or denoising) else _variant_probes(bool(tied), l1, bool(denoising))
    if output is None:
        return allp
    return tuple(p for p in allp if p.output == output)


def probe_named(name: str, l1: float = 0.0) -> Probe:
    """The probe called ``name`` (its name tells the variant; ``l1``: the gamma of an ``*_l1_*`` probe)."""
    parsed = parse_name(name)
    if parsed is None or parsed[1]["l1"] != (l1 > 0):
        raise ValueError(f"no probe {name!r} with l1={l1}")
    f = parsed[1]
    (probe,) = [p for p in probes(f["output"], tied=f["tied"], l1=l1, denoising=f["denoising"]) if p.name == name]
    return probe


def _np(params) -> Params:
    return Params(*(None if a is None else np.asarray(a, np.float64) for a in params))


@dataclass(frozen=True)
class Reference:
    """sae-jax's float64 values on one probe, with the gradient split into its parts."""

    cost: float
    grads: Params  # numpy float64, UFLDL shapes (W2 None for tied probes)
    reconstruction: float
    weight_decay: float
    sparsity: float
    rho_hat: np.ndarray
    recon_grad: Params  # the reconstruction term's gradient (lam = beta = l1 = 0)
    decay_grad: Params  # lam * W (zero for the biases)
    sparsity_grad: Params  # the sparsity term's gradient
    contributions: tuple | None = None  # tied: W1's (encoder, decoder) contributions, summing to grads.W1
    l1: float = 0.0  # the L1 penalty's value (0 without it)
    l1_grad: Params | None = None  # the L1 penalty's gradient (None without it)


@functools.partial(jax.jit, static_argnames=("output",))
def _reference_values(params, x, x_input, lam, beta, rho, l1, *, output):
    """Every value :func:`reference` reads, in one compiled program per probe shape and variant.

    One backprop vmapped over four settings: (λ, β, γ) as given, (0, 0, 0) the reconstruction
    term alone, (λ, 0, 0) with weight decay, (λ, β, 0) with sparsity; differences of consecutive
    settings are each term's gradient (γ = 0 adds exactly nothing: the same numbers as no ``l1=``).
    """
    zero = jnp.zeros((), x.dtype)
    hp = jnp.stack([jnp.stack([lam, beta, l1]), jnp.stack([zero, zero, zero]), jnp.stack([lam, zero, zero]),
                    jnp.stack([lam, beta, zero])])

    def one(h):
        return cost_terms_and_grad(params, x, lam=h[0], beta=h[1], l1=h[2], rho=rho, output=output, x_input=x_input)

    terms, grads = jax.vmap(one)(hp)
    # tied: the untied gradient at W2 = W1ᵀ: its W1 is the encoder's contribution, its W2ᵀ the decoder's
    gu = None
    if params.W2 is None:
        gu = cost_terms_and_grad(untie(params), x, lam=lam, beta=beta, l1=l1, rho=rho, output=output,
                                 x_input=x_input)[1]
    return terms, grads, gu


@functools.lru_cache(maxsize=None)
def reference(probe_name: str, l1: float = 0.0) -> Reference:
    """sae-jax's float64 reference (:func:`sae_jax.cost_terms_and_grad`, the manual backprop) on a probe.

    ``l1``: the gamma of an ``*_l1_*`` probe (:func:`probe_named`).
    """
    probe = probe_named(probe_name, l1)
    with jax.enable_x64(True):
        f64 = lambda a: None if a is None else jnp.asarray(a, jnp.float64)  # noqa: E731
        terms, grads, gu = _reference_values(
            Params(*(f64(a) for a in probe.params)), f64(probe.x), f64(probe.x_input), f64(probe.lam),
            f64(probe.beta), f64(probe.rho), f64(probe.l1), output=probe.output)
        t = jax.tree.map(lambda a: a[0], terms)
        J = t.cost
        g, g_rec, g_nosp, g_nol1 = (jax.tree.map(lambda a, k=k: a[k], grads) for k in range(4))
        contributions = None if gu is None else (np.asarray(gu.W1, np.float64), np.asarray(gu.W2, np.float64).T)
        g, g_rec, g_nosp, g_nol1 = (_np(gg) for gg in (g, g_rec, g_nosp, g_nol1))
        diff = lambda a, b: Params(*(None if u is None else u - v for u, v in zip(a, b)))  # noqa: E731
        return Reference(
            float(J), g, float(t.reconstruction), float(t.weight_decay), float(t.sparsity),
            np.asarray(t.rho_hat, np.float64), g_rec, diff(g_nosp, g_rec), diff(g_nol1, g_nosp), contributions,
            float(t.l1), diff(g, g_nol1) if probe.l1 > 0 else None,
        )
