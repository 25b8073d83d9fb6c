"""What a real installation goes through, on our Pico W image in the emulated RP2040: the module
unpowered at boot and plugged later, a module reboot, Wi-Fi configured on a chip whose radio does
not start, and the heap over an hour of metering. Waits are console markers with
emulated-time deadlines."""

import re

import support_picow as picow
from test_picow_boot import CONFIG, SIM, UP, gateway_files


def _ok(result):
    assert result.exit == 0, result.explain()
    for bad in ("Traceback", "fatal error", "starting a new one"):
        assert bad not in result.console, result.explain()


def test_module_absent_at_boot_keeps_the_journal_and_is_begun_when_plugged(tmp_path):
    first = picow.run(tmp_path / "first", files=gateway_files(), sims=[SIM], timeout_s=40,
                      steps=[{"wait": UP}, {"run_s": 12}, {"send": "\x03"}, {"wait": ">>> "}])
    _ok(first)
    kept = first.journal_state()
    assert kept is not None and kept.layout == [(0x50, 2)] and kept.totals[0] > 0, kept

    # unpowered from the start (the event fires before the firmware's first bus transaction);
    # plugged 20 emulated seconds later
    second = picow.run(tmp_path / "second", flash=first.flash, image=False, sims=[SIM], timeout_s=60,
                       events=["0:unplug:0x50", "20:plug:0x50"],
                       steps=[{"wait": UP}, {"wait": "is back"}, {"run_s": 12}, {"send": "\x03"},
                              {"wait": ">>> "}])
    _ok(second)
    assert "module 0x50 does not answer" in second.console, second.explain()
    assert second.reboots == 0  # no reset loop while the module was away
    after = second.journal_state()
    assert after.layout == kept.layout, (after, kept)
    assert all(after.totals[i] >= kept.totals[i] for i in range(4)), (after, kept)
    assert after.totals[0] > kept.totals[0], (after, kept)  # metering went on once it was back


def test_a_module_reboot_is_seen_and_metering_goes_on(tmp_path):
    result = picow.run(tmp_path, files=gateway_files(), sims=[SIM], timeout_s=40,
                       events=["12:reboot:0x50"],
                       steps=[{"wait": UP}, {"wait": "rebooted"}, {"run_s": 10}, {"send": "\x03"},
                              {"wait": ">>> "}])
    _ok(result)
    assert result.reboots == 0
    state = result.journal_state()
    truth = result.truth["modules"][0]
    # the module lost its running period in the reboot; the gateway's own samples put it back
    assert abs(truth["import_wh"][0] * 1000 - state.totals[0]) <= 1000.0 * (CONFIG["period_s"] + 2) / 3.6, (
        state.totals, truth)


def test_wifi_configured_without_a_working_radio_never_stalls_metering(tmp_path):
    config = dict(CONFIG)
    config["wifi"] = {"ssid": "home", "password": "not-a-real-secret"}
    config["mqtt"] = {"host": "192.168.1.10"}
    result = picow.run(tmp_path, files=gateway_files(config), sims=[SIM], timeout_s=60,
                       steps=[{"wait": UP}, {"wait": "health: uptime"}, {"send": "\x03"}, {"wait": ">>> "}])
    _ok(result)
    assert "the Wi-Fi chip did not start" in result.console, result.explain()
    health = re.search(r"health: uptime (\d+) s, heap free \d+ B, used \d+ B, samples (\d+), periods (\d+)",
                       result.console)
    uptime_s, samples, periods = int(health.group(1)), int(health.group(2)), int(health.group(3))
    assert uptime_s >= 29 and samples >= 4 * uptime_s and periods >= uptime_s // CONFIG["period_s"] - 1, health.group(0)
    assert result.reboots == 0


def test_heap_after_boot_and_after_an_hour_of_metering(tmp_path):
    # an emulated hour: about 15 minutes of wall time, the longest test of the suite
    result = picow.run(tmp_path, files=gateway_files(), sims=[SIM], timeout_s=3700, wall_timeout_s=2400,
                       steps=[{"wait": UP}, {"wait": "health: uptime 36"}, {"send": "\x03"}, {"wait": ">>> "}])
    _ok(result)
    free = [int(x) for x in re.findall(r"health: uptime \d+ s, heap free (\d+) B", result.console)]
    assert len(free) == 7, result.explain()  # 30 s after boot, then every 10 minutes
    assert min(free) >= 100 * 1024, free
    # the log keeps its last 16 lines in RAM: the health lines take their places in that ring
    # (about 160 B each); beyond that nothing may pile up
    assert free[-1] >= free[0] - 6 * 256, free
    print("heap free: %d B 30 s after boot, %d B after an hour (%.0f s wall)" % (free[0], free[-1], result.wall_s))
