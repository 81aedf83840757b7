r"""Small, explicit tools for sums over symbolic ranges (``sympy.Sum`` with ``IndexedBase``).

sympy 1.14 differentiates ``Sum``/``Indexed`` expressions correctly (the result
carries ``KroneckerDelta`` factors) but will not tidy the result by itself, and
two of its own tools cannot be trusted here:

- ``Sum.doit()`` returns a *wrong* closed form for the nested sums of the
  reconstruction term (reproducible at m = 3), so it is never called;
- ``simplify`` on sums is slow and leaves ``Piecewise`` guards.

So every step is done by a named function below, each one an equivalence
transformation that is valid under the stated index ranges:

:func:`collapse_deltas`
    :math:`\sum_{v=a}^{b} \delta_{v t} g(v) = g(t)` for :math:`a \le t \le b`
    (``deltasummation(..., no_piecewise=True)``; the range assumption is the
    one stated by the caller, e.g. :math:`0 \le p < h`).
:func:`split_sums`
    :math:`\sum_v (c\,u_v + w_v) = c \sum_v u_v + \sum_v w_v` for :math:`c`
    free of :math:`v` (linearity; no closed forms are invented, except
    :math:`\sum_{v=a}^{b} 1 = b - a + 1`).
:func:`canonical`
    renames bound indices by their range and nesting depth (alpha-renaming), so
    equal sums compare equal as sympy objects.
:func:`substitute_sum`
    replaces a sum by a name *only where the sum is identical*, after
    canonical renaming, to the name's definition (e.g.
    :math:`\sum_i f(z^{(2)}_{p}(x^{(i)})) \to m \hat\rho_p`).
:func:`is_zero`
    decides "expression == 0" by normalising, treating each distinct
    canonical sum as an opaque symbol, and cancelling the rational function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import sympy as sp
from sympy.concrete.delta import deltasummation

__all__ = [
    "collapse_deltas",
    "split_sums",
    "canonical",
    "normalize",
    "substitute_sum",
    "is_zero",
    "sums_in",
    "collect_sums",
]


def _sum_term(term: sp.Expr, limit) -> sp.Expr:
    r"""``Sum(term, limit)`` with the factors free of the index pulled out (:math:`\sum_v c\,u_v = c \sum_v u_v`)."""
    v, a, b = limit
    inside, outside = [], []
    for factor in sp.Mul.make_args(term):
        (inside if v in factor.free_symbols else outside).append(factor)
    if not inside:
        return sp.Mul(*outside) * (b - a + 1)
    return sp.Mul(*outside) * sp.Sum(sp.Mul(*inside), limit)


def _map_args(e: sp.Basic, fn: Callable[[sp.Basic], sp.Basic]) -> sp.Basic:
    if not e.args or isinstance(e, (sp.Indexed, sp.IndexedBase, sp.Symbol, sp.KroneckerDelta)):
        return e
    return e.func(*[fn(a) for a in e.args])


def split_sums(e: sp.Basic) -> sp.Basic:
    """Expand every summand, split sums over ``+`` and pull index-free factors out (bottom up).

    A multi-limit ``Sum(f, (v1, ...), (v2, ...))`` is a nested sum with ``v1``
    innermost (sympy merges directly nested sums into one object this way).
    """
    if isinstance(e, sp.Sum):
        body = split_sums(e.function)
        for lim in e.limits:
            body = sp.Add(*[_sum_term(t, lim) for t in sp.Add.make_args(sp.expand(body))])
        return body
    return _map_args(e, split_sums)


def collapse_deltas(e: sp.Basic) -> sp.Basic:
    r"""Carry out every sum over a ``KroneckerDelta`` of its own index, bottom up.

    ``deltasummation(term, (v, a, b), no_piecewise=True)`` returns the term at
    :math:`v = t` for a factor :math:`\delta_{vt}`, *assuming* :math:`a \le t \le b`
    (no ``Piecewise`` guard). That assumption is the stated range of the free
    index (e.g. :math:`0 \le p \le h - 1`), so the caller must only use it for
    free indices inside the summation range. Terms without such a delta are
    split as in :func:`split_sums`, so deltas of outer indices float outwards.
    """
    if isinstance(e, sp.Sum):
        body = collapse_deltas(e.function)
        for lim in e.limits:
            v = lim[0]
            out = []
            for t in sp.Add.make_args(sp.expand(body)):
                if any(v in d.free_symbols for d in t.atoms(sp.KroneckerDelta)):
                    out.append(deltasummation(t, lim, no_piecewise=True))
                else:
                    out.append(_sum_term(t, lim))
            body = sp.Add(*out)
        return body
    return _map_args(e, collapse_deltas)


def canonical(e: sp.Basic, names: Mapping[sp.Expr, Sequence[str]], _depth=None) -> sp.Basic:
    """Rename every bound index after its range and how many enclosing sums share that range.

    ``names`` maps a range's upper limit (e.g. ``m - 1``) to the index names to
    use at nesting depth 0, 1, ... for that range; e.g. ``{m - 1: ("i", "i'")}``
    (other ranges get generic names).
    Two alpha-equivalent sums become the same sympy object.
    """
    depth = dict(_depth or {})
    if isinstance(e, sp.Sum):
        body = e.function
        limits = []
        for v, a, b in reversed(e.limits):  # outermost first
            key = sp.sympify(b)
            level = depth.get(key, 0)
            choices = names.get(key, ())
            # a range without given names (or nested deeper than given) gets a generic, still canonical, name
            name = choices[level] if level < len(choices) else f"_{level}_{sp.sstr(key)}"
            new = sp.Symbol(name, integer=True)
            depth[key] = level + 1
            body = body.xreplace({v: new})
            limits.append((new, a, b))
        return sp.Sum(canonical(body, names, depth), *reversed(limits))
    return _map_args(e, lambda a: canonical(a, names, depth))


def normalize(e: sp.Basic, names: Mapping[sp.Expr, Sequence[str]]) -> sp.Expr:
    """:func:`split_sums`, then :func:`canonical`, then expand: a form in which equal sums are equal objects."""
    return sp.expand(canonical(split_sums(sp.expand(e)), names))


def sums_in(e: sp.Basic) -> list[sp.Sum]:
    """The outermost ``Sum`` objects in ``e`` (not those nested inside another sum)."""
    if isinstance(e, sp.Sum):
        return [e]
    out: list[sp.Sum] = []
    for a in e.args:
        for s in sums_in(a):
            if s not in out:
                out.append(s)
    return out


def substitute_sum(
    e: sp.Basic,
    definition: Callable[[sp.Expr], sp.Expr],
    name: Callable[[sp.Expr], sp.Expr],
    candidates: Sequence[sp.Expr],
    names: Mapping[sp.Expr, Sequence[str]],
) -> tuple[sp.Basic, int]:
    """Replace each sum equal to ``definition(t)`` (for some ``t`` in ``candidates``) by ``name(t)``.

    Equality is sympy object identity after :func:`canonical` renaming of both
    sides, so the substitution only fires where the sum *is* the definition.
    Returns ``(new_expression, number_of_replacements)``.
    """
    targets = {canonical(definition(t), names): name(t) for t in candidates}
    count = 0

    def visit(x: sp.Basic) -> sp.Basic:
        nonlocal count
        if isinstance(x, sp.Sum):
            c = canonical(x, names)
            if c in targets:
                count += 1
                return targets[c]
        return _map_args(x, visit)

    return visit(e), count


def is_zero(e: sp.Basic, names: Mapping[sp.Expr, Sequence[str]]) -> bool:
    """Exactly decide ``e == 0`` for a rational function of sums, indexed symbols and opaque functions.

    After :func:`normalize`, each distinct outermost sum is replaced by a fresh
    symbol and the result is cancelled. A zero is an identity in those symbols
    and therefore holds for every value of the sums; a nonzero result means the
    normal forms differ (it is never reported as a proof).
    """
    n = normalize(e, names)
    rep = {s: sp.Dummy(f"S{k}") for k, s in enumerate(sums_in(n))}
    return sp.cancel(sp.expand(n.xreplace(rep))) == 0


def collect_sums(e: sp.Basic, names: Mapping[sp.Expr, Sequence[str]]) -> sp.Expr:
    """:func:`normalize`, then group the terms by distinct sum and cancel each coefficient (a tidier, equal form)."""
    n = normalize(e, names)
    sums = sums_in(n)
    rep = {s: sp.Dummy(f"S{k}") for k, s in enumerate(sums)}
    back = {v: k for k, v in rep.items()}
    collected = sp.collect(sp.expand(n.xreplace(rep)), list(rep.values()), evaluate=False)
    return sp.Add(*[sp.factor(sp.cancel(c)).xreplace(back) * k.xreplace(back) for k, c in collected.items()])
