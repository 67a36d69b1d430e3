"""What every back end (llama.cpp, onnxruntime) shares: the run plan, sampling settings,
generation stats and the Runtime protocol the CLI and the dashboard drive."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from edgekit.devices import DeviceProfile
from edgekit.gguf_file import ModelInfo
from edgekit.memory import MemoryEstimate


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
