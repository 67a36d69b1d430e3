"""A file's chat template is named as one of llama.cpp's built-in formats without running it."""

from __future__ import annotations

import pytest

from edgekit.backends.llama_cpp.chat_format import builtin_chat_format

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}<|im_start|>assistant\n"
)
GEMMA = "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}\n{% endfor %}"
LLAMA3 = "<|start_header_id|>{{ role }}<|end_header_id|>\n\n{{ content }}<|eot_id|>"


@pytest.mark.parametrize(
    ("template", "architecture", "name"),
    [
        (CHATML, "qwen2", "chatml"),
        (GEMMA, "gemma3", "gemma"),
        (LLAMA3, "llama", "llama3"),
        (None, "gemma3", "gemma"),  # no template: the family's default, as `run` uses
        (None, "llama", "chatml"),
        ("{% for a in range(10**9) %}x{% endfor %}", "llama", "chatml"),  # unknown: default
    ],
)
def test_templates_are_named_by_llama_cpps_matcher(
    template: str | None, architecture: str, name: str
) -> None:
    assert builtin_chat_format(template, architecture) == name
