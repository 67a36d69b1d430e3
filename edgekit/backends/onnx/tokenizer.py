"""Tokenizer and chat template for ONNX models, from tokenizer.json: no transformers, no torch.

`tokenizers` reads the fast-tokenizer file the exporter copied; the chat template (from
tokenizer_config.json or chat_template.jinja) renders through edgekit.templates: a sandboxed
jinja2 environment with time and size limits, and the settings transformers uses (trim_blocks,
lstrip_blocks, raise_exception), so prompts match what `apply_chat_template` would give.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream

from edgekit.backends.onnx.model import TOKENIZER_FILE, OnnxModelDir
from edgekit.errors import ModelFileError
from edgekit.templates import render_chat_template

# For models that ship no template: the same families llama.cpp's runtime falls back to.
FALLBACK_TEMPLATES = {
    "gemma": "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
    "chatml": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
}


def _token_text(value: Any) -> str | None:
    # tokenizer_config stores special tokens as plain strings or as AddedToken dicts.
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _ids(value: Any) -> set[int]:
    if isinstance(value, int):
        return {value}
    if isinstance(value, list):
        return {int(v) for v in value if isinstance(v, int)}
    return set()


class OnnxTokenizer:
    def __init__(self, model: OnnxModelDir) -> None:
        path = model.folder / TOKENIZER_FILE
        try:
            self.tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception for unreadable files
            raise ModelFileError(
                f"{path} is not a readable tokenizer: {e}",
                hint="Re-export the model, or save a fast tokenizer with save_pretrained.",
            ) from None
        self.model = model
        tc = model.tokenizer_config
        self.specials = {
            k: t
            for k in ("bos_token", "eos_token", "pad_token", "unk_token")
            if (t := _token_text(tc.get(k))) is not None
        }
        self.bos_id = self._id(self.specials.get("bos_token"))
        self.eos_ids = self._eos_ids()

    def _id(self, text: str | None) -> int | None:
        return None if text is None else self.tok.token_to_id(text)

    def _eos_ids(self) -> frozenset[int]:
        ids = _ids(self.model.generation_config.get("eos_token_id"))
        ids |= _ids(self.model.config.get("eos_token_id"))
        eos = self._id(self.specials.get("eos_token"))
        if eos is not None:
            ids.add(eos)
        return frozenset(ids)

    def encode(self, text: str) -> list[int]:
        ids = list(self.tok.encode(text, add_special_tokens=True).ids)
        # A chat template already writes BOS; the post-processor would add a second one.
        if self.bos_id is not None and ids[:2] == [self.bos_id, self.bos_id]:
            ids = ids[1:]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tok.decode(list(ids), skip_special_tokens=True))

    def streamer(self) -> Callable[[int], str]:
        """Incremental decoding: a multi-byte character can span several tokens."""
        stream = DecodeStream(skip_special_tokens=True)

        def step(token: int) -> str:
            piece = stream.step(self.tok, token)
            return piece or ""

        return step

    def chat_template(self) -> str:
        tc = self.model.tokenizer_config.get("chat_template")
        if isinstance(tc, list):  # named templates: transformers uses "default"
            named = {t.get("name"): t.get("template") for t in tc if isinstance(t, dict)}
            tc = named.get("default") or next(iter(named.values()), None)
        if isinstance(tc, str) and tc:
            return tc
        jinja_file = self.model.folder / "chat_template.jinja"
        if jinja_file.is_file():
            try:
                return jinja_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ModelFileError(
                    f"cannot read the chat template {jinja_file}: {e}",
                    hint="A chat template is UTF-8 text: re-export the model or fix the file.",
                ) from None
        arch = str(self.model.config.get("model_type", ""))
        return FALLBACK_TEMPLATES["gemma" if arch.startswith("gemma") else "chatml"]

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        context = {"messages": list(messages), "add_generation_prompt": True, **self.specials}
        name = f"the chat template of {self.model.folder.name}"
        return render_chat_template(self.chat_template(), context, name=name)
