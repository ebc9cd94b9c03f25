"""Issue #18 item 8: any bytes in an Authorization or webhook signature header are a 401/403, never
a 500 with a traceback. Sent as raw HTTP, since a client library would refuse to send them."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from tests.service.test_webhook import hook  # noqa: F401  (fixture)


async def raw_request(service, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(service.client.host, service.client.port)
    writer.write(head + b"Host: scrm\r\nConnection: close\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("value", [
    b"Bearer \xe9\xff",  # Latin-1, not UTF-8
    b"Bearer scrm_\xe9\xa0",  # our token prefix, then bytes that are not UTF-8
    "Bearer 令牌".encode(),  # UTF-8, but no token is
    b"\xff\xfe",
    b"Basic \xe9",
])
async def test_an_authorization_header_of_any_bytes_is_a_401(hook, caplog, value):  # noqa: F811
    caplog.set_level(logging.INFO)
    status, body = await raw_request(hook, b"GET /api/v1/customers HTTP/1.1\r\nAuthorization: " + value + b"\r\n")
    assert status == 401
    assert json.loads(body)["error"] == "missing, wrong or revoked bearer token"
    assert "Traceback" not in caplog.text and "unhandled error" not in caplog.text


@pytest.mark.parametrize("value", [b"sha256=\xe9\xff", "sha256=签名".encode(), b"\xff"])
async def test_a_webhook_signature_of_any_bytes_is_a_403(hook, caplog, value):  # noqa: F811
    caplog.set_level(logging.INFO)
    head = (b"POST /webhook/site HTTP/1.1\r\nContent-Type: application/json\r\n"
            b"X-SCRM-Timestamp: " + str(int(time.time())).encode() + b"\r\nX-SCRM-Signature: " + value + b"\r\n")
    status, body = await raw_request(hook, head, b'{"id": "m-1"}')
    assert status == 403
    assert json.loads(body) == {"ok": False, "error": "invalid signature"}
    assert "Traceback" not in caplog.text and "unhandled error" not in caplog.text
