"""The front's own answers: request checks, the OpenAI error shape, the text observers get, the
llama-server command line and the slot-aware memory estimate. No model, no server."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from edgekit.backends.base import RunPlan
from edgekit.backends.llama_cpp.server import ServerConfig, server_argv, slot_context
from edgekit.devices.memory import estimate_memory
from edgekit.devices.profiles import load_profile
from edgekit.errors import OptionError
from edgekit.gguf.reader import load_model_info
from edgekit.serving.checks import (
    MAX_BODY_BYTES,
    RequestError,
    check_api_key,
    check_body_size,
    check_request,
)
from edgekit.serving.exchange import Exchange, Observers, generated_text
from edgekit.serving.service import bind, check_exposure, is_loopback

CTX = 512


def _error(excinfo: pytest.ExceptionInfo[RequestError]) -> dict[str, object]:
    body = json.loads(excinfo.value.body())
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "code"}
    return dict(body["error"])


def test_valid_request_passes_unknown_fields_on() -> None:
    body = {"messages": [], "max_tokens": 16, "logit_bias": {}, "x_vendor_field": [1, 2]}
    parsed = check_request("POST", "/v1/chat/completions", {}, json.dumps(body).encode(), CTX)
    assert parsed == body


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b'{"a": 1', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000],
)
def test_malformed_json_is_400(raw: bytes) -> None:
    with pytest.raises(RequestError) as e:
        check_request("POST", "/v1/chat/completions", {}, raw, CTX)
    assert e.value.status == 400
    assert _error(e)["code"] == "invalid_json"


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"3", b"null", b"true"])
def test_body_must_be_an_object(raw: bytes) -> None:
    with pytest.raises(RequestError) as e:
        check_request("POST", "/v1/completions", {}, raw, CTX)
    assert e.value.status == 400
    assert "JSON object" in str(_error(e)["message"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", -1),
        ("max_tokens", 0),
        ("max_tokens", 1.5),
        ("max_tokens", "10"),
        ("max_tokens", True),
        ("max_tokens", CTX + 1),
        ("max_completion_tokens", 10**12),
        ("n_predict", -1),
        ("n_predict", [3]),
    ],
)
def test_absurd_token_limits_are_400(field: str, value: object) -> None:
    raw = json.dumps({"prompt": "hi", field: value}).encode()
    with pytest.raises(RequestError) as e:
        check_request("POST", "/v1/completions", {}, raw, CTX)
    assert e.value.status == 400
    assert field in str(_error(e)["message"])


def test_limits_apply_only_where_tokens_are_generated() -> None:
    raw = json.dumps({"content": "hi", "max_tokens": -5}).encode()
    assert check_request("POST", "/tokenize", {}, raw, CTX) is not None
    assert check_request("GET", "/v1/models", {}, b"", CTX) is None
    assert check_request("POST", "/v1/completions", {}, b'{"max_tokens": null}', CTX) == {
        "max_tokens": None
    }


def test_lora_adapters_takes_a_list_when_no_guard_runs() -> None:
    body = json.dumps([{"id": 0, "scale": 0.5}]).encode()
    assert check_request("POST", "/lora-adapters", {}, body, CTX) is None
    with pytest.raises(RequestError) as e:
        check_request("POST", "/lora-adapters", {}, b"[{", CTX)
    assert e.value.status == 400


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/lora-adapters", [{"id": 0, "scale": 0.0}]),
        ("/v1/chat/completions", {"messages": [], "lora": [{"id": 0, "scale": 0.0}]}),
        ("/completion", {"prompt": "x", "lora": []}),
    ],
)
def test_the_guard_alone_sets_the_adapter_scale(path: str, body: object) -> None:
    raw = json.dumps(body).encode()
    with pytest.raises(RequestError) as e:
        check_request("POST", path, {}, raw, CTX, guarded=True)
    assert e.value.status == 403
    assert _error(e)["code"] == "adapter_scale_owned_by_guard"
    check_request("POST", path, {}, raw, CTX)  # without the guard both are llama-server's


def test_multipart_bodies_are_left_to_llama_server() -> None:
    headers = {"content-type": "multipart/form-data; boundary=x"}
    assert check_request("POST", "/v1/audio/transcriptions", headers, b"--x", CTX) is None


def test_oversized_body_is_413() -> None:
    check_body_size(MAX_BODY_BYTES)
    with pytest.raises(RequestError) as e:
        check_body_size(MAX_BODY_BYTES + 1)
    assert e.value.status == 413


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"authorization": "Bearer s3cret"}, True),
        ({"authorization": "bearer s3cret"}, True),
        ({"x-api-key": "s3cret"}, True),
        ({"authorization": "Bearer wrong"}, False),
        ({"authorization": "s3cret"}, False),
        ({}, False),
    ],
)
def test_api_key(headers: dict[str, str], ok: bool) -> None:
    if ok:
        check_api_key("/v1/models", headers, "s3cret")
        return
    with pytest.raises(RequestError) as e:
        check_api_key("/v1/models", headers, "s3cret")
    assert e.value.status == 401
    assert _error(e)["type"] == "authentication_error"


def test_health_needs_no_key_and_no_key_means_open() -> None:
    check_api_key("/health", {}, "s3cret")
    check_api_key("/v1/models", {}, None)


def test_generated_text_from_a_stream_and_from_json() -> None:
    events = [
        {"choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"delta": {"content": "Hel"}}]},
        {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]},
    ]
    stream = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    assert generated_text(stream.encode(), "text/event-stream") == "Hello"
    chat = {"choices": [{"message": {"role": "assistant", "content": "Hi!"}}]}
    assert generated_text(json.dumps(chat).encode(), "application/json") == "Hi!"
    completion = {"choices": [{"text": " 6, 7"}]}
    assert generated_text(json.dumps(completion).encode(), "application/json") == " 6, 7"
    assert generated_text(b'{"content": "native"}', "application/json") == "native"
    assert generated_text(b"<html>", "text/html") == ""


def test_exposure_rules() -> None:
    check_exposure("127.0.0.1", None)
    check_exposure("::1", None)
    check_exposure("localhost", None)
    check_exposure("0.0.0.0", "key")
    with pytest.raises(OptionError, match="other machines") as e:
        check_exposure("0.0.0.0", None)
    assert "--api-key" in (e.value.hint or "")
    with pytest.raises(OptionError, match="empty"):
        check_exposure("127.0.0.1", " ")
    assert not is_loopback("example.org")


def test_port_in_use_is_a_user_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OptionError, match="cannot listen") as e:
            bind("127.0.0.1", port)
        assert "--port" in (e.value.hint or "")


def test_llama_server_gets_every_slots_context(tiny_model: Path) -> None:
    profile = load_profile("cpu")
    info = load_model_info(tiny_model)
    plan = RunPlan(info, profile, 300, estimate_memory(info, profile, 300, slots=3))
    argv = server_argv(ServerConfig(plan, slots=3, port=1234, api_key="k"), Path("llama-server"))
    flags = dict(zip(argv[1::2], argv[2::2], strict=False))
    # llama-server splits -c evenly over the slots, each padded to 256 cells.
    assert slot_context(300) == 512
    assert argv[argv.index("--ctx-size") + 1] == str(3 * 512)
    assert argv[argv.index("--parallel") + 1] == "3"
    assert "--no-kv-unified" in argv
    assert "--no-jinja" in argv  # a file's template never runs in llama-server's Jinja engine
    assert argv[argv.index("--fit") + 1] == "off"
    assert flags["--host"] == "127.0.0.1"


def test_estimate_counts_every_slot(tiny_model: Path) -> None:
    profile = load_profile("cpu")
    info = load_model_info(tiny_model)
    one = estimate_memory(info, profile, 512, process_bytes=0)
    eight = estimate_memory(info, profile, 512, process_bytes=0, slots=8)
    assert eight.kv_cache == 8 * one.kv_cache
    assert eight.compute == one.compute + 7 * info.vocab_size * 4
    assert eight.weights == one.weights
    assert eight.to_dict()["slots"] == 8


def test_observers_run_off_the_caller_and_survive_a_failing_one() -> None:
    gate, seen = threading.Event(), []

    def slow(exchange: Exchange) -> None:
        gate.wait(10)
        seen.append(exchange.text)

    def broken(exchange: Exchange) -> None:
        raise RuntimeError("observer bug")

    observers = Observers()
    observers.add(broken)
    observers.add(slow)
    started = time.perf_counter()
    for text in ("a", "b", "c"):
        observers.hand_off(Exchange("/v1/completions", {}, text, 200))
    assert time.perf_counter() - started < 0.5  # handed off while the observer is still blocked
    assert seen == []
    gate.set()
    observers.close()
    assert seen == ["a", "b", "c"]
