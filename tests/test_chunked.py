"""Chunked full batch == one-shot full batch (global m, global rho_hat), for every data source.

Tolerance: float64 <= 1e-12 relative to each array's largest entry (the only difference is the
order of the sums); float32 <= 2e-5.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sae_jax as sae
from sae_jax._src.lbfgs import traceable
from sae_jax.optim import lbfgs_loop
from sae_jax.scale import chunk_size_for_budget, chunked_cost, chunked_cost_and_grad, chunked_cost_terms, chunked_cost_terms_and_grad, make_chunked_value_and_grad
from helpers import count_compiles

HP = dict(lam=1e-3, beta=3.0, rho=0.1)
N, H, M = 9, 3, 23


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    scale = np.max(np.abs(b))
    return float(np.max(np.abs(a - b)) / (scale if scale > 0 else 1.0))


def assert_close(got, want, tol=1e-12):
    errs = jax.tree.map(_rel, got, want)
    assert max(jax.tree.leaves(errs)) <= tol, errs


def _problem(m=M, dtype=jnp.float64, seed=0):
    # numpy draws: no compilation per data shape
    rng = np.random.default_rng(seed)
    r = np.sqrt(6 / (N + H + 1))
    p = sae.Params(
        W1=rng.uniform(-r, r, (H, N)),
        # nonzero biases, so padded zero rows would visibly change rho_hat if they were counted
        b1=rng.normal(size=H),
        W2=rng.uniform(-r, r, (N, H)),
        b2=np.full(N, 0.3),
    )
    p = sae.Params(*(jnp.asarray(a, dtype) for a in p))
    x = rng.uniform(size=(m, N)).astype(dtype)
    return p, x


@pytest.mark.parametrize("chunk_size", [1, 5, M, 64])
@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_equals_one_shot(chunk_size, output):
    p, x = _problem()
    want = sae.cost_terms_and_grad(p, jnp.asarray(x), output=output, **HP)
    got = chunked_cost_terms_and_grad(p, x, chunk_size=chunk_size, output=output, **HP)
    assert_close(got, want)
    J, g = chunked_cost_and_grad(p, x, chunk_size=chunk_size, output=output, **HP)
    assert_close((J, g), (want[0].cost, want[1]))
    terms = chunked_cost_terms(p, x, chunk_size=chunk_size, output=output, **HP)
    assert_close(terms, want[0])
    assert_close(chunked_cost(p, x, chunk_size=chunk_size, output=output, **HP), want[0].cost)


def test_rho_hat_is_global_not_mean_of_chunk_estimates():
    # With unequal chunks, averaging per-chunk rho_hat (or KL of each chunk) would be wrong.
    p, x = _problem()
    terms, _ = chunked_cost_terms_and_grad(p, [x[:3], x[3:]], chunk_size=3, **HP)
    np.testing.assert_allclose(terms.rho_hat, np.asarray(sae.encode(p, jnp.asarray(x))).mean(0), rtol=1e-13)


def test_compiles_each_kernel_once_per_chunk_shape():
    p, _ = _problem()
    chunk_size = 4  # unique to this test, so the jit caches start without this shape
    with count_compiles() as first:
        chunked_cost_and_grad(p, _problem(m=9)[1], chunk_size=chunk_size, **HP)
    with count_compiles() as later:
        for m in (13, 16, 30):  # ragged last chunk, padded: same shape every time
            _, x = _problem(m=m)
            chunked_cost_and_grad(p, x, chunk_size=chunk_size, **HP)
    assert first.n >= 2 and later.n == 0  # pass 1 and pass 2 compiled once, for every m


def test_sources(tmp_path):
    p, x = _problem()
    want = sae.cost_and_grad(p, jnp.asarray(x), **HP)
    path = tmp_path / "x.npy"
    np.save(path, x)
    sources = {
        "npy path": path,
        "str path": str(path),
        "memmap": np.load(path, mmap_mode="r"),
        "jax array": jnp.asarray(x),
        "uneven list": [x[:2], x[2:3], x[3:17], x[17:]],
        "callable": lambda: (x[i : i + 7] for i in range(0, M, 7)),
    }
    for name, data in sources.items():
        got = chunked_cost_and_grad(p, data, chunk_size=5, **HP)
        assert_close(got, want), name


def test_chunks_split_over_devices():
    """Past memory and past one device: every chunk's rows sharded over the mesh (chunk 5 -> a
    multiple of the device count, padding masked); results replicated and equal to one-shot."""
    from sae_jax.scale import batch_mesh

    p, x = _problem()
    mesh = batch_mesh()
    want = sae.cost_terms_and_grad(p, jnp.asarray(x), **HP)
    got = chunked_cost_terms_and_grad(p, x, chunk_size=5, mesh=mesh, **HP)
    assert_close(got, want)
    assert all(a.sharding.is_fully_replicated for a in jax.tree.leaves(got))
    assert_close(chunked_cost_terms(p, x, chunk_size=5, mesh=mesh, **HP), want[0])


def test_float32():
    p, x = _problem(dtype=jnp.float32)
    want = sae.cost_and_grad(p, jnp.asarray(x), **HP)
    J, g = chunked_cost_and_grad(p, x, chunk_size=5, **HP)
    assert J.dtype == jnp.float32 and all(a.dtype == jnp.float32 for a in g)
    assert_close((J, g), want, tol=2e-5)


def test_memory_budget():
    size = chunk_size_for_budget(1 << 20, n_visible=64, n_hidden=25, dtype=jnp.float64)
    assert size == (1 << 20) // (2 * (5 * 64 + 3 * 25) * 8)
    assert chunk_size_for_budget(1, n_visible=64, n_hidden=25) == 1
    p, x = _problem()
    got = chunked_cost_and_grad(p, x, memory_bytes=2 * (5 * N + 3 * H) * 8 * 5, **HP)
    assert_close(got, sae.cost_and_grad(p, jnp.asarray(x), **HP))


def test_bad_input(tmp_path):
    p, x = _problem()
    call = chunked_cost_and_grad
    with pytest.raises(sae.InputError, match="re-readable"):
        call(p, iter([x]), chunk_size=5, **HP)
    with pytest.raises(sae.InputError, match="same dtype"):
        call(p, x.astype(np.float32), chunk_size=5, **HP)
    with pytest.raises(sae.InputError, match=r"shape \(m, 9\)"):
        call(p, x[:, :4], chunk_size=5, **HP)
    with pytest.raises(sae.InputError, match="at least one sample"):
        call(p, x[:0], chunk_size=5, **HP)
    with pytest.raises(sae.InputError, match="chunk_size"):
        call(p, x, chunk_size=0, **HP)
    with pytest.raises(sae.InputError, match="not both"):
        call(p, x, chunk_size=3, memory_bytes=1000, **HP)
    with pytest.raises(sae.InputError, match="rho"):
        call(p, x, chunk_size=5, lam=0.0, beta=1.0, rho=1.5)
    bad = x.copy()
    bad[20, 1] = np.nan
    with pytest.raises(sae.InputError, match=r"data \(chunk 4\) must be finite"):
        call(p, bad, chunk_size=5, **HP)
    with pytest.raises(sae.InputError, match=r"\[0, 1\]"):
        call(p, x + 1.0, chunk_size=5, **HP)
    np.save(tmp_path / "f.npy", np.asfortranarray(x))
    with pytest.raises(sae.InputError, match="C-ordered 2-D"):
        call(p, tmp_path / "f.npy", chunk_size=5, **HP)
    with pytest.raises(sae.InputError, match="readable .npy"):
        call(p, tmp_path / "missing.npy", chunk_size=5, **HP)
    with pytest.raises(sae.InputError, match="earlier blocks"):
        call(p, [x[:3], x[3:, :5]], chunk_size=5, **HP)
    grown = [x]
    with pytest.raises(sae.InputError, match="changed between the two passes"):
        def source():
            grown.append(x[:1])  # a source that yields more rows on the second pass
            return list(grown)
        call(p, source, chunk_size=5, check_values=False, **HP)


# --- denoising: x_input, a second source read in lockstep with the data ------------------------


def _corrupted(x, seed=1):
    """A Gaussian-corrupted copy (values outside [0, 1] too: only the target must lie inside)."""
    return x + 0.3 * np.random.default_rng(seed).standard_normal(x.shape)


def test_denoising_sources_and_mesh(tmp_path):
    """Every source kind as a pair, with different block boundaries for data and x_input (they
    are regrouped into the same chunks), each chunk over the devices, and the value-and-grad
    closure: == sae.cost_and_grad(params, x, x_input=...) on all the data at once. The
    tied + l1 + x_input chunk sizes 1, non-divisor and >= m: tests/test_variants.py."""
    from sae_jax.scale import batch_mesh

    p, x = _problem()
    xt = _corrupted(x)
    want = sae.cost_terms_and_grad(p, jnp.asarray(x), x_input=jnp.asarray(xt), **HP)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "xt.npy", xt)
    pairs = {
        "arrays": (x, xt),
        "npy paths": (tmp_path / "x.npy", str(tmp_path / "xt.npy")),
        "lists": ([x[:2], x[2:17], x[17:]], [xt[:11], xt[11:]]),
        "callables": (lambda: (x[i : i + 7] for i in range(0, M, 7)), lambda: iter([xt])),
    }
    for name, (data, x_input) in pairs.items():
        got = chunked_cost_terms_and_grad(p, data, x_input=x_input, chunk_size=5, **HP)
        assert_close(got, want), name
    assert_close(chunked_cost_terms(p, x, x_input=xt, chunk_size=5, **HP), want[0])
    mesh = batch_mesh()
    assert_close(chunked_cost_terms_and_grad(p, x, x_input=xt, chunk_size=5, mesh=mesh, **HP), want)
    vg = make_chunked_value_and_grad(x, x_input=xt, chunk_size=5, **HP)
    assert_close(vg(p), (want[0].cost, want[1]))


def test_denoising_at_saturation_reads_x_input_in_every_pass():
    """A saturated unit (rho_hat > 1 - 2**-10) takes the extra log-sums pass: it must read x_input too."""
    p, x = _problem()
    p = p._replace(b1=jnp.asarray([12.0, 0.0, -1.0]))
    xt = _corrupted(x)
    want = sae.cost_terms_and_grad(p, jnp.asarray(x), x_input=jnp.asarray(xt), **HP)
    assert float(want[0].rho_hat[0]) > 1 - 2.0**-10
    assert_close(chunked_cost_terms_and_grad(p, x, x_input=xt, chunk_size=5, **HP), want)
    assert_close(chunked_cost_terms(p, x, x_input=xt, chunk_size=5, **HP), want[0])


def test_denoising_bad_input(tmp_path):
    p, x = _problem()
    xt = _corrupted(x)
    bad = xt.copy()
    bad[12, 0] = np.inf
    call = chunked_cost_and_grad
    cases = [
        (dict(x_input=[xt]), r"x_input .* of data's kind \(array\).* got list"),
        (dict(x_input=xt[:-1]), r"x_input .* data's 23 rows, got 22"),
        (dict(data=lambda: iter([x]), x_input=lambda: iter([xt[:-1]])),
         r"at chunk 4 data has shape \(3, 9\), x_input shape \(2, 9\)"),
        (dict(data=lambda: iter([x[:20]]), x_input=lambda: iter([xt])),
         r"at chunk 4 data has no rows, x_input shape \(3, 9\)"),
        (dict(x_input=xt[:, :4]), r"x_input .* at chunk 0 data has shape \(5, 9\), x_input shape \(5, 4\)"),
        (dict(x_input=xt.astype(np.float32)), "x_input must have the same dtype as params"),
        (dict(x_input=bad), r"x_input \(chunk 2\) must be finite"),
        (dict(data=tmp_path / "x.npy", x_input=tmp_path / "missing.npy"), "x_input must be a readable .npy"),
    ]
    np.save(tmp_path / "x.npy", x)
    for kwargs, message in cases:
        kwargs.setdefault("data", x)
        with pytest.raises(sae.InputError, match=message):
            call(p, kwargs.pop("data"), chunk_size=5, **HP, **kwargs)
    with pytest.raises(sae.InputError, match=r"x_input \(chunk 2\) must be finite"):
        make_chunked_value_and_grad(x, x_input=bad, chunk_size=5, **HP)
    with pytest.raises(sae.InputError, match="data's kind"):
        make_chunked_value_and_grad(x, x_input=[xt], **HP)


def test_traceable_gives_the_host_value_and_grad_under_jit():
    p, x = _problem()
    vg = make_chunked_value_and_grad(x, chunk_size=4, **HP)
    value = traceable(vg)
    got = jax.jit(jax.value_and_grad(value))(p)
    assert_close(got, sae.cost_and_grad(p, jnp.asarray(x), **HP))


def _lbfgs_runs(tmp_path, traced_in_memory):
    p, x = _problem(m=41)
    np.save(tmp_path / "x.npy", x)
    data = np.load(tmp_path / "x.npy", mmap_mode="r")
    streamed = lbfgs_loop(
        make_chunked_value_and_grad(data, chunk_size=8, **HP), p, num_steps=4
    )
    xj = jnp.asarray(x)
    in_memory = lbfgs_loop(
        lambda q: sae.cost_and_grad(q, xj, **HP), p, num_steps=4, traced=traced_in_memory
    )
    return streamed, in_memory


def _assert_same_trajectory(streamed, in_memory):
    assert len(streamed.values) == len(in_memory.values) == 5
    np.testing.assert_allclose(streamed.values, in_memory.values, rtol=1e-10)
    np.testing.assert_allclose(streamed.grad_norms, in_memory.grad_norms, rtol=1e-8)
    assert streamed.values[-1] < 0.5 * streamed.values[0]
    assert_close(streamed.params, in_memory.params, tol=1e-9)


@pytest.mark.slow  # the driver's loops follow one trajectory by default (test_lbfgs: the three loops)
def test_lbfgs_on_memmapped_npy_follows_the_trainers_in_memory_run(tmp_path):
    """The trainer's L-BFGS (same optax transformation), driven from Python over chunks of a
    memory-mapped .npy, follows sae_jax._src.training.train's in-memory full-batch run step by step."""
    # (from-import: the package re-exports the function `train` under the module's name)
    from sae_jax.training import TrainConfig, make_optimizer, train
    from sae_jax._src.training import init_state

    _, x = _problem(m=41)
    np.save(tmp_path / "x.npy", x)
    cfg = TrainConfig(n_hidden=H, **HP, steps=3, chunk=1, lbfgs_memory=5)
    trained = train(x, cfg, pictures=False)
    p0 = init_state(cfg, jnp.asarray(x)).params
    streamed = lbfgs_loop(
        make_chunked_value_and_grad(np.load(tmp_path / "x.npy", mmap_mode="r"), chunk_size=8, **HP),
        p0, num_steps=3, optimizer=make_optimizer(cfg),
    )
    np.testing.assert_allclose(streamed.values, [row["cost"] for row in trained.metrics], rtol=1e-10)
    assert streamed.values[-1] < 0.5 * streamed.values[0]
    assert_close(streamed.params, trained.params, tol=1e-9)


@pytest.mark.slow
def test_lbfgs_streamed_equals_host_in_memory_run(tmp_path):
    _assert_same_trajectory(*_lbfgs_runs(tmp_path, traced_in_memory=False))


@pytest.mark.slow
def test_lbfgs_streamed_equals_fully_traced_in_memory_run(tmp_path):
    _assert_same_trajectory(*_lbfgs_runs(tmp_path, traced_in_memory=True))


@pytest.mark.slow
def test_memory_benchmark_runs_at_a_tiny_size(tmp_path, capsys):
    import json

    from benchmarks import memory_chunked

    out = tmp_path / "m.json"
    assert memory_chunked.main(["--size", "8,3,1000", "--chunk-size", "64", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [c["case"] for c in res["cases"]] == list(memory_chunked.CASES)
    assert all("peak_rss_bytes" in c for c in res["cases"])
    costs = [c["cost"] for c in res["cases"]]
    np.testing.assert_allclose(costs, costs[0], rtol=1e-5)
