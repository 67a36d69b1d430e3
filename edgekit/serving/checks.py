"""What the front checks before a request reaches llama-server, and the errors it answers with.

llama-server answers a malformed JSON body with HTTP 500, takes a negative `n_predict` as "no
limit", and its API key check differs by endpoint; the front answers those itself, in OpenAI's
error shape (`{"error": {"message", "type", "code"}}`), so every client library reads them. Only
what is wrong is refused: fields the front does not know go on to llama-server untouched (OpenAI
clients send many).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 8 * 1024 * 1024  # far above any prompt a slot's context holds
# Endpoints whose body asks for generated tokens; the limits apply to them.
GENERATING = frozenset(
    {
        "/v1/chat/completions",
        "/chat/completions",
        "/v1/completions",
        "/completions",
        "/completion",
        "/v1/responses",
        "/responses",
        "/v1/messages",
        "/infill",
    }
)
# The fields that bound how many tokens are generated, by the API that names them.
TOKEN_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "n_predict")
PUBLIC = frozenset({"/health", "/v1/health"})  # as llama-server: no key needed


@dataclass(frozen=True)
class RequestError(Exception):
    """A request the front answers itself, without asking llama-server."""

    status: int
    message: str
    code: str
    type: str = "invalid_request_error"

    def body(self) -> bytes:
        payload = {"error": {"message": self.message, "type": self.type, "code": self.code}}
        return json.dumps(payload).encode()


def check_api_key(path: str, headers: Mapping[str, str], key: str | None) -> None:
    """`Authorization: Bearer KEY` (OpenAI clients) or `X-Api-Key: KEY`, as llama-server reads."""
    if key is None or path in PUBLIC:
        return
    bearer = headers.get("authorization", "")
    scheme, _, token = bearer.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else headers.get("x-api-key", "")
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise RequestError(
            401,
            "missing or wrong API key: send 'Authorization: Bearer KEY'",
            "invalid_api_key",
            "authentication_error",
        )


def check_body_size(length: int) -> None:
    if length > MAX_BODY_BYTES:
        raise RequestError(
            413,
            f"request body of {length:,} bytes is over the limit of {MAX_BODY_BYTES:,}",
            "body_too_large",
        )


def parse_json_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; anything else is the client's error (400), never a 500."""
    value = parse_json_value(body)
    if not isinstance(value, dict):
        raise RequestError(
            400, f"the body must be a JSON object, not {_json_type(value)}", "invalid_json"
        )
    return value


def parse_json_value(body: bytes) -> Any:
    """The body as any JSON value; malformed JSON is the client's error (400), never a 500."""
    try:
        value = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "the body is not UTF-8 text", "invalid_json") from None
    except json.JSONDecodeError as e:
        raise RequestError(
            400, f"the body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
            "invalid_json",
        ) from None  # fmt: skip
    except RecursionError:
        raise RequestError(400, "the body's JSON is nested too deeply", "invalid_json") from None
    return value


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def check_generation(path: str, body: Mapping[str, Any], n_ctx_slot: int) -> None:
    """Token limits must be whole numbers a slot can hold: llama-server reads a negative one as
    "generate until the context is full", and a float or a string fails deep in its parser."""
    if path not in GENERATING:
        return
    for name in TOKEN_LIMITS:
        if name not in body or body[name] is None:
            continue
        value = body[name]
        lowest = 0 if name == "n_predict" else 1
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(
                400, f"{name} must be an integer, not {json.dumps(value)[:40]}", "invalid_value"
            )
        if value < lowest:
            raise RequestError(
                400, f"{name} must be at least {lowest}, not {value}", "invalid_value"
            )
        if value > n_ctx_slot:
            raise RequestError(
                400,
                f"{name} {value} is more than a slot's context of {n_ctx_slot} tokens",
                "invalid_value",
            )


def check_adapter_control(method: str, path: str, body: Mapping[str, Any] | None) -> None:
    """While the bias guard runs, it alone sets the erasure adapter's scale: a request's own
    "lora" list would replace the guard's scale for that answer, and a POST /lora-adapters would
    reset it for everyone (llama-server sets any adapter left out of the list to 0)."""
    if method == "POST" and path.rstrip("/") == "/lora-adapters":
        raise RequestError(
            403,
            "the bias guard sets the adapter scale while `edgekit serve --bias-adapter` runs",
            "adapter_scale_owned_by_guard",
        )
    if body is not None and path in GENERATING and "lora" in body:
        raise RequestError(
            403,
            'a per-request "lora" scale is refused while the bias guard sets the adapter scale',
            "adapter_scale_owned_by_guard",
        )


def check_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    n_ctx_slot: int,
    guarded: bool = False,
) -> dict[str, Any] | None:
    """The parsed body of a request llama-server may see; None when it carries no JSON object (a
    GET, a multipart upload, /lora-adapters' list). Any content type but multipart is read as
    JSON, as llama-server does: `curl -d` sends JSON labelled as a form."""
    if method not in ("POST", "PUT", "PATCH"):
        return None
    if guarded:
        check_adapter_control(method, path, None)
    content_type = headers.get("content-type", "").lower()
    if content_type.startswith("multipart/"):
        return None
    if path.rstrip("/") == "/lora-adapters":
        parse_json_value(body)  # a list of {"id", "scale"}: llama-server checks the items
        return None
    parsed = parse_json_body(body)
    check_generation(path, parsed, n_ctx_slot)
    if guarded:
        check_adapter_control(method, path, parsed)
    return parsed
