"""Fixtures for the SDK suite: the mock provider and, in gateway mode, Starling in front of it.

Modes (env STARLING_SDK_MODES, default "direct,gateway"):
  direct   the official SDKs talk to starling-mock itself;
  gateway  they talk to `starling serve`, configured with the mock as its OpenAI and Anthropic
           providers. Skipped (with the reason) when the gateway binary is missing or does not
           start with that config.

Binaries: STARLING_MOCK_BIN / STARLING_GATEWAY_BIN (full paths), else STARLING_BIN_DIR, else
$CARGO_TARGET_DIR/debug, else <repo>/target/debug.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import anthropic
import openai
import pytest

REPO = Path(__file__).resolve().parents[2]
READY_DEADLINE_S = 30.0
GATEWAY_KEY = "sk-starling-test"
MOCK_OPENAI_KEY = "sk-mock"
MOCK_ANTHROPIC_KEY = "sk-ant-mock"


def _modes() -> list[str]:
    raw = os.environ.get("STARLING_SDK_MODES", "direct,gateway")
    modes = [m.strip() for m in raw.split(",") if m.strip()]
    unknown = set(modes) - {"direct", "gateway"}
    if unknown:
        raise pytest.UsageError(f"unknown STARLING_SDK_MODES entries: {sorted(unknown)}")
    return modes


def _bin_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("STARLING_BIN_DIR"):
        dirs.append(Path(os.environ["STARLING_BIN_DIR"]))
    if os.environ.get("CARGO_TARGET_DIR"):
        dirs.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug")
    dirs.append(REPO / "target" / "debug")
    return dirs


def _find_bin(name: str, env_var: str) -> Optional[Path]:
    if os.environ.get(env_var):
        p = Path(os.environ[env_var])
        return p if p.is_file() else None
    for d in _bin_dirs():
        p = d / name
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


class Proc:
    """A child process started with a ready file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], ready: Path, log: Path, env: Optional[dict] = None):
        self.name = name
        self.ready = ready
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self) -> dict[str, Any]:
        """Waits for the ready file (written atomically by the child) with a deadline."""
        deadline = time.monotonic() + READY_DEADLINE_S
        while time.monotonic() < deadline:
            if self.ready.exists():
                return json.loads(self.ready.read_text())
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} wrote no ready file within {READY_DEADLINE_S}s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@dataclass
class Mock:
    """The running mock provider and its control API."""

    host: str  # "127.0.0.1:PORT"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def ledger(self) -> list[dict]:
        return self._call("GET", "/_mock/ledger")

    def summary(self) -> dict:
        return self._call("GET", "/_mock/ledger/summary")

    def clear_ledger(self) -> None:
        self._call("DELETE", "/_mock/ledger")

    def inject(self, fault: dict) -> None:
        self._call("POST", "/_mock/faults", fault)

    def clear_faults(self) -> None:
        self._call("DELETE", "/_mock/faults")


@pytest.fixture(scope="session")
def mock(tmp_path_factory) -> Mock:
    binary = _find_bin("starling-mock", "STARLING_MOCK_BIN")
    if binary is None:
        pytest.fail(f"starling-mock not found in {[str(d) for d in _bin_dirs()]}; "
                    "build it with `cargo build -p starling-bench` or set STARLING_BIN_DIR")
    d = tmp_path_factory.mktemp("mock")
    ready = d / "ready.json"
    p = Proc("starling-mock", [str(binary), "--listen", "127.0.0.1:0", "--ready-file", str(ready)],
             ready, d / "mock.log")
    try:
        info = p.wait_ready()
        yield Mock(info["http"])
    finally:
        p.stop()


GATEWAY_CONFIG = """\
[auth]
keys = ["{key}"]

[[providers]]
name = "mock-openai"
kind = "openai"
base_url = "http://{mock}/v1"
api_key_env = "MOCK_OPENAI_KEY"
models = ["gpt-*", "text-embedding-*"]

[[providers]]
name = "mock-anthropic"
kind = "anthropic"
base_url = "http://{mock}"
api_key_env = "MOCK_ANTHROPIC_KEY"
models = ["claude-*"]
"""


@pytest.fixture(scope="session")
def gateway(mock, tmp_path_factory) -> str:
    """`host:port` of a Starling gateway in front of the mock. A gateway that is missing or
    fails to start is an error, not a skip: these tests must be able to fail."""
    binary = _find_bin("starling", "STARLING_GATEWAY_BIN")
    if binary is None:
        pytest.fail(f"gateway binary `starling` not found in {[str(d) for d in _bin_dirs()]}")
    d = tmp_path_factory.mktemp("gateway")
    cfg = d / "starling.toml"
    cfg.write_text(GATEWAY_CONFIG.format(key=GATEWAY_KEY, mock=mock.host))
    ready = d / "ready.json"
    env = {**os.environ, "MOCK_OPENAI_KEY": MOCK_OPENAI_KEY, "MOCK_ANTHROPIC_KEY": MOCK_ANTHROPIC_KEY}
    p = Proc("starling", [str(binary), "serve", "--config", str(cfg), "--listen", "127.0.0.1:0",
                          "--ready-file", str(ready)], ready, d / "gateway.log", env=env)
    try:
        try:
            info = p.wait_ready()
        except (RuntimeError, ValueError) as e:
            pytest.fail(f"gateway did not start with the SDK config: {e}")
        yield info["http"]
    finally:
        p.stop()


@dataclass
class Target:
    """Where the SDK clients point, and how to build them."""

    mode: str
    openai_base_url: str
    anthropic_base_url: str
    openai_key: str
    anthropic_key: str
    mock: Mock

    def openai(self, **kw) -> openai.OpenAI:
        kw.setdefault("api_key", self.openai_key)
        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 30)
        return openai.OpenAI(base_url=self.openai_base_url, **kw)

    def anthropic(self, **kw) -> anthropic.Anthropic:
        kw.setdefault("api_key", self.anthropic_key)
        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 30)
        return anthropic.Anthropic(base_url=self.anthropic_base_url, **kw)


def pytest_generate_tests(metafunc):
    """Parametrizes `target` over the enabled modes; cross-format tests only get `gateway`."""
    if "target" not in metafunc.fixturenames:
        return
    modes = _modes()
    if metafunc.definition.get_closest_marker("gateway_only"):
        modes = [m for m in modes if m == "gateway"]
    metafunc.parametrize("target", modes, indirect=True, ids=modes)


@pytest.fixture
def target(request, mock) -> Target:
    mode = request.param
    if mode == "direct":
        return Target(mode, f"{mock.url}/v1", mock.url, MOCK_OPENAI_KEY, MOCK_ANTHROPIC_KEY, mock)
    host = request.getfixturevalue("gateway")
    return Target(mode, f"http://{host}/v1", f"http://{host}", GATEWAY_KEY, GATEWAY_KEY, mock)


@pytest.fixture
def oai(target) -> openai.OpenAI:
    return target.openai()


@pytest.fixture
def ant(target) -> anthropic.Anthropic:
    return target.anthropic()
