"""The `resnet1d` family: what a spec can search, and where the dropout sites are.

No torch here: the API host lists families without loading networks (`build` imports them).
"""

from pydantic import BaseModel, Field

from models.families import ModelFamily, Site


class ResNet1dFields(BaseModel):
    channels: list[int] = Field(default=[32], description="channels of each residual block")
    blocks: int = Field(default=2, ge=1, le=6, description="residual blocks")
    kernel: int = Field(default=5, ge=1, le=15, description="conv kernel size (odd)")


def build(values, input_shape, num_classes, sites):
    from .net import ResNet1d

    return ResNet1d(values, input_shape, num_classes, sites)


FAMILY = ModelFamily(
    name="resnet1d",
    fields=ResNet1dFields,
    width="channels",
    depth="blocks",
    sites=(
        Site("input", "input", "the signal"),
        Site("conv", "map", "inside each residual block, after its first activation"),
        Site("last_hidden", "fc", "the pooled features the head reads"),
    ),
    build=build,
    about="1-D CNN with residual blocks (example plugin, for mnist1d)",
)
