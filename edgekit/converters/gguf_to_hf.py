"""GGUF -> float Hugging Face checkpoint, one tensor in memory at a time.

transformers' own GGUF loading (`from_pretrained(gguf_file=...)`) dequantizes every tensor into a
dict, then copies it into the model: twice the float model at once, 4 GB for a 0.5B model and
12 GB for a 1.5B one, before a single ONNX node exists. The same steps are taken here per tensor
with transformers' own pieces (its name map and its per-architecture tensor processors, which
undo llama.cpp's q/k permutation and Gemma's norm offset), and each tensor is written to its own
safetensors shard with the standard index, which `from_pretrained` loads as any sharded
checkpoint.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

INDEX_FILE = "model.safetensors.index.json"
CHUNK_BYTES = 1 << 25  # quantized bytes dequantized per call
Progress = Callable[[int, int], None]


def _empty_model(config: Any) -> Any:
    """The architecture without weights: enough for transformers' GGUF -> HF name map."""
    import torch
    import transformers

    tf: Any = transformers  # untyped
    with torch.device("meta"):
        return tf.AutoModelForCausalLM.from_config(config)


def write_float_checkpoint(
    gguf_path: Path, folder: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """config.json, the tokenizer and float32 safetensors shards of `gguf_path` in `folder`;
    returns the parsed GGUF metadata (config and tokenizer fields) transformers read."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from gguf import GGUFReader
    from transformers import AutoConfig, GenerationConfig

    tu: Any = gguf_utils  # untyped
    # gguf-py parses the whole metadata (13 s for a 151,936-token vocabulary) each time a file
    # is opened: here three times (transformers' config and tokenizer reads, the tensor reader)
    # where from_pretrained(gguf_file=...) and its tokenizer took five.
    parsed: dict[str, Any] = tu.load_gguf_checkpoint(str(gguf_path), return_tensors=False)
    config = AutoConfig.for_model(**copy.deepcopy(parsed["config"]))
    model = _empty_model(config)
    names = tu.get_gguf_hf_weights_map(model)
    config.architectures = [type(model).__name__]  # what save_pretrained would write
    reader = GGUFReader(gguf_path)
    arch = tu.read_field(reader, "general.architecture")[0]
    processor = tu.TENSOR_PROCESSORS.get(arch, tu.TensorProcessor)(config=parsed["config"])
    folder.mkdir(parents=True, exist_ok=True)
    weight_map: dict[str, str] = {}
    total = 0
    for i, tensor in enumerate(reader.tensors):
        got = processor.process(
            weights=_dequantize(tensor.data, tensor.tensor_type),
            name=tensor.name,
            tensor_key_mapping=names,
            parsed_parameters=parsed,
        )
        if got.name not in names:
            continue
        shard = f"model-{i:05d}.safetensors"
        array = np.ascontiguousarray(got.weights, dtype=np.float32)
        _save_shard(folder / shard, names[got.name], array)
        weight_map[names[got.name]] = shard
        total += array.nbytes
        if progress is not None:
            progress(i + 1, len(reader.tensors))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    config.dtype = "float32"
    config.save_pretrained(folder)
    GenerationConfig.from_model_config(config).save_pretrained(folder)
    _tokenizer(gguf_path, config).save_pretrained(folder)
    return parsed


def _tokenizer(gguf_path: Path, config: Any) -> Any:
    """transformers' own tokenizer from the GGUF; given the config, it parses the file once more
    instead of twice."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(  # type: ignore[no-untyped-call]
        gguf_path.parent, gguf_file=gguf_path.name, config=config
    )


def _dequantize(data: np.ndarray, qtype: Any) -> np.ndarray:
    """gguf-py's dequantize a slice of rows at a time: on a whole table its temporaries are
    several float copies of it (3 GB for Qwen2-0.5B's 151,936 x 896 embedding)."""
    from gguf import dequantize

    if data.ndim < 2 or data.shape[0] * data.shape[1] <= CHUNK_BYTES:
        return np.asarray(dequantize(data, qtype))
    step = max(1, CHUNK_BYTES // data.shape[1])
    first = np.asarray(dequantize(data[:step], qtype))
    out = np.empty((data.shape[0], *first.shape[1:]), dtype=first.dtype)
    out[:step] = first
    for start in range(step, data.shape[0], step):
        out[start : start + step] = dequantize(data[start : start + step], qtype)
    return out


def _save_shard(path: Path, name: str, array: np.ndarray) -> None:
    """A one-tensor safetensors file written from the array itself (safetensors' own writer
    first builds the whole file as bytes: another copy of the tensor)."""
    header = {
        name: {"dtype": "F32", "shape": list(array.shape), "data_offsets": [0, array.nbytes]},
        "__metadata__": {"format": "pt"},
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the format aligns the data to 8 bytes
    with path.open("wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        array.tofile(f)
