"""The gateway's web server: microdot on the gateway's own asyncio loop, behind a guard that
untrusted clients cannot get past.

    from gateway.web_server import WebServer

    server = WebServer(gateway, "0.0.0.0", 80, gateway.log)   # builds server.app (microdot)
    await server.run()          # a task beside metering; never returns until close()
    server.close()
    server.stats                # {"requests": n, "busy": n, "timeouts": n, "rejected": n, ...}

Why not ``Microdot.start_server``: microdot 2.3.1 reads a whole header line before checking its
length, counts no headers and has no timeouts, so one client could hold the heap or a
connection forever. Here each connection is read by ``read_request`` first, within ``Limits``:

- the request head (request line and headers) is read in chunks of at most ``CHUNK`` bytes, a
  line at most ``line_bytes``, all of it at most ``head_bytes``, at most ``headers`` header lines
  (else 431), and checked before microdot parses it: a request line of three words with a known
  method, a path and HTTP/1.x; ``Name: value`` headers in UTF-8; a decimal Content-Length of at
  most ``body_bytes`` (413), no Transfer-Encoding (501); cookies without ``=`` are dropped, a
  query string microdot could not decode is refused (400);
- the body is read completely (at most ``body_bytes``), all of it within ``deadline_ms`` of the
  connection's start (a client sending one byte a second gets 408 and is closed);
- at most ``connections`` connections are served at once (a further one gets 503 and is closed
  at once), live streams (/api/events) at most ``streams`` of them;
- each write of the answer has ``write_ms`` to leave (a client that stops reading is dropped);
- the socket is always closed, and nothing a client does raises out of the connection task:
  what went wrong is counted in ``stats`` and logged once (debug for a client's fault, the
  exception for a fault of ours).

Only then does microdot get the request, from memory (``RequestStream``), through its public
``app.handle_request(reader, writer)``. RAM per connection is the head (at most ``head_bytes``)
and the body; nothing is allocated up front.
"""

import asyncio

from gateway.web_api import WebApi
from gateway.web_auth import WebAuth

CHUNK = 256
HEAD_BUFFER = 1024  # an answer's head is sent in one piece up to this size
METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")


class Limits:
    """What one client may cost (module docstring); every value can be given by name."""

    def __init__(self, line_bytes=2048, head_bytes=4096, headers=40, body_bytes=8192, deadline_ms=10000,
                 write_ms=10000, connections=5, streams=2):
        self.line_bytes = line_bytes
        self.head_bytes = head_bytes
        self.headers = headers
        self.body_bytes = body_bytes
        self.deadline_ms = deadline_ms
        self.write_ms = write_ms
        self.connections = connections
        self.streams = streams


class Rejected(Exception):
    """A request refused before microdot sees it: the status and why."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


_REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Payload Too Large", 431:
            "Request Header Fields Too Large", 501: "Not Implemented", 503: "Service Unavailable",
            505: "HTTP Version Not Supported"}


class Request:
    """A request head that passed the checks: its lines (without line ends) and its body."""

    def __init__(self, lines, body):
        self.lines = lines
        self.body = body


async def read_request(reader, limits):
    """The next request from ``reader``, checked (module docstring); None when the client closed
    before sending anything; ``Rejected`` when it breaks a rule. Bounded in size, not in time:
    the caller puts the deadline on it."""
    buf = b""
    start = 0  # where the current line starts in buf
    consumed = 0  # bytes of the head before buf
    lines = []
    while True:
        end = buf.find(b"\n", start)
        if end < 0:
            if len(buf) - start > limits.line_bytes:
                raise Rejected(431, "a line longer than %d bytes" % limits.line_bytes)
            room = limits.head_bytes - consumed - len(buf)
            if room <= 0:
                raise Rejected(431, "a request head longer than %d bytes" % limits.head_bytes)
            chunk = await reader.read(min(CHUNK, room))
            if not chunk:
                if not lines and not buf[start:].strip():
                    return None
                raise Rejected(400, "the connection closed in the middle of the request head")
            consumed += start
            buf = buf[start:] + chunk  # finished lines live in `lines`: buf holds the rest only
            start = 0
            continue
        if end - start > limits.line_bytes:
            raise Rejected(431, "a line longer than %d bytes" % limits.line_bytes)
        line = buf[start:end]
        if line.endswith(b"\r"):
            line = line[:-1]
        start = end + 1
        if not line:
            if lines:
                break
            continue  # empty lines before the request line are tolerated (RFC 9112 2.2)
        lines.append(line)
        if len(lines) > limits.headers + 1:
            raise Rejected(431, "more than %d header lines" % limits.headers)
    length = _check_head(lines, limits)
    body = buf[start:start + length]
    while len(body) < length:
        chunk = await reader.read(min(CHUNK, length - len(body)))
        if not chunk:
            raise Rejected(400, "the connection closed in the middle of the body")
        body += chunk
    return Request(lines, body)


def _check_head(lines, limits):
    """Validate the head in place (cookies without '=' are dropped); return the body length."""
    words = lines[0].split()
    if len(words) != 3:
        raise Rejected(400, "the request line is not 'METHOD /path HTTP/1.1'")
    method, target, version = words
    if method not in METHODS:
        raise Rejected(501, "unknown method")
    if not target.startswith(b"/"):
        raise Rejected(400, "the target is not a path")
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        raise Rejected(505, "not HTTP/1.0 or HTTP/1.1")
    try:
        _check_query(target)
        length = None
        for index in range(1, len(lines)):
            line = lines[index]
            colon = line.find(b":")
            if colon <= 0 or line[0] in b" \t" or b" " in line[:colon] or b"\t" in line[:colon]:
                raise Rejected(400, "a header line is not 'Name: value'")
            name = line[:colon].decode().lower()
            value = line[colon + 1:].decode().strip()
            if name == "content-length":
                if length is not None or not value or not value.isdigit() or len(value) > 9:
                    raise Rejected(400, "a Content-Length that is not one decimal number")
                length = int(value)
            elif name == "transfer-encoding":
                raise Rejected(501, "Transfer-Encoding is not supported: send a Content-Length")
            elif name == "cookie":
                # microdot splits every part at '=' and fails on one without
                kept = "; ".join(part.strip() for part in value.split(";") if "=" in part)
                lines[index] = b"Cookie: " + kept.encode() if kept else b"X-Dropped-Cookie: -"
    except UnicodeError:
        raise Rejected(400, "a header that is not UTF-8")
    length = length or 0
    if length > limits.body_bytes:
        raise Rejected(413, "a body longer than %d bytes" % limits.body_bytes)
    return length


def _check_query(target):
    """microdot decodes the query string itself and would fail on a bad %-escape or bytes that
    are not UTF-8: refuse those here."""
    target.decode()
    query = target.find(b"?")
    if query < 0:
        return
    text = target[query + 1:]
    index = text.find(b"%")
    while index >= 0:
        escape = text[index + 1:index + 3]
        if len(escape) != 2 or not all(c in b"0123456789abcdefABCDEF" for c in escape):
            raise Rejected(400, "a bad %-escape in the query string")
        index = text.find(b"%", index + 3)
    from microdot.microdot import urldecode

    for pair in text.split(b"&"):
        for part in pair.split(b"=", 1):
            urldecode(part)  # raises UnicodeError for bytes that are not UTF-8


class RequestStream:
    """What microdot reads the checked request from (memory) and writes its answer to (the
    connection, each write bounded by ``write_ms``). ``on_close(fn)``: call fn when the
    connection closes (a live stream stops counting as a viewer however its answer ended)."""

    def __init__(self, request, writer, write_ms):
        self.lines = request.lines
        self.body = request.body
        self.writer = writer
        self.write_ms = write_ms
        self._line = 0
        self._pos = 0
        self._closers = []
        self._head = b""  # the answer's head until it is complete (None: sent)

    # reading, as microdot's Request.create does it
    async def readline(self):
        index = self._line
        if index < len(self.lines):
            self._line = index + 1
            return self.lines[index] + b"\r\n"
        if index == len(self.lines):
            self._line = index + 1
            return b"\r\n"
        return b""

    async def readexactly(self, n):
        data = await self.read(n)
        if len(data) < n:
            raise EOFError
        return data

    async def read(self, n=-1):
        start = self._pos
        end = len(self.body) if n < 0 else min(len(self.body), start + n)
        self._pos = end
        return self.body[start:end]

    # writing
    async def awrite(self, data):
        if self._head is not None:
            # microdot writes the status line and each header on its own, then b"\r\n": they
            # leave together (one segment, one wait for the socket instead of one per line)
            self._head += data
            if data != b"\r\n" and len(self._head) < HEAD_BUFFER:
                return
            data = self._head
            self._head = None
        self.writer.write(data)
        try:
            await asyncio.wait_for(self.writer.drain(), self.write_ms / 1000)
        except asyncio.TimeoutError:
            raise OSError("the client did not read the answer within %d ms" % self.write_ms)

    async def aclose(self):
        pass  # the connection closes it (WebServer._close), after the answer or whatever happened

    def get_extra_info(self, name):
        return self.writer.get_extra_info(name)

    def on_close(self, fn):
        self._closers.append(fn)

    def closed(self):
        closers = self._closers
        self._closers = []
        for fn in closers:
            fn()


class WebServer:
    def __init__(self, gateway, host, port, log, limits=None):
        from microdot import Microdot
        from microdot.microdot import Request as MicrodotRequest

        self.gateway = gateway
        self.host = host
        self.port = port
        self.log = log
        self.limits = limits if limits is not None else Limits()
        # microdot's own checks, behind ours: the body is already read and within this
        MicrodotRequest.max_content_length = self.limits.body_bytes
        MicrodotRequest.max_body_length = self.limits.body_bytes
        MicrodotRequest.max_readline = self.limits.line_bytes + 2
        self.open = 0
        self.stats = {"connections": 0, "requests": 0, "busy": 0, "timeouts": 0, "rejected": 0,
                      "closed_early": 0, "errors": 0}
        self.server = None
        self.auth = WebAuth(gateway.config["web"]["password"], self._uptime_ms, self._in_setup)
        self.api = WebApi(gateway, self.auth, self.limits.streams)
        self.app = Microdot()
        self.api.add_routes(self.app)
        if gateway.setup is not None:
            from gateway import web_setup

            web_setup.add_routes(self.app, gateway)

    def _uptime_ms(self):
        return self.gateway.uptime_ms

    def _in_setup(self):
        setup = self.gateway.setup
        return setup is not None and setup.active

    async def run(self):
        """Listen and serve until ``close()`` (or the task is cancelled)."""
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.log.info("web page at http://%s:%d/", self.host, self.port)
        server = self.server
        if hasattr(server, "serve_forever"):  # CPython
            await server.serve_forever()
        else:  # MicroPython: the server task runs until close()
            await server.wait_closed()

    def close(self):
        if self.server is not None:
            self.server.close()

    # ------------------------------------------------------------------ one connection
    async def _serve(self, reader, writer):
        stats = self.stats
        stats["connections"] += 1
        if self.open >= self.limits.connections:
            stats["busy"] += 1
            try:
                await self._refuse(writer, 503, "busy: too many connections")
            finally:
                await self._close(writer)
            return
        self.open += 1  # connections being served (a refused one never counts)
        stream = None
        try:
            try:
                request = await asyncio.wait_for(read_request(reader, self.limits),
                                                 self.limits.deadline_ms / 1000)
            except asyncio.TimeoutError:
                stats["timeouts"] += 1
                self.log.debug("web: request not complete within %d ms: closed", self.limits.deadline_ms)
                await self._refuse(writer, 408, "the request took too long")
                return
            except Rejected as exc:
                stats["rejected"] += 1
                self.log.debug("web: request refused (%d): %s", exc.status, exc.reason)
                await self._refuse(writer, exc.status, exc.reason)
                return
            if request is None:
                stats["closed_early"] += 1
                return
            stats["requests"] += 1
            stream = RequestStream(request, writer, self.limits.write_ms)
            await self.app.handle_request(stream, stream)
        except asyncio.CancelledError:
            raise
        except OSError as exc:  # the client went away or stopped reading: its own business
            stats["closed_early"] += 1
            self.log.debug("web: connection ended: %s", exc)
        except Exception as exc:  # ours: a connection never takes the gateway down
            stats["errors"] += 1
            self.log.exception("web: connection failed", exc)
        finally:
            self.open -= 1
            if stream is not None:
                try:
                    stream.closed()
                except Exception as exc:  # a closer's bug must not keep the socket open
                    self.log.exception("web: closing a stream failed", exc)
            await self._close(writer)

    async def _refuse(self, writer, status, reason):
        """A short JSON answer to a request microdot never saw (best effort: the client may be
        gone or not reading)."""
        import json

        body = json.dumps({"error": reason}).encode()
        head = "HTTP/1.0 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (
            status, _REASONS.get(status, "Error"), len(body))
        try:
            writer.write(head.encode() + body)
            await asyncio.wait_for(writer.drain(), 1)
        except (OSError, asyncio.TimeoutError) as exc:
            self.log.debug("web: could not answer %d: %s", status, exc)

    async def _close(self, writer):
        try:
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 1)
        except (OSError, asyncio.TimeoutError) as exc:
            self.log.debug("web: closing the connection: %s", exc)
            transport = getattr(writer, "transport", None)  # CPython: drop unsent data
            if transport is not None:
                transport.abort()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never out of the connection task
            self.log.debug("web: closing the connection: %s", exc)
