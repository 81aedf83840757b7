"""Locate a difference the catalogue has no name for: which output, which part, by what factor, and why.

:func:`locate` reads their outputs against the reference's parts (reconstruction / weight decay /
sparsity / L1, and a tied W1's encoder / decoder contributions) on every probe and writes findings
in the student's words, e.g. "W1grad's reconstruction and sparsity parts are 7× too large at m = 7
and 20× at m = 20 (= m): not divided by m". It also recognises what no formula mistake explains:
outputs that differ only on the square probe (m = n_visible), a flat gradient whose blocks are in
another order, outputs that are the other decoder's, a results file computed from θ read in the
other layout, and non-finite outputs on some probes.

Examples:
  >>> from sae_jax._src.check.locate import pattern
  >>> pattern([(1, 1.0), (7, 7.0), (20, 20.0)])[1]
  'not divided by m'
  >>> pattern([(7, -1.0), (20, -1.0)])[0]
  'have the wrong sign (×−1)'
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from ..params import Params
from .adapters import nonfinite
from .catalogue import variant_cost_and_grad
from .probes import PACKINGS, Probe, pack_theta, probe_named, reference, unpack_theta

__all__ = ["locate", "pattern", "part_ratios", "other_decoder", "layout_mismatch", "NEAR"]

#: "Nearest variants" are shown only when one is within this max relative difference of their outputs.
NEAR = 0.05
_EXACT = 1e-6  # ratios equal to a pattern's value to this relative precision
_GRAD_NAMES = {"W1": "W1grad", "b1": "b1grad", "W2": "W2grad", "b2": "b2grad"}
_ARRAYS = ("cost", "W1", "b1", "W2", "b2")


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= _EXACT * max(1.0, abs(b))


def _num(r: float) -> str:
    r = float(r)
    if abs(r - round(r)) <= 1e-9 * max(1.0, abs(r)):
        return str(int(round(r)))
    for d in range(2, 65):
        if abs(r * d - round(r * d)) <= 1e-9 * max(1.0, abs(r * d)):
            return f"{int(round(r * d))}/{d}"
    return f"{r:.4g}"


def pattern(rs, beta: float | None = None) -> tuple[str, str] | None:
    """``(what, likely cause)`` for a part's ratios ``[(m, ratio), ...]`` over the probes; None when all are 1.

    Recognised: 0 (missing), m (not divided by m), 1/m (divided by m twice), −1 (sign), β (β twice),
    2 (counted twice), ½, any other constant; otherwise the ratios per probe.
    """
    rs = [(m, r) for m, r in rs if np.isfinite(r)]
    if not rs or all(_close(r, 1.0) for _, r in rs):
        return None
    big = [(m, r) for m, r in rs if m > 1]
    at = ", ".join(f"×{_num(r)} at m = {m}" for m, r in sorted(set((m, round(r, 9)) for m, r in big))[:3])
    if all(abs(r) <= _EXACT for _, r in rs):
        return "are missing (×0)", "left out"
    if all(_close(r, m) for m, r in rs) and big:
        return f"are m times too large ({at})", "not divided by m"
    if all(_close(r, 1.0 / m) for m, r in rs) and big:
        return f"are 1/m of the correct value ({at})", "divided by m twice (or by m where no 1/m belongs)"
    if all(_close(r, -1.0) for _, r in rs):
        return "have the wrong sign (×−1)", "a sign flipped"
    c = rs[0][1]
    if all(_close(r, c) for _, r in rs):
        if beta and _close(c, beta) and beta not in (1.0, 2.0):
            return f"are β = {beta:g} times too large", "β applied twice"
        if _close(c, 2.0):
            return "are twice the correct value", "counted twice"
        if _close(c, 0.5):
            return "are half the correct value", "a factor ½ too many (or a 2 missing)"
        return (f"are {_num(c)}× the correct value" if abs(c) > 1 else f"are ×{_num(c)} of the correct value",
                "scaled by a constant")
    return "differ by a factor that changes from probe to probe (" + ", ".join(
        f"×{r:.4g} at m = {m}" for m, r in rs[:3]) + ")", "a factor that is neither constant nor m"


def part_ratios(u: np.ndarray, probe: Probe, k: str) -> tuple[dict[str, float], float]:
    """Least-squares ratios of their array's reconstruction / decay / sparsity / L1 parts to the correct ones.

    Fits ``theirs − correct = Σ_parts (ratio − 1)·part``; returns the ratios and the residual
    (relative to the array's scale). A residual near 0 means the difference is a rescaling of parts.
    """
    r = reference(probe.name, probe.l1)
    i = _ARRAYS.index(k) - 1
    ref = r.grads[i]
    parts = {"reconstruction": r.recon_grad[i], "decay": r.decay_grad[i], "sparsity": r.sparsity_grad[i]}
    if r.l1_grad is not None:
        parts["L1"] = r.l1_grad[i]
    scale = max(float(np.max(np.abs(ref))), 1e-300)
    live = {n: a for n, a in parts.items() if np.max(np.abs(a)) > 1e-12 * scale}
    if not np.all(np.isfinite(u)):
        return {}, float("inf")
    if not live:
        return {}, float(np.max(np.abs(u - ref))) / scale
    A = np.stack([a.ravel() for a in live.values()], axis=1)
    d = (u - ref).ravel()
    coef, *_ = np.linalg.lstsq(A, d, rcond=None)
    resid = float(np.max(np.abs(d - A @ coef))) / scale
    return {n: 1.0 + c for n, c in zip(live, coef)}, resid


def _contributions(u: np.ndarray, probe: Probe) -> tuple[dict[str, float], float]:
    enc, dec = reference(probe.name, probe.l1).contributions
    scale = max(float(np.max(np.abs(enc + dec))), 1e-300)
    if not np.all(np.isfinite(u)):
        return {}, float("inf")
    A = np.stack([enc.ravel(), dec.ravel()], axis=1)
    coef, *_ = np.linalg.lstsq(A, u.ravel(), rcond=None)
    return {"encoder contribution": coef[0], "decoder contribution": coef[1]}, \
        float(np.max(np.abs(u.ravel() - A @ coef))) / scale


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-300) if a.size else 0.0


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _where_correct(ps, ok) -> str:
    """Which switched-off term makes an array agree: 'correct where β = 0', 'at m = 1'..."""
    out = []
    for p in ps:
        if ok.get(p.name):
            if p.beta == 0 and "where β = 0 (the sparsity part is wrong)" not in out:
                out.append("where β = 0 (the sparsity part is wrong)")
            elif p.lam == 0 and "where λ = 0 (the weight-decay part is wrong)" not in out:
                out.append("where λ = 0 (the weight-decay part is wrong)")
            elif p.m == 1 and "at m = 1 (a misplaced 1/m or sum over samples)" not in out:
                out.append("at m = 1 (a misplaced 1/m or sum over samples)")
    return ("; correct " + " and ".join(out)) if out else ""


def _cost_finding(outputs, ps, errors, tol) -> str | None:
    bad = [p for p in ps if errors[p.name]["cost"] > tol]
    if not bad:
        return None
    for term, attr in (("reconstruction", "reconstruction"), ("weight-decay", "weight_decay"),
                       ("sparsity", "sparsity"), ("L1", "l1")):
        rs, ok = [], True
        for p in ps:
            r = reference(p.name, p.l1)
            t, d = getattr(r, attr), outputs[p.name][0] - r.cost
            if abs(t) <= 1e-12 * max(abs(r.cost), 1e-300):
                if abs(d) > tol * max(abs(r.cost), 1e-300):
                    ok = False  # the term is 0 here but the cost differs: not this term
                continue
            rs.append((p.m, 1.0 + d / t))
        pat = pattern(rs, ps[0].beta or None) if ok else None
        if pat and "changes from probe to probe" not in pat[0]:
            return f"the cost's {term} term {pat[0].replace('are ', 'is ', 1).replace('have ', 'has ', 1)}: {pat[1]}"
    where = ", ".join(sorted({f"m = {p.m}" for p in bad}))
    return f"the cost differs on {len(bad)} of {len(ps)} probes ({where}), not by rescaling one of its terms"


def _flat_orders(outputs, ps, packing, tol, results: bool = False) -> str | None:
    """A flat gradient holding the right numbers with its blocks in another order (or another packing each)."""
    p0 = ps[0]
    names = ["W1", "b1", "b2"] if p0.tied else ["W1", "W2", "b1", "b2"]
    for order in itertools.permutations(names):
        for packs in itertools.product("FC", repeat=sum(n.startswith("W") for n in order)):
            if list(order) == names and all(pk == packing for pk in packs):
                continue
            ok = True
            for p in ps:
                h, n = p.n_hidden, p.n_visible
                shapes = {"W1": (h, n), "W2": (n, h), "b1": (h,), "b2": (n,)}
                raw = pack_theta(outputs[p.name][1], packing)
                got, i, it = {}, 0, iter(packs)
                for k in order:
                    size = int(np.prod(shapes[k]))
                    got[k] = raw[i:i + size].reshape(shapes[k], order=next(it) if k.startswith("W") else "C")
                    i += size
                ref = reference(p.name, p.l1).grads
                if any(_rel(got[k], getattr(ref, k)) > tol for k in names):
                    ok = False
                    break
            if ok:
                weights = [k for k in order if k.startswith("W")]
                pk_of = dict(zip(weights, packs))
                if list(order) == names:  # the right order; some weight packed the other way = transposed
                    off = [k for k in weights if pk_of[k] != packing]
                    other = PACKINGS["C" if packing == "F" else "F"].split(" (")[0]
                    if results and len(off) == len(weights):  # the whole grad field in the other packing
                        return (f"the results file's gradient is packed {other} but was saved as "
                                f"`{'grad' if packing == 'F' else 'grad_rowmajor'}` ({PACKINGS[packing]}): save it "
                                f"as `{'grad_rowmajor' if packing == 'F' else 'grad'}`, or pass --packing "
                                f"{'row' if packing == 'F' else 'column'}")
                    grads = _join([_GRAD_NAMES[k] for k in off])
                    return (f"{grads} {'is' if len(off) == 1 else 'are'} packed {other} while theta is read "
                            f"{PACKINGS[packing].split(' (')[0]} — the same numbers as {grads} transposed: pack "
                            f"every weight gradient the way theta is packed (and compute each with its weight's "
                            f"own shape)")
                desc = "; ".join(_GRAD_NAMES[k] + (f" ({PACKINGS[pk_of[k]].split(' (')[0]})" if k in pk_of else "")
                                 for k in order)
                want = "; ".join(_GRAD_NAMES[k] for k in names)
                return (f"their gradient holds the right numbers in another order: [{desc}] where theta's order "
                        f"[{want}] (weights {PACKINGS[packing].split(' (')[0]}) belongs: pack the gradient exactly "
                        f"as theta is packed")
    return None


@functools.lru_cache(maxsize=None)
def _decoder_output(name: str, l1: float, output: str):
    p = probe_named(name, l1)
    with np.errstate(all="ignore"):
        return variant_cost_and_grad(p.params, p.x, lam=p.lam, beta=p.beta, rho=p.rho, output=output, l1=p.l1,
                                     x_input=p.x_input)


def other_decoder(outputs, ps, tol) -> str | None:
    """'sigmoid' when their outputs on the linear probes are a correct sigmoid decoder's (or the reverse)."""
    other = "linear" if ps[0].output == "sigmoid" else "sigmoid"
    for p in ps:
        J, g = _decoder_output(p.name, p.l1, other)
        theirs = outputs[p.name]
        if _rel(theirs[0], J) > tol or any(_rel(u, v) > tol for u, v in zip(theirs[1], g) if v is not None):
            return None
    return other


def layout_mismatch(outputs, ps, packing, tol) -> str | None:
    """The other packing when a results file's cost is the correct cost at θ unpacked in that other order.

    A row-major numpy port given the column-major ``theta`` reads W1 and W2 scrambled; its cost is then
    exactly the reference cost at those scrambled weights.
    """
    q = "C" if packing == "F" else "F"
    for p in ps:
        h, n = p.n_hidden, p.n_visible
        misread = unpack_theta(pack_theta(p.params, packing), n, h, q, tied=p.tied)
        with np.errstate(all="ignore"):
            J, _ = variant_cost_and_grad(misread, p.x, lam=p.lam, beta=p.beta, rho=p.rho, output=p.output, l1=p.l1,
                                         x_input=p.x_input)
        if _rel(outputs[p.name][0], J) > tol:
            return None
    return q


def locate(outputs: dict, ps, errors: dict, tol: float, packing: str, *, flat: bool = False,
           results: bool = False) -> list[str]:
    """Findings, most telling first, about where and how their outputs differ from the reference.

    ``outputs``: probe name -> (cost, Params as read); ``errors``: probe name -> array -> relative
    error vs the reference; ``flat``: the gradient came as one vector (theta's layout); ``results``:
    from a results file (its ``grad`` field's packing, not their code's, is what can be off).
    """
    bad = [p for p in ps if max(errors[p.name].values()) > tol]
    if not bad:
        return []
    out = []
    nf = {p.name: nonfinite(*outputs[p.name]) for p in ps}
    if any(nf.values()):
        fin = [p for p in ps if not nf[p.name]]
        where = sorted({p.m for p in ps if nf[p.name]})
        what = sorted({k for v in nf.values() for k in v}, key=_ARRAYS.index)
        out.append(f"their {_join([('cost' if k == 'cost' else _GRAD_NAMES[k]) for k in what])} "
                   f"{'is' if len(what) == 1 else 'are'} NaN or inf on {sum(map(bool, nf.values()))} of {len(ps)} "
                   f"probes (m = {', '.join(map(str, where))})"
                   + (f", finite on the others" if fin else "")
                   + (" — e.g. ρ̂ outside (0, 1), where log(1 − ρ̂) or log ρ̂ is undefined: ρ̂ must be the "
                      "mean activation over the samples" if "cost" in what else ""))
    square = [p for p in bad if p.name.endswith("_square")]
    if square and len(square) == len(bad):
        out.append(f"only the probe with m = n_visible = {square[0].m} (square data) differs: the code decides the "
                   f"data's orientation from its shape and transposes square data; use visibleSize (W1's shape), "
                   f"not the data's shape, to tell samples from features")
        return out
    if flat:
        f = _flat_orders(outputs, [p for p in ps if not nf[p.name]] or ps, packing, tol, results)
        if f:
            out.append(f)
            return out
    # the gradient arrays: a rescaling of their parts, transposed, or neither
    groups: dict[tuple, list] = {}
    live: dict[str, set] = {}
    for k in ("W1", "b1", "W2", "b2"):
        i = _ARRAYS.index(k) - 1
        if ps[0].params[i] is None or all(errors[p.name].get(k, 0.0) <= tol for p in ps):
            continue
        per_part: dict[str, list] = {}
        not_scaling, transposed = [], []
        contrib: dict[str, list] = {}
        for p in ps:
            if nf[p.name]:
                continue
            u = outputs[p.name][1][i]
            ratios, resid = part_ratios(u, p, k)
            if resid <= 1e-8:
                for n, v in ratios.items():
                    per_part.setdefault(n, []).append((p.m, v))
                continue
            if p.tied and k == "W1":
                cr, cres = _contributions(u, p)
                if cres <= 1e-8:
                    for n, v in cr.items():
                        contrib.setdefault(n, []).append((p.m, v))
                    continue
            ref = reference(p.name, p.l1).grads[i]
            if k.startswith("W") and _rel(u, ref.T.ravel(order=packing).reshape(ref.shape, order=packing)) <= tol:
                transposed.append(p)
            else:
                not_scaling.append(p)
        if transposed and not not_scaling:
            out.append(f"{_GRAD_NAMES[k]} holds the right numbers transposed (computed as "
                       f"{'visibleSize × hiddenSize' if k == 'W1' else 'hiddenSize × visibleSize'}, then packed "
                       f"{PACKINGS[packing]}): compute it with {_GRAD_NAMES[k][:2]}'s own shape")
            continue
        if not_scaling:
            ok = {p.name: errors[p.name].get(k, 0.0) <= tol for p in ps}
            out.append(f"{_GRAD_NAMES[k]} differs on {len(not_scaling) + len(transposed)} probes in a way that is "
                       f"not a rescaling of its reconstruction / decay / sparsity parts{_where_correct(ps, ok)}")
            continue
        live[k] = set(per_part) | set(contrib)
        for n, rs in list(per_part.items()) + list(contrib.items()):
            pat = pattern(rs, ps[0].beta or None)
            if pat:
                groups.setdefault(pat, []).append((k, n))
    for (what, why), items in groups.items():
        arrays = list(dict.fromkeys(k for k, _ in items))
        parts = list(dict.fromkeys(n for _, n in items))
        whole = len(arrays) > 1 and all({n for kk, n in items if kk == k} == live[k] for k in arrays)
        if whole:  # every part of these arrays alike: say it of the arrays
            n_all = len([a for a in ps[0].params if a is not None])
            names = ("the whole gradient (" if len(arrays) == n_all else "") + _join(
                [_GRAD_NAMES[k] for k in arrays]) + (")" if len(arrays) == n_all else "")
            verb = what.replace("are ", "is ", 1).replace("have ", "has ", 1) if len(arrays) == n_all else what
            out.append(f"{names} {verb}: {why}")
        elif all((k, n) in items for k in arrays for n in parts):
            names = _join([_GRAD_NAMES[k] + "'s" for k in arrays]) if len(arrays) > 1 else _GRAD_NAMES[arrays[0]] + "'s"
            noun = "part" if len(parts) == 1 else "parts"
            label = _join(parts) + (f" {noun}" if not parts[0].endswith("contribution") else "")
            verb = what if len(parts) > 1 else what.replace("are ", "is ", 1).replace("have ", "has ", 1)
            out.append(f"{names} {label} {verb}: {why}")
        else:
            for k in arrays:
                ks = [n for kk, n in items if kk == k]
                verb = what if len(ks) > 1 else what.replace("are ", "is ", 1).replace("have ", "has ", 1)
                out.append(f"{_GRAD_NAMES[k]}'s {_join(ks)} part{'s' if len(ks) > 1 else ''} {verb}: {why}")
    c = _cost_finding(outputs, [p for p in ps if not nf[p.name]] or ps, errors, tol) \
        if not any("cost" in v for v in nf.values()) else None
    if c:
        out.append(c)
    return out
