"""Per-layer steering vectors from the model's own hidden states on contrastive probe pairs.

For each calibration pair (stereotypical sentence, anti-stereotypical sentence; they differ only
in the attribute) and each block output l_out-N, the hidden states are averaged over the tokens
from the first differing token to the end (earlier tokens are identical in both sentences, and
position 0 carries a huge BOS-only channel in Gemma). The layer's direction is the mean of
(anti - stereo) over pairs, kept as a unit direction plus its length (the layer's "contrast"):
llama.cpp's "mean" method, on the tokens that differ instead of on padded whole sequences.

Units. Block outputs grow from ~10^3 to ~3*10^4 in norm through the default model, and one pair's
difference is ~10% of that, but the mean over pairs is ~30x smaller again (different attributes
move the state in different directions; only the shared part survives the mean). A weight of 1.0
adds exactly the mean difference, as contrastive activation addition does. Weights relative to
the hidden-state norm broke the model (perplexity x40 at 5% of the norm) before they moved the
bias, so the schedule is in units of each layer's own contrast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edgekit.bias.hidden import HiddenStateReader
from edgekit.bias.scoring import common_prefix

FloatArray = npt.NDArray[np.float32]
Tokenize = Callable[[str], list[int]]


@dataclass(frozen=True)
class SteeringVectors:
    """Unit directions per block (row i is block i; block 0 stays zero), and layer statistics."""

    directions: FloatArray  # (n_layer, n_embd)
    contrast: FloatArray  # (n_layer,) length of the mean (anti - stereo) difference
    layer_norms: FloatArray  # (n_layer,) mean hidden-state norm of the calibration tokens
    consistency: FloatArray  # (n_layer,) share of pairs whose difference agrees with the mean
    n_pairs: int

    @property
    def n_layer(self) -> int:
        return int(self.directions.shape[0])

    @property
    def n_embd(self) -> int:
        return int(self.directions.shape[1])


@dataclass(frozen=True)
class LayerSchedule:
    """Which blocks get the constraint and how strongly at strength 1.0.

    weights[i] scales block i's mean (anti - stereo) difference: 1.0 adds it once.
    """

    weights: dict[int, float]

    @classmethod
    def band(cls, first: int, last: int, weight: float) -> LayerSchedule:
        return cls({i: weight for i in range(first, last + 1)})

    @property
    def layers(self) -> list[int]:
        return sorted(i for i, w in self.weights.items() if w)

    def to_dict(self) -> dict[str, float]:
        return {str(k): v for k, v in sorted(self.weights.items())}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> LayerSchedule:
        return cls({int(k): float(v) for k, v in d.items()})


def differing_suffix_means(
    h_a: dict[int, FloatArray], h_b: dict[int, FloatArray], start: int
) -> dict[int, FloatArray]:
    """Per layer: mean of b's hidden states minus mean of a's, over positions >= start."""
    return {
        layer: h_b[layer][start:].mean(axis=0) - h_a[layer][start:].mean(axis=0)
        for layer in h_a
        if layer in h_b
    }


def collect_differences(
    reader: HiddenStateReader,
    tokenize: Tokenize,
    pairs: Iterable[tuple[str, str]],
) -> tuple[dict[int, list[FloatArray]], dict[int, list[float]]]:
    """(anti - stereo) differences per layer, and hidden-state norms seen per layer."""
    diffs: dict[int, list[FloatArray]] = {}
    norms: dict[int, list[float]] = {}
    for stereo, anti in pairs:
        ts, ta = tokenize(stereo), tokenize(anti)
        start = max(1, common_prefix(ts, ta))
        hs, ha = reader.run(ts), reader.run(ta)
        for layer, d in differing_suffix_means(hs, ha, start).items():
            diffs.setdefault(layer, []).append(d)
        for layer, h in hs.items():
            norms.setdefault(layer, []).extend(np.linalg.norm(h[1:], axis=1).tolist())
    return diffs, norms


def mean_directions(
    diffs: dict[int, list[FloatArray]], norms: dict[int, list[float]], n_layer: int, n_embd: int
) -> SteeringVectors:
    directions = np.zeros((n_layer, n_embd), dtype=np.float32)
    contrast = np.zeros(n_layer, dtype=np.float32)
    layer_norms = np.zeros(n_layer, dtype=np.float32)
    consistency = np.zeros(n_layer, dtype=np.float32)
    n_pairs = 0
    for layer, ds in diffs.items():
        # Block 0 cannot carry a control vector in llama.cpp (its file format starts at 1).
        if not 1 <= layer < n_layer:
            continue
        stack = np.stack(ds)
        mean = stack.mean(axis=0)
        length = float(np.linalg.norm(mean))
        contrast[layer] = length
        if length > 0:
            directions[layer] = mean / length
            consistency[layer] = float((stack @ directions[layer] > 0).mean())
        layer_norms[layer] = float(np.mean(norms.get(layer, [0.0])))
        n_pairs = max(n_pairs, len(ds))
    return SteeringVectors(directions, contrast, layer_norms, consistency, n_pairs)


def derive_vectors(
    reader: HiddenStateReader,
    tokenize: Tokenize,
    pairs: Sequence[tuple[str, str]],
) -> SteeringVectors:
    diffs, norms = collect_differences(reader, tokenize, pairs)
    return mean_directions(diffs, norms, reader.n_layer, reader.n_embd)


def control_matrix(
    vectors: SteeringVectors, schedule: LayerSchedule, strength: float
) -> FloatArray:
    """What llama.cpp adds to each block output: (n_layer, n_embd), row i for block i."""
    out = np.zeros_like(vectors.directions)
    for layer, weight in schedule.weights.items():
        if 1 <= layer < vectors.n_layer:
            scale = strength * weight * float(vectors.contrast[layer])
            out[layer] = vectors.directions[layer] * scale
    return out
