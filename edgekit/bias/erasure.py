"""Directional erasure of social-group directions, written as a llama.cpp LoRA adapter.

Why erase instead of add. A constant vector added to the residual stream shifts both halves of a
paired probe alike, so it cancels out of a paired score (the old control vector removed ~6%).
Removing the component of the stream along the directions that separate the groups depends on
the input: it takes the group information itself away from what later blocks read.

Directions (per block l, calibration probes only). A pair probe's sentences A+X and B+X differ
only in the group (so do A+Y and B+Y); the difference of their mean block-l outputs over the
tokens from the first differing one on is a group contrast. Stacking every contrast of every
category gives a matrix whose top right-singular vectors span the group subspace U_l (k
orthonormal rows): LEACE's closed form for a binary concept is one such mean-difference
direction, and the SVD keeps the k that many contrasts share. Sign does not matter for erasure,
so contrasts with the groups in either order add up instead of cancelling.

Erasure. What block l writes into the stream is W x (W = attn_output or ffn_down), or for
post-norm models (Gemma) g * W x / rms(W x), where g is the post-norm weight. Removing U from the
write means W' = (I - a V V^T) W with V = orth(g * U^T) (V = U^T without a post-norm: then the
component along U of g * x' / rms is exactly zero at a = 1). That is a rank-k LoRA: B = -a V,
A = V^T W, with W dequantized from the model file itself, so scale 1 is exactly the projection
of the quantized model, scale 0 the base model, and between them a partial erasure. The token
embedding gets the same update (A = E V, B = -a V in llama.cpp's flipped embedding layout) when
the model has its own output head; a tied head shares the name token_embd.weight, and llama.cpp
would apply the embedding's LoRA to the output projection too, so it is skipped there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from edgekit.backends.base import FloatArray, HiddenStateSource
from edgekit.bias.probes import PairProbe
from edgekit.errors import AdapterFileError
from edgekit.gguf_file import ModelInfo, read_header

KEY_META = "edgekit.bias.erasure"  # JSON: layers, rank, weights, model fingerprint
_T = gguf.MODEL_TENSOR
# The matrices whose output is added to the residual stream, and the norm applied after them.
WRITERS: tuple[tuple[gguf.MODEL_TENSOR, gguf.MODEL_TENSOR], ...] = (
    (_T.ATTN_OUT, _T.ATTN_POST_NORM),
    (_T.FFN_DOWN, _T.FFN_POST_NORM),
)


def tensor_name(kind: gguf.MODEL_TENSOR, block: int | None = None) -> str:
    return gguf.TENSOR_NAMES[kind].format(bid=block) + ".weight"


@dataclass(frozen=True)
class Directions:
    """Per block, an orthonormal basis (k, n_embd) of the group subspace of its output."""

    bases: dict[int, FloatArray]
    energy: dict[int, float]  # share of the contrasts' squared norm the basis captures
    n_contrasts: int

    @property
    def rank(self) -> int:
        return max((b.shape[0] for b in self.bases.values()), default=0)

    def to_meta(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "n_contrasts": self.n_contrasts,
            "energy": {str(k): round(v, 4) for k, v in sorted(self.energy.items())},
        }


def group_contrasts(probes: Iterable[PairProbe]) -> list[tuple[str, str]]:
    """Sentence pairs that differ only in the group: (A+X, B+X) and (A+Y, B+Y)."""
    return [pair for p in probes for pair in ((p.stereo_a, p.anti_b), (p.anti_a, p.stereo_b))]


def _first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return max(1, min(n, len(a) - 1, len(b) - 1))


def collect_contrasts(
    states: HiddenStateSource,
    tokenize: Any,
    pairs: Sequence[tuple[str, str]],
) -> dict[int, FloatArray]:
    """Per block: (n_pairs, n_embd) differences of mean outputs from the first differing token.

    Position 0 is never included: Gemma keeps a huge BOS-only channel there.
    """
    rows: dict[int, list[FloatArray]] = {}
    for a, b in pairs:
        ta, tb = tokenize(a), tokenize(b)
        start = _first_difference(ta, tb)
        ha, hb = states.run(ta), states.run(tb)
        for layer in ha.keys() & hb.keys():
            rows.setdefault(layer, []).append(
                ha[layer][start:].mean(axis=0) - hb[layer][start:].mean(axis=0)
            )
    return {layer: np.stack(r).astype(np.float32) for layer, r in rows.items()}


def subspace(contrasts: FloatArray, max_rank: int, energy: float) -> tuple[FloatArray, float]:
    """The fewest top right-singular vectors (<= max_rank) holding `energy` of the contrasts."""
    _, s, vt = np.linalg.svd(contrasts.astype(np.float64), full_matrices=False)
    power = s**2
    total = float(power.sum())
    if total == 0:
        return np.zeros((0, contrasts.shape[1]), dtype=np.float32), 0.0
    cumulative = np.cumsum(power) / total
    k = min(max_rank, int(np.searchsorted(cumulative, energy)) + 1, len(s))
    return vt[:k].astype(np.float32), float(cumulative[k - 1])


def derive_directions(
    contrasts: Mapping[int, FloatArray], max_rank: int = 8, energy: float = 0.6
) -> Directions:
    bases: dict[int, FloatArray] = {}
    captured: dict[int, float] = {}
    for layer, d in sorted(contrasts.items()):
        bases[layer], captured[layer] = subspace(d, max_rank, energy)
    n = max((d.shape[0] for d in contrasts.values()), default=0)
    return Directions(bases, captured, n)


@dataclass(frozen=True)
class LoraTensor:
    """One LoRA pair in gguf-py's numpy layout: a (k, n_in), b (n_out, k)."""

    base: str  # the model tensor it modifies
    a: FloatArray
    b: FloatArray


def erasure_pair(
    name: str, weight: FloatArray, basis: FloatArray, norm: FloatArray | None, alpha: float
) -> LoraTensor:
    """W' = (I - alpha V V^T) W as a LoRA pair (weight is (n_out, n_in), basis (k, n_out))."""
    u = basis.T.astype(np.float64)
    if norm is not None:
        u = norm.astype(np.float64)[:, None] * u
    v, _ = np.linalg.qr(u)
    a = v.T @ weight.astype(np.float64)
    return LoraTensor(name, a.astype(np.float32), (-alpha * v).astype(np.float32))


def embedding_pair(embedding: FloatArray, basis: FloatArray, alpha: float) -> LoraTensor:
    """The token embedding's erasure in llama.cpp's layout: a (n_vocab, k), b (n_embd, k)."""
    v = basis.T.astype(np.float64)
    a = embedding.astype(np.float64) @ v
    return LoraTensor(
        tensor_name(_T.TOKEN_EMBD), a.astype(np.float32), (-alpha * v).astype(np.float32)
    )


class ModelWeights:
    """Dequantized tensors of a GGUF model file, read on demand with gguf-py."""

    def __init__(self, path: Path) -> None:
        self.reader = gguf.GGUFReader(str(path))
        self.tensors = {t.name: t for t in self.reader.tensors}
        arch = self.reader.get_field(gguf.Keys.General.ARCHITECTURE)
        self.architecture = str(arch.contents()) if arch is not None else ""

    def has(self, name: str) -> bool:
        return name in self.tensors

    def get(self, name: str) -> FloatArray:
        t = self.tensors[name]
        data = gguf.quants.dequantize(t.data, t.tensor_type)
        # ggml's ne is reversed numpy order: a (n_in, n_out) tensor reads as (n_out, n_in).
        return np.asarray(data, dtype=np.float32).reshape([int(x) for x in reversed(t.shape)])

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(x) for x in self.tensors[name].shape)


def build_adapter(
    weights: ModelWeights, directions: Directions, alphas: Mapping[int, float]
) -> list[LoraTensor]:
    """LoRA pairs erasing U_l from block l's writes, with a_l = alphas[l] baked into B."""
    out: list[LoraTensor] = []
    for layer, alpha in sorted(alphas.items()):
        basis = directions.bases.get(layer)
        if not alpha or basis is None or basis.shape[0] == 0:
            continue
        for writer, post_norm in WRITERS:
            name = tensor_name(writer, layer)
            if not weights.has(name):
                continue
            norm_name = tensor_name(post_norm, layer)
            norm = weights.get(norm_name) if weights.has(norm_name) else None
            out.append(erasure_pair(name, weights.get(name), basis, norm, alpha))
    # The embedding is the first write into the stream: it goes with block 0's weight.
    tied = not weights.has(tensor_name(_T.OUTPUT))
    if alphas.get(0) and not tied and 0 in directions.bases:
        embd = tensor_name(_T.TOKEN_EMBD)
        out.append(embedding_pair(weights.get(embd), directions.bases[0], alphas[0]))
    return out


def write_adapter(
    path: Path, architecture: str, tensors: Sequence[LoraTensor], meta: dict[str, Any]
) -> Path:
    """llama.cpp's GGUF LoRA format (as convert_lora_to_gguf.py writes it), atomically.

    alpha = 0 tells llama.cpp to use the user's scale as it is (otherwise scale * alpha / rank,
    and the rank differs per block here).
    """
    if not tensors:
        raise AdapterFileError("nothing to erase: no block has a direction and a weight")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)
    writer.add_string(KEY_META, json.dumps(meta, sort_keys=True))
    for t in tensors:
        writer.add_tensor(
            t.base.removesuffix(".weight") + ".weight.lora_a", np.ascontiguousarray(t.a)
        )
        writer.add_tensor(
            t.base.removesuffix(".weight") + ".weight.lora_b", np.ascontiguousarray(t.b)
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)
    return path


def check_adapter(adapter: Path, model: ModelInfo) -> dict[str, Any]:
    """Refuse an adapter made for another model before llama.cpp sees it; return its metadata.

    The same checks llama.cpp's loader makes (type, architecture, every base tensor present,
    shapes), but as an error that names the tensor instead of a failed load.
    """
    if not adapter.is_file():
        raise AdapterFileError(f"adapter not found: {adapter}")
    header = read_header(adapter)
    md = header.metadata
    if (
        md.get(gguf.Keys.General.TYPE) != gguf.GGUFType.ADAPTER
        or md.get(gguf.Keys.Adapter.TYPE) != "lora"
    ):
        raise AdapterFileError(f"{adapter.name} is not a LoRA adapter GGUF")
    arch = md.get(gguf.Keys.General.ARCHITECTURE)
    hint = "Run `edgekit bias --mitigate` on this model to make its own adapter."
    if arch != model.architecture:
        raise AdapterFileError(
            f"{adapter.name} is for a {arch} model, {model.path.name} is {model.architecture}",
            hint=hint,
        )
    pairs: dict[str, dict[str, tuple[int, ...]]] = {}
    for t in header.tensors:
        base, _, part = t.name.rpartition(".lora_")
        if part not in ("a", "b"):
            raise AdapterFileError(f"{adapter.name}: {t.name} is not a lora_a / lora_b tensor")
        pairs.setdefault(base, {})[part] = tuple(t.shape)
    shapes = {t.name: tuple(t.shape) for t in model.tensors}
    for base, ab in pairs.items():
        if "a" not in ab or "b" not in ab:
            raise AdapterFileError(f"{adapter.name}: {base} lacks its lora_a or lora_b")
        if base not in shapes:
            raise AdapterFileError(
                f"{adapter.name} modifies {base}, which {model.path.name} does not have", hint=hint
            )
        ne, a, b = shapes[base], ab["a"], ab["b"]
        if base == tensor_name(_T.TOKEN_EMBD):
            fits = ne[0] == b[1] and ne[1] == a[1] and a[0] == b[0]
        else:
            fits = ne[0] == a[0] and ne[1] == b[1] and a[1] == b[0]
        if not fits:
            raise AdapterFileError(
                f"{adapter.name} was made for another model: {base} is {list(ne)} in "
                f"{model.path.name}, the adapter's A and B are {list(a)} and {list(b)}",
                hint=hint,
            )
    meta = md.get(KEY_META)
    return dict(json.loads(meta)) if isinstance(meta, str) else {}
