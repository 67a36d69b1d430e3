"""A probe graph cut where its first changed block begins: the blocks before it run once.

A sensitivity probe moves one group of nodes to 4 bits in an all-8-bit background, so every
block before the group's first one computes exactly what the background computed. The
background graph also returns the tensors that cross into each probed block (`with_outputs`),
kept per window and prompt chunk; a probe then runs only its suffix graph (`suffix`), fed those
tensors: the same kernels on the same inputs, so the same log-probs, for about half the work
of a block probe. Blocks are the builder's node name prefixes: `/model/layers.N/`, where
N = the block count holds the final norm. The embedding counts as before block 0; nodes of no
block (the attention mask's reshaping, constants) stay in every suffix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_BLOCK = re.compile(r"^/model/layers\.(\d+)/")
_EMBED = "/model/embed_tokens/"


def block_of(node_name: str) -> int | None:
    """The block a builder node belongs to (the final norm is block N), None if shared."""
    m = _BLOCK.match(node_name)
    return int(m[1]) if m else None


def _in_prefix(node: Any, start: int) -> bool:
    b = block_of(node.name)
    return node.name.startswith(_EMBED) or (b is not None and b < start)


def crossing(graph: Any, start: int) -> list[str]:
    """Tensors made before block `start` and read from it on (in graph order, no duplicates)."""
    made = {o for n in graph.node if _in_prefix(n, start) for o in n.output if o}
    found: dict[str, None] = {}
    for n in graph.node:
        if not _in_prefix(n, start):
            found.update((i, None) for i in n.input if i in made)
    return list(found)


def with_outputs(model: Any, names: Iterable[str]) -> Any:
    """`model` also returning `names` (float32 tensors of the residual stream)."""
    from onnx import TensorProto, helper

    out = type(model)()
    out.CopyFrom(model)
    have = {o.name for o in out.graph.output}
    out.graph.output.extend(
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names if n not in have
    )
    return out


def suffix(model: Any, start: int) -> Any:
    """The graph from block `start` on: the crossing tensors become inputs, the blocks before
    (their nodes, cache inputs and outputs, weights) go."""
    from onnx import TensorProto, helper

    graph = model.graph
    cut = crossing(graph, start)
    nodes = [n for n in graph.node if not _in_prefix(n, start)]
    read = {i for n in nodes for i in n.input}
    inputs = [i for i in graph.input if i.name in read]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in cut]
    made = {o for n in nodes for o in n.output}
    outputs = [o for o in graph.output if o.name in made]
    inits = [t for t in graph.initializer if t.name in read]
    new = helper.make_graph(nodes, graph.name, inputs, outputs, inits)
    return helper.make_model(new, opset_imports=model.opset_import, ir_version=model.ir_version)
