"""A restart asked for by the web page (settings saved, setup saved, the restart button): the
energy is committed first, the board resets, and the next boot starts from those totals. The
whole gateway on virtual time against a simulated module (tests/support_gateway.py)."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

from rbampsim import loads
from support_gateway import Rig, boot, config, constant, journal


def test_a_requested_restart_commits_the_energy_then_resets_the_board():
    # 2 kW until 240 s, then nothing: by the end every joule was latched into the totals
    rig = Rig("restart", [("UI1", 0x04, 0x50, loads.Schedule([(0, [2000.0]), (240, [0.0])]))])
    cfg = config([{"address": 0x50}], period_s=60)
    seen = {}

    async def during(gateway):
        seen["gateway"] = gateway
        await rig.clock.asleep_ms(150000)  # mid-period
        gateway.request_restart("settings saved")
        gateway.request_restart("asked twice")  # one restart only
        await rig.clock.asleep_ms(10000)
        seen["not_reset"] = True

    try:
        boot(rig, cfg, 0, during)
    except SystemExit as exc:
        seen["exit"] = exc.args[0] if exc.args else None
    assert "not_reset" not in seen, seen
    assert seen["exit"] == 3, seen  # the sim board's reset
    gateway = seen["gateway"]
    assert journal(rig).totals[:2] == gateway.metering.totals()[:2]  # nothing left uncommitted
    text = gateway.log.text()
    assert "restarting: settings saved" in text and "asked twice" not in text, text
    # the open period stayed in the module: the next boot takes it over and misses nothing
    boot(rig, cfg, 240)
    after = journal(rig).totals[0]
    truth = rig.truth_mwh(0x50, 0)
    window = 2000.0 * 0.2 / 3.6  # a restart is off by less than one sample window either way
    assert abs(after - truth) <= 2 * window, (after, truth)


def test_live_values_are_read_for_a_viewer_without_a_broker():
    rig = Rig("viewer", [("UI1", 0x04, 0x50, constant(1500.0))])
    cfg = config([{"address": 0x50}])
    seen = {"rounds": 0}

    async def during(gateway):
        await rig.clock.asleep_ms(3000)
        seen["unwatched"] = gateway.metering.modules[0].frequency
        gateway.viewers = 1
        for _ in range(3):
            await gateway.wait_live()
            seen["rounds"] += 1
        seen["watched"] = gateway.metering.modules[0].frequency
        seen["power"] = gateway.metering.modules[0].snapshot.power[0]

    boot(rig, cfg, 0, during)
    assert seen["unwatched"] is None, seen  # no broker, nobody watching: no live reads
    assert seen["rounds"] == 3
    assert 49.0 < seen["watched"] < 51.0, seen
    assert abs(seen["power"] - 1500.0) < 30.0, seen
