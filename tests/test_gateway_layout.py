"""The journal layout is decided from durable facts (config.json, the journal), never from who
answered at boot; a version 1 journal is mapped when the counts add up and left alone otherwise."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

from gateway.layout import (NO_POINT, RESUME_BYTES, clear_resume, durable_channels, journal_totals,
                            pack_resume, plan_layout, unpack_resume)
from gateway.store import JournalState
from support_gateway import Rig, boot, config, constant, journal
from test_store_layout import write_v1_journal


def _modules(*specs):
    out = []
    for spec in specs:
        address, channels = spec if isinstance(spec, tuple) else (spec, None)
        out.append({"address": address, "channels": channels})
    return out


def _v2(layout, totals, points=None):
    resume = bytearray(RESUME_BYTES * len(layout))
    for i in range(len(layout)):
        if points and points[i]:
            pack_resume(resume, i, *points[i])
        else:
            clear_resume(resume, i)
    return JournalState(9, totals, 40, 8, layout, bytes(resume))


def test_resume_points_round_trip_and_a_cleared_one_reads_as_none():
    buf = bytearray(2 * RESUME_BYTES)
    pack_resume(buf, 0, 200130, 86400 * 400, 0x1ABCDEF)
    clear_resume(buf, 1)
    assert unpack_resume(buf, 0) == (200130, 86400 * 400, 0x1ABCDEF)
    assert unpack_resume(buf, 1) is None and unpack_resume(None, 0) is None
    pack_resume(buf, 1, 200000, NO_POINT, 5)
    assert unpack_resume(buf, 1) is None  # the uptime that means "no point"


def test_durable_channels_come_from_the_journal_and_the_config_not_from_probing():
    state = _v2([(0x50, 2), (0x51, 1)], [1, 2, 3, 4, 5, 6], [(200000, 77, 9), None])
    channels, resume = durable_channels(_modules(0x50, 0x51, 0x52), state)
    assert channels == {0x50: 2, 0x51: 1} and resume == {0x50: (200000, 77, 9)}
    # the config's word wins; a resume point for another count is not used
    channels, resume = durable_channels(_modules((0x50, 3), 0x51), state)
    assert channels == {0x50: 3, 0x51: 1} and resume == {}
    assert journal_totals(state, 0x51, 1) == [5, 6] and journal_totals(state, 0x50, 3) is None


def test_an_absent_module_keeps_its_place_and_totals():
    state = _v2([(0x50, 2), (0x51, 1)], [10, 20, 30, 40, 50, 60])
    plan = plan_layout(_modules(0x50, 0x51), state, {0x50: 2, 0x51: 1})
    assert plan.layout == [(0x50, 2), (0x51, 1)] and not plan.changed and not plan.dropped
    assert plan.totals == {0x50: [10, 20, 30, 40], 0x51: [50, 60]}


def test_a_module_learned_at_this_boot_joins_without_touching_the_others():
    state = _v2([(0x50, 2)], [10, 20, 30, 40])
    plan = plan_layout(_modules(0x50, 0x51), state, {0x50: 2, 0x51: 3})
    assert plan.layout == [(0x50, 2), (0x51, 3)] and plan.changed and not plan.dropped
    assert plan.counters() == [10, 20, 30, 40, 0, 0, 0, 0, 0, 0]
    plan = plan_layout(_modules(0x50, 0x51), state, {0x50: 2})  # 0x51 never answered yet
    assert plan.layout == [(0x50, 2)] and plan.pending == [0x51] and not plan.changed


def test_only_the_config_drops_totals():
    state = _v2([(0x50, 2), (0x51, 1)], [10, 20, 30, 40, 50, 60])
    plan = plan_layout(_modules(0x50), state, {0x50: 2})
    assert plan.layout == [(0x50, 2)] and plan.dropped == ["module 0x51 is no longer in config.json"]
    plan = plan_layout(_modules((0x50, 1), 0x51), state, {0x50: 1, 0x51: 1})
    assert plan.layout == [(0x50, 1), (0x51, 1)] and 0x50 not in plan.totals
    assert "declares 1 channel(s) for module 0x50, the journal holds 2" in plan.dropped[0]


def test_a_version_1_journal_is_mapped_only_when_the_counts_add_up():
    v1 = JournalState(5, [1, 2, 3, 4, 5, 6], 12, 1)  # 3 channels, no layout
    plan = plan_layout(_modules(0x50, 0x51), v1, {0x50: 2, 0x51: 1})
    assert plan.totals == {0x50: [1, 2, 3, 4], 0x51: [5, 6]} and plan.changed and not plan.dropped
    # the old gateway wrote only the modules that answered then: 0x51 was away
    plan = plan_layout(_modules(0x50, 0x51), JournalState(5, [1, 2, 3, 4], 12, 1), {0x50: 2})
    assert plan.totals == {0x50: [1, 2, 3, 4]} and plan.pending == [0x51]
    # cannot tell which module the 3 channels belonged to while one is missing: leave it alone
    plan = plan_layout(_modules(0x50, 0x51), v1, {0x50: 1})
    assert plan.deferred and "0x51" in plan.deferred and not plan.dropped
    # everything answered and nothing adds up: the config changed; kept aside, not mapped
    plan = plan_layout(_modules(0x50), v1, {0x50: 1})
    assert plan.dropped and not plan.totals


def test_a_version_1_journal_waits_for_its_modules_and_is_then_upgraded():
    rig = Rig("v1-upgrade", [("UI2", 0x04, 0x50, constant(700.0, 300.0)), ("UI1", 0x04, 0x51, constant(400.0))])
    write_v1_journal(rig.flash, 30, lambda seq: [seq * 1000, 0, seq * 500, 0, seq * 200, 0])
    rig.sim(0x51).unplug()
    cfg = config([{"address": 0x50}, {"address": 0x51}])
    seen = {}

    async def during(gateway):
        await rig.clock.asleep_ms(130000)
        seen["held"] = gateway.metering.journal_hold
        seen["journal"] = journal(rig)
        rig.sim(0x51).plug()
        await rig.clock.asleep_ms(130000)

    gateway, log = boot(rig, cfg, 0, during)
    assert seen["held"] and seen["journal"].layout is None  # untouched while 0x51 was away
    after = journal(rig)
    assert after.layout == [(0x50, 2), (0x51, 1)]
    assert after.totals[0] > 30000 and after.totals[2] > 15000 and after.totals[4] > 6000, after
