"""`edgekit serve` as a user runs it (the CLI, in a subprocess, on a random loopback port) with
the real default model, driven by the `openai` client as other programs would drive it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import openai
import psutil
import pytest

from tests.fixtures.env import REPO_ROOT

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(300)]

KEY = "test-key-" + "x" * 16
SLOTS = 8
CTX = 512
COUNTING = "Count from 1 to 100, separated by commas: 1, 2, 3, 4, 5,"


@dataclass
class Served:
    proc: subprocess.Popen[str]
    ready: dict[str, Any]

    @property
    def url(self) -> str:
        return str(self.ready["url"])

    def client(self, key: str = KEY, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kw)

    def request(
        self, method: str, path: str, content: bytes | None = None, key: str | None = KEY
    ) -> tuple[int, Any]:
        """A raw request (what a hand-written client sends); the status and the parsed body."""
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            conn.request(method, path, content, headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode("utf-8", "replace")

    def post(self, path: str, content: bytes, key: str | None = KEY) -> tuple[int, Any]:
        return self.request("POST", path, content, key)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def _start(*extra: str) -> Served:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "serve", "--port", "0", "--json", *extra],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the one JSON object, printed once /health answered
    if not line:
        proc.wait(30)
        assert proc.stderr is not None
        pytest.fail(f"edgekit serve did not start: {proc.stderr.read()}")
    return Served(proc, json.loads(line))


def _stop(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGINT)
        try:
            served.proc.wait(30)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait()


@contextmanager
def serving(*extra: str) -> Iterator[Served]:
    served = _start(*extra)
    try:
        yield served
    finally:
        _stop(served)


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with serving("--api-key", KEY, "--parallel", str(SLOTS), "--ctx", str(CTX)) as served:
        yield served


def _chat(client: openai.OpenAI, text: str, **kw: Any) -> Any:
    return client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": text}], **kw
    )


def test_ready_line_describes_the_server(server: Served) -> None:
    r = server.ready
    assert r["slots"] == SLOTS and r["context_per_slot"] == CTX
    assert r["api_key_required"] is True
    assert r["memory_estimate"]["slots"] == SLOTS
    assert psutil.Process(r["llama_server_pid"]).is_running()


def test_chat_applies_the_template(server: Served) -> None:
    client = server.client()
    reply = _chat(client, "What is the capital of France?", max_tokens=8, temperature=0)
    text = reply.choices[0].message.content
    assert isinstance(text, str) and text.strip()
    assert reply.choices[0].finish_reason in ("stop", "length")
    # The prompt the model saw is Gemma's chat template around the message, token for token.
    message = {"role": "user", "content": "What is the capital of France?"}
    _, templated = server.post("/apply-template", json.dumps({"messages": [message]}).encode())
    prompt = templated["prompt"]
    assert "<start_of_turn>user" in prompt and "<start_of_turn>model" in prompt
    _, tokenized = server.post("/tokenize", json.dumps({"content": prompt}).encode())
    tokens = tokenized["tokens"]
    assert reply.usage is not None
    assert abs(reply.usage.prompt_tokens - len(tokens)) <= 1  # BOS is added or already there


def test_streaming_matches_the_whole_answer(server: Served) -> None:
    client = server.client()
    whole = _chat(client, "Name three colours.", max_tokens=12, temperature=0, seed=7)
    stream = _chat(client, "Name three colours.", max_tokens=12, temperature=0, seed=7, stream=True)
    pieces, finish = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert len([p for p in pieces if p]) > 1  # it came in pieces, not as one block
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason


def test_stream_is_relayed_as_it_is_generated(server: Served) -> None:
    """Each event reaches the client when llama-server sends it: spread over the decode time,
    not all at once at the end (which a buffering front would do)."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    body = {"prompt": COUNTING, "max_tokens": 12, "temperature": 0, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    conn.request("POST", "/v1/completions", json.dumps(body), headers)
    resp = conn.getresponse()
    arrivals, timings = [], None
    for raw in resp:
        if raw.startswith(b"data:") and not raw.strip().endswith(b"[DONE]"):
            event = json.loads(raw[5:])
            if event["choices"] and event["choices"][0]["text"]:
                arrivals.append(time.perf_counter())
            timings = event.get("timings", timings)
    conn.close()
    assert timings is not None and len(arrivals) == timings["predicted_n"] == 12
    # llama-server's decode of tokens 2..12 took predicted_ms * 11/12; the client saw them
    # arrive over at least half of that.
    decode_s = timings["predicted_ms"] / 1000 * 11 / 12
    assert arrivals[-1] - arrivals[0] >= 0.5 * decode_s


def test_max_tokens_and_stop(server: Served) -> None:
    client = server.client()
    capped = client.completions.create(
        model="default", prompt=COUNTING, max_tokens=5, temperature=0
    )
    assert capped.usage is not None and capped.usage.completion_tokens == 5
    assert capped.choices[0].finish_reason == "length"
    stopped = client.completions.create(
        model="default", prompt=COUNTING, max_tokens=20, temperature=0, stop=["9"]
    )
    assert stopped.choices[0].finish_reason == "stop"
    assert "9" not in stopped.choices[0].text
    assert "6" in stopped.choices[0].text  # it did count before stopping


def test_seed_determinism(server: Served) -> None:
    client = server.client()
    greedy = {
        _chat(client, "Tell me a story.", max_tokens=8, temperature=0).choices[0].message.content
        for _ in range(2)
    }
    assert len(greedy) == 1
    sampled = {
        _chat(client, "Tell me a story.", max_tokens=8, temperature=1.0, seed=1234)
        .choices[0]
        .message.content
        for _ in range(2)
    }
    assert len(sampled) == 1


def test_concurrent_clients_each_get_an_intact_answer(server: Served) -> None:
    def one(i: int) -> tuple[set[str], str, str | None, int]:
        client = server.client()
        stream = client.completions.create(
            model="default",
            prompt=f"Request {i}: " + COUNTING,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        ids, text, finish, used = set(), "", None, 0
        for chunk in stream:
            ids.add(chunk.id)
            if chunk.choices:
                text += chunk.choices[0].text
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage is not None:
                used = chunk.usage.completion_tokens
        return ids, text, finish, used

    with ThreadPoolExecutor(SLOTS) as pool:
        results = list(pool.map(one, range(SLOTS)))
    all_ids = set()
    for ids, text, finish, used in results:
        assert len(ids) == 1  # every chunk of a stream belongs to that stream
        assert finish == "length" and used == 12
        assert text.strip()
        all_ids |= ids
    assert len(all_ids) == SLOTS


def test_wrong_or_missing_key_is_401(server: Served) -> None:
    with pytest.raises(openai.AuthenticationError):
        _chat(server.client(key="wrong"), "hi", max_tokens=2)
    status, body = server.post("/v1/chat/completions", b"{}", key=None)
    assert status == 401
    assert body["error"]["type"] == "authentication_error"
    assert server.request("GET", "/health", key=None)[0] == 200  # public, as llama-server's


def test_bad_requests_get_4xx_and_the_next_is_served(server: Served) -> None:
    client = server.client()
    status, body = server.post("/v1/chat/completions", b'{"messages": [}')
    assert status == 400
    assert set(body["error"]) == {"message", "type", "code"}
    assert server.post("/v1/chat/completions", b"[1, 2]")[0] == 400
    absurd = {"prompt": "hi", "max_tokens": -1}
    assert server.post("/v1/completions", json.dumps(absurd).encode())[0] == 400
    huge = {"prompt": "hi", "max_tokens": 10**9}
    assert server.post("/v1/completions", json.dumps(huge).encode())[0] == 400
    with pytest.raises(openai.BadRequestError) as e:  # a prompt longer than a slot's context
        _chat(client, "word " * (CTX * 2), max_tokens=4)
    assert e.value.status_code == 400
    long_stream = {
        "model": "default",
        "stream": True,
        "messages": [{"role": "user", "content": "word " * (CTX * 2)}],
    }
    assert server.post("/v1/chat/completions", json.dumps(long_stream).encode())[0] == 400
    reply = _chat(client, "Say hi.", max_tokens=4, temperature=0)
    assert reply.choices[0].message.content


def test_llama_servers_endpoints_pass_through(server: Served) -> None:
    _, slots = server.request("GET", "/slots")
    assert len(slots) == SLOTS and {s["n_ctx"] for s in slots} == {CTX}
    status, metrics = server.request("GET", "/metrics")
    assert status == 200 and "llamacpp:" in metrics
    models = server.client().models.list()
    assert len(models.data) == 1


def test_server_killed_mid_stream_gives_the_client_an_error() -> None:
    with serving("--parallel", "1", "--ctx", "1024") as served:
        client = served.client(key="unused", timeout=30)
        stream = client.completions.create(
            model="default", prompt=COUNTING, max_tokens=400, temperature=0, stream=True
        )
        started = time.monotonic()
        with pytest.raises(Exception) as cut:  # the client library picks the type
            for n, _ in enumerate(stream):
                if n == 2:
                    os.kill(served.ready["llama_server_pid"], signal.SIGKILL)
        assert not isinstance(cut.value, AssertionError)
        assert time.monotonic() - started < 20
        served.proc.wait(30)
        assert served.proc.returncode == 2
        assert served.proc.stdout is not None
        error = json.loads(served.proc.stdout.read())
        assert "llama-server stopped while serving" in error["message"]
        assert "log" in error["hint"]


def test_sigint_stops_everything() -> None:
    served = _start("--parallel", "2", "--ctx", "512")
    child = psutil.Process(served.ready["llama_server_pid"])
    served.proc.send_signal(signal.SIGINT)
    assert served.proc.wait(30) == 0
    with pytest.raises(psutil.NoSuchProcess):
        child.wait(10)  # reaped by edgekit: gone, not a zombie
        child.status()


def test_sigint_while_the_model_loads_stops_everything() -> None:
    """Ctrl-C as soon as llama-server exists (still loading, on this machine): no process left."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "serve", "--port", "0", "--parallel", "1"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (children := psutil.Process(proc.pid).children()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    with pytest.raises(psutil.NoSuchProcess):
        children[0].wait(10)
        children[0].status()


def test_too_many_slots_are_refused_before_start() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "edgekit", "serve", "--port", "0", "--json",
         "--parallel", "256", "--ctx", "32768"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    error = json.loads(r.stdout)
    assert error["error"] == "ModelTooBigError"
    assert "256 slots" in error["message"] and "--parallel" in error["hint"]


def test_non_loopback_without_key_is_refused() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "edgekit", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert "--api-key" in r.stderr
