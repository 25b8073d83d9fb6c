"""The gateway's web page in a real browser: Debian's chromium, headless, driven by selenium through
Debian's chromedriver, against `make run` (tools/run_host.py) with a real mosquitto.

- the live values on the page are the ones the gateway publishes over MQTT, over the event stream
  and, with EventSource taken away, by polling, also when the mains collapse; the energy totals
  are the MQTT totals;
- a bad setting shows the gateway's own named error, marks the key, and changes nothing;
- a good setting applies after the restart the page waits for (blank secrets keep their values);
- setup mode's page saves a network;
- the screenshots of the docs (tools/screenshot_page.py) are taken from a running gateway.

Chromium and chromium-driver come from apt (.ci/run installs them): without them these tests are
skipped on a developer's machine and fail in CI. Host-side tests (CPython).
"""

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
import support_run_host
from screenshot_page import browser_paths, capture, console_errors, open_browser, texts, wait_for_live
from support_e2e import Watcher, require, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE = "rbamp-page"
KEY = "0x50"  # the page's key of the module at 0x50 (the MQTT state's too)
PASSWORD = "page-test-password"
CHANNELS = (1, 2)  # the simulated UI2
# The page's decimals for each live value (gateway/web_page.py) and the MQTT state's field
LIVE = (("i", "current", 3), ("p", "power", 1), ("pf", "power_factor", 2), ("q", "reactive_power", 1))
PARTS = ("total", "today", "yesterday", "month", "last-month")


def _browser_or_skip():
    chromium, chromedriver = browser_paths()
    require(chromium and chromedriver, "the browser (apt-get install -y chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        require(False, "selenium (requirements-dev.txt; make test installs it)")


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium; at the end the page must not have had a script error."""
    _browser_or_skip()
    driver = open_browser(str(tmp_path / "chromium"))
    try:
        yield driver
        errors = console_errors(driver)
        assert not errors, errors
    finally:
        driver.quit()


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_config(**overrides):
    config = {"device_id": DEVICE, "mqtt": {"host": "127.0.0.1", "port": 1883, "base_topic": "rbamp", "timeout_s": 2},
              "modules": [{"address": 80, "label": "house"}], "period_s": 2,
              "publish": {"interval_s": 1, "power_change_w": 1}, "ntp": {"enabled": False},
              "web": {"password": PASSWORD}}
    config.update(overrides)
    return config


class HostRun:
    """`make run` with its own data folder, broker and web port, as a user starts it in a terminal.
    Everything it started is found by its mark and killed at the end."""

    def __init__(self, tmp_path, broker_port, config, env=None):
        self.data = tmp_path / "run"
        self.mark = support_run_host.new_mark()
        self.web_port = _free_port()
        self.url = "http://127.0.0.1:%d/" % self.web_port
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        environment = support_run_host.environment(self.mark)
        environment["WEB_PORT"] = str(self.web_port)  # make run WEB_PORT=...
        environment.update(env or {})
        self.out_path = tmp_path / "run.out"
        with open(self.out_path, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, support_run_host.RUN_HOST, "--broker", "127.0.0.1:%d" % broker_port,
                 "--config", str(config_path), "--data", str(self.data)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment,
                start_new_session=True)

    def output(self):
        with open(self.out_path) as f:
            return f.read()

    def get(self, path):
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=5) as response:
            return json.loads(response.read())

    def answers(self):
        try:
            return self.get("/api/state")
        except (OSError, ValueError):
            return None

    def wait_ready(self, timeout_s=90):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("make run ended: %s" % self.output()[-3000:])
            return self.answers()
        return wait_until(ready, timeout_s, "the page at %s" % self.url)

    def control(self, command):
        """A command to the simulated hardware (tools/rbampsim/host.py), applied within 100 ms."""
        path = self.data / "sim_control"
        (self.data / "sim_control.tmp").write_text(command + "\n")
        os.replace(self.data / "sim_control.tmp", path)

    def gateway_pid(self):
        return int((self.data / "gateway.pid").read_text())

    def config_bytes(self):
        return (self.data / "config.json").read_bytes()

    def log(self):
        return (self.data / "gateway.log").read_text()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # Ctrl-C: the gateway commits and says offline
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        support_run_host.kill_marked(self.mark)


@pytest.fixture
def host_run(tmp_path, broker):
    runs = []

    def start(config, env=None):
        run = HostRun(tmp_path, broker.port, config, env)
        runs.append(run)
        run.wait_ready()
        return run

    start.broker = broker
    yield start
    for run in runs:
        run.stop()


def documented_ids():
    """Every element id gateway/web_page.py's docstring promises, for the module at 0x50 and channels 1, 2."""
    import re

    from gateway import web_page

    doc = web_page.__doc__
    table = doc[doc.index("Element ids"):doc.index("A value the gateway")]
    ids = []
    for line in table.splitlines():
        if not line.startswith("    ") or "setup mode only" in line:
            continue
        for name in re.split(r"\s{2,}", line.strip())[0].split(", "):
            names = [name.replace("<key>", KEY)]
            if "<n>" in name:
                names = [n.replace("<n>", str(ch)) for n in names for ch in CHANNELS]
            if "<part>" in name:
                names = [n.replace("<part>", part) for n in names for part in PARTS]
            ids += names
    return ids


def _live_ids():
    ids = ["u-" + KEY, "f-" + KEY, "st-" + KEY]
    for ch in CHANNELS:
        ids += ["%s-%s-%d" % (prefix, KEY, ch) for prefix, _, _ in LIVE]
    return ids


def _matches(shown, module):
    """Whether the page's texts are this MQTT state's module as the page rounds it ("-" for a
    value the state leaves out)."""
    pairs = [("u-" + KEY, module.get("voltage"), 1), ("f-" + KEY, module.get("frequency"), 2)]
    for ch in CHANNELS:
        pairs += [("%s-%s-%d" % (prefix, KEY, ch), (module.get(field) or [None] * len(CHANNELS))[ch - 1], digits)
                  for prefix, field, digits in LIVE]
    for name, value, digits in pairs:
        text = shown[name]
        if value is None:
            if text != "-":
                return False
        elif text in (None, "-") or abs(float(text) - value) > 0.5 * 10 ** -digits + 1e-9:
            return False
    return True


def _shows_the_mqtt_state(driver, watcher, wanted, what, timeout_s=60):
    """Wait until the page's values equal one of the latest MQTT states whose module 0x50 is
    ``wanted`` (a predicate): the page shows what the gateway publishes, field by field."""
    def shown():
        now = texts(driver, _live_ids())
        for state in watcher.json_on("rbamp/%s/state" % DEVICE)[-15:]:
            module = state.get("modules", {}).get("0x50")
            if module and wanted(module) and _matches(now, module):
                return now
        return None
    return wait_until(shown, timeout_s, "the page to show the MQTT state with %s" % what)


def _mains(volts):
    return lambda module: module.get("voltage") is not None and (module["voltage"] > 200 if volts else
                                                                 module["voltage"] == 0)


def _watch_conn(driver):
    """Every text the connection indicator shows from now on, kept in the page."""
    driver.execute_script(
        "window.connSeen=[document.getElementById('conn').textContent];"
        "new MutationObserver(function(){window.connSeen.push(document.getElementById('conn').textContent);})"
        ".observe(document.getElementById('conn'),{childList:true,characterData:true,subtree:true});")


def _conn_seen(driver):
    return driver.execute_script("return window.connSeen || []")


def test_the_page_shows_the_live_values_and_totals_the_gateway_publishes(browser, host_run, tmp_path):
    """Live U, f, I, P, PF, Q over the event stream equal the MQTT state; the energy table's total
    equals the MQTT totals; the day column's head follows the gateway's energy period; the status
    names the module; with EventSource taken away the page polls and still shows the MQTT state."""
    run = host_run(base_config())
    watcher = Watcher(host_run.broker.port, topics=("rbamp/%s/#" % DEVICE,), client_id="page-watcher")
    try:
        browser.get(run.url)
        wait_for_live(browser)
        _shows_the_mqtt_state(browser, watcher, _mains(True), "mains")
        assert texts(browser, ["conn"])["conn"] == "live"
        promised = documented_ids()
        assert len(promised) > 60 and "import-last-month-%s-2" % KEY in promised, promised
        missing = [name for name, text in texts(browser, promised).items() if text is None]
        assert missing == [], missing  # the ids the docstring lists for tests and scripts exist

        # energy: the page's kWh (3 decimals) are the retained totals' Wh
        def totals_shown():
            shown = texts(browser, ["%s-total-%s-%d" % (d, KEY, ch) for d in ("import", "export") for ch in CHANNELS])
            for totals in watcher.json_on("rbamp/%s/totals" % DEVICE)[-5:]:
                wh = totals.get("0x50")
                if wh and all(abs(float(shown["%s-total-%s-%d" % (d, KEY, ch)]) * 1000 - wh["%s_wh" % d][ch - 1])
                              <= 0.5 + 1e-6 for d in ("import", "export") for ch in CHANNELS):
                    return shown
            return None
        shown = wait_until(totals_shown, 60, "the page's totals to equal the MQTT totals")
        assert float(shown["import-total-%s-1" % KEY]) >= 0
        status = texts(browser, ["today-head-" + KEY, "address-" + KEY, "label-" + KEY, "variant-" + KEY,
                                 "protocol-" + KEY, "error-" + KEY, "device-id", "mqtt"])
        period = run.get("/api/state")["energy_period"]  # the PC's clock is trusted: "day" at once
        assert status["today-head-" + KEY] == {"day": "today", "since_boot": "since boot"}[period], (period, status)
        assert status["address-" + KEY] == "0x50" and status["label-" + KEY] == "house"
        assert status["variant-" + KEY] == "UI2" and status["error-" + KEY] == "ok"
        assert status["device-id"] == DEVICE and status["mqtt"].startswith("connected"), status

        # the mains collapse and come back: the page follows the published state over the stream
        run.control("mains 0x50 off")
        shown = _shows_the_mqtt_state(browser, watcher, _mains(False), "no mains")
        assert shown["u-" + KEY] == "0.0" and shown["p-%s-1" % KEY] in ("0.0", "-"), shown
        run.control("mains 0x50 on")
        _shows_the_mqtt_state(browser, watcher, _mains(True), "the mains back")
        assert texts(browser, ["conn"])["conn"] == "live"

        # the docs' pictures, from this gateway
        for path in capture(browser, run.url, str(tmp_path)):
            with open(path, "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 20000, path

        # no EventSource (an old browser, or a proxy that breaks streams): polling every 5 s
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": "delete window.EventSource;"})
        browser.get(run.url)
        wait_until(lambda: texts(browser, ["conn"])["conn"] == "polling", 30, "the page to poll")
        _shows_the_mqtt_state(browser, watcher, _mains(True), "mains, polled")
        run.control("mains 0x50 off")
        _shows_the_mqtt_state(browser, watcher, _mains(False), "no mains, polled")
        assert texts(browser, ["conn"])["conn"] == "polling"
    finally:
        watcher.stop()


def _open_settings(driver, run):
    driver.get(run.url + "#settings")
    wait_until(lambda: driver.find_element("id", "cfg-text").get_attribute("value").strip(), 30,
               "config.json in the editor")
    return json.loads(driver.find_element("id", "cfg-text").get_attribute("value"))


def _log_in(driver, password):
    field = driver.find_element("id", "login-password")
    field.clear()
    field.send_keys(password)
    driver.find_element("id", "login-button").click()


def _edit(driver, document):
    """The editor's text replaced as a paste does (the page sees an input event)."""
    driver.execute_script("var t=document.getElementById('cfg-text');t.value=arguments[0];"
                          "t.dispatchEvent(new Event('input'));", json.dumps(document, indent=2))


def test_a_bad_setting_shows_the_gateways_named_error_and_changes_nothing(browser, host_run):
    """Secrets arrive blank with a note; the save button waits for a login; a wrong password is
    refused with the gateway's words; mqtt.port 70000 is refused with the board's own checker
    message naming mqtt.port, the key is selected in the editor, config.json keeps every byte and
    the gateway runs on (same process)."""
    from gateway.config import ConfigError, parse_config

    run = host_run(base_config())
    document = _open_settings(browser, run)
    assert document["web"]["password"] == "" and document["mqtt"]["port"] == host_run.broker.port
    shown = texts(browser, ["cfg-secrets", "cfg-source"])
    assert "web.password" in shown["cfg-secrets"] and "blank secret keeps the stored value" in shown["cfg-secrets"]
    assert shown["cfg-source"].startswith("In use: config.json"), shown
    save = browser.find_element("id", "cfg-save")
    assert not save.is_enabled() and browser.find_element("id", "login-form").is_displayed()
    assert not browser.find_element("id", "cfg-readonly").is_displayed()

    _log_in(browser, "not-the-password")
    refused = wait_until(lambda: texts(browser, ["login-error"])["login-error"], 30, "the refused login")
    assert not save.is_enabled(), refused
    _log_in(browser, PASSWORD)
    wait_until(save.is_enabled, 30, "the login")
    assert not browser.find_element("id", "login-form").is_displayed()

    before, pid = run.config_bytes(), run.gateway_pid()
    document["mqtt"]["port"] = 70000
    _edit(browser, document)
    save.click()
    error = wait_until(lambda: texts(browser, ["cfg-error"])["cfg-error"], 30, "the gateway's error")
    stored = json.loads(before)
    stored["mqtt"]["port"] = 70000
    with pytest.raises(ConfigError) as expected:
        parse_config(stored)
    assert expected.value.key == "mqtt.port"
    assert error == "%s (key: mqtt.port)" % expected.value, error  # the board's own message, word for word
    marked = browser.execute_script("var t=document.getElementById('cfg-text');"
                                    "return [t.className,t.value.slice(t.selectionStart,t.selectionEnd),"
                                    "t.value.lastIndexOf('\"mqtt\"',t.selectionStart)>=0];")
    assert marked == ["err", '"port"', True], marked  # the port inside "mqtt" is selected
    assert texts(browser, ["cfg-status"])["cfg-status"] == ""
    assert run.config_bytes() == before and run.gateway_pid() == pid
    assert run.answers() is not None and "config changed" not in run.log()


def test_a_good_setting_applies_after_the_restart_the_page_waits_for(browser, host_run):
    """publish.interval_s and the module's label changed from the page: "saved, restarting", the
    connection indicator goes to "connection lost" and back to "live", the editor reloads with the
    new values, the live card has the new label, config.json has them and kept the blank password
    (logging in again with it works), and the gateway restarted for it (a new process). Logging out
    locks the editor again; the restart button restarts the gateway and the page waits for it."""
    run = host_run(base_config())
    pid = run.gateway_pid()
    document = _open_settings(browser, run)
    _log_in(browser, PASSWORD)
    save = browser.find_element("id", "cfg-save")
    wait_until(save.is_enabled, 30, "the login")
    _watch_conn(browser)
    document["publish"]["interval_s"] = 7
    document["modules"][0]["label"] = "garage"
    _edit(browser, document)
    save.click()
    wait_until(lambda: texts(browser, ["cfg-status"])["cfg-status"].startswith("Saved, restarting"), 30,
               "saved, restarting")
    wait_until(lambda: texts(browser, ["cfg-status"])["cfg-status"].startswith("Saved. The gateway is back"), 120,
               "the page to see the gateway back")
    assert run.gateway_pid() != pid
    assert "config changed" in run.log()
    wait_until(lambda: json.loads(browser.find_element("id", "cfg-text").get_attribute("value"))["publish"]
               ["interval_s"] == 7, 30, "the editor to show the saved value")
    assert texts(browser, ["cfg-error"])["cfg-error"] == ""
    written = json.loads(run.config_bytes())
    assert written["publish"]["interval_s"] == 7 and written["modules"][0]["label"] == "garage"
    assert written["web"]["password"] == PASSWORD  # blank in the page: the stored one kept
    served = run.get("/api/config")
    assert served["config"]["publish"]["interval_s"] == 7 and served["config"]["web"]["password"] == ""

    browser.execute_script("location.hash=''")
    wait_until(lambda: texts(browser, ["label-" + KEY, "conn"]) == {"label-" + KEY: "garage", "conn": "live"}, 60,
               "the running gateway's new label on a live page")
    seen = _conn_seen(browser)
    assert "connection lost" in seen and seen[-1] == "live", seen

    # the session died with the old process; the kept password still opens the settings
    browser.execute_script("location.hash='#settings'")
    browser.refresh()
    wait_until(lambda: browser.find_element("id", "login-form").is_displayed(), 30, "the login form")
    _log_in(browser, PASSWORD)
    wait_until(browser.find_element("id", "cfg-save").is_enabled, 30, "the login with the kept password")

    # log out and in again, then the restart button: the same wait for the gateway to come back
    browser.find_element("id", "logout-button").click()
    wait_until(lambda: browser.find_element("id", "login-form").is_displayed(), 30, "the login form after logout")
    assert not browser.find_element("id", "cfg-save").is_enabled()
    _log_in(browser, PASSWORD)
    restart = browser.find_element("id", "restart-button")
    wait_until(restart.is_enabled, 30, "the login")
    pid = run.gateway_pid()
    restart.click()
    wait_until(lambda: texts(browser, ["cfg-status"])["cfg-status"].startswith("Restarted. The gateway is back"), 120,
               "the page to see the gateway back after its restart")
    assert run.gateway_pid() != pid


def test_without_a_password_the_settings_are_read_only_and_the_page_fits_a_phone(browser, host_run):
    """No web.password: the editor shows the document and says how to allow changes; nothing to
    log in to, no save. On a phone's screen (390 px) the page is one column that never scrolls
    sideways (wide tables scroll inside their card), and what is tapped is at least 44 px high."""
    config = base_config()
    del config["web"]
    run = host_run(config)
    browser.set_window_size(390, 844)
    browser.get(run.url)
    wait_for_live(browser)
    layout = browser.execute_script(
        "var d=document.documentElement,cards=document.querySelectorAll('.card');"
        "return {over:d.scrollWidth-window.innerWidth,width:window.innerWidth,"
        "lefts:Array.prototype.map.call(cards,function(c){return c.getBoundingClientRect().left;}),"
        "low:Array.prototype.filter.call(document.querySelectorAll('nav a,button,input'),function(e){"
        "var r=e.getBoundingClientRect();return r.height>0&&r.height<44;}).length};")
    assert layout["width"] <= 400 and layout["over"] <= 0, layout
    assert len(layout["lefts"]) >= 4 and len(set(layout["lefts"])) == 1, layout  # one column
    assert layout["low"] == 0, layout
    document = _open_settings(browser, run)
    assert document["modules"][0]["label"] == "house"
    note = browser.find_element("id", "cfg-readonly")
    assert note.is_displayed() and "set web.password in config.json" in note.text
    assert not browser.find_element("id", "login-form").is_displayed()
    assert not browser.find_element("id", "cfg-save").is_enabled()


def _free_udp_port():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_setup_page_saves_a_network_and_the_gateway_restarts_onto_it(browser, host_run):
    """`make run SETUP=1` (the setup button held at the first boot) with three networks in the scan:
    the main page says setup mode and links to /setup; the setup page lists the networks strongest
    first, a bad broker port is refused with the gateway's message and nothing is written; a
    network picked from the list with its password is saved, the gateway restarts onto it (a new
    process, setup mode closed) and config.json has the network, the password and the broker."""
    networks = [{"ssid": "Attic", "rssi": -81, "secure": True}, {"ssid": "HomeNet", "rssi": -48, "secure": True},
                {"ssid": "Cafe", "rssi": -67, "secure": False}]
    run = host_run(base_config(), env={"SETUP": "1", "DNS_PORT": str(_free_udp_port()),
                                       "RBAMP_HOST_SCAN": json.dumps(networks)})
    broker_port = host_run.broker.port
    browser.get(run.url)
    link = wait_until(lambda: texts(browser, ["setup-link"])["setup-link"], 30, "the setup mode banner")
    assert link == "choose a Wi-Fi network" and browser.find_element("id", "banner").is_displayed()
    browser.find_element("id", "setup-link").click()
    wait_until(lambda: browser.current_url == run.url + "setup", 30, "the setup page")
    listed = wait_until(lambda: [e.get_attribute("value") for e in browser.find_elements("name", "pick")], 30,
                        "the scanned networks")
    assert listed == ["HomeNet", "Cafe", "Attic"], listed  # strongest first
    assert browser.find_element("id", "mqtt_host").get_attribute("value") == "127.0.0.1"
    assert browser.find_element("id", "mqtt_port").get_attribute("value") == str(broker_port)

    before, pid = run.config_bytes(), run.gateway_pid()
    browser.find_elements("name", "pick")[0].click()
    assert browser.find_element("id", "ssid").get_attribute("value") == "HomeNet"
    browser.find_element("id", "password").send_keys("home-wifi-secret")
    port = browser.find_element("id", "mqtt_port")
    port.clear()
    port.send_keys("70000")
    browser.find_element("id", "save").click()
    refused = wait_until(lambda: texts(browser, ["msg"])["msg"] if "70000" in texts(browser, ["msg"])["msg"] else None,
                         30, "the refused port")
    assert "mqtt.port" in refused and browser.switch_to.active_element.get_attribute("id") == "mqtt_port", refused
    assert run.config_bytes() == before and run.gateway_pid() == pid

    port.clear()
    port.send_keys(str(broker_port))
    browser.find_element("id", "save").click()
    saved = wait_until(lambda: texts(browser, ["msg"])["msg"].startswith("Saved.") and texts(browser, ["msg"])["msg"],
                       30, "saved")
    assert "joins HomeNet" in saved, saved
    wait_until(lambda: (run.data / "gateway.pid").exists() and run.gateway_pid() != pid, 60, "the restart")
    back = run.wait_ready()
    assert back["wifi"]["mode"] == "station" and back["wifi"]["ssid"] == "HomeNet", back["wifi"]
    assert run.get("/api/setup/networks")["active"] is False
    written = json.loads(run.config_bytes())
    assert written["wifi"]["ssid"] == "HomeNet" and written["wifi"]["password"] == "home-wifi-secret"
    assert written["mqtt"]["host"] == "127.0.0.1" and written["mqtt"]["port"] == broker_port
    assert written["web"]["password"] == PASSWORD and written["modules"][0]["label"] == "house"
