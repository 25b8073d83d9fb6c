"""What the gateway's web page does in a browser, as a client of raw sockets for tools/bench_web.py:
every request on a connection of its own, timed from connect to the last byte, nothing pooled or
cached (the gateway's server answers HTTP/1.0 and closes after each answer). CPython only.

    status, headers, body, seconds = fetch(port, "/")
    page_load(port)            # GET /, the first /api/state, /api/events to its first event (ms)
    page = PageOpen(port)      # one live stream and /api/state every 5 s, in threads
    ...
    page.stop()                # what it saw: events, gaps, /api/state times, reconnects, problems
"""

import json
import socket
import threading
import time

HOST = "127.0.0.1"
STATE_EVERY_S = 5.0  # the page's own /api/state poll beside its live stream
EVENTSOURCE_RETRY_S = 3.0  # a browser's EventSource reconnects after about 3 s
SOCKET_TIMEOUT_S = 15.0
LOAD_GAP_S = 2.0  # between page loads (PageLoads)
STATE_KEYS = ("device_id", "firmware", "uptime_s", "heap_free", "heap_used", "time", "energy_period",
              "wifi", "mqtt", "journal", "config", "modules", "log")


class BenchError(Exception):
    """The web page did not answer as the contract says: one line for the user."""


class StreamRefused(BenchError):
    """``GET /api/events`` answered 503: as many live streams open as the server allows."""


# ---------------------------------------------------------------------- HTTP, by hand
# A raw socket client, so that every byte's arrival is timed and nothing is pooled or cached: one
# connection per request, as the gateway's server (HTTP/1.0 answers, closed after each) wants.
def _open(port, path, timeout_s=SOCKET_TIMEOUT_S, accept=None):
    sock = socket.create_connection((HOST, port), timeout=timeout_s)
    head = "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n" % (path, HOST, port)
    if accept:
        head += "Accept: %s\r\n" % accept
    sock.sendall((head + "\r\n").encode())
    return sock, sock.makefile("rb")


def _read_head(stream, what):
    line = stream.readline()
    if not line:
        raise BenchError("%s: the server closed the connection without an answer" % what)
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise BenchError("%s: not an HTTP status line: %r" % (what, line[:80]))
    headers = {}
    while True:
        line = stream.readline()
        if not line:
            raise BenchError("%s: the headers were cut short" % what)
        if line in (b"\r\n", b"\n"):
            return int(parts[1]), headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


def fetch(port, path):
    """GET ``path``: (status, headers, body bytes, seconds from connect to the last byte)."""
    started = time.perf_counter()
    sock, stream = _open(port, path)
    try:
        status, headers = _read_head(stream, "GET " + path)
        length = headers.get("content-length")
        body = stream.read(int(length)) if length is not None else stream.read()
    finally:
        stream.close()
        sock.close()
    return status, headers, body, time.perf_counter() - started


def get_json(port, path):
    status, headers, body, seconds = fetch(port, path)
    if status != 200:
        raise BenchError("GET %s answered %d: %r" % (path, status, body[:200]))
    try:
        return json.loads(body), len(body), seconds
    except ValueError as exc:
        raise BenchError("GET %s: not JSON (%s): %r" % (path, exc, body[:200]))


def check_state(state, what):
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise BenchError("%s lacks %s (the contract's /api/state shape)" % (what, ", ".join(missing)))


class EventStream:
    """``GET /api/events``: the page's live stream, read event by event."""

    def __init__(self, port, timeout_s=SOCKET_TIMEOUT_S):
        self.sock, self.stream = _open(port, "/api/events", timeout_s, accept="text/event-stream")
        try:
            status, headers = _read_head(self.stream, "GET /api/events")
            if status == 503:
                raise StreamRefused("GET /api/events answered 503 (live streams at the server's cap)")
            if status != 200 or not headers.get("content-type", "").startswith("text/event-stream"):
                raise BenchError("GET /api/events answered %d, %s" % (status, headers.get("content-type")))
        except BaseException:
            self.close()
            raise

    def next_event(self):
        """(event name, data text) of the next complete event; None when the stream ended."""
        name, data = None, []
        while True:
            line = self.stream.readline()
            if not line:
                return None
            line = line.decode().rstrip("\r\n")
            if not line:
                if data:
                    return name, "\n".join(data)
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # unblocks a reader waiting in another thread
        except OSError:
            pass
        self.stream.close()
        self.sock.close()


def _wait_listening(port, timeout_s=30.0):
    """The web server may start a moment after the first MQTT state."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((HOST, port), timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError("nothing listens on %s:%d after %.0f s (is the web page on?)"
                                 % (HOST, port, timeout_s))
            time.sleep(0.2)


# ---------------------------------------------------------------------- what a browser does
def page_load(port):
    """One load of the page as the browser makes it, the three requests one after the other:
    the document, its first /api/state, and its live stream up to the first event (a browser
    sends the last two at once; here each is timed on its own). Milliseconds and bytes."""
    started = time.perf_counter()
    status, headers, body, page_s = fetch(port, "/")
    if status != 200 or not headers.get("content-type", "").startswith("text/html") or b"<html" not in body.lower():
        raise BenchError("GET / answered %d, %s, %d bytes: not the page" % (
            status, headers.get("content-type"), len(body)))
    state, state_bytes, state_s = get_json(port, "/api/state")
    check_state(state, "GET /api/state")
    opened = time.perf_counter()
    try:
        stream = EventStream(port)
    except StreamRefused:
        return {"page_ms": page_s * 1e3, "page_bytes": len(body), "state_ms": state_s * 1e3,
                "state_bytes": state_bytes, "refused": True}
    try:
        event = stream.next_event()
    finally:
        stream.close()
    event_s = time.perf_counter() - opened
    if event is None or event[0] != "state":
        raise BenchError("GET /api/events: the first event was %r, not a state" % (event,))
    check_state(json.loads(event[1]), "the first event of /api/events")
    return {"page_ms": page_s * 1e3, "page_bytes": len(body), "state_ms": state_s * 1e3,
            "state_bytes": state_bytes, "event_ms": event_s * 1e3, "event_bytes": len(event[1]),
            "total_ms": (time.perf_counter() - started) * 1e3, "refused": False}


class PageLoads:
    """``n`` page loads in a row in a thread of their own (tools/bench_gateway.py ``beside``),
    ``gap_s`` apart: a closed live stream stops counting against the server's cap of open
    streams only when the server next writes to it (its next event, about a second later), so
    loads closer together than that find the streams of the loads before still open."""

    def __init__(self, port, n, gap_s=LOAD_GAP_S):
        self.port, self.n, self.gap_s = port, n, gap_s
        self.loads, self.error = [], None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            _wait_listening(self.port)
            for i in range(self.n):
                if i:
                    time.sleep(self.gap_s)
                self.loads.append(page_load(self.port))
        except Exception as exc:  # reported by stop(), in the benchmark's own thread
            self.error = exc

    def stop(self):
        self.thread.join(self.n * (10 + self.gap_s) + 60)
        if self.thread.is_alive():
            raise BenchError("%d page loads did not finish in time" % self.n)
        if self.error is not None:
            raise self.error
        return {"loads": self.loads}


class PageOpen:
    """A page left open in a browser: one live stream, reconnected like an EventSource when the
    server ends it, and ``GET /api/state`` every 5 s."""

    def __init__(self, port):
        self.port = port
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.stream = None
        self.event_times, self.state_ms, self.problems = [], [], []
        self.reconnects = 0
        _wait_listening(port)
        self.threads = [threading.Thread(target=self._events, daemon=True),
                        threading.Thread(target=self._poll, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _problem(self, what, exc):
        with self.lock:
            self.problems.append("%s: %s" % (what, exc))

    def _events(self):
        while not self.stopping.is_set():
            try:
                stream = EventStream(self.port)
                with self.lock:
                    self.stream = stream
                while not self.stopping.is_set():
                    event = stream.next_event()
                    if event is None:
                        break
                    if event[0] == "state":
                        self.event_times.append(time.monotonic())
                stream.close()
            except (OSError, BenchError) as exc:
                if self.stopping.is_set():
                    return
                self._problem("live stream", exc)
            if not self.stopping.wait(EVENTSOURCE_RETRY_S):
                self.reconnects += 1

    def _poll(self):
        while not self.stopping.wait(STATE_EVERY_S):
            try:
                state, _, seconds = get_json(self.port, "/api/state")
                check_state(state, "GET /api/state")
                self.state_ms.append(seconds * 1e3)
            except (OSError, BenchError) as exc:
                self._problem("GET /api/state", exc)

    def stop(self):
        self.stopping.set()
        with self.lock:
            if self.stream is not None:
                self.stream.close()
        for thread in self.threads:
            thread.join(SOCKET_TIMEOUT_S + 5)
        times = self.event_times
        gaps = [(b - a) * 1e3 for a, b in zip(times, times[1:])]
        return {"events": len(times), "event_gap_ms": gaps, "state_ms": self.state_ms,
                "reconnects": self.reconnects, "problems": self.problems,
                "seconds": (times[-1] - times[0]) if len(times) > 1 else 0.0}
