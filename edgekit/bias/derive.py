"""Erasers and the control vector from a runtime: group contrasts in, directions out.

The contrasts are the calibration split's pairs and the group lexicon's neutral sentences
(lexicon.py); the held-out split is never read here. The covariance LEACE whitens with comes
from ordinary text (see COVARIANCE_TEXTS).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.base import FloatArray, HiddenStateSource, ScoringRuntime, first_difference
from edgekit.bias.erasure import (
    POINTS,
    Directions,
    Observations,
    Site,
    Statistics,
    contrast_labels,
    contrast_sources,
    derive_at_ranks,
    group_contrasts,
)
from edgekit.bias.lexicon import lexicon_contrasts
from edgekit.bias.probes import build_suite

# Twelve directions per category (9 categories): a category names 5-20 groups. At the attention
# output of every block of Gemma 3 270M (12-pair lexicon), 6, 9, 12 and 24 per category removed
# 52%, 70%, 79% and 81% of the held-out bias at +1.4%, +3.3%, +4.9% and +13.5% perplexity: past
# 12 the cost grows and the gain does not (perplexity on GPL-3 tokens 1024-2047). With the grown
# suite and S from prose alone, 12 removes 83% at +3.0% there (+1.4% on the rest of the text,
# bias_loop). `--mitigate` chooses the rank (calibrate.py); this is what the guard derives
# without it.
DEFAULT_RANK = 108


def text_windows(tokens: list[int], n_ctx: int) -> list[list[int]]:
    """Plain-text windows of at most n_ctx tokens, each starting with the first (BOS) token."""
    bos, body = tokens[:1], tokens[1:]
    step = max(1, n_ctx - len(bos))
    return [bos + body[i : i + step] for i in range(0, len(body), step)]


# Ordinary prose for the covariance LEACE whitens with, beside the project's calibration text.
# The covariance decides which directions count as "used by the model": estimated from the
# calibration text alone (~900 tokens) plus the probe sentences, rank 16 at scale 1 cost +38%
# perplexity on GPL-3 prose (Gemma 3 270M); with ~3,000 tokens of other license prose added,
# +8%. Never the text perplexity is reported on, nor its GPL relatives.
COVARIANCE_TEXTS = tuple(
    Path("/usr/share/common-licenses") / name
    for name in ("Apache-2.0", "MPL-2.0", "Artistic", "MPL-1.1", "GFDL-1.3", "CC0-1.0")
)
# Windows read per text (256 tokens each): 24 takes all of these texts, ~21k tokens. The
# attention output is n_head x head_dim wide (1,024 on Gemma 3 270M), and with 6 per text (~10k
# tokens) its covariance was noisy enough to cost: rank 108 on every block removed 79% of the
# held-out bias at +4.9% perplexity, with 24 85% at +4.2%. About 90 s more on 2 cores.
MAX_COVARIANCE_WINDOWS = 24


def covariance_windows(runtime: ScoringRuntime, n_ctx: int) -> list[list[int]]:
    from edgekit.bias.perplexity import reference_text
    from edgekit.texts.calibration import CALIBRATION_TEXT

    reported = reference_text()
    texts = [CALIBRATION_TEXT] + [
        p.read_text(encoding="utf-8", errors="replace")
        for p in COVARIANCE_TEXTS
        if p.is_file() and (reported is None or p != reported[0])
    ]
    windows = []
    for text in texts:
        windows += text_windows(runtime.tokenize(text), n_ctx)[:MAX_COVARIANCE_WINDOWS]
    return windows


# Pairs per read_many call: a back end decodes their sentences together where they fit.
PAIRS_PER_READ = 32


def observe(
    states: HiddenStateSource,
    tokenize: Any,
    pairs: Sequence[tuple[str, str]],
    texts: Sequence[Sequence[int]],
    labels: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    sources: Sequence[str] = (),
) -> Observations:
    """Contrasts of the pairs (mean state from the first differing token on, A minus B) and the
    statistics of the plain-text windows' states; `progress(done, total)` after each pair and
    text (minutes on a Pi).

    The pairs' own states stay out of the statistics: they are short template sentences about
    groups, 61% of the states the observation sees, and a covariance that counts them takes the
    template's and the groups' variation for the model's ordinary use of those directions (Gemma
    3 270M, every block at rank 108, held-out split: with them 79% of the bias removed at +4.3%
    perplexity on GPL-3 tokens 1024-2047, from plain text alone 83% at +3.0%)."""
    rows: dict[Site, list[FloatArray]] = {}
    stats: dict[Site, Statistics] = {}

    def record(read: dict[str, dict[int, FloatArray]]) -> None:
        for point, blocks in read.items():
            for block, x in blocks.items():
                stats.setdefault((point, block), Statistics()).add(x[1:])

    total = len(pairs) + len(texts)
    for lo in range(0, len(pairs), PAIRS_PER_READ):
        chunk = [(tokenize(a), tokenize(b)) for a, b in pairs[lo : lo + PAIRS_PER_READ]]
        reads = states.read_many([t for pair in chunk for t in pair])
        for k, (ta, tb) in enumerate(chunk):
            start = first_difference(ta, tb)
            ra, rb = reads[2 * k], reads[2 * k + 1]
            for point in ra.keys() & rb.keys():
                for block in ra[point].keys() & rb[point].keys():
                    d = ra[point][block][start:].mean(axis=0) - rb[point][block][start:].mean(
                        axis=0
                    )
                    rows.setdefault((point, block), []).append(d)
        if progress:
            progress(lo + len(chunk), total)
    for n, tokens in enumerate(texts, start=len(pairs) + 1):
        record(states.read(tokens))
        if progress:
            progress(n, total)
    contrasts = {site: np.stack(r).astype(np.float32) for site, r in rows.items()}
    return Observations(contrasts, stats, tuple(labels), tuple(sources))


def _contrast(
    ra: dict[str, dict[int, FloatArray]], rb: dict[str, dict[int, FloatArray]], start: int
) -> list[tuple[Site, FloatArray]]:
    """Per site both reads have: mean state of A minus that of B from the first differing token."""
    out = []
    for point in ra.keys() & rb.keys():
        for block in ra[point].keys() & rb[point].keys():
            a, b = ra[point][block][start:], rb[point][block][start:]
            out.append(((point, block), a.mean(axis=0) - b.mean(axis=0)))
    return out


def observe_contrasts(
    runtime: ScoringRuntime,
    n_ctx: int = 256,
    progress: Callable[[int, int], None] | None = None,
    lexicon: tuple[list[tuple[str, str]], list[str]] | None = None,
    points: Sequence[str] = POINTS,
) -> tuple[Observations, int]:
    """The reader inputs' group contrasts (calibration pairs and the group lexicon, or the
    `lexicon` given) and ordinary-text statistics at `points`, and the model's block count."""
    probes = build_suite("calibration").pairs
    words, word_labels = lexicon or lexicon_contrasts()
    pairs = group_contrasts(probes) + words
    labels = contrast_labels(probes) + word_labels
    sources = contrast_sources(probes) + [""] * len(words)
    states = runtime.hidden_states(n_ctx, points)
    try:
        texts = covariance_windows(runtime, n_ctx)
        obs = observe(states, runtime.tokenize, pairs, texts, labels, progress, sources)
        return obs, states.n_layer
    finally:
        states.close()


def directions_from(obs: Observations, n_layer: int, rank: int = DEFAULT_RANK) -> Directions:
    return directions_at(obs, n_layer, (rank,))[rank]


def directions_at(obs: Observations, n_layer: int, ranks: Sequence[int]) -> dict[int, Directions]:
    """Directions at each rank (one decomposition per reader input serves them all)."""
    return {r: _fill_last_blocks(d, n_layer) for r, d in derive_at_ranks(obs, ranks).items()}


def _fill_last_blocks(found: Directions, n_layer: int) -> Directions:
    # llama.cpp may cut the last block to the rows that produce logits before a reader's input
    # (the feed-forward part's), so that input is never read whole: it takes the nearest
    # earlier block's eraser.
    erasers = dict(found.erasers)
    for point in {p for p, _ in found.erasers}:
        for block in range(n_layer):
            earlier = [b for p, b in found.erasers if p == point and b < block]
            if (point, block) not in erasers and earlier:
                erasers[(point, block)] = found.erasers[(point, max(earlier))]
    return Directions(erasers, found.n_contrasts)


def derive(
    runtime: ScoringRuntime,
    n_ctx: int = 256,
    rank: int = DEFAULT_RANK,
    progress: Callable[[int, int], None] | None = None,
) -> Directions:
    """An eraser per reader input from the calibration split's pairs and the group lexicon
    (held-out unseen), and ordinary text (the covariance LEACE whitens with)."""
    return directions_from(*observe_contrasts(runtime, n_ctx, progress), rank)


def control_vector(runtime: ScoringRuntime, n_ctx: int = 128) -> FloatArray:
    """The negative control: the mean (anti - stereo) block output added at the middle blocks.

    Contrastive activation addition as the old loop did it (blocks n/6 .. 2n/3, weight 1): a
    constant offset, which cancels out of a paired score; the benchmark shows how little it does.
    """
    pairs = [(anti, stereo) for p in build_suite("calibration").pairs for stereo, anti in p.pairs()]
    states = runtime.hidden_states(n_ctx)
    try:
        obs = observe(states, runtime.tokenize, pairs, [])
        n_layer, n_embd = states.n_layer, states.n_embd
    finally:
        states.close()
    matrix = np.zeros((n_layer, n_embd), dtype=np.float32)
    for layer in range(max(1, n_layer // 6), max(1, 2 * n_layer // 3 - 1) + 1):
        if ("l_out", layer) in obs.contrasts:
            matrix[layer] = obs.contrasts[("l_out", layer)].mean(axis=0)
    return matrix
