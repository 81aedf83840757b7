"""Data parallel == one device: global rho_hat, global m, replicated results.

Runs on every device JAX sees (8 host CPU devices under conftest; a GPU machine may show one
device, where the multi-device cases skip). Tolerance: float64 <= 1e-12 relative to each
array's largest entry (only the order of the sums differs).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import sae_jax as sae
from sae_jax.scale import batch_mesh, replicate, shard_batch, shard_map_cost_and_grad, shard_map_cost_terms_and_grad, sharded_cost_and_grad, sharded_cost_terms_and_grad, make_sharded_value_and_grad, make_train_value_and_grad

HP = dict(lam=1e-3, beta=3.0, rho=0.1)
N, H = 9, 3  # n_visible a square, so the CLI can draw filters.png
N_DEV = len(jax.devices())
multi = pytest.mark.skipif(N_DEV < 2, reason=f"needs >= 2 devices to shard over, JAX sees {N_DEV}")


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    scale = np.max(np.abs(b))
    return float(np.max(np.abs(a - b)) / (scale if scale > 0 else 1.0))


def assert_close(got, want, tol=1e-12):
    errs = jax.tree.map(_rel, got, want)
    assert max(jax.tree.leaves(errs)) <= tol, errs


def _problem(m, dtype=jnp.float64, seed=0):
    rng = np.random.default_rng(seed)
    r = np.sqrt(6 / (N + H + 1))
    p = sae.Params(rng.uniform(-r, r, (H, N)), rng.normal(size=H), rng.uniform(-r, r, (N, H)), np.full(N, 0.3))
    return sae.Params(*(jnp.asarray(a, dtype) for a in p)), rng.uniform(size=(m, N)).astype(dtype)


def _replicated(tree):
    return all(a.sharding.is_fully_replicated for a in jax.tree.leaves(tree))


# m = 2*N_DEV divides evenly; m = 2*N_DEV + 3 does not (and m = 3 < 8 devices leaves some empty).
SIZES = sorted({2 * N_DEV, 2 * N_DEV + 3, 3})


@pytest.mark.parametrize("m", SIZES)
@pytest.mark.parametrize("method", ["jit", "shard_map"])
def test_equals_single_device(m, method):
    p, x = _problem(m)
    want = sae.cost_terms_and_grad(p, jnp.asarray(x), **HP)
    batch = shard_batch(x, batch_mesh())
    f = sharded_cost_terms_and_grad if method == "jit" else shard_map_cost_terms_and_grad
    got = f(p, batch, **HP)
    assert_close(got, want)
    assert _replicated(got)
    assert float(batch.m) == m  # padding never enters m


def test_linear_output_and_float32():
    p, x = _problem(2 * N_DEV + 1)
    batch = shard_batch(x + 1.5, batch_mesh(), output="linear")
    want = sae.cost_terms_and_grad(p, jnp.asarray(x + 1.5), output="linear", **HP)
    assert_close(shard_map_cost_terms_and_grad(p, batch, output="linear", **HP), want)
    p32, x32 = _problem(2 * N_DEV + 1, dtype=jnp.float32)
    J, g = shard_map_cost_and_grad(p32, shard_batch(x32, batch_mesh()), **HP)
    assert J.dtype == jnp.float32
    assert_close((J, g), sae.cost_and_grad(p32, jnp.asarray(x32), **HP), tol=2e-5)


@multi
def test_padding_rows_are_masked_and_batch_is_sharded():
    m = 2 * N_DEV + 3
    _, x = _problem(m)
    batch = shard_batch(x, batch_mesh())
    rows = -(-m // N_DEV) * N_DEV
    assert batch.x.shape == (rows, N) and batch.mask.shape == (rows,)
    assert float(jnp.sum(batch.mask)) == m
    assert batch.x.sharding.spec == P("batch") or batch.x.sharding.spec == P("batch", None)
    assert len({s.device for s in batch.x.addressable_shards}) == N_DEV


@multi
def test_plain_cost_and_grad_on_sharded_x_gives_global_rho_hat():
    """(a) No special code: sae.cost_and_grad under jit with x sharded by rows and params replicated."""
    p, x = _problem(2 * N_DEV)
    mesh = batch_mesh()
    xs = jax.device_put(jnp.asarray(x), NamedSharding(mesh, P("batch")))
    assert len(xs.addressable_shards) == N_DEV
    terms, grads = sae.cost_terms_and_grad(replicate(p, mesh), xs, **HP)
    want = sae.cost_terms_and_grad(p, jnp.asarray(x), **HP)
    assert_close((terms, grads), want)
    np.testing.assert_allclose(terms.rho_hat, np.asarray(sae.encode(p, jnp.asarray(x))).mean(0), rtol=1e-13)
    assert _replicated((terms, grads))


@multi
def test_shard_map_uses_global_rho_hat_not_per_device():
    """Per-device rho_hat (each device's own mean) would give a different gradient: check we differ from it."""
    p, x = _problem(2 * N_DEV + 3)
    got = shard_map_cost_and_grad(p, shard_batch(x, batch_mesh()), **HP)
    assert_close(got, sae.cost_and_grad(p, jnp.asarray(x), **HP))
    first_half = sae.cost_and_grad(p, jnp.asarray(x[: len(x) // 2]), **HP)
    assert _rel(got[1].W1, first_half[1].W1) > 1e-3


@pytest.mark.parametrize("method", ["jit", "shard_map"])
def test_make_sharded_value_and_grad_eager_and_traced(method):
    p, x = _problem(2 * N_DEV + 5)
    mesh = batch_mesh()
    vg = make_sharded_value_and_grad(mesh, x, method=method, **HP)
    want = sae.cost_and_grad(p, jnp.asarray(x), **HP)
    assert_close(vg(p), want)
    assert_close(jax.jit(vg)(p), want)


@multi
def test_subset_of_devices():
    p, x = _problem(11)
    mesh = batch_mesh(2)
    assert mesh.size == 2
    batch = shard_batch(x, mesh)
    assert_close(shard_map_cost_and_grad(p, batch, **HP), sae.cost_and_grad(p, jnp.asarray(x), **HP))


def test_bad_input():
    p, x = _problem(5)
    mesh = batch_mesh()
    with pytest.raises(sae.InputError, match="devices must be"):
        batch_mesh(N_DEV + 1)
    with pytest.raises(sae.InputError, match="devices must be"):
        batch_mesh("some")
    with pytest.raises(sae.InputError, match="2-D"):
        shard_batch(x[0], mesh)
    with pytest.raises(sae.InputError, match="at least one sample"):
        shard_batch(x[:0], mesh)
    with pytest.raises(sae.InputError, match=r"\[0, 1\]"):
        shard_batch(x + 2.0, mesh)
    with pytest.raises(sae.InputError, match="ShardedBatch"):
        shard_map_cost_and_grad(p, x, **HP)
    batch = shard_batch(x, mesh)
    with pytest.raises(sae.InputError, match="same dtype"):
        shard_map_cost_and_grad(sae.Params(*(a.astype(jnp.float32) for a in p)), batch, **HP)
    with pytest.raises(sae.InputError, match="rho"):
        sharded_cost_and_grad(p, batch, lam=0.0, beta=1.0, rho=0.0)
    with pytest.raises(sae.InputError, match="method"):
        make_sharded_value_and_grad(mesh, x, method="pmap", **HP)


def test_denoising_equals_single_device():
    """x_input placed by shard_batch (padded and split like x), or any array of batch.x's padded
    shape (what its padding rows hold is masked out), through shard_map, the closure and the
    trainer's objective (given train's DenoisingBatch, padded inside the trace) ==
    sae.cost_terms_and_grad(params, x, x_input=...) (float64 <= 1e-12). Tied + l1 + x_input
    through jit and shard_map: tests/test_variants.py."""
    from sae_jax._src.step import DenoisingBatch

    m = 2 * N_DEV + 3
    p, x = _problem(m)
    xt = x + 0.3 * np.random.default_rng(1).standard_normal(x.shape)  # Gaussian: outside [0, 1] too
    mesh = batch_mesh()
    want = sae.cost_terms_and_grad(p, jnp.asarray(x), x_input=jnp.asarray(xt), **HP)
    plain = shard_batch(x, mesh)
    rows = plain.x.shape[0]
    x_tilde = jax.device_put(np.concatenate([xt, np.full((rows - m, N), 7.0)]), plain.x.sharding)
    p = replicate(p, mesh)  # as the closure does: one executable serves both calls
    got = shard_map_cost_terms_and_grad(p, plain, x_input=x_tilde, **HP)
    assert_close(got, want)
    assert _replicated(got)
    vg = make_sharded_value_and_grad(mesh, x, x_input=xt, **HP)  # shard_batch(x, mesh, x_input=xt)
    assert vg.batch.x_input.sharding == vg.batch.x.sharding and vg.batch.x_input.shape == (rows, N)
    assert_close(vg(p), (want[0].cost, want[1]))
    fn = make_train_value_and_grad(mesh, **HP)
    (J, terms), grads = jax.jit(fn)(p, DenoisingBatch(jnp.asarray(x), jnp.asarray(xt)))
    assert_close((terms, grads), want)
    for call, message in (
        (lambda: shard_map_cost_and_grad(p, plain, x_input=xt, **HP), r"x_input .* batch.x's padded shape"),
        (lambda: shard_map_cost_and_grad(p, vg.batch, x_input=x_tilde, **HP), "x_input given twice"),
        (lambda: sharded_cost_and_grad(p, plain, x_input=x_tilde.at[0, 0].set(jnp.nan), **HP),
         "x_input must be finite"),
        (lambda: shard_batch(x, mesh, x_input=xt[:-1]), r"x_input .* x's shape"),
        (lambda: shard_batch(x, mesh, x_input=xt.astype(np.float32)), r"x_input .* float64"),
        (lambda: shard_batch(x, mesh, x_input=xt + np.inf), "x_input must be finite"),
    ):
        with pytest.raises(sae.InputError, match=message):
            call()


@pytest.mark.slow  # make_train_value_and_grad equals the one-device objective by default (this file)
def test_cli_devices_trains_like_one_device(tmp_path, capsys):
    """`sae-jax train --devices all` (sharded.make_train_value_and_grad in train()'s seam; rows over
    every device, m = 41 not a multiple of 8) takes the same L-BFGS steps as the one-device train().
    Same shapes and config as tests/test_chunked.py's trainer test: one one-device compile serves both."""
    from sae_jax.training import load_params
    from sae_jax.cli import main
    from sae_jax.training import TrainConfig, train

    _, x = _problem(41)
    np.save(tmp_path / "x.npy", x)
    cfg = TrainConfig(n_hidden=H, **HP, steps=3, chunk=1, lbfgs_memory=5)
    one = train(x, cfg, pictures=False)
    flags = ["train", "--data", str(tmp_path / "x.npy"), "--n-hidden", str(H), "--lam", str(HP["lam"]),
             "--beta", str(HP["beta"]), "--rho", str(HP["rho"]), "--steps", "3", "--chunk", "1",
             "--lbfgs-memory", "5", "--no-progress"]
    assert main([*flags, "--devices", "all", "--out", str(tmp_path / "many")]) == 0
    assert f"data parallel over {N_DEV} device(s)" in capsys.readouterr().out
    many, _ = load_params(tmp_path / "many")
    assert_close(sae.Params(*(np.asarray(a) for a in many)), one.params, tol=1e-10)
    # bad values: one line, exit 2, before anything is trained
    for bad, msg in ((["--devices", "0"], "devices must be"), (["--devices", "two"], "--devices must be"),
                     (["--devices", "all", "--gradient", "autodiff"], "manual gradient")):
        assert main([*flags, *bad, "--out", str(tmp_path / "bad")]) == 2
        assert msg in capsys.readouterr().err


@pytest.mark.slow
def test_cli_devices_denoising_trains_like_one_device_and_resumes_bit_identically(tmp_path, capsys):
    """`sae-jax train --devices all --corruption mask` (train passes each step's DenoisingBatch,
    a fresh corruption from the seed and the step, to the sharded objective; minibatches of 20
    rows over the devices, padded) follows the one-device run, and a resumed run draws the same
    corruptions: bit-identical to the uninterrupted one."""
    from sae_jax.training import load_params
    from sae_jax.cli import main
    from sae_jax.training import TrainConfig, train

    _, x = _problem(41)
    np.save(tmp_path / "x.npy", x)
    cfg = TrainConfig(n_hidden=H, **HP, optimizer="adam", learning_rate=0.05, batch_size=20, steps=4, chunk=2,
                      checkpoint_every=2, corruption="mask", corruption_level=0.3)
    one = train(x, cfg, pictures=False)
    flags = ["train", "--data", str(tmp_path / "x.npy"), "--n-hidden", str(H), "--lam", str(HP["lam"]),
             "--beta", str(HP["beta"]), "--rho", str(HP["rho"]), "--optimizer", "adam", "--learning-rate", "0.05",
             "--batch-size", "20", "--chunk", "2", "--checkpoint-every", "2", "--corruption", "mask",
             "--corruption-level", "0.3", "--devices", "all", "--no-progress"]
    assert main([*flags, "--steps", "4", "--out", str(tmp_path / "whole")]) == 0
    assert f"data parallel over {N_DEV} device(s)" in capsys.readouterr().out
    whole, _ = load_params(tmp_path / "whole")
    assert_close(sae.Params(*(np.asarray(a) for a in whole)), one.params, tol=1e-10)
    assert main([*flags, "--steps", "2", "--out", str(tmp_path / "half")]) == 0
    assert main(["train", "--resume", str(tmp_path / "half"), "--steps", "4", "--devices", "all", "--no-progress"]) == 0
    resumed, _ = load_params(tmp_path / "half")
    for a, b in zip(whole, resumed):
        np.testing.assert_array_equal(a, b)


# --- issue 21: wrong argument types are one InputError, not TypeError / AttributeError ------------


@pytest.mark.parametrize("devices, want", [
    (True, "devices must be 'all', an integer or a list of devices, got True"),
    (2.5, "devices must be 'all', an integer or a list of devices, got 2.5"),
    ([1, 2], "devices must be 'all', an integer or a list of devices (jax.devices()), got 1 in the list"),
])
def test_batch_mesh_refuses_what_is_not_devices(devices, want):
    with pytest.raises(sae.InputError) as e:
        batch_mesh(devices)
    assert str(e.value) == want


def test_shard_batch_refuses_what_is_not_a_mesh():
    with pytest.raises(sae.InputError) as e:
        shard_batch(jnp.full((4, 3), 0.5), "not a mesh")
    assert str(e.value) == "mesh must be a jax.sharding.Mesh (sae_jax.scale.batch_mesh()), got str 'not a mesh'"
