import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sae_jax as sae
from sae_jax._src.params import init_radius


@pytest.mark.parametrize("n,h", [(1, 1), (64, 25), (3, 7)])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_init_params_ufldl(n, h, dtype):
    p = sae.init_params(jax.random.key(0), n, h, dtype=dtype)
    assert isinstance(p, sae.Params)
    assert p.W1.shape == (h, n) and p.W2.shape == (n, h)
    assert p.b1.shape == (h,) and p.b2.shape == (n,)
    assert all(a.dtype == jnp.dtype(dtype) for a in p)
    r = np.sqrt(6.0 / (n + h + 1))
    assert init_radius(n, h) == pytest.approx(r)
    for W in (p.W1, p.W2):
        assert float(jnp.max(jnp.abs(W))) < r
    assert not np.any(np.asarray(p.b1)) and not np.any(np.asarray(p.b2))
    assert p.n_visible == n and p.n_hidden == h


def test_init_params_uses_the_whole_interval_and_is_seeded():
    p = sae.init_params(jax.random.key(0), 64, 25, dtype=jnp.float64)
    r = init_radius(64, 25)
    w = np.concatenate([np.ravel(p.W1), np.ravel(p.W2)])
    # uniform on (-r, r): mean ~0, std ~ r/sqrt(3), extremes near +-r
    assert abs(w.mean()) < 0.05 * r
    assert w.std() == pytest.approx(r / np.sqrt(3), rel=0.05)
    assert w.max() > 0.99 * r and w.min() < -0.99 * r
    q = sae.init_params(jax.random.key(0), 64, 25, dtype=jnp.float64)
    assert all(np.array_equal(a, b) for a, b in zip(p, q))
    s = sae.init_params(jax.random.key(1), 64, 25, dtype=jnp.float64)
    assert not np.array_equal(p.W1, s.W1)


@pytest.mark.parametrize("n,h", [(0, 5), (5, 0), (-1, 3), (2.5, 3), (True, 3)])
def test_init_params_rejects_bad_sizes(n, h):
    with pytest.raises(sae.InputError, match="n_visible|n_hidden"):
        sae.init_params(jax.random.key(0), n, h)


def test_init_params_rejects_integer_dtype():
    with pytest.raises(ValueError, match="floating"):
        sae.init_params(jax.random.key(0), 3, 2, dtype=jnp.int32)


def test_init_params_float64_without_x64_is_an_error_not_float32():
    with jax.enable_x64(False):
        with pytest.raises(sae.InputError, match=r"dtype='float64' needs 64-bit JAX.*jax_enable_x64"):
            sae.init_params(jax.random.key(0), 3, 2, dtype="float64")
        assert sae.init_params(jax.random.key(0), 3, 2).W1.dtype == jnp.float32


@pytest.mark.parametrize("key, what", [(0, "got int"), (np.zeros(3, np.uint32), r"shape \(3,\)"),
                                        (jnp.zeros(2, jnp.float32), "dtype float32"), ("seed", "got str")])
def test_init_params_rejects_a_non_key(key, what):
    # init_params(0, ...) raised a TypeError from inside jax.random
    with pytest.raises(sae.InputError, match=rf"key must be one jax.random key \(jax.random.key\(seed\).*{what}"):
        sae.init_params(key, 3, 2)


def test_init_params_accepts_typed_and_legacy_keys():
    a = sae.init_params(jax.random.key(3), 3, 2)
    b = sae.init_params(jax.random.PRNGKey(3), 3, 2)
    np.testing.assert_array_equal(a.W1, b.W1)
    jax.jit(lambda k: sae.init_params(k, 3, 2))(jax.random.key(3))  # traced keys pass


def test_theta_round_trip_matches_ufldl_order():
    n, h = 3, 2
    p = sae.init_params(jax.random.key(0), n, h, dtype=jnp.float64)
    p = p._replace(b1=jnp.array([10.0, 11.0]), b2=jnp.array([20.0, 21.0, 22.0]))
    theta = sae.params_to_theta(p)
    assert theta.shape == (2 * n * h + n + h,)
    # MATLAB's W1(:) is column-major: W1(1,1), W1(2,1), W1(1,2), ...
    W1 = np.asarray(p.W1)
    np.testing.assert_array_equal(theta[:4], [W1[0, 0], W1[1, 0], W1[0, 1], W1[1, 1]])
    np.testing.assert_array_equal(theta[-5:], [10, 11, 20, 21, 22])
    q = sae.theta_to_params(theta, n, h)
    for a, b in zip(p, q):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="theta must have shape"):
        sae.theta_to_params(theta[:-1], n, h)


def test_params_is_a_pytree_that_grad_returns():
    p = sae.init_params(jax.random.key(0), 4, 3, dtype=jnp.float64)
    g = jax.grad(lambda q: sum(jnp.sum(a) for a in q))(p)
    assert isinstance(g, sae.Params)
    doubled = jax.tree.map(lambda a: 2 * a, p)
    assert isinstance(doubled, sae.Params)


# --- issue 21: one InputError naming the argument, never an AttributeError / XLA abort ----------------


def _one_line(e, *parts):
    msg = str(e.value)
    assert "\n" not in msg, msg
    for p in parts:
        assert p in msg, msg


def test_init_params_refuses_a_size_that_cannot_fit_before_allocating():
    # 10^6 x 10^6 float32 weights: XLA aborted the process (RESOURCE_EXHAUSTED / Check failed)
    with pytest.raises(sae.InputError) as e:
        sae.init_params(jax.random.key(0), 10**6, 10**6)
    _one_line(e, "init_params(n_visible=1000000, n_hidden=1000000) in float32 needs 8000008000000 bytes (8 TB)",
              "bytes", "available", "use fewer units")
    with pytest.raises(sae.InputError) as e:
        sae.init_params(jax.random.key(0), 10**6, 10**6, tied=True)
    _one_line(e, "tied) in float32 needs 4000008000000 bytes")


def test_theta_to_params_errors_are_input_errors():
    with pytest.raises(sae.InputError) as e:
        sae.theta_to_params(np.zeros(5), 4, 2)
    _one_line(e, "theta must have shape (22,) for n_visible=4, n_hidden=2, got (5,)")
    with pytest.raises(sae.InputError) as e:
        sae.theta_to_params(np.zeros(22), 0, 2)
    _one_line(e, "n_visible must be an integer >= 1, got 0")
    with pytest.raises(sae.InputError) as e:
        sae.theta_to_params(np.zeros(22), 4, 2, tied=1)
    _one_line(e, "tied must be True or False, got 1")
    with pytest.raises(sae.InputError) as e:
        sae.theta_to_params(np.array(["a"] * 22), 4, 2)
    _one_line(e, "theta must be a floating 1-D array")


@pytest.mark.parametrize("fn", [sae.params_to_theta, sae.untie])
@pytest.mark.parametrize("params, want", [
    (None, "params must be a sae_jax.Params(W1, b1, W2, b2) of 4 arrays, got NoneType"),
    ((None, None, None, None), "got tuple"),
    (sae.Params(None, None, None, None), "params.W1 must be an array, got NoneType"),
])
def test_params_to_theta_and_untie_check_their_argument(fn, params, want):
    with pytest.raises(sae.InputError) as e:
        fn(params)
    _one_line(e, f"{fn.__name__}: ", want)
