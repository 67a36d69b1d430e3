"""What every back end (llama.cpp, onnxruntime) shares: the run plan, sampling settings,
generation stats and the Runtime protocol the CLI and the dashboard drive."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from edgekit.devices.memory import MemoryEstimate
from edgekit.devices.profiles import DeviceProfile
from edgekit.gguf.reader import ModelInfo


@dataclass(frozen=True)
class RunPlan:
    """Everything decided before loading a model: made by a back end's `plan`."""

    info: ModelInfo
    profile: DeviceProfile
    n_ctx: int
    estimate: MemoryEstimate
    backend: str = "llama_cpp"
    threads: int | None = None  # a fixed thread count (-t); None lets the back end choose


@dataclass(frozen=True)
class SamplingParams:
    """llama-cli's sampling flags, with its defaults."""

    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    seed: int = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: a random seed per run


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int
    generated_tokens: int
    prompt_tokens_per_s: float
    decode_tokens_per_s: float
    time_to_first_token_s: float
    total_s: float
    peak_rss_bytes: int
    stop_reason: str  # "eos" or "length"
    threads: int = 0  # decode threads at the end of the generation; 0 where not known

    def to_dict(self) -> dict[str, float | int | str]:
        return dict(asdict(self))

    def summary(self) -> str:
        return (
            f"prompt {self.prompt_tokens} tok @ {self.prompt_tokens_per_s:.1f} tok/s | "
            f"decode {self.generated_tokens} tok @ {self.decode_tokens_per_s:.1f} tok/s | "
            f"TTFT {self.time_to_first_token_s * 1000:.0f} ms | "
            f"peak RSS {self.peak_rss_bytes / 2**20:.0f} MiB"
            + (f" | {self.threads} thread{'s' if self.threads > 1 else ''}" if self.threads else "")
        )


@dataclass(frozen=True)
class GenerationResult:
    text: str
    stats: GenerationStats


TokenCallback = Callable[[str], None]
FloatArray = npt.NDArray[np.float32]
LogProbs = npt.NDArray[np.float64]


class Runtime(Protocol):
    """What the CLI and the dashboard drive, whatever the back end (llama.cpp, onnxruntime)."""

    notes: list[str]

    def tokenize(self, text: str) -> list[int]: ...

    def prompt_tokens(self, text: str) -> list[int]: ...

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str: ...

    def generate(
        self, tokens: list[int], params: SamplingParams, on_token: TokenCallback | None = None
    ) -> GenerationResult: ...

    def close(self) -> None: ...


def decode_rate(n_generated: int, first_token_at: float | None, last_token_at: float) -> float:
    """Tokens per second after the first token: the first one also pays for the prompt."""
    if first_token_at is None or n_generated < 2 or last_token_at <= first_token_at:
        return 0.0
    return (n_generated - 1) / (last_token_at - first_token_at)


class LogitSource(Protocol):
    """Next-token logits and log-probabilities of token sequences (Capability.SCORE)."""

    @property
    def n_vocab(self) -> int: ...

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]: ...

    def logits_from(self, tokens: Sequence[int], first: int) -> FloatArray:
        """Rows for positions first..len(tokens)-2: row i predicts tokens[first + i + 1]."""
        ...

    def token_logprobs(self, spans: Sequence[tuple[Sequence[int], int]]) -> list[LogProbs]:
        """For each (tokens, first): log p(tokens[i + 1] | tokens[:i + 1]) for i = first..len-2.

        Many sequences at once, so a back end can decode them together (see
        logprobs_row_by_row for one that cannot)."""
        ...

    def release(self) -> None:
        """Empty the cache that scoring filled."""
        ...

    def close(self) -> None: ...


class HiddenStateSource(Protocol):
    """Per block, the states at named points of the graph (its output, the residual stream after
    block N, by default; the normalized inputs its matrices read) for a token sequence."""

    @property
    def n_layer(self) -> int: ...

    @property
    def n_embd(self) -> int: ...

    def read(self, tokens: Sequence[int]) -> dict[str, dict[int, FloatArray]]:
        """{point: {block: (n_tokens, n_embd)}} for the points the source was opened with, a
        fresh cache per call."""
        ...

    def read_many(self, seqs: Sequence[Sequence[int]]) -> list[dict[str, dict[int, FloatArray]]]:
        """read() of each sequence, so a back end can decode them together (see
        read_one_by_one for one that cannot)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ScoringRuntime(Protocol):
    """A runtime with Capability.SCORE: log-probabilities and hidden states of its model."""

    def tokenize(self, text: str) -> list[int]: ...

    def logits(self) -> LogitSource: ...

    def hidden_states(
        self, n_ctx: int = 256, points: Sequence[str] = ("l_out",)
    ) -> HiddenStateSource: ...


@runtime_checkable
class AdapterRuntime(Protocol):
    """A runtime with Capability.ADAPTERS: LoRA files at a scale, additive control vectors.

    Both stay in force for every later decode (generation and scoring) until changed.
    """

    def set_lora(self, path: Path | None, scale: float = 1.0) -> None:
        """Apply one LoRA adapter file at `scale`; None or 0 returns to the base model."""
        ...

    def set_control_vector(self, matrix: FloatArray | None) -> None:
        """Add matrix[i] to block i's output (row 0 ignored); None clears."""
        ...


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two sequences share (what a KV cache can keep)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    """Where two token sequences part: their common prefix, kept to 1..len-1 of each, so each
    has a scored span and the BOS is never scored."""
    return max(1, min(common_prefix(a, b), len(a) - 1, len(b) - 1))


def log_sum_exp_rows(rows: FloatArray, block: int = 8) -> LogProbs:
    """log-sum-exp of each row of raw logits (max-shifted; the sum accumulates in float64).

    A few rows at a time: a row is 1 MiB on a 262k vocabulary, and the temporaries of 64 rows at
    once would cost a Pi 128 MiB."""
    lse: LogProbs = np.empty(len(rows), dtype=np.float64)
    for lo in range(0, len(rows), block):
        part = rows[lo : lo + block]
        top = part.max(axis=1, keepdims=True)
        total = np.exp(part - top).sum(axis=1, dtype=np.float64)
        lse[lo : lo + block] = top[:, 0] + np.log(total)
    return lse


def logprobs_row_by_row(
    source: LogitSource, spans: Sequence[tuple[Sequence[int], int]]
) -> list[LogProbs]:
    """token_logprobs for a source that scores one sequence at a time."""
    out = []
    for tokens, first in spans:
        rows = source.logits_from(tokens, first)
        targets = np.asarray(tokens[first + 1 :], dtype=np.int64)
        picked = rows[np.arange(len(targets)), targets].astype(np.float64)
        out.append(picked - log_sum_exp_rows(rows))
    return out


def read_one_by_one(
    source: HiddenStateSource, seqs: Sequence[Sequence[int]]
) -> list[dict[str, dict[int, FloatArray]]]:
    """read_many for a source that reads one sequence at a time."""
    return [source.read(tokens) for tokens in seqs]
