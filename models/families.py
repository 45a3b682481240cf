"""Model families: what a study's network is, its own fields and its named dropout sites.

A family is one `ModelFamily` entry: a name, a pydantic model of its own fields (one of them the
searchable width — a list, one value per depth unit — and one the depth), its dropout sites by
name and kind, and `build(values, input_shape, num_classes, sites)`, which returns the network
and asks the `models.sites.Sites` object for the module the trial chose at each site. A family
never imports a variant: every variant keeps one implementation in `models/` (variants.py,
dropout.py, dropconnect.py), and the sites object hands them out.

Built in: `mlp` (today's MLP, built by `models.mlp.build_mlp` so that it stays bit-identical,
and the only family that stacks trials: `models.batched`) and `cnn` (`models.cnn`). Installed
plugins add entries through the `studyd.models` entry point group (docs/plugins.md); an entry
point names a `ModelFamily`.

This module imports no torch (the API lists families without it): `build` imports its network
code when it runs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.variants import REGISTRY, dropout_variant

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "studyd.models"
DEFAULT_FAMILY = "mlp"
# Optuna parameter names the spec already uses: a family field may not take one.
RESERVED_PARAMS = frozenset(
    {"variant", "placement", "rate", "input_rate", "conv_form", "epochs", "batch_size"}
    | {"optimizer", "lr", "weight_decay"}
    | {k.name for v in REGISTRY for k in v.knobs}
)

# "fc": a vector a Linear reads (every variant); "map": feature maps (B, C, …) (activation noise,
# element- or channel-wise); "input": the data in its own shape (activation noise, element-wise).
SiteKind = Literal["fc", "map", "input"]
ConvForm = Literal["element", "channel"]
CONV_FORMS: tuple[str, ...] = ("element", "channel")


class FamilyError(ValueError):
    """A family that is not installed, or a config its family cannot build."""


@dataclass(frozen=True)
class Site:
    """A named dropout site of a family; `kind` decides which variants it accepts."""

    name: str
    kind: SiteKind
    about: str = ""

    def accepts(self, variant: str) -> bool:
        """Whether `variant` can act here: DropConnect and Standout need a Linear (fc sites)."""
        acts_on = dropout_variant(variant).acts_on
        return self.kind == "fc" or acts_on in ("nothing", "activations")

    def accepted_variants(self) -> list[str]:
        return [v.name for v in REGISTRY if self.accepts(v.name)]


Build = Callable[[Any, tuple[int, ...], int, Any], Any]


@dataclass(frozen=True)
class ModelFamily:
    """One family. `fields`: its own fields (pydantic; defaults are the fixed values); `width`
    names the list-valued field of widths (one per depth unit), `depth` the count; `sites` its
    dropout sites; `build(values, input_shape, num_classes, sites)` its network (an nn.Module
    whose `forward(x)` takes x shaped (B, *input_shape)). `stackable`: trials of it can train
    several to a stack (only `mlp` today)."""

    name: str
    fields: type[BaseModel]
    width: str
    depth: str
    sites: tuple[Site, ...]
    build: Build | None
    stackable: bool = False
    about: str = ""

    def site(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        raise FamilyError(
            f"family {self.name!r} has no dropout site {name!r}; its sites are "
            f"{', '.join(self.site_names())}"
        )

    def site_names(self) -> list[str]:
        return [s.name for s in self.sites]

    def own_fields(self) -> list[str]:
        """The fields other than width and depth (`ModelConfig.arch`'s keys)."""
        return [f for f in self.fields.model_fields if f not in (self.width, self.depth)]

    def values(self, hidden: list[int], arch: dict[str, Any]) -> BaseModel:
        """The family's fields for one config: widths `hidden`, depth len(hidden), `arch`."""
        return self.fields(**{self.width: list(hidden), self.depth: len(hidden)}, **arch)

    def check(self) -> None:
        """Raise `FamilyError` when the declaration cannot work (a plugin's mistakes)."""
        names = list(self.fields.model_fields)
        problems = [f"field {f!r} is missing" for f in (self.width, self.depth) if f not in names]
        problems += [
            f"field {f!r} takes a name the spec uses" for f in names if f in RESERVED_PARAMS
        ]
        if len(set(self.site_names())) != len(self.sites):
            problems.append("site names repeat")
        if problems:
            raise FamilyError(f"model family {self.name!r}: {'; '.join(problems)}")


# ── the built-in families ────────────────────────────────────────────────────────────────────

Activation = Literal["relu", "gelu", "tanh"]


class MlpFields(BaseModel):
    """The MLP's fields (its spec section is `studyd.spec.spaces.ModelSpace`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: list[int] = Field(default=[128], description="units of each hidden layer")
    depth: int = Field(default=1, ge=1, description="hidden layers")
    activation: Activation = "relu"


class CnnFields(BaseModel):
    """The built-in CNN: `depth` conv blocks of `width[i]` channels, an optional FC layer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: list[int] = Field(default=[32], description="channels of each conv block")
    depth: int = Field(default=2, ge=1, le=8, description="conv blocks")
    fc: int = Field(default=0, ge=0, le=8192, description="units of the hidden FC layer (0: none)")
    kernel: int = Field(default=3, ge=1, le=15, description="conv kernel size (odd keeps the size)")
    activation: Activation = "relu"
    pool: Literal["max", "avg"] = "max"


def _build_cnn(values: Any, input_shape: tuple[int, ...], num_classes: int, sites: Any) -> Any:
    from models.cnn import build_cnn

    return build_cnn(values, input_shape, num_classes, sites)


MLP = ModelFamily(
    name="mlp",
    fields=MlpFields,
    width="width",
    depth="depth",
    sites=(
        Site("input", "fc", "the data"),
        Site("pre_activation", "fc", "between each hidden Linear and its activation"),
        Site("hidden", "fc", "after each hidden layer's activation"),
        Site("last_hidden", "fc", "after the last hidden layer, before the head"),
    ),
    build=None,  # `models.mlp.build_mlp` reads the whole ModelConfig (see `build_model`)
    stackable=True,
    about="fully connected layers on flat features (the default)",
)
CNN = ModelFamily(
    name="cnn",
    fields=CnnFields,
    width="width",
    depth="depth",
    sites=(
        Site("input", "input", "the image or signal"),
        Site("conv", "map", "after each conv block's activation"),
        Site("hidden", "fc", "after the hidden FC layer's activation (fc = 0: as last_hidden)"),
        Site("last_hidden", "fc", "the features the head reads"),
    ),
    build=_build_cnn,
    about="conv blocks (2-D images, 1-D signals), pooling, an optional FC layer, the head",
)
BUILTIN: tuple[ModelFamily, ...] = (MLP, CNN)


@functools.cache
def installed_families() -> dict[str, ModelFamily]:
    """The built-in families and every installed plugin's, by name (built-ins first).

    A plugin that fails to load or to declare itself is logged and left out: one broken package
    must not take the others down.
    """
    found = {f.name: f for f in BUILTIN}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            family = point.load()
            if not isinstance(family, ModelFamily):
                raise FamilyError(f"entry point {point.value!r} is not a ModelFamily")
            family.check()
        except Exception:  # a plugin is foreign code: any failure leaves it out, loudly
            logger.exception("model plugin %r left out", point.name)
            continue
        if family.name in found:
            logger.error("model plugin %r left out: the family %r exists", point.name, family.name)
            continue
        found[family.name] = family
    return found


def model_family(name: str) -> ModelFamily:
    """The installed family `name`; `FamilyError` listing the installed ones otherwise."""
    families = installed_families()
    if name not in families:
        raise FamilyError(
            f"unknown model family {name!r}; installed: {', '.join(families)} "
            "(a plugin must be installed on the workers and the API host)"
        )
    return families[name]


def describe_family(family: ModelFamily) -> dict[str, Any]:
    """A family as JSON: its fields (with which are width and depth), sites and their variants."""
    schema = family.fields.model_json_schema()
    return {
        "name": family.name,
        "about": family.about,
        "width": family.width,
        "depth": family.depth,
        "stackable": family.stackable,
        "fields": schema.get("properties", {}),
        "sites": [
            {"name": s.name, "kind": s.kind, "about": s.about, "variants": s.accepted_variants()}
            for s in family.sites
        ],
    }
