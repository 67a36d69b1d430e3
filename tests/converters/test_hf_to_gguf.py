"""HF safetensors -> GGUF: tiny random llama/qwen2/mistral/gemma3 checkpoints convert to files
llama.cpp runs with the logits transformers computes, the tokenizer and chat template carried over.

llama.cpp runs with an F32 KV cache here: its default F16 cache alone costs ~1e-3 of logit error
and would hide a real conversion bug of that size.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gguf import GGMLQuantizationType, Keys
from typer.testing import CliRunner

from edgekit.errors import ConversionError, OutputPathError, UnsupportedArchitectureError
from edgekit.gguf.reader import read_header
from tests.fixtures.hf_checkpoints import build_tiny_hf
from tests.fixtures.tiny_tokenizers import CHAT_TEMPLATE, TRICKY_LINES

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
llama_cpp = pytest.importorskip("llama_cpp")

Q = GGMLQuantizationType
pytestmark = pytest.mark.timeout(300)
TEXT = "the city of music and the river north, in 1999 it was known as the new school"
# Max |logit difference| over max |logit|. llama.cpp's CPU GELU reads an F16 lookup table
# (Gemma's MLP; measured ~3e-4, ~1e-4 once the table is mimicked in torch); SiLU is exact (~1e-6).
TOLERANCE = {"llama": 1e-4, "qwen2": 1e-4, "mistral": 1e-4, "gemma3": 2e-3}
F32_CACHE = 0  # GGML_TYPE_F32, for type_k / type_v


def convert(source: Path, out: Path, **kw: Any) -> Path:
    from edgekit.converters.hf_to_gguf import convert_hf

    return convert_hf(source, out, **kw)


def hf_logits(folder: Path, ids: list[int]) -> Any:
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def gguf_logits(path: Path, ids: list[int]) -> Any:
    llm = llama_cpp.Llama(
        str(path),
        logits_all=True,
        n_ctx=64,
        n_threads=2,
        type_k=F32_CACHE,
        type_v=F32_CACHE,
        verbose=False,
    )
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


def hf_ids(folder: Path, text: str) -> list[int]:
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    return list(tok(text)["input_ids"])


def relative_error(got: Any, ref: Any) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral", "gemma3"])
def test_logits_match_transformers(
    tiny_hf_models: dict[str, Path], tmp_path: Path, arch: str
) -> None:
    folder = tiny_hf_models[arch]
    out = convert(folder, tmp_path / f"{arch}.gguf")
    ids = hf_ids(folder, TEXT)
    assert len(ids) > 16  # beyond gemma3's 16-token window: local and global layers differ
    ref, got = hf_logits(folder, ids), gguf_logits(out, ids)
    assert relative_error(got, ref) < TOLERANCE[arch]
    assert (got.argmax(-1) == ref.argmax(-1)).all()
    types = {t.name: t.ggml_type for t in read_header(out).tensors}
    assert set(types.values()) == {Q.F32}
    assert ("output.weight" in types) != (arch == "gemma3")  # gemma3 ties it to token_embd


def test_f16_base_keeps_vectors_f32_and_stays_close(
    tiny_hf_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = tiny_hf_models["llama"]
    out = convert(folder, tmp_path / "f16.gguf", out_type=Q.F16)
    header = read_header(out)
    types = {t.name: t.ggml_type for t in header.tensors}
    assert types["blk.0.attn_q.weight"] == Q.F16 and types["blk.0.attn_norm.weight"] == Q.F32
    assert header.metadata[Keys.General.FILE_TYPE] == 1  # MOSTLY_F16
    ids = hf_ids(folder, TEXT)
    assert relative_error(gguf_logits(out, ids), hf_logits(folder, ids)) < 1e-2


def test_tokenizer_and_chat_template_are_carried_over(
    tiny_hf_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = tiny_hf_models["qwen2"]
    out = convert(folder, tmp_path / "q.gguf")
    md = read_header(out).metadata
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert md[Keys.Tokenizer.CHAT_TEMPLATE] == CHAT_TEMPLATE
    assert md[Keys.Tokenizer.BOS_ID] == tok.bos_token_id
    assert md[Keys.Tokenizer.EOS_ID] == tok.eos_token_id
    assert md[Keys.Tokenizer.PRE] == "gpt-2" and md[Keys.Tokenizer.ADD_BOS] is True
    assert md[Keys.Tokenizer.LIST].length == len(tok)


@pytest.mark.parametrize("style", ["gpt2", "llama3", "qwen2"])
def test_llama_cpp_tokenizes_like_transformers(tmp_path: Path, style: str) -> None:
    folder = build_tiny_hf(
        tmp_path / style, "llama", n_layers=1, tokenizer=style, converter_checks=True
    )
    out = convert(folder, tmp_path / "t.gguf")
    assert (
        read_header(out).metadata[Keys.Tokenizer.PRE]
        == {
            "gpt2": "gpt-2",
            "llama3": "llama-bpe",
            "qwen2": "qwen2",
        }[style]
    )
    llm = llama_cpp.Llama(str(out), vocab_only=True, verbose=False)
    for text in [TEXT, *TRICKY_LINES, "unseen: Zürich naïve 東京 🚀"]:
        assert llm.tokenize(text.encode(), add_bos=True) == hf_ids(folder, text), text


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_sentencepiece_tokenizer(tmp_path: Path, arch: str) -> None:
    pytest.importorskip("sentencepiece")
    folder = build_tiny_hf(tmp_path / arch, arch, tokenizer="spm", converter_checks=True)
    out = convert(folder, tmp_path / "spm.gguf")
    md = read_header(out).metadata
    assert md[Keys.Tokenizer.MODEL] == "llama" and md[Keys.Tokenizer.CHAT_TEMPLATE] == CHAT_TEMPLATE
    llm = llama_cpp.Llama(str(out), vocab_only=True, verbose=False)
    for text in [TEXT, *TRICKY_LINES, "unseen: Zürich naïve 東京 🚀"]:
        assert llm.tokenize(text.encode(), add_bos=True) == hf_ids(folder, text), text
    ids = hf_ids(folder, TEXT)
    assert relative_error(gguf_logits(out, ids), hf_logits(folder, ids)) < TOLERANCE[arch]


def test_llama3_rope_scaling_travels_as_rope_freqs(tmp_path: Path) -> None:
    # original context 64 puts the 8 rope frequencies of a 16-wide head in all three bands.
    scaling = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    folder = build_tiny_hf(tmp_path / "l3", "llama", rope_scaling=scaling, converter_checks=True)
    out = convert(folder, tmp_path / "l3.gguf")
    assert "rope_freqs.weight" in {t.name for t in read_header(out).tensors}
    ids = hf_ids(folder, TEXT)
    assert relative_error(gguf_logits(out, ids), hf_logits(folder, ids)) < 1e-4


def test_tokenizer_llama_cpp_cannot_split_is_refused(tmp_path: Path) -> None:
    folder = build_tiny_hf(
        tmp_path / "ws", "llama", n_layers=1, tokenizer="whitespace", converter_checks=True
    )
    with pytest.raises(ConversionError, match="pre-tokenizer"):
        convert(folder, tmp_path / "ws.gguf")
    assert list(tmp_path.glob("*.gguf*")) == list(tmp_path.glob(".*partial")) == []


def test_foreign_tensor_is_refused(tiny_hf_models: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    folder = tmp_path / "extra"
    shutil.copytree(tiny_hf_models["llama"], folder)
    extra = {"vision_tower.proj.weight": np.zeros((2, 2), np.float32)}
    save_file(extra, str(folder / "model-x.safetensors"))
    with pytest.raises(ConversionError, match=r"vision_tower\.proj\.weight"):
        convert(folder, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_unsupported_rope_scaling(tiny_hf_models: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "rope"
    shutil.copytree(tiny_hf_models["llama"], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["rope_scaling"] = {"rope_type": "dynamic", "factor": 2.0}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedArchitectureError):
        convert(folder, tmp_path / "r.gguf")


def test_failure_mid_write_leaves_nothing(
    tiny_hf_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgekit.converters.hf_to_gguf as mod

    def boom(*_: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mod, "fix_tensor", boom)
    with pytest.raises(OutputPathError, match="disk filled up"):
        convert(tiny_hf_models["llama"], tmp_path / "o.gguf")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_refused_before_work(
    tiny_hf_models: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(OutputPathError):
        convert(tiny_hf_models["llama"], tmp_path / "missing" / "o.gguf")


def test_edgekit_convert_from_a_hf_folder_end_to_end(tmp_path: Path, isolated_cache: Path) -> None:
    """HF folder -> base GGUF -> calibration -> plan -> K-quant file (rows of 256: Q4_K applies).
    The spike planted in block 1 is found by calibration and kept at Q8_0 in the written file."""
    from edgekit.cli import app

    folder = build_tiny_hf(
        tmp_path / "hf", "llama", n_layers=3, hidden=256, spike_block=1, converter_checks=True
    )
    out = tmp_path / "out.gguf"
    args = ["convert", str(folder), "-o", str(out), "--no-eval", "--json", "--top-k", "1"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["output"] == str(out)
    assert [k["tensor"] for k in doc["kept"]] == ["blk.1.ffn_down.weight"]
    types = {t.name: t.ggml_type for t in read_header(out).tensors}
    assert types["blk.1.ffn_down.weight"] == Q.Q8_0
    assert Q.Q4_K in types.values() and types["blk.0.attn_norm.weight"] == Q.F32
    ids = hf_ids(folder, TEXT)
    got, ref = gguf_logits(out, ids), hf_logits(folder, ids)
    assert np.mean(got.argmax(-1) == ref.argmax(-1)) > 0.5
