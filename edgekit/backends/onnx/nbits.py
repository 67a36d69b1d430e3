"""Mixed 4/8-bit MatMulNBits for the fused graph: edgekit's planner decides, onnxruntime writes.

Every weight node of the builder's graph (`/model/layers.3/attn/qkv_proj/MatMul`, `/lm_head/MatMul`,
the embedding Gather) maps to a GGUF tensor name so the spike profile and the planner see the same
names as on the GGUF path; a packed node (qkv) is one tensor, scored by the highest of its parts
(they read the same input). The planner gets three types that stand in for what onnxruntime
writes, chosen because their bytes per block of 32 are close (edgekit.quant.types.STANDS_FOR:
NBITS_4 = Q4_1, NBITS_8 = Q8_1, ONNX_FLOAT = F32).
So `--target-bpw` and the recipes work unchanged, and plan.json reads like the GGUF one.

onnxruntime's `MatMulNBitsQuantizer` writes the MatMuls, per node (`customized_weight_config`),
with its block-wise k_quant (llama.cpp's make_qkx search) or RTN. Its k_quant path leaves Gather
alone, so the embedding is written here in the same layout: with tied embeddings the Gather reads
the head's quantized weights through GatherBlockQuantized (one copy of the 262k x 640 table on
Gemma 3, not two); untied, the table gets its own planned bits.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gguf import MODEL_TENSOR, TENSOR_NAMES, GGMLQuantizationType

from edgekit.errors import ConversionError, PlanError
from edgekit.outputs import partial_path
from edgekit.quant.planner import Plan, Recipe, Spike, plan
from edgekit.quant.types import NBITS, NBITS_4, NBITS_8, NBITS_TYPE_OF, ONNX_FLOAT

Q = GGMLQuantizationType
ALGORITHMS = ("k_quant", "rtn")
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


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime's quantizer calls logging.basicConfig(level=INFO) when imported, then logs
    every node, and draws a progress bar on stdout: none of it is for edgekit's user."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for h in root.handlers:
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)


def _algo_config(algorithm: str, eight_bit: list[str]) -> Any:
    with _quiet():
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            KQuantWeightOnlyQuantConfig,
            RTNWeightOnlyQuantConfig,
        )

    custom = {n: {"bits": 8} for n in eight_bit}
    if algorithm == "k_quant":
        return KQuantWeightOnlyQuantConfig(customized_weight_config=custom)
    if algorithm == "rtn":
        return RTNWeightOnlyQuantConfig(customized_weight_config=custom)
    raise PlanError(f"unknown ONNX quantization algorithm {algorithm!r}", hint="k_quant or rtn")


def quantize_all(
    src: Path,
    bits: int,
    algorithm: str = "k_quant",
    block_size: int = BLOCK_SIZE,
    cache: Path | None = None,
) -> Any:
    """Every weight MatMul of the fp32 graph at `bits`, written by onnxruntime's quantizer.

    Quantization is per node (k_quant and RTN see one weight at a time), so a mixed graph is
    assembled from these two whole-graph results; kept in `cache` (beside the cached fp32 graph),
    each plan then costs a copy instead of a k_quant search over ~10^8 weights."""
    import onnx

    with _quiet():
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    folder = cache / f"{algorithm}-block{block_size}-{bits}bit" if cache else None
    if folder is not None and (folder / "model.onnx").is_file():
        return onnx.load(str(folder / "model.onnx"))
    model = onnx.load(str(src))
    weights = [n.node for n in fused_nodes(model) if n.op == "MatMul"]
    with _quiet():
        quant = MatMulNBitsQuantizer(
            model,
            block_size=block_size,
            is_symmetric=True,
            accuracy_level=4,  # int8 activations in the CPU kernel: what the builder sets for CPU
            nodes_to_include=weights,
            op_types_to_quantize=("MatMul",),
            algo_config=_algo_config(algorithm, weights if bits == 8 else []),
        )
        quant.process()
    out = quant.model.model
    if folder is not None:
        tmp = partial_path(folder)
        tmp.mkdir(parents=True, exist_ok=True)
        onnx.save_model(
            out, str(tmp / "model.onnx"), save_as_external_data=True,
            all_tensors_to_one_file=True, location=ONNX_DATA, size_threshold=1024,
        )  # fmt: skip
        try:
            tmp.rename(folder)
        except OSError:  # another convert of the same source got there first
            shutil.rmtree(tmp, ignore_errors=True)
        # Saving moved the weights out of `out` (external-data references into the cache file).
        return onnx.load(str(folder / "model.onnx"))
    return out


def _assemble(model: Any, quantized: Mapping[int, Any], bits_of: Mapping[str, int]) -> None:
    """Swap each planned MatMul of `model` for its MatMulNBits twin at the planned bits."""
    twins = {b: {n.name: n for n in q.graph.node} for b, q in quantized.items()}
    inits = {b: {i.name: i for i in q.graph.initializer} for b, q in quantized.items()}
    nodes, added = [], []
    for node in model.graph.node:
        b = bits_of.get(node.name)
        if b is None:
            nodes.append(node)
            continue
        twin = twins[b].get(f"{node.name}_Q{b}")
        if twin is None:
            raise ConversionError(f"onnxruntime's quantizer left {node.name} unquantized")
        nodes.append(twin)
        added += [inits[b][x] for x in twin.input if x in inits[b]]
    model.graph.ClearField("node")
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(added)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.add(domain="com.microsoft", version=1)
    _drop_unused(model)


class NbitsParts:
    """The fp32 graph and its whole-graph 4- and 8-bit twins, each loaded once: every plan (a
    convert, or each probe of the sensitivity measurement) is assembled from them by copying nodes,
    so N plans cost N copies, not N loads of ~3 graphs."""

    def __init__(
        self,
        src: Path,
        algorithm: str = "k_quant",
        block_size: int = BLOCK_SIZE,
        cache: Path | None = None,
    ) -> None:
        self.src, self.algorithm, self.block_size, self.cache = src, algorithm, block_size, cache
        self._fp32: Any = None
        self._quantized: dict[int, Any] = {}

    def fp32(self) -> Any:
        if self._fp32 is None:
            import onnx

            self._fp32 = onnx.load(str(self.src))
        return self._fp32

    def quantized(self, bits: int) -> Any:
        if bits not in self._quantized:
            self._quantized[bits] = quantize_all(
                self.src, bits, self.algorithm, self.block_size, self.cache
            )
        return self._quantized[bits]

    def assemble(self, nodes: list[FusedNode], types: Mapping[str, GGMLQuantizationType]) -> Any:
        """The planned graph in memory (a copy; the parts stay untouched)."""
        import onnx

        bits_of = {
            n.node: NBITS[types[n.name]]
            for n in nodes
            if n.op == "MatMul" and types[n.name] in NBITS
        }
        out = onnx.ModelProto()
        out.CopyFrom(self.fp32())
        _assemble(out, {b: self.quantized(b) for b in sorted(set(bits_of.values()))}, bits_of)
        embed_nodes = [n for n in nodes if n.op == "Gather"]
        if not embed_nodes:  # tied
            _tie_embedding(out)
        else:
            _quantize_embedding(out, embed_nodes[0], types[embed_nodes[0].name], self.block_size)
        return out

    def write(
        self, dst: Path, nodes: list[FusedNode], types: Mapping[str, GGMLQuantizationType]
    ) -> dict[str, list[str]]:
        """Write the planned graph to `dst` (model.onnx + model.onnx.data); returns node lists."""
        import onnx

        out = self.assemble(nodes, types)
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(
            out, str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
            location=ONNX_DATA, size_threshold=1024,
        )  # fmt: skip
        by_bits: dict[str, list[str]] = {"4": [], "8": [], "float": []}
        for n in nodes:
            by_bits[str(NBITS.get(types[n.name], "float"))].append(n.node)
        return by_bits


def quantize_nbits(
    src: Path,
    dst: Path,
    nodes: list[FusedNode],
    the_plan: Plan,
    algorithm: str = "k_quant",
    block_size: int = BLOCK_SIZE,
    cache: Path | None = None,
) -> dict[str, list[str]]:
    """Write the planned graph to `dst` (model.onnx + model.onnx.data); returns the node lists."""
    return NbitsParts(src, algorithm, block_size, cache).write(dst, nodes, the_plan.types)


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
    _drop_unused(model)


def _quantize_embedding(
    model: Any, embed: FusedNode, qtype: GGMLQuantizationType, block: int
) -> None:
    """Untied table: the MatMuls' k_quant search and layout, read by GatherBlockQuantized."""
    if qtype not in NBITS:
        return
    from onnx import numpy_helper
    from onnxruntime.quantization.neural_compressor.weight_only import (
        make_matmul_weight_only_node,
        quant_tensor_k_quant_cpu,
    )

    bits = NBITS[qtype]
    init = _init(model, embed.weight)
    table = numpy_helper.to_array(init).astype("float32")  # (vocab, hidden)
    vocab, hidden = table.shape
    if hidden % block:
        return  # GatherBlockQuantized needs whole blocks along the hidden axis
    q, scale, zp = quant_tensor_k_quant_cpu(table, bits, block)
    gather = next(n for n in model.graph.node if n.name == embed.node)
    fake = type("N", (), {"input": ["x", embed.weight], "output": ["y"], "name": embed.node})
    _, inits = make_matmul_weight_only_node(
        fake,
        (hidden, vocab),
        bits,
        block,
        hidden // block,
        q.astype("uint8"),
        scale.astype("float32"),
        zp,
    )
    model.graph.initializer.extend(inits)
    names = [i.name for i in inits]  # scale, zero point, weight (that order)
    new = _gather_block_quantized(model, gather, names[2], names[0], names[1], bits, block)
    _replace_nodes(model, [gather], new)
    _drop_unused(model)


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
