import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sae_jax as sae
from sae_jax.cli import main
from sae_jax.gradcheck import format_table, gradcheck, relative_error
from helpers import random_problem


def test_gradcheck_rows_and_table():
    p, x = random_problem(0, 8, 4, 3)
    devices = jax.devices()[:2]  # every device is covered by the CLI test and test_backprop
    rows = gradcheck(p, x, lam=1e-3, beta=3.0, rho=0.1, n_directions=2, devices=devices)
    assert [r.array for r in rows[:5]] == ["cost", "W1", "b1", "W2", "b2"]
    assert len(rows) == 5 * len(devices)
    for r in rows:
        assert r.manual_vs_autodiff <= 1e-12
        if r.array != "cost":
            assert r.manual_vs_fd <= 1e-7 and r.autodiff_vs_fd <= 1e-7
    table = format_table(rows)
    assert "manual vs jax.grad" in table and "W1" in table and "3x4" in table


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    """The check can fail: a backprop that drops the sparsity term from delta2 is caught by FD."""
    import sae_jax.gradcheck as gc
    from sae_jax.backprop import _cost_and_grad

    def wrong(params, x, *, lam, beta, rho, output="sigmoid"):
        return _cost_and_grad(params, x, lam=lam, beta=0.0 * beta, rho=rho, output=output)

    monkeypatch.setattr(gc, "_cost_and_grad_jit", jax.jit(wrong, static_argnames=("output",)))
    p, x = random_problem(1, 8, 4, 3)
    rows = gc.gradcheck(p, x, lam=1e-3, beta=3.0, rho=0.1, n_directions=2, devices=[jax.devices()[0]])
    w1 = next(r for r in rows if r.array == "W1")
    assert w1.manual_vs_fd > 1e-3 and w1.autodiff_vs_fd <= 1e-7


def test_gradcheck_refuses_float32():
    p, x = random_problem(2, 4, 3, 2, dtype=jnp.float32)
    with pytest.raises(sae.InputError, match="float64"):
        gradcheck(p, x, lam=0.0, beta=1.0, rho=0.1)


def test_relative_error():
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert relative_error(np.array([1.0, 2.5]), np.array([1.0, 2.0])) == pytest.approx(0.25)


def test_cli_gradcheck_passes_and_prints_table(capsys):
    rc = main(["gradcheck", "--m", "50", "--n-visible", "6", "--n-hidden", "4", "--directions", "2", "--data", "random"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "PASS" in out and "manual vs jax.grad" in out


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["gradcheck", "--rho", "1.5"], "rho must be in (0, 1)"),
        (["gradcheck", "--beta", "-1"], "beta must be >= 0"),
        (["gradcheck", "--n-hidden", "0"], "n_hidden must be an integer >= 1"),
        (["gradcheck", "--m", "0"], "--m must be >= 1"),
    ],
)
def test_cli_gradcheck_bad_input_exit_2(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
