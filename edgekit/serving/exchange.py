"""One finished request/response pair, as the server's front hands it to observers (the bias guard).

Observers get it after the response has gone to the client, so nothing they do can slow a stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Exchange:
    path: str  # "/v1/chat/completions", "/v1/completions", ...
    request: dict[str, Any]  # the request body as the client sent it (parsed JSON)
    text: str  # the generated text, assembled from the stream or read from the JSON body
    status: int  # the HTTP status the client got
