#!/usr/bin/env python3
"""Writes traffic.gor and traffic.gor.gz, the GoReplay fixtures of tests/storage/interop_test.cc
and tests/integration/interop_cli_test.cc.

The layout is what `gor --input-raw :80 --input-raw-track-response --output-file` writes
(GoReplay 1.x): each payload is a header line "TYPE ID START_NS DURATION_NS", the raw HTTP
message as captured, then the separator "\\n🐵🙈🙉\\n". Type 1 = request, 2 = original
response, 3 = replayed response. Re-run after changing it: python3 make_gor.py
"""
import gzip
import os

SEP = "\n🐵🙈🙉\n".encode()
T0 = 1714558830_000_000_000  # 2024-05-01T10:20:30Z in ns


def payload(kind, ident, start_ns, duration_ns, message):
    head = f"{kind} {ident} {start_ns} {duration_ns}\n".encode()
    return head + message + SEP


def crlf(*lines):
    return ("\r\n".join(lines)).encode()


records = [
    # 1. GET with a query, answered 200 with a Content-Length body.
    payload(1, "a1b2c3d4e5f6a7b8c9d0e1f2", T0, 1000, crlf(
        "GET /api/items?page=1&q=shoes HTTP/1.1", "Host: shop.internal",
        "Accept: application/json", "Connection: keep-alive", "", "")),
    payload(2, "a1b2c3d4e5f6a7b8c9d0e1f2", T0 + 2_000_000, 500_000, crlf(
        "HTTP/1.1 200 OK", "Content-Type: application/json", "Content-Length: 17", "", "")
        + b'{"items":[1,2,3]}'),
    # The same request replayed by GoReplay (type 3): not part of the recording.
    payload(3, "a1b2c3d4e5f6a7b8c9d0e1f2", T0 + 5_000_000, 700_000, crlf(
        "HTTP/1.1 500 Internal Server Error", "Content-Length: 0", "", "")),
    # 2. POST with a body, answered with a chunked response (de-chunked on import).
    payload(1, "0f1e2d3c4b5a69788796a5b4", T0 + 10_000_000, 2000, crlf(
        "POST /api/orders HTTP/1.1", "Host: shop.internal", "Content-Type: application/json",
        "Content-Length: 21", "", "") + b'{"sku":"A-1","qty":2}'),
    payload(2, "0f1e2d3c4b5a69788796a5b4", T0 + 13_000_000, 1_000_000, crlf(
        "HTTP/1.1 201 Created", "Content-Type: application/json", "Transfer-Encoding: chunked",
        "", "5", '{"id"', "4", ':42}', "0", "", "")),
    # 3. A request whose response is not in the file: imported without one.
    payload(1, "ffffeeeeddddccccbbbbaaaa", T0 + 20_000_000, 1000, crlf(
        "GET /api/unanswered HTTP/1.1", "Host: shop.internal", "", "")),
    # 4. HEAD: the response announces a length but has no body.
    payload(1, "1234567890abcdef12345678", T0 + 30_000_000, 1000, crlf(
        "HEAD /static/app.js HTTP/1.1", "Host: shop.internal", "", "")),
    payload(2, "1234567890abcdef12345678", T0 + 31_000_000, 1000, crlf(
        "HTTP/1.1 200 OK", "Content-Type: text/javascript", "Content-Length: 5120", "", "")),
]

here = os.path.dirname(os.path.abspath(__file__))
data = b"".join(records)
with open(os.path.join(here, "traffic.gor"), "wb") as f:
    f.write(data)
with open(os.path.join(here, "traffic.gor.gz"), "wb") as f:
    f.write(gzip.compress(data, compresslevel=6, mtime=0))
