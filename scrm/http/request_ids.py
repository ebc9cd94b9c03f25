"""The X-Request-Id middleware: every log line written while a request is handled carries its id
(scrm.logging_setup formats it), and the answer names it, so a user's report finds its log lines."""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from scrm.logging_setup import REQUEST_ID_HEADER, request_id

# Short printable tokens only: anything else could forge log fields or bloat every line.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@web.middleware
async def request_id_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Outermost middleware, so even the error middleware's traceback line carries the id."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    current = given if _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    token = request_id.set(current)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = current
        raise
    finally:
        request_id.reset(token)
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = current
    return response
