"""Directional erasure of social-group information, written as a llama.cpp LoRA adapter.

Why erase instead of add. A constant vector added to the residual stream shifts both halves of a
paired probe alike, so it cancels out of a paired score (the old control vector removed ~6%).
Removing what separates the groups depends on the input: it takes the group information itself
away from what later blocks read.

Where. Each block's attention output matrix (attn_output) reads what attention moved: the heads'
weighted values, concatenated (`kqv_out-N` in llama.cpp's graph, n_head x head_dim wide). A
later token learns the group of an earlier one only through that, so erasing the group there,
R' = R (I - D A), cuts every path: the group carried in the values, and the group that the
attention *pattern* picks out (which token a head attends to also depends on the group, and
erasing values alone leaves that). The model's own computation at each position, its queries,
keys, values and feed-forward part, keeps its inputs.

Measured on Gemma 3 270M, the same contrasts and scale 1 on every block, held-out split /
perplexity on GPL-3 tokens 1024-2047: at the attention output, rank 54 -52% / +1.4%, rank 108
-79% / +4.9%; at the input of the value matrix (the earlier site) rank 54 -46% / +4.6%; values
and keys -41% / +11%.

Not on what the writers put into the stream, W' = (I - P) W for attn_output and ffn_down: the
token embedding, often tied to the output head, puts the group identity into the stream before
any block writes, and a writer-side orthogonal projection also removes the stream's mean along
the direction: Gemma's stream has a few huge channels, the group contrasts of the block outputs
point 65-90% along them, and projecting them out took perplexity from 25 to 10^8.

What. Per block's reader input: the contrasts of sentence pairs that differ only in the group
(calibration pairs and the group lexicon, see lexicon.py; mean state from the first differing
token on), and the input's own mean and covariance S on ordinary text. LEACE (Belrose et al.
2023) erases a concept with the least expected change: whiten by S^-1/2, take the contrasts'
top-k right-singular vectors V there, and remove x's coordinates along D = S^1/2 V, read out
obliquely by the A that solves
    min tr(A S A^T)  subject to  A D = I,  A mu = 0.
A D = I makes every calibration contrast's top-k part vanish; A mu = 0 keeps the mean, so no
bias term is needed (a LoRA has none); minimising A S A^T removes as little natural variation as
possible. That costs almost no perplexity where an orthogonal projection of the same contrasts
(S = I) costs a lot (measured on Gemma 3 270M, rank 16: perplexity +0% vs +137%).

LoRA. B = -alpha R D (n_out, k), A (k, n_in), R dequantized from the model file itself, so scale
1 is exactly the erasure in the quantized model, scale 0 the base model, between them a partial
erasure; alpha_l, the per-block constraint weight, is baked into B.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt

from edgekit.backends.base import FloatArray
from edgekit.bias.probes import PairProbe
from edgekit.errors import AdapterFileError
from edgekit.gguf.reader import ModelInfo, read_header
from edgekit.outputs import atomic_output

KEY_META = "edgekit.bias.erasure"  # JSON: layers, rank, weights, model fingerprint
_T = gguf.MODEL_TENSOR
# The input llama.cpp names in its graph, and the matrices erased where they read it.
READERS: dict[str, tuple[gguf.MODEL_TENSOR, ...]] = {"kqv_out": (_T.ATTN_OUT,)}
POINTS = tuple(READERS)
Site = tuple[str, int]  # (reader input, block)
Array = npt.NDArray[np.floating[Any]]  # statistics are summed in float64


def tensor_name(kind: gguf.MODEL_TENSOR, block: int | None = None) -> str:
    return gguf.TENSOR_NAMES[kind].format(bid=block) + ".weight"


@dataclass(frozen=True)
class Eraser:
    """x -> x - delta (readout x) on one reader input: rank k = delta's columns."""

    delta: FloatArray  # (n, k)
    readout: FloatArray  # (k, n)

    @property
    def rank(self) -> int:
        return int(self.delta.shape[1])


@dataclass(frozen=True)
class Directions:
    """The erasers of every reader input, keyed by (point, block)."""

    erasers: dict[Site, Eraser]
    n_contrasts: int

    @property
    def rank(self) -> int:
        return max((e.rank for e in self.erasers.values()), default=0)

    @property
    def blocks(self) -> list[int]:
        return sorted({b for _, b in self.erasers})

    def to_meta(self) -> dict[str, Any]:
        return {"rank": self.rank, "n_contrasts": self.n_contrasts, "method": "leace-readers"}

    @classmethod
    def orthogonal(cls, bases: Mapping[int, FloatArray]) -> Directions:
        """Orthogonal projections off the rows of each block's basis (LEACE with S = I)."""
        erasers = {}
        for block, basis in bases.items():
            q, _ = np.linalg.qr(basis.T.astype(np.float64))
            for point in POINTS:
                erasers[(point, block)] = Eraser(q.astype(np.float32), q.T.astype(np.float32))
        return cls(erasers, 0)


def group_contrasts(probes: Iterable[PairProbe]) -> list[tuple[str, str]]:
    """Sentence pairs that differ only in the group: (A+X, B+X) and (A+Y, B+Y)."""
    return [pair for p in probes for pair in ((p.stereo_a, p.anti_b), (p.anti_a, p.stereo_b))]


def contrast_labels(probes: Iterable[PairProbe]) -> list[str]:
    """The category of each pair group_contrasts returns, in the same order."""
    return [p.category for p in probes for _ in range(2)]


def contrast_sources(probes: Iterable[PairProbe]) -> list[str]:
    """The probe source of each pair group_contrasts returns, in the same order."""
    return [p.source for p in probes for _ in range(2)]


@dataclass(frozen=True)
class Whitening:
    """A covariance shrunk by `shrink` (see SHRINK), kept as its eigenvectors and eigenvalues:
    the products with S^(1/2), S^(-1/2) and S^-1 are taken through them, so no n x n power of S
    is ever formed (three of them, float64, were 25 MB per reader input on Gemma 3 270M)."""

    q: Array
    ev: Array

    @classmethod
    def of(cls, cov: Array, shrink: float) -> Whitening:
        n = cov.shape[0]
        s = cov.astype(np.float64) + shrink * float(np.trace(cov)) / n * np.eye(n)
        ev, q = np.linalg.eigh(s)
        return cls(q, np.maximum(ev, ev.max() * 1e-9))

    @property
    def n(self) -> int:
        return int(self.q.shape[0])

    def whiten(self, rows: Array) -> Array:
        """rows @ S^(-1/2)."""
        return ((rows @ self.q) / np.sqrt(self.ev)) @ self.q.T

    def colour(self, cols: Array) -> Array:
        """S^(1/2) @ cols."""
        return self.q @ (np.sqrt(self.ev)[:, None] * (self.q.T @ cols))

    def solve(self, cols: Array) -> Array:
        """S^-1 @ cols."""
        return self.q @ ((self.q.T @ cols) / self.ev[:, None])


@dataclass
class Statistics:
    """Running sums of one reader input's states (position 0 left out: Gemma keeps a huge
    BOS-only channel there), for its mean and covariance."""

    n: int = 0
    total: Array | None = None
    outer: Array | None = None
    # The whitening depends on the plain text alone, which every fold and rank of a search
    # shares: computed once per shrink (an eigh of a 1,024-wide matrix per reader input on
    # Gemma 3 270M, with the three products it replaced about half of a derivation).
    _whitened: dict[float, Whitening] = field(default_factory=dict, repr=False, compare=False)

    def add(self, states: FloatArray) -> None:
        x = states.astype(np.float64)
        self.n += len(x)
        s, o = x.sum(axis=0), x.T @ x
        self.total = s if self.total is None else self.total + s
        self.outer = o if self.outer is None else self.outer + o
        self._whitened.clear()

    def whitening(self, shrink: float) -> Whitening:
        if shrink not in self._whitened:
            self._whitened[shrink] = Whitening.of(self.moments()[1], shrink)
        return self._whitened[shrink]

    def moments(self) -> tuple[Array, Array]:
        if self.total is None or self.outer is None or self.n < 2:
            raise ValueError("too few states for a covariance")
        mean = self.total / self.n
        return mean, (self.outer - self.n * np.outer(mean, mean)) / (self.n - 1)


@dataclass(frozen=True)
class Observations:
    """What calibration saw at every reader input: pair contrasts and plain-text statistics."""

    contrasts: dict[Site, FloatArray]  # (n_pairs, n)
    statistics: dict[Site, Statistics]
    labels: tuple[str, ...] = ()  # each contrast row's category, when known
    sources: tuple[str, ...] = ()  # each row's probe source ("" for the lexicon), when known

    def without(self, sources: set[str]) -> Observations:
        """The same observations less the contrast rows of `sources` (the statistics stay)."""
        if not self.sources:
            raise ValueError("these observations were made without their rows' sources")
        keep = [i for i, s in enumerate(self.sources) if s not in sources]
        return Observations(
            {site: rows[keep] for site, rows in self.contrasts.items()},
            self.statistics,
            tuple(self.labels[i] for i in keep) if self.labels else (),
            tuple(self.sources[i] for i in keep),
        )


def _singular_bases(white: Array, labels: Sequence[str]) -> tuple[list[Array], bool]:
    """The whitened contrasts' right singular vectors: of all of them, or with labels of each
    category's own contrasts (then True). Every rank of a search truncates the same ones."""
    if len(labels) != len(white):
        return [np.linalg.svd(white, full_matrices=False)[2]], False
    groups = sorted(set(labels))
    rows = [white[[lab == g for lab in labels]] for g in groups]
    return [np.linalg.svd(r, full_matrices=False)[2] for r in rows], True


def _top_directions(bases: list[Array], rank: int, per_category: bool) -> Array:
    """Orthonormal rows spanning the top directions: the top `rank` of all contrasts, or per
    category an equal share of the rank, so that the categories whose contrasts are largest do
    not take every direction."""
    if not per_category:
        return bases[0][:rank]
    share = max(1, -(-rank // len(bases)))
    q, _ = np.linalg.qr(np.concatenate([vt[:share] for vt in bases]).T)
    return q.T[: min(len(q.T), share * len(bases))]


# How far S is pulled toward a multiple of the identity (a share of its mean variance): tens of
# thousands of states do not pin down every direction of a 1,024-wide covariance, and whitening by
# the noisy small eigenvalues erases variation the estimate missed; too much shrinkage makes the
# eraser an orthogonal projection, which costs far more. Chosen on calibration data (Gemma 3
# 270M, attention output, every block, rank 108, ~37k states; out-of-fold bias over four folds /
# perplexity on GPL-3 tokens 1024-2047): 0.05: 0.033 / +3.5%; 0.1: 0.025 / +3.9%; 0.2:
# 0.028 / +4.2%. (At the old value-input site with a quarter of the text, 0.01 cost +6.5%.)
SHRINK = 0.1


def leace_eraser(
    contrasts: Array,
    mean: Array,
    cov: Array,
    rank: int,
    shrink: float = SHRINK,
    labels: Sequence[str] = (),
    white: Whitening | None = None,
) -> Eraser:
    """The least-change eraser of the contrasts' top whitened directions (module doc), with S
    shrunk by `shrink` (see SHRINK); `white`: S's whitening, when already computed."""
    w = white or Whitening.of(cov, shrink)
    bases, per_category = _singular_bases(w.whiten(contrasts.astype(np.float64)), labels)
    return _eraser(_top_directions(bases, rank, per_category), mean, w)


def _eraser(v: Array, mean: Array, white: Whitening) -> Eraser:
    # At most n - 1 directions: A mu = 0 needs one dimension of its own (a rank as wide as a
    # small model's input would leave the constraints singular).
    v = v[: white.n - 1]
    k = v.shape[0]
    delta = white.colour(v.T)
    g = np.concatenate([delta, mean.astype(np.float64)[:, None]], axis=1)
    # Lagrange: A = C^T G^T S^-1 with (G^T S^-1 G) C = [I; 0]; the last column keeps the mean.
    target = np.zeros((k + 1, k))
    target[:k] = np.eye(k)
    inv_g = white.solve(g)
    c = np.linalg.solve(g.T @ inv_g, target)
    readout = (inv_g @ c).T
    return Eraser(delta.astype(np.float32), readout.astype(np.float32))


def derive_directions(obs: Observations, rank: int = 16, shrink: float = SHRINK) -> Directions:
    return derive_at_ranks(obs, (rank,), shrink)[rank]


def derive_at_ranks(
    obs: Observations, ranks: Sequence[int], shrink: float = SHRINK
) -> dict[int, Directions]:
    """Directions at each rank, from one whitening and one decomposition per reader input."""
    erasers: dict[int, dict[Site, Eraser]] = {r: {} for r in ranks}
    for site, contrasts in sorted(obs.contrasts.items()):
        stats = obs.statistics[site]
        mean, white = stats.moments()[0], stats.whitening(shrink)
        bases, per_category = _singular_bases(
            white.whiten(contrasts.astype(np.float64)), obs.labels
        )
        for r in ranks:
            erasers[r][site] = _eraser(_top_directions(bases, r, per_category), mean, white)
    n = max((c.shape[0] for c in obs.contrasts.values()), default=0)
    return {r: Directions(found, n) for r, found in erasers.items()}


@dataclass(frozen=True)
class LoraTensor:
    """One LoRA pair in gguf-py's numpy layout: a (k, n_in), b (n_out, k)."""

    base: str  # the model tensor it modifies
    a: FloatArray
    b: FloatArray


def reader_pair(name: str, weight: FloatArray, eraser: Eraser, alpha: float) -> LoraTensor:
    """R' = R (I - alpha D A) as a LoRA pair (weight is (n_out, n_in))."""
    b = -alpha * (weight.astype(np.float64) @ eraser.delta.astype(np.float64))
    return LoraTensor(name, eraser.readout.astype(np.float32), b.astype(np.float32))


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
    weights: ModelWeights,
    directions: Directions,
    alphas: Mapping[int, float],
    readers: Mapping[str, tuple[gguf.MODEL_TENSOR, ...]] = READERS,
) -> list[LoraTensor]:
    """LoRA pairs erasing at block l's readers, with a_l = alphas[l] baked into B."""
    out: list[LoraTensor] = []
    for (point, block), eraser in sorted(directions.erasers.items()):
        alpha = alphas.get(block, 0.0)
        if not alpha or eraser.rank == 0:
            continue
        for kind in readers.get(point, ()):
            name = tensor_name(kind, block)
            if weights.has(name):
                out.append(reader_pair(name, weights.get(name), eraser, alpha))
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
    with atomic_output(path, make_parent=True) as tmp:
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
