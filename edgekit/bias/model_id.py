"""A model's identity for the history: cheap to compute, different for different weights.

Hashing a multi-GB file on a Raspberry Pi on every run is not acceptable, so the fingerprint is
SHA-256 over the file size, the whole GGUF header (metadata, vocabulary, tensor names, types and
offsets) and the first and last MiB of tensor data. A requantization or a different model changes
the header; a fine-tune with identical layout changes the sampled weights.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from edgekit.gguf_file import read_header

_SAMPLE = 1 << 20


def model_fingerprint(path: Path) -> str:
    header = read_header(path)
    h = hashlib.sha256()
    h.update(header.file_size.to_bytes(8, "little"))
    with path.open("rb") as f:
        h.update(f.read(header.data_offset))
        h.update(f.read(_SAMPLE))
        f.seek(max(header.data_offset, header.file_size - _SAMPLE))
        h.update(f.read(_SAMPLE))
    return h.hexdigest()
