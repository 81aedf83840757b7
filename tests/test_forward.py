import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sae_jax as sae
from helpers import random_problem


def _sigm(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["nojit", "jit"])
def test_forward_matches_numpy_column_layout(output, transform):
    p, x = random_problem(0, 7, 5, 3, output=output)
    acts = transform(lambda p, x: sae.forward(p, x, output=output))(p, x)
    W1, b1, W2, b2 = (np.asarray(a) for a in p)
    data = np.asarray(x).T  # UFLDL: samples as columns
    z2 = W1 @ data + b1[:, None]
    a2 = _sigm(z2)
    z3 = W2 @ a2 + b2[:, None]
    a3 = z3 if output == "linear" else _sigm(z3)
    for got, want in zip(acts, (z2, a2, z3, a3)):
        np.testing.assert_allclose(np.asarray(got).T, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(sae.encode(p, x), acts.a2, rtol=1e-15)
    np.testing.assert_allclose(sae.decode(p, acts.a2, output=output), acts.a3, rtol=1e-15)
    np.testing.assert_allclose(sae.reconstruct(p, x, output=output), acts.a3, rtol=1e-15)


def test_single_sample_and_vmap_agree_with_batch():
    p, x = random_problem(1, 6, 4, 3)
    batch = sae.forward(p, x)
    rows = jax.vmap(lambda xi: sae.forward(p, xi))(x)
    for a, b in zip(batch, rows):
        np.testing.assert_allclose(a, b, rtol=1e-14)
    one = sae.forward(p, x[0])
    np.testing.assert_allclose(one.a3, batch.a3[0], rtol=1e-14)


def test_sigmoid_is_stable_and_prime_is_a_one_minus_a():
    z = jnp.array([-1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4])
    a = sae.sigmoid(z)
    assert np.all(np.isfinite(a))
    assert float(a[0]) == 0.0 and float(a[-1]) == 1.0
    # f'(z) = f(z)(1 - f(z)), and equals what jax.grad computes
    g = jax.vmap(jax.grad(sae.sigmoid))(z)
    np.testing.assert_allclose(sae.sigmoid_prime(a), g, rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_preserved(dtype):
    p, x = random_problem(2, 5, 4, 3, dtype=dtype)
    assert all(a.dtype == jnp.dtype(dtype) for a in sae.forward(p, x))


def test_unknown_output_layer():
    p, x = random_problem(3, 2, 2, 2)
    with pytest.raises(ValueError, match="output must be one of"):
        sae.forward(p, x, output="relu")


@pytest.mark.parametrize("fn", ["encode", "forward", "reconstruct", "decode"])
def test_one_dtype_rule_and_clear_errors(fn):
    """Issue 12.5: encode silently accepted float64 data with float32 params, a list raised a raw
    TypeError, a wrong width a dot_general error. The rule of every math function: data in the
    parameters' dtype, never converted; anything else is one InputError naming both."""
    p, x = random_problem(4, 3, 5, 2, dtype=jnp.float32)
    call = (lambda p, a: sae.decode(p, a)) if fn == "decode" else getattr(sae, fn)
    arg, name, width = (sae.encode(p, x), "a2", 2) if fn == "decode" else (x, "x", 5)
    call(p, arg)  # float32 with float32: fine
    jax.jit(call)(p, arg)
    with pytest.raises(sae.InputError, match=rf"{name} must have the same dtype as params \(float32\), got float64"):
        call(p, np.asarray(arg, np.float64))
    with pytest.raises(sae.InputError, match=rf"{name} must be an array of shape \(m, {width}\) in params' dtype "
                       rf"\(float32\), got list; convert it with jnp.asarray"):
        call(p, np.asarray(arg).tolist())
    with pytest.raises(sae.InputError, match=rf"must have shape \(m, {width}\) or \({width},\) to match params"):
        call(p, jnp.zeros((3, width + 1), jnp.float32))
    with pytest.raises(sae.InputError, match="must have the same dtype"):  # checked under jit too (static)
        jax.jit(call)(p, np.asarray(arg, np.float64))


def test_load_dataset_in_the_params_dtype_feeds_cost(tmp_path):
    """Issue 12.5: load_dataset returned float64 and init_params float32, so cost(p, load_dataset(...))
    raised. The error names both dtypes and the fix, and load_dataset(dtype=) is that fix."""
    from sae_jax.data import load_dataset

    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(0, 1, (6, 5)))
    p, _ = random_problem(5, 1, 5, 2, dtype=jnp.float32)
    hp = dict(lam=1e-4, beta=3.0, rho=0.1)
    with pytest.raises(sae.InputError, match=r"same dtype as params \(float32\), got float64.*load_dataset\(\.\.\., "
                       r"dtype='float32'\)"):
        sae.cost(p, load_dataset(tmp_path / "x.npy"), **hp)
    x32 = load_dataset(tmp_path / "x.npy", dtype=p.W1.dtype)
    assert x32.dtype == np.float32 and np.isfinite(float(sae.cost(p, x32, **hp)))
    assert sae.encode(p, x32).dtype == jnp.float32
    with pytest.raises(sae.InputError, match="dtype must be a floating dtype"):
        load_dataset(tmp_path / "x.npy", dtype="int32")
