"""An HTTP request read from an untrusted client within limits, before the web framework sees it.

    from gateway.web_request import Limits, Rejected, RequestStream, read_request

    request = await asyncio.wait_for(read_request(reader, limits), limits.deadline_ms / 1000)
    stream = RequestStream(request, writer, limits.write_ms)    # what microdot reads and writes
    await app.handle_request(stream, stream)

``read_request`` reads the head in chunks of at most ``CHUNK`` bytes, a line at most
``Limits.line_bytes``, all of it at most ``head_bytes``, at most ``headers`` header lines (else
``Rejected(431)``), then checks it so that microdot 2.3.1 can parse it without failing: a request
line of three words with a known method (501), a path and HTTP/1.x (505); ``Name: value`` headers
in UTF-8; one decimal Content-Length of at most ``body_bytes`` (413); no Transfer-Encoding (501);
no query string microdot could not decode (400); cookies without ``=`` are dropped (microdot
splits every cookie at ``=``). The body is read completely. Time is the caller's to bound.

``RequestStream`` serves the checked request to microdot from memory and bounds each write of the
answer by ``write_ms``; the answer's head leaves in one write.
"""

import asyncio

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


REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Payload Too Large", 431:
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
