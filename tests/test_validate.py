"""Every bad input named in the core issue raises one clear InputError, before anything is traced."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sae_jax as sae
from sae_jax._src import validate
from helpers import random_problem

HP = dict(lam=1e-4, beta=3.0, rho=0.01)
ENTRY_POINTS = [sae.cost, sae.cost_terms, sae.cost_and_grad, sae.cost_terms_and_grad, sae.autodiff_cost_and_grad]


@pytest.fixture(scope="module")
def problem():
    return random_problem(0, 6, 5, 3)


def _raises(fn, p, x, match, **kw):
    hp = {**HP, **kw}
    with pytest.raises(sae.InputError, match=match) as info:
        fn(p, x, **hp)
    assert "\n" not in str(info.value)  # one line
    return info


@pytest.mark.parametrize("fn", ENTRY_POINTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(rho=0.0), r"rho must be in \(0, 1\).*got 0.0"),
        (dict(rho=1.0), r"rho must be in \(0, 1\)"),
        (dict(rho=1.5), r"rho must be in \(0, 1\).*1.5"),
        (dict(rho=-0.1), r"rho must be in \(0, 1\)"),
        (dict(rho=float("nan")), r"rho must be finite"),
        (dict(beta=-1.0), r"beta must be >= 0, got -1.0"),
        (dict(beta=float("inf")), r"beta must be finite"),
        (dict(lam=-1e-4), r"lam must be >= 0"),
        (dict(lam=jnp.array([1e-4, 1e-3])), r"lam must be a scalar, got shape \(2,\)"),
        (dict(rho="0.1"), r"rho must be a real scalar"),
        (dict(beta=None), r"beta must be a real scalar"),
        (dict(output="relu"), r"output must be one of \('sigmoid', 'linear'\), got 'relu'"),
    ],
)
def test_bad_hyperparameters(fn, problem, kw, match):
    p, x = problem
    _raises(fn, p, x, match, **kw)


@pytest.mark.parametrize("fn", [sae.cost, sae.cost_and_grad], ids=lambda f: f.__name__)
def test_bad_data(fn, problem):
    p, x = problem
    _raises(fn, p, x[0], r"x must be 2-D \(m, n_visible\).*shape \(5,\).*x\[None, :\]")
    _raises(fn, p, x[:, :4], r"x must have shape \(m, 5\) to match params \(n_visible=5\), got \(6, 4\)")
    _raises(fn, p, x.T[:5], r"samples look like columns")
    _raises(fn, p, x[:0], r"at least one sample")
    _raises(fn, p, x.astype(jnp.float32), r"x must have the same dtype as params \(float64\), got float32")
    _raises(fn, p, x.astype(jnp.int32), r"same dtype as params")
    _raises(fn, p, x.at[2, 3].set(jnp.nan), r"x must be finite, but has 1 non-finite value\(s\) \(first nan at index \(2, 3\)\)")
    _raises(fn, p, x.at[0, 0].set(jnp.inf), r"x must be finite")
    _raises(fn, p, np.asarray(x.at[1, 1].set(-jnp.inf)), r"x must be finite")
    _raises(fn, p, x + 0.5, r"x must lie in \[0, 1\] for output='sigmoid'.*use output='linear'")
    _raises(fn, p, np.asarray(x) - 0.5, r"x must lie in \[0, 1\]")
    _raises(fn, p, [[0.5] * 5], r"x must be an array")
    # outside [0, 1] is fine for the linear decoder; NaN is not
    fn(p, x + 0.5, **HP, output="linear")
    _raises(fn, p, x.at[0, 0].set(jnp.nan), r"x must be finite", output="linear")


@pytest.mark.parametrize("fn", [sae.cost, sae.cost_and_grad], ids=lambda f: f.__name__)
def test_bad_params(fn, problem):
    p, x = problem
    _raises(fn, p[:3], x, r"params must be a sae_jax\.Params\(W1, b1, W2, b2\)")
    # a plain 4-tuple used to reach params.W1 (AttributeError): say what is expected
    _raises(fn, tuple(p), x, r"must be a sae_jax\.Params\(W1, b1, W2, b2\).*got tuple; wrap it: sae_jax\.Params\(\*params\)")
    # non-finite parameters are rejected like non-finite data (they gave a NaN cost)
    _raises(fn, p._replace(b1=p.b1.at[1].set(jnp.nan)), x, r"params\.b1 must be finite, but has 1 non-finite value\(s\) \(first nan at index \(1,\)\)")
    _raises(fn, p._replace(W2=np.asarray(p.W2.at[0, 0].set(-jnp.inf))), x, r"params\.W2 must be finite")
    _raises(fn, p._replace(W1=p.W1[0]), x, r"params.W1 must be 2-D")
    _raises(fn, p._replace(b1=p.b1[:2]), x, r"params.b1 must have shape \(3,\).*got \(2,\)")
    _raises(fn, p._replace(W2=p.W2.T), x, r"params.W2 must have shape \(5, 3\)")
    _raises(fn, p._replace(b2=p.b2[:, None]), x, r"params.b2 must have shape \(5,\)")
    _raises(fn, p._replace(W2=p.W2.astype(jnp.float32)), x, r"params.W2 must have the same dtype as params.W1")
    _raises(fn, p._replace(W1="W1"), x, r"params.W1 must be an array")
    ip = jax.tree.map(lambda a: a.astype(jnp.int32), p)
    _raises(fn, ip, x.astype(jnp.int32), r"params must be floating point")


def test_shape_checks_run_under_jit_and_value_checks_do_not_break_tracing(problem):
    p, x = problem
    with pytest.raises(sae.InputError, match="x must have shape"):
        jax.jit(lambda p, x: sae.cost(p, x, **HP))(p, x[:, :4])
    # traced hyperparameters: values cannot be checked there, shapes still are
    f = jax.jit(lambda r: sae.cost(p, x, lam=1e-4, beta=3.0, rho=r))
    assert np.isfinite(float(f(0.2)))
    with pytest.raises(sae.InputError, match="rho must be a scalar"):
        jax.vmap(lambda r: sae.cost(p, x, lam=1e-4, beta=3.0, rho=r))(jnp.ones((3, 2)) * 0.1)
    # check_call before tracing catches values the traced call cannot
    with pytest.raises(sae.InputError, match="rho must be in"):
        validate.check_call(p, x, lam=1e-4, beta=3.0, rho=2.0)


def test_valid_inputs_pass_all_checks(problem):
    p, x = problem
    validate.check_call(p, x, **HP)
    validate.check_call(p, np.asarray(x), lam=0, beta=0, rho=np.float32(0.5))
    validate.check_call(p, jnp.zeros_like(x), lam=jnp.array(0.0), beta=1, rho=1e-6)
    validate.check_call(p, jnp.ones_like(x), **HP)


def test_input_error_is_a_value_error():
    assert issubclass(sae.InputError, ValueError)


# --- hyperparameters as the cost uses them: cast to the parameters' dtype --------------


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(rho=0.99999999), r"rho=0\.99999999 is 1\.0 in float32, where rho must be a normal number"),
        (dict(rho=1e-46), r"rho=1e-46 is 0\.0 in float32"),
        (dict(rho=1e-40), r"rho=1e-40 is .* in float32"),  # subnormal: flushed to zero by XLA
        (dict(lam=1e39), r"lam=1e\+39 overflows float32"),
        (dict(beta=1e39), r"beta=1e\+39 overflows float32"),
    ],
)
def test_hyperparameters_are_checked_in_the_parameters_dtype(problem, kw, match):
    # These pass a float64 check but round to 1, 0 or inf in float32, where the cost was NaN/inf.
    p, x = problem
    p32 = jax.tree.map(lambda a: a.astype(jnp.float32), p)
    for fn in (sae.cost, sae.cost_and_grad, sae.autodiff_cost_and_grad):
        _raises(fn, p32, x.astype(jnp.float32), match, **kw)
    with pytest.raises(sae.InputError, match=match):
        validate.check_hyperparams(**{**HP, **kw}, dtype="float32")
    # the same values are fine in float64, where they are representable
    assert np.isfinite(float(sae.cost(p, x, **{**HP, **kw})))


def test_the_float32_range_edges_pass(problem):
    p, x = problem
    p32, x32 = jax.tree.map(lambda a: a.astype(jnp.float32), p), x.astype(jnp.float32)
    top = float(np.nextafter(np.float32(1), np.float32(0)))
    autodiff = jax.jit(jax.grad(lambda q, r: sae.cost(q, x32, lam=1e-4, beta=3.0, rho=r)))
    for rho in (float(np.finfo(np.float32).tiny), top):
        validate.check_hyperparams(lam=1e-4, beta=3.0, rho=rho, dtype="float32")  # the edges pass
        J, g = sae.cost_and_grad(p32, x32, lam=1e-4, beta=3.0, rho=rho)
        gj = autodiff(p32, jnp.float32(rho))
        assert np.isfinite(float(J)) and all(np.isfinite(np.asarray(a)).all() for a in (*g, *gj))


def test_jitted_entry_points_check_values_inside_the_call_and_each_data_array_once():
    """The array values are reduced inside the compiled call (one transfer of four numbers); a
    jax.Array of data that passed is not reduced again (immutable), a numpy array is every call."""
    p, x = random_problem(3, 12, 5, 3)
    assert isinstance(x, jax.Array)
    for fn in (sae.cost_and_grad, sae.cost_terms_and_grad, sae.autodiff_cost_and_grad):
        fn(p, x, **HP)
    assert validate.data_checked(x, "sigmoid") and not validate.data_checked(x, "linear")
    assert not validate.data_checked(x + 0, "sigmoid")  # another array
    xn = np.array(x)
    sae.cost_and_grad(p, xn, **HP)
    xn[2, 1] = np.nan  # numpy arrays are mutable: checked again
    _raises(sae.cost_and_grad, p, xn, r"x must be finite, but has 1 non-finite value\(s\) \(first nan at index \(2, 1\)\)")
    xn[2, 1] = 1.5
    _raises(sae.cost_and_grad, p, xn, r"x must lie in \[0, 1\] for output='sigmoid'")
    bad = p._replace(b2=p.b2.at[1].set(jnp.inf))  # parameters are checked on every call
    _raises(sae.cost_and_grad, bad, x, r"params\.b2 must be finite")
    # inside the caller's jit the values are tracers: shapes only, and the result is a tracer
    J = jax.jit(lambda q: sae.cost_and_grad(q, x, **HP)[0])(p)
    assert np.isfinite(float(J))


# --- issue 21 -----------------------------------------------------------------------------------


def test_check_fits_in_memory_states_both_sizes_in_bytes():
    validate.check_fits_in_memory("a small array", 800)
    with pytest.raises(validate.InputError) as e:
        validate.check_fits_in_memory("x (10**12, 64) float64", 8 * 64 * 10**12, hint="; use less")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("x (10**12, 64) float64 needs 512000000000000 bytes (512 TB), more than the ")
    assert msg.endswith("available in memory; use less")


@pytest.mark.parametrize("lam", [10**30, -(10**400)])
def test_a_python_int_hyperparameter_too_large_for_jax_is_one_input_error(lam):
    # jit raised OverflowError parsing it, from inside the checked call
    p = sae.init_params(jax.random.key(0), 4, 2)
    x = jnp.full((3, 4), 0.5, jnp.float32)
    with pytest.raises(validate.InputError) as e:
        sae.cost_and_grad(p, x, lam=lam, beta=3.0, rho=0.1)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("lam=") and "is a Python int outside JAX's int" in msg
    assert msg.endswith("; pass it as a float")
    assert "(an int of " in msg  # a huge int is abbreviated, not printed in full
    sae.cost_and_grad(p, x, lam=float(10**30) * 0 + 1e-4, beta=3, rho=0.1)  # small ints and floats pass
