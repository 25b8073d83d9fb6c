"""The web page's routes: the page, its JSON API and the live stream, on a microdot app.

    from gateway.web_api import WebApi

    api = WebApi(gateway, auth)        # auth: gateway.web_auth.WebAuth
    api.add_routes(app)                # app: microdot.Microdot (gateway.web_server builds both)

    GET  /                the page (gateway.web_page.PAGE)
    GET  /api/state       the state document (gateway.web_state)
    GET  /api/events      Server-Sent Events: "event: state" with the same document, after every
                          round of live values (about once a second), a comment line when none
                          came for KEEPALIVE_S; at most ``max_streams`` at once (else 503)
    GET  /api/config      config.json without its secrets (gateway.config_editor) and "writable"
    PUT  /api/config      the whole document: 400 {"error", "key"} and nothing written, or 200
                          {"restarting": true} and the gateway restarts
    POST /api/login       {"password": ...} -> 200 and the session cookie, or 401/403/429
    POST /api/logout      ends this session
    POST /api/restart     restarts the gateway

Every change (PUT, POST) passes ``WebAuth.write_refusal`` first; errors are JSON ``{"error": ...}``.
A handler that fails answers 500 and logs the exception once; it never reaches microdot, which
would only print it.
"""

import asyncio
import json

from gateway.config_editor import ConfigEditor
from gateway.web_auth import SESSION_COOKIE, SESSION_MS, AuthRefused
from gateway.web_state import WebState

MAX_LOGIN_BYTES = 256  # {"password": ...} of at most 64 characters, whatever the JSON parser's depth limits
KEEPALIVE_S = 5  # a stream without live values (metering stalled) still notices a client that left
NO_STORE = {"Cache-Control": "no-store"}
_HTML = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"}
_EVENTS = {"Content-Type": "text/event-stream", "Cache-Control": "no-store"}


def add_route(app, log, path, method, handler):
    """Route ``method path`` to ``handler``; a bug in a handler gives the client a 500 and the
    log the trace, never an exception out of the connection."""

    async def guarded(request):
        try:
            return await handler(request)
        except Exception as exc:
            log.exception("web: %s %s failed" % (method, path), exc)
            return _error(500, "internal error: %s" % exc)

    app.route(path, methods=[method])(guarded)


def release_config_loader():
    """Let the config loader go again after a request that needed it (about 5 KB on the chip), as
    the gateway does after boot (gateway.app.let_go)."""
    from gateway.app import CONFIG_LOADER_MODULES, let_go

    let_go(CONFIG_LOADER_MODULES)


def _error(status, message, **extra):
    body = {"error": message}
    for key in extra:
        body[key] = extra[key]
    return body, status, NO_STORE


class LiveStream:
    """The body of one /api/events response: an async iterator of SSE chunks. It counts itself
    in ``gateway.viewers`` (so the publisher reads live values while someone watches) until
    ``close()``, which the response calls when it ends and the connection when it closes."""

    def __init__(self, api):
        self.api = api
        self.gateway = api.gateway
        self.first = True
        self.closed = False
        api.streams += 1
        self.gateway.viewers += 1

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.closed:
            raise StopAsyncIteration
        if self.first:
            self.first = False
            return b"retry: 3000\n" + self._event()
        try:
            await asyncio.wait_for(self.gateway.wait_live(), KEEPALIVE_S)
        except asyncio.TimeoutError:
            return b": no live values\n\n"
        return self._event()

    def _event(self):
        return self.api.state_event()

    async def aclose(self):
        self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            self.api.streams -= 1
            self.gateway.viewers -= 1
            if not self.api.streams:
                self.api.forget_event()


class WebApi:
    def __init__(self, gateway, auth, max_streams=2):
        self.gateway = gateway
        self.auth = auth
        self.log = gateway.log
        self.max_streams = max_streams
        self.streams = 0
        self.state = WebState(gateway)
        self.editor = ConfigEditor(gateway.board, gateway.config_result)
        self._event = None
        self._event_ms = None

    def state_event(self):
        """The SSE chunk of the state now. Streams woken by the same round of live values share
        one (the gateway's uptime only moves between rounds): one document built, not one each."""
        stamp = self.gateway.uptime_ms
        if self._event is None or stamp != self._event_ms:
            self._event = None  # the old chunk can go before the new one is built
            self._event = b"event: state\ndata: " + json.dumps(self.state.build()).encode() + b"\n\n"
            self._event_ms = stamp
        return self._event

    def forget_event(self):
        self._event = None

    def add_routes(self, app):
        self._route(app, "/", "GET", self.page)
        self._route(app, "/api/state", "GET", self.get_state)
        self._route(app, "/api/events", "GET", self.events)
        self._route(app, "/api/config", "GET", self.get_config)
        self._route(app, "/api/config", "PUT", self.put_config)
        self._route(app, "/api/login", "POST", self.login)
        self._route(app, "/api/logout", "POST", self.logout)
        self._route(app, "/api/restart", "POST", self.restart)

    def _route(self, app, path, method, handler):
        add_route(app, self.log, path, method, handler)

    # ------------------------------------------------------------------ reading
    async def page(self, request):
        from gateway.web_page import PAGE

        return PAGE, 200, _HTML

    async def get_state(self, request):
        return self.state.build(), 200, NO_STORE

    async def events(self, request):
        if self.streams >= self.max_streams:
            return _error(503, "too many live streams open (%d): close another page" % self.max_streams)
        stream = LiveStream(self)
        writer = request.sock[1] if request.sock else None
        on_close = getattr(writer, "on_close", None)
        if on_close is not None:
            on_close(stream.close)  # the connection ends the stream however the response ends
        return stream, 200, _EVENTS

    async def get_config(self, request):
        try:
            view = self.editor.view()
        finally:
            release_config_loader()
        view["writable"] = self.auth.can_write(request)
        return view, 200, NO_STORE

    # ------------------------------------------------------------------ changing
    async def put_config(self, request):
        from gateway.config import ConfigError

        refusal = self.auth.write_refusal(request)
        if refusal is not None:
            return _error(refusal[0], refusal[1])
        try:
            self.editor.save(request.body)
        except ConfigError as exc:
            return _error(400, str(exc), key=exc.key)
        finally:
            release_config_loader()
        self.log.info("web: config.json replaced from the web page")
        self.gateway.request_restart("config changed")
        return {"restarting": True}, 200, NO_STORE

    async def login(self, request):
        password = None
        try:
            if len(request.body) > MAX_LOGIN_BYTES:
                raise ValueError("too long")
            body = json.loads(request.body)
            password = body.get("password") if type(body) is dict else None
        except ValueError:
            pass  # a body that is not JSON has no password: answered below
        if type(password) is not str:
            return _error(400, "send {\"password\": \"...\"}")
        try:
            token = self.auth.login(request, password)
        except AuthRefused as exc:
            if exc.status == 401:
                self.log.warning("web: wrong password at login")
            return _error(exc.status, exc.message)
        headers = {"Cache-Control": "no-store",
                   "Set-Cookie": "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict" % (
                       SESSION_COOKIE, token, SESSION_MS // 1000)}
        return {"ok": True}, 200, headers

    async def logout(self, request):
        if self.auth.cross_site(request):
            return _error(403, "cross-site request refused")
        self.auth.logout(request)
        headers = {"Cache-Control": "no-store",
                   "Set-Cookie": "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" % SESSION_COOKIE}
        return {"ok": True}, 200, headers

    async def restart(self, request):
        refusal = self.auth.write_refusal(request)
        if refusal is not None:
            return _error(refusal[0], refusal[1])
        self.gateway.request_restart("restart from the web page")
        return {"restarting": True}, 200, NO_STORE
