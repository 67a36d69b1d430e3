"""A tokenizer.json that tokenizes exactly like llama.cpp, for SentencePiece ("llama") GGUFs.

transformers turns a GGUF's SentencePiece vocabulary into a Unigram model; llama.cpp's SPM
tokenizer instead merges, again and again, the adjacent pair whose joined piece has the highest
score. On Gemma 3 the two disagree on ordinary text (half the words split differently), so the
ONNX model would see token sequences it was never trained on. A BPE model whose merges are
ranked by the joined piece's score is llama.cpp's algorithm (ties go leftmost in both), with
byte fallback for characters outside the vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader, TokenType

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


def match_gguf_specials(folder: Path, gguf_path: Path) -> bool:
    """Make the saved tokenizer add BOS, split digits and name EOS as llama.cpp does with this
    GGUF; True if it changed anything.

    transformers' GGUF conversion of a "gpt2" vocabulary (SmolLM2) always writes a BOS template
    and names the BOS token as EOS too, whatever the GGUF says: SmolLM2's GGUF has
    add_bos_token=False, so every prompt gained an <|im_start|> llama.cpp never sees, and
    <|im_start|> counted as end of text. Idempotent, so cached folders are repaired on reuse.
    """
    import json

    from gguf import Keys

    from edgekit.backends.onnx.model import TOKENIZER_FILE
    from edgekit.gguf.reader import read_header

    meta = read_header(gguf_path).metadata
    tok_file, cfg_file = folder / TOKENIZER_FILE, folder / "tokenizer_config.json"
    if not tok_file.is_file():
        return False
    tok = json.loads(tok_file.read_text(encoding="utf-8"))
    cfg = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}
    changed = False
    post = tok.get("post_processor") or {}
    if meta.get(Keys.Tokenizer.ADD_BOS) is False and post.get("special_tokens"):
        # The same template without its special tokens (onnxruntime-genai's tokenizer cannot
        # read a null post-processor: it returned -1 for every token).
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
        changed = True
    pre = tok.get("pre_tokenizer") or {}
    if meta.get(Keys.Tokenizer.PRE) in _DIGITS_FIRST and pre.get("type") == "ByteLevel":
        digits = {"type": "Digits", "individual_digits": True}
        tok["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [digits, pre]}
        changed = True
    eos = meta.get(Keys.Tokenizer.EOS_ID)
    if isinstance(eos, int):
        names = {t["id"]: t["content"] for t in tok.get("added_tokens", [])}
        name = names.get(eos) or next(
            (k for k, v in tok.get("model", {}).get("vocab", {}).items() if v == eos), None
        )
        if name is not None and cfg.get("eos_token") != name:
            cfg["eos_token"] = name
            cfg["eos_token_id"] = eos
            changed = True
    if changed:
        for path, doc in ((tok_file, tok), (cfg_file, cfg)):
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
            tmp.replace(path)
    return changed
