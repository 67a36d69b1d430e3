"""The tokenizer of a Hugging Face folder, written as GGUF tokenizer keys.

The same three routes as llama.cpp's convert_hf_to_gguf.py, in the same order: a SentencePiece
`tokenizer.model`; a byte-fallback BPE `tokenizer.json` (Llama 2 / Mistral saved without the
.model), both through gguf-py's vocab classes; and a byte-level BPE `tokenizer.json` (GPT-2,
Llama 3, Qwen2), whose token list is its vocabulary in id order. Special tokens, add-BOS/EOS
flags, merges and the chat template come from gguf-py's SpecialVocab.

llama.cpp must also be told which pre-tokenizer (the regex that splits text before BPE) to run.
Its converter recognises a tokenizer by hashing how it tokenizes a probe string, which only works
for published models. We read the pre-tokenizer from tokenizer.json instead, so a locally trained
tokenizer with a standard pre-tokenizer converts too, and anything else is refused, not guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
from gguf.vocab import BpeVocab, LlamaHfVocab, SentencePieceVocab

from edgekit.errors import ConversionError

TokenType = gguf.TokenType

# The split regexes tokenizers ships for each family, and llama.cpp's name for its own copy;
# GPT-2's is also what a ByteLevel pre-tokenizer with use_regex splits by.
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZERS = {GPT2_REGEX: "gpt-2", _LLAMA3_REGEX: "llama-bpe", _QWEN2_REGEX: "qwen2"}


def add_vocab(w: gguf.GGUFWriter, source: Path, n_vocab: int, space_prefix: bool = True) -> None:
    """Tokens, types, scores, merges, special ids and chat template for a model of n_vocab rows."""
    if (source / "tokenizer.model").is_file():
        _add_sentencepiece(w, source, n_vocab, space_prefix)
        return
    tj = _tokenizer_json(source)
    model = tj.get("model") or {}
    if model.get("type") == "BPE" and model.get("byte_fallback"):
        _add_llama_hf(w, source, n_vocab)
    elif model.get("type") == "BPE" and (tj.get("decoder") or {}).get("type") == "ByteLevel":
        _add_byte_level_bpe(w, source, tj, n_vocab)
    else:
        raise ConversionError(
            f"the tokenizer in {source} ({model.get('type')}) is not one llama.cpp can run",
            hint="edgekit converts SentencePiece, byte-fallback BPE and byte-level BPE tokenizers.",
        )


def _tokenizer_json(source: Path) -> dict[str, Any]:
    path = source / "tokenizer.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConversionError(f"cannot read the tokenizer {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path} is not a tokenizer")
    return data


def _add_sentencepiece(w: gguf.GGUFWriter, source: Path, n_vocab: int, space_prefix: bool) -> None:
    try:
        vocab = SentencePieceVocab(source)
    except (RuntimeError, ValueError, OSError) as e:
        raise ConversionError(f"cannot read the SentencePiece model in {source}: {e}") from None
    tokens, scores, types = _columns(vocab.all_tokens())
    _apply_added_tokens(source, tokens, types)
    _write(
        w, TokenTable(SentencePieceVocab.tokenizer_model, tokens, scores, types), n_vocab, source
    )
    if not space_prefix:
        w.add_add_space_prefix(False)


def _add_llama_hf(w: gguf.GGUFWriter, source: Path, n_vocab: int) -> None:
    try:
        vocab = LlamaHfVocab(source)
    except (OSError, TypeError, ValueError) as e:
        raise ConversionError(f"cannot read the tokenizer in {source}: {e}") from None
    tokens, scores, types = _columns(vocab.all_tokens())
    _write(w, TokenTable(LlamaHfVocab.tokenizer_model, tokens, scores, types), n_vocab, source)


def _add_byte_level_bpe(w: gguf.GGUFWriter, source: Path, tj: dict[str, Any], n_vocab: int) -> None:
    w.add_tokenizer_pre(pre_tokenizer_name(tj))
    vocab = tj["model"].get("vocab")
    if not isinstance(vocab, dict) or not vocab:
        raise ConversionError(f"{source / 'tokenizer.json'} has no BPE vocabulary")
    by_id = {int(i): (str(t).encode(), TokenType.NORMAL) for t, i in vocab.items()}
    for added in tj.get("added_tokens") or []:
        # Special added tokens are control tokens; others are matched as raw text (user-defined).
        kind = TokenType.CONTROL if added.get("special") else TokenType.USER_DEFINED
        by_id[int(added["id"])] = (str(added["content"]).encode(), kind)
    tokens = [by_id[i][0] if i in by_id else _pad(i) for i in range(max(by_id) + 1)]
    types = [by_id[i][1] if i in by_id else TokenType.UNUSED for i in range(len(tokens))]
    _write(w, TokenTable(BpeVocab.tokenizer_model, tokens, None, types), n_vocab, source)


def pre_tokenizer_name(tj: dict[str, Any]) -> str:
    """llama.cpp's name for the pre-tokenizer of a byte-level BPE tokenizer.json."""
    pre = tj.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        regex: str | None = GPT2_REGEX if not steps[0].get("add_prefix_space") else None
    elif kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        regex = (steps[0].get("pattern") or {}).get("Regex")
        if steps[0].get("invert") or steps[1].get("add_prefix_space"):
            regex = None
    else:
        regex = None
    name = PRE_TOKENIZERS.get(regex or "")
    if name is None:
        raise ConversionError(
            f"the tokenizer's pre-tokenizer ({' + '.join(map(str, kinds)) or 'none'}) is not one "
            "llama.cpp implements (GPT-2, Llama 3 and Qwen2 splitting are)",
            hint="Convert it with llama.cpp's convert_hf_to_gguf.py, which knows more tokenizers, "
            "then run `edgekit convert model.gguf`.",
        )
    return name


def _apply_added_tokens(source: Path, tokens: list[bytes], types: list[TokenType]) -> None:
    """Tokens tokenizer_config.json declares over the SentencePiece ids (chat-turn markers...)."""
    path = source / "tokenizer_config.json"
    if not path.is_file():
        return
    try:
        decoder = json.loads(path.read_text(encoding="utf-8")).get("added_tokens_decoder") or {}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return
    for key, entry in decoder.items():
        i = int(key)
        if i < len(tokens) and isinstance(entry, dict) and "content" in entry:
            tokens[i] = str(entry["content"]).encode()
            types[i] = TokenType.CONTROL if entry.get("special") else TokenType.USER_DEFINED


def _columns(
    rows: Any,
) -> tuple[list[bytes], list[float], list[TokenType]]:
    tokens: list[bytes] = []
    scores: list[float] = []
    types: list[TokenType] = []
    for text, score, kind in rows:
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    return tokens, scores, types


def _pad(i: int) -> bytes:
    return f"[PAD{i}]".encode()


@dataclass(frozen=True)
class TokenTable:
    model: str  # tokenizer.ggml.model
    tokens: list[bytes]
    scores: list[float] | None  # None: a BPE vocabulary, ranked by its merges
    types: list[TokenType]


def _write(w: gguf.GGUFWriter, table: TokenTable, n_vocab: int, source: Path) -> None:
    tokens, scores, types = table.tokens, table.scores, table.types
    if len(tokens) > n_vocab:
        raise ConversionError(
            f"the tokenizer has {len(tokens)} tokens but the model only {n_vocab} embeddings",
            hint="The tokenizer does not belong to this checkpoint.",
        )
    # llama.cpp sizes the vocabulary from the token list, which must cover every embedding row.
    extra = range(len(tokens), n_vocab)
    w.add_tokenizer_model(table.model)
    w.add_token_list(tokens + [_pad(i) for i in extra])
    if scores is not None:
        w.add_token_scores(scores + [-1000.0] * len(extra))
    w.add_token_types([int(t) for t in types] + [int(TokenType.UNUSED)] * len(extra))
    special = gguf.SpecialVocab(source, load_merges=scores is None, n_vocab=n_vocab)
    special.add_to_gguf(w, quiet=True)
