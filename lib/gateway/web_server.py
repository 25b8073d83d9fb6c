"""The gateway's web server: microdot on the gateway's own asyncio loop, behind a guard that
untrusted clients cannot get past.

    from gateway.web_server import WebServer

    server = WebServer(gateway, "0.0.0.0", 80, gateway.log)   # builds server.app (microdot)
    await server.run()          # a task beside metering; never returns until close()
    server.close()
    server.stats                # {"requests": n, "busy": n, "timeouts": n, "rejected": n, ...}

Why not ``Microdot.start_server``: microdot 2.3.1 reads a whole header line before checking its
length, counts no headers and has no timeouts, so one client could hold the heap or a
connection forever. Here each connection is read by ``gateway.web_request.read_request`` first,
within ``Limits``:

- the request head and body are read in small chunks within size limits and checked so that
  microdot can parse them (``gateway.web_request`` says how: 431, 413, 400, 501, 505);
- the request is read completely (at most ``body_bytes``), all of it within ``deadline_ms`` of the
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

The limits a client meets, with their values: docs/web.md.
"""

import asyncio

from gateway.web_api import WebApi
from gateway.web_auth import WebAuth
from gateway.web_request import REASONS, Limits, Rejected, RequestStream, read_request


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
            status, REASONS.get(status, "Error"), len(body))
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
