"""Tiny random Hugging Face checkpoints (llama, qwen2, mistral, gemma3) for the ONNX path.

Each is a real `save_pretrained` folder: safetensors weights, config.json and a fast tokenizer
trained here with `tokenizers`, so the exporter, the quantizer and the runtime all run for real in
seconds. Weights are random; a planted spike scales one block's down_proj so one layer's
activations stand out the way the paper describes for LLaMA's block 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tiny_models import WORDS

ARCHITECTURES = ("llama", "qwen2", "mistral", "gemma3")
VOCAB_SIZE = 384
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def corpus() -> list[str]:
    # Every word many times, in shifting orders, so BPE learns whole words and the byte pieces.
    n = len(WORDS)
    return [" ".join(WORDS[(i * k) % n] for i in range(40)) for k in range(1, 60)]


def train_tokenizer() -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` that prepends <s>; no transformers needed."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return tok


def build_tokenizer(folder: Path) -> Any:
    import transformers

    # transformers' constructors are untyped: go through Any instead of an ignore per call.
    tf: Any = transformers
    fast = tf.PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return fast


def _config(
    arch: str, vocab: int, n_layers: int, hidden: int, layer_types: list[str] | None = None
) -> Any:
    import transformers

    tf: Any = transformers

    common: dict[str, Any] = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=arch == "gemma3",
    )
    if arch == "llama":
        return tf.LlamaConfig(**common)
    if arch == "qwen2":
        return tf.Qwen2Config(**common)
    if arch == "mistral":
        return tf.MistralConfig(**common, sliding_window=None)
    if arch == "gemma3":
        return tf.Gemma3TextConfig(
            **common,
            head_dim=hidden // 4,
            sliding_window=16,
            query_pre_attn_scalar=hidden // 4,
            layer_types=layer_types or ["sliding_attention", "full_attention"][:n_layers],
        )
    raise ValueError(arch)


def _model_class(arch: str) -> Any:
    import transformers as tf

    return {
        "llama": tf.LlamaForCausalLM,
        "qwen2": tf.Qwen2ForCausalLM,
        "mistral": tf.MistralForCausalLM,
        "gemma3": tf.Gemma3ForCausalLM,
    }[arch]


def build_tiny_hf(
    folder: Path,
    arch: str = "llama",
    n_layers: int = 2,
    hidden: int = 64,
    seed: int = 0,
    spike_block: int | None = None,
    spike_scale: float = 60.0,
    layer_types: list[str] | None = None,
) -> Path:
    """Write a random `arch` checkpoint with its tokenizer into `folder` and return it."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder)
    torch.manual_seed(seed)
    model = _model_class(arch)(_config(arch, len(tok), n_layers, hidden, layer_types)).eval()
    # Random init draws with std 0.02: logits would be near-uniform and greedy argmax a coin toss
    # between near-ties. Larger weights give peaked, stable distributions, as trained models have.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 1.0 / p.shape[1] ** 0.5)
        if spike_block is not None:
            plant_spike(model, spike_block, spike_scale)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def plant_spike(model: Any, block: int, scale: float) -> None:
    """Make one down_proj's input spike: scale the up_proj rows feeding a few of its channels.

    down_proj's input is act(gate) * up; boosting a handful of up_proj rows multiplies those
    channels of down_proj's input (the massive-activation pattern) while down_proj's own weights
    are scaled back so the residual stream is not blown up, as in trained models.
    """
    mlp = model.model.layers[block].mlp
    channels = slice(0, 4)
    mlp.up_proj.weight[channels] *= scale
    mlp.down_proj.weight[:, channels] /= scale / 4
