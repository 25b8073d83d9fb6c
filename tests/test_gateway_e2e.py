"""End-to-end: the real main.py under MicroPython (host profile: a simulated UI2 module in real
time), a real mosquitto, and paho-mqtt as the independent subscriber. Host-side tests."""

import json
import os

import pytest
from support_e2e import Gateway, Watcher, base_config, wait_until

SECRET = "hunter2-secret"
BASE = "rbamp/e2e-gw/"




@pytest.fixture
def run(tmp_path):
    started = []

    def start(config=None, config_text=None, name="gw", **env):
        gateway = Gateway(str(tmp_path / name), config=config, config_text=config_text, env=env).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def _latest(watcher, suffix):
    values = watcher.json_on(BASE + suffix)
    return values[-1] if values else None


def _totals_list(totals):
    entry = totals["0x50"]
    return entry["import_wh"] + entry["export_wh"]


def test_discovery_state_and_totals_arrive(broker, run):
    watcher = Watcher(broker.port)
    gateway = run(base_config(broker.port))
    watcher.wait_for(lambda: watcher.on(BASE + "availability") and watcher.on(BASE + "availability")[-1][1] == b"online",
                     20, "online")
    watcher.wait_for(lambda: _latest(watcher, "totals"), 20, "totals")
    watcher.wait_for(lambda: _latest(watcher, "state"), 10, "state")
    configs = [(t, json.loads(p)) for t, p, retain, _ in watcher.messages if t.startswith("homeassistant/") and t.endswith("/config")]
    assert len(configs) >= 10, [t for t, _ in configs]
    unique_ids = set()
    for topic, payload in configs:
        for field in ("uniq_id", "stat_t", "avty", "dev", "name"):
            assert field in payload, (topic, field)
        assert payload["dev"]["ids"] and payload["uniq_id"] not in unique_ids
        unique_ids.add(payload["uniq_id"])
        assert SECRET not in json.dumps(payload)
    energy = [p for _, p in configs if p.get("dev_cla") == "energy"]
    lifetime = [p for p in energy if p["stat_cla"] == "total_increasing"]
    assert len(lifetime) == 4 and not any("lrst_val_tpl" in p for p in lifetime)  # the Energy dashboard's
    # today and yesterday per channel and direction: reset daily, so "total" with its last reset
    daily = [p for p in energy if p["stat_cla"] == "total"]
    assert len(daily) == 8 and all(p["lrst_val_tpl"] and p["stat_t"].endswith("energy_day") for p in daily), daily
    assert len(energy) == 12
    late = Watcher(broker.port, topics=("homeassistant/#",), client_id="e2e-late")  # retained copies
    late.wait_for(lambda: len(late.messages) >= len(configs), 10, "retained discovery")
    assert all(retain for _, _, retain, _ in late.messages)
    late.stop()
    state = _latest(watcher, "state")["modules"]["0x50"]
    assert state["status"] == "ok" and 200 < state["voltage"] < 260 and len(state["power"]) == 2
    assert SECRET not in gateway.log()
    # the device block: a manufacturer, and a name that does not repeat the entity ids' prefix
    assert all(p["dev"]["name"] == "e2e-gw" and p["dev"]["mf"] == "rbAmp" for _, p in configs)
    diagnostics = dict((p["uniq_id"], p) for _, p in configs if p.get("ent_cat") == "diagnostic")
    assert sorted(diagnostics) == sorted("e2e-gw_" + name for name in (
        "uptime", "wifi_rssi", "ip", "firmware", "journal", "safe_mode", "config_error", "50_status"))
    gateway_state = _latest(watcher, "state")
    assert gateway_state["firmware"] and gateway_state["journal"] == "ok" and gateway_state["config_error"] is None
    assert gateway_state["wifi_rssi"] is None and gateway_state["ip"] is None  # a PC: not known
    watcher.stop()


def test_no_payload_carries_a_negative_zero(broker, run):
    import re

    # at 07:00 the simulated house draws while its PV channel rests around zero: the -0.0 of the
    # issue came from there
    watcher = Watcher(broker.port)
    run(base_config(broker.port))
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "period")) >= 3, 30, "three periods")
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "state")) >= 5, 30, "five states")
    negative_zero = re.compile(rb"-0\.0+(?![0-9])")
    payloads = [payload for topic, payload, _, _ in watcher.messages if topic.startswith(BASE)]
    assert not [p for p in payloads if negative_zero.search(p)]
    watcher.stop()


def _retained_under(port, pattern):
    """The retained messages on a topic filter as a fresh subscriber gets them: a marker message
    published after the subscription comes back after every retained one."""
    marker = "e2e-marker/retained"
    late = Watcher(port, topics=(pattern, marker), client_id="e2e-retained")
    try:
        late.client.publish(marker, b"end")
        late.wait_for(lambda: late.on(marker), 10, "the marker")
        return [(t, p) for t, p, retain, _ in late.messages if t != marker and p]
    finally:
        late.stop()


def test_configs_of_an_old_device_id_and_a_removed_module_are_removed(broker, run):
    watcher = Watcher(broker.port, topics=("homeassistant/#",))
    two = base_config(broker.port, device_id="e2e-old",
                      modules=[{"address": 80, "label": "house"}, {"address": 81, "label": "pv"}])
    first = run(two, name="gw")
    watcher.wait_for(lambda: len(_retained_under(broker.port, "homeassistant/+/e2e-old/#")) >= 7 + 2 * (1 + 2 + 12),
                     30, "the first boot's configs of both modules")
    old = [t for t, _ in _retained_under(broker.port, "homeassistant/+/e2e-old/#")]
    assert "homeassistant/sensor/e2e-old/51_power_1/config" in old
    first.stop()
    # the device id changes in config.json and module 0x51 leaves it
    one = base_config(broker.port, device_id="e2e-new", modules=[{"address": 80, "label": "house"}])
    run(one, name="gw")
    watcher.wait_for(lambda: len([1 for t, p, _, _ in watcher.messages if not p and t in old]) == len(old),
                     30, "empty configs for every old topic")
    assert _retained_under(broker.port, "homeassistant/+/e2e-old/#") == []
    new = [t for t, _ in _retained_under(broker.port, "homeassistant/+/e2e-new/#")]
    assert "homeassistant/sensor/e2e-new/50_power_1/config" in new
    assert not [t for t in new if "/51_" in t]
    watcher.stop()


def test_kill_9_then_restart_keeps_totals_monotonic(broker, run):
    watcher = Watcher(broker.port)
    config = base_config(broker.port)
    gateway = run(config)
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "totals")) >= 4, 30, "four totals")
    gateway.kill9()
    watcher.wait_for(lambda: watcher.on(BASE + "availability")[-1][1] == b"offline", 20, "the last will")
    last = _totals_list(_latest(watcher, "totals"))
    seen = len(watcher.json_on(BASE + "totals"))
    gateway.start()
    watcher.wait_for(lambda: watcher.on(BASE + "availability")[-1][1] == b"online", 20, "online again")
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "totals")) > seen + 1, 30, "totals after the restart")
    after = _totals_list(watcher.json_on(BASE + "totals")[seen + 1])
    for before_wh, after_wh in zip(last, after):
        assert after_wh >= before_wh, (last, after)
        # the commit policy's 5 Wh step, its headroom and one 2 s period at a few kW
        assert after_wh - before_wh <= 5.0 + 1.1 + 5.0, (last, after)
    watcher.stop()


def test_broker_outage_loses_no_period_record_and_metering_goes_on(broker, run):
    watcher = Watcher(broker.port, topics=(BASE + "period", BASE + "state"), client_id="e2e-persistent", clean_session=False)
    gateway = run(base_config(broker.port))
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "period")) >= 2, 30, "periods")
    before = _latest(watcher, "state")
    broker.stop()
    wait_until(lambda: "mqtt" in gateway.log() and ("lost" in gateway.log() or "refused" in gateway.log() or "failed" in gateway.log()),
               20, "the gateway noticing the outage")
    outage_start = len(watcher.json_on(BASE + "period"))
    import time

    time.sleep(0)  # nothing to wait for: the outage lasts while we check the journal grows
    wait_until(lambda: _records_in_backlog(gateway) >= 4, 30, "four periods kept in the backlog")
    broker.start()
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "period")) >= outage_start + 4, 60, "the backlog delivered")
    watcher.wait_for(lambda: _latest(watcher, "state")["uptime_ms"] > before["uptime_ms"] + 5000, 30, "fresh state")
    seqs = [record["seq"] for record in watcher.json_on(BASE + "period")]
    assert seqs == sorted(set(seqs)), seqs  # in order, no duplicates
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), seqs  # none lost
    after = _latest(watcher, "state")
    rate = (after["samples"] - before["samples"]) / ((after["uptime_ms"] - before["uptime_ms"]) / 200)
    assert rate >= 0.95, (before, after, rate)
    watcher.stop()


def _records_in_backlog(gateway):
    path = os.path.join(gateway.data_dir, "backlog.bin")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return 0
    return data.count(b'"seq"')


def test_a_broker_that_never_answers_is_timed_out_and_backed_off(broker, run):
    watcher = Watcher(broker.port)
    gateway = run(base_config(broker.port))
    watcher.wait_for(lambda: _latest(watcher, "state"), 30, "state")
    before = _latest(watcher, "state")
    watcher.stop()
    broker.pause()  # TCP still accepts; nothing answers
    try:
        wait_until(lambda: len(_retry_delays(gateway.log())) >= 4, 60, "timeouts and backoff in the log")
    finally:
        broker.resume()
    delays = _retry_delays(gateway.log())
    assert "no CONNACK within 2000 ms" in gateway.log()  # each attempt bounded by mqtt.timeout_s
    assert delays[-1] > delays[0] and max(delays) <= 60000, delays  # exponential, capped
    watcher = Watcher(broker.port)
    watcher.wait_for(lambda: _latest(watcher, "state") and _latest(watcher, "state")["uptime_ms"] > before["uptime_ms"] + 10000,
                     90, "the gateway back with fresh state")
    after = _latest(watcher, "state")
    rate = (after["samples"] - before["samples"]) / ((after["uptime_ms"] - before["uptime_ms"]) / 200)
    assert rate >= 0.95, (before, after, rate)
    watcher.stop()


def _retry_delays(log):
    import re

    return [int(ms) for ms in re.findall(r"retrying in (\d+) ms", log)]


BAD_CONFIGS = (
    ("not json", "{\"mqtt\": {\"host\": ", "config.json"),
    ("wrong type", {"mqtt": {"host": "127.0.0.1", "port": "1883x", "password": SECRET}}, "mqtt.port"),
    ("out of range", {"mqtt": {"host": "127.0.0.1", "password": SECRET}, "period_s": 0}, "period_s"),
    ("missing required", {"mqtt": {"port": 1883, "password": SECRET}}, "mqtt.host"),
    ("unknown key", {"mqtt": {"host": "127.0.0.1", "password": SECRET}, "perod_s": 60}, "perod_s"),
)


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_gives_a_clear_message_and_a_safe_mode_that_meters_and_persists(case, run, tmp_path):
    name, content, key = case
    text = content if isinstance(content, str) else json.dumps(content)
    # at noon the simulated PV exports from the first sample on: energy to persist right away
    gateway = run(config_text=text, name=name.replace(" ", "_"), RBAMP_SIM_HOUR="12")
    wait_until(lambda: "safe mode" in gateway.log() and "up:" in gateway.log(), 20, "safe mode start")
    wait_until(lambda: os.path.exists(os.path.join(gateway.data_dir, "sim_truth.json")), 10, "the simulator running")
    log = gateway.log()
    assert key in log, log
    assert SECRET not in log
    assert gateway.proc.poll() is None  # no crash loop
    gateway.stop()  # orderly: the shutdown commit persists the energy metered in safe mode
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
    from gateway.flashdev import BlockFilesDevice
    from gateway.store import EnergyStore

    device = BlockFilesDevice(os.path.join(gateway.data_dir, "energy.d"), 4096, 16)
    state = EnergyStore(device, channels=2).load()
    device.close()
    assert state is not None and state.totals[3] > 0, state  # ch1 export, metered in safe mode


def test_module_unplugged_and_rebooted_is_reported_and_energy_stays_with_the_truth(broker, run):
    watcher = Watcher(broker.port)
    gateway = run(base_config(broker.port))
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "period")) >= 2, 30, "periods")
    gateway.control("unplug 0x50")
    watcher.wait_for(lambda: _latest(watcher, "state")["modules"]["0x50"]["status"] == "unreachable", 20, "unreachable")
    gateway.control("plug 0x50")
    watcher.wait_for(lambda: _latest(watcher, "state")["modules"]["0x50"]["status"] == "ok", 30, "recovered")
    periods_before = len(watcher.json_on(BASE + "period"))
    gateway.control("reboot 0x50")
    watcher.wait_for(lambda: any(r["modules"].get("0x50", {}).get("rebooted") for r in watcher.json_on(BASE + "period")[periods_before:]),
                     30, "a period flagged rebooted")
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "period")) >= periods_before + 4, 30, "more periods")
    record = watcher.json_on(BASE + "period")[-1]
    truth = gateway.truth()["0x50"]
    got = record["modules"]["0x50"]["import_wh"][0]
    expected = truth["import_wh"][0]
    # the truth runs up to ~1 s past the record; the module lost its RAM twice (unplug, reboot)
    assert abs(got - expected) <= 0.03 * expected + 4.0, (got, expected)
    assert "unreachable" in gateway.log() and "is back" in gateway.log() and "rebooted" in gateway.log()
    watcher.stop()


def test_a_journal_file_holding_foreign_data_is_kept_aside_and_a_new_journal_started(broker, run, tmp_path):
    data_dir = tmp_path / "gw"
    data_dir.mkdir()
    foreign = os.urandom(16 * 4096)  # e.g. a filesystem image left where the journal goes
    (data_dir / "energy.img").write_bytes(foreign)  # an earlier version's single journal file
    watcher = Watcher(broker.port)
    gateway = run(base_config(broker.port), name="gw")
    watcher.wait_for(lambda: _latest(watcher, "totals"), 20, "totals")
    kept = b"".join((data_dir / "energy.d.foreign" / str(b) / "b").read_bytes() for b in range(16))
    assert kept == foreign and not (data_dir / "energy.img").exists()
    assert "foreign data" in gateway.log() and "Traceback" not in gateway.log()
    gateway.stop()
    restarted = run(base_config(broker.port), name="gw")  # the new journal loads: no second reclaim
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "totals")) >= 2, 20, "totals after restart")
    assert restarted.log().count("foreign data") == 1
    watcher.stop()
