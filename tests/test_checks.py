"""The one home of input checking (sae_jax._src.checks): the decorator over the public math
functions refuses a wrong call in one line naming the keywords (issue 21), and crafted results
files refused in one line."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sae_jax as sae
from sae_jax import metrics, scale, softmax, stacked
from sae_jax.check import check_results
from sae_jax.cli import main
from sae_jax._src.checks.errors import CallError

P = sae.init_params(jax.random.key(0), 4, 2)
X = jnp.full((3, 4), 0.5, jnp.float32)
HP = dict(lam=1e-4, beta=3.0, rho=0.1)
SP = softmax.SoftmaxParams(jnp.zeros((3, 4), jnp.float32))
Y = jnp.array([0, 1, 2])
STACK = stacked.StackedParams((P,), softmax.SoftmaxParams(jnp.zeros((3, 2), jnp.float32)))

AUTOENCODER = [sae.cost, sae.cost_terms, sae.cost_and_grad, sae.cost_terms_and_grad, sae.autodiff_cost_and_grad,
               scale.chunked_cost, scale.chunked_cost_terms, scale.chunked_cost_and_grad,
               scale.chunked_cost_terms_and_grad]


def _one_line(call, *fragments):
    with pytest.raises(CallError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert isinstance(info.value, sae.InputError) and isinstance(info.value, TypeError)
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


@pytest.mark.parametrize("fn", AUTOENCODER, ids=lambda f: f.__name__)
def test_positional_hyperparameters_name_the_keywords(fn):
    n = fn.__name__
    msg = _one_line(lambda: fn(P, X, 1e-4, 3.0, 0.1), f"{n} takes the hyperparameters as keywords:",
                    "*, lam, beta, rho, ...", "got 3 positional arguments after ",
                    "lam=..., beta=..., rho=...)")
    assert msg.startswith(n)
    _one_line(lambda: fn(P, X, 1e-4, beta=3.0, rho=0.1), "got 1 positional argument after ", "name it:", "lam=...)")


@pytest.mark.parametrize("fn", AUTOENCODER, ids=lambda f: f.__name__)
def test_a_missing_or_unknown_keyword_is_named(fn):
    _one_line(lambda: fn(P, X, lam=1e-4, beta=3.0), "missing the keyword rho (pass rho=...)")
    _one_line(lambda: fn(P, X, beta=3.0), "missing the keywords lam, rho (pass lam=..., rho=...)")
    _one_line(lambda: fn(P, X, lambd=1e-4, beta=3.0, rho=0.1), "unknown keyword 'lambd'")


@pytest.mark.parametrize(
    "call,fragments",
    [
        (lambda: sae.kl_sparsity_penalty(X, 0.1), ("kl_sparsity_penalty(activations, *, rho, ...)", "rho=...)")),
        (lambda: sae.kl_sparsity_penalty(X), ("missing the keyword rho",)),
        (lambda: softmax.softmax_cost(SP, X, Y, 1e-3), ("softmax_cost(params, x, y, *, lam)", "after y", "lam=...)")),
        (lambda: softmax.softmax_cost_and_grad(SP, X, Y), ("missing the keyword lam",)),
        (lambda: stacked.stacked_cost(STACK, X, Y, 1e-3), ("stacked_cost(stack, x, y, *, lam)",)),
        (lambda: stacked.stacked_cost_and_grad(STACK, X, Y), ("missing the keyword lam",)),
        (lambda: sae.corrupt(jax.random.key(0), X, "mask", 0.1), ("corrupt(key, x, *, kind, level)", "kind=..., level=...")),
        (lambda: sae.decode(P, X[:, :2], "linear"), ("decode takes its options as keywords", "output=...")),
        (lambda: metrics.evaluate(P, X, 1e-4, 3.0, 0.1), ("evaluate(params, x, *, lam, beta, rho, ...)",)),
        (lambda: sae.cost_and_grad(P), ("cost_and_grad is called as cost_and_grad(params, x, *, lam, beta, rho, ...)",
                                        "; missing x")),
    ],
)
def test_other_public_functions_name_their_keywords(call, fragments):
    _one_line(call, *fragments)


def test_valid_calls_by_keyword_pass_through():
    J, g = sae.cost_and_grad(params=P, x=X, **HP)  # positional parameters named: fine
    assert float(J) == float(sae.cost_and_grad(P, X, **HP)[0])
    assert float(sae.kl_sparsity_penalty(X[:, :2], rho=0.1)) >= 0


def test_the_decorator_keeps_the_signature_for_jit_and_docs():
    assert list(inspect.signature(sae.cost_and_grad).parameters)[:5] == ["params", "x", "lam", "beta", "rho"]
    kernel = jax.jit(sae.cost_and_grad, static_argnames="output")
    np.testing.assert_array_equal(kernel(P, X, **HP)[0], sae.cost_and_grad(P, X, **HP)[0])
    assert sae.cost_and_grad.__doc__.startswith("Cost and gradient")


def test_under_a_trace_a_wrong_call_is_refused_at_trace_time():
    with pytest.raises(CallError, match="got 3 positional arguments after x"):
        jax.jit(lambda p: sae.cost(p, X, 1e-4, 3.0, 0.1))(P)


@pytest.mark.parametrize("depth", [100_000, 3_000])
def test_deeply_nested_json_results_are_one_input_error_naming_the_file(tmp_path, capsys, depth):
    path = tmp_path / "deep.json"
    path.write_text('{"probes": {"sigmoid_m1": {"cost": ' + "[" * depth + "1" + "]" * depth + "}}}")
    with pytest.raises(sae.InputError, match=r"results file '.*deep\.json' is JSON nested too deeply to read"):
        check_results(str(path))
    assert main(["check", "--results", str(path)]) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and "deep.json" in err and "nested too deeply" in err, err


def test_a_nested_list_at_the_top_is_refused_too(tmp_path):
    path = tmp_path / "top.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(sae.InputError, match="nested too deeply"):
        check_results(str(path))


TRACED = [
    (sae.cost, (P, X), HP), (sae.cost_terms, (P, X), HP), (sae.cost_and_grad, (P, X), HP),
    (sae.cost_terms_and_grad, (P, X), HP), (sae.autodiff_cost_and_grad, (P, X), HP),
    (softmax.softmax_cost, (SP, X, Y), dict(lam=1e-3)), (softmax.softmax_cost_and_grad, (SP, X, Y), dict(lam=1e-3)),
    (softmax.softmax_probabilities, (SP, X), {}), (softmax.softmax_predict, (SP, X), {}),
    (stacked.stacked_cost, (STACK, X, Y), dict(lam=1e-3)), (stacked.stacked_cost_and_grad, (STACK, X, Y), dict(lam=1e-3)),
    (stacked.stacked_predict, (STACK, X), {}), (sae.kl_sparsity_penalty, (X,), dict(rho=0.1)),
    (sae.forward, (P, X), {}), (sae.decode, (P, X[:, :2]), dict(output="linear")),
]


@pytest.mark.parametrize("fn,args,kw", TRACED, ids=[f.__name__ for f, _, _ in TRACED])
def test_under_a_trace_the_decorated_function_is_the_bare_math(fn, args, kw):
    """The decorator (sae_jax._src.checks.fused.entry) stages nothing: under jit and grad the
    public function's program is its undecorated body's (``__wrapped__``)."""
    bare = fn.__wrapped__
    assert bare is not fn

    def first_leaf(out):
        return jax.tree.leaves(out)[0]

    jit_of = lambda f: jax.make_jaxpr(lambda *a: f(*a, **kw))(*args)  # noqa: E731
    assert str(jit_of(fn)) == str(jit_of(bare))
    floating = jnp.issubdtype(jnp.result_type(first_leaf(fn(*args, **kw))), jnp.floating)
    if floating:
        grad_of = lambda f: jax.make_jaxpr(  # noqa: E731
            jax.grad(lambda a0: jnp.sum(first_leaf(f(a0, *args[1:], **kw)))))(args[0])
        assert str(grad_of(fn)) == str(grad_of(bare))
