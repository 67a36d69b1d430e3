"""Convert-test fixtures: tiny GGUFs whose rows fit K-quants, synthetic spike profiles, and
tiny Hugging Face checkpoints (llama, qwen2, mistral, gemma3) for the HF -> GGUF converter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgekit.spikes import LayerSpikes, SpikeProfile, Stat
from tests.onnx_fixtures import (
    CHAT_TEMPLATE,
    VOCAB_SIZE,
    _config,
    _model_class,
    corpus,
    plant_spike,
)
from tests.tiny_models import write_tiny_llama

N_LAYERS = 3


def tiny_base(path: Path) -> Path:
    """An F32 llama GGUF with 256-wide rows (K-quants apply) and 3 blocks."""
    return write_tiny_llama(path, n_layers=N_LAYERS, n_embd=256, n_ff=512, n_head=4, n_head_kv=2)


def synthetic_profile(spiky_block: int = 1, n_layers: int = N_LAYERS) -> SpikeProfile:
    layers = []
    for b in range(n_layers):
        for proj, kind in (("mlp.down_proj", "ffn_down"), ("self_attn.q_proj", "attn_q")):
            spike = 400.0 if (b == spiky_block and kind == "ffn_down") else 4.0
            layers.append(
                LayerSpikes(
                    module=f"model.layers.{b}.{proj}",
                    tensor=f"blk.{b}.{kind}.weight",
                    block=b,
                    input=Stat(max=spike, median=1.0 + 0.01 * b),
                    output=Stat(max=2.0, median=1.0),
                )
            )
    return SpikeProfile("tiny", "llama", 100, "sha256:test", tuple(layers))


@pytest.fixture(scope="session")
def tiny_base_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_base(tmp_path_factory.mktemp("convert") / "tiny-base-f32.gguf")


# --- Tiny Hugging Face checkpoints for the HF -> GGUF converter -------------------------------

# Byte-level BPE pre-tokenizers as the published tokenizers spell them (tokenizer.json).
SPLIT_REGEX = {
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
TRICKY_LINES = [
    "In 1999 the city had 12345 people, and 7 rivers.",
    "It's the model's memory: they'll say \"fast\"!\n\n  Indented   spaces\tand tabs\n",
    "state-of-the-art (north/south) ... 3.14 -- 42% of $100",
]


def train_bpe_tokenizer(style: str = "gpt2") -> Any:
    """A byte-level BPE tokenizer whose pre-tokenizer is GPT-2's, Llama 3's or Qwen2's."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    if style == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    elif style in SPLIT_REGEX:
        split = pre_tokenizers.Split(Regex(SPLIT_REGEX[style]), "isolated")
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tok.pre_tokenizer = pre_tokenizers.Sequence([split, byte_level])
    elif style == "whitespace":  # not byte-level: llama.cpp has no equivalent
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
    else:
        raise ValueError(style)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus() + TRICKY_LINES * 3, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return tok


def save_tokenizer(folder: Path, style: str = "gpt2") -> Any:
    import transformers

    tf: Any = transformers
    fast = tf.PreTrainedTokenizerFast(
        tokenizer_object=train_bpe_tokenizer(style),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return fast


def save_spm_tokenizer(folder: Path, arch: str) -> Any:
    """A byte-fallback SentencePiece tokenizer.model, as Llama 2 / Mistral / Gemma ship. Gemma's
    has no dummy space prefix; the others do."""
    import io

    import sentencepiece as spm
    import transformers

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus() + TRICKY_LINES * 3),
        model_writer=buf,
        vocab_size=VOCAB_SIZE,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        add_dummy_prefix=arch != "gemma3",
        pad_id=0,
        bos_id=1,
        eos_id=2,
        unk_id=3,
        minloglevel=2,
    )
    (folder / "tokenizer.model").write_bytes(buf.getvalue())
    tf: Any = transformers
    cls = tf.GemmaTokenizerFast if arch == "gemma3" else tf.LlamaTokenizerFast
    model = str(folder / "tokenizer.model")
    fast = cls(vocab_file=model, legacy=True, add_prefix_space=arch != "gemma3")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return fast


def build_hf_checkpoint(
    folder: Path,
    arch: str = "llama",
    n_layers: int = 2,
    hidden: int = 64,
    tokenizer: str = "gpt2",
    seed: int = 0,
    spike_block: int | None = None,
    **config: Any,
) -> Path:
    """A random `arch` checkpoint whose every weight matters: matrices at unit gain, and norms
    and biases away from their 1/0 initial values, so a mis-mapped or mis-shifted vector shows
    in the logits. `config` overrides the config (e.g. rope_scaling); `spike_block` plants an
    activation spike at that block's down_proj input."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    spm = tokenizer == "spm"
    tok = save_spm_tokenizer(folder, arch) if spm else save_tokenizer(folder, tokenizer)
    cfg = _config(arch, len(tok), n_layers, hidden)
    for key, value in config.items():
        setattr(cfg, key, value)
    torch.manual_seed(seed)
    model = _model_class(arch)(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 1.0 / p.shape[1] ** 0.5)
            else:
                p.add_(0.2 * torch.randn_like(p))
        if spike_block is not None:
            plant_spike(model, spike_block, 60.0)
    model.save_pretrained(folder, safe_serialization=True)
    return folder
