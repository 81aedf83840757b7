"""sae_jax._src.objective: a value-and-gradient function as a value function whose jax.grad is that gradient."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np

import sae_jax as sae
from helpers import assert_tree_close, random_problem
from sae_jax._src.objective import value_with_grad

HP = dict(lam=1e-3, beta=3.0, rho=0.1)


def test_grad_is_the_given_gradient_not_autodiff():
    # a deliberately "wrong" gradient: jax.grad must return it, not the derivative of the value
    value = value_with_grad(lambda w: (jnp.sum(w * w), 3 * w))
    J, g = jax.value_and_grad(value)(jnp.array([1.0, 2.0]))
    assert float(J) == 5.0 and g.tolist() == [3.0, 6.0]


def test_manual_backprop_with_data_and_aux_under_jit():
    p, x = random_problem(0, 12, 5, 3)

    def value_and_grad(params, batch):
        terms, grads = sae.cost_terms_and_grad(params, batch, **HP)
        return (terms.cost, terms), grads

    value = value_with_grad(value_and_grad, has_aux=True)
    J, g = jax.jit(jax.value_and_grad(value))(p, x)
    J_ref, g_ref = sae.cost_and_grad(p, x, **HP)
    np.testing.assert_allclose(float(J), float(J_ref), rtol=1e-14)
    assert_tree_close(g, g_ref, 1e-13)
    # the data are passed by name too (optax's line searches call value_fn(params, batch=...))
    assert list(inspect.signature(value).parameters) == ["params", "batch"]
    np.testing.assert_allclose(float(value(p, batch=x)), float(J_ref), rtol=1e-14)


def test_promoted_parameters_take_the_data_along():
    # optax's line searches hand float64 trial points for float32 parameters under x64: the data
    # are cast up (what JAX's promotion computed), so the public functions' dtype check holds
    p32, x32 = random_problem(1, 8, 4, 3, dtype=jnp.float32)
    p64 = jax.tree.map(lambda a: a.astype(jnp.float64), p32)
    value = value_with_grad(lambda params, batch: sae.cost_and_grad(params, batch, **HP))
    J, g = jax.value_and_grad(value)(p64, x32)
    J_ref, g_ref = sae.cost_and_grad(p64, x32.astype(jnp.float64), **HP)
    assert J.dtype == jnp.float64
    np.testing.assert_allclose(float(J), float(J_ref), rtol=1e-15)
    assert_tree_close(g, g_ref, 1e-15)
