"""The error-code catalogue (``policy/problems.yaml``): each problem type's title, status,
meaning and what to do. An error's ``type`` is :data:`kit.errors.PROBLEM_TYPE_BASE` +
its code, a relative reference (RFC 9457 3.1.1) that resolves against the URL the client
asked, the gateway's, which serves the catalogue there (:mod:`gateway.problems`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final

import yaml
from pydantic import BaseModel, ConfigDict, Field

from kit.settings import REPO_ROOT

__all__ = ["CATALOGUE_PATH", "ProblemCatalogue", "ProblemType", "load_problem_catalogue"]

CATALOGUE_PATH: Final = REPO_ROOT / "policy" / "problems.yaml"


class ProblemType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1)
    status: list[int] = Field(min_length=1)
    meaning: str = Field(min_length=1)
    action: str = Field(min_length=1)


class ProblemCatalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    types: dict[str, ProblemType]


@functools.cache
def load_problem_catalogue(path: Path = CATALOGUE_PATH) -> ProblemCatalogue:
    """The catalogue, read and checked once (a bad file raises ``ValidationError``)."""
    return ProblemCatalogue.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
