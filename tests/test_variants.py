"""The autoencoder's variants (issue 15): tied weights, denoising, the L1 activation penalty.

Each against jax.grad (float64 <= 1e-12 relative), five-point finite differences, the
independent NumPy transcription (tests/ufldl_reference.py), and the identities that define it
(a tied model is the untied one at W2 = W1.T; l1 on sigmoid units is gamma * sum(rho_hat)).
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sae_jax as sae
from sae_jax import corrupt
from sae_jax.gradcheck import FD_TOL, default_step
from helpers import COST_RTOL, GRAD_RTOL, assert_tree_close, max_rel_err, random_problem
from ufldl_reference import variant_autoencoder_cost

HP = dict(lam=1e-3, beta=3.0, rho=0.1)
SIZES = [(1, 1, 1), (1, 3, 2), (17, 9, 4)]

# (tied, l1, corruption): each variant alone and together
VARIANTS = {
    "tied": (True, None, None),
    "l1": (False, 0.3, None),
    "mask": (False, None, ("mask", 0.3)),
    "gaussian": (False, None, ("gaussian", 0.2)),
    "tied+l1": (True, 0.3, None),
    "tied+l1+mask": (True, 0.3, ("mask", 0.3)),
    "tied+l1+gaussian": (True, 0.05, ("gaussian", 0.2)),
}


def _problem(seed, m, n, h, variant, *, output="sigmoid", dtype=jnp.float64):
    tied, l1, corruption = VARIANTS[variant]
    p, x = random_problem(seed, m, n, h, output=output, dtype=dtype)
    if tied:
        p = sae.tie(p)
    opts = {}
    if l1 is not None:
        opts["l1"] = l1
    if corruption is not None:
        kind, level = corruption
        opts["x_input"] = corrupt(jax.random.key(seed), x, kind=kind, level=level)
    return p, x, opts


def _theta(p):
    return sae.params_to_theta(p)


def _float64_cases():
    """Every variant at (17, 9, 4); at m = 1 the combined variants by default (each alone, and
    n = h = 1, under ``-m slow``: the combinations exercise every term the single ones do)."""
    for m, n, h in SIZES:
        for variant in VARIANTS:
            default = (m, n, h) == (17, 9, 4) or ((m, n, h) == (1, 3, 2) and variant.startswith("tied+"))
            yield pytest.param(variant, m, n, h, marks=() if default else pytest.mark.slow, id=f"{m}-{n}-{h}-{variant}")


@pytest.mark.parametrize("variant,m,n,h", list(_float64_cases()))
def test_manual_equals_autodiff_float64(variant, m, n, h):
    p, x, opts = _problem(m * 100 + n * 10 + h, m, n, h, variant)
    J, g = sae.cost_and_grad(p, x, **HP, **opts)
    J_ad, g_ad = sae.autodiff_cost_and_grad(p, x, **HP, **opts)
    assert jax.tree.structure(g) == jax.tree.structure(p)  # tied: no W2 in the gradient either
    assert max_rel_err(J, J_ad) <= COST_RTOL[jnp.dtype(jnp.float64)]
    assert_tree_close(g, g_ad, GRAD_RTOL[jnp.dtype(jnp.float64)], variant)
    terms, g2 = sae.cost_terms_and_grad(p, x, **HP, **opts)
    # the same cost by two entry points: equal to rounding (bit for bit at XLA's default settings)
    assert abs(float(terms.cost) - float(J)) <= 4 * np.finfo(np.float64).eps * abs(float(J))
    np.testing.assert_allclose(
        float(terms.reconstruction + terms.weight_decay + terms.sparsity + terms.l1), float(J), rtol=1e-14
    )


@pytest.mark.parametrize("variant", ["tied+l1+mask", "tied+l1+gaussian"])
def test_manual_equals_autodiff_linear_output(variant):
    p, x, opts = _problem(5, 12, 6, 3, variant, output="linear")
    J, g = sae.cost_and_grad(p, x, **HP, **opts, output="linear")
    J_ad, g_ad = sae.autodiff_cost_and_grad(p, x, **HP, **opts, output="linear")
    assert max_rel_err(J, J_ad) <= 1e-13
    assert_tree_close(g, g_ad, 1e-12, variant)


def test_manual_equals_autodiff_float32():
    """float32: max-norm relative error <= 2e-5 per array, as for the plain autoencoder."""
    p, x, opts = _problem(3, 50, 16, 6, "tied+l1+mask", dtype=jnp.float32)
    J, g = sae.cost_and_grad(p, x, **HP, **opts)
    J_ad, g_ad = sae.autodiff_cost_and_grad(p, x, **HP, **opts)
    assert max_rel_err(J, J_ad) <= COST_RTOL[jnp.dtype(jnp.float32)]
    assert_tree_close(g, g_ad, GRAD_RTOL[jnp.dtype(jnp.float32)], "float32")


@pytest.mark.parametrize("variant", ["tied", "l1", "mask", "tied+l1+gaussian"])
def test_matches_numpy_transcription(variant):
    m, n, h = 13, 7, 4
    p, x, opts = _problem(11, m, n, h, variant)
    tied, l1, _ = VARIANTS[variant]
    x_input = opts.get("x_input")
    J_ref, g_ref = variant_autoencoder_cost(
        _theta(p), n, h, HP["lam"], HP["rho"], HP["beta"], np.asarray(x).T,
        tied=tied, l1=l1 or 0.0, data_input=None if x_input is None else np.asarray(x_input).T,
    )
    J, g = sae.cost_and_grad(p, x, **HP, **opts)
    assert max_rel_err(J, J_ref) <= 1e-13
    assert max_rel_err(_theta(g), g_ref) <= 1e-12


@pytest.mark.parametrize("variant", ["tied+l1+mask", "tied+l1+gaussian", "l1"])
def test_finite_differences(variant):
    """Five-point central differences of the cost along random directions of each array,
    against the manual gradient (error scaled by ||g_P||, as sae_jax._src.gradcheck does)."""
    p, x, opts = _problem(21, 9, 5, 3, variant)
    _, g = sae.cost_and_grad(p, x, **HP, **opts)
    f = jax.jit(lambda q: sae.cost(q, x, **HP, **opts))
    h = default_step()
    rng = np.random.default_rng(0)
    leaves, treedef = jax.tree.flatten(p)
    g_leaves = jax.tree.leaves(g)
    for k, (a, ga) in enumerate(zip(leaves, g_leaves)):
        for _ in range(2):
            v = rng.standard_normal(a.shape)
            v /= np.linalg.norm(v)

            def at(t, k=k, v=v):
                moved = list(leaves)
                moved[k] = leaves[k] + t * jnp.asarray(v)
                return float(f(jax.tree.unflatten(treedef, moved)))

            d = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)
            err = abs(d - float(np.vdot(np.asarray(ga), v))) / float(np.linalg.norm(np.asarray(ga)))
            assert err <= FD_TOL, (variant, k, err)


# --- the identities that define each variant ---------------------------------------------------


def test_tied_is_the_untied_model_at_w2_equal_w1_transposed():
    p, x = random_problem(4, 10, 6, 3)
    t = sae.tie(p)
    u = sae.untie(t)
    assert bool(jnp.all(u.W2 == p.W1.T)) and sae.is_tied(t) and not sae.is_tied(u)
    J_t, g_t = sae.cost_and_grad(t, x, **HP)
    J_u, g_u = sae.cost_and_grad(u, x, **HP)
    assert max_rel_err(J_t, J_u) <= 1e-15
    # the chain rule through W2 = W1.T: both contributions summed (decay counted twice: 2 lam W1)
    np.testing.assert_allclose(g_t.W1, g_u.W1 + g_u.W2.T, rtol=1e-13, atol=1e-16)
    assert max_rel_err(g_u.W1, g_t.W1) > 1e-3  # the encoder's contribution alone is not it
    np.testing.assert_array_equal(sae.weight_decay(t, lam=0.5), 0.5 * jnp.sum(p.W1**2))
    assert bool(jnp.all(sae.reconstruct(t, x) == sae.reconstruct(u, x)))


def test_tied_init_and_theta():
    key = jax.random.key(3)
    p, t = sae.init_params(key, 6, 4), sae.init_params(key, 6, 4, tied=True)
    assert t.W2 is None and bool(jnp.all(t.W1 == p.W1)) and t.n_visible == 6 and t.n_hidden == 4
    theta = sae.params_to_theta(t)
    assert theta.shape == (6 * 4 + 4 + 6,)
    back = sae.theta_to_params(theta, 6, 4, tied=True)
    assert back.W2 is None and bool(jnp.all(back.W1 == t.W1))
    with pytest.raises(sae.InputError, match="tied must be True or False"):
        sae.init_params(key, 6, 4, tied="yes")


def test_l1_on_sigmoid_units_is_gamma_sum_rho_hat():
    p, x = random_problem(6, 15, 5, 4)
    t = sae.cost_terms(p, x, **HP, l1=0.25)
    np.testing.assert_allclose(t.l1, 0.25 * jnp.sum(t.rho_hat), rtol=1e-14)
    plain = sae.cost_terms(p, x, **HP)
    assert float(plain.l1) == 0.0
    np.testing.assert_allclose(t.cost - plain.cost, t.l1, rtol=1e-12)
    J0, g0 = sae.cost_and_grad(p, x, **HP, l1=0.0)
    J, g = sae.cost_and_grad(p, x, **HP)
    assert float(J0) == float(J)
    assert_tree_close(g0, g, 0.0, "l1=0")


def test_l1_subgradient_at_zero_is_zero():
    """sign(0) = 0: jax.grad of activation_l1 at an exactly-zero activation is 0."""
    a = jnp.array([[0.0, 0.5], [0.0, -0.25]])
    g = jax.grad(lambda a: sae.activation_l1(a, l1=2.0))(a)
    np.testing.assert_array_equal(g, jnp.array([[0.0, 1.0], [0.0, -1.0]]))


def test_denoising_identities():
    p, x = random_problem(8, 12, 6, 3)
    J, g = sae.cost_and_grad(p, x, **HP)
    J_same, g_same = sae.cost_and_grad(p, x, **HP, x_input=x)  # no corruption: the plain cost
    assert float(J) == float(J_same)
    assert_tree_close(g_same, g, 0.0, "x_input=x")
    key = jax.random.key(0)
    assert corrupt(key, x, kind="none", level=0.0) is x
    np.testing.assert_array_equal(corrupt(key, x, kind="mask", level=0.0), x)
    np.testing.assert_array_equal(corrupt(key, x, kind="gaussian", level=0.0), x)
    # target and input play different parts: swapping them changes the cost
    xt = corrupt(key, x, kind="mask", level=0.5)
    assert float(sae.cost(p, x, **HP, x_input=xt)) != float(sae.cost(p, xt, **HP, x_input=x))
    # rho_hat is the corrupted input's
    np.testing.assert_allclose(
        sae.cost_terms(p, x, **HP, x_input=xt).rho_hat, jnp.mean(sae.encode(p, xt), axis=0), rtol=1e-14
    )


def test_corrupt_statistics_and_determinism():
    x = jnp.full((400, 50), 0.5)
    key = jax.random.key(7)
    a, b = corrupt(key, x, kind="mask", level=0.3), corrupt(key, x, kind="mask", level=0.3)
    assert bool(jnp.all(a == b)) and a.dtype == x.dtype and a.shape == x.shape
    zeroed = float(jnp.mean(a == 0))
    assert abs(zeroed - 0.3) < 0.01, zeroed  # 20000 Bernoulli(0.3): sd 0.003
    assert bool(jnp.all((a == 0) | (a == x)))
    gauss = corrupt(key, x, kind="gaussian", level=0.2) - x
    assert abs(float(jnp.mean(gauss))) < 0.005 and abs(float(jnp.std(gauss)) - 0.2) < 0.005
    other = corrupt(jax.random.key(8), x, kind="mask", level=0.3)
    assert not bool(jnp.all(other == a))


def test_gaussian_input_may_leave_the_unit_interval():
    """Only the target is the sigmoid's output: a Gaussian-corrupted input outside [0, 1] is fine."""
    p, x = random_problem(9, 20, 5, 3)
    xt = corrupt(jax.random.key(1), x, kind="gaussian", level=0.5)
    assert float(jnp.min(xt)) < 0 and float(jnp.max(xt)) > 1
    J, _ = sae.cost_and_grad(p, x, **HP, x_input=xt)
    assert np.isfinite(float(J))
    with pytest.raises(sae.InputError, match=r"x must lie in \[0, 1\]"):
        sae.cost_and_grad(p, xt, **HP, x_input=x)  # the target is checked


def test_saturated_units_exact_path():
    """Dead units (the exact log-domain sparsity path) with every variant: manual == jax.grad."""
    p, x = random_problem(10, 8, 5, 4)
    p = sae.tie(p._replace(b1=jnp.array([-60.0, 0.0, -800.0, 1.0])))
    xt = corrupt(jax.random.key(2), x, kind="mask", level=0.2)
    J, g = sae.cost_and_grad(p, x, **HP, l1=0.1, x_input=xt)
    J_ad, g_ad = sae.autodiff_cost_and_grad(p, x, **HP, l1=0.1, x_input=xt)
    assert np.isfinite(float(J)) and max_rel_err(J, J_ad) <= 1e-13
    assert_tree_close(g, g_ad, 1e-12, "saturated")


def test_vmap_over_l1_under_jit():
    p, x = random_problem(12, 10, 5, 3)
    gammas = jnp.array([0.0, 0.1, 0.5])
    Js, gs = jax.jit(jax.vmap(lambda c: sae.cost_and_grad(p, x, **HP, l1=c)))(gammas)
    for i, c in enumerate([0.0, 0.1, 0.5]):
        J, g = sae.cost_and_grad(p, x, **HP, l1=c)
        assert max_rel_err(Js[i], J) <= 1e-14
        assert_tree_close(jax.tree.map(lambda a: a[i], gs), g, 1e-13, f"l1={c}")


# --- the chunked and sharded paths -------------------------------------------------------------


@pytest.mark.parametrize("variant", [pytest.param("tied", marks=pytest.mark.slow), pytest.param("tied+l1", marks=pytest.mark.slow),
                                     "tied+l1+gaussian"])  # the combination exercises every term
def test_chunked_and_sharded_take_every_variant(variant):
    """Chunked (chunk sizes 1, a non-divisor of m = 11, and >= m) and sharded (jit, shard_map;
    11 rows over the devices: padded) == the one-shot full batch, denoising's x_input included
    (read in lockstep with the data; padded and split like it)."""
    p, x, opts = _problem(13, 11, 6, 3, variant)
    want_t, want_g = sae.cost_terms_and_grad(p, x, **HP, **opts)
    xs = np.asarray(x)
    host = {k: np.asarray(v) if k == "x_input" else v for k, v in opts.items()}
    sizes = [1, 4, 16] if "x_input" in opts else [4]
    got = [chunked_cost_terms_and_grad(p, xs, chunk_size=c, **HP, **host) for c in sizes]
    batch = shard_batch(xs, batch_mesh(), x_input=host.get("x_input"))
    got.append(shard_map_cost_terms_and_grad(p, batch, **HP, l1=opts.get("l1")))
    got.append(sharded_cost_terms_and_grad(p, batch, **HP, l1=opts.get("l1")))
    for t, g in got:
        assert max_rel_err(t.cost, want_t.cost) <= 1e-13 and max_rel_err(t.l1, want_t.l1) <= 1e-13
        assert_tree_close(t.rho_hat, want_t.rho_hat, 1e-13, variant)
        assert_tree_close(g, want_g, 1e-12, variant)
    assert max_rel_err(chunked_cost(p, xs, chunk_size=4, **HP, **host), want_t.cost) <= 1e-13


# --- bad input: one InputError each ------------------------------------------------------------


def test_bad_input():
    p, x = random_problem(15, 6, 4, 2)
    key = jax.random.key(0)
    cases = [
        (lambda: sae.cost(p, x, **HP, l1=-0.1), "l1 must be >= 0"),
        (lambda: sae.cost_and_grad(p, x, **HP, l1=float("nan")), "l1 must be finite"),
        (lambda: sae.cost_and_grad(p, x, **HP, l1=jnp.ones(2)), "l1 must be a scalar"),
        (lambda: chunked_cost_and_grad(p, np.asarray(x), **HP, l1=-1.0), "l1 must be >= 0"),
        (lambda: corrupt(key, x, kind="mask", level=1.0), r"in \[0, 1\) for kind='mask'"),
        (lambda: corrupt(key, x, kind="mask", level=-0.1), r"in \[0, 1\) for kind='mask'"),
        (lambda: corrupt(key, x, kind="gaussian", level=-0.5), ">= 0 for kind='gaussian'"),
        (lambda: corrupt(key, x, kind="gaussian", level=float("inf")), "must be finite"),
        (lambda: corrupt(key, x, kind="salt", level=0.1), "corruption kind must be one of"),
        (lambda: corrupt(None, x, kind="mask", level=0.1), "key must be one jax.random key"),
        (lambda: corrupt(0, x, kind="mask", level=0.1), "key must be one jax.random key"),
        (lambda: sae.cost_and_grad(p, x, **HP, x_input=x[:3]), r"x_input .* must be an array of the shape of x.* got an array \(3, 4\) float64"),
        (lambda: sae.cost_and_grad(p, x, **HP, x_input=x.astype(jnp.float32)), r"params' dtype \(float64\), got .* float32"),
        (lambda: sae.cost(p, x, **HP, x_input=x.at[0, 0].set(jnp.inf)), "x_input must be finite"),
        (lambda: sae.cost_and_grad(p, x, **HP, x_input=np.asarray(x).tolist()), "x_input .* must be an array.* got list"),
        (lambda: sae.cost(sae.Params(None, p.b1, p.W2, p.b2), x, **HP), "params.W1 must be an array"),
        (lambda: sae.cost(sae.Params(p.W1, p.b1, p.W1, p.b2), x, **HP), r"params.W2 must have shape \(4, 2\)"),
    ]
    for call, message in cases:
        with pytest.raises(sae.InputError, match=message):
            call()


def test_gradcheck_takes_tied_parameters():
    from sae_jax.gradcheck import gradcheck, row_passes

    p, x = random_problem(16, 6, 4, 3)
    rows = gradcheck(sae.tie(p), x, **HP, n_directions=2, devices=jax.devices()[:1])
    assert [r.array for r in rows] == ["cost", "W1", "b1", "b2"] and all(row_passes(r) for r in rows)


# --- the trainer and the CLI -------------------------------------------------------------------

from sae_jax._src import checkpoint as ckpt  # noqa: E402
from sae_jax.scale import batch_mesh, chunked_cost, chunked_cost_and_grad, chunked_cost_terms_and_grad, shard_batch, shard_map_cost_terms_and_grad, sharded_cost_terms_and_grad
from sae_jax.training import CHECKPOINT_NAME, PARAMS_NAME, load_params
from sae_jax.cli import main  # noqa: E402
from sae_jax.training import TrainConfig
from sae_jax._src.config import validate_config  # noqa: E402
from sae_jax.data import natural_image_patches  # noqa: E402
from sae_jax.training import train  # noqa: E402

X16 = natural_image_patches(120, 4, seed=0)  # (120, 16)
# Adam, tied, L1, masking noise: every variant at once, minibatches, a fresh corruption per step
NOISY = TrainConfig(n_hidden=5, optimizer="adam", batch_size=40, steps=8, chunk=4, checkpoint_every=4,
                    tied=True, l1=0.01, corruption="mask", corruption_level=0.3)


@pytest.mark.parametrize("optimizer", [pytest.param("adam", marks=pytest.mark.slow), pytest.param("lbfgs", marks=pytest.mark.slow)])
# resume is bit-identical by default in test_training (L-BFGS) and test_kill_resume (Adam, a real kill)
def test_denoising_tied_l1_run_resumes_bit_identically(tmp_path, optimizer):
    cfg = dataclasses.replace(NOISY, optimizer=optimizer)
    whole = train(X16, cfg, run_dir=tmp_path / "whole")
    half = train(X16, dataclasses.replace(cfg, steps=4), run_dir=tmp_path / "half")
    resumed = train(X16, cfg, run_dir=tmp_path / "half", resume=True)
    assert resumed.params.W2 is None
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    assert [r["cost"] for r in whole.metrics] == [r["cost"] for r in resumed.metrics]
    assert "l1" in whole.metrics[-1] and whole.metrics[-1]["l1"] > 0
    # tied files: no W2 anywhere, and they load back as tied parameters
    for name in (PARAMS_NAME, CHECKPOINT_NAME):
        tensors, _ = ckpt.read_safetensors(tmp_path / "whole" / name, "file")
        assert not any(k.endswith("W2") for k in tensors), name
    p, config = load_params(tmp_path / "whole")
    assert p.W2 is None and config["tied"] is True and config["corruption"] == "mask"
    # a fresh corruption every step: the same run without noise goes elsewhere
    clean = train(X16, dataclasses.replace(cfg, corruption="none"))
    assert not np.array_equal(clean.params.W1, whole.params.W1)
    del half


@pytest.mark.slow  # every variant's manual gradient equals jax.grad by default; trajectories follow
def test_manual_and_autodiff_trajectories_agree_with_every_variant():
    cfg = dataclasses.replace(NOISY, optimizer="lbfgs", steps=6, chunk=6, output="linear",
                              corruption="gaussian", corruption_level=0.2)
    a = train(X16, cfg)
    b = train(X16, dataclasses.replace(cfg, gradient="autodiff"))
    for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        assert max_rel_err(u, v) <= 1e-8


def test_warm_start_must_match_tied():
    p = sae.init_params(jax.random.key(0), 16, 5, dtype="float64")
    with pytest.raises(sae.InputError, match="params are untied .* config has tied=True"):
        train(X16, dataclasses.replace(NOISY, steps=1), params=p)
    r = train(X16, dataclasses.replace(NOISY, steps=1), params=sae.tie(p))
    assert r.params.W2 is None


def test_config_checks():
    validate_config(NOISY)
    assert TrainConfig.from_dict(NOISY.to_dict()) == NOISY
    for bad, message in [
        (dict(l1=-0.1), "l1 must be >= 0"),
        (dict(tied="yes"), "tied must be True or False"),
        (dict(corruption="salt"), "corruption kind must be one of"),
        (dict(corruption="mask", corruption_level=1.0), r"in \[0, 1\) for kind='mask'"),
        (dict(corruption="gaussian", corruption_level=-1.0), ">= 0 for kind='gaussian'"),
    ]:
        with pytest.raises(sae.InputError, match=message):
            validate_config(dataclasses.replace(NOISY, **bad))


SMALL = ["--patch-size", "4", "--n-patches", "120", "--n-hidden", "5", "--steps", "4", "--chunk", "4",
         "--no-progress"]


def test_cli_tied_denoising_run_then_visualize_encode_evaluate(tmp_path, capsys):
    d = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", "--out", str(d), *SMALL, "--tied", "--l1", "0.01", "--corruption", "mask",
                 "--corruption-level", "0.25"]) == 0
    # Issue 20.2: a denoising run held rho_hat of its corrupted input; the done line reports it beside the
    # clean data's, both named, and both lines name tied, L1 gamma (with its term's value) and the corruption.
    out = capsys.readouterr().out.splitlines()
    settings = "tied, L1 gamma=0.01, corruption mask p=0.25"
    assert settings in out[0] and out[0].startswith("sae-jax train:")
    (done,) = [line for line in out if line.startswith("done:")]
    last = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()][-1]
    assert f"({settings})" in done and f"L1 {last['l1']:.6f}" in done
    assert f"clean data: rho_hat mean {last['rho_hat_mean']:.4f}, sparsity {last['sparsity']:.6f}" in done
    noisy = done.split("corrupted training input: rho_hat mean ", 1)[1]
    assert float(noisy.split(",")[0]) != pytest.approx(last["rho_hat_mean"], abs=5e-5)
    conf = json.loads((d / "config.json").read_text())["config"]
    assert (conf["tied"], conf["l1"], conf["corruption"], conf["corruption_level"]) == (True, 0.01, "mask", 0.25)
    assert main(["visualize", str(d), "--out", str(tmp_path / "f.png")]) == 0
    assert main(["encode", str(d), "--out", str(tmp_path / "a.npy")]) == 0
    assert np.load(tmp_path / "a.npy").shape == (120, 5)
    assert main(["evaluate", str(d), "--out", str(tmp_path / "e.png")]) == 0
    assert main(["train", "--resume", str(d), "--steps", "8", "--no-progress"]) == 0
    capsys.readouterr()
    for argv, message in [
        (["--corruption", "mask", "--corruption-level", "1"], "corruption level must be in [0, 1)"),
        (["--l1", "-1"], "l1 must be >= 0"),
    ]:
        assert main(["train", "--out", str(tmp_path / "bad"), *SMALL, *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not (tmp_path / "bad").exists()


def test_sweep_of_a_tied_l1_denoising_config(tmp_path):
    from sae_jax.training import sweep

    r = sweep(X16, dataclasses.replace(NOISY, steps=2, chunk=2), {"beta": [0.0, 3.0]}, out_dir=tmp_path / "s")
    assert r.params_at(1).W2 is None and all(row["l1"] > 0 for row in r.summary)
    header = (tmp_path / "s" / "summary.csv").read_text().splitlines()[0].split(",")
    assert "l1" in header
    p, _ = load_params(tmp_path / "s" / r.summary[0]["dir"])
    assert p.W2 is None


# --- issue 21: corruption levels checked in the data's dtype, where corrupt uses them ---------------


@pytest.mark.parametrize("kind, level, want", [
    ("gaussian", 1e39, "corruption level=1e+39 overflows float32 (largest finite value 3.40282e+38); use a smaller sigma or float64"),
    ("mask", 0.99999999, "corruption level=0.99999999 rounds to 1.0 in float32, where kind='mask' needs a probability "
                         "below 1 (at most 0.99999994); use such a level or float64"),
])
def test_corrupt_refuses_a_level_that_is_not_one_in_float32(kind, level, want):
    x = jnp.full((3, 4), 0.5, jnp.float32)
    with pytest.raises(sae.InputError) as e:
        corrupt(jax.random.key(0), x, kind=kind, level=level)
    assert str(e.value) == want
    from sae_jax._src.variants import check_corruption

    check_corruption(kind, level)  # valid as a number: only the float32 cast is refused
    check_corruption(kind, level, "float64")


def test_corrupt_refuses_noise_that_overflows_the_data_dtype():
    x = jnp.full((64, 4), 0.5, jnp.float32)  # 3e38 * N(0, 1): some of 256 draws exceed 1.2 in size
    with pytest.raises(sae.InputError) as e:
        corrupt(jax.random.key(0), x, kind="gaussian", level=3e38)
    assert str(e.value).startswith("corruption level=3e+38: x + level * N(0, 1) overflows float32")
