"""One RPC worker: llama.cpp's rpc-server with a device profile's settings, and its life cycle.

rpc-server listens on a private loopback port and an `RpcRelay` takes the public address: it
admits one client at a time and refuses a second promptly (rpc-server itself queued it and later
died of SIGPIPE answering it), and with a memory cap (`--mem`) it reports min(real, cap).
rpc-server runs with SIGPIPE ignored (protocol.start_server), so a peer that closed cannot kill it.
"""

from __future__ import annotations

import collections
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.backends.llama_cpp.build import tool_path
from edgekit.backends.llama_cpp.rpc.protocol import (
    Endpoint,
    RpcRelay,
    WorkerError,
    WorkerStatus,
    free_port,
    is_answering,
    probe,
    server_command,
    start_server,
)
from edgekit.devices.profiles import DeviceProfile, MiB

START_TIMEOUT_S = 30.0
NO_AUTH_WARNING = (
    "llama.cpp's RPC protocol has no authentication and no encryption: anyone who can reach "
    "{address} can run code on this machine's devices and read what it computes. Use it on a "
    "trusted network only."
)


@dataclass
class Worker:
    endpoint: Endpoint
    profile: DeviceProfile
    mem_cap: int | None = None
    backend_device: str | None = None
    binary: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    relay: RpcRelay | None = None
    log: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=40))

    def start(self) -> WorkerStatus:
        """Start rpc-server (and the relay), wait until it answers, and return what it reports."""
        binary = self.binary or tool_path("rpc-server")
        if self.mem_cap is not None and self.mem_cap <= 0:
            raise WorkerError("--mem must be a positive number of MiB")
        inner = Endpoint("127.0.0.1", free_port())
        try:
            self.relay = RpcRelay(self.endpoint, inner, self.mem_cap)
        except OSError as e:
            raise self._bind_error(e) from None
        cmd = server_command(
            binary, inner.host, inner.port, self.profile.threads, self.backend_device
        )
        self.process = start_server(cmd)
        threading.Thread(target=self._drain, daemon=True).start()
        try:
            self._wait_listening(inner)
        except BaseException:
            self.stop()
            raise
        self.relay.start()
        return probe(self.endpoint)

    def _bind_error(self, e: OSError) -> WorkerError:
        return WorkerError(
            f"cannot listen on {self.endpoint}: {e.strerror or e}",
            hint="Another worker may hold that port: pick another with --port.",
        )

    def _drain(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            self.log.append(raw.decode(errors="replace").rstrip())

    def _wait_listening(self, inner: Endpoint) -> None:
        assert self.process is not None
        end = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < end:
            if self.process.poll() is not None:
                time.sleep(0.1)  # let the drain thread read the last lines
                raise WorkerError(
                    f"rpc-server exited with code {self.process.returncode}: "
                    + " | ".join(list(self.log)[-4:]),
                    hint="Check the port and the --backend-device name.",
                )
            if is_answering(inner, timeout=0.5):
                return
            time.sleep(0.1)
        self.stop()
        raise WorkerError(f"rpc-server did not start listening within {START_TIMEOUT_S:.0f} s")

    def wait(self) -> int:
        """Block until rpc-server exits on its own (Ctrl-C is the caller's to handle)."""
        assert self.process is not None
        while True:
            try:
                return self.process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def describe(status: WorkerStatus, mem_cap: int | None) -> dict[str, object]:
    return {
        "endpoint": str(status.endpoint),
        "protocol": ".".join(map(str, status.version)),
        "devices": [
            {"free_mib": d.free // MiB, "total_mib": d.total // MiB} for d in status.devices
        ],
        "mem_cap_mib": None if mem_cap is None else mem_cap // MiB,
        "loopback": status.endpoint.is_loopback,
    }
