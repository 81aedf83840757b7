"""sae_jax._src.check / `sae-jax check`: planted mistakes are named (untied, tied, L1, denoising), correct code passes, files round trip.

The implementation under test here is written in UFLDL's own column layout with a flat theta
(like tests/ufldl_reference.py, sharing no code with sae_jax._src.check's catalogue, which works in
rows), with one switch per catalogued mistake planted the way a student would write it.
"""

import json
import textwrap

import numpy as np
import pytest

import sae_jax
from sae_jax.check import CATALOGUE, MISTAKES, check, check_results, probes, reference
from sae_jax.check import variant_cost_and_grad
from sae_jax._src.check.locate import NEAR
from sae_jax.cli import main


def sigm(z):
    return 1.0 / (1.0 + np.exp(-z))


def ufldl_cost(theta, visibleSize, hiddenSize, lam, sparsityParam, beta, data, *, mistake=None, linear=False,
               order="F", tied=False, gamma=0.0, corrupted=None):
    """sparseAutoencoderCost.m in numpy (data as columns), with planted mistake(s) (None: correct).

    ``tied=True``: the same code with W2 = W1ᵀ (theta = [W1(:); b1; b2]), its W1 gradient the sum of
    the two contributions ``W1grad + W2grad'`` (as a student adapts the untied code). ``gamma``: the
    L1 activation penalty gamma/m sum|a2|; ``corrupted``: denoising, the input the network reads
    (``data`` stays the target).
    """
    mistakes = (mistake,) if isinstance(mistake, str) else tuple(mistake or ())
    hv = hiddenSize * visibleSize
    W1 = theta[:hv].reshape(hiddenSize, visibleSize, order=order)
    if tied:
        W2 = W1.T
        b1 = theta[hv : hv + hiddenSize]
        b2 = theta[hv + hiddenSize :]
    else:
        W2 = theta[hv : 2 * hv].reshape(visibleSize, hiddenSize, order=order)
        b1 = theta[2 * hv : 2 * hv + hiddenSize]
        b2 = theta[2 * hv + hiddenSize :]
    m = data.shape[1]
    rho = sparsityParam

    x_in = data if corrupted is None or "denoising_input_ignored" in mistakes else corrupted
    target = x_in if "denoising_target_is_corrupted_input" in mistakes else data
    z2 = W1 @ x_in + b1[:, None]
    a2 = sigm(z2)
    z3 = W2 @ a2 + b2[:, None]
    a3 = z3 if linear else sigm(z3)

    if "denoising_rho_hat_from_clean_input" in mistakes:
        rho_hat = np.mean(sigm(W1 @ data + b1[:, None]), axis=1)
    elif "rho_hat_wrong_axis" in mistakes:
        rho_hat = np.mean(a2, axis=0)  # (m,): over hidden units
    elif "rho_hat_summed" in mistakes:
        rho_hat = np.sum(a2, axis=1)  # no 1/m: above 1 for active units when m > 1
    else:
        rho_hat = np.mean(a2, axis=1)  # (h,): over samples

    if "kl_reversed" in mistakes:
        kl = np.sum(rho_hat * np.log(rho_hat / rho) + (1 - rho_hat) * np.log((1 - rho_hat) / (1 - rho)))
    else:
        kl = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    sq = np.sum((a3 - target) ** 2)
    if "reconstruction_summed" in mistakes:
        recon = 0.5 * sq
    elif "reconstruction_missing_half" in mistakes:
        recon = sq / m
    else:
        recon = 0.5 * sq / m
    decay = (lam / 2) * (np.sum(W1**2) + np.sum(W2**2))
    if "weight_decay_on_biases" in mistakes:
        decay += (lam / 2) * (np.sum(b1**2) + np.sum(b2**2))
    if "weight_decay_divided_by_m" in mistakes:
        decay = (lam / (2 * m)) * (np.sum(W1**2) + np.sum(W2**2))
    cost = recon + decay + beta * kl
    if "l1_not_averaged" in mistakes:
        cost += gamma * np.sum(np.abs(a2))
    elif "l1_missing_from_cost" not in mistakes:
        cost += gamma * np.sum(np.abs(a2)) / m

    def fprime(z, a):
        if "fprime_of_z" in mistakes:
            return z * (1 - z)
        if "fprime_of_activation" in mistakes:
            return sigm(a) * (1 - sigm(a))
        return a * (1 - a)

    if linear:
        delta3 = -(target - a3) * (a3 * (1 - a3) if "sigmoid_fprime_in_linear_decoder" in mistakes else 1.0)
    elif "output_delta_missing_fprime" in mistakes:
        delta3 = -(target - a3)
    else:
        delta3 = -(target - a3) * fprime(z3, a3)

    if "kl_reversed" in mistakes:
        sparsity_delta = np.log(rho_hat / rho) - np.log((1 - rho_hat) / (1 - rho))
    elif "kl_derivative_sign_flipped" in mistakes:
        sparsity_delta = rho / rho_hat - (1 - rho) / (1 - rho_hat)
    else:
        sparsity_delta = -rho / rho_hat + (1 - rho) / (1 - rho_hat)
    if "sparsity_delta_divided_by_m" in mistakes:
        sparsity_delta = sparsity_delta / m
    fp2 = fprime(z2, a2)
    if "sparsity_missing_from_backprop" in mistakes:
        delta2 = (W2.T @ delta3) * fp2
    elif "beta_applied_twice" in mistakes:
        delta2 = (W2.T @ delta3 + beta * (beta * sparsity_delta)[:, None]) * fp2
    elif "rho_hat_wrong_axis" in mistakes:
        delta2 = (W2.T @ delta3 + beta * sparsity_delta) * fp2  # (m,) broadcasts over the rows
    else:
        delta2 = (W2.T @ delta3 + beta * sparsity_delta[:, None]) * fp2
    if "l1_delta_missing_fprime" in mistakes:
        delta2 = delta2 + gamma
    elif "l1_delta_divided_by_m" in mistakes:
        delta2 = delta2 + gamma / m * fp2
    elif not {"l1_missing_from_backprop", "l1_not_averaged"} & set(mistakes):
        delta2 = delta2 + gamma * fp2
    x_w = data if "denoising_clean_input_in_weight_gradient" in mistakes else x_in

    if "reconstruction_summed" in mistakes:  # the exact gradient of the summed data term
        d2_rec = (W2.T @ delta3) * fp2
        d2_sp = delta2 - d2_rec
        W1grad = d2_rec @ x_w.T + d2_sp @ x_w.T / m + lam * W1
        b1grad = d2_rec.sum(axis=1) + d2_sp.sum(axis=1) / m
        W2grad = delta3 @ a2.T + lam * W2
        b2grad = delta3.sum(axis=1)
    elif "gradient_not_averaged" in mistakes:
        W1grad, W2grad = delta2 @ x_w.T + lam * W1, delta3 @ a2.T + lam * W2
        b1grad, b2grad = delta2.sum(axis=1), delta3.sum(axis=1)
    elif "transposed_weight_gradients" in mistakes:
        W1grad = x_w @ delta2.T / m + lam * W1.T  # visibleSize x hiddenSize
        W2grad = a2 @ delta3.T / m + lam * W2.T
        b1grad, b2grad = delta2.sum(axis=1) / m, delta3.sum(axis=1) / m
    else:
        W1grad, W2grad = delta2 @ x_w.T / m + lam * W1, delta3 @ a2.T / m + lam * W2
        b1grad, b2grad = delta2.sum(axis=1) / m, delta3.sum(axis=1) / m
    if "l1_not_averaged" in mistakes:  # the gradient of gamma * sum|a2|, never divided by m
        W1grad, b1grad = W1grad + (gamma * fp2) @ x_w.T, b1grad + (gamma * fp2).sum(axis=1)
    if "weight_decay_on_biases" in mistakes:
        b1grad, b2grad = b1grad + lam * b1, b2grad + lam * b2
    if "weight_decay_divided_by_m" in mistakes:
        W1grad, W2grad = W1grad - lam * W1 + (lam / m) * W1, W2grad - lam * W2 + (lam / m) * W2
    if "lambda_applied_twice" in mistakes:
        W1grad, W2grad = W1grad + lam * W1, W2grad + lam * W2
    if tied:  # the encoder's and the decoder's contributions (both transposed with that mistake)
        return cost, np.concatenate([(W1grad + W2grad.T).ravel(order=order), b1grad, b2grad])
    grad = np.concatenate([W1grad.ravel(order=order), W2grad.ravel(order=order), b1grad, b2grad])
    return cost, grad


def planted(mistake=None, *, linear=False, order="F"):
    def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
        return ufldl_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data,
                          mistake=mistake, linear=linear, order=order)

    return sparseAutoencoderCost


CASES = [(mk.name, out) for mk in CATALOGUE for out in ("sigmoid", "linear") if mk.applies(out)]


def test_catalogue_is_large_enough_and_documented():
    assert len(CATALOGUE) >= 10
    doc = sae_jax.check.__doc__
    for mk in CATALOGUE:
        assert f"``{mk.name}``" in doc, mk.name
    for p in probes("sigmoid"):
        assert "``*" + p.name[len("sigmoid"):] + "``" in doc, p.name


@pytest.mark.parametrize("mistake,output", CASES, ids=[f"{m}-{o}" for m, o in CASES])
def test_every_planted_mistake_is_named(mistake, output):
    report = check(planted(mistake, linear=output == "linear"), output=output)
    assert not report.passed and report.exit_code == 1
    assert report.match == (mistake,), report.text
    assert f"Diagnosis: {mistake}" in report.text
    assert MISTAKES[mistake].derivation in report.text
    if mistake == "transposed_weight_gradients":
        assert "the correct array transposed" in report.text


def test_the_question_variant_report_shows_the_ratio_per_probe():
    report = check(planted("sparsity_delta_divided_by_m", order="C"))
    assert report.packing == "C"
    text = report.text
    assert "sparsity ×0.142857 (1/7)" in text and "sparsity ×0.05 (1/20)" in text
    # m = 1 agrees: no evidence line for it, and its row of the table has no "!"
    assert "sigmoid_m1 " not in text.split("Evidence")[1]
    row = [ln for ln in text.splitlines() if ln.strip().startswith("sigmoid_m1 ")][0]
    assert "!" not in row
    assert "NOT match central finite differences of their own cost on W1" in text
    assert "derivations/variant.py" in text


def test_consistent_convention_difference_is_told_from_a_gradient_bug():
    # KL(rho_hat || rho): cost and gradient consistent -> finite differences agree
    text = check(planted("kl_reversed")).text
    assert "matches central finite differences of their own cost" in text
    # the missing 1/2 in the cost only: their gradient disagrees with their own cost
    text = check(planted("reconstruction_missing_half")).text
    assert "does NOT match central finite differences" in text
    assert "reconstruction ×2" in text


def test_unmatched_difference_reports_arrays_ratios_and_fd():
    def f(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
        J, g = ufldl_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data)
        hv = hiddenSize * visibleSize
        g[2 * hv : 2 * hv + hiddenSize] *= 1.5  # b1grad 1.5x: not in the catalogue
        return J, g

    report = check(f)
    assert report.match is None and report.exit_code == 1
    assert "No catalogued mistake" in report.text
    assert "b1 on 7" in report.text and "reconstruction ×1.5 (3/2)" in report.text
    # the Diagnosis line leads with the located difference; no "nearest variants" (none is near)
    assert "Diagnosis: b1grad's reconstruction and sparsity parts are 3/2× the correct value" in report.text
    assert "Nearest variants" not in report.text
    assert "does NOT match central finite differences of their own cost on b1" in report.text


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("order", ["F", "C"])
def test_correct_ufldl_passes_in_both_packings(order, output):
    report = check(planted(None, linear=output == "linear", order=order), output=output)
    assert report.passed and report.exit_code == 0 and report.match == (), report.text
    assert report.packing == order
    assert "PASS" in report.text and "1e-07" in report.text
    assert max(max(e.values()) for e in report.errors.values()) < 1e-10  # saturated probe: 1 - rho_hat cancels


def test_catalogue_correct_variant_equals_sae_jax():
    for p in probes():
        J, g = variant_cost_and_grad(p.params, p.x, lam=p.lam, beta=p.beta, rho=p.rho, output=p.output)
        r = reference(p.name)
        # 1e-10, not 1e-12: the probes' always-on unit has 1 - rho_hat ~ 1e-4, which the NumPy
        # transcription forms as 1 - mean(a) (losing ~4 digits, ~2e-12 relative) while sae-jax
        # evaluates it as mean f(-z) (exact; tests/test_saturation.py holds it to mpmath).
        assert abs(J - r.cost) <= 1e-10 * abs(r.cost)
        for a, b in zip(g, r.grads):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * np.max(np.abs(b)))
        assert 1e-7 < r.rho_hat.min() and r.rho_hat.max() < 1 - 1e-7  # the plain formula's regime


def test_saturated_probe_is_saturated_but_finite():
    (p,) = [q for q in probes("sigmoid") if q.name == "sigmoid_m20_saturated"]
    rh = reference(p.name).rho_hat
    assert rh.min() < 1e-4 and 1 - rh.max() < 1e-3 and np.isfinite(reference(p.name).cost)


def rows_numpy(params, x, lam, beta, rho):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    m = x.shape[0]
    a2 = sigm(x @ W1.T + b1)
    a3 = sigm(a2 @ W2.T + b2)
    rh = a2.mean(axis=0)
    J = (0.5 / m * np.sum((a3 - x) ** 2) + lam / 2 * (np.sum(W1**2) + np.sum(W2**2))
         + beta * np.sum(rho * np.log(rho / rh) + (1 - rho) * np.log((1 - rho) / (1 - rh))))
    d3 = (a3 - x) * a3 * (1 - a3)
    d2 = (d3 @ W2 + beta * (-rho / rh + (1 - rho) / (1 - rh))) * a2 * (1 - a2)
    return J, {"W1grad": d2.T @ x / m + lam * W1, "b1grad": d2.sum(0) / m, "W2grad": d3.T @ a2 / m + lam * W2,
               "b2grad": d3.sum(0) / m}


def test_correct_rows_form_passes():
    report = check(rows_numpy)
    assert report.passed, report.text
    assert "rows form" in report.text


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_sae_jax_itself_passes_in_rows_form(output):
    report = check(sae_jax.cost_and_grad, output=output)  # params, x, *, lam, beta, rho, output
    assert report.passed, report.text


def test_pytorch_implementation_passes():
    torch = pytest.importorskip("torch")

    def cost_and_grad(params, x, lam, beta, rho):
        W1, b1, W2, b2 = (p.clone().requires_grad_(True) for p in params)
        m = x.shape[0]
        a2 = torch.sigmoid(x @ W1.T + b1)
        a3 = torch.sigmoid(a2 @ W2.T + b2)
        rh = a2.mean(0)
        J = (0.5 / m * ((a3 - x) ** 2).sum() + lam / 2 * ((W1**2).sum() + (W2**2).sum())
             + beta * (rho * torch.log(rho / rh) + (1 - rho) * torch.log((1 - rho) / (1 - rh))).sum())
        J.backward()
        return J, (W1.grad, b1.grad, W2.grad, b2.grad)

    assert check(cost_and_grad, arrays="torch").passed
    cost_and_grad.__globals__["torch"] = torch  # this module imports torch: auto-detected
    assert check(cost_and_grad).passed


# ---------------------------------------------------------------------------------------
# files: --write-cases / --results
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cases_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cases") / "cases"
    assert main(["check", "--write-cases", str(d)]) == 0
    return d


def _run_on_cases(case_fields, fn, output):
    """What a user does with the cases: call their function on each probe of their decoder."""
    out = {}
    for name, c in case_fields.items():
        if str(c["output"]) != output:
            continue
        J, g = fn(np.asarray(c["theta"], np.float64).ravel(), int(c["visibleSize"]), int(c["hiddenSize"]),
                  float(c["lambda"]), float(c["sparsityParam"]), float(c["beta"]),
                  np.asarray(c["data"], np.float64).reshape(int(c["visibleSize"]), -1))  # loadmat squeezes m = 1
        out[name] = {"cost": J, "grad": g}
    return out


def test_cases_files_hold_inputs_and_expected_outputs(cases_dir):
    import scipy.io

    assert sorted(p.name for p in cases_dir.iterdir()) == ["README.md", "cases.json", "cases.mat", "cases.npz"]
    mat = scipy.io.loadmat(cases_dir / "cases.mat", squeeze_me=True, struct_as_record=False)
    js = json.loads((cases_dir / "cases.json").read_text())["probes"]
    npz = np.load(cases_dir / "cases.npz")
    assert set(npz["probes"]) == set(js) == {p.name for p in probes()} <= set(mat)
    for p in probes():
        c = mat[p.name]
        theta = np.asarray(c.theta)
        # MATLAB's column-major theta, and the expected outputs are sae-jax's reference
        J, g = ufldl_cost(theta, int(c.visibleSize), int(c.hiddenSize), float(c.__dict__["lambda"]),
                          float(c.sparsityParam), float(c.beta), np.asarray(c.data).reshape(p.n_visible, -1),
                          linear=p.output == "linear")
        assert abs(J - float(c.expected_cost)) <= 1e-12 * abs(J)
        np.testing.assert_allclose(g, np.asarray(c.expected_grad), rtol=1e-11, atol=1e-14)
        np.testing.assert_array_equal(np.asarray(js[p.name]["theta"]), npz[f"{p.name}.theta"])
        np.testing.assert_array_equal(npz[f"{p.name}.x"].T, npz[f"{p.name}.data"])
    readme = (cases_dir / "README.md").read_text()
    assert "sae-jax check --results" in readme and "column-major" in readme


def test_mat_results_round_trip(cases_dir, tmp_path, capsys):
    import scipy.io

    mat = scipy.io.loadmat(cases_dir / "cases.mat", squeeze_me=True, struct_as_record=False)
    fields = {n: {f: getattr(v, f) for f in v._fieldnames} for n, v in mat.items() if not n.startswith("__")}
    results = _run_on_cases(fields, planted(None), "sigmoid")
    scipy.io.savemat(tmp_path / "results.mat", results, oned_as="column")
    assert main(["check", "--results", str(tmp_path / "results.mat")]) == 0
    assert "PASS" in capsys.readouterr().out

    results = _run_on_cases(fields, planted("weight_decay_on_biases"), "sigmoid")
    # as the README's MATLAB snippet saves it: one struct `results` with a field per probe
    scipy.io.savemat(tmp_path / "bad.mat", {"results": results}, oned_as="column")
    assert main(["check", "--results", str(tmp_path / "bad.mat")]) == 1
    out = capsys.readouterr().out
    assert "Diagnosis: weight_decay_on_biases" in out and "Finite differences of their own cost need" in out


def test_npz_and_json_results_round_trip(cases_dir, tmp_path):
    z = np.load(cases_dir / "cases.npz")
    fields = {}
    for key in z.files:
        if "." in key:
            n, f = key.split(".", 1)
            fields.setdefault(n, {})[f] = z[key]
    # a numpy port with row-major packing uses theta_rowmajor and returns grad_rowmajor
    for n in fields:
        fields[n]["theta"] = fields[n]["theta_rowmajor"]
    res = _run_on_cases(fields, planted("sparsity_delta_divided_by_m", linear=True, order="C"), "linear")
    np.savez(tmp_path / "r.npz", **{f"{n}.cost": r["cost"] for n, r in res.items()},
             **{f"{n}.grad_rowmajor": r["grad"] for n, r in res.items()})
    report = check_results(tmp_path / "r.npz")
    assert report.match == ("sparsity_delta_divided_by_m",), report.text

    js = json.loads((cases_dir / "cases.json").read_text())["probes"]
    res = _run_on_cases(js, planted(None), "sigmoid")
    del res["sigmoid_m20"]
    (tmp_path / "r.json").write_text(json.dumps({n: {"cost": r["cost"], "grad": r["grad"].tolist()}
                                                 for n, r in res.items()}))
    report = check_results(tmp_path / "r.json")
    assert report.passed and "not in the file: sigmoid_m20" in report.text


# ---------------------------------------------------------------------------------------
# the command and its bad inputs (exit 2, one line on stderr)
# ---------------------------------------------------------------------------------------


def _write(tmp_path, name, source):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


GOOD = """
import numpy as np
def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
    {body}
"""


def test_cli_runs_a_file_target(tmp_path, capsys):
    src = tmp_path / "student.py"
    src.write_text("from helper import f as sparseAutoencoderCost\n")
    import inspect

    helper = inspect.getsource(sigm) + inspect.getsource(ufldl_cost).replace("def ufldl_cost", "def _cost") + (
        "\ndef f(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):\n"
        "    return _cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data, mistake='beta_applied_twice')\n")
    (tmp_path / "helper.py").write_text("import numpy as np\n" + helper)
    assert main(["check", f"{src}:sparseAutoencoderCost"]) == 1
    out = capsys.readouterr().out
    assert "Diagnosis: beta_applied_twice" in out and "sparsity ×3" in out
    assert main(["check", "sae_jax:cost_and_grad", "--output", "linear"]) == 0


def _bad(argv, capsys, match):
    assert main(argv) == 2
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sae-jax check: error:"), cap.err
    assert match in lines[0], lines[0]
    assert cap.out == ""


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    t = tmp_path
    _bad(["check"], capsys, "give exactly one of")
    _bad(["check", "x.py:f", "--results", "r.npz"], capsys, "give exactly one of")
    _bad(["check", "no_colon"], capsys, "path/to/file.py:function")
    _bad(["check", f"{t}/missing.py:f"], capsys, "does not exist")
    _bad(["check", "no_such_module_xyz:f"], capsys, "importing 'no_such_module_xyz' failed: ModuleNotFoundError")
    p = _write(t, "imports_bad.py", "import no_such_module_abc\n")
    _bad(["check", f"{p}:f"], capsys, "ModuleNotFoundError")
    p = _write(t, "syntax.py", "def f(:\n")
    _bad(["check", f"{p}:f"], capsys, "SyntaxError")
    p = _write(t, "fns.py", """
        import numpy as np
        X = 3
        def three(a, b, c): return 0.0, 0.0
        def raises(theta, v, h, lam, rho, beta, data): raise RuntimeError("boom\\nsecond line")
        def short_grad(theta, v, h, lam, rho, beta, data): return 1.0, np.zeros(7)
        def one_output(theta, v, h, lam, rho, beta, data): return 1.0
        def vector_cost(theta, v, h, lam, rho, beta, data): return np.ones(3), np.zeros_like(theta)
        def nan_out(theta, v, h, lam, rho, beta, data): return float("nan"), np.zeros_like(theta)
        def rows_bad_shapes(params, x, lam, beta, rho): return 1.0, (params.W1, params.b1, params.W2[:2], params.b2)
        def rows_nan(params, x, lam, beta, rho): return 1.0, (params.W1 * np.nan, params.b1, params.W2, params.b2)
    """)
    _bad(["check", f"{p}:nothere"], capsys, "has no attribute 'nothere'")
    _bad(["check", f"{p}:X"], capsys, "is not callable")
    _bad(["check", f"{p}:three"], capsys, "cannot tell the convention")
    _bad(["check", f"{p}:three", "--convention", "ufldl"], capsys, "raised TypeError")
    _bad(["check", f"{p}:raises"], capsys, "raised RuntimeError: boom")
    _bad(["check", f"{p}:short_grad"], capsys, "gradient has shape (7,), expected a vector of 38")
    _bad(["check", f"{p}:one_output"], capsys, "must return (cost, gradient)")
    _bad(["check", f"{p}:vector_cost"], capsys, "cost must be a scalar")
    _bad(["check", f"{p}:nan_out"], capsys, "non-finite")
    _bad(["check", f"{p}:rows_bad_shapes"], capsys, "gradient arrays have shapes")
    _bad(["check", f"{p}:rows_nan"], capsys, "non-finite values (NaN or inf) in W1")
    _bad(["check", "--results", str(t / "none.npz")], capsys, "does not exist")
    np.savez(t / "r.npz", **{"nonsense.cost": 1.0})
    _bad(["check", "--results", str(t / "r.npz")], capsys, "unknown probe")
    np.savez(t / "r2.npz", **{"sigmoid_m1.cost": 1.0, "sigmoid_m1.grad": np.zeros(5)})
    _bad(["check", "--results", str(t / "r2.npz")], capsys, "expected 38")
    (t / "r.txt").write_text("x")
    _bad(["check", "--results", str(t / "r.txt")], capsys, "must be .npz, .mat or .json")
    (t / "r.json").write_text("{not json")
    _bad(["check", "--results", str(t / "r.json")], capsys, "cannot be read")
    (t / "file").write_text("")
    _bad(["check", "--write-cases", str(t / "file")], capsys, "not a directory")
    _bad(["check", "sae_jax:cost_and_grad", "--tol", "2"], capsys, "tol must be")


# ---------------------------------------------------------------------------------------
# the documented commands and snippets, as written
# ---------------------------------------------------------------------------------------

MY_SAE = """
import numpy as np
import sys
sys.path.insert(0, {tests!r})
from test_check import planted, variant_cost_and_grad

sparseAutoencoderCost = planted("sparsity_delta_divided_by_m", order="C")
my_code_cost = planted(None, order="C")   # correct, a numpy port (row-major: the template's LAYOUT = "row")

def cost_and_grad(params, x, lam, beta, rho):
    return variant_cost_and_grad(params, x, lam=lam, beta=beta, rho=rho, output="linear")

from test_check import planted_tied
tiedAutoencoderCost = planted_tied("tied_decoder_contribution_missing")

from test_check import planted_variant
l1AutoencoderCost = planted_variant("l1_delta_divided_by_m", l1=True)          # (..., data, gamma)
denoisingAutoencoderCost = planted_variant(None, denoising=True)                # (..., data, corruptedData)
"""


def _blocks(text, lang):
    import re

    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_readme_check_section_runs_as_written(tmp_path, monkeypatch, capsys):
    import shlex
    from pathlib import Path

    # the README's section, now the Check guide (issue 22.6)
    section = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "check.md").read_text()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_sae.py").write_text(MY_SAE.format(tests=str(Path(__file__).parent)))
    monkeypatch.syspath_prepend(str(tmp_path))
    (bash,) = _blocks(section, "bash")
    expected = iter([1, 0, 1, 1, 0, 0, 0])
    for line in bash.strip().splitlines():
        argv = shlex.split(line.split("#", 1)[0])
        assert argv[0] == "sae-jax"
        if argv[1:3] == ["check", "--results"]:  # make results.mat from the cases just written (correct code)
            import scipy.io

            mat = scipy.io.loadmat("cases/cases.mat", squeeze_me=True, struct_as_record=False)
            fields = {n: {f: getattr(v, f) for f in v._fieldnames} for n, v in mat.items() if not n.startswith("__")}
            scipy.io.savemat("results.mat", {"results": _run_on_cases(fields, planted(None), "sigmoid")})
        assert main(argv[1:]) == next(expected), line
    (py,) = _blocks(section, "python")
    ns = {}
    exec(py, ns)
    shown = py.split("report.passed, report.match", 1)[1].split("#", 1)[1].splitlines()[0].strip()
    assert repr((ns["report"].passed, ns["report"].match)) == shown


def test_cases_readme_python_snippet_runs_as_written(cases_dir, tmp_path, monkeypatch):
    from pathlib import Path

    import shutil

    (py,) = _blocks((cases_dir / "README.md").read_text(), "python")
    shutil.copy(cases_dir / "cases.npz", tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_code.py").write_text(MY_SAE.format(tests=str(Path(__file__).parent))
                                         + "\nsparseAutoencoderCost = my_code_cost\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    exec(py, {})
    assert main(["check", "--results", "results.npz"]) == 0


def test_rows_form_with_transposed_weight_gradients_is_diagnosed():
    def f(params, x, lam, beta, rho):
        J, g = rows_numpy(params, x, lam, beta, rho)
        return J, (g["W1grad"].T, g["b1grad"], g["W2grad"].T, g["b2grad"])  # (n, h) and (h, n)

    report = check(f)
    assert report.match == ("transposed_weight_gradients",), report.text


def test_two_mistakes_at_once_are_named_as_a_pair():
    report = check(planted(("weight_decay_on_biases", "sparsity_delta_divided_by_m")))
    assert report.match == ("sparsity_delta_divided_by_m", "weight_decay_on_biases"), report.text
    assert "Diagnosis: sparsity_delta_divided_by_m + weight_decay_on_biases" in report.text


def test_float32_code_is_told_to_compute_in_float64():
    def f(params, x, lam, beta, rho):
        p = {k: np.asarray(v, np.float32) for k, v in zip(("W1", "b1", "W2", "b2"), params)}
        return rows_numpy(p, x.astype(np.float32), np.float32(lam), np.float32(beta), np.float32(rho))

    report = check(f)
    assert not report.passed and report.match is None and report.fd_errors is None
    assert "a precision difference" in report.text and "Their outputs are float32" in report.text


def test_check_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["check", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--write-cases" in out and "--results" in out and "sae-jax check my_sae.py" in out
    assert "--l1 GAMMA" in out and "--denoising" in out and "corruptedData" in out
    assert "--packing {row,column}" in out
    assert "executes its top-level code" in " ".join(out.split()) and "only code you trust" in " ".join(out.split())


# ---------------------------------------------------------------------------------------
# tied weights (W2 = W1ᵀ): check(..., tied=True) / `sae-jax check --tied`
# ---------------------------------------------------------------------------------------

TIED_MISTAKES = [mk.name for mk in CATALOGUE if mk.weights == ("tied",)]


def ufldl_tied_cost(theta, visibleSize, hiddenSize, lam, sparsityParam, beta, data, *, mistake=None,
                    linear=False, order="F"):
    """A tied-weights sparseAutoencoderCost in numpy (data as columns, theta = [W1(:); b1; b2]),
    written as its own code (not sae_jax, not the catalogue), with a planted mistake (None: correct)."""
    h, n = hiddenSize, visibleSize
    W1 = theta[: h * n].reshape(h, n, order=order)
    b1, b2 = theta[h * n : h * n + h], theta[h * n + h :]
    m, rho = data.shape[1], sparsityParam
    a2 = sigm(W1 @ data + b1[:, None])
    z3 = W1.T @ a2 + b2[:, None]
    a3 = z3 if linear else sigm(z3)
    rho_hat = a2.mean(axis=1)
    decay = lam / 2 * np.sum(W1**2) if mistake == "tied_weight_decay_counted_once" else lam * np.sum(W1**2)
    cost = (0.5 / m * np.sum((a3 - data) ** 2) + decay
            + beta * np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))))
    delta3 = -(data - a3) * (1.0 if linear else a3 * (1 - a3))
    sparsity_delta = -rho / rho_hat + (1 - rho) / (1 - rho_hat)
    if mistake == "sparsity_delta_divided_by_m":
        sparsity_delta = sparsity_delta / m
    delta2 = (W1 @ delta3 + beta * sparsity_delta[:, None]) * a2 * (1 - a2)
    encoder = delta2 @ data.T / m + lam * W1              # ∂J/∂W1 with W2 held fixed
    decoder = (delta3 @ a2.T / m + lam * W1.T).T          # ∂J/∂W2, transposed
    if mistake == "tied_weight_decay_counted_once":
        decoder = decoder - lam * W1
    W1grad = {"tied_decoder_contribution_missing": encoder,
              "tied_encoder_contribution_missing": decoder}.get(mistake, encoder + decoder)
    return cost, np.concatenate([W1grad.ravel(order=order), delta2.sum(axis=1) / m, delta3.sum(axis=1) / m])


def planted_tied(mistake=None, *, linear=False, order="F"):
    """Tied code: the tied-only mistakes planted in ufldl_tied_cost, the shared ones in ufldl_cost(tied=True)."""
    if mistake is None or mistake in TIED_MISTAKES:
        def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
            return ufldl_tied_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data,
                                   mistake=mistake, linear=linear, order=order)
    else:
        def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
            return ufldl_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data,
                              mistake=mistake, linear=linear, order=order, tied=True)

    return sparseAutoencoderCost


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("order", ["F", "C"])
def test_correct_tied_implementation_passes(order, output):
    report = check(planted_tied(None, linear=output == "linear", order=order), output=output, tied=True)
    assert report.passed and report.match == () and report.packing == order, report.text
    assert max(max(e.values()) for e in report.errors.values()) < 1e-10
    assert all(set(e) == {"cost", "W1", "b1", "b2"} for e in report.errors.values())  # no W2
    assert "tied weights W2 = W1ᵀ" in report.text and f"{output}_tied_m7 " in report.text


# every catalogued mistake that applies to tied weights, on each decoder where it is visible
TIED_CASES = [(mk.name, out) for mk in CATALOGUE for out in ("sigmoid", "linear") if mk.applies(out, tied=True)]


@pytest.mark.parametrize("mistake,output", TIED_CASES, ids=[f"{m}-{o}" for m, o in TIED_CASES])
def test_every_planted_tied_mistake_is_named(mistake, output):
    report = check(planted_tied(mistake, linear=output == "linear"), output=output, tied=True)
    assert report.match == (mistake,), report.text
    if MISTAKES[mistake].convention:  # a documented convention, consistent with its own cost: exit 0
        assert report.passed and report.exit_code == 0
        assert "PASS, with a convention difference" in report.text and f"Convention: {mistake}" in report.text
    else:
        assert not report.passed and report.exit_code == 1
        assert f"Diagnosis: {mistake}" in report.text
    assert MISTAKES[mistake].derivation in report.text
    text = report.text.split("Evidence", 1)[1]
    if mistake == "tied_decoder_contribution_missing":
        assert "encoder contribution ×1, decoder contribution ×0" in text
        assert "the untied W1 formula" in report.text
    if mistake == "tied_encoder_contribution_missing":
        assert "encoder contribution ×0, decoder contribution ×1" in text
    if mistake == "tied_weight_decay_counted_once":
        assert "convention difference" in report.text and "λ‖W1‖²" in report.text
        assert "W1   parts vs correct: reconstruction ×1, decay ×0.5 (1/2)" in text
        assert "matches central finite differences of their own cost" in text
        assert f"{output}_tied_m7_lam0" not in text  # correct where λ = 0
    if mistake == "sparsity_delta_divided_by_m":
        assert "sparsity ×0.142857 (1/7)" in text
    if mistake == "transposed_weight_gradients":
        assert "W1   equals the correct array transposed" in text
    if mistake == "weight_decay_on_biases":
        assert f"{output}_tied_m7_lam0" not in text  # correct where λ = 0


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_untied_code_adapted_to_tied_weights_passes(output):
    def f(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
        return ufldl_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data,
                          linear=output == "linear", tied=True)

    report = check(f, output=output, tied=True)
    assert report.passed, report.text


def test_tied_mistakes_only_for_tied_and_variants_equal_sae_jax():
    assert len(TIED_MISTAKES) == 3
    for p in probes(tied=True):
        assert p.params.W2 is None and p.name.startswith(f"{p.output}_tied_")
        J, g = variant_cost_and_grad(p.params, p.x, lam=p.lam, beta=p.beta, rho=p.rho, output=p.output)
        r = reference(p.name)
        assert g.W2 is None and r.grads.W2 is None and abs(J - r.cost) <= 1e-10 * abs(r.cost)
        for a, b in zip((g.W1, g.b1, g.b2), (r.grads.W1, r.grads.b1, r.grads.b2)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * np.max(np.abs(b)))
        enc, dec = r.contributions
        np.testing.assert_allclose(enc + dec, r.grads.W1, rtol=0, atol=1e-12 * np.max(np.abs(r.grads.W1)))
    # an untied check never names a tied mistake (they are tied-only candidates)
    assert all("tied" not in mk.name for mk in CATALOGUE if "untied" in mk.weights)


def test_tied_rows_form_sae_jax_and_numpy_pass():
    assert check(sae_jax.cost_and_grad, tied=True).passed  # Params(W1, b1, None, b2) -> tied gradient

    def rows_tied(params, x, lam, beta, rho):
        W1, b1, W2, b2 = params
        assert W2 is None
        p = {"W1": W1, "b1": b1, "W2": W1.T, "b2": b2}
        J, g = rows_numpy(p, x, lam, beta, rho)      # untied at W2 = W1ᵀ: the same cost
        return J, {"W1": g["W1grad"] + g["W2grad"].T, "b1": g["b1grad"], "b2": g["b2grad"]}

    assert check(rows_tied, tied=True).passed

    def rows_tied_sequence(params, x, lam, beta, rho):   # gradient as (W1, b1, None, b2)
        J, g = rows_tied(params, x, lam, beta, rho)
        return J, (g["W1"], g["b1"], None, g["b2"])

    report = check(rows_tied_sequence, tied=True)
    assert report.passed, report.text


def test_cli_tied(tmp_path, capsys):
    import inspect

    src = tmp_path / "tied_sae.py"
    src.write_text("import numpy as np\n" + inspect.getsource(sigm) + inspect.getsource(ufldl_tied_cost)
                   + "\ndef sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):\n"
                   "    return ufldl_tied_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data,\n"
                   "                           mistake='tied_decoder_contribution_missing')\n")
    assert main(["check", f"{src}:sparseAutoencoderCost", "--tied"]) == 1
    out = capsys.readouterr().out
    assert "Diagnosis: tied_decoder_contribution_missing" in out and "decoder contribution ×0" in out
    assert main(["check", "sae_jax:cost_and_grad", "--tied", "--output", "linear"]) == 0
    capsys.readouterr()
    # a tied implementation checked without --tied: the theta size says so
    _bad(["check", f"{src}:sparseAutoencoderCost"], capsys, "raised ValueError")
    p = _write(tmp_path, "t.py", """
        import numpy as np
        def f(theta, v, h, lam, rho, beta, data): return 1.0, np.zeros(h * v + h + v)
    """)
    _bad(["check", f"{p}:f"], capsys, "expected a vector of 38 (like theta) (tied weights? pass --tied)")


def test_tied_cases_round_trip(cases_dir, tmp_path, capsys):
    d = tmp_path / "tied_cases"
    assert main(["check", "--write-cases", str(d), "--tied"]) == 0
    capsys.readouterr()
    readme = (d / "README.md").read_text()
    assert "[W1(:); b1(:); b2(:)]" in readme and "λ‖W1‖²" in readme and "W2grad" not in readme
    z = np.load(d / "cases.npz")
    assert set(z["probes"]) == {p.name for p in probes(tied=True)} and "sigmoid_tied_m7.W2" not in z.files
    fields = {}
    for key in z.files:
        if "." in key:
            n, f = key.split(".", 1)
            fields.setdefault(n, {})[f] = z[key]
    res = _run_on_cases(fields, planted_tied(None), "sigmoid")
    for n, r in res.items():  # the expected outputs are what an independent tied implementation gives
        assert abs(r["cost"] - float(fields[n]["expected_cost"])) <= 1e-12 * abs(r["cost"])
        np.testing.assert_allclose(r["grad"], fields[n]["expected_grad"], rtol=1e-10, atol=1e-13)
    (tmp_path / "ok.json").write_text(json.dumps({n: {"cost": r["cost"], "grad": r["grad"].tolist()}
                                                  for n, r in res.items()}))
    assert main(["check", "--results", str(tmp_path / "ok.json"), "--tied"]) == 0
    assert "tied weights W2 = W1ᵀ" in capsys.readouterr().out
    res = _run_on_cases(fields, planted_tied("tied_encoder_contribution_missing", order="C"), "sigmoid")
    np.savez(tmp_path / "bad.npz", **{f"{n}.cost": r["cost"] for n, r in res.items()},
             **{f"{n}.grad": r["grad"] for n, r in res.items()})  # grad, not grad_rowmajor: a wrong label
    report = check_results(tmp_path / "bad.npz")
    assert not report.passed
    res = _run_on_cases({n: dict(f, theta=f["theta_rowmajor"]) for n, f in fields.items()},
                        planted_tied("tied_encoder_contribution_missing", order="C"), "sigmoid")
    np.savez(tmp_path / "bad.npz", **{f"{n}.cost": r["cost"] for n, r in res.items()},
             **{f"{n}.grad_rowmajor": r["grad"] for n, r in res.items()})
    assert main(["check", "--results", str(tmp_path / "bad.npz")]) == 1
    assert "Diagnosis: tied_encoder_contribution_missing" in capsys.readouterr().out
    # an untied results file with --tied; a file mixing tied and untied probes: one line each
    js = json.loads((cases_dir / "cases.json").read_text())["probes"]
    untied = _run_on_cases(js, planted(None), "sigmoid")
    (tmp_path / "untied.json").write_text(json.dumps({n: {"cost": r["cost"], "grad": r["grad"].tolist()}
                                                      for n, r in untied.items()}))
    _bad(["check", "--results", str(tmp_path / "untied.json"), "--tied"], capsys, "answers the untied cases")
    mixed = json.loads((tmp_path / "untied.json").read_text()) | json.loads((tmp_path / "ok.json").read_text())
    (tmp_path / "mixed.json").write_text(json.dumps(mixed))
    _bad(["check", "--results", str(tmp_path / "mixed.json")], capsys, "mixes the cases of different variants")


# ---------------------------------------------------------------------------------------
# the L1 activation penalty (--l1 GAMMA) and denoising (--denoising), alone and combined
# ---------------------------------------------------------------------------------------

GAMMA = 0.1


def planted_variant(mistake=None, *, linear=False, tied=False, l1=False, denoising=False, gamma_fixed=None):
    """UFLDL-style code for the variants: ``(..., data[, corruptedData][, gamma])``; ``gamma_fixed``: γ in the code."""
    kw = dict(mistake=mistake, linear=linear, tied=tied)
    if denoising and l1:
        def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data, corruptedData,
                                  gamma):
            return ufldl_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data, gamma=gamma,
                              corrupted=corruptedData, **kw)
    elif denoising:
        def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data, corruptedData):
            return ufldl_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data,
                              corrupted=corruptedData, gamma=gamma_fixed or 0.0, **kw)
    elif l1:
        def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data, gamma):
            return ufldl_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data, gamma=gamma, **kw)
    else:
        def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
            return ufldl_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data,
                              gamma=gamma_fixed or 0.0, **kw)
    return sparseAutoencoderCost


VARIANT_MISTAKES = [mk.name for mk in CATALOGUE if mk.needs is not None]
VARIANT_CASES = [(mk.name, out) for mk in CATALOGUE if mk.needs for out in ("sigmoid", "linear")]


def test_variant_mistakes_are_candidates_only_for_their_variant():
    assert {MISTAKES[n].needs for n in VARIANT_MISTAKES} == {"l1", "denoising"} and len(VARIANT_MISTAKES) == 9
    for mk in CATALOGUE:
        own = dict(tied=mk.weights == ("tied",), l1=mk.needs == "l1", denoising=mk.needs == "denoising")
        assert mk.applies(mk.outputs[0], **own) and mk.applies(mk.outputs[0], **{**own, "l1": True, "denoising": True})
        for out in ("sigmoid", "linear"):
            assert mk.applies(out, tied=own["tied"]) == (mk.needs is None and out in mk.outputs)
            assert not (mk.needs == "denoising" and mk.applies(out, tied=own["tied"], l1=True))
            assert not (mk.needs == "l1" and mk.applies(out, tied=own["tied"], denoising=True))


@pytest.mark.parametrize("l1,denoising", [(GAMMA, False), (0.0, True), (GAMMA, True)])
def test_variant_probes_and_the_catalogue_equal_sae_jax(l1, denoising):
    ps = probes(l1=l1, denoising=denoising)
    assert len(ps) == 2 * (7 + denoising)
    for p in ps:
        assert ("_l1_" in p.name) == (l1 > 0) and ("_denoising_" in p.name) == denoising and p.l1 == l1
        assert (p.x_input is not None) == denoising
        J, g = variant_cost_and_grad(p.params, p.x, lam=p.lam, beta=p.beta, rho=p.rho, output=p.output, l1=p.l1,
                                     x_input=p.x_input)
        r = reference(p.name, p.l1)
        assert abs(J - r.cost) <= 1e-10 * abs(r.cost)
        for a, b in zip(g, r.grads):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * np.max(np.abs(b)))
        if l1:  # the parts sum to the gradient; the L1 part is gamma f'(z2) backpropagated
            assert r.l1 > 0
            for parts in zip(r.recon_grad, r.decay_grad, r.sparsity_grad, r.l1_grad, r.grads):
                np.testing.assert_allclose(sum(parts[:4]), parts[4], rtol=0, atol=1e-12 * np.max(np.abs(parts[4])))
        if denoising and p.name.endswith("uncorrupted"):
            np.testing.assert_array_equal(p.x_input, p.x)
        elif denoising:
            assert np.mean(p.x_input != p.x) >= 0.2  # masked (p = 0.3) or noisy entries


@pytest.mark.parametrize("mistake,output", VARIANT_CASES, ids=[f"{m}-{o}" for m, o in VARIANT_CASES])
def test_every_planted_variant_mistake_is_named(mistake, output):
    l1, dae = MISTAKES[mistake].needs == "l1", MISTAKES[mistake].needs == "denoising"
    report = check(planted_variant(mistake, linear=output == "linear", l1=l1, denoising=dae), output=output,
                   l1=GAMMA if l1 else None, denoising=dae)
    assert not report.passed and report.match == (mistake,), report.text
    assert f"Diagnosis: {mistake}" in report.text and MISTAKES[mistake].derivation in report.text
    text = report.text.split("Evidence", 1)[1]
    ratio = {"l1_missing_from_backprop": "L1 ×0", "l1_delta_divided_by_m": "L1 ×0.142857 (1/7)",
             "l1_not_averaged": "L1 ×7", "l1_missing_from_cost": "L1 ×0"}.get(mistake)
    if ratio:
        assert ratio in text, text
    if dae:
        assert f"{output}_denoising_m7_uncorrupted (x̃ = x, no corruption) agrees" in text
    if mistake in ("l1_not_averaged",):
        assert "matches central finite differences of their own cost" in text


@pytest.mark.parametrize("mistake", VARIANT_MISTAKES)
def test_variant_mistakes_are_named_in_tied_code_with_every_variant_on(mistake):
    # tied weights, the L1 penalty and denoising at once (ufldl f(..., data, corruptedData, gamma))
    report = check(planted_variant(mistake, tied=True, l1=True, denoising=True), tied=True, l1=GAMMA, denoising=True)
    assert report.match == (mistake,), report.text
    assert "sigmoid_tied_l1_denoising_m7 " in report.text


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("l1,denoising", [(True, False), (False, True), (True, True)])
def test_correct_variant_implementations_pass(l1, denoising, output):
    report = check(planted_variant(None, linear=output == "linear", l1=l1, denoising=denoising), output=output,
                   l1=GAMMA if l1 else None, denoising=denoising)
    assert report.passed, report.text
    assert max(max(e.values()) for e in report.errors.values()) < 1e-10
    assert ("passed as gamma" in report.text) == l1 and ("passed as corruptedData" in report.text) == denoising


def test_variant_cases_round_trip(tmp_path, monkeypatch, capsys):
    import shutil
    import sys
    from pathlib import Path

    d = tmp_path / "cases"
    assert main(["check", "--write-cases", str(d), "--l1", "0.1", "--denoising"]) == 0
    capsys.readouterr()
    readme = (d / "README.md").read_text()
    assert "p.data, p.corruptedData, p.l1" in readme and "sae-jax check --results results.npz --l1 0.1" in readme
    z = np.load(d / "cases.npz")
    assert set(z["probes"]) == {p.name for p in probes(l1=GAMMA, denoising=True)}
    assert float(z["sigmoid_l1_denoising_m7.l1"]) == GAMMA
    np.testing.assert_array_equal(z["sigmoid_l1_denoising_m7.corruptedData"], z["sigmoid_l1_denoising_m7.x_input"].T)
    # the README's Python loop, as written, on correct code; then the results file checks
    (py,) = _blocks(readme, "python")
    assert 'LAYOUT = "row"' in py
    py = py.replace('LAYOUT = "row"', 'LAYOUT = "column"')  # this code unpacks column-major: the user says so
    shutil.copy(d / "cases.npz", tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_code.py").write_text(MY_SAE.format(tests=str(Path(__file__).parent))
                                         + "\nsparseAutoencoderCost = planted_variant(l1=True, denoising=True)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_code", raising=False)  # another test's my_code may be imported
    exec(py, {})
    assert main(["check", "--results", "results.npz", "--l1", "0.1"]) == 0
    assert "denoising" in capsys.readouterr().out
    _bad(["check", "--results", "results.npz"], capsys, "answers the L1 cases (*_l1_*): pass --l1 GAMMA")
    # a mistake, through the .json results
    js = json.loads((d / "cases.json").read_text())["probes"]
    fn = planted_variant("denoising_rho_hat_from_clean_input", l1=True, denoising=True)
    res = {n: fn(np.asarray(c["theta"]), c["visibleSize"], c["hiddenSize"], c["lambda"], c["sparsityParam"], c["beta"],
                 np.asarray(c["data"]), np.asarray(c["corruptedData"]), c["l1"]) for n, c in js.items()
           if c["output"] == "sigmoid"}
    (tmp_path / "r.json").write_text(json.dumps({n: {"cost": J, "grad": g.tolist()} for n, (J, g) in res.items()}))
    report = check_results(tmp_path / "r.json", l1=GAMMA, denoising=True)
    assert report.match == ("denoising_rho_hat_from_clean_input",), report.text
    with pytest.raises(sae_jax.InputError, match="answers denoising cases, but denoising=False was asked for"):
        check_results(tmp_path / "r.json", l1=GAMMA, denoising=False)
    _bad(["check", "--results", str(tmp_path / "r.json"), "--l1", "0.1", "--tied"], capsys, "answers the untied cases")


def test_variant_cli_and_signatures(tmp_path, capsys):
    import inspect

    src = tmp_path / "dae.py"
    src.write_text("import numpy as np\n" + inspect.getsource(sigm) + inspect.getsource(ufldl_cost)
                   + "\ndef sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data,\n"
                   "                          corruptedData):\n"
                   "    return ufldl_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data,\n"
                   "                      corrupted=corruptedData, linear=True, mistake='denoising_target_is_corrupted_input')\n")
    assert main(["check", f"{src}:sparseAutoencoderCost", "--denoising", "--output", "linear"]) == 1
    assert "Diagnosis: denoising_target_is_corrupted_input" in capsys.readouterr().out
    # sae-jax itself: keywords x_input= and l1=, tied, all at once
    assert main(["check", "sae_jax:cost_and_grad", "--tied", "--l1", "0.05", "--denoising"]) == 0
    out = capsys.readouterr().out
    assert "passed as l1" in out and "passed as x_input" in out and "sigmoid_tied_l1_denoising_m7 " in out
    # rows form, positional extras; a tied L1 mistake
    def rows(params, x, lam, beta, rho, x_input, gamma):
        J, g = variant_cost_and_grad(params, x, lam=lam, beta=beta, rho=rho, l1=gamma, x_input=x_input,
                                     mistakes=("l1_delta_divided_by_m",))
        return J, (g.W1, g.b1, g.b2)

    report = check(rows, tied=True, l1=GAMMA, denoising=True)
    assert report.match == ("l1_delta_divided_by_m",) and "L1 ×0.05 (1/20)" in report.text, report.text
    # γ fixed in their code (no γ parameter): right, or the L1 term forgotten altogether (both halves missing)
    report = check(planted_variant(None, gamma_fixed=GAMMA), l1=GAMMA)
    assert report.passed and "fixed in their code (no γ parameter)" in report.text, report.text
    report = check(planted_variant(None), l1=GAMMA)
    assert report.match == ("l1_missing_from_backprop", "l1_missing_from_cost"), report.text
    # bad uses: one line each
    _bad(["check", f"{src}:sparseAutoencoderCost"], capsys, "parameter(s) corruptedData are not filled")
    six = _write(tmp_path, "six.py", "def f(p, x, a, b, c, d): return 0.0, p\n")
    _bad(["check", f"{six}:f"], capsys, "(a variant's extra parameter? pass --denoising or --l1 GAMMA)")
    _bad(["check", "sae_jax:cost_and_grad", "--l1", "0"], capsys, "l1 (--l1 GAMMA) must be a number > 0")
    _bad(["check", "sae_jax:cost_and_grad", "--l1", "nan"], capsys, "must be a number > 0")
    _bad(["check", "--write-cases", str(tmp_path / "c"), "--l1", "-1"], capsys, "must be a number > 0")
    assert not (tmp_path / "c").exists()
    _bad(["check", "sae_jax._src.check.probes:pack_theta", "--convention", "rows", "--denoising"], capsys,
         "must take the corrupted input")


# ---------------------------------------------------------------------------------------
# locating what the catalogue has no name for (issue 20 § 4)
# ---------------------------------------------------------------------------------------

def _ufldl(fn_body):
    """A UFLDL-convention student function built from the correct code, with ``fn_body(J, g, sizes)`` applied."""
    def sparseAutoencoderCost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
        return fn_body(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data)

    return sparseAutoencoderCost


def _diagnosis(report):
    return [ln for ln in report.text.splitlines() if ln.startswith("Diagnosis: ")][0]


def test_w1grad_not_divided_by_m_is_located_in_the_students_words():
    def body(theta, v, h, lam, rho, beta, data):
        J, g = ufldl_cost(theta, v, h, lam, rho, beta, data, order="C")
        J2, g2 = ufldl_cost(theta, v, h, lam, rho, beta, data, order="C", mistake="gradient_not_averaged")
        g[: h * v] = g2[: h * v]  # only W1grad's sums are not divided by m
        return J, g

    report = check(_ufldl(body))
    assert report.exit_code == 1 and report.match is None and report.packing == "C"
    d = _diagnosis(report)
    assert d.startswith("Diagnosis: W1grad's reconstruction and sparsity parts are m times too large "
                        "(×5 at m = 5, ×7 at m = 7, ×20 at m = 20): not divided by m."), d
    assert "Nearest variants" not in report.text  # gradient_not_averaged is 0.95 away: not near
    assert report.located and report.located[0].startswith("W1grad's")


def test_nearest_variants_are_shown_only_when_near():
    def body(theta, v, h, lam, rho, beta, data):
        J, g = ufldl_cost(theta, v, h, lam, rho, beta, data)
        g[-v:] *= 1.01  # b2grad 1 % off: the correct algorithm is 0.01 away
        return J, g

    report = check(_ufldl(body))
    assert _diagnosis(report).startswith("Diagnosis: b2grad's reconstruction part is 1.01× the correct value"), \
        report.text
    assert "Nearest variants (max relative difference): the correct algorithm 0.01" in report.text
    assert 0.01 < NEAR


@pytest.mark.parametrize("convention", ["ufldl", "rows"])
def test_input_mutated_in_place_fails(convention):
    if convention == "ufldl":
        def f(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
            J, g = ufldl_cost(theta.copy(), visibleSize, hiddenSize, lambda_, sparsityParam, beta, data)
            theta *= 0.5  # e.g. W1 = theta[:hv].reshape(...); W1 *= ... on a view
            return J, g
        name = "theta"
    else:
        def f(params, x, lam, beta, rho):
            J, g = rows_numpy(params, x, lam, beta, rho)
            W1, b1, W2, b2 = params
            W1 -= 0.1 * g["W1grad"]  # a gradient step on the caller's arrays
            return J, g
        name = "params.W1"
    report = check(f)
    assert not report.passed and report.exit_code == 1 and report.match == ()
    assert "every output agrees" in report.text
    assert f"modifies its input in place: {name} (max |change|" in report.text


def test_input_mutated_with_a_wrong_gradient_says_both():
    def f(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
        J, g = ufldl_cost(theta.copy(), visibleSize, hiddenSize, lambda_, sparsityParam, beta, data,
                          mistake="beta_applied_twice")
        theta[:] = 0.0
        return J, g

    report = check(f)
    assert report.match == ("beta_applied_twice",) and "Also: their function modifies its input in place: theta" \
        in report.text


@pytest.mark.parametrize("convention", ["ufldl", "rows"])
def test_data_transposed_when_square_is_located(convention):
    if convention == "ufldl":
        def f(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
            if data.shape[1] == visibleSize:  # "samples as rows? then transpose" — wrong when m = visibleSize
                data = data.T
            return ufldl_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data)
    else:
        def f(params, x, lam, beta, rho):
            if x.shape[0] == params.W1.shape[1]:  # "looks like columns": wrong when m = n_visible
                x = x.T
            return rows_numpy(params, x, lam, beta, rho)
    report = check(f)
    assert report.exit_code == 1
    bad = [n for n, e in report.errors.items() if max(e.values()) > report.tol]
    assert bad == ["sigmoid_m5_square"]
    assert _diagnosis(report).startswith("Diagnosis: only the probe with m = n_visible = 5 (square data) differs")


@pytest.mark.parametrize("order", ["F", "C"])
def test_w2grad_alone_transposed_keeps_the_right_packing_and_cost(order):
    def body(theta, v, h, lam, rho, beta, data):
        J, g = ufldl_cost(theta, v, h, lam, rho, beta, data, order=order)
        W2g = g[h * v: 2 * h * v].reshape(v, h, order=order)
        g[h * v: 2 * h * v] = W2g.T.ravel(order=order)  # W2grad computed hidden × visible
        return J, g

    report = check(_ufldl(body))
    assert report.packing == order and report.exit_code == 1, report.text
    assert all(e["cost"] <= report.tol for e in report.errors.values())  # the right cost is reported right
    assert "W2grad is packed" in _diagnosis(report) and "the same numbers as W2grad transposed" in _diagnosis(report)


def test_gradient_packed_in_another_block_order_is_located():
    def body(theta, v, h, lam, rho, beta, data):
        J, g = ufldl_cost(theta, v, h, lam, rho, beta, data, order="C")
        hv = h * v
        return J, np.concatenate([g[:hv], g[2 * hv: 2 * hv + h], g[hv: 2 * hv], g[2 * hv + h:]])  # W1 b1 W2 b2

    report = check(_ufldl(body))
    assert report.packing == "C" and all(e["cost"] <= report.tol for e in report.errors.values())
    assert ("their gradient holds the right numbers in another order: [W1grad (row-major); b1grad; "
            "W2grad (row-major); b2grad]") in _diagnosis(report), report.text


def test_packing_override_and_ambiguity(tmp_path, capsys):
    def body(theta, v, h, lam, rho, beta, data):  # cost and W2grad both wrong: the cost cannot tell the packing
        J, g = ufldl_cost(theta, v, h, lam, rho, beta, data, order="C")
        W2g = g[h * v: 2 * h * v].reshape(v, h)
        g[h * v: 2 * h * v] = W2g.T.ravel()
        return 1.5 * J, g

    f = _ufldl(body)
    report = check(f)
    if report.packing != "C":
        assert "ambiguous" in report.text and "--packing row|column" in report.text
    given = check(f, packing="row")
    assert given.packing == "C" and "theta packing: row-major (numpy's W1.ravel()) (given)" in given.text
    assert check(planted(None, order="C"), packing="row").passed
    assert not check(planted(None, order="C"), packing="column").passed
    with pytest.raises(sae_jax.InputError, match="packing must be 'row'"):
        check(f, packing="C")
    p = _write(tmp_path, "rowmajor.py", textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        from test_check import planted
        sparseAutoencoderCost = planted(None, order="C")
    """ % str(__import__("pathlib").Path(__file__).parent)))
    assert main(["check", f"{p}:sparseAutoencoderCost", "--packing", "row"]) == 0
    assert "(given)" in capsys.readouterr().out
    assert main(["check", f"{p}:sparseAutoencoderCost", "--packing", "column"]) == 1
    capsys.readouterr()
    _bad(["check", "sae_jax:cost_and_grad", "--packing", "row"], capsys, "packing (--packing) is for the ufldl")


@pytest.mark.parametrize("order", ["F", "C"])
def test_hidden_visible_signature_passes_by_parameter_names(order):
    def published(theta, hidden_size, visible_size, lambda_, sparsity_param, beta, data):
        return ufldl_cost(theta, visible_size, hidden_size, lambda_, sparsity_param, beta, data, order=order)

    report = check(published)
    assert report.passed and report.exit_code == 0 and report.packing == order, report.text
    assert "arguments passed by their names: hidden_size = hiddenSize, visible_size = visibleSize" in report.text


def test_unreadable_argument_order_says_what_to_do(tmp_path, capsys):
    p = _write(tmp_path, "order.py", """
        import numpy as np
        def f(theta, s1, s2, a, b, c, d):   # takes (hidden, visible): names that do not say so
            W1 = theta[: s1 * s2].reshape(s1, s2)
            return 0.0, W1 @ d
    """)
    _bad(["check", f"{p}:f"], capsys, "name its parameters so (e.g. hidden_size, visible_size) or wrap it")


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_the_other_decoder_gets_a_hint(output):
    other = "linear" if output == "sigmoid" else "sigmoid"
    report = check(planted(None, linear=output == "linear"), output=other)
    assert report.exit_code == 1 and report.match is None
    assert f"their outputs are a correct {output} decoder's on every probe" in _diagnosis(report)
    assert f"run it with --output {output}" in _diagnosis(report)


def test_rho_hat_summed_is_diagnosed_not_refused(capsys, tmp_path):
    report = check(planted("rho_hat_summed"))
    assert report.match == ("rho_hat_summed",) and report.exit_code == 1
    assert report.errors["sigmoid_m1"]["cost"] <= report.tol  # m = 1: the sum is the mean
    # sum in the cost only (mean in the gradient): not the catalogued variant, still located, exit 1
    def f(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data):
        J, g = ufldl_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data)
        J2, _ = ufldl_cost(theta, visibleSize, hiddenSize, lambda_, sparsityParam, beta, data, mistake="rho_hat_summed")
        return J2, g

    with np.errstate(all="ignore"):
        report = check(f)
    assert report.exit_code == 1 and report.match is None
    d = _diagnosis(report)
    assert d.startswith("Diagnosis: their cost is NaN or inf on 6 of 7 probes (m = 5, 7, 20), finite on the others"), d
    assert "ρ̂ must be the mean activation over the samples" in d


def test_results_layout_mismatch_is_said_in_one_line(cases_dir, tmp_path, capsys):
    c = np.load(cases_dir / "cases.npz")
    for code, theta_key, grad_key, want in ((planted(None, order="C"), "theta", "grad", "row"),
                                            (planted(None, order="F"), "theta_rowmajor", "grad_rowmajor", "column")):
        res = {}
        for p in c["probes"]:
            if str(c[f"{p}.output"]) == "sigmoid":
                J, g = code(c[f"{p}.{theta_key}"], int(c[f"{p}.visibleSize"]), int(c[f"{p}.hiddenSize"]),
                            float(c[f"{p}.lambda"]), float(c[f"{p}.sparsityParam"]), float(c[f"{p}.beta"]),
                            c[f"{p}.data"])
                res[f"{p}.cost"], res[f"{p}.{grad_key}"] = J, g
        np.savez(tmp_path / "r.npz", **res)
        assert main(["check", "--results", str(tmp_path / "r.npz")]) == 1
        out = capsys.readouterr().out
        (d,) = [ln for ln in out.splitlines() if ln.startswith("Diagnosis: ")]
        assert d.startswith("Diagnosis: layout mismatch:") and f'LAYOUT = "{want}"' in d, d
    text = (cases_dir / "README.md").read_text()
    assert 'LAYOUT = "row"' in text and "theta_rowmajor" in text


def test_results_packing_flag_reads_grad_row_major(cases_dir, tmp_path, capsys):
    c = np.load(cases_dir / "cases.npz")
    code, res = planted(None, order="C"), {}
    for p in c["probes"]:
        if str(c[f"{p}.output"]) == "sigmoid":
            J, g = code(c[f"{p}.theta_rowmajor"], int(c[f"{p}.visibleSize"]), int(c[f"{p}.hiddenSize"]),
                        float(c[f"{p}.lambda"]), float(c[f"{p}.sparsityParam"]), float(c[f"{p}.beta"]), c[f"{p}.data"])
            res[f"{p}.cost"], res[f"{p}.grad"] = J, g  # saved under `grad`, row-major
    np.savez(tmp_path / "r.npz", **res)
    assert main(["check", "--results", str(tmp_path / "r.npz"), "--packing", "row"]) == 0
    capsys.readouterr()
    assert main(["check", "--results", str(tmp_path / "r.npz")]) == 1  # read column-major: said in one line
    out = capsys.readouterr().out  # the same bytes as transposed weight gradients: both readings said
    assert "Diagnosis: transposed_weight_gradients" in out
    assert "a gradient packed row-major but saved as `grad`: save it as `grad_rowmajor`, or pass --packing row" in out
    _bad(["check", "--write-cases", str(tmp_path / "c"), "--packing", "row"], capsys, "--packing is for")


def test_documented_convention_difference_exits_0_but_says_so(tmp_path, capsys):
    """Tied UFLDL-style (λ/2)‖W1‖²: right for that documented convention (consistent with its own cost) -> exit 0."""
    p = _write(tmp_path, "tied_half.py", textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        from test_check import planted_tied
        sparseAutoencoderCost = planted_tied("tied_weight_decay_counted_once")
        twice = planted_tied("tied_encoder_contribution_missing")
    """ % str(__import__("pathlib").Path(__file__).parent)))
    assert main(["check", f"{p}:sparseAutoencoderCost", "--tied"]) == 0
    out = capsys.readouterr().out
    assert "PASS, with a convention difference" in out and "Convention: tied_weight_decay_counted_once" in out
    assert "matches central finite differences of their own cost" in out
    # a tied mistake that is not a convention still fails
    assert main(["check", f"{p}:twice", "--tied"]) == 1
    assert "PASS" not in capsys.readouterr().out
