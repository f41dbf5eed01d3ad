"""`BodySizeLimit`: ASGI middleware answering 413 to a request body over `max_bytes`, before any parsing.

A declared Content-Length over the limit is refused without parsing the body; a chunked body is read up to the
limit and refused at the first byte beyond it, so one client can never make the server buffer more than
`max_bytes` (the rest of a refused body is read and dropped, up to DRAIN_FACTOR x the limit, so that the client
receives its 413 rather than a reset). The accepted body is replayed to the app unchanged.
"""
from __future__ import annotations

import json

DRAIN_FACTOR = 16  # an over-limit body up to 16x the limit is read and dropped, so the client sees the 413


async def _send_error(send, status: int, detail: str, receive=None, drain_bytes: int = 0) -> None:
    # read (and drop) what the client is still sending: answering mid-upload makes many clients see a reset
    # connection instead of the 413; past `drain_bytes` the connection is simply closed after the answer
    drained, more = 0, receive is not None
    while more and drained <= drain_bytes:
        message = await receive()
        drained += len(message.get("body", b""))
        more = message["type"] == "http.request" and message.get("more_body", False)
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Refuse HTTP request bodies larger than `max_bytes` with 413 (a malformed Content-Length with 400)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope.get("headers", []) if k.lower() == b"content-length"]
        if declared:
            value = declared[0].strip()
            if not value.isdigit() or len(declared) > 1:
                await _send_error(send, 400, "malformed Content-Length header")
                return
            if int(value) > self.max_bytes:
                await _send_error(send, 413, f"request body of {int(value)} bytes: at most {self.max_bytes}",
                                  receive, DRAIN_FACTOR * self.max_bytes)
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                more = message.get("more_body", False)
                await _send_error(send, 413, f"request body over {self.max_bytes} bytes: at most {self.max_bytes}",
                                  receive if more else None, DRAIN_FACTOR * self.max_bytes)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would say it

        await self.app(scope, replay, send)
