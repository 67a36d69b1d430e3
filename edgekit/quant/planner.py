"""The precision planner: spike scores + base type + recipe -> one ggml type per tensor. Pure.

Every tensor's type is decided in one fixed order, and the rule that decided it is recorded:
  1. hard rules: 1-D tensors (norms, biases) stay F32; tensors llama.cpp never quantizes keep
     the type they have in the base file;
  2. the output head (or the token embedding when it is tied to the output) gets `output_type`;
  3. the recipe keeps its chosen tensors at `high_type`;
  4. everything else gets the base type;
  5. a type whose block does not divide the tensor's rows falls back exactly as llama.cpp's
     quantizer would (Q4_K -> Q5_0 ...), so the plan is what the file will really hold.
Recipes only choose the set of kept tensors (step 3); sizes come from gguf's GGML_QUANT_SIZES.
"""

from __future__ import annotations

import logging
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from gguf import GGML_QUANT_SIZES, MODEL_TENSOR, TENSOR_NAMES, GGMLQuantizationType

from edgekit.errors import PlanError
from edgekit.quant.types import FALLBACK

log = logging.getLogger("edgekit.quant.planner")

Q = GGMLQuantizationType

_OUTPUT = TENSOR_NAMES[MODEL_TENSOR.OUTPUT] + ".weight"
_TOKEN_EMBD = TENSOR_NAMES[MODEL_TENSOR.TOKEN_EMBD] + ".weight"
# 2-D tensors llama.cpp's quantizer copies unchanged whatever it is asked.
_NEVER_QUANTIZED = tuple(
    TENSOR_NAMES[t].split(".")[-1]
    for t in (MODEL_TENSOR.POS_EMBD, MODEL_TENSOR.TOKEN_TYPES, MODEL_TENSOR.FFN_GATE_INP)
)


class TensorLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...  # GGUF order: shape[0] is the row length
    @property
    def ggml_type(self) -> GGMLQuantizationType: ...


@dataclass(frozen=True)
class Spike:
    """Keep the layers whose score stands out, and at most `top_k` of them.

    "Stands out" is `score >= threshold` when a threshold is given, else `score >= relative x the
    median score`: absolute scores differ by orders of magnitude between families (LLaMA-2's
    spike is ~4000, Gemma 3 270M's ~11 over a median of ~2.5), the outlier ratio does not.
    """

    threshold: float | None = None
    top_k: int | None = None
    relative: float = 3.0
    high_type: GGMLQuantizationType = Q.Q8_0
    name: str = field(default="spike", init=False)


@dataclass(frozen=True)
class TargetBpw:
    """Promote layers in score order while the whole file stays within `bpw` bits per weight."""

    bpw: float
    high_type: GGMLQuantizationType = Q.Q8_0
    name: str = field(default="target-bpw", init=False)


@dataclass(frozen=True)
class RandomLayers:
    """The paper's control: promote random scored layers (`k` of them, or up to `bpw`)."""

    seed: int = 0
    k: int | None = None
    bpw: float | None = None
    high_type: GGMLQuantizationType = Q.Q8_0
    name: str = field(default="random", init=False)


Recipe = Spike | TargetBpw | RandomLayers
Builder = Callable[[set[str]], tuple["Decision", ...]]


@dataclass(frozen=True)
class Decision:
    tensor: str
    type: GGMLQuantizationType
    rule: str  # "1-D", "copy", "output", "kept", "base"
    n_elements: int
    score: float | None = None
    note: str = ""

    @property
    def n_bytes(self) -> int:
        return nbytes(self.type, self.n_elements)


@dataclass(frozen=True)
class Plan:
    recipe: str
    params: dict[str, Any]
    base_type: GGMLQuantizationType
    decisions: tuple[Decision, ...]

    @property
    def types(self) -> dict[str, GGMLQuantizationType]:
        return {d.tensor: d.type for d in self.decisions}

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.rule == "kept"]

    @property
    def n_bytes(self) -> int:
        return sum(d.n_bytes for d in self.decisions)

    @property
    def n_params(self) -> int:
        return sum(d.n_elements for d in self.decisions)

    @property
    def bpw(self) -> float:
        return 8 * self.n_bytes / self.n_params if self.n_params else 0.0

    def lines(self) -> list[str]:
        return [_line(d) for d in self.decisions]

    def to_dict(self, tensors: bool = True) -> dict[str, Any]:
        """plan.json's fields; `tensors=False` leaves out the per-tensor list."""
        doc: dict[str, Any] = {
            "recipe": self.recipe,
            "params": self.params,
            "base_type": self.base_type.name,
            "tensor_bytes": self.n_bytes,
            "n_params": self.n_params,
            "bits_per_weight": round(self.bpw, 4),
        }
        if tensors:
            doc["tensors"] = [{**asdict(d), "type": d.type.name} for d in self.decisions]
        return doc


def _line(d: Decision) -> str:
    score = f" score={d.score:.1f}" if d.score is not None else ""
    note = f" ({d.note})" if d.note else ""
    return f"{d.tensor:<40} {d.type.name:<6} {d.rule}{score}{note}"


def nbytes(t: GGMLQuantizationType, n_elements: int) -> int:
    block, size = GGML_QUANT_SIZES[t]
    return n_elements // block * size


def compatible(t: GGMLQuantizationType, row: int) -> tuple[GGMLQuantizationType, str]:
    """The type llama.cpp will really write for rows of `row` values, and why it differs."""
    if row % GGML_QUANT_SIZES[t][0] == 0:
        return t, ""
    fallback = FALLBACK.get(t)
    if fallback is None:
        raise PlanError(
            f"{t.name} needs rows divisible by {GGML_QUANT_SIZES[t][0]}, this tensor has {row}",
            hint="Choose another type (K-quants fall back automatically).",
        )
    if row % GGML_QUANT_SIZES[fallback][0] != 0:
        fallback = Q.F16
    return fallback, f"{t.name} fallback: rows of {row}"


def _n(t: TensorLike) -> int:
    n = 1
    for d in t.shape:
        n *= d
    return n


def _fixed_rule(t: TensorLike, has_output: bool) -> str | None:
    if len(t.shape) < 2:
        return "1-D"
    if any(t.name.endswith(f".{s}.weight") or t.name == f"{s}.weight" for s in _NEVER_QUANTIZED):
        return "copy"
    if t.name == _OUTPUT or (t.name == _TOKEN_EMBD and not has_output):
        return "output"
    return None


def _decide(
    t: TensorLike,
    rule: str,
    want: GGMLQuantizationType,
    score: float | None,
) -> Decision:
    if rule == "1-D":
        return Decision(t.name, Q.F32, rule, _n(t), score)
    if rule == "copy":
        return Decision(t.name, t.ggml_type, rule, _n(t), score)
    real, note = compatible(want, t.shape[0])
    return Decision(t.name, real, rule, _n(t), score, note)


def plan(
    tensors: Sequence[TensorLike],
    scores: Mapping[str, float],
    base_type: GGMLQuantizationType,
    recipe: Recipe,
    output_type: GGMLQuantizationType = Q.Q6_K,
    base_mix: Mapping[str, GGMLQuantizationType] | None = None,
) -> Plan:
    """Decide every tensor's type; see the module docstring for the order.

    `base_mix` optionally replaces the uniform base type per tensor (e.g. the types of llama.cpp's
    stock Q4_K_M mix, read from a file it wrote), so a recipe can start from that mix.
    """
    mix = base_mix or {}
    has_output = any(t.name == _OUTPUT for t in tensors)
    fixed = {t.name: _fixed_rule(t, has_output) for t in tensors}
    candidates = [t for t in tensors if fixed[t.name] is None and t.name in scores]
    want = {"output": output_type, "kept": recipe.high_type, "base": base_type}
    want |= dict.fromkeys(("1-D", "copy"), base_type)  # not used: those rules fix their type

    def build(kept: set[str]) -> tuple[Decision, ...]:
        out = []
        for t in tensors:
            rule = fixed[t.name] or ("kept" if t.name in kept else "base")
            chosen = mix.get(t.name, want[rule]) if rule in ("base", "output") else want[rule]
            out.append(_decide(t, rule, chosen, scores.get(t.name)))
        return tuple(out)

    kept = _choose(recipe, candidates, scores, build)
    decisions = build(kept)
    params = {
        k: (v.name if isinstance(v, GGMLQuantizationType) else v) for k, v in asdict(recipe).items()
    }
    result = Plan(recipe.name, params, base_type, decisions)
    for line in result.lines():
        log.info(line)
    return result


def _ranked(candidates: Sequence[TensorLike], scores: Mapping[str, float]) -> list[TensorLike]:
    # Ties broken by name so the same scores always give the same plan.
    return sorted(candidates, key=lambda t: (-scores[t.name], t.name))


def _choose(
    recipe: Recipe,
    candidates: Sequence[TensorLike],
    scores: Mapping[str, float],
    build: Builder,
) -> set[str]:
    if isinstance(recipe, Spike):
        ranked = _ranked(candidates, scores)
        cut = recipe.threshold
        if cut is None and ranked:
            cut = recipe.relative * statistics.median(scores[t.name] for t in ranked)
        if cut is not None:
            ranked = [t for t in ranked if scores[t.name] >= cut]
        if recipe.top_k is not None:
            ranked = ranked[: max(recipe.top_k, 0)]
        return {t.name for t in ranked}
    if isinstance(recipe, TargetBpw):
        return _fill(_ranked(candidates, scores), recipe.bpw, build)
    order = list(_ranked(candidates, scores))
    random.Random(recipe.seed).shuffle(order)
    if recipe.k is not None:
        return {t.name for t in order[: max(recipe.k, 0)]}
    if recipe.bpw is None:
        raise PlanError("the random recipe needs k or a bpw budget")
    return _fill(order, recipe.bpw, build)


def _fill(order: Sequence[TensorLike], bpw: float, build: Builder) -> set[str]:
    """Greedy: walk `order`, promote a tensor whenever the file still fits the budget."""
    base: tuple[Decision, ...] = build(set())
    n_params = sum(d.n_elements for d in base)
    budget = bpw * n_params / 8
    used = sum(d.n_bytes for d in base)
    if used > budget:
        raise PlanError(
            f"the base type alone needs {8 * used / n_params:.3f} bits per weight, "
            f"more than the target {bpw}",
            hint="Choose a lower --type or a higher --target-bpw.",
        )
    by_name = {d.tensor: d for d in base}
    promoted: tuple[Decision, ...] = build({t.name for t in order})
    extra = {d.tensor: d.n_bytes - by_name[d.tensor].n_bytes for d in promoted}
    kept: set[str] = set()
    for t in order:
        if used + extra[t.name] <= budget:
            kept.add(t.name)
            used += extra[t.name]
    return kept
