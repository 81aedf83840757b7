r"""Derivation records: each step says *who* produced it, and every claim is a :class:`Check`.

A :class:`Step` has a ``source``:

``"definition"``
    an input of the derivation (the cost, the network), typed in.
``"sympy"``
    computed by sympy from the previous step (``diff``, delta collapse, ``cancel``...).
``"substitution"``
    a rewrite sympy cannot find by itself (e.g. :math:`\sum_i f(z^{(2)}_{p}(x^{(i)})) = m\hat\rho_p`);
    the step says what was substituted, and the substitution only fires where
    the replaced expression *is* the definition (see :mod:`derivations._sums`).
``"stated"``
    a formula typed in by hand (the tutorial's result, a claimed form). A stated
    formula is never presented as derived: it is always followed by a
    :class:`Check` that compares it with the sympy result.

Rendering: :func:`render_text` (plain text / unicode, for the terminal) and
:func:`render_latex` (Markdown with ``$$`` LaTeX blocks, for the notebook and
the docs site); :meth:`Step.latex` gives one step's LaTeX.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp

__all__ = ["Step", "Check", "Derivation", "render_text", "render_latex", "SOURCES"]

#: Plain-text steps wider than this many columns are printed as wrapped one-line text.
TEXT_WIDTH = 140

SOURCES = ("definition", "sympy", "substitution", "stated")

_TAG = {
    "definition": "definition",
    "sympy": "derived by sympy",
    "substitution": "substitution (checked)",
    "stated": "stated by hand (checked below)",
}


@dataclass(frozen=True)
class Step:
    """One line of a derivation: ``lhs = rhs`` (or just ``rhs``), with its source and a note."""

    title: str
    rhs: sp.Basic
    source: str
    lhs: sp.Basic | None = None
    note: str = ""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")

    def latex(self, display=None) -> str:
        """The step as one LaTeX equation (no surrounding ``$$``); ``display`` rewrites it for reading only."""
        lhs, rhs = self._shown(display)
        body = sp.latex(rhs)
        return body if lhs is None else f"{sp.latex(lhs)} = {body}"

    def _shown(self, display):
        if display is None:
            return self.lhs, self.rhs
        return (None if self.lhs is None else display(self.lhs)), display(self.rhs)

    def text(self, width: int = TEXT_WIDTH, display=None) -> str:
        """The step as unicode 2-D text (sympy's pretty printer), or wrapped one-line text where that is wider than ``width``."""
        lhs, rhs = self._shown(display)
        expr = rhs if lhs is None else sp.Eq(lhs, rhs, evaluate=False)
        pretty = sp.pretty(expr, use_unicode=True, wrap_line=False)
        if max(map(len, pretty.splitlines()), default=0) <= width:
            return pretty
        line = sp.sstr(rhs) if lhs is None else f"{sp.sstr(lhs)} = {sp.sstr(rhs)}"
        return "\n".join(textwrap.wrap(line, width, break_on_hyphens=False))


@dataclass(frozen=True)
class Check:
    """A verdict: ``passed`` says whether the claim held; ``detail`` says how it was decided."""

    claim: str
    passed: bool
    detail: str = ""

    def line(self) -> str:
        return f"[{'PASS' if self.passed else 'FAIL'}] {self.claim}" + (f"  ({self.detail})" if self.detail else "")


@dataclass
class Derivation:
    """A titled list of steps and the checks that decide its claims."""

    title: str
    steps: list[Step] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    #: Optional rewrite applied when *rendering* (abbreviations such as z for Σ W x + b); never used by a check.
    display: Callable | None = None
    #: What ``display`` abbreviates, printed above the steps.
    abbreviations: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def step(self, title: str, rhs, source: str, lhs=None, note: str = "") -> Step:
        s = Step(title, sp.sympify(rhs), source, lhs, note)
        self.steps.append(s)
        return s

    def check(self, claim: str, passed: bool, detail: str = "") -> Check:
        c = Check(claim, bool(passed), detail)
        self.checks.append(c)
        return c


def render_text(d: Derivation, *, show_steps: bool = True) -> str:
    """Plain-text (unicode) rendering: each step with its source tag, then the verdicts."""
    out = [d.title, "=" * len(d.title)]
    if show_steps:
        if d.abbreviations:
            out.append(f"Shown with abbreviations (display only): {d.abbreviations}")
            out.append("")
        for n, s in enumerate(d.steps, 1):
            out.append(f"({n}) {s.title}   [{_TAG[s.source]}]")
            if s.note:
                out.append(f"    {s.note}")
            out.extend("    " + line for line in s.text(display=d.display).splitlines())
            out.append("")
    out.extend(c.line() for c in d.checks)
    out.append(f"({d.seconds:.1f} s)")
    return "\n".join(out)


def render_latex(d: Derivation, *, show_steps: bool = True) -> str:
    """Markdown with one ``$$ ... $$`` block per step (renders in Jupyter and on GitHub)."""
    out = [f"### {d.title}", ""]
    if show_steps:
        if d.abbreviations:
            out.append(f"Shown with abbreviations (display only): {d.abbreviations}")
            out.append("")
        for n, s in enumerate(d.steps, 1):
            out.append(f"**({n}) {s.title}** — *{_TAG[s.source]}*" + (f". {s.note}" if s.note else ""))
            out.append("")
            out.append("$$")
            out.append(s.latex(display=d.display))
            out.append("$$")
            out.append("")
    out.extend(f"- {'✅' if c.passed else '❌'} {c.claim}" + (f" ({c.detail})" if c.detail else "") for c in d.checks)
    return "\n".join(out)
