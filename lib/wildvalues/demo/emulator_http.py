"""The emulator's HTTP side: a threading server whose handler hands each request to the emulator's
router and writes its reply, with a request id and the route name the request log uses."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from wildvalues.demo import platforms
from wildvalues.demo.emulator_answers import Reply, error_body, new_id
from wildvalues.demo.emulator_rules import (
    BATCH_PATH,
)

if TYPE_CHECKING:
    from wildvalues.demo.emulator import Emulator


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # a burst of new connections from many client threads must not be refused
    emulator: Emulator


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    timeout = 120  # close idle keep-alive connections eventually
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # the request log replaces stderr access logs

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        emulator = self.server.emulator
        path = self.path.split("?", 1)[0]
        body = self._read_json()
        entry: dict[str, Any] = {
            "time": time.monotonic(),
            "method": method,
            "path": path,
            # Whether a key was sent, never the key itself.
            "has_api_key": bool(self.headers.get("x-api-key") or self.headers.get("authorization")),
        }
        # The form of its authentication only (sigv4, bearer, api-key...), for the platform routes.
        headers = {name: self.headers.get(name) or "" for name in ("authorization", "x-amz-date", "x-api-key")}
        entry["auth"] = platforms.auth_form(headers, emulator.bearer_tokens)
        entry["sigv4_service"] = platforms.sigv4_service(headers)
        try:
            reply = emulator.route(method, path, body, entry)
        except Exception as error:  # an emulator bug must look like a 500, not a hung client
            reply = Reply(500, error_body("api_error", f"emulator error: {type(error).__name__}: {error}"))
        entry["status"] = 0 if reply.drop else reply.status
        add_request_id(reply)
        if path != "/emulator/stats":
            emulator._record(entry)
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(reply)

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("content-length") or 0)
        if length <= 0:
            return {}
        raw = self.rfile.read(length)
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _send(self, reply: Reply) -> None:
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("content-type", reply.content_type)
        self.send_header("content-length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def add_request_id(reply: Reply) -> None:
    """Every answer carries a request-id header, as the API's do; an error's is its body's request_id
    (https://platform.claude.com/docs/en/api/errors, request id)."""
    body_id = reply.body.get("request_id") if isinstance(reply.body, dict) else None
    reply.headers.setdefault("request-id", str(body_id or new_id("req_emu")))


def route_name(path: str) -> str:
    """A path with batch ids replaced by {id}, for stats."""
    match = BATCH_PATH.match(path)
    if match:
        return "/v1/messages/batches/{id}" + (match.group(2) or "")
    return path
