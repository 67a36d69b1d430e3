"""A tokenizer.json that tokenizes exactly like llama.cpp, for the GGUF it came from.

For SentencePiece ("llama") GGUFs, `spm_tokenizer` writes the whole tokenizer; for byte-level
("gpt2") ones, `match_gguf_tokenizer` repairs what transformers' GGUF conversion writes.

transformers turns a GGUF's SentencePiece vocabulary into a Unigram model; llama.cpp's SPM
tokenizer instead merges, again and again, the adjacent pair whose joined piece has the highest
score. On Gemma 3 the two disagree on ordinary text (half the words split differently), so the
ONNX model would see token sequences it was never trained on. A BPE model whose merges are
ranked by the joined piece's score is llama.cpp's algorithm (ties go leftmost in both), with
byte fallback for characters outside the vocabulary.

onnxruntime-genai's own tokenizer reads tokenizer.json too, with rules of its own: both
functions write only what it reads the same way as `tokenizers` does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader, Keys, TokenType

from edgekit.converters.hf_vocab import GPT2_REGEX

_SPACE = "\u2581"  # SentencePiece's visible space
# llama.cpp's "gpt2"-vocabulary pre-tokenizers that isolate every digit before the GPT-2 regex
# (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_SMOLLM and its group); transformers' GGUF conversion
# writes the GPT-2 regex alone, so "\n\n  0" split as 'ĊĊĠ','Ġ','0' instead of 'ĊĊĠĠ','0'.
_DIGITS_FIRST = frozenset(
    ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b", "mellum2")
)


def _field(reader: GGUFReader, key: str) -> Any:
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def merges_by_score(tokens: Sequence[str], scores: Sequence[float], normal: set[int]) -> list[Any]:
    """(left, right) for every normal piece that splits into two pieces, best score first."""
    index = {t: i for i, t in enumerate(tokens) if i in normal}
    found = []
    for piece, i in index.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in index and right in index:
                # Rank by the joined piece's score; among its splits, the one llama.cpp reaches
                # first is irrelevant: all lead to the same piece, so any consistent order works.
                found.append((-scores[i], i, cut, left, right))
    found.sort()
    return [(left, right) for _, _, _, left, right in found]


def spm_tokenizer(gguf_path: Path) -> Any:
    """A `tokenizers.Tokenizer` reproducing llama.cpp's SPM tokenization of this GGUF."""
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        normalizers,
        processors,
    )

    reader = GGUFReader(str(gguf_path))
    tokens = [str(t) for t in _field(reader, "tokenizer.ggml.tokens")]
    scores = [float(s) for s in np.asarray(_field(reader, "tokenizer.ggml.scores"))]
    types = [int(t) for t in _field(reader, "tokenizer.ggml.token_type")]
    unk = int(_field(reader, "tokenizer.ggml.unknown_token_id") or 0)
    bos = _field(reader, "tokenizer.ggml.bos_token_id")
    normal = {i for i, t in enumerate(types) if t == TokenType.NORMAL}
    bpe = models.BPE(
        vocab={t: i for i, t in enumerate(tokens)},
        merges=merges_by_score(tokens, scores, normal),
        unk_token=tokens[unk],
        byte_fallback=True,
        fuse_unk=True,
    )
    tok = Tokenizer(bpe)
    norms = [normalizers.Replace(" ", _SPACE)]
    # llama.cpp prefixes a space unless the GGUF says otherwise (Gemma 3 does).
    prefix = _field(reader, "tokenizer.ggml.add_space_prefix") is not False
    if prefix:
        norms.insert(0, normalizers.Prepend(_SPACE))
    tok.normalizer = normalizers.Sequence(norms)
    # Bytes first: a space can arrive as the bytes of "▁" when the vocabulary lacks it.
    steps = [decoders.ByteFallback(), decoders.Fuse(), decoders.Replace(_SPACE, " ")]
    if prefix:
        steps.append(decoders.Strip(" ", 1, 0))
    tok.decoder = decoders.Sequence(steps)
    # Control and user-defined pieces match whole in text, as llama.cpp's special=True does.
    added = [
        AddedToken(tokens[i], special=types[i] == TokenType.CONTROL, normalized=False)
        for i, t in enumerate(types)
        if t in (TokenType.CONTROL, TokenType.USER_DEFINED)
    ]
    tok.add_tokens(added)
    if bos is not None and _field(reader, "tokenizer.ggml.add_bos_token") is not False:
        name = tokens[int(bos)]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{name} $A", pair=f"{name} $A $B", special_tokens=[(name, int(bos))]
        )
    return tok


def match_gguf_tokenizer(folder: Path, gguf_path: Path) -> bool:
    """Make the saved tokenizer add BOS, split text and name EOS as llama.cpp does with this
    GGUF, in a form onnxruntime-genai's tokenizer reads the same way; True if it changed anything.

    Idempotent, so folders already in the cache are repaired on reuse.
    """
    from edgekit.backends.onnx.model import TOKENIZER_FILE
    from edgekit.gguf.reader import read_header

    meta = read_header(gguf_path).metadata
    tok_file, cfg_file = folder / TOKENIZER_FILE, folder / "tokenizer_config.json"
    if not tok_file.is_file():
        return False
    tok = json.loads(tok_file.read_text(encoding="utf-8"))
    cfg = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}
    # `|`, not `or`: every repair runs.
    changed = _drop_bos(tok, cfg, meta) | _byte_level_splits(tok, meta) | _name_eos(tok, cfg, meta)
    if changed:
        for path, doc in ((tok_file, tok), (cfg_file, cfg)):
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
            tmp.replace(path)
    return changed


def _drop_bos(tok: dict[str, Any], cfg: dict[str, Any], meta: dict[str, Any]) -> bool:
    """transformers' GGUF conversion of a "gpt2" vocabulary (SmolLM2) always writes a BOS
    template; SmolLM2's GGUF says add_bos_token=False, so every prompt gained an <|im_start|>
    llama.cpp never sees."""
    post = tok.get("post_processor") or {}
    if meta.get(Keys.Tokenizer.ADD_BOS) is not False or not post.get("special_tokens"):
        return False
    # The same template without its special tokens (onnxruntime-genai's tokenizer cannot read a
    # null post-processor: it returned -1 for every token).
    tok["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [
            {"Sequence": {"id": "A", "type_id": 0}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {},
    }
    cfg["add_bos_token"] = False
    return True


def _byte_level_splits(tok: dict[str, Any], meta: dict[str, Any]) -> bool:
    """A byte-level vocabulary's split regexes spelled out, and a byte-level decoder.

    transformers writes a bare ByteLevel pre-tokenizer (GPT-2's regex implied) and a decoder
    that also replaces SentencePiece's "▁". onnxruntime-genai reads that decoder as a
    SentencePiece vocabulary (-1 for every space-prefixed piece), ignores a Digits step and
    implies no regex from ByteLevel (a Llama tokenizer_class gets Llama 3's): it follows only
    Split steps with a regex. llama.cpp's digit-first pre-tokenizers isolate digits first
    ("\\n\\n  0" is 'ĊĊĠĠ','0', not 'ĊĊĠ','Ġ','0').
    """
    byte_level = _byte_level(tok.get("pre_tokenizer") or {})
    if byte_level is None:
        return False
    regexes = ([r"\p{N}"] if meta.get(Keys.Tokenizer.PRE) in _DIGITS_FIRST else []) + [GPT2_REGEX]
    steps = [_split(r) for r in regexes] + [{**byte_level, "use_regex": False}]
    pre = {"type": "Sequence", "pretokenizers": steps}
    decoder = {
        "type": "ByteLevel",
        "add_prefix_space": True,
        "trim_offsets": True,
        "use_regex": True,
    }
    if tok.get("pre_tokenizer") == pre and tok.get("decoder") == decoder:
        return False
    tok["pre_tokenizer"], tok["decoder"] = pre, decoder
    return True


def _byte_level(pre: dict[str, Any]) -> dict[str, Any] | None:
    """The ByteLevel step of a pre-tokenizer that splits by GPT-2's regex (bare, after an older
    edgekit's Digits step, or as written here), else None."""
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if not steps or steps[-1].get("type") != "ByteLevel":
        return None
    *head, last = steps
    if last.get("use_regex", True):
        ok = all(s.get("type") == "Digits" for s in head)
    else:
        regexes = [(s.get("pattern") or {}).get("Regex") for s in head if s.get("type") == "Split"]
        ok = len(regexes) == len(head) and regexes[-1:] == [GPT2_REGEX]
    return last if ok else None


def _split(regex: str) -> dict[str, Any]:
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


def _name_eos(tok: dict[str, Any], cfg: dict[str, Any], meta: dict[str, Any]) -> bool:
    """transformers names the BOS token as EOS too (SmolLM2's <|im_start|> counted as the end
    of text); llama.cpp ends at the GGUF's EOS."""
    eos = meta.get(Keys.Tokenizer.EOS_ID)
    if not isinstance(eos, int):
        return False
    names = {t["id"]: t["content"] for t in tok.get("added_tokens", [])}
    name = names.get(eos) or next(
        (k for k, v in tok.get("model", {}).get("vocab", {}).items() if v == eos), None
    )
    if name is None or cfg.get("eos_token") == name:
        return False
    cfg["eos_token"] = name
    cfg["eos_token_id"] = eos
    return True
