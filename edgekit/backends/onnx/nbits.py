"""Mixed 4/8-bit MatMulNBits for the fused graph: edgekit's planner decides, onnxruntime writes.

Every weight node of the builder's graph (`/model/layers.3/attn/qkv_proj/MatMul`, `/lm_head/MatMul`,
the embedding Gather) maps to a GGUF tensor name so the spike profile and the planner see the same
names as on the GGUF path; a packed node (qkv) is one tensor, scored by the highest of its parts
(they read the same input). The planner gets three types that stand in for what onnxruntime
writes, chosen because their bytes per block of 32 are close (edgekit.quant.types.STANDS_FOR:
NBITS_4 = Q4_1, NBITS_8 = Q8_1, ONNX_FLOAT = F32).
So `--target-bpw` and the recipes work unchanged, and plan.json reads like the GGUF one.

The weights are onnxruntime's own (k_quant at 4 bits, its C++ min/max kernel at 8: see
edgekit.backends.onnx.blockquant), computed once per source at both widths and kept on disk
beside the fp32 graph (edgekit.backends.onnx.store); a plan is a small graph pointing into them,
so the model is never held in memory, whatever its size. The embedding uses the same layout: with
tied embeddings the Gather reads the head's quantized weights through GatherBlockQuantized (one
copy of the 262k x 640 table on Gemma 3, not two); untied, the table gets its own planned bits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from gguf import MODEL_TENSOR, TENSOR_NAMES, GGMLQuantizationType

from edgekit.backends.onnx.blockquant import FIELDS
from edgekit.backends.onnx.store import (
    Progress,
    QuantStore,
    Table,
    materialize,
    read_array,
)
from edgekit.errors import ConversionError, PlanError
from edgekit.quant.planner import Plan, Recipe, Spike, plan
from edgekit.quant.types import NBITS, NBITS_4, NBITS_8, NBITS_TYPE_OF, ONNX_FLOAT

Q = GGMLQuantizationType
BLOCK_SIZE = 32
ONNX_DATA = "model.onnx.data"

_LAYER = re.compile(r"^/model/layers\.(?P<bid>\d+)/(?P<module>.+)/MatMul$")
# builder module -> the GGUF tensors it holds (a packed module holds several).
_PARTS: dict[str, tuple[MODEL_TENSOR, ...]] = {
    "attn/qkv_proj": (MODEL_TENSOR.ATTN_Q, MODEL_TENSOR.ATTN_K, MODEL_TENSOR.ATTN_V),
    "attn/q_proj": (MODEL_TENSOR.ATTN_Q,),
    "attn/k_proj": (MODEL_TENSOR.ATTN_K,),
    "attn/v_proj": (MODEL_TENSOR.ATTN_V,),
    "attn/o_proj": (MODEL_TENSOR.ATTN_OUT,),
    "mlp/gate_proj": (MODEL_TENSOR.FFN_GATE,),
    "mlp/up_proj": (MODEL_TENSOR.FFN_UP,),
    "mlp/gate_up_proj": (MODEL_TENSOR.FFN_GATE, MODEL_TENSOR.FFN_UP),
    "mlp/down_proj": (MODEL_TENSOR.FFN_DOWN,),
}
_PACKED = {"attn/qkv_proj": MODEL_TENSOR.ATTN_QKV, "mlp/gate_up_proj": MODEL_TENSOR.FFN_GATE}
LM_HEAD = "/lm_head/MatMul"
EMBED_PREFIX = "/model/embed_tokens/"


def _tensor(t: MODEL_TENSOR, bid: int | None = None) -> str:
    name = TENSOR_NAMES[t]
    return (name.format(bid=bid) if bid is not None else name) + ".weight"


@dataclass(frozen=True)
class FusedNode:
    """One quantizable node of the fused graph, shaped for the planner's TensorLike protocol."""

    node: str  # ONNX node name
    op: str  # MatMul or Gather
    name: str  # GGUF tensor name the planner sees
    parts: tuple[str, ...]  # GGUF tensors it holds (their spike scores)
    weight: str  # initializer name
    shape: tuple[int, ...]  # GGUF order: shape[0] is the row length (K)
    ggml_type: GGMLQuantizationType = ONNX_FLOAT


def fused_nodes(model: Any) -> list[FusedNode]:
    """The builder graph's weight nodes. Tied embeddings show as a Gather over a Transpose of the
    head's weight: then the head alone is listed, as token_embd (the planner's tied rule)."""
    inits = {i.name: tuple(i.dims) for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    found: list[FusedNode] = []
    embed: FusedNode | None = None
    tied = False
    for node in model.graph.node:
        m = _LAYER.match(node.name)
        if node.op_type == "MatMul" and m and m["module"] in _PARTS and node.input[1] in inits:
            bid, module = int(m["bid"]), m["module"]
            parts = tuple(_tensor(t, bid) for t in _PARTS[module])
            name = _tensor(_PACKED[module], bid) if module in _PACKED else parts[0]
            k, n = inits[node.input[1]]
            found.append(FusedNode(node.name, "MatMul", name, parts, node.input[1], (k, n)))
        elif node.op_type == "MatMul" and node.name == LM_HEAD and node.input[1] in inits:
            k, n = inits[node.input[1]]
            out = _tensor(MODEL_TENSOR.OUTPUT)
            found.append(FusedNode(node.name, "MatMul", out, (out,), node.input[1], (k, n)))
        elif node.op_type == "Gather" and node.name.startswith(EMBED_PREFIX):
            src = producers.get(node.input[0])
            if node.input[0] in inits:
                v, h = inits[node.input[0]]
                tok = _tensor(MODEL_TENSOR.TOKEN_EMBD)
                embed = FusedNode(node.name, "Gather", tok, (tok,), node.input[0], (h, v))
            elif src is not None and src.op_type == "Transpose":
                tied = True
    if tied:  # one table: the head is also the embedding
        found = [
            replace(f, name=_tensor(MODEL_TENSOR.TOKEN_EMBD)) if f.node == LM_HEAD else f
            for f in found
        ]
    elif embed is not None:
        found.append(embed)
    if not any(f.node == LM_HEAD for f in found):
        raise ConversionError(
            "the fused graph has no /lm_head/MatMul with a constant weight",
            hint="The builder's node naming may have changed; see MODELS.md for versions.",
        )
    return found


def node_scores(nodes: list[FusedNode], scores: Mapping[str, float]) -> dict[str, float]:
    """Spike score per planned tensor: a packed node's parts share one input, take the highest."""
    out = {}
    for n in nodes:
        got = [scores[p] for p in n.parts if p in scores]
        if got:
            out[n.name] = max(got)
    return out


def nbits_type(q: GGMLQuantizationType) -> GGMLQuantizationType:
    """What a GGUF-minded type (--high-type, the head's type) means on MatMulNBits."""
    got = NBITS_TYPE_OF.get(q)
    if got is None:
        raise PlanError(
            f"{q.name} has no MatMulNBits counterpart",
            hint="For ONNX use Q8_0 (8-bit), Q4_0 (4-bit) or F32 (float).",
        )
    return got


def plan_nbits(
    nodes: list[FusedNode],
    scores: Mapping[str, float],
    recipe: Recipe | None = None,
    head: GGMLQuantizationType = NBITS_8,
) -> Plan:
    """4-bit base; the head (and the tied embedding) at `head`; the recipe's picks at 8 bits."""
    chosen = recipe or Spike(high_type=NBITS_8)
    chosen = replace(chosen, high_type=nbits_type(chosen.high_type))
    return plan(nodes, node_scores(nodes, scores), NBITS_4, chosen, output_type=nbits_type(head))


def _stored(store: QuantStore, weight: str, bits: int) -> tuple[list[str], list[Any]]:
    """The quantized weight, scales and zero points of `weight` as initializers pointing into
    the store, named as onnxruntime's quantizer names them (`<weight>_Q4G32`, `_scale`, `_zp`)."""
    blobs = store.blobs(weight, bits)
    names = [f"{weight}_Q{bits}G{store.block}", f"{weight}_scale", f"{weight}_zp"]
    return names, [blobs[field].tensor(n) for field, n in zip(FIELDS, names, strict=True)]


def _nbits_node(node: Any, f: FusedNode, bits: int, store: QuantStore) -> tuple[Any, list[Any]]:
    """The MatMulNBits twin of a MatMul, its initializers pointing into the store."""
    from onnx import helper

    names, inits = _stored(store, f.weight, bits)
    k, n = f.shape
    twin = helper.make_node(
        "MatMulNBits", [node.input[0], *names], list(node.output), name=f"{node.name}_Q{bits}",
        domain="com.microsoft", K=k, N=n, bits=bits, block_size=store.block,
        accuracy_level=4,  # int8 activations in the CPU kernel: what the builder sets for CPU
    )  # fmt: skip
    return twin, inits


class NbitsParts:
    """The fp32 graph's structure (no weights) and its weights' 4- and 8-bit twins on disk
    (edgekit.backends.onnx.store): a plan is assembled as a small graph pointing into them, so
    N plans cost N small graphs, not N copies of the model."""

    algorithm = "k_quant"

    def __init__(self, src: Path, block_size: int = BLOCK_SIZE) -> None:
        self.src, self.block_size = src, block_size
        self.store = QuantStore(src.parent, block_size)
        self._graph: Any = None

    def graph(self) -> Any:
        if self._graph is None:
            import onnx

            self._graph = onnx.load(str(self.src), load_external_data=False)
        return self._graph

    def prepare(self, nodes: list[FusedNode], progress: Progress | None = None) -> None:
        """Quantize every node at 4 and 8 bits once per source (the store on disk)."""
        if self.store.ready(n.weight for n in nodes):
            return
        inits = {i.name: i for i in self.graph().graph.initializer}
        folder = self.src.parent

        def loader(n: FusedNode) -> Callable[[], np.ndarray]:
            def load() -> np.ndarray:
                table = read_array(inits[n.weight], folder)
                return table.T if n.op == "Gather" else table  # as (K, N)

            return load

        tables = {n.weight: Table(n.shape[0] * n.shape[1], loader(n)) for n in nodes}
        self.store.build(tables, progress)

    def assemble(self, nodes: list[FusedNode], types: Mapping[str, GGMLQuantizationType]) -> Any:
        """The planned graph, its weights external (in the fp32 graph's folder)."""
        import onnx

        self.prepare(nodes)
        planned = {n.node: n for n in nodes if n.op == "MatMul" and types[n.name] in NBITS}
        out = onnx.ModelProto()
        out.CopyFrom(self.graph())
        kept, added = [], []
        for node in out.graph.node:
            f = planned.get(node.name)
            if f is None:
                kept.append(node)
                continue
            twin, inits = _nbits_node(node, f, NBITS[types[f.name]], self.store)
            kept.append(twin)
            added += inits
        out.graph.ClearField("node")
        out.graph.node.extend(kept)
        out.graph.initializer.extend(added)
        if not any(o.domain == "com.microsoft" for o in out.opset_import):
            out.opset_import.add(domain="com.microsoft", version=1)
        embed_nodes = [n for n in nodes if n.op == "Gather"]
        if not embed_nodes:  # tied
            _tie_embedding(out)
        else:
            _quantize_embedding(out, embed_nodes[0], types[embed_nodes[0].name], self.store)
        _drop_unused(out)
        return out

    def write_probe(
        self,
        name: str,
        nodes: list[FusedNode],
        types: Mapping[str, GGMLQuantizationType],
        edit: Callable[[Any], Any] | None = None,
    ) -> Path:
        """The planned graph (through `edit`) as `name` in the fp32 graph's folder, beside the
        data it reads."""
        import onnx

        path = self.src.parent / name
        model = self.assemble(nodes, types)
        onnx.save_model(model if edit is None else edit(model), str(path))
        return path

    def write(
        self,
        dst: Path,
        nodes: list[FusedNode],
        types: Mapping[str, GGMLQuantizationType],
        progress: Progress | None = None,
    ) -> dict[str, list[str]]:
        """Write the planned graph to `dst` (model.onnx + model.onnx.data); returns node lists."""
        dst.parent.mkdir(parents=True, exist_ok=True)
        materialize(self.assemble(nodes, types), self.src.parent, dst, ONNX_DATA, progress)
        by_bits: dict[str, list[str]] = {"4": [], "8": [], "float": []}
        for n in nodes:
            by_bits[str(NBITS.get(types[n.name], "float"))].append(n.node)
        return by_bits


def _init(model: Any, name: str) -> Any:
    return next((i for i in model.graph.initializer if i.name == name), None)


def _gather_block_quantized(
    model: Any, gather: Any, qweight: str, scale: str, zp: str | None, bits: int, block: int
) -> list[Any]:
    """Nodes that gather rows straight from MatMulNBits-layout tensors ([N, blocks, blob])."""
    import numpy as np
    from onnx import helper, numpy_helper

    dims = tuple(_init(model, qweight).dims)
    n_rows, flat = dims[0], dims[1] * dims[2]
    shape_name = f"{gather.name}/rows_shape"
    model.graph.initializer.append(
        numpy_helper.from_array(np.asarray([n_rows, flat], dtype=np.int64), shape_name)
    )
    table = f"{gather.name}/rows"
    reshape = helper.make_node(
        "Reshape", [qweight, shape_name], [table], name=f"{gather.name}/Reshape"
    )
    inputs = [table, gather.input[1], scale, *([zp] if zp else [])]
    gbq = helper.make_node(
        "GatherBlockQuantized",
        inputs,
        list(gather.output),
        name=gather.name.replace("/Gather", "/GatherBlockQuantized"),
        domain="com.microsoft",
        bits=bits,
        block_size=block,
        gather_axis=0,
        quantize_axis=1,
    )
    return [reshape, gbq]


def _replace_nodes(model: Any, old: list[Any], new: list[Any]) -> None:
    nodes = list(model.graph.node)
    at = min(nodes.index(o) for o in old)
    kept = [n for n in nodes if n not in old]
    model.graph.ClearField("node")
    model.graph.node.extend([*kept[:at], *new, *kept[at:]])


def _drop_unused(model: Any) -> None:
    used = {x for n in model.graph.node for x in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    model.graph.ClearField("initializer")
    model.graph.initializer.extend(keep)


def _tie_embedding(model: Any) -> None:
    """Gather from the quantized head instead of a Transpose of a float copy of it."""
    from onnx import helper

    head = next((n for n in model.graph.node if n.name.startswith(LM_HEAD)), None)
    gather = next(
        (n for n in model.graph.node if n.op_type == "Gather" and n.name.startswith(EMBED_PREFIX)),
        None,
    )
    if head is None or gather is None or head.op_type != "MatMulNBits":
        return  # a float head keeps the builder's Transpose + Gather
    producers = {o: n for n in model.graph.node for o in n.output}
    transpose = producers.get(gather.input[0])
    attrs = {a.name: helper.get_attribute_value(a) for a in head.attribute}
    zp = head.input[3] if len(head.input) > 3 and head.input[3] else None
    new = _gather_block_quantized(
        model,
        gather,
        head.input[1],
        head.input[2],
        zp,
        int(attrs["bits"]),
        int(attrs["block_size"]),
    )
    old = [
        gather,
        *([transpose] if transpose is not None and transpose.op_type == "Transpose" else []),
    ]
    _replace_nodes(model, old, new)


def _quantize_embedding(
    model: Any, embed: FusedNode, qtype: GGMLQuantizationType, store: QuantStore
) -> None:
    """Untied table: the MatMuls' k_quant layout (from the store), read by GatherBlockQuantized."""
    if qtype not in NBITS or embed.shape[0] % store.block:
        return  # float, or GatherBlockQuantized would need a part block along the hidden axis
    bits = NBITS[qtype]
    names, inits = _stored(store, embed.weight, bits)
    model.graph.initializer.extend(inits)
    gather = next(n for n in model.graph.node if n.name == embed.node)
    new = _gather_block_quantized(model, gather, names[0], names[1], names[2], bits, store.block)
    _replace_nodes(model, [gather], new)


def weight_ops(path: Path) -> dict[str, str]:
    """Read back the written graph: op and bits of every weight-carrying node (for tests, plan)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    out = {}
    for n in model.graph.node:
        if n.op_type in ("MatMulNBits", "GatherBlockQuantized", "MatMul", "Gather"):
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            out[n.name] = f"{n.op_type}:{attrs.get('bits', '')}".rstrip(":")
    return out
