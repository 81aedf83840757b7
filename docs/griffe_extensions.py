"""griffe extensions for the docs build (mkdocs.yml's mkdocstrings ``extensions``).

:class:`GroupedParameters`: Google-style ``a, b, c: description`` entries. sae-jax's docstrings
document parameters that share a meaning on one line (``lam, beta, rho: the hyperparameters``). griffe's Google parser takes ``lam, beta, rho`` for one name, warns that it is not in
the signature, and ``mkdocs build --strict`` fails. This extension parses such docstrings without that
one warning and checks every name of every entry itself, so a grouped entry renders as one row and a
name that really is not a parameter still fails the build (same message as griffe's).

:class:`SphinxRoles`: the docstrings use Sphinx roles (``:func:`cost```, ``:math:`\\hat\\rho```), which
Markdown would show literally: a role becomes inline code (``~`` keeps the last name, as Sphinx) and
``:math:`` inline math (arithmatex, rendered by MathJax). Only what is rendered changes, not the source.

:class:`RuntimeReexports`: a package whose ``__init__`` does ``from .probes import probes`` has, at run
time, the function as its attribute ``probes`` (the import rebinds the name); griffe's static view keeps
the submodule. A public module's re-export of such a name is pointed at what Python gives the user.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_GROUPED = re.compile(r"^\s+\w+(?:, \w+)+:", flags=re.M)
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc|const):`(~?)([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")


def _markdown(text: str) -> str:
    """Sphinx roles as Markdown: ``:func:`x``` -> ```x```, ``:math:`x``` -> ``\\(x\\)``."""
    text = _ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)
    return _MATH.sub(lambda m: f"\\({m.group(1)}\\)", text)


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _markdown(obj.docstring.value)


class GroupedParameters(griffe.Extension):
    def on_function_instance(self, *, func: griffe.Function, **kwargs: Any) -> None:
        docstring = func.docstring
        if docstring is None or docstring.parser is None or not _GROUPED.search(docstring.value):
            return
        docstring.value = _markdown(docstring.value)  # whichever hook runs first
        options = {**docstring.parser_options, "warn_unknown_params": False}
        sections = docstring.parse(**options)
        known = {p.name for p in func.parameters}
        for section in sections:
            if section.kind is not griffe.DocstringSectionKind.parameters:
                continue
            for entry in section.value:
                for name in entry.name.split(", "):
                    if name.lstrip("*") not in known:
                        griffe.docstring_warning(docstring, 0, f"Parameter '{name}' does not appear in the function signature")
        docstring.__dict__["parsed"] = sections  # the cached_property's slot: rendered as parsed here


class RuntimeReexports(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != "sae_jax":
            return
        for module in (pkg, *pkg.modules.values()):
            for name, member in list(module.members.items()):
                if not member.is_alias or name not in (module.exports or ()):
                    continue
                try:
                    target = member.final_target
                except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                    continue
                shadowing = target.members.get(name) if target.is_module else None
                if shadowing is not None and not shadowing.is_module:
                    module.set_member(name, griffe.Alias(name, shadowing, parent=module))
