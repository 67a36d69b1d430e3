"""Which of llama.cpp's built-in chat formats a model's template is, found without running it.

A GGUF's chat template is Jinja from whoever made the file. llama-server would execute it in its
own engine, outside edgekit's sandbox, even with --no-jinja (it parses and test-renders the file's
template at load), so a hostile one holds the server before the first request. Naming a built-in
format with --chat-template keeps the file's text from ever running: the format is found by
llama.cpp's own matcher (llama_chat_apply_template detects a template by its markers, as `run`
uses it), then named by rendering one fixed conversation with every built-in format.
"""

from __future__ import annotations

import ctypes
from typing import Any

from edgekit.backends.llama_cpp.lib import import_llama_cpp
from edgekit.backends.llama_cpp.runtime import fallback_chat_template

# System, two user turns and an answer: enough to tell apart formats that differ only in how
# they place a system prompt or close an assistant turn.
SAMPLE = (("system", "S"), ("user", "U1"), ("assistant", "A1"), ("user", "U2"))


def _render(lib: Any, template: bytes) -> bytes | None:
    chat = (lib.llama_chat_message * len(SAMPLE))(
        *[lib.llama_chat_message(role=r.encode(), content=c.encode()) for r, c in SAMPLE]
    )
    size = 4096
    buf = ctypes.create_string_buffer(size)
    n = lib.llama_chat_apply_template(template, chat, len(SAMPLE), True, buf, size)
    return None if n < 0 or n > size else bytes(buf.raw[:n])


def builtin_names(lib: Any) -> list[str]:
    n = lib.llama_chat_builtin_templates(None, 0)
    names = (ctypes.c_char_p * n)()
    lib.llama_chat_builtin_templates(names, n)
    return [name.decode() for name in names if name]


def builtin_chat_format(template: str | None, architecture: str) -> str:
    """The built-in format llama.cpp reads `template` as; the family's default when the file
    has no template or llama.cpp does not recognise it (as llama-server would fall back)."""
    if not template:
        return fallback_chat_template(architecture)
    lib = import_llama_cpp()
    wanted = _render(lib, template.encode("utf-8", errors="replace"))
    if wanted is None:
        return fallback_chat_template(architecture)
    for name in builtin_names(lib):
        if _render(lib, name.encode()) == wanted:
            return name
    return fallback_chat_template(architecture)
