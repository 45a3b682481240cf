"""The model families installed on this API host: fields, dropout sites, variants per site."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from models.families import describe_family, installed_families

router = APIRouter(tags=["families"])


class FamilySite(BaseModel):
    """One named dropout site and the variants it accepts."""

    name: str
    kind: str = Field(description="fc (a Linear reads it), map (feature maps) or input")
    about: str
    variants: list[str]


class Family(BaseModel):
    """A model family a spec can name in `model.family`."""

    name: str
    about: str
    width: str = Field(description="the field searched as the width (one value per depth unit)")
    depth: str = Field(description="the field searched as the depth")
    stackable: bool = Field(description="whether a worker trains several of its trials at once")
    fields: dict[str, Any] = Field(description="the family's own fields as JSON schema")
    sites: list[FamilySite]


@router.get("/families", response_model=list[Family])
def list_families() -> list[Family]:
    """The built-in families (`mlp`, `cnn`) and every plugin installed here (entry point group
    `studyd.models`). Workers need the same plugins installed to train a family's studies."""
    return [Family(**describe_family(f)) for f in installed_families().values()]
