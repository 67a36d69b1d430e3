"""The served bias guard: the loop seen through a real llama-server's /lora-adapters, the history
rows it writes, the adapter's resolution, and the queue that keeps it off the request path."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.bias import history, store
from edgekit.bias.controller import adapter_path
from edgekit.bias.guard import FLOOR_SHARE, ScaleLimits
from edgekit.errors import AdapterFileError, BiasError
from edgekit.serving.exchange import Exchange
from edgekit.serving.guard import (
    MIN_SCALE_STEP,
    Guard,
    guard_server_args,
    resolve_bias_adapter,
    served_loop,
    start_guard,
)
from tests.fixtures.lora_server import http, running_llama_server, write_erasure_adapter
from tests.fixtures.tiny_models import write_tiny_llama

# The lexicon scorer reads both sentences as the suite's stereotypes (woman/nurse, man/engineer).
BIASED = "The woman is a nurse. The man is an engineer."
CLEAN = "The river runs north of the city, past the old music house."
CHAT = "/v1/chat/completions"
KEY = "test-key-1"


def exchange(text: str, status: int = 200, path: str = CHAT) -> Exchange:
    return Exchange(path, {"messages": [{"role": "user", "content": "hi"}]}, text, status)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(
        tmp_path_factory.mktemp("guard") / "tiny-guard.gguf", n_layers=4, seed=7
    )


@pytest.fixture(scope="module")
def calibrated(model: Path) -> Path:
    """The adapter where `edgekit bias --mitigate` leaves it, and the session it records."""
    fingerprint = store.model_fingerprint(model)
    path = write_erasure_adapter(model, adapter_path(fingerprint), scale=1.0)
    conn = store.connect()
    try:
        state = {"state": {"strength": 1.0, "turn": 0}}
        store.save_session(
            conn, f"mitigate-{fingerprint[:8]}", fingerprint, "cpu", "mitigate", state
        )
    finally:
        conn.close()
    return path


class RecordingSetter:
    """Stands in for the server only where the queue is under test; `gate` holds the thread."""

    def __init__(self, fail_first: bool = False, initial: float = 1.0) -> None:
        self.initial = initial
        self.scales: list[float] = []
        self.reads = 0
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.fail_first = fail_first

    def scale(self) -> float:
        self.reads += 1
        return self.scales[-1] if self.scales else self.initial

    def set_scale(self, scale: float) -> None:
        self.entered.set()
        self.gate.wait(30)
        if self.fail_first:
            self.fail_first = False
            raise OSError("server busy")
        self.scales.append(scale)


@pytest.fixture
def recorder() -> Iterator[RecordingSetter]:
    setter = RecordingSetter()
    yield setter
    setter.gate.set()


def test_a_full_queue_drops_outputs_without_blocking_or_raising(recorder: RecordingSetter) -> None:
    guard = Guard(recorder, served_loop(ScaleLimits(0.5, 1.0)), queue_size=2)
    recorder.gate.clear()
    guard.observe(exchange(CLEAN))  # the thread takes it and waits in set_scale
    assert recorder.entered.wait(10)
    for _ in range(5):
        guard.observe(exchange(CLEAN))  # two fit in the queue, three are dropped
    assert guard.dropped == 3
    recorder.gate.set()
    assert guard.drain(30)
    assert guard.state.turn == 3
    assert recorder.scales == pytest.approx([0.85, 0.745, 0.6715])
    guard.close()
    guard.observe(exchange(CLEAN))  # after close: ignored, no error
    assert guard.state.turn == 3


def test_observe_never_raises_and_skips_what_has_no_output(recorder: RecordingSetter) -> None:
    guard = Guard(recorder, served_loop(ScaleLimits(0.5, 1.0)))
    guard.observe(exchange(CLEAN, status=500))
    guard.observe(exchange(CLEAN, path="/v1/embeddings"))
    guard.observe(exchange("   "))
    guard.observe(Exchange(CHAT, {}, None, 200))  # type: ignore[arg-type]
    assert guard.drain(10)
    assert guard.state.turn == 0 and guard.dropped == 0
    guard.close()


def test_a_failed_scale_change_leaves_the_loop_running() -> None:
    setter = RecordingSetter(fail_first=True)
    guard = Guard(setter, served_loop(ScaleLimits(0.5, 1.0)))
    guard.observe(exchange(CLEAN))
    guard.observe(exchange(CLEAN))
    assert guard.drain(10)
    assert guard.failures == 1
    assert setter.scales == pytest.approx([0.85])  # the first change never reached the server
    guard.close()


def test_the_scale_stays_within_the_calibrated_limits(recorder: RecordingSetter) -> None:
    assert ScaleLimits.from_calibrated(1.5) == ScaleLimits(FLOOR_SHARE, 1.0)  # never reflect
    assert ScaleLimits.from_calibrated(0.8) == ScaleLimits(FLOOR_SHARE * 0.8, 0.8)
    assert ScaleLimits.from_calibrated(0.0).ceiling == 1.0  # an uncalibrated file: exact erasure
    guard = Guard(recorder, served_loop(ScaleLimits.from_calibrated(0.8)))
    for text in [CLEAN] * 20 + [BIASED] * 6 + [CLEAN] * 3:
        guard.observe(exchange(text))
    assert guard.drain(30)
    assert min(recorder.scales) >= 0.4 and max(recorder.scales) <= 0.8
    assert 0.4 in recorder.scales and 0.8 in recorder.scales
    guard.close()


def test_small_steps_are_held_back_until_they_add_up(recorder: RecordingSetter) -> None:
    # Each change splits llama-server's batches (requests at two scales decode apart): the
    # relaxation's geometric tail (0.5412, 0.5288, ...) is sent once it adds up to
    # MIN_SCALE_STEP, and the floor itself always.
    guard = Guard(recorder, served_loop(ScaleLimits(0.5, 1.0)))
    for _ in range(30):
        guard.observe(exchange(CLEAN))
    assert guard.drain(30)
    assert recorder.scales == pytest.approx(
        [0.85, 0.745, 0.6715, 0.62005, 0.55882, 0.50692, 0.5], abs=1e-4
    )
    assert all(
        a - b >= MIN_SCALE_STEP - 1e-9
        for a, b in zip(recorder.scales[:-2], recorder.scales[1:-1], strict=True)
    )
    assert guard.state.strength == pytest.approx(0.5) and guard.applied == pytest.approx(0.5)
    guard.close()


def test_the_server_scale_is_read_back_at_most_once_per_drift_interval(
    recorder: RecordingSetter,
) -> None:
    # Each read is a task in llama-server's queue between decode steps: not one per output.
    guard = Guard(recorder, served_loop(ScaleLimits(0.5, 1.0)))
    for _ in range(30):  # clean outputs: relaxed to the floor within a few, then held there
        guard.observe(exchange(CLEAN))
    assert guard.drain(30)
    assert recorder.scales[-1] == pytest.approx(0.5) and len(recorder.scales) < 30
    assert recorder.reads == 0  # all within one interval
    guard.drift_check_s = 0.0
    guard.observe(exchange(CLEAN))
    assert guard.drain(30)
    assert recorder.reads == 1
    guard.close()


def test_auto_finds_the_calibrated_adapter_and_refuses_without_one(
    model: Path, calibrated: Path, tmp_path: Path
) -> None:
    assert resolve_bias_adapter("auto", model) == calibrated
    assert resolve_bias_adapter(str(calibrated), model) == calibrated
    never_calibrated = write_tiny_llama(tmp_path / "other.gguf", n_layers=4, seed=8)
    with pytest.raises(BiasError, match="no calibrated bias adapter") as info:
        resolve_bias_adapter("auto", never_calibrated)
    assert "--mitigate" in (info.value.hint or "")
    narrow = write_tiny_llama(tmp_path / "narrow.gguf", n_layers=4, n_embd=32, n_ff=64)
    with pytest.raises(AdapterFileError, match="another model"):
        resolve_bias_adapter(str(calibrated), narrow)


def test_server_args_load_the_adapter_at_its_calibrated_scale(
    calibrated: Path, tmp_path: Path
) -> None:
    assert guard_server_args(calibrated) == ["--lora-scaled", f"{calibrated}:1"]
    odd = tmp_path / "a,b.gguf"
    shutil.copy(calibrated, odd)
    with pytest.raises(BiasError, match="contains"):
        guard_server_args(odd)


def adapter_scale(url: str) -> float:
    (adapter,) = http(url + "/lora-adapters", api_key=KEY)
    return float(adapter["scale"])


def test_served_outputs_move_the_adapter_scale_on_a_real_llama_server(
    model: Path, calibrated: Path
) -> None:
    args = guard_server_args(resolve_bias_adapter("auto", model))
    with running_llama_server(model, args, api_key=KEY) as (url, _):
        assert adapter_scale(url) == 1.0
        guard = start_guard(model, "auto", url, KEY)
        guard.drift_check_s = 0.0  # look for a foreign scale after every output
        try:
            # A real served output: the tiny model's random words name no group, so it is clean.
            body = {"messages": [{"role": "user", "content": "the city"}], "max_tokens": 8}
            reply = http(url + CHAT, body, api_key=KEY)
            text = reply["choices"][0]["message"]["content"]
            guard.observe(Exchange(CHAT, body, text, 200))
            assert guard.drain(30)
            assert adapter_scale(url) == pytest.approx(0.85)  # clean: relaxed toward 0.5
            guard.observe(exchange(CLEAN))
            assert guard.drain(30)
            assert adapter_scale(url) == pytest.approx(0.745)
            # Biased: the scale follows the average of the last few outputs (a third of this
            # one), so it rises one step, then to the ceiling, never past 1.
            guard.observe(exchange(BIASED))
            assert guard.drain(30)
            assert adapter_scale(url) == pytest.approx(0.995)
            guard.observe(exchange(BIASED))
            assert guard.drain(30)
            assert adapter_scale(url) == pytest.approx(1.0)
            # A client with the key turns the adapter down: the next output sets it again.
            http(url + "/lora-adapters", [{"id": 0, "scale": 0.2}], api_key=KEY)
            guard.observe(exchange(BIASED))
            assert guard.drain(30)
            assert adapter_scale(url) == pytest.approx(1.0)
            # The server still serves, under the scale the guard set.
            assert http(url + CHAT, body, api_key=KEY)["choices"][0]["message"]["content"]
        finally:
            guard.close()
    saved = history.loop_state(session_id=guard.session_id)
    assert saved is not None and saved["source"] == "serve"
    assert saved["model_hash"] == store.model_fingerprint(model)
    events = saved["events"]
    assert [e["action"] for e in events] == ["relax", "relax", "raise", "raise", "hold"]
    assert [e["measured"] for e in events] == pytest.approx([0.0, 0.0, 1.0, 1.0, 1.0])
    assert [e["detail"]["smoothed"] for e in events] == pytest.approx([0, 0, 1 / 3, 5 / 9, 19 / 27])
    assert [e["strength_after"] for e in events] == pytest.approx([0.85, 0.745, 0.995, 1, 1])
    assert events[2]["detail"]["scorer"] == "lexicon"
    assert events[2]["detail"]["stereotyped"] == 2
    assert events[4]["detail"]["found_scale"] == pytest.approx(0.2)
    assert saved["state"]["strength"] == pytest.approx(1.0)
    assert saved["config"]["floor"] == 0.5 and saved["config"]["max_strength"] == 1.0
