"""The closed form's one backward pass: f's modified backward traced once with every block's
attention call captured, what each layer's closed-form edges are computed from.

The per-layer tensors are captured at the attention-function call: for the duration of the
computation the model runs a registered attention implementation that records (query, key,
value, attention_mask, scaling) and then runs transformers' own sdpa. The attention weights are
recomputed from those with the model's own mask, so causal, sliding-window and bidirectional
masks are honoured without knowing which one the model uses. q°, k°, v° come from a forward-mode
replay (JVP) of each block along its own input, with the norm denominators detached as under the
lxt rules. Long prompts can checkpoint every block (recomputed in the backward pass); only the
per-position residual term and the head-output gradient of each block are kept
(docs/method.md sections 4 and 6)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

import lxt
from lxt.rules import LayerNormRule, RMSNormRule

from ..attention_impl import attention_function
from ..attribution import checkpointed_blocks, recompute_from
from ..objectives import Objective
from .closed_layer import AttentionCall, LayerTensors, layer_tensors
from .trace import Trace, node_relevance, replay, trace

#: the registered attention implementation (and mask implementation) used while capturing
IMPLEMENTATION = "reportgen_closed_form"

#: attention-call keyword arguments the closed form does not model (the call then raises)
_UNSUPPORTED_KWARGS = ("softcap", "position_bias", "s_aux", "sinks")


class ClosedFormUnsupportedError(lxt.UnsupportedArchitectureError):
    """The model's blocks are not of the shape the closed form needs; use the packed backward."""


class _Stop(Exception):
    """Raised inside the attention call to end a forward-mode replay of a block early."""


@dataclass
class _Recorder:
    layer_of: dict[int, int]  # id(attention module) -> block index
    calls: dict[int, AttentionCall] = field(default_factory=dict)
    jvp: bool = False
    replay: bool = False  # a checkpointed block is being recomputed in the backward pass
    tangents: tuple[torch.Tensor | None, ...] | None = None


_ACTIVE: list[_Recorder] = []


def _capture_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    recorder = _ACTIVE[-1] if _ACTIVE else None
    if recorder is None or id(module) not in recorder.layer_of or recorder.replay:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if recorder.jvp:
        recorder.tangents = tuple(fwAD.unpack_dual(x).tangent for x in (query, key, value))
        raise _Stop
    for name in _UNSUPPORTED_KWARGS:
        if kwargs.get(name) is not None:
            raise ClosedFormUnsupportedError(
                f"attention with {name!r} is not covered by the closed form"
            )
    if kwargs.get("dropout", 0.0):
        raise ClosedFormUnsupportedError("attention dropout is active (call model.eval())")
    if query.shape[0] != 1:
        raise ClosedFormUnsupportedError("the closed form handles a batch of one sequence")
    output, weights = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    is_causal = kwargs.get("is_causal")
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    scaling = kwargs.get("scaling")
    mask = attention_mask[0].detach() if attention_mask is not None else None
    recorder.calls[recorder.layer_of[id(module)]] = AttentionCall(
        query=query[0].detach(),
        key=key[0].detach(),
        value=value[0].detach(),
        mask=mask,
        causal=bool(is_causal) and query.shape[2] > 1,
        scaling=float(scaling) if scaling is not None else 1.0 / math.sqrt(query.shape[-1]),
        shape=tuple(output.shape),
    )
    if output.requires_grad:  # keep only the gradient, not the output itself
        call = recorder.calls[recorder.layer_of[id(module)]]
        output.register_hook(lambda grad: setattr(call, "grad", grad.detach()))
    return output, weights


@contextlib.contextmanager
def _capturing(model: nn.Module, recorder: _Recorder) -> Iterator[_Recorder]:
    """Route every attention call of ``model`` through the capturing implementation."""
    with attention_function(model, IMPLEMENTATION, _capture_attention):
        _ACTIVE.append(recorder)
        try:
            yield recorder
        finally:
            _ACTIVE.remove(recorder)


def supports_closed_form(model: nn.Module) -> bool:
    """True when ``model`` is an architecture the closed form is known to handle exactly
    (lxt patch map, a known residual sum, attention through transformers' AttentionInterface)."""
    try:
        lxt.architecture_of(model)
    except lxt.UnsupportedArchitectureError:
        return False
    if getattr(model, "is_quantized", False) or getattr(model, "hf_quantizer", None) is not None:
        return False  # quantised layers: forward-mode derivatives not verified
    can_set = getattr(model, "_can_set_attn_implementation", None)
    if callable(can_set):
        try:
            if not can_set():
                return False
        except Exception:  # noqa: BLE001 - a private helper; be conservative
            return False
    return True


def _attention_modules(blocks: nn.ModuleList) -> dict[int, int]:
    """id(module) -> block index for every submodule (the attention module is among them)."""
    return {id(m): index for index, block in enumerate(blocks) for m in block.modules()}


def _norm_only_map(model: nn.Module) -> dict[str, Any]:
    """The lxt patch map restricted to the norm rules: the forward of the position-wise map
    h_s -> (q, k, v) as the rules see it (denominators detached), without the custom autograd
    Functions of the gradient shares (which have no forward-mode derivative and are identities
    in the forward anyway)."""
    return {
        selector: rule
        for selector, rule in lxt.patch_map_for(model).items()
        if isinstance(rule, (RMSNormRule, LayerNormRule))
    }


def _linear_parts(
    block: nn.Module, call: Any, source: torch.Tensor, recorder: _Recorder
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q°, k°, v°: the JVP of h_s -> (q, k, v) along h_s, read at the attention call."""
    recorder.jvp, recorder.tangents = True, None
    try:
        with torch.no_grad(), fwAD.dual_level():
            dual = fwAD.make_dual(source, source)
            with contextlib.suppress(_Stop):
                replay(block, call, dual)
    except (RuntimeError, NotImplementedError) as error:  # e.g. an op without forward-mode AD
        raise ClosedFormUnsupportedError(
            f"forward-mode replay of the block failed: {error}"
        ) from error
    finally:
        recorder.jvp = False
    tangents, recorder.tangents = recorder.tangents, None
    if tangents is None:
        raise ClosedFormUnsupportedError("the block's attention call was not reached")
    return tuple(  # type: ignore[return-value]
        (t[0] if t is not None else None) for t in tangents
    )


@contextlib.contextmanager
def _quiet_hooks(block: nn.Module, model: nn.Module) -> Iterator[None]:
    """While a checkpointed block is recomputed in the backward pass, run only the lxt rule hooks
    on its submodules (the tracing hooks already saw the original forward)."""
    patch = getattr(model, "_lxt_patch", None)
    rule_ids = {handle.id for handle in patch.handles} if patch is not None else set()
    saved = []
    for module in block.modules():
        if module is block:
            continue
        saved.append((module, module._forward_pre_hooks, module._forward_hooks))
        module._forward_pre_hooks = type(module._forward_pre_hooks)(
            (k, h) for k, h in module._forward_pre_hooks.items() if k in rule_ids
        )
        module._forward_hooks = type(module._forward_hooks)(
            (k, h) for k, h in module._forward_hooks.items() if k in rule_ids
        )
    try:
        yield
    finally:
        for module, pre_hooks, hooks in saved:
            module._forward_pre_hooks, module._forward_hooks = pre_hooks, hooks


def _checkpointed(model: nn.Module, blocks: nn.ModuleList, recorder: _Recorder) -> Any:
    """Per-block activation checkpointing for the trace: each block keeps only its input and
    what the tracing hooks hold, and is recomputed during the backward pass with only the rule
    hooks on (:func:`_quiet_hooks`). The original autograd graph is kept, so retained gradients
    of tensors inside the block are filled as without checkpointing."""

    def recompute(block: nn.Module, original: Callable[..., Any]) -> Callable[..., Any]:
        runs = [0]

        def run(*a: Any, **k: Any) -> Any:
            runs[0] += 1
            if runs[0] == 1:
                return original(*a, **k)
            recorder.replay = True
            try:
                with _quiet_hooks(block, model):
                    return original(*a, **k)
            finally:
                recorder.replay = False

        return run

    return checkpointed_blocks(blocks, recompute)


@dataclass
class Session:
    """f's modified backward, traced once with every block's attention call captured: what each
    layer's closed-form edges are computed from."""

    model: nn.Module
    blocks: nn.ModuleList
    recorder: _Recorder
    traced: Trace
    residuals: dict[int, torch.Tensor | None]  # block -> <g_mid[j], h_s[j]> (None: no gradient)
    relevance: np.ndarray  # [node layers, n] float64
    checkpoint: bool
    step: int  # node layers per block (2 with the mid-block split)
    norm_map: dict[str, Any]  # the norm rules alone: the forward-mode replay's patch map

    @property
    def n(self) -> int:
        return self.relevance.shape[1]

    @property
    def work(self) -> torch.dtype:
        return torch.promote_types(self.traced.states[0].dtype, torch.float32)

    def layer(self, index: int) -> tuple[AttentionCall, LayerTensors, torch.Tensor]:
        """Block ``index``'s attention call, its per-head tensors (with q°, k°, v° from a
        forward-mode replay) and its residual-path diagonal."""
        source = self.traced.states[index * self.step]
        with lxt.lrp_rules(self.model, self.norm_map):
            tangents = _linear_parts(
                self.blocks[index], self.traced.calls[index], source, self.recorder
            )
        attention = self.recorder.calls[index]
        tensors = layer_tensors(attention, tangents, self.work)
        residual = self.residuals[index]
        if residual is None:
            residual = torch.zeros(self.n, dtype=self.work, device=source.device)
        return attention, tensors, residual.to(self.work)

    def release(self, index: int) -> None:
        self.recorder.calls[index] = None  # type: ignore[assignment] - free the layer's tensors


@contextlib.contextmanager
def open_session(
    model: nn.Module,
    token_ids: Sequence[int],
    objective: Objective,
    *,
    split: bool,
    checkpoint: bool | None,
) -> Iterator[Session]:
    """Trace f's modified backward once with every attention call captured and every block's
    residual term reduced; the attention capture stays active while the session is open (the
    forward-mode replays of ``Session.layer`` need it). Refuses architectures the closed form
    does not cover (``ClosedFormUnsupportedError``)."""
    if not supports_closed_form(model):
        raise ClosedFormUnsupportedError(
            f"no closed form for {type(model).__name__}; use the packed backward"
        )
    architecture = lxt.architecture_of(model)
    blocks = lxt.decoder_blocks(model)
    device = next(model.parameters()).device
    ids = torch.tensor([list(token_ids)], device=device)
    if checkpoint is None:
        # the length from which the attribution's backward recomputes its blocks too
        checkpoint = ids.shape[1] >= recompute_from(model)
    recorder = _Recorder(layer_of=_attention_modules(blocks))
    # per block: its input h_s, then <g_res[j], h_s[j]> (the residual edge) once the backward
    # reaches the residual sum; neither the residual sum nor its gradient is kept
    inputs: dict[int, torch.Tensor] = {}
    residuals: dict[int, torch.Tensor | None] = {}
    handles = []

    def input_hook(index: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            inputs[index] = (args[0] if args else kwargs["hidden_states"]).detach()

        return hook

    def residual_hook(index: int) -> Callable[..., None]:
        def reduce(grad: torch.Tensor) -> None:
            residuals[index] = (grad * inputs[index]).sum(-1)[0]

        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            if not recorder.jvp and not recorder.replay and args[0].requires_grad:
                residuals.setdefault(index, None)
                args[0].register_hook(reduce)

        return hook

    with _capturing(model, recorder):
        for index, block in enumerate(blocks):
            module = block.get_submodule(architecture.residual_sum)
            handles.append(module.register_forward_pre_hook(residual_hook(index)))
            handles.append(block.register_forward_pre_hook(input_hook(index), with_kwargs=True))
        try:
            with _checkpointed(model, blocks, recorder) if checkpoint else contextlib.nullcontext():
                traced = trace(model, ids, objective, split=split)
        finally:
            for handle in handles:
                handle.remove()
        if sorted(recorder.calls) != list(range(len(blocks))) or sorted(residuals) != list(
            range(len(blocks))
        ):
            raise ClosedFormUnsupportedError(
                f"captured {len(recorder.calls)} attention calls and {len(residuals)} residual sums"
                f" for {len(blocks)} blocks"
            )
        relevance = node_relevance(traced)
        inputs.clear()
        yield Session(
            model,
            blocks,
            recorder,
            traced,
            residuals,
            relevance,
            checkpoint,
            step=2 if split else 1,
            norm_map=_norm_only_map(model),
        )
