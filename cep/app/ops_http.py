"""The HTTP endpoints of a long run, served by waitress with an access policy.

Who may ask what (:class:`AccessPolicy`):

* **Host** — every request must name this server: a loopback name (``localhost``), an IP
  address literal, or the host it was bound to by name.  Anything else (``Host:
  rebind.evil.example``, the mark of a DNS-rebinding page reading ``/status``) is answered
  ``421 Misdirected Request``.  An IP literal cannot be rebound: a page can only reach it under
  its own origin.
* **Origin** — a ``POST`` that carries an ``Origin`` header (every browser's cross-site form or
  ``fetch``) must come from this very server (``http://`` + its ``Host``), else ``403``.
* **token** — with a reload token (``CEP_RELOAD_TOKEN``), ``POST /-/reload`` needs
  ``Authorization: Bearer <token>`` (compared in constant time), else ``401``.  Without one,
  ``POST`` is served only when the server is bound to a loopback address; bound beyond it,
  ``POST`` answers ``403`` until a token is set.

Limits (:class:`HttpLimits`): waitress reads requests on one thread without blocking and hands
only complete ones to a small pool of worker threads, so a half-open or slow connection costs a
socket, not a thread; at most ``connections`` are open at once (more wait in the kernel's
backlog), one idle for ``idle_timeout_s`` is closed, and request headers and bodies are
bounded.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import waitress.server
from prometheus_client import CONTENT_TYPE_LATEST

from cep.app.reload import ReloadResult

__all__ = ["AccessPolicy", "Endpoints", "HttpLimits", "OpsServer", "is_loopback"]

log = logging.getLogger("cep.ops")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Endpoints(Protocol):
    """What the server serves (:class:`cep.app.ops.Operations` is one): ``/metrics``,
    ``/status`` and ``POST /-/reload``."""

    def metrics_text(self) -> bytes: ...

    def status(self) -> dict[str, Any]: ...

    def reload(self, reason: str, timeout: float = 30.0) -> ReloadResult | None: ...
ENDPOINTS = ["/metrics", "/healthz", "/status", "POST /-/reload"]
_REASONS = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 421: "Misdirected Request",
            422: "Unprocessable Entity", 504: "Gateway Timeout"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, ``[v6]`` brackets allowed) is loopback only:
    ``localhost``, ``127.0.0.0/8``, ``::1``."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HttpLimits:
    """Bounds of the HTTP server: worker ``threads``; open ``connections`` at once; an idle
    or stalled connection closed after ``idle_timeout_s`` seconds (checked every
    ``cleanup_interval_s``); request header and body sizes in bytes."""

    threads: int = 8
    connections: int = 64
    idle_timeout_s: int = 10
    cleanup_interval_s: int = 2
    max_header_bytes: int = 16_384
    max_body_bytes: int = 65_536


@dataclass(frozen=True)
class AccessPolicy:
    """Which requests the server answers (see the module docstring).

    Args:
        bind_host: the address or name the server was bound to.
        token: the reload token, or ``None``.
    """

    bind_host: str
    token: str | None = None

    @property
    def loopback(self) -> bool:
        """Bound to a loopback address only."""
        return is_loopback(self.bind_host)

    def host_allowed(self, host_header: str | None) -> bool:
        """A request's ``Host`` (``None``: absent, as from HTTP/1.0 clients) names us."""
        if host_header is None:
            return True
        host = _host_part(host_header)
        if host is None:
            return False
        if host == "localhost" or host == self.bind_host.strip("[]").lower().rstrip("."):
            return True
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True

    def origin_allowed(self, origin: str | None, host_header: str | None) -> bool:
        """A ``POST``'s ``Origin`` is absent or this server itself."""
        if origin is None:
            return True
        return host_header is not None and origin.lower() == "http://" + host_header.lower()

    def reload_refusal(self, authorization: str | None) -> tuple[int, str] | None:
        """Why ``POST /-/reload`` with this ``Authorization`` header is refused — ``(status,
        message)`` — or ``None`` when it is allowed."""
        if self.token is None:
            if self.loopback:
                return None
            return 403, ("POST /-/reload is off on a non-loopback address without a token: "
                         "set CEP_RELOAD_TOKEN and send Authorization: Bearer <token>")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode(), self.token.encode()):
            return None
        return 401, "POST /-/reload needs Authorization: Bearer <CEP_RELOAD_TOKEN>"


def _host_part(header: str) -> str | None:
    """The host of a ``Host`` header (port dropped, lower case); ``None`` when malformed."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        rest = header[end + 1:]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return header[1:end]
    name, sep, port = header.rpartition(":")
    if sep and port.isdigit():
        header = name
    return header.rstrip(".") or None


class OpsServer:
    """The endpoints of ``ops`` on ``host:port`` (port 0: any free port; :attr:`address` is
    the bound one), served by waitress on a daemon thread."""

    def __init__(self, host: str, port: int, ops: Endpoints, token: str | None = None,
                 limits: HttpLimits | None = None) -> None:
        limits = limits or HttpLimits()
        self.policy = AccessPolicy(host, token)
        self.server = waitress.server.create_server(
            wsgi_app(ops, self.policy), host=host, port=port, threads=limits.threads,
            connection_limit=limits.connections, channel_timeout=limits.idle_timeout_s,
            cleanup_interval=limits.cleanup_interval_s,
            max_request_header_size=limits.max_header_bytes,
            max_request_body_size=limits.max_body_bytes, ident="cep",
            asyncore_use_poll=True, clear_untrusted_proxy_headers=True)
        sock = self.server.socket.getsockname()
        self.address: tuple[str, int] = (sock[0], sock[1])
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve on a daemon thread."""
        self._thread = threading.Thread(target=self.server.run, name="cep-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: the worker threads finish the requests they are answering (at most
        2 s; a reload waiting for a stopped pipeline is answered at once), then the listening
        socket and every connection are closed, a connection still sending its answer once
        that answer is sent (waitress's ``will_close``)."""
        server = self.server
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=2)

        def close_all() -> None:  # on the server's own thread: its map is not shared
            for channel in list(server._map.values()):
                if getattr(channel, "total_outbufs_len", 0):
                    channel.will_close = True  # closed by the loop once flushed
                else:
                    channel.close()

        if self._thread is not None and self._thread.is_alive():
            server.trigger.pull_trigger(close_all)
            self._thread.join(5)
        else:
            close_all()
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=0)


def wsgi_app(ops: Endpoints, policy: AccessPolicy) -> Callable[
        [dict[str, Any], StartResponse], Iterable[bytes]]:
    """The endpoints as a WSGI application (see :mod:`cep.app.ops`)."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def send(code: int, body: bytes, ctype: str,
                 extra: list[tuple[str, str]] | None = None) -> list[bytes]:
            start_response(f"{code} {_REASONS.get(code, '')}",
                           [("Content-Type", ctype), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), *(extra or [])])
            return [body]

        def json(code: int, doc: Any, extra: list[tuple[str, str]] | None = None
                 ) -> list[bytes]:
            return send(code, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n",
                        "application/json", extra)

        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        host = environ.get("HTTP_HOST")
        if not policy.host_allowed(host):
            log.warning("http: refused %s %s for Host %r (not a name of this server)",
                        method, path, host)
            return json(421, {"error": "this server does not serve that Host; use its "
                                       "address (e.g. 127.0.0.1:PORT)"})
        if method in ("GET", "HEAD"):
            if path == "/metrics":
                return send(200, ops.metrics_text(), CONTENT_TYPE_LATEST)
            if path == "/healthz":
                return send(200, b"ok\n", "text/plain; charset=utf-8")
            if path == "/status":
                return json(200, ops.status())
            if path == "/-/reload":
                return json(405, {"error": "use POST /-/reload"}, [("Allow", "POST")])
            return json(404, {"error": f"no such endpoint: {path}", "endpoints": ENDPOINTS})
        if method != "POST":
            return json(405, {"error": f"method {method} not allowed",
                              "endpoints": ENDPOINTS}, [("Allow", "GET, HEAD, POST")])
        if path != "/-/reload":
            return json(404, {"error": f"no such endpoint: POST {path}"})
        if not policy.origin_allowed(environ.get("HTTP_ORIGIN"), host):
            log.warning("http: refused POST /-/reload from Origin %r",
                        environ.get("HTTP_ORIGIN"))
            return json(403, {"error": "cross-origin POST /-/reload refused"})
        refusal = policy.reload_refusal(environ.get("HTTP_AUTHORIZATION"))
        if refusal is not None:
            code, message = refusal
            log.warning("http: refused POST /-/reload (%d: %s)", code, message)
            extra = [("WWW-Authenticate", 'Bearer realm="cep"')] if code == 401 else None
            return json(code, {"error": message}, extra)
        result = ops.reload("POST /-/reload")
        if result is None:
            return json(504, {"error": "the pipeline did not apply the reload within 30 s; "
                                       "it will be applied"})
        return json(200 if result.ok else 422, result.as_dict())

    return app
