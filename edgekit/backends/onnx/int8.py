"""Spike-aware int8 for an exported ONNX decoder: edgekit's planner decides, onnxruntime writes.

The graph's weight-carrying nodes (MatMul with a constant B, the embedding Gather) are named after
the modules they came from (`/model/layers.1/mlp/down_proj/MatMul`), so each maps to the GGUF tensor
name the spike profile and the planner use (`blk.1.ffn_down.weight`). The planner sees them as F32
tensors with base type I8 (one byte per weight: what onnxruntime's dynamic int8 stores) and
high type F32; what it keeps becomes `nodes_to_exclude`. So the ONNX and GGUF paths share one
decision procedure and one plan.json format.

`quantize_dynamic` makes each quantized MatMul a MatMulInteger whose input is quantized to uint8
per tensor at run time: one spiky channel then stretches the scale for every other channel, which
is exactly the error keeping the spike layers in fp32 avoids.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType

from edgekit.errors import ConversionError, PlanError
from edgekit.quant.planner import Plan, Recipe, Spike, plan
from edgekit.quant.spikes import SpikeProfile, gguf_tensor_name
from edgekit.quant.types import DYNAMIC_INT8, ONNX_FLOAT

Q = GGMLQuantizationType
PRECISIONS = ("fp32", "int8", "spike")
_NODE = re.compile(r"^/(?P<module>.+)/(?P<op>MatMul|Gather)$")


@dataclass(frozen=True)
class WeightNode:
    """One quantizable node, described the way the planner's TensorLike protocol wants."""

    node: str  # ONNX node name
    op: str  # MatMul or Gather
    name: str  # GGUF tensor name, e.g. blk.1.ffn_down.weight
    module: str  # HF module, e.g. model.layers.1.mlp.down_proj
    shape: tuple[int, ...]  # GGUF order: shape[0] is the row length
    ggml_type: GGMLQuantizationType = ONNX_FLOAT


def weight_nodes(model: Any, architecture: str, n_blocks: int) -> list[WeightNode]:
    """Every MatMul/Gather whose weight is an initializer and whose module gguf-py can name."""
    inits = {i.name: tuple(i.dims) for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        m = _NODE.match(node.name)
        if not m or node.op_type != m["op"]:
            continue
        weight = node.input[1] if node.op_type == "MatMul" else node.input[0]
        dims = inits.get(weight)
        if dims is None or len(dims) != 2:
            continue  # activation x activation (attention scores) or a rotary table
        module = m["module"].replace("/", ".")
        tensor = gguf_tensor_name(module, architecture, n_blocks)
        if tensor is None:
            continue
        # MatMul's B is (in, out); Gather's table is (vocab, hidden): rows are `in` / `hidden`.
        shape = (dims[0], dims[1]) if node.op_type == "MatMul" else (dims[1], dims[0])
        found.append(WeightNode(node.name, node.op_type, tensor, module, shape))
    if not found:
        raise ConversionError(
            "found no quantizable weight nodes in the exported graph",
            hint="The exporter's node naming may have changed; see MODELS.md for versions.",
        )
    return found


def plan_onnx(
    nodes: list[WeightNode],
    precision: str,
    profile: SpikeProfile | None = None,
    recipe: Recipe | None = None,
) -> Plan:
    """fp32: nothing quantized; int8: everything; spike: the recipe keeps the spiky layers F32."""
    if precision not in PRECISIONS:
        raise PlanError(
            f"unknown ONNX precision {precision!r}", hint=f"Choose one of {', '.join(PRECISIONS)}."
        )
    # Whatever the recipe says, "kept" means fp32 here: onnxruntime's CPU MatMul has no fp16.
    keep = dataclasses.replace(recipe or Spike(), high_type=ONNX_FLOAT)
    if precision == "fp32":
        return plan(nodes, {}, ONNX_FLOAT, keep, output_type=ONNX_FLOAT)
    scores: Mapping[str, float] = {}
    if precision == "spike":
        if profile is None:
            raise PlanError("spike-aware int8 needs a spike profile (calibrate first)")
        scores = profile.scores("input")
    return plan(nodes, scores, DYNAMIC_INT8, keep, output_type=DYNAMIC_INT8)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The quantizer logs a "consider pre-processing" advice through the root logger on every
    call; it concerns static quantization of CNNs, not these MatMuls."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_graph(
    src: Path, dst: Path, nodes: list[WeightNode], the_plan: Plan, per_channel: bool = True
) -> dict[str, list[str]]:
    """Write the int8 graph; returns the node lists passed to onnxruntime (for plan.json)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    types = the_plan.types
    quantize = [n.node for n in nodes if types[n.name] == DYNAMIC_INT8]
    exclude = [n.node for n in nodes if types[n.name] != DYNAMIC_INT8]
    with _quiet_root_logger():
        quantize_dynamic(
            src,
            dst,
            op_types_to_quantize=["MatMul", "Gather"],
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            # Only the planned weight nodes: never the rotary table or attention-score MatMuls.
            nodes_to_quantize=quantize,
            nodes_to_exclude=exclude,
            use_external_data_format=any(src.parent.glob(src.name + "_data*")),
            extra_options={"MatMulConstBOnly": True},
        )
    return {"quantized": quantize, "kept_float": exclude}


def weight_types(path: Path, nodes: list[str]) -> dict[str, str]:
    """Read back the written graph: each named node's op and its weight's element type.

    A quantized MatMul is renamed (`..._quant`, MatMulInteger); a quantized Gather keeps its name
    but gathers from an 8-bit table, so the initializer's type is what proves a node stayed float.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name: onnx.TensorProto.DataType.Name(i.data_type) for i in model.graph.initializer}
    by_name = {n.name: n for n in model.graph.node}
    out = {}
    for name in nodes:
        node = by_name.get(name)
        types = [inits[x] for x in node.input if x in inits] if node else []
        out[name] = f"{node.op_type}:{','.join(types)}" if node else "missing"
    return out


def verify_plan(path: Path, kept: list[str]) -> None:
    """The nodes the plan keeps must still read fp32 weights in the written file."""
    found = weight_types(path, kept)
    wrong = {k: v for k, v in found.items() if v not in ("MatMul:FLOAT", "Gather:FLOAT")}
    if wrong:
        raise ConversionError(f"nodes the plan keeps in fp32 were quantized: {wrong}")
