"""The error-code catalogue (``policy/problems.yaml``): each problem type's title, status,
meaning and what to do. An error's ``type`` is :data:`kit.errors.PROBLEM_TYPE_BASE` +
its code, a relative reference (RFC 9457 3.1.1) that resolves against the URL the client
asked, the gateway's, which serves the catalogue there (:mod:`gateway.problems`).

One spelling for every code (:data:`CODE_STYLE`: lower-case words joined by hyphens),
except OAuth 2.0's own error codes (:data:`OAUTH_CODES`, RFC 6749 5.2), which keep the
RFC's. A code once spelt otherwise keeps its old spelling as an alias (``aliases``), whose
page redirects to the code's own.

:func:`emitted_codes` finds, in the code, every code an app can answer (each
:class:`~kit.errors.DomainError` subclass, every ``problem(status, code=...)`` and every
refusal of the gateway) with its statuses and the apps answering it;
``python -m kit.problem_types`` prints README's table of them
(``tests/security/test_http_standards.py`` checks README and the catalogue against it).
"""

from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kit.errors import DomainError
from kit.settings import REPO_ROOT

__all__ = [
    "CATALOGUE_PATH",
    "CODE_STYLE",
    "OAUTH_CODES",
    "Emitted",
    "ProblemCatalogue",
    "ProblemType",
    "codes_table",
    "emitted_codes",
    "load_problem_catalogue",
]

CATALOGUE_PATH: Final = REPO_ROOT / "policy" / "problems.yaml"
CODE_STYLE: Final = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
#: RFC 6749 section 5.2's error codes, spelt as the RFC does (clients match them as such).
OAUTH_CODES: Final = frozenset(
    {"invalid_request", "invalid_client", "invalid_grant", "invalid_scope",
     "unauthorized_client", "unsupported_grant_type"}
)  # fmt: skip
PACKAGES: Final = ("kit", "gateway", "services")


class ProblemType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1)
    status: list[int] = Field(min_length=1)
    meaning: str = Field(min_length=1)
    action: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)


class ProblemCatalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    types: dict[str, ProblemType]

    @model_validator(mode="after")
    def _one_spelling(self) -> ProblemCatalogue:
        for code, entry in self.types.items():
            if code not in OAUTH_CODES and not CODE_STYLE.match(code):
                raise ValueError(f"{code!r}: codes are lower-case words joined by hyphens")
            for alias in entry.aliases:
                if alias in self.types:
                    raise ValueError(f"{code!r}: the alias {alias!r} is a code of its own")
        return self

    @property
    def aliases(self) -> dict[str, str]:
        """Old spelling -> the code."""
        return {alias: code for code, entry in self.types.items() for alias in entry.aliases}


@functools.cache
def load_problem_catalogue(path: Path = CATALOGUE_PATH) -> ProblemCatalogue:
    """The catalogue, read and checked once (a bad file raises ``ValidationError``)."""
    return ProblemCatalogue.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- from the code


@dataclass
class Emitted:
    """One code as the code answers it."""

    statuses: set[int] = field(default_factory=set)
    #: Where it is answered: ``gateway``, ``identity``, ``orders``, ``consent``,
    #: ``transfer``, or ``every app`` (the kit's).
    apps: set[str] = field(default_factory=set)


def _app_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "services" and len(parts) > 1:
        return parts[1]
    return "gateway" if parts[0] == "gateway" else "every app"


def _modules() -> Iterator[str]:
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if ".migrations" not in info.name and not info.name.endswith("__main__"):
                yield info.name


def _subclasses(cls: type[DomainError]) -> Iterator[type[DomainError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _literal(node: ast.expr | None) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


def _in_source(found: dict[str, Emitted]) -> None:
    """Codes written at call sites: ``problem(status, code="...")``, and the gateway's
    refusals (``Refused(status, reason, code=...)``; without ``code`` the reason with
    dashes, as :class:`gateway.handler.Refused` makes it)."""
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                keywords = {keyword.arg: keyword.value for keyword in node.keywords}
                status = _literal(node.args[0]) if node.args else None
                code = _literal(keywords.get("code"))
                if name in ("Refused", "_refuse_header") and len(node.args) > 1:
                    reason = _literal(node.args[1])
                    if code is None and "code" not in keywords and isinstance(reason, str):
                        code = reason.replace("_", "-")
                elif name != "problem":
                    continue
                if isinstance(code, str):
                    entry = found.setdefault(code, Emitted())
                    entry.apps.add(_app_of(module))
                    if isinstance(status, int):
                        entry.statuses.add(status)


def emitted_codes() -> dict[str, Emitted]:
    """Every code an app can answer, found in the code (every module is imported)."""
    for module in _modules():
        importlib.import_module(module)
    found: dict[str, Emitted] = {}
    classes: list[type[DomainError]] = [DomainError, *_subclasses(DomainError)]
    for cls in classes:
        entry = found.setdefault(cls.code, Emitted())
        entry.statuses.add(cls.status)
        entry.apps.add(_app_of(cls.__module__))
    _in_source(found)
    # Starlette's own errors (an unknown path or method inside a service) by their phrase.
    for code, status in (("not-found", 404), ("method-not-allowed", 405)):
        found.setdefault(code, Emitted()).statuses.add(status)
        found[code].apps.add("every app")
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def codes_table() -> str:
    """README's table: every code, its status, who answers it, what it means and what to
    do (the catalogue's words, the code's statuses and apps)."""
    catalogue = load_problem_catalogue()
    emitted = emitted_codes()
    lines = [
        "| code | status | answered by | meaning | what to do |",
        "|---|---|---|---|---|",
    ]
    for code in sorted(catalogue.types):
        entry = catalogue.types[code]
        found = emitted.get(code, Emitted())
        statuses = ", ".join(str(s) for s in sorted(set(entry.status) | found.statuses))
        apps = ", ".join(sorted(found.apps)) or "-"
        named = f"`{code}`" + "".join(f" (was `{alias}`)" for alias in entry.aliases)
        lines.append(
            f"| {named} | {statuses} | {apps} | {_cell(entry.meaning)} | {_cell(entry.action)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(codes_table())
