"""A chat that outlives its context: the oldest turns make way for the newest, as llama.cpp's
own chat front and Ollama do, instead of the conversation ending in PromptTooLongError.
Every chat front (`edgekit run` without -p, the dashboard) fits its history here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.errors import PromptTooLongError

if TYPE_CHECKING:
    from edgekit.backends.base import Runtime


def fit_history(
    runtime: Runtime, messages: list[dict[str, str]], n_ctx: int, max_reply: int
) -> tuple[list[int], int]:
    """The conversation's tokens, leaving room for the reply (max_reply tokens, at most half the
    context, so a long -n does not empty the history): the oldest turns are dropped (in place)
    until it fits; system messages and the newest message are always kept.
    Returns the tokens and how many turns were dropped."""
    reserve = min(max_reply, n_ctx // 2)
    dropped = 0
    while True:
        try:
            tokens: list[int] | None = runtime.prompt_tokens(runtime.format_chat(messages))
        except PromptTooLongError:
            tokens = None
        if tokens is not None and len(tokens) + reserve <= n_ctx:
            return tokens, dropped
        if not drop_oldest_turn(messages):
            if tokens is not None:  # the newest message alone: a shorter reply is still a reply
                return tokens, dropped
            return runtime.prompt_tokens(runtime.format_chat(messages)), dropped  # raises
        dropped += 1


def drop_oldest_turn(messages: list[dict[str, str]]) -> bool:
    """Remove the oldest user message and the replies to it; False when only the newest is left."""
    turns = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if len(turns) < 2:
        return False
    first, second = turns[0], turns[1]
    del messages[first:second]
    return True
