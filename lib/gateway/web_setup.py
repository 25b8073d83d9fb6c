"""The setup mode's routes on the gateway's microdot app: a phone joins the access point, the
catch-all DNS and the probe redirects open the setup page, the user picks a network, types its
password and the broker, saves, and the gateway restarts onto it.

    from gateway import web_setup

    web_setup.add_routes(app, gateway)     # gateway.setup: gateway.setup_mode.SetupMode

    GET  /setup                 the setup page (one small HTML document, no external assets)
    GET  /api/setup/networks    {"active", "ssid", "networks": [{"ssid", "rssi", "secure"}],
                                 "current": {"ssid", "mqtt_host", "mqtt_port", "mqtt_user"}}
    POST /api/setup             {"ssid", "password", "mqtt_host", "mqtt_port", "mqtt_user",
                                 "mqtt_password"} -> 200 {"restarting": true}, or 400
                                 {"error", "key"} with nothing written, 409 outside setup mode
    GET  /generate_204, /hotspot-detect.html, /connecttest.txt, /ncsi.txt, /redirect
                                the operating systems' captive-portal probes: 302 to the page in
                                setup mode, 404 otherwise

In setup mode a request naming an unknown host (``Host: connectivitycheck.gstatic.com``: the
catch-all DNS sent it here) is redirected to the page too, whatever its path; an address
(``192.168.4.1``) or the gateway's own name (``wifi.hostname``) is served as usual, so the main
page stays reachable on the home network while the access point is up.

Saving needs no password in setup mode (that is what it is for; the access point's WPA2
password is the guard) but is refused cross-site as every change is (``gateway.web_auth``).
The fields go into the stored config.json (``gateway.config_editor``: the board's own checker,
an atomic replace, the old good file kept): ``password`` "" keeps the stored Wi-Fi password when
the network is the same one and means an open network otherwise; ``mqtt_password`` "" keeps the
stored one; ``mqtt_user`` "" and ``mqtt_port`` "" or null unset them. Every page request counts
as use of setup mode, which keeps the access point up (``SetupMode.touch``).
"""

import json

from gateway.config_editor import ConfigEditor
from gateway.web_api import add_route, release_config_loader
from gateway.web_auth import WebAuth

PROBES = ("/generate_204", "/hotspot-detect.html", "/connecttest.txt", "/ncsi.txt", "/redirect")
NOT_ACTIVE = "setup mode is not active (it opens without Wi-Fi settings, after Wi-Fi failed at boot, " \
             "or with the setup button held at boot); change settings on the main page"
_NO_STORE = {"Cache-Control": "no-store"}
_HTML = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
FIELDS = ("ssid", "password", "mqtt_host", "mqtt_port", "mqtt_user", "mqtt_password")


def _error(status, message, key=None):
    return {"error": message, "key": key}, status, _NO_STORE


def _zero():
    return 0


def is_address(host):
    """True for an IP address literal (the gateway's own, as a client typed or was sent to)."""
    if host.startswith("["):
        return True  # IPv6
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not part.isdigit():
            return False
    return True


def host_name(request):
    """The Host header without its port, lower case ("" when absent)."""
    host = (request.headers.get("Host") or "").strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[:end + 1] if end > 0 else host
    colon = host.find(":")
    return host[:colon] if colon >= 0 else host


def apply_setup(document, fields):
    """The stored config document (with its secrets) with the setup form's ``fields`` put in;
    ``fields`` is checked for shape here and for values by the board's checker afterwards.
    Raises ``ConfigError`` (key given) for a field of the wrong type."""
    from gateway.config import ConfigError

    for name in fields:
        if name not in FIELDS:
            raise ConfigError("unknown field %r (the setup form sends %s)" % (name, ", ".join(FIELDS)), name)
    for name in ("ssid", "password", "mqtt_host", "mqtt_user", "mqtt_password"):
        value = fields.get(name)
        if value is not None and type(value) is not str:
            raise ConfigError("%s must be text" % name, name)
    ssid = (fields.get("ssid") or "").strip()
    if not ssid:
        raise ConfigError("wifi.ssid: choose a network or type its name", "wifi.ssid")
    host = (fields.get("mqtt_host") or "").strip()
    if not host:
        raise ConfigError("mqtt.host: the MQTT broker's address is required", "mqtt.host")
    out = dict(document)
    wifi = dict(out.get("wifi") or {}) if type(out.get("wifi")) is dict else {}
    password = fields.get("password") or ""
    if password:
        wifi["password"] = password
    elif wifi.get("ssid") != ssid:
        wifi["password"] = None  # another network and no password: an open one
    wifi["ssid"] = ssid
    out["wifi"] = wifi
    mqtt = dict(out.get("mqtt") or {}) if type(out.get("mqtt")) is dict else {}
    mqtt["host"] = host
    port = fields.get("mqtt_port")
    if type(port) is str:
        port = port.strip()
        port = int(port) if port.isdigit() and len(port) < 7 else (port or None)
    mqtt["port"] = port  # anything but an int in range is the checker's to name (mqtt.port)
    user = (fields.get("mqtt_user") or "").strip()
    mqtt["user"] = user or None
    mqtt_password = fields.get("mqtt_password") or ""
    if mqtt_password:
        mqtt["password"] = mqtt_password
    elif not user:
        mqtt["password"] = None  # no user: no password either
    out["mqtt"] = mqtt
    return out


class SetupRoutes:
    def __init__(self, gateway):
        self.gateway = gateway
        self.setup = gateway.setup
        self.log = gateway.log
        self.editor = ConfigEditor(gateway.board, gateway.config_result)
        self.csrf = WebAuth(None, _zero)  # only its cross-site check: no password in setup mode
        hostname = gateway.config["wifi"]["hostname"]
        self.own_names = ("localhost",) if not hostname else (
            "localhost", hostname.lower(), hostname.lower() + ".local")

    def add_routes(self, app):
        self._route(app, "/setup", "GET", self.page)
        self._route(app, "/api/setup/networks", "GET", self.networks)
        self._route(app, "/api/setup", "POST", self.save)
        for path in PROBES:
            self._route(app, path, "GET", self.probe)
        app.before_request(self.redirect_foreign_host)
        earlier = app.error_handlers.get(404)
        routes = self

        async def not_found(request):
            if routes._foreign(request):
                return routes._redirect()
            if earlier is not None:
                from microdot.microdot import invoke_handler

                return await invoke_handler(earlier, request)
            return {"error": "not found"}, 404, _NO_STORE

        app.errorhandler(404)(not_found)

    def _route(self, app, path, method, handler):
        add_route(app, self.log, path, method, handler)

    # ------------------------------------------------------------------ redirects
    def _foreign(self, request):
        """In setup mode, a request for a host name that is not the gateway's (the DNS answered
        every name with the access point)."""
        if request is None or not self.setup.active:
            return False
        host = host_name(request)
        return bool(host) and not is_address(host) and host not in self.own_names

    def _redirect(self):
        from microdot import Response

        return Response.redirect(self.setup.page_url or "/setup")

    async def redirect_foreign_host(self, request):
        if self._foreign(request):
            return self._redirect()
        return None

    async def probe(self, request):
        if not self.setup.active:
            return _error(404, "not found")
        return self._redirect()

    # ------------------------------------------------------------------ the page and its API
    async def page(self, request):
        self.setup.touch()
        return PAGE, 200, _HTML

    async def networks(self, request):
        setup = self.setup
        if setup.active:
            setup.touch()
        wifi = _section(self.editor, "wifi")
        mqtt = _section(self.editor, "mqtt")
        listed = [{"ssid": ssid, "rssi": rssi, "secure": secure} for ssid, rssi, secure in setup.networks]
        return {"active": setup.active, "ssid": setup.ssid, "networks": listed,
                "current": {"ssid": wifi.get("ssid"), "mqtt_host": mqtt.get("host"),
                            "mqtt_port": mqtt.get("port"), "mqtt_user": mqtt.get("user")}}, 200, _NO_STORE

    async def save(self, request):
        from gateway.config import ConfigError

        setup = self.setup
        if not setup.active:
            return _error(409, NOT_ACTIVE)
        if self.csrf.cross_site(request):
            return _error(403, "cross-site request refused: save from the setup page")
        setup.touch()
        try:
            fields = json.loads(request.body)
        except ValueError:
            fields = None
        if type(fields) is not dict:
            return _error(400, "send a JSON object {%s}" % ", ".join(FIELDS))
        try:
            document = apply_setup(self.editor.stored_document(), fields)
            self.editor.save(document)
        except ConfigError as exc:
            return _error(400, str(exc), exc.key)
        finally:
            release_config_loader()
        self.log.info("setup mode: config.json saved (Wi-Fi %r, broker %s)", document["wifi"]["ssid"],
                      document["mqtt"]["host"])
        self.gateway.request_restart("setup saved")
        return {"restarting": True, "ssid": document["wifi"]["ssid"]}, 200, _NO_STORE


def _section(editor, name):
    """A section of the stored config.json with its secrets blanked ({} when it has none)."""
    from gateway.config_editor import redacted

    section = editor.stored_document().get(name)
    if type(section) is not dict:
        return {}
    shown = redacted(section)[0]
    return shown if type(shown) is dict else {}


def add_routes(app, gateway):
    """Add the setup routes to ``app`` (microdot) for ``gateway`` (whose ``setup`` is set)."""
    routes = SetupRoutes(gateway)
    routes.add_routes(app)
    return routes


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rbAmp gateway setup</title>
<style>
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:30em;padding:1em;color:#222}
h1{font-size:1.3em}fieldset{border:1px solid #ccc;border-radius:6px;margin:0 0 1em}
label{display:block;margin:.5em 0 .2em}input{box-sizing:border-box;width:100%;padding:.5em;font-size:1em}
#nets label{display:flex;justify-content:space-between;margin:.3em 0}#nets input{width:auto;margin-right:.5em}
button{font-size:1em;padding:.6em 1.2em}#msg{margin-top:1em;font-weight:bold}.err{color:#b00}.ok{color:#070}
</style></head><body>
<h1>rbAmp gateway setup</h1>
<p id="intro">Choose the Wi-Fi network the gateway should join and the MQTT broker it reports to.</p>
<form id="f">
<fieldset><legend>Wi-Fi</legend><div id="nets">Looking for networks...</div>
<label for="ssid">Network name</label><input id="ssid" name="ssid" maxlength="32" required>
<label for="password">Password (blank: keep the saved one for the same network, else an open network)</label>
<input id="password" name="password" type="password" maxlength="64" autocomplete="off"></fieldset>
<fieldset><legend>MQTT broker</legend>
<label for="mqtt_host">Address</label><input id="mqtt_host" name="mqtt_host" maxlength="253" required>
<label for="mqtt_port">Port (blank: 1883)</label><input id="mqtt_port" name="mqtt_port" inputmode="numeric">
<label for="mqtt_user">User (optional)</label><input id="mqtt_user" name="mqtt_user" maxlength="256">
<label for="mqtt_password">Password (blank: keep the saved one)</label>
<input id="mqtt_password" name="mqtt_password" type="password" maxlength="256" autocomplete="off"></fieldset>
<button id="save" type="submit">Save and restart</button><div id="msg"></div></form>
<script>
var FIELDS = ["ssid", "password", "mqtt_host", "mqtt_port", "mqtt_user", "mqtt_password"];
function $(id) { return document.getElementById(id); }
function say(text, ok) { var m = $("msg"); m.textContent = text; m.className = ok ? "ok" : "err"; }
function bars(r) { return r >= -55 ? "\\u2582\\u2584\\u2586\\u2588" : r >= -67 ? "\\u2582\\u2584\\u2586" :
  r >= -78 ? "\\u2582\\u2584" : "\\u2582"; }
function el(tag, text) { var e = document.createElement(tag); if (text) e.textContent = text; return e; }
function row(n) {
  var l = el("label"), left = el("span"), i = el("input");
  i.type = "radio"; i.name = "pick"; i.value = n.ssid;
  i.onchange = function () { $("ssid").value = n.ssid; };
  left.appendChild(i); left.appendChild(el("span", n.ssid + (n.secure ? " \\uD83D\\uDD12" : "")));
  l.appendChild(left); l.appendChild(el("span", bars(n.rssi) + " " + n.rssi + " dBm"));
  return l;
}
function show(d) {
  var box = $("nets"), c = d.current || {};
  box.textContent = d.networks.length ? "" : "No networks found: type the name below.";
  d.networks.forEach(function (n) { box.appendChild(row(n)); });
  [["ssid", c.ssid], ["mqtt_host", c.mqtt_host], ["mqtt_port", c.mqtt_port], ["mqtt_user", c.mqtt_user]]
    .forEach(function (p) { if (p[1] && !$(p[0]).value) $(p[0]).value = p[1]; });
  if (!d.active) { say("Setup mode is not active: change settings on the main page.", false);
    $("save").disabled = true; }
}
fetch("/api/setup/networks").then(function (r) { return r.json(); }).then(show).catch(function () {
  $("nets").textContent = "The network list did not load: type the name below."; });
function saved(status, d) {
  if (status == 200) {
    say("Saved. The gateway restarts and joins " + d.ssid + ": put this phone back on your own network.", true);
    return;
  }
  $("save").disabled = false; say(d.error, false);
  var field = d.key ? d.key.replace("wifi.", "").replace("mqtt.", "mqtt_") : "";
  if (field && $(field)) $(field).focus();
}
$("f").onsubmit = function (e) {
  e.preventDefault();
  var body = {};
  FIELDS.forEach(function (k) { body[k] = $(k).value; });
  $("save").disabled = true; say("Saving...", true);
  fetch("/api/setup", {method: "POST", body: JSON.stringify(body),
                       headers: {"Content-Type": "application/json", "X-Requested-With": "rbamp"}})
    .then(function (r) { return r.json().then(function (d) { saved(r.status, d); }); })
    .catch(function () { $("save").disabled = false;
      say("The gateway did not answer: is this phone still on its access point?", false); });
};
</script></body></html>
"""
