"""The MQTT link's period records and the flash, against a real broker (mosquitto): records the
broker acknowledges at once are never written; a late acknowledgement, an outage, the end of a
session and an orderly stop put them in the durable backlog, and they arrive in order.

Flash writes are counted by the durable backlog (``Backlog.writes``: every record and mark it
appends) and by its file size. Every wait is on a condition with a deadline."""

RUNTIMES = ("cpython", "mpy64", "mpy32")
NEEDS_BROKER = True

import json

import support_broker as sb
import xrt

try:
    import asyncio
except ImportError:
    asyncio = None


def make_link(device, backlog, **cfg):
    sb.install_umqtt_names()
    from gateway.mqtt_link import MqttLink

    log = sb.ListLog()
    link = MqttLink(sb.mqtt_config(**cfg), device, log, rng_seed=5, backlog=backlog)
    link._backoff.base_ms = 200  # quick retries: the outage tests wait for reconnects
    link._backoff.reset()
    return link, log


def backlog_path(name):
    import os

    path = xrt.tmp_path(sb.unique(name) + ".bin")
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    return path


def seqs(observer, topic):
    return [json.loads(p)["seq"] for p in observer.payloads(topic)]


def durable_seqs(backlog):
    return [seq for seq, _ in backlog.pending()]


def record(seq):
    return {"seq": seq, "ts": 1700000000 + seq, "modules": {"0x50": {"valid": True, "avg_p": [123.45, 6.7]}}}


def test_online_with_fast_acks_no_period_record_is_written():
    from gateway.backlog import MARK_LEN, Backlog

    path = backlog_path("online")
    durable = Backlog(path)
    link, log = make_link(sb.unique("gw-online"), durable)
    period = link.topic("period")

    async def main():
        observer = sb.Observer(period, qos=1)
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.connected, 5000, "connected")
            for seq in range(1, 61):
                assert link.publish_period(record(seq))
                await sb.wait_until(lambda: len(observer.payloads(period)) == seq and len(link.backlog) == 0,
                                    5000, "record %d delivered and acknowledged" % seq, observer)
                assert durable.writes == 0 and durable.file_size() == 0, (seq, durable.writes)
        finally:
            await sb.finish(link, task, graceful=True)
            observer.close()
        assert seqs(observer, period) == list(range(1, 61))

    sb.run(main(), timeout_s=120)
    assert link.backlog.held == 60 and link.backlog.spilled == 0
    # the orderly stop wrote one mark: the numbering survives a restart
    assert durable.writes == 1 and durable.file_size() == MARK_LEN
    durable.close()
    again = Backlog(path)
    assert again.last_seq == 60 and len(again) == 0
    again.close()


def test_a_record_not_acknowledged_within_the_hold_time_is_written():
    from xrt.broker import broker_control

    from gateway.backlog import Backlog, StagedBacklog
    from rbamp.clock import SYSTEM_CLOCK

    durable = Backlog(backlog_path("late"))
    staged = StagedBacklog(durable, SYSTEM_CLOCK, hold_ms=200)
    link, log = make_link(sb.unique("gw-late"), staged, timeout_s=10)  # the session outlives the hold
    period = link.topic("period")

    async def main():
        observer = sb.Observer(period, qos=1)
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.connected, 5000, "connected")
            link.publish_period(record(1))
            await sb.wait_until(lambda: seqs(observer, period) == [1] and len(link.backlog) == 0, 5000,
                                "record 1", observer)
            assert durable.writes == 0
            broker_control("pause")  # no PUBACK while paused
            try:
                link.publish_period(record(2))
                await sb.wait_until(lambda: durable_seqs(durable) == [2], 5000, "record 2 on flash")
                assert link.connected and durable.writes == 1
            finally:
                broker_control("resume")
            await sb.wait_until(lambda: 2 in seqs(observer, period) and len(link.backlog) == 0, 15000,
                                "record 2 delivered and acknowledged", observer)
        finally:
            await sb.finish(link, task, graceful=True)
            observer.close()
        assert seqs(observer, period) == [1, 2]

    sb.run(main(), timeout_s=60)
    assert durable.writes == 2  # record 2 and the mark of its acknowledgement
    assert link.stats["failures"] == 0, link.stats
    durable.close()


def test_an_outage_and_a_restart_during_it_lose_nothing_and_keep_the_order():
    if sb.broker_kind() != "mosquitto":
        raise xrt.Skip("needs a broker that keeps sessions across a restart (mosquitto)")
    from xrt.broker import broker_control

    from gateway.backlog import Backlog

    path = backlog_path("outage")
    durable = Backlog(path)
    device = sb.unique("gw-outage")
    link, log = make_link(device, durable, timeout_s=1)
    period = link.topic("period")
    state = {}

    async def first_life():
        observer = sb.Observer(period, qos=1, persistent=True)
        state["observer"] = observer
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.connected, 5000, "connected")
            for seq in (1, 2, 3):
                link.publish_period(record(seq))
            await sb.wait_until(lambda: seqs(observer, period) == [1, 2, 3] and len(link.backlog) == 0, 5000,
                                "records 1-3", observer)
            assert durable.writes == 0
            observer.sync()  # else the broker may not have our PUBACK for 3 and deliver it again
            broker_control("stop")
            observer.close(abrupt=True)
            for seq in (4, 5):
                assert link.publish_period(record(seq))  # staged: the link has not noticed yet
            await sb.wait_until(lambda: not link.connected, 10000, "the link noticing the outage")
            assert durable_seqs(durable) == [4, 5]  # the session's end flushed the stage
            for seq in (6, 7, 8):
                assert link.publish_period(record(seq))  # offline: straight to flash
            assert durable_seqs(durable) == [4, 5, 6, 7, 8] and link.backlog.staged == 0
        finally:
            await sb.finish(link, task, graceful=True)

    async def second_life(link2, durable2):
        observer = state["observer"]
        observer.reconnect()  # before the link: the broker queues for a session it knows
        task = asyncio.create_task(link2.run())
        try:
            await sb.wait_until(lambda: len(seqs(observer, period)) >= 10, 30000, "records 4-10", observer)
            await sb.wait_until(lambda: len(durable2) == 0, 5000, "the backlog acknowledged")
        finally:
            await sb.finish(link2, task, graceful=True)
            observer.close()

    try:
        sb.run(first_life(), timeout_s=60)
        durable.close()
        # the gateway restarts while the broker is still away; it numbers on from the backlog
        durable2 = Backlog(path)
        assert durable_seqs(durable2) == [4, 5, 6, 7, 8] and durable2.last_seq == 8
        link2, log2 = make_link(device, durable2, timeout_s=1, base_topic=link.base_topic)
        for seq in (9, 10):
            assert link2.publish_period(record(seq))
    finally:
        broker_control("start")
    sb.run(second_life(link2, durable2), timeout_s=90)
    assert seqs(state["observer"], period) == list(range(1, 11))
    durable2.close()


def test_an_orderly_stop_writes_the_staged_records():
    from xrt.broker import broker_control

    from gateway.backlog import Backlog

    path = backlog_path("stop")
    durable = Backlog(path)
    link, log = make_link(sb.unique("gw-stop"), durable, timeout_s=1)

    async def main():
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.connected, 5000, "connected")
            broker_control("pause")  # nothing is acknowledged: the records stay staged
            try:
                for seq in (1, 2):
                    assert link.publish_period(record(seq))
                assert durable.writes == 0 and link.backlog.staged == 2
                await link.stop(graceful=True)  # what main() does on Ctrl-C
            finally:
                broker_control("resume")
        finally:
            await sb.finish(link, task)

    sb.run(main(), timeout_s=60)
    assert link.backlog.staged == 0
    durable.close()
    again = Backlog(path)
    assert durable_seqs(again) == [1, 2]
    again.close()
