"""Apply and undo a patch map on a model."""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import nn
from torch.utils.hooks import RemovableHandle

from .architectures import ARCHITECTURES, PATCH_MAPS, Architecture
from .patches import PatchMap

_ATTRIBUTE = "_lxt_patch"


class UnsupportedArchitectureError(ValueError):
    """The model has no patch map: we refuse rather than fall back to plain gradient x input."""


class PatchMismatchError(RuntimeError):
    """A selector of the patch map matched no module (the architecture changed upstream)."""


@dataclass
class Patch:
    """The hooks one patch map installed on one model; ``remove()`` restores the model."""

    model: nn.Module
    model_type: str
    handles: list[RemovableHandle] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        if getattr(self.model, _ATTRIBUTE, None) is self:
            delattr(self.model, _ATTRIBUTE)


def model_type_of(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is None:
        raise UnsupportedArchitectureError(f"{type(model).__name__} has no config.model_type")
    text_config = getattr(config, "text_config", None)
    if model_type not in PATCH_MAPS and text_config is not None:
        model_type = getattr(text_config, "model_type", model_type)
    return model_type


def architecture_of(model: nn.Module) -> Architecture:
    """The table entry of ``model``'s architecture; an unknown one is an error, never a guess."""
    model_type = model_type_of(model)
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        supported = ", ".join(sorted(ARCHITECTURES))
        raise UnsupportedArchitectureError(
            f"no AttnLRP patch map for model_type {model_type!r} (supported: {supported})"
        ) from None


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks: the ModuleList the architecture table names, whose length
    is the number of layers."""
    architecture = architecture_of(model)
    count = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if (
            isinstance(module, nn.ModuleList)
            and name.rsplit(".", 1)[-1] == architecture.blocks
            and len(module) == count
        ):
            return module
    raise UnsupportedArchitectureError(
        f"cannot find the {count} transformer blocks of {type(model).__name__}"
    )


def patch_map_for(model: nn.Module) -> PatchMap:
    return architecture_of(model).patches


def _matches(selector: str, qualified_name: str, module: nn.Module) -> bool:
    if "." in selector or "*" in selector:
        return fnmatch.fnmatchcase(qualified_name, selector)
    return type(module).__name__ == selector


def patch(model: nn.Module, patch_map: PatchMap | None = None) -> Patch:
    """Attach the AttnLRP rules to ``model``; the forward pass is unchanged, only the backward.

    Raises if the model is already patched, if the architecture is unknown, or if a selector of
    the map matches nothing."""
    if getattr(model, _ATTRIBUTE, None) is not None:
        raise RuntimeError("model is already patched; call unpatch(model) first")
    patch_map = patch_map if patch_map is not None else patch_map_for(model)
    config = getattr(model, "config", None)
    result = Patch(model=model, model_type=getattr(config, "model_type", "custom"))
    modules = list(model.named_modules())
    try:
        for selector, rule in patch_map.items():
            count = 0
            for name, module in modules:
                if _matches(selector, name, module):
                    result.handles.append(rule.attach(module, config))
                    count += 1
            if count == 0:
                raise PatchMismatchError(
                    f"patch selector {selector!r} matched no module of {type(model).__name__}"
                )
            result.counts[selector] = count
    except Exception:
        result.remove()
        raise
    setattr(model, _ATTRIBUTE, result)
    return result


def unpatch(model: nn.Module) -> None:
    """Remove the rules ``patch`` attached; a no-op on an unpatched model."""
    current = getattr(model, _ATTRIBUTE, None)
    if current is not None:
        current.remove()


def is_patched(model: nn.Module) -> bool:
    return getattr(model, _ATTRIBUTE, None) is not None


@contextlib.contextmanager
def lrp_rules(model: nn.Module, patch_map: PatchMap | None = None) -> Iterator[Patch]:
    """``with lrp_rules(model): ...`` -- AttnLRP backward inside, the plain model after."""
    applied = patch(model, patch_map)
    try:
        yield applied
    finally:
        applied.remove()
