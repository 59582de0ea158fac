"""A busy port fails the start with a clear error (moto's threaded server would otherwise wait forever)."""

from __future__ import annotations

import socket

import pytest

from signals.local.stack import ensure_port_free, free_port


def test_busy_port_is_reported() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port} is in use"):
            ensure_port_free(port)
    ensure_port_free(free_port())
