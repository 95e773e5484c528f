"""Request limits as ASGI middleware: body size (refused early on Content-Length, counted as chunks arrive)
and a deadline on the whole exchange, body included."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

Refused = Callable[[str], None]
"""Told the reason of every request a middleware answers itself, for the rejected-requests counter."""


class BodyTooLarge(Exception):
    pass


async def send_error(send: Send, status: int, code: str, detail: str) -> None:
    """The platform's error body (see fraudops.service.ErrorResponse), from below FastAPI."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class TrackedSend:
    """An ASGI `send` that remembers whether the response began: after that, no error answer can replace it."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


class BodySizeLimit:
    """Answer 413 when a request body exceeds the limit the app's settings give."""

    def __init__(self, app: ASGIApp, limit: Callable[[Scope], int], refused: Refused) -> None:
        self.app = app
        self.limit = limit
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(send, limit)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        tracking = TrackedSend(send)
        try:
            await self.app(scope, counting_receive, tracking)
        except BodyTooLarge:
            if not tracking.started:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        self.refused("payload_too_large")
        await send_error(send, 413, "payload_too_large", f"request body above {limit} bytes")


class RequestTimeout:
    """Answer 504 when reading the request and answering it takes longer than the app's settings allow."""

    def __init__(self, app: ASGIApp, timeout_s: Callable[[Scope], float], refused: Refused) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timeout_s = self.timeout_s(scope)
        tracking = TrackedSend(send)
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                await self.app(scope, receive, tracking)
        except TimeoutError:
            if not deadline.expired():
                raise  # the app's own timeout, not ours: its error handling decides
            self.refused("request_timeout")
            log.warning("request timed out", extra={"path": scope.get("path"), "timeout_s": timeout_s})
            if not tracking.started:
                await send_error(send, 504, "request_timeout", f"the request took longer than {timeout_s:g} s")
