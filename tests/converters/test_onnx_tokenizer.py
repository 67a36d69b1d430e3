"""onnxruntime-genai's own tokenizer on a converted GGUF gives llama.cpp's ids: genai users call
its tokenizer, not edgekit's. Real GGUFs (SentencePiece, and byte-level BPE under llama.cpp's
GPT-2 and digit-first "smollm" pre-tokenizers), the real convert, both real tokenizers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

og = pytest.importorskip("onnxruntime_genai")

from edgekit.converters.onnx import convert_to_onnx  # noqa: E402
from edgekit.converters.request import ConvertRequest  # noqa: E402
from tests.fixtures.env import env_var  # noqa: E402
from tests.fixtures.tiny_models import WORDS, write_tiny_llama  # noqa: E402
from tests.fixtures.tiny_tokenizers import TRICKY_LINES  # noqa: E402

# Whitespace runs before digits are where the GPT-2 regex alone and a digit-first split differ.
TEXTS = [*TRICKY_LINES, "the river\n\n  0 and  99 music\t\t3", "north 2024 south  7  ", "é ü ok"]


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with env_var("EDGEKIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache"))):
        yield


@pytest.mark.parametrize("pre", [None, "gpt-2", "smollm"])
def test_genai_tokenizer_gives_llama_cpps_ids(pre: str | None, tmp_path: Path) -> None:
    import llama_cpp

    # SentencePiece reads a word whole only through its prefixes: give it those, as real ones have.
    src = write_tiny_llama(
        tmp_path / "tiny.gguf", whole_words=WORDS if pre is None else (), pre=pre
    )
    out = convert_to_onnx(ConvertRequest(src, tmp_path / "onnx", "onnx", precision="int4")).output
    tokenizer = og.Tokenizer(og.Model(str(out)))
    llm = llama_cpp.Llama(model_path=str(src), vocab_only=True, verbose=False)
    try:
        for text in TEXTS:
            theirs = [int(t) for t in tokenizer.encode(text)]
            # genai's encode adds no BOS whatever the tokenizer says (its chat templates do).
            ours = llm.tokenize(text.encode(), add_bos=False, special=False)
            assert theirs == ours, text
            # genai keeps the space SentencePiece's dummy prefix added (llama.cpp drops it).
            assert tokenizer.decode(theirs) == (" " + text if pre is None else text)
    finally:
        llm.close()
