"""Checks of command-line values that the type alone does not catch, shared by run and dashboard.

Typer parses `-n -1` as a fine integer and `--temp nan` as a fine float; llama.cpp then does
something surprising with them (one token, a silently different context). Each impossible value is
named here, all of them in one message, before anything is loaded.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from edgekit.errors import OptionError, ProfileValueError, PromptEncodingError

if TYPE_CHECKING:
    from edgekit.backends.base import RunPlan, SamplingParams

MAX_SEED = 2**32 - 1  # llama.cpp seeds are uint32; larger values would wrap silently
LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # what llama.cpp reads as "pick a random seed"
# A profile's context is capped at the same value (devices/schema.py); past it the memory
# estimate refused the run as if the model file were damaged.
MAX_CONTEXT = 1 << 24


def check_generation_options(params: SamplingParams, ctx: int | None) -> SamplingParams:
    """`params` as typed (`seed` -1 or any negative: a random one), checked; returned with the
    seed llama.cpp takes."""
    max_tokens, temperature, seed = params.max_tokens, params.temperature, params.seed
    top_p, top_k, min_p = params.top_p, params.top_k, params.min_p
    repeat_penalty = params.repeat_penalty
    problems = []
    if max_tokens < 1:
        problems.append(f"--max-tokens/-n must be at least 1, not {max_tokens}")
    if ctx is not None and ctx < 1:
        problems.append(f"--ctx must be at least 1, not {ctx}")
    if ctx is not None and ctx > MAX_CONTEXT:
        problems.append(f"--ctx must be at most {MAX_CONTEXT:,} tokens, not {ctx:,}")
    if not (math.isfinite(temperature) and temperature >= 0):
        problems.append(f"--temp must be 0 (greedy) or more, not {temperature}")
    if not (math.isfinite(top_p) and 0 <= top_p <= 1):
        problems.append(f"--top-p must be between 0 and 1, not {top_p}")
    if top_k < 0:
        problems.append(f"--top-k must be 0 (off) or more, not {top_k}")
    if not (math.isfinite(min_p) and 0 <= min_p <= 1):
        problems.append(f"--min-p must be between 0 and 1, not {min_p}")
    if not (math.isfinite(repeat_penalty) and repeat_penalty > 0):
        problems.append(f"--repeat-penalty must be more than 0 (1 is off), not {repeat_penalty}")
    if seed > MAX_SEED:
        problems.append(f"--seed must be at most {MAX_SEED} (or -1 for a random one), not {seed}")
    if problems:
        raise OptionError("; ".join(problems), hint="See `edgekit run --help` for each option.")
    return dataclasses.replace(params, seed=LLAMA_DEFAULT_SEED if seed < 0 else seed)


def check_text(text: str, what: str = "the prompt") -> str:
    """Text that can be sent to a tokenizer: a terminal in the wrong locale passes raw bytes,
    which Python keeps as lone surrogates that no UTF-8 encoder accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = ord(text[e.start])
        byte = f"byte 0x{bad - 0xDC00:02x}" if 0xDC80 <= bad <= 0xDCFF else f"U+{bad:04X}"
        raise PromptEncodingError(
            f"{what} is not valid UTF-8 text ({byte} at character {e.start})",
            hint="Pass UTF-8 text; check the terminal's locale (e.g. LANG=C.UTF-8).",
        ) from None
    return text


def check_kv_cache(plan: RunPlan) -> None:
    """A quantized KV cache stores each head's keys and values in blocks (32 values for q4_0 and
    q8_0): heads of another size make llama.cpp fail to create the context, which would read like
    a damaged model file. Blame the setting instead (the flash-attention rule is the profile's)."""
    from gguf import GGML_QUANT_SIZES

    kv = plan.profile.kv_cache_type
    block = GGML_QUANT_SIZES[kv][0]
    heads = {plan.info.head_dim_k, plan.info.head_dim_v}
    odd = sorted(h for h in heads if h % block)
    if plan.backend == "llama_cpp" and odd:
        raise ProfileValueError(
            f"device profile {plan.profile.name}: kv_cache_type = "
            f'"{kv.name.lower()}" stores the KV cache in blocks of {block} values, but the heads '
            f"of {plan.info.name} have {odd[0]}",
            hint='Use kv_cache_type = "f16" (or "f32") in the profile for this model.',
        )
