"""The web page's JSON API against the real gateway in real time (tests/support_web.py): the
state document against the MQTT state payload, the live stream and its viewer count, the config
editor over HTTP (redaction, named errors, atomic replace, restart), login, Basic auth and the
cross-site guard. The client is a plain asyncio socket in the test, on every runtime."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import asyncio
import json
import sys

import xrt
from gateway.app import CONFIG_LOADER_MODULES
from support_web import (SECRETS, basic, close_quietly, config_doc, parse_response, request, request_json, run,
                         start, wait_until)

PASSWORD = SECRETS["web"]
XRW = {"X-Requested-With": "rbamp"}


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _exists(path):
    try:
        open(path, "rb").close()
        return True
    except OSError:
        return False


def test_state_document_has_the_contract_shape_and_the_state_payloads_values():
    seen = {}

    async def main():
        web = await start(xrt.tmp_path("state"), config_doc())
        try:
            gateway = web.gateway
            gateway.metering.read_live()  # live values, as the publisher reads them for a viewer
            status, headers, doc = await request_json(web.port, "GET", "/api/state")
            seen["payload"] = gateway.state_payload()
            seen["ledger"] = gateway.metering.modules[0].ledger.import_mwh(0)
            seen["calendar"] = gateway.calendar.channel_view("0x50", 0) if gateway.calendar is not None else None
            seen["answer"] = (status, headers, doc)
            await web.samples_grow()
        finally:
            await web.stop()

    run(main())
    status, headers, doc = seen["answer"]
    assert status == 200 and headers["content-type"].startswith("application/json"), (status, headers)
    assert headers["cache-control"] == "no-store"
    assert sorted(doc) == sorted(["device_id", "firmware", "uptime_s", "heap_free", "heap_used", "time",
                                  "energy_period", "wifi", "mqtt", "journal", "config", "modules", "log"]), doc
    assert doc["device_id"] == "webtest" and doc["firmware"] == seen["payload"]["firmware"]
    assert type(doc["uptime_s"]) is int and doc["uptime_s"] >= 0
    assert doc["time"] == {"synced": False, "local": None, "tz": "UTC0"}, doc["time"]
    assert doc["energy_period"] == "since_boot"  # no calendar, no time sync
    assert doc["wifi"] == {"mode": "station", "ssid": "home", "rssi": -58, "ip": "192.168.4.20"}, doc["wifi"]
    assert doc["mqtt"] == {"state": "disabled", "broker": None}
    assert doc["config"] == {"in_use": "config.json", "error": None}
    assert doc["journal"]["health"] == seen["payload"]["journal"] == "ok", doc["journal"]
    assert type(doc["journal"]["records"]) is int and len(doc["journal"]["erases"]) == 8, doc["journal"]
    assert any("gateway" in line and "up" in line for line in doc["log"]), doc["log"]
    assert len(doc["modules"]) == 1
    module = doc["modules"][0]
    live = seen["payload"]["modules"]["0x50"]
    assert module["key"] == "0x50" and module["address"] == 0x50 and module["label"] == "house"
    assert module["variant"] == "UI2" and module["protocol"] == "1.3"
    assert module["status"] == "ok" and module["error"] is None, module
    assert module["voltage_v"] == live["voltage"] and module["frequency_hz"] == live["frequency"], (module, live)
    assert live["voltage"] > 200
    assert [channel["ch"] for channel in module["channels"]] == [1, 2]
    for index in range(2):
        channel = module["channels"][index]
        assert channel["current_a"] == live["current"][index]
        assert channel["power_w"] == live["power"][index]
        assert channel["pf"] == live["power_factor"][index]
        assert channel["reactive_var"] == live["reactive_power"][index]
        for name in ("import_wh", "export_wh"):
            assert sorted(channel[name]) == ["last_month", "month", "today", "total", "yesterday"]
    total = module["channels"][0]["import_wh"]["total"]
    assert 0 <= total <= seen["ledger"] / 1000 + 0.001, (total, seen["ledger"])
    # day and month values are the calendar's (counting since boot: the clock was never synced)
    calendar = seen["calendar"]
    energy = module["channels"][0]["import_wh"]
    if calendar is None:
        assert energy["today"] is None and energy["month"] is None, energy
    else:
        assert 0 <= energy["today"] <= calendar["import"]["today"], (energy, calendar)
        assert energy["yesterday"] == calendar["import"]["yesterday"], (energy, calendar)


def test_events_stream_the_state_and_the_viewer_count_follows_the_client():
    seen = {}

    async def main():
        web = await start(xrt.tmp_path("events"), config_doc())
        gateway = web.gateway
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", web.port)
            writer.write(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            await writer.drain()
            data = b""
            while data.count(b"event: state") < 3:
                chunk = await asyncio.wait_for(reader.read(4096), 15)
                assert chunk, data
                data += chunk
            seen["viewers while open"] = gateway.viewers
            seen["data"] = data
            await close_quietly(writer)
            # the server notices at its next event (about a second later)
            await wait_until(lambda: gateway.viewers == 0, 15000, "the viewer count back to 0")
            seen["streams after"] = web.server.api.streams
            seen["state after"] = await request(web.port, "GET", "/api/state")
            await web.samples_grow()
        finally:
            await web.stop()

    run(main())
    status, headers, body = parse_response(seen["data"])
    assert status == 200 and headers["content-type"] == "text/event-stream", headers
    assert seen["viewers while open"] == 1
    assert seen["streams after"] == 0
    events = [part for part in body.split(b"\n\n") if b"event: state" in part]
    assert len(events) >= 3
    docs = []
    for event in events:
        lines = event.split(b"\n")
        assert lines[-2] == b"event: state" and lines[-1].startswith(b"data: "), lines
        docs.append(json.loads(lines[-1][6:]))
    assert all(doc["device_id"] == "webtest" and doc["modules"][0]["key"] == "0x50" for doc in docs)
    # while someone watches, the gateway reads live values (without MQTT): they arrive
    assert docs[-1]["modules"][0]["voltage_v"] > 200, docs[-1]
    assert seen["state after"][0] == 200


def test_the_page_and_the_config_without_any_secret():
    seen = {}

    async def main():
        web = await start(xrt.tmp_path("getcfg"), config_doc(web={"enabled": False, "password": PASSWORD}))
        try:
            seen["plain"] = await request(web.port, "GET", "/api/config")
            seen["page"] = await request(web.port, "GET", "/")
        finally:
            await web.stop()

    run(main())
    status, headers, body = seen["plain"]
    assert status == 200, seen
    for secret in SECRETS.values():
        assert secret.encode() not in body, body
    view = json.loads(body)
    assert view["config"]["wifi"] == {"ssid": "home", "password": ""}
    assert view["config"]["mqtt"]["password"] == "" and view["config"]["mqtt"]["user"] == "meter"
    assert view["config"]["web"]["password"] == ""
    assert sorted(view["secrets_set"]) == ["mqtt.password", "web.password", "wifi.password"]
    assert view["in_use"] == "config.json" and view["error"] is None
    assert view["writable"] is False  # not logged in
    from gateway.web_page import PAGE

    status, headers, body = seen["page"]
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8" and body == PAGE, headers


def test_a_wrong_value_is_refused_with_the_checkers_message_and_nothing_is_written():
    seen = {}

    async def main():
        web = await start(xrt.tmp_path("badput"), config_doc(web={"enabled": False, "password": PASSWORD}))
        try:
            path = web.board.config_path
            before = _read(path)
            status, _, view = await request_json(web.port, "GET", "/api/config")
            doc = view["config"]
            doc["mqtt"]["port"] = 70000
            seen["bad"] = await request_json(web.port, "PUT", "/api/config", doc, basic(PASSWORD))
            doc["mqtt"]["port"] = 1883
            doc["modules"][0]["address"] = "0x05"
            seen["bad address"] = await request_json(web.port, "PUT", "/api/config", doc, basic(PASSWORD))
            seen["not json"] = await request_json(web.port, "PUT", "/api/config", b'{"mqtt": {', basic(PASSWORD))
            seen["loader kept"] = [name for name in CONFIG_LOADER_MODULES if name in sys.modules]
            seen["unchanged"] = _read(path) == before
            seen["last good"] = _exists(web.board.last_good_path) and _read(web.board.last_good_path) == before
            seen["tmp left"] = _exists(path + ".tmp")
            await web.samples_grow()
            seen["resets"] = web.board.resets
            seen["log"] = web.log_text()
        finally:
            await web.stop()

    run(main())
    status, _, body = seen["bad"]
    assert status == 400, seen["bad"]
    assert body["key"] == "mqtt.port" and "mqtt.port" in body["error"] and "1..65535" in body["error"], body
    status, _, body = seen["bad address"]
    assert status == 400 and body["key"] == "modules[0].address", body
    status, _, body = seen["not json"]
    assert status == 400 and "not valid JSON" in body["error"], body
    assert seen["unchanged"] and not seen["tmp left"]
    assert seen["last good"]  # the boot's copy, untouched
    assert seen["resets"] == 0 and "restarting" not in seen["log"]
    # the config loader (several KB on a board) is let go again after the requests that needed it
    assert seen["loader kept"] == [], seen["loader kept"]


def test_a_good_document_replaces_the_file_keeps_secrets_and_the_last_good_copy_and_restarts():
    seen = {}

    async def main():
        web = await start(xrt.tmp_path("goodput"), config_doc(web={"enabled": False, "password": PASSWORD}))
        try:
            path = web.board.config_path
            seen["before"] = _read(path)
            status, _, view = await request_json(web.port, "GET", "/api/config")
            doc = view["config"]
            doc["publish"] = {"interval_s": 30}
            doc["mqtt"]["password"] = ""  # blank: keep the stored one
            doc["wifi"]["password"] = "a-new-wifi-pass"
            seen["put"] = await request_json(web.port, "PUT", "/api/config", doc, basic(PASSWORD))
            await wait_until(lambda: web.board.resets == 1, 10000, "the restart")
            seen["after"] = _read(path)
            seen["last good"] = _read(web.board.last_good_path)
            seen["log"] = web.log_text()
        finally:
            await web.stop()

    run(main())
    assert seen["put"][0] == 200 and seen["put"][2] == {"restarting": True}, seen["put"]
    written = json.loads(seen["after"])
    assert written["publish"] == {"interval_s": 30}
    assert written["mqtt"]["password"] == SECRETS["mqtt"]  # kept
    assert written["web"]["password"] == PASSWORD  # kept
    assert written["wifi"]["password"] == "a-new-wifi-pass"  # replaced
    assert seen["last good"] == seen["before"]
    assert "restarting: config changed" in seen["log"], seen["log"]
    for secret in SECRETS.values():
        assert secret not in seen["log"]


def test_without_a_password_nothing_can_be_changed():
    seen = {}

    async def main():
        web = await start(xrt.tmp_path("nopass"), config_doc())
        try:
            status, _, view = await request_json(web.port, "GET", "/api/config")
            seen["writable"] = view["writable"]
            seen["put"] = await request_json(web.port, "PUT", "/api/config", view["config"], XRW)
            seen["restart"] = await request_json(web.port, "POST", "/api/restart", {}, XRW)
            seen["login"] = await request_json(web.port, "POST", "/api/login", {"password": "anything"}, XRW)
            seen["resets"] = web.board.resets
        finally:
            await web.stop()

    run(main())
    assert seen["writable"] is False
    for name in ("put", "restart", "login"):
        status, _, body = seen[name]
        assert status == 403 and "no web.password" in body["error"], (name, seen[name])
    assert seen["resets"] == 0


def test_password_basic_auth_session_cookie_logout_and_cross_site_requests():
    seen = {}
    bad = {"mqtt": {"host": "x", "port": 0}}  # authorised requests get to the checker: 400

    async def put(port, headers):
        return (await request_json(port, "PUT", "/api/config", bad, headers))[0]

    async def main():
        web = await start(xrt.tmp_path("auth"), config_doc(web={"enabled": False, "password": PASSWORD}))
        port = web.port
        try:
            seen["none"] = await put(port, XRW)
            seen["wrong basic"] = await put(port, basic("not-the-password"))
            seen["basic"] = await put(port, basic(PASSWORD, user="anyone"))
            seen["wrong login"] = await request_json(port, "POST", "/api/login", {"password": "nope-nope"}, XRW)
            status, headers, body = await request_json(port, "POST", "/api/login", {"password": PASSWORD}, XRW)
            seen["login"] = (status, headers.get("set-cookie"), body)
            cookie = headers["set-cookie"].split(";")[0]
            session = {"Cookie": "other=1; " + cookie, "X-Requested-With": "rbamp"}
            seen["cookie"] = await put(port, session)
            status, _, view = await request_json(port, "GET", "/api/config", headers={"Cookie": cookie})
            seen["writable"] = view["writable"]
            # cross-site: the right password or cookie does not help
            evil = {"Cookie": cookie, "Origin": "http://evil.example"}
            seen["cross origin"] = await request_json(port, "PUT", "/api/config", bad, evil)
            seen["no origin no header"] = await put(port, {"Cookie": cookie})
            seen["same origin"] = await put(port, {"Cookie": cookie, "Origin": "http://127.0.0.1"})
            seen["same referer"] = await put(port, {"Cookie": cookie, "Referer": "http://127.0.0.1/#settings"})
            seen["other referer"] = await put(port, {"Cookie": cookie, "Referer": "http://evil.example/x"})
            seen["null origin"] = await put(port, {"Cookie": cookie, "Origin": "null", "X-Requested-With": "rbamp"})
            seen["logout"] = (await request_json(port, "POST", "/api/logout", {}, session))[0]
            seen["after logout"] = await put(port, session)
            seen["restart"] = await request_json(port, "POST", "/api/restart", {}, basic(PASSWORD))
            await wait_until(lambda: web.board.resets == 1, 10000, "the restart")
            seen["log"] = web.log_text()
        finally:
            await web.stop()

    run(main())
    assert seen["none"] == 401 and seen["wrong basic"] == 401, seen
    assert seen["basic"] == 400  # past the password, stopped by the checker: nothing written
    assert seen["wrong login"][0] == 401, seen["wrong login"]
    status, cookie, body = seen["login"]
    assert status == 200 and body == {"ok": True}, seen["login"]
    assert cookie.startswith("rbamp_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie
    assert len(cookie.split(";")[0]) == len("rbamp_session=") + 32
    assert seen["cookie"] == 400 and seen["writable"] is True
    status, _, body = seen["cross origin"]
    assert status == 403 and "cross-site" in body["error"], seen["cross origin"]
    assert seen["no origin no header"] == 403
    assert seen["same origin"] == 400 and seen["same referer"] == 400
    assert seen["other referer"] == 403 and seen["null origin"] == 403
    assert seen["logout"] == 200 and seen["after logout"] == 401
    assert seen["restart"][0] == 200 and seen["restart"][2] == {"restarting": True}
    assert "restarting: restart from the web page" in seen["log"]
    assert PASSWORD not in seen["log"]


class _FakeRequest:
    def __init__(self, headers=None, cookies=None):
        self.headers = headers or {"Host": "gw", "X-Requested-With": "rbamp"}
        self.cookies = cookies or {}


def test_failed_passwords_are_rate_limited_and_sessions_expire():
    from gateway.web_auth import FAILURE_BURST, FAILURE_EVERY_MS, SESSION_MS, AuthRefused, WebAuth, same_bytes

    now = [0]
    auth = WebAuth("right-password", lambda: now[0])
    request = _FakeRequest()
    for _ in range(FAILURE_BURST):
        assert xrt.raises(AuthRefused, auth.login, request, "wrong").status == 401
    limited = xrt.raises(AuthRefused, auth.login, request, "right-password")
    assert limited.status == 429 and "too many" in limited.message  # even the right one, meanwhile
    now[0] += FAILURE_EVERY_MS
    token = auth.login(request, "right-password")  # one attempt earned back
    assert auth.failures == FAILURE_BURST
    with_cookie = _FakeRequest(cookies={"rbamp_session": token})
    assert auth.write_refusal(with_cookie) is None
    forged = token[:-1] + ("1" if token[-1] == "0" else "0")  # one digit off
    assert auth.write_refusal(_FakeRequest(cookies={"rbamp_session": forged})) == (401, auth.write_refusal(
        _FakeRequest())[1])
    now[0] += SESSION_MS
    assert auth.write_refusal(with_cookie)[0] == 401  # expired
    assert same_bytes(b"abc", b"abc") and not same_bytes(b"abc", b"abd") and not same_bytes(b"abc", b"ab")
    assert not same_bytes(b"", b"a") and same_bytes(b"", b"")


def test_setup_mode_needs_no_password_but_still_refuses_cross_site_requests():
    from gateway.web_auth import FORBIDDEN_CROSS_SITE, FORBIDDEN_NO_PASSWORD, WebAuth

    setup = [False]
    auth = WebAuth(None, lambda: 0, lambda: setup[0])
    same_site = _FakeRequest()
    cross_site = _FakeRequest({"Host": "gw", "Origin": "http://evil.example", "X-Requested-With": "rbamp"})
    assert auth.write_refusal(same_site) == (403, FORBIDDEN_NO_PASSWORD) and not auth.can_write(same_site)
    setup[0] = True
    assert auth.write_refusal(same_site) is None and auth.can_write(same_site)
    assert auth.write_refusal(cross_site) == (403, FORBIDDEN_CROSS_SITE)
