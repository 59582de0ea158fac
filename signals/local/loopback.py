"""The local endpoints answer only this machine's own clients.

The embedded AWS endpoint and the ingest API listen on 127.0.0.1, but a web page the developer has
open can still reach them through the browser: a `fetch` from any origin to `http://127.0.0.1:PORT`
(a "simple" request such as a `text/plain` POST is sent without a preflight, so it acts even when
its answer cannot be read), or DNS rebinding (`attacker.example` first resolving to the attacker's
server, then to 127.0.0.1, so the page's own origin reads the local lake). Two checks close both:

- the `Host` header must name this machine: `localhost` or a name under it (RFC 6761 section 6.3:
  such names always resolve to loopback, browsers never ask DNS for them), an IPv4 address in
  127.0.0.0/8 or `[::1]`, each with or without a port. A rebound name fails here;
- an `Origin` header, when a browser sends one, must be a loopback origin in the same sense. A page
  served from anywhere else (or an opaque `null` origin) is refused before anything runs.

AWS SDKs and CLIs send `Host` from the endpoint URL and no `Origin`, so they pass. A refusal is 403
with a body naming what was refused and why, and no data. moto's global CORS (which would let any
origin read answers) is turned off by `disable_moto_cors` before moto's server module is imported.

    app = loopback_only(app)                      # a WSGI app, refusing in plain JSON
    reason = foreign_request(environ)             # None, or why the request is refused
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

#: What a refusal's body says after the reason, so a user seeing it knows how to reach the stack.
HINT: Final = (
    "signals local answers only clients on this machine that address it as localhost, 127.0.0.1 "
    "(127.0.0.0/8) or [::1]"
)


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, `*.localhost`, 127.0.0.0/8 and [::1], with or without `:port`."""
    host = host.strip().lower()
    if host.startswith("["):  # [v6] or [v6]:port
        end = host.find("]")
        rest = host[end + 1 :]
        if end < 0 or (rest and not _is_port(rest)):
            return False
        return _loopback_address(host[1:end])
    name, colon, port = host.partition(":")
    if colon and not port.isdigit():  # a bare IPv6 address, or a port that is not a number
        return False
    if name == "localhost" or (name.endswith(".localhost") and _HOST_NAME.fullmatch(name)):
        return True
    return _loopback_address(name)


_HOST_NAME: Final = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*")


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit()


def _loopback_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return address in ipaddress.IPv4Network("127.0.0.0/8")
    return address == ipaddress.IPv6Address("::1")


def is_loopback_origin(origin: str) -> bool:
    """True for an `Origin` such as `http://localhost:3000` or `http://127.0.0.1:8080`."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return False
    return is_loopback_host(parts.netloc)


def foreign_request(environ: Mapping[str, Any]) -> str | None:
    """Why this request does not come from this machine's own client (None when it does)."""
    host = environ.get("HTTP_HOST")
    if host is not None and not is_loopback_host(str(host)):
        return f"Host {str(host)!r} is not a loopback name or address"
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None and not is_loopback_origin(str(origin)):
        return f"Origin {str(origin)!r} is not a page on this machine"
    return None


def refusal_message(reason: str) -> str:
    return f"Forbidden: {reason}; {HINT}"


def loopback_only(app: Any) -> Any:
    """`app` behind the Host and Origin checks; a refusal is 403 JSON (`__type`, `message`), no data."""

    def guarded(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        reason = foreign_request(environ)
        if reason is None:
            result: Iterable[bytes] = app(environ, start_response)
            return result
        body = json.dumps({"__type": "AccessDeniedException", "message": refusal_message(reason)}).encode()
        start_response("403 Forbidden", [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", "AccessDeniedException"),
            ("Content-Length", str(len(body))),
        ])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return guarded


def disable_moto_cors() -> None:
    """Turn off moto's global CORS (`MOTO_DISABLE_GLOBAL_CORS`), which answers every origin.

    moto 5 reads the variable once, when `moto.settings` is imported, and its server module copies
    the value at its own import (`from moto.settings import DISABLE_GLOBAL_CORS`); each service's
    Flask app reads that copy when it is created, on the service's first request. So the variable
    is set before moto's server is imported, and where moto was imported earlier in this process (a
    test using moto in process), the copy is set to the value moto would have read."""
    os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "true"
    from moto.moto_server import werkzeug_app  # noqa: PLC0415 (moto is heavy; the stack loads it)

    copied = vars(werkzeug_app)  # the module's own copy of moto.settings.DISABLE_GLOBAL_CORS
    if not copied.get("DISABLE_GLOBAL_CORS"):
        copied["DISABLE_GLOBAL_CORS"] = True
