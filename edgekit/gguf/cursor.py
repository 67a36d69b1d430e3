"""The bytes of a GGUF header read one value at a time, each length checked before it is used.

Reading a metadata value allocates nothing the file has not shown it can back: every count and
length is checked against the bytes left and a sane limit first (limits: below; the header's own
table limits: reader.py). Long arrays (vocabularies, merges, scores) are walked without being
kept, except the token texts llama.cpp's loader asserts on, which are summarised (VocabSummary).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

from gguf import GGUFValueType, Keys

from edgekit.errors import (
    CorruptModelError,
    HeaderLimitError,
    MetadataTypeError,
    TruncatedModelError,
)
from edgekit.gguf.values import SkippedArray, VocabSummary

HINT_DAMAGED = "The file is damaged: download or convert it again."

MAX_ARRAY = 1 << 22  # vocabularies and merges: ~300k at most today
MAX_STRING = 1 << 26  # a whole tokenizer.json fits
MAX_KEPT_TEXT = 1 << 26  # all kept metadata text together (long arrays are skipped, not kept)
MAX_TOKEN_BYTES = 1 << 16  # the longest real tokens (runs of spaces) are a few hundred bytes

# Arrays longer than these (vocabularies, merges, scores) are skipped: only type and length kept.
# Numeric arrays up to a model's layer count are kept: some keys hold one value per layer.
_MAX_KEPT_ARRAY = 64
_MAX_KEPT_NUMERIC_ARRAY = 1 << 14

# struct formats of the scalar value types (little-endian, as GGUF stores them)
SCALAR_FORMATS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
_U64 = struct.Struct("<Q")


class Cursor:
    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path
        self.size = len(buf)
        self.kept_text = 0
        self.key = ""  # the metadata key being read, for messages
        self.vocab = VocabSummary()

    def remaining(self) -> int:
        return max(0, self.size - self.pos)

    def truncated(self, what: str) -> TruncatedModelError:
        return TruncatedModelError(
            f"{self.path} ends inside its GGUF header ({what} at byte {self.pos})",
            hint="The file is incomplete: download or convert it again.",
        )

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > self.size:
            raise self.truncated("a value")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def count(self, what: str, min_item_bytes: int, limit: int) -> int:
        """A u64 count of items that follow, checked against the bytes left and a sane limit."""
        at = self.pos
        n: int = self.take("<Q")
        room = self.remaining() // min_item_bytes
        if n > limit or n > room:
            why = f"the limit is {limit:,}" if n > limit else f"the file has room for {room:,}"
            raise HeaderLimitError(
                f"{self.path}: the header claims {n:,} {what} (at byte {at}), but {why}",
                hint=HINT_DAMAGED,
            )
        return n

    def string(self, limit: int = MAX_STRING, keep: bool = True) -> str:
        n = self.take("<Q")
        if n > limit:
            raise HeaderLimitError(
                f"{self.path}: a string of {n:,} bytes at byte {self.pos - 8} is over the limit "
                f"of {limit:,}",
                hint=HINT_DAMAGED,
            )
        if self.pos + n > self.size:
            raise self.truncated("a string")
        if keep:
            self.kept_text += n
            if self.kept_text > MAX_KEPT_TEXT:
                raise HeaderLimitError(
                    f"{self.path}: the header's metadata text is over {MAX_KEPT_TEXT:,} bytes",
                    hint=HINT_DAMAGED,
                )
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: GGUFValueType) -> Any:
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            return self.array()
        return self.take(SCALAR_FORMATS[vtype])

    def value_type(self) -> GGUFValueType:
        raw = self.take("<I")
        try:
            return GGUFValueType(raw)
        except ValueError:
            raise CorruptModelError(
                f"{self.path}: corrupt GGUF header (value type {raw} at byte {self.pos - 4})",
                hint=HINT_DAMAGED,
            ) from None

    def array(self) -> list[Any] | SkippedArray:
        item_type = self.value_type()
        if item_type == GGUFValueType.ARRAY:
            # llama.cpp rejects arrays of arrays, so there is no nesting to recurse into.
            raise MetadataTypeError(
                f"{self.path}: {self.key or 'a value'} is an array of arrays (byte "
                f"{self.pos - 4}); GGUF readers (llama.cpp) reject nested arrays",
                hint=HINT_DAMAGED,
            )
        if item_type == GGUFValueType.STRING:
            n = self.count("array elements", 8, MAX_ARRAY)
            if self.key == Keys.Tokenizer.LIST:
                self.vocab.tokens = self._token_texts(n)
                if n <= _MAX_KEPT_ARRAY:
                    return [t.decode("utf-8", errors="replace") for t in self.vocab.tokens]
                return SkippedArray(item_type, n)
            if n <= _MAX_KEPT_ARRAY:
                return [self.string() for _ in range(n)]
            self._skip_strings(n)
            return SkippedArray(item_type, n)
        fmt = SCALAR_FORMATS[item_type]
        width = struct.calcsize(fmt)
        n = self.count("array elements", width, MAX_ARRAY)
        if self.key == Keys.Tokenizer.TOKEN_TYPE and item_type == GGUFValueType.INT32:
            self.vocab.token_types = bytes(self.buf[self.pos : self.pos + n * width])
        if n > _MAX_KEPT_NUMERIC_ARRAY:
            self.pos += n * width  # in bounds: count() checked n * width against the file
            return SkippedArray(item_type, n)
        values = list(struct.unpack_from(f"<{n}{fmt[1]}", self.buf, self.pos))
        self.pos += n * width
        return values

    def _token_texts(self, n: int) -> list[bytes]:
        """The vocabulary's token texts: llama.cpp's loader asserts on duplicates and throws
        from C++ (an abort) where a byte token is missing, so they are checked (check_vocab).
        ~60 ms for a 262k-token vocabulary."""
        buf, pos, end, unpack = self.buf, self.pos, self.size, _U64.unpack_from
        texts: list[bytes] = []
        for _ in range(n):
            if pos + 8 > end:
                self.pos = min(pos, end)
                raise self.truncated("the token list")
            length = unpack(buf, pos)[0]
            if length > MAX_TOKEN_BYTES:  # kept, so a bent length must not copy the file
                self.pos = pos
                raise HeaderLimitError(
                    f"{self.path}: token {len(texts)} is {length:,} bytes long (byte {pos}); "
                    f"the limit is {MAX_TOKEN_BYTES:,}",
                    hint=HINT_DAMAGED,
                )
            pos += 8
            if pos + length > end:
                self.pos = end
                raise self.truncated("the token list")
            texts.append(buf[pos : pos + length])
            pos += length
        self.pos = pos
        return texts

    def _skip_strings(self, n: int) -> None:
        # The vocabulary walk: the hot loop of the reader, so it avoids method calls.
        buf, pos, end, unpack = self.buf, self.pos, self.size, _U64.unpack_from
        for _ in range(n):
            if pos + 8 > end:
                self.pos = min(pos, end)
                raise self.truncated("a metadata array")
            pos += 8 + unpack(buf, pos)[0]
        if pos > end:
            self.pos = end
            raise self.truncated("a metadata array")
        self.pos = pos
