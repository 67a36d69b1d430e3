"""llama.cpp's own toolchain, built by setup from the wheel's source: found, runnable, and its
converter covers architectures edgekit never mapped by hand, with Hugging Face's logits."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from gguf import GGMLQuantizationType
from typer.testing import CliRunner

from edgekit.backends.llama_cpp.build import TOOLS, tool_path
from edgekit.cli import app
from edgekit.gguf.reader import read_header
from tests.fixtures.env import REPO_ROOT
from tests.fixtures.hf_checkpoints import build_tiny_hf
from tests.fixtures.tiny_tokenizers import save_spm_tokenizer

Q = GGMLQuantizationType


@pytest.mark.parametrize("name", TOOLS)
def test_every_tool_is_built_and_runs(name: str) -> None:
    path = tool_path(name)
    result = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=60)
    # Some tools exit 1 after printing their usage; a missing library or a crash does not print it.
    assert result.returncode in (0, 1), result.stderr[-500:]
    assert "usage" in (result.stdout + result.stderr).lower()


def test_edgekit_tools_path_names_the_binary() -> None:
    result = CliRunner().invoke(app, ["tools", "path", "llama-quantize"])
    assert result.exit_code == 0
    assert Path(result.output.strip()).name == "llama-quantize"


def test_a_missing_tool_is_one_clear_error() -> None:
    result = CliRunner().invoke(app, ["tools", "path", "llama-nonexistent", "--json"])
    assert result.exit_code == 2
    assert "scripts/setup.sh" in result.output


@pytest.mark.real_model
def test_llama_cli_runs_the_default_model() -> None:
    from edgekit.default_model import fetch_default_model

    model = fetch_default_model()
    command = [str(tool_path("llama-cli")), "-m", str(model), "-p", "hi", "-n", "8"]
    result = subprocess.run(
        [*command, "-st", "--temp", "0", "-t", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-1000:]
    assert "Generation:" in result.stdout + result.stderr


# --- conversion through llama.cpp's convert_hf_to_gguf.py -------------------------------------

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
llama_cpp = pytest.importorskip("llama_cpp")
TEXT = "the city of music and the river north, in 1999 it was known as the new school"


def _build_qwen3(folder: Path) -> Path:
    """qwen3: a family edgekit's own converter does not map (per-head Q/K norms). llama.cpp's
    converter recognises a BPE pre-tokenizer by hashing a real model's output, which a tokenizer
    trained here never matches, so this one is SentencePiece (its Qwen path reads that first)."""
    folder.mkdir(parents=True)
    tok = save_spm_tokenizer(folder, "llama")
    tf: Any = transformers
    cfg = tf.Qwen3Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = tf.Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 1.0 / p.shape[1] ** 0.5)
            else:
                p.add_(0.2 * torch.randn_like(p))
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def _hf_logits(folder: Path, ids: list[int]) -> Any:
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def _gguf_logits(path: Path, ids: list[int]) -> Any:
    import numpy as np

    llm = llama_cpp.Llama(
        str(path), logits_all=True, n_ctx=64, n_threads=2, type_k=0, type_v=0, verbose=False
    )
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


def _relative_error(folder: Path, gguf_file: Path) -> float:
    import numpy as np

    ids = list(transformers.AutoTokenizer.from_pretrained(folder)(TEXT)["input_ids"])
    ref, got = _hf_logits(folder, ids), _gguf_logits(gguf_file, ids)
    assert (got.argmax(-1) == ref.argmax(-1)).all()
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def test_an_architecture_edgekit_never_mapped_converts_with_hfs_logits(tmp_path: Path) -> None:
    from edgekit.converters.hf_to_gguf import convert_hf

    folder = _build_qwen3(tmp_path / "qwen3")
    out = convert_hf(folder, tmp_path / "qwen3.gguf")  # auto: llama.cpp's converter
    header = read_header(out)
    assert header.metadata["general.architecture"] == "qwen3"
    assert {t.ggml_type for t in header.tensors} == {Q.F32}
    assert _relative_error(folder, out) < 1e-4


def test_both_converters_give_hfs_logits_on_a_native_family(tmp_path: Path) -> None:
    from edgekit.converters.hf_to_gguf import convert_hf

    folder = build_tiny_hf(
        tmp_path / "llama", "llama", n_layers=2, tokenizer="spm", converter_checks=True
    )
    seconds = {}
    for converter in ("native", "llama.cpp"):
        start = time.perf_counter()
        out = convert_hf(folder, tmp_path / f"{converter}.gguf", converter=converter)
        seconds[converter] = time.perf_counter() - start
        assert _relative_error(folder, out) < 1e-4, converter
    print(f"convert seconds: {seconds}")


def test_native_converter_keeps_bpe_tokenizers_llama_cpps_cannot_identify(tmp_path: Path) -> None:
    """Why the native converter stays for its families: llama.cpp's names a BPE pre-tokenizer
    only by the hash of a known model's output; edgekit's reads the split regex itself."""
    from edgekit.converters.hf_to_gguf import convert_hf
    from edgekit.errors import ConversionError

    folder = build_tiny_hf(
        tmp_path / "llama", "llama", n_layers=1, tokenizer="qwen2", converter_checks=True
    )
    with pytest.raises(ConversionError, match="pre-tokenizer was not recognized"):
        convert_hf(folder, tmp_path / "l.gguf", converter="llama.cpp")
    out = convert_hf(folder, tmp_path / "n.gguf")  # auto picks the native one for llama
    assert read_header(out).metadata["tokenizer.ggml.pre"] == "qwen2"


def test_the_llama_cpp_version_has_one_source_of_truth() -> None:
    """pyproject's pin is what pip resolves; build.py is what setup builds and the probe names."""
    import tomllib

    from edgekit.backends.llama_cpp.build import LLAMA_CPP_PYTHON_VERSION

    root = REPO_ROOT
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}" in deps


@pytest.mark.real_model
def test_edgekit_eval_agrees_with_llama_perplexity_on_the_default_model(tmp_path: Path) -> None:
    """The field's own KLD tool and edgekit's evaluator, same text, same chunk layout."""
    from edgekit.backends.llama_cpp import tools
    from edgekit.backends.llama_cpp.eval import Windows, evaluate
    from edgekit.default_model import fetch_default_model
    from edgekit.texts.evaluation import load_eval_text

    reference = fetch_default_model()
    candidate = tmp_path / "q4_0.gguf"
    tools.quantize(tools.QuantizeRequest(reference, candidate, "Q4_0", pure=True))
    text = load_eval_text().text[:20000]
    text_file = tmp_path / "eval.txt"
    text_file.write_text(text, encoding="utf-8")
    theirs = tools.kl_divergence(reference, candidate, text_file, tmp_path, n_ctx=256, chunks=2)
    _, (ours,) = evaluate(
        reference, [candidate], text, Windows(n_ctx=256, max_windows=2, second_half=True)
    )
    print(f"KLD llama-perplexity {theirs.kld:.6f}, edgekit {ours.kld:.6f}")
    assert theirs.kld > 1e-3
    assert ours.kld == pytest.approx(theirs.kld, rel=0.02)
