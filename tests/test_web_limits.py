"""What a hostile or broken client can do to the gateway's web server: huge header lines, too many
headers, a huge body, a client sending one byte at a time, a flood of connections, more live
streams than allowed, garbage bytes, malformed request lines and headers. After each the server
still answers /api/state and the real gateway (tests/support_web.py) kept sampling; nothing
escaped a connection task (``stats["errors"]`` stays 0, no exception in the log)."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import asyncio

import xrt
from gateway.web_request import Limits
from support_web import close_quietly, config_doc, exchange, parse_response, read_all, request, run, start, wait_until

# a short deadline keeps the slow-client test short; the rest are the defaults
LIMITS = Limits(deadline_ms=1500)


async def _still_serving(web):
    status, _, body = await request(web.port, "GET", "/api/state")
    assert status == 200 and b'"modules"' in body, (status, body[:200])
    await web.samples_grow()


def _clean(web):
    assert web.server.stats["errors"] == 0, web.server.stats
    text = web.log_text()
    assert "Traceback" not in text and "failed" not in text, text


async def _send_then_read(port, data, more=b"", times=0, timeout_s=15):
    """Send ``data`` and ``times`` times ``more`` (a 32-bit board's heap has no room for 100 KB
    in one piece) as far as the server takes them (it may refuse and close half way), then read
    its answer: (status, headers, body), status None when it reset the connection without one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        try:
            writer.write(data)
            await writer.drain()
            for _ in range(times):
                writer.write(more)
                await writer.drain()
        except OSError:
            pass  # the server closed after refusing the start of it
        answer = await asyncio.wait_for(read_all(reader), timeout_s)
    finally:
        await close_quietly(writer)
    return parse_response(answer)


def _garbage(seed, size, newlines=True):
    """Reproducible pseudo-random bytes (the same on every runtime and every run)."""
    out = bytearray(size)
    state = seed
    for i in range(size):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (state >> 16) & 0xFF
        if not newlines and out[i] == 10:
            out[i] = 11
    return bytes(out)


def test_oversized_heads_and_bodies_are_refused_and_the_gateway_meters_on():
    seen = {}

    async def main():
        web = await start(xrt.tmp_path("sizes"), config_doc(), LIMITS)
        stats = web.server.stats
        try:
            head = b"GET /api/state HTTP/1.1\r\nHost: x\r\nX-Big: "
            seen["100 KB line"] = (await _send_then_read(web.port, head, b"a" * 1000, 100))[0]
            seen["rejected after line"] = stats["rejected"]
            await _still_serving(web)
            many = b"GET /api/state HTTP/1.1\r\nHost: x\r\n" + b"".join(
                ("X-H%d: v\r\n" % i).encode() for i in range(200)) + b"\r\n"
            seen["200 headers"] = await exchange(web.port, many)
            await _still_serving(web)
            big_head = b"PUT /api/config HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"
            seen["1 MB body"] = await _send_then_read(web.port, big_head + b"{" * 65536)
            await _still_serving(web)
            seen["chunked"] = await exchange(web.port, b"PUT /api/config HTTP/1.1\r\nHost: x\r\n"
                                             b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            await _still_serving(web)
            seen["stats"] = dict(stats)
            _clean(web)
        finally:
            await web.stop()

    run(main())
    assert seen["100 KB line"] in (431, None) and seen["rejected after line"] == 1, seen
    status, _, body = seen["200 headers"]
    assert status == 431 and b"header lines" in body, seen["200 headers"]
    status, _, body = seen["1 MB body"]
    assert status in (413, None), seen["1 MB body"]  # refused from its Content-Length, before the body
    assert status is None or b"body longer than 8192" in body
    assert seen["chunked"][0] == 501, seen["chunked"]
    assert seen["stats"]["rejected"] == 4, seen["stats"]


def test_a_client_sending_one_byte_at_a_time_is_cut_off_at_the_deadline():
    seen = {}

    async def main():
        web = await start(xrt.tmp_path("slow"), config_doc(), LIMITS)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", web.port)
            answer = asyncio.create_task(read_all(reader))
            text = b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n\r\n"
            sent = 0
            try:
                while not answer.done() and sent < len(text):
                    writer.write(text[sent:sent + 1])
                    await writer.drain()
                    sent += 1
                    await asyncio.sleep(0.25)  # the slow client: one byte every 250 ms
            except OSError:
                pass  # closed by the server
            seen["answer"] = parse_response(await asyncio.wait_for(answer, 15))
            seen["sent"] = sent
            await close_quietly(writer)
            seen["timeouts"] = web.server.stats["timeouts"]
            await _still_serving(web)
            _clean(web)
        finally:
            await web.stop()

    run(main())
    status, _, body = seen["answer"]
    assert status == 408 and b"took too long" in body, seen
    assert seen["sent"] < 70 and seen["timeouts"] == 1, seen  # cut off long before the request was complete


def test_a_flood_of_connections_gets_503_beyond_the_cap_and_the_held_ones_time_out():
    seen = {}

    async def main():
        # held connections last the deadline: long enough for all 20 to be accepted meanwhile
        web = await start(xrt.tmp_path("flood"), config_doc(), Limits(deadline_ms=4000))
        try:
            clients = []
            for _ in range(20):
                clients.append(await asyncio.open_connection("127.0.0.1", web.port))
            await wait_until(lambda: web.server.stats["connections"] >= 20, 15000, "20 connections accepted")
            seen["open at most"] = web.server.open
            answers = []
            for reader, writer in clients:
                answers.append(parse_response(await asyncio.wait_for(read_all(reader), 15))[0])
                await close_quietly(writer)
            seen["answers"] = answers
            seen["stats"] = dict(web.server.stats)
            await wait_until(lambda: web.server.open == 0, 5000, "every connection closed")
            await _still_serving(web)
            _clean(web)
        finally:
            await web.stop()

    run(main())
    answers = seen["answers"]
    assert all(status in (503, 408) for status in answers), answers
    # the 5 held ones time out, the others are turned away at once (a few more may get a slot a
    # held one left, on a machine so slow that 20 connects took the deadline)
    assert answers.count(503) >= 10 and answers.count(503) == seen["stats"]["busy"], (answers, seen["stats"])
    assert answers.count(408) == seen["stats"]["timeouts"] >= 5, (answers, seen["stats"])
    assert seen["open at most"] <= 5


def test_live_streams_are_capped_and_release_their_viewer_count():
    seen = {}

    async def open_stream(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        data = b""
        while b"event: state" not in data and b"\r\n\r\n{" not in data:
            chunk = await asyncio.wait_for(reader.read(4096), 15)
            if not chunk:
                break
            data += chunk
        return reader, writer, data

    async def main():
        web = await start(xrt.tmp_path("streams"), config_doc(), LIMITS)
        try:
            first = await open_stream(web.port)
            second = await open_stream(web.port)
            seen["viewers"] = web.gateway.viewers
            third = await open_stream(web.port)
            seen["third"] = parse_response(third[2] + await asyncio.wait_for(read_all(third[0]), 15))
            await close_quietly(third[1])
            seen["state while two stream"] = (await request(web.port, "GET", "/api/state"))[0]
            await close_quietly(first[1])
            await close_quietly(second[1])
            await wait_until(lambda: web.gateway.viewers == 0 and web.server.api.streams == 0, 15000,
                             "both streams released")
            # a HEAD of the stream gets its headers only, and leaves no viewer behind
            seen["head"] = await exchange(web.port, b"HEAD /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
            await wait_until(lambda: web.server.open == 0, 5000, "the HEAD's connection closed")
            seen["after head"] = (web.gateway.viewers, web.server.api.streams)
            await _still_serving(web)
            _clean(web)
        finally:
            await web.stop()

    run(main())
    assert seen["viewers"] == 2
    status, _, body = seen["third"]
    assert status == 503 and b"too many live streams" in body, seen["third"]
    assert seen["state while two stream"] == 200
    status, headers, body = seen["head"]
    assert status == 200 and headers["content-type"] == "text/event-stream" and body == b"", seen["head"]
    assert seen["after head"] == (0, 0)


MALFORMED = (
    (b"GARBAGE\r\n\r\n", 400),                                   # a request line without spaces
    (b"GET /api/state\r\n\r\n", 400),                            # two words
    (b"GET  /api/state HTTP/1.1 extra\r\n\r\n", 400),            # four words
    (b"BREW /pot HTTP/1.1\r\n\r\n", 501),
    (b"GET http://x/api/state HTTP/1.1\r\n\r\n", 400),           # not a path
    (b"GET /api/state HTTP/2.0\r\n\r\n", 505),
    (b"GET /api/state HTTP/1.1\r\nNoColonHere\r\n\r\n", 400),
    (b"GET /api/state HTTP/1.1\r\n folded: header\r\n\r\n", 400),
    (b"GET /api/state HTTP/1.1\r\nX-Bytes: \xff\xfe\r\n\r\n", 400),
    (b"GET /api/state?a=%zz HTTP/1.1\r\n\r\n", 400),
    (b"GET /api/state?a=%ff HTTP/1.1\r\n\r\n", 400),             # decodes to bytes that are not UTF-8
    (b"PUT /api/config HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n", 400),
    (b"PUT /api/config HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400),
    (b"GET /api/state HTTP/1.1\r\nCookie: justaname; a=b;\r\n\r\n", 200),    # cookies microdot would trip on
    (b"GET /api/state HTTP/1.1\r\nCookie: =\r\n\r\n", 200),
    (b"GET /nothing/here HTTP/1.1\r\n\r\n", 404),
    (b"DELETE /api/state HTTP/1.1\r\n\r\n", 405),
    (b"\r\n\r\nGET /api/state HTTP/1.1\r\n\r\n", 200),           # empty lines before the request line
    (b"GET /api/state HTTP/1.0\n\n", 200),                         # bare newlines
)


def test_malformed_requests_and_garbage_get_an_answer_or_a_close_never_a_crash():
    seen = {}

    async def main():
        web = await start(xrt.tmp_path("garbage"), config_doc(), LIMITS)
        try:
            statuses = []
            for data, _ in MALFORMED:
                statuses.append((await exchange(web.port, data))[0])
            seen["malformed"] = statuses
            await _still_serving(web)
            garbage = []
            for seed in range(6):
                data = _garbage(seed + 1, 3000, newlines=seed % 2 == 0)
                garbage.append((await _send_then_read(web.port, data))[0])
            garbage.append((await _send_then_read(web.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
                                                  + _garbage(99, 500)))[0])  # a TLS ClientHello
            seen["garbage"] = garbage
            await _still_serving(web)
            # a client that connects and says nothing before leaving
            before = web.server.stats["connections"]
            reader, writer = await asyncio.open_connection("127.0.0.1", web.port)
            await close_quietly(writer)
            await wait_until(lambda: web.server.stats["connections"] > before and web.server.open == 0, 5000,
                             "the silent connection accepted and closed")
            seen["stats"] = dict(web.server.stats)
            await _still_serving(web)
            _clean(web)
        finally:
            await web.stop()

    run(main())
    expected = [status for _, status in MALFORMED]
    assert seen["malformed"] == expected, list(zip(seen["malformed"], expected))
    for status in seen["garbage"]:
        assert status in (None, 400, 408, 431, 501, 505), seen["garbage"]
    assert seen["stats"]["closed_early"] >= 1, seen["stats"]


def test_connections_closed_by_their_clients_in_bursts_leave_the_gateway_running():
    # With DRDY attached, MicroPython's unix port used to crash here (segfault) when the poller's
    # socket array grew and moved (lib/rbamp/drdy.py, LoopFlag)
    seen = {}

    async def main():
        web = await start(xrt.tmp_path("bursts"), config_doc(), LIMITS)
        server = web.server
        try:
            seen["drdy"] = web.gateway.metering.modules[0].dev.drdy_attached
            for burst in range(4):
                clients = []
                for _ in range(8):
                    clients.append(await asyncio.open_connection("127.0.0.1", web.port))
                await wait_until(lambda: server.stats["connections"] >= 8 * (burst + 1), 10000, "8 more accepted")
                for _, writer in clients:
                    await close_quietly(writer)
                await wait_until(lambda: server.open == 0, 10000, "every connection closed")
                await _still_serving(web)
            seen["stats"] = dict(server.stats)
            _clean(web)
        finally:
            await web.stop()

    run(main())
    assert seen["drdy"], "the test needs DRDY attached"
    assert seen["stats"]["busy"] + seen["stats"]["closed_early"] >= 32, seen["stats"]
