"""Probe cases as files for any language (``--write-cases DIR``) and results files back (``--results FILE``).

:func:`write_cases` writes every probe's inputs and sae-jax's expected outputs in three
formats (:data:`CASE_FILES`) with a README on how to answer them; :func:`read_results`
reads a results file back as ``(probes, {packing: {probe: (cost, Params)}})``.

Examples:
  >>> import os, tempfile
  >>> from sae_jax.check import write_cases
  >>> paths = write_cases(os.path.join(tempfile.mkdtemp(), "cases"))
  >>> sorted(p.name for p in paths)
  ['README.md', 'cases.json', 'cases.mat', 'cases.npz']
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..validate import InputError
from .readback import rows_grads, to_numpy, to_scalar
from .probes import Probe, check_options, pack_theta, parse_name, probes, reference, unpack_theta
from .report import DEFAULT_TOL

__all__ = ["write_cases", "read_results", "CASE_FILES"]

CASE_FILES = ("cases.npz", "cases.mat", "cases.json", "README.md")


def _case_dict(p: Probe) -> dict:
    r = reference(p.name, p.l1)
    W1, b1, W2, b2 = p.params
    d = {
        "output": p.output,
        "what": p.what,
        "visibleSize": p.n_visible,
        "hiddenSize": p.n_hidden,
        "m": p.m,
        "lambda": p.lam,
        "sparsityParam": p.rho,
        "beta": p.beta,
        "theta": pack_theta(p.params, "F"),
        "theta_rowmajor": pack_theta(p.params, "C"),
        "data": p.x.T.copy(),
        "x": p.x,
        "W1": W1, "b1": b1, "W2": W2, "b2": b2,
        "corruptedData": None if p.x_input is None else p.x_input.T.copy(),
        "x_input": p.x_input,
        "l1": p.l1 or None,
        "expected_cost": r.cost,
        "expected_grad": pack_theta(r.grads, "F"),
        "expected_grad_rowmajor": pack_theta(r.grads, "C"),
        "expected_W1grad": r.grads.W1, "expected_b1grad": r.grads.b1,
        "expected_W2grad": r.grads.W2, "expected_b2grad": r.grads.b2,
    }
    return {k: v for k, v in d.items() if v is not None}  # tied: no W2; no variant fields unless asked


_README = """\
# sae-jax check: probe cases

{n} probes of the sparse-autoencoder cost J = (1/m) Σᵢ ½‖x̂⁽ⁱ⁾ − x⁽ⁱ⁾‖² + {decay} + β Σⱼ KL(ρ‖ρ̂ⱼ){l1_term}
(float64){tied_text}{variant_text}, {nd} per decoder: {names}.
Run your `sparseAutoencoderCost` on each probe of your decoder (`output`: sigmoid or linear) and
save a results file; `sae-jax check --results results.mat` (or `.npz`, `.json`) compares it with
sae-jax's float64 reference and names the mistake if it finds one.

The same cases three ways: `cases.mat` (MATLAB/Octave: one struct per probe), `cases.npz`
(keys `PROBE.FIELD`, plus `probes`, the list of names) and `cases.json` (`{{"probes": {{PROBE: {{FIELD: ...}}}}}}`).
Fields of each probe:

- inputs in UFLDL's convention: `theta` (packed `{theta_form}`, **column-major**, as
  MATLAB's `W1(:)`; a numpy port that unpacks row-major should use `theta_rowmajor`), `visibleSize`,
  `hiddenSize`, `lambda`, `sparsityParam`, `beta`, `data` (visibleSize × m, samples as columns){fields};
- the same as arrays: `W1` (hiddenSize × visibleSize), {arrays}, `x` (m × visibleSize, samples as rows){row_fields};
- `output`, `m`, `what` (what the probe isolates);
- expected outputs: `expected_cost`, `expected_grad` (packed like `theta`), `expected_grad_rowmajor`,
  {expected}.

A results file holds, for each probe you ran, its `cost` and its gradient as `grad` (packed like
`theta`, column-major), or `grad_rowmajor` (if you used `theta_rowmajor`), or the arrays
{grads}. Run every probe of your decoder.

MATLAB / Octave:

```matlab
c = load('cases.mat'); names = fieldnames(c); results = struct();
for k = 1:numel(names)
  p = c.(names{{k}});
  if ~strcmp(p.output, 'sigmoid'), continue; end   % the decoder your code implements
  [cost, grad] = sparseAutoencoderCost(p.theta, p.visibleSize, p.hiddenSize, ...
                                       p.lambda, p.sparsityParam, p.beta, p.data{matlab_extra});
  results.(names{{k}}) = struct('cost', cost, 'grad', grad);
end
save('results.mat', 'results', '-v7');   % one struct, a field per probe
```

Python (any framework; convert outputs to numpy). Set `LAYOUT` to the way your code unpacks theta:
`"row"` for numpy's default `reshape` (row-major: most numpy ports), `"column"` for
`reshape(..., order="F")` (MATLAB's `W1(:)`). A mismatch makes every output wrong; `--results` then
says "layout mismatch".

```python
import numpy as np
from my_code import sparseAutoencoderCost
LAYOUT = "row"                                   # "row": numpy's reshape; "column": order="F" (MATLAB's W1(:))
theta_key, grad_key = ("theta_rowmajor", "grad_rowmajor") if LAYOUT == "row" else ("theta", "grad")
c = np.load("cases.npz")
results = {{}}
for p in c["probes"]:
    if str(c[f"{{p}}.output"]) != "sigmoid":      # the decoder your code implements
        continue
    cost, grad = sparseAutoencoderCost(c[f"{{p}}.{{theta_key}}"], int(c[f"{{p}}.visibleSize"]),
                                       int(c[f"{{p}}.hiddenSize"]), float(c[f"{{p}}.lambda"]),
                                       float(c[f"{{p}}.sparsityParam"]), float(c[f"{{p}}.beta"]),
                                       c[f"{{p}}.data"]{python_extra})
    results[f"{{p}}.cost"], results[f"{{p}}.{{grad_key}}"] = cost, grad
np.savez("results.npz", **results)
```

Any other language: read `cases.json` and write `results.json` as
`{{"PROBE": {{"cost": 0.123, "grad": [ ... ]}}, ...}}`.

Then: `sae-jax check --results results.npz{results_flags}`. Agreement means max |yours − expected| ≤ {tol:g} × max |expected|
for the cost and each gradient array, on every probe.
"""


def _readme_slots(tied: bool, l1: float, denoising: bool) -> dict:
    keys = ("W1", "b1", "b2") if tied else ("W1", "b1", "W2", "b2")
    extra = (["corruptedData"] if denoising else []) + (["l1"] if l1 else [])
    return dict(
        l1_term=" + γ (1/m) Σᵢ ‖a⁽²⁾⁽ⁱ⁾‖₁" if l1 else "",
        variant_text=(f", L1 activation penalty γ = {l1:g} (field `l1`)" if l1 else "") + (
            ", denoising: the network reads the corrupted input (`corruptedData`, visibleSize × m) and "
            "reconstructs the clean `data`; ρ̂ is of the corrupted input's hidden activations; the probe "
            "`*_m7_uncorrupted` has corruptedData = data" if denoising else ""),
        fields=(", `corruptedData` (the input the network reads, like `data`)" if denoising else "")
        + (", `l1` (γ)" if l1 else ""),
        row_fields=", `x_input` (m × visibleSize, corrupted)" if denoising else "",
        matlab_extra="".join(f", p.{k}" for k in extra),
        python_extra="".join(f", c[f\"{{p}}.{k}\"]" if k != "l1" else f", float(c[f\"{{p}}.{k}\"])" for k in extra),
        results_flags=f" --l1 {l1:g}" if l1 else "",
        decay="λ‖W1‖²" if tied else "(λ/2)(‖W1‖² + ‖W2‖²)",
        tied_text=(" with tied weights W2 = W1ᵀ (the untied cost at W2 = W1ᵀ: weight decay counts both copies; "
                   "∂J/∂W1 sums the encoder's and the decoder's contributions)") if tied else "",
        theta_form="[W1(:); b1(:); b2(:)]" if tied else "[W1(:); W2(:); b1(:); b2(:)]",
        arrays=", ".join(f"`{k}`" for k in keys[1:]),
        expected=", ".join(f"`expected_{k}grad`" for k in keys),
        grads=", ".join(f"`{k}grad`" for k in keys),
    )


def write_cases(directory, *, tied: bool = False, l1: float | None = None, denoising: bool = False) -> list[Path]:
    """Write the probe inputs and sae-jax's expected outputs as .npz, .mat and .json, plus a README.md.

    Returns the written paths. ``directory`` is created if needed (its parent must exist).
    ``tied=True``: the tied probes (``*_tied_*``: theta = [W1(:); b1(:); b2(:)], no W2);
    ``l1=`` γ: the L1 probes at that γ (``*_l1_*``, field ``l1``); ``denoising=True``: the
    denoising probes (``*_denoising_*``, fields ``corruptedData`` and ``x_input``).
    """
    import scipy.io

    check_options(tied, l1, denoising)
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise InputError(f"--write-cases {str(d)!r} exists and is not a directory")
    if not d.parent.is_dir():
        raise InputError(f"--write-cases: the parent directory {str(d.parent)!r} does not exist")
    d.mkdir(exist_ok=True)
    l1 = float(l1 or 0.0)
    ps = probes(tied=tied, l1=l1, denoising=denoising)
    cases = {p.name: _case_dict(p) for p in ps}
    flat = {f"{n}.{k}": np.asarray(v) for n, c in cases.items() for k, v in c.items()}
    flat["probes"] = np.asarray([p.name for p in ps])
    written = []

    def _write(name, writer):
        tmp = d / f".{name}.tmp"
        writer(tmp)
        os.replace(tmp, d / name)
        written.append(d / name)

    def _npz(path):
        with open(path, "wb") as f:
            np.savez(f, **flat)

    def _mat(path):
        with open(path, "wb") as f:  # one struct per probe; vectors as columns, as MATLAB's theta
            scipy.io.savemat(f, cases, oned_as="column")

    def _json(path):
        js = {"probes": {n: {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in c.items()}
                         for n, c in cases.items()}}
        path.write_text(json.dumps(js, indent=1))

    _write("cases.npz", _npz)
    _write("cases.mat", _mat)
    _write("cases.json", _json)
    sig = probes("sigmoid", tied=tied, l1=l1, denoising=denoising)
    names = ", ".join(p.name for p in sig) + f" (and the same {len(sig)} with linear_)"
    _write("README.md", lambda path: path.write_text(
        _README.format(n=len(ps), nd=len(sig), names=names, tol=DEFAULT_TOL,
                       **_readme_slots(tied, l1, denoising))))
    return written


def _load(path: Path) -> dict[str, dict]:
    """Results file -> {probe: {field: value}}."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                out: dict[str, dict] = {}
                for key in z.files:
                    if "." in key:
                        n, f = key.split(".", 1)
                        out.setdefault(n, {})[f] = z[key]
                return out
        if suffix == ".mat":
            import scipy.io

            raw = {n: v for n, v in scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False).items()
                   if not n.startswith("__")}
            if len(raw) == 1:  # one struct holding a struct per probe: save('results.mat', 'results')
                (v,) = raw.values()
                if hasattr(v, "_fieldnames") and all(hasattr(getattr(v, f), "_fieldnames") for f in v._fieldnames):
                    raw = {f: getattr(v, f) for f in v._fieldnames}
            return {n: {f: getattr(v, f) for f in v._fieldnames} for n, v in raw.items() if hasattr(v, "_fieldnames")}
        if suffix == ".json":
            js = json.loads(path.read_text())
            if not isinstance(js, dict):
                raise InputError(f"results file {str(path)!r}: expected a JSON object {{probe: {{cost, grad}}}}")
            js = js.get("probes", js)
            out = {}
            for n, v in js.items():
                if isinstance(v, dict):
                    out[n] = v
                elif "." in n:
                    a, f = n.split(".", 1)
                    out.setdefault(a, {})[f] = v
            return out
    except InputError:
        raise
    except Exception as e:
        msg = str(e).strip().splitlines()
        raise InputError(f"results file {str(path)!r} cannot be read: {type(e).__name__}: {msg[0] if msg else ''}") from None
    raise InputError(f"results file must be .npz, .mat or .json, got {str(path)!r}")


def read_results_fields(path) -> list[set]:
    """The field names of each probe's entry in a results file (already validated by :func:`read_results`)."""
    return [set(f) for f in _load(Path(path)).values()]


def read_results(path, output: str | None = None, *, l1: float | None = None, tied: bool | None = None,
                 denoising: bool | None = None, packing: str | None = None):
    """Read a results file: ``(probes, {packing: {probe: (cost, Params)}}, missing)`` for the probes it covers.

    The probe names tell the variant; ``tied``/``denoising`` (if given) must agree, and L1 cases
    (``*_l1_*``) need ``l1``, the γ they were written with. ``packing``: ``"F"`` or ``"C"``, how the
    ``grad`` field is packed (default ``"F"``, like the cases' ``theta``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"results file {str(path)!r} does not exist")
    raw = _load(path)
    parsed = {n: parse_name(n) for n in raw}
    unknown = sorted(n for n, v in parsed.items() if v is None)
    if unknown:
        raise InputError(f"results file has unknown probe(s) {unknown[:3]}; expected names like "
                         f"{[p.name for p in probes('sigmoid')[:2]]}")
    decoders = sorted({v[1]["output"] for v in parsed.values()})
    if output is not None:
        decoders = [d for d in decoders if d == output]
    if not decoders:
        raise InputError(f"results file {str(path)!r} holds no probe results" + (f" for the {output} decoder" if output else ""))
    if len(decoders) > 1:
        raise InputError("results file holds probes of both decoders; pass --output sigmoid or --output linear")
    kinds = {tuple(v[1][k] for k in ("tied", "l1", "denoising")) for v in parsed.values() if v[1]["output"] == decoders[0]}
    if len(kinds) > 1:
        raise InputError("results file mixes the cases of different variants (e.g. tied *_tied_* and untied probes); "
                         "answer one set of cases")
    ((is_tied, has_l1, is_dae),) = kinds
    for name, asked, have, what in (("tied", tied, is_tied, ("the untied cases", "the tied cases")),
                                    ("denoising", denoising, is_dae, ("cases without denoising", "denoising cases"))):
        if asked is not None and asked != have:
            raise InputError(f"results file {str(path)!r} answers {what[have]}, but {name}={asked} was asked for"
                             + (f" (--{name})" if asked else ""))
    if has_l1 != bool(l1):
        raise InputError(f"results file {str(path)!r} answers the L1 cases (*_l1_*): pass --l1 GAMMA, the γ the cases "
                         f"were written with" if has_l1 else
                         f"results file {str(path)!r} answers cases without the L1 penalty, but --l1 was given")
    allp = probes(decoders[0], tied=is_tied, l1=float(l1 or 0.0), denoising=is_dae)
    ps = [p for p in allp if p.name in raw]
    missing = [p.name for p in allp if p.name not in raw]
    tied = is_tied
    by_packing: dict[str, dict] = {}
    for p in ps:
        f = raw[p.name]
        who = f"results for probe {p.name}"
        if "cost" not in f:
            raise InputError(f"{who}: no 'cost' field (fields: {sorted(f)})")
        J = to_scalar(f["cost"], f"{who}: cost")
        N = (1 if tied else 2) * p.n_hidden * p.n_visible + p.n_hidden + p.n_visible
        keys = ("W1grad", "b1grad", "b2grad") if tied else ("W1grad", "b1grad", "W2grad", "b2grad")
        if "grad" in f or "grad_rowmajor" in f:
            key, pk = ("grad", packing or "F") if "grad" in f else ("grad_rowmajor", "C")
            g = to_numpy(f[key], f"{who}: {key}")
            if g.size != N:
                raise InputError(f"{who}: {key} has {g.size} entries, expected {N} (packed like theta)")
            grads = unpack_theta(g.ravel(), p.n_visible, p.n_hidden, pk, tied=tied)
        elif all(k in f for k in keys):
            pk = "C"
            grads, _ = rows_grads({k: f[k] for k in keys}, p, who)
        else:
            raise InputError(f"{who}: needs 'grad', 'grad_rowmajor' or {'/'.join(keys)} (fields: {sorted(f)})")
        if not (np.isfinite(J) and all(a is None or np.all(np.isfinite(a)) for a in grads)):
            raise InputError(f"{who}: non-finite values (NaN or inf)")
        by_packing.setdefault(pk, {})[p.name] = (J, grads)
    if len(by_packing) > 1:
        raise InputError("results file mixes gradient packings across probes; use one of grad, grad_rowmajor, W1grad...")
    return ps, by_packing, missing
