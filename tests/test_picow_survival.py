"""What a real installation goes through, on our Pico W image in the emulated RP2040: the module
unpowered at boot and plugged later, a module reboot, Wi-Fi configured on a chip whose radio does
not start, and the heap over ten minutes of metering. Waits are console markers with
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


def test_heap_after_boot_and_after_ten_minutes_of_metering(tmp_path):
    result = picow.run(tmp_path, files=gateway_files(), sims=[SIM], timeout_s=700, wall_timeout_s=1200,
                       steps=[{"wait": UP}, {"wait": "health: uptime 6"}, {"send": "\x03"}, {"wait": ">>> "}])
    _ok(result)
    free = [int(x) for x in re.findall(r"health: uptime \d+ s, heap free (\d+) B", result.console)]
    assert len(free) == 2, result.explain()
    after_boot, after_ten_minutes = free
    assert after_boot >= 100 * 1024 and after_ten_minutes >= 100 * 1024, free
    assert after_ten_minutes >= after_boot - 2048, free  # nothing piles up
    print("heap free: %d B 30 s after boot, %d B after 10 min (%.0f s wall)" % (after_boot, after_ten_minutes,
                                                                               result.wall_s))
