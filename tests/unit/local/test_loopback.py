"""Which Host and Origin values count as this machine, and the state file's writer (no sockets)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from signals.local.loopback import foreign_request, is_loopback_host, is_loopback_origin
from signals.local.stack import write_private


@pytest.mark.parametrize("host", [
    "localhost", "localhost:4566", "LOCALHOST:1", "api.localhost:8080", "127.0.0.1", "127.0.0.1:4566",
    "127.255.0.9:80", "[::1]", "[::1]:4566",
])
def test_loopback_hosts_pass(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", [
    "evil.example:4566", "attacker.com", "attacker.com:80", "", "localhost.", "localhost.evil.example",
    "127.1", "0x7f000001", "128.0.0.1", "0.0.0.0:4566", "10.0.0.1", "::1", "[::2]:80", "[::ffff:7f00:1]x",
    "127.0.0.1:port", "127.0.0.1.nip.io", "evil.example@127.0.0.1", "a_b.localhost",
])
def test_foreign_hosts_fail(host: str) -> None:
    assert not is_loopback_host(host)


def test_origins() -> None:
    assert is_loopback_origin("http://localhost:3000")
    assert is_loopback_origin("https://127.0.0.1")
    for origin in ("null", "http://evil.example", "http://attacker.com:4566", "file://", "chrome-extension://x",
                   "http://user@localhost:1"):
        assert not is_loopback_origin(origin), origin


def test_foreign_request_names_what_it_refuses() -> None:
    assert foreign_request({"HTTP_HOST": "127.0.0.1:4566"}) is None
    assert foreign_request({}) is None  # HTTP/1.0 without Host: only a raw client on this machine sends that
    assert "'attacker.com'" in (foreign_request({"HTTP_HOST": "attacker.com"}) or "")
    refused = foreign_request({"HTTP_HOST": "localhost:1", "HTTP_ORIGIN": "https://evil.example"}) or ""
    assert "Origin 'https://evil.example'" in refused


def test_the_state_file_is_owner_only_from_its_creation(tmp_path: Path) -> None:
    old_umask = os.umask(0o000)  # the most permissive umask: the mode must not come from it
    try:
        path = tmp_path / "local-stack.json"
        write_private(path, '{"api_key": "k"}\n')
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        path.chmod(0o644)  # an older file, readable by all, is replaced by an owner-only one
        write_private(path, '{"api_key": "k2"}\n')
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == '{"api_key": "k2"}\n'
        assert [p.name for p in tmp_path.iterdir()] == ["local-stack.json"]  # no temporary left behind
    finally:
        os.umask(old_umask)
