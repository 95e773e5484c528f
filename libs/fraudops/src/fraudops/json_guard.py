"""JSON request bodies, checked before FastAPI reads them: the media type, strict JSON, and a bounded depth.

Python's parser accepts NaN and Infinity and recurses until the interpreter gives up; the contracts have
neither, and no body of theirs is more than a few levels deep.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fraudops.limits import Refused, send_error

MAX_JSON_DEPTH = 32
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class JsonShapeError(ValueError):
    pass


def _no_constants(name: str) -> Any:
    raise JsonShapeError(f"{name} is not JSON; send numbers only")


# Lone surrogates (escaped as \ud800 in JSON) cannot be encoded to UTF-8 for Avro or Postgres, and Postgres
# text cannot hold NUL: both would fail deep inside a handler instead of here.
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


def shape_problem(document: Any, max_depth: int) -> str | None:
    """Why a parsed document is out of bounds (too deep, or text that cannot be stored), or None."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return "text holds a NUL character or a lone UTF-16 surrogate"
            continue
        if isinstance(item, dict):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level > max_depth:
            return f"JSON nested deeper than {max_depth} levels"
        pending.extend((child, level + 1) for child in children)
    return None


def json_problem(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why `body` is not a JSON document the platform reads, or None."""
    try:
        document = json.loads(body, parse_constant=_no_constants)
    except JsonShapeError as exc:
        return str(exc)
    except RecursionError:
        return f"JSON nested deeper than {max_depth} levels"
    except UnicodeDecodeError:
        return "body is not UTF-8"
    except json.JSONDecodeError as exc:
        return f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    return shape_problem(document, max_depth)


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class JsonBodyGuard:
    """Refuse request bodies of JSON endpoints that are not JSON (415) or not JSON the platform reads (422)."""

    def __init__(self, app: ASGIApp, raw_body: Callable[[Scope], bool], refused: Refused) -> None:
        self.app = app
        self.raw_body = raw_body
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS or self.raw_body(scope):
            await self.app(scope, receive, send)
            return
        # The body limit wraps this middleware, so the whole body is bounded before it is held here.
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body:
            content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
            if not is_json(content_type):
                self.refused("unsupported_media_type")
                got = content_type.split(";", 1)[0].strip() or "no content type"
                await send_error(send, 415, "unsupported_media_type", f"send the body as application/json (got {got})")
                return
            problem = json_problem(body)
            if problem is not None:
                self.refused("invalid_input")
                await send_error(send, 422, "invalid_input", problem)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
