"""Refuse an oversized request body before it is read, not after it was spooled to disk.

Starlette parses a multipart upload into a temporary file before the route
runs, so a route's own size check comes after the whole body was received.
This ASGI middleware answers 413 at once when the declared ``Content-Length``
is over the limit, and takes a chunked body (which declares none) in itself,
up to the limit, before the app sees it. The limit is the configured upload
size plus room for the multipart envelope (boundaries and part headers), so
the route's exact check still decides for bodies near the limit.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialer.api.messages import negotiate, register, text

ENVELOPE_BYTES: Final = 64 * 1024

register(
    {
        "request.too_large": {
            "en": "The request body is too large: at most {limit} bytes may be uploaded.",
            "zh-CN": "请求内容过大：最多可上传 {limit} 字节。",
        }
    }
)


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_upload_bytes: int,
        locale_for: Callable[[HTTPConnection], Awaitable[str]] | None = None,
    ) -> None:
        self.app = app
        self.locale_for = locale_for
        self.max_upload_bytes = max_upload_bytes
        self.limit = max_upload_bytes + ENVELOPE_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = HTTPConnection(scope).headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        if declared.isdigit() or scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # No length declared (a chunked body): take it in here, up to the limit, then replay it.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.limit:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: only a disconnect can come
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        """413 in the reader's language: the signed-in user's, else what the request asks."""
        connection = HTTPConnection(scope)
        if self.locale_for is not None:
            locale = await self.locale_for(connection)
        else:
            locale = negotiate(connection.headers.get("accept-language"))
        body = json.dumps(
            {
                "error": {
                    "code": "too_large",
                    "message": text("request.too_large", locale, limit=self.max_upload_bytes),
                    "details": [],
                }
            },
            ensure_ascii=False,
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
