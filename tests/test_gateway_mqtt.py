"""The MQTT link against a real broker (mosquitto, started by the harness for this module).

An independent client (umqtt.simple's own connect, see support_broker.Observer) watches what the
broker delivers. Every wait is on a condition with a deadline."""

RUNTIMES = ("cpython", "mpy64", "mpy32")
NEEDS_BROKER = True

import json

import support_broker as sb
import xrt

try:
    import asyncio
except ImportError:
    asyncio = None

ORIGIN = {"name": "rbamp-gateway", "sw_version": "0.1.0"}
MODULES = [{"address": 0x50, "label": "house", "channels": 1, "has_voltage": True},
           {"address": 0x51, "label": None, "channels": 3, "has_voltage": False}]


def make_link(device="gw", backlog=None, **cfg):
    sb.install_umqtt_names()
    from gateway.mqtt_link import MqttLink

    log = sb.ListLog()
    link = MqttLink(sb.mqtt_config(**cfg), device, log, rng_seed=7, backlog=backlog)
    # quick retries: the outage tests wait for reconnects
    link._backoff.base_ms = 200
    link._backoff.reset()
    return link, log


def fresh_backlog(name):
    import os

    from gateway.backlog import Backlog

    path = xrt.tmp_path(sb.unique(name) + ".bin")
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    return Backlog(path)


def seqs(observer, topic):
    return [json.loads(p)["seq"] for p in observer.payloads(topic)]


def test_online_on_connect_and_the_last_will_on_an_abrupt_close():
    link, log = make_link()
    avail = link.topic("availability")

    async def main():
        observer = sb.Observer(avail)
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.connected and observer.last(avail) == b"online", 5000,
                                "online", observer)
            assert sb.retained(avail) == b"online"
            await link.stop(graceful=False)  # the TCP connection just goes away: no DISCONNECT
            await sb.wait_until(lambda: observer.last(avail) == b"offline", 5000, "the last will", observer)
        finally:
            await sb.finish(link, task)
            observer.close()
        assert sb.retained(avail) == b"offline"  # the will is retained
        assert link.stats["connects"] == 1 and link.stats["failures"] == 0, link.stats

    sb.run(main())


def test_graceful_stop_publishes_offline_and_disconnects():
    link, log = make_link()
    avail = link.topic("availability")

    async def main():
        task = asyncio.create_task(link.run())
        await sb.wait_until(lambda: link.connected, 5000, "connected")
        await link.stop(graceful=True)
        assert task.done() or not link.connected
        await sb.finish(link, task)

    sb.run(main())
    assert sb.retained(avail) == b"offline"
    assert "mqtt: disconnected" in log.text()
    assert link.stats["failures"] == 0, link.stats


def test_connect_publishes_totals_then_the_backlog_in_order():
    backlog = fresh_backlog("order")
    link, log = make_link(backlog=backlog)
    link.publish_totals({"0x50": {"import_wh": [1.0]}})
    link.publish_totals({"0x50": {"import_wh": [2.5]}})  # latest wins
    for seq in (1, 2, 3):
        assert link.publish_period({"seq": seq, "ts": None, "modules": {}})
    assert link.stats["backlog_pending"] == 3

    async def main():
        observer = sb.Observer(link.topic("#"))
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: len(observer.payloads(link.topic("period"))) == 3, 5000,
                                "three period records", observer)
        finally:
            await sb.finish(link, task, graceful=True)
            observer.close()
        topics = [t[len(link.topic("")):] for t, _ in observer.messages]
        assert topics[:5] == ["availability", "totals", "period", "period", "period"], topics
        assert observer.payloads(link.topic("totals")) == [b'{"0x50":{"import_wh":[2.5]}}']
        assert seqs(observer, link.topic("period")) == [1, 2, 3]

    sb.run(main())
    assert len(backlog) == 0
    assert sb.retained(link.topic("totals")) == b'{"0x50":{"import_wh":[2.5]}}'
    backlog.close()


def test_state_is_dropped_offline_and_only_the_latest_is_sent():
    link, log = make_link()
    state = link.topic("state")
    assert link.publish_state({"n": 0}) is False
    assert link.stats["states_dropped"] == 1

    async def main():
        observer = sb.Observer(state)
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.connected, 5000, "connected")
            assert link.publish_state({"n": 1})
            assert link.publish_state({"n": 2})  # before the link ran again: replaces n=1
            await sb.wait_until(lambda: observer.payloads(state), 5000, "a state", observer)
            link.publish_state({"n": 3})
            await sb.wait_until(lambda: len(observer.payloads(state)) >= 2, 5000, "the second state", observer)
        finally:
            await sb.finish(link, task)
            observer.close()
        assert observer.payloads(state) == [b'{"n":2}', b'{"n":3}']

    sb.run(main())
    assert sb.retained(state) is None  # live state is not retained


def test_discovery_is_retained_and_published_again_when_home_assistant_comes_online():
    _discovery_round_trip(built_on_demand=False)


def test_discovery_built_on_demand_is_published_the_same_way():
    _discovery_round_trip(built_on_demand=True)


def _discovery_round_trip(built_on_demand):
    from gateway.discovery import discovery_messages

    link, log = make_link(device="gw-ha")
    prefix = sb.unique("ha")
    messages = discovery_messages(prefix, link.base_topic, "gw-ha", MODULES, ORIGIN)
    link.set_ha_prefix(prefix)
    calls = []

    def build():
        calls.append(1)
        return discovery_messages(prefix, link.base_topic, "gw-ha", MODULES, ORIGIN)

    link.set_discovery(build if built_on_demand else messages)
    expected = dict((t, p.encode()) for t, p in messages)

    async def main():
        observer = sb.Observer(prefix + "/+/gw-ha/+/config")  # sensors and binary sensors
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: len(observer.messages) == len(messages), 5000, "discovery", observer)
            assert dict(observer.messages) == expected
            for topic, payload in observer.messages:
                config = json.loads(payload)
                assert config["uniq_id"] and config["stat_t"] and config["dev"]["ids"] == ["gw-ha"]
            assert sb.retained(messages[3][0]) == expected[messages[3][0]]
            observer.clear()
            sb.Observer().publish(prefix + "/status", b"online")  # Home Assistant's birth message
            await sb.wait_until(lambda: len(observer.messages) == len(messages), 5000, "discovery again",
                                observer)
            assert dict(observer.messages) == expected
        finally:
            await sb.finish(link, task)
            observer.close()
        assert "Home Assistant is online" in log.text()

    sb.run(main())
    if built_on_demand:
        assert len(calls) == 3  # checked once when set, then built for each of the two publications


def test_read_retained_returns_the_brokers_value_and_holds_our_totals_meanwhile():
    link, log = make_link(device="gw-seed")
    topic = link.topic("totals")
    theirs = b'{"0x50":{"import_wh":[12345.5],"export_wh":[1.0]}}'
    feeder = sb.Observer()
    feeder.publish(topic, theirs, retain=True)
    feeder.publish(link.topic("garbage"), b"not json {", retain=True)
    feeder.close()
    assert sb.retained(topic) == theirs
    link.publish_totals({"0x50": {"import_wh": [0.0], "export_wh": [0.0]}})

    async def main():
        task = asyncio.create_task(link.run())
        try:
            value = await link.read_retained("totals", 5000)
            assert value == {"0x50": {"import_wh": [12345.5], "export_wh": [1.0]}}, value
            # nothing ran since read_retained returned: our zero totals have not replaced theirs
            assert sb.retained(topic) == theirs
            await sb.wait_until(lambda: sb.retained(topic) != theirs, 5000, "our totals after the read")
            assert await link.read_retained("nothing-here", 300) is None
            assert await link.read_retained("garbage", 3000) is None
        finally:
            await sb.finish(link, task)

    sb.run(main())
    assert sb.retained(topic) == b'{"0x50":{"import_wh":[0.0],"export_wh":[0.0]}}'
    assert link.stats["failures"] == 0, link.stats


def test_period_records_arrive_in_order_once_after_a_broker_outage():
    if sb.broker_kind() != "mosquitto":
        raise xrt.Skip("needs a broker that keeps sessions across a restart (mosquitto)")
    from xrt.broker import broker_control

    backlog = fresh_backlog("outage")
    link, log = make_link(device="gw-outage", backlog=backlog, timeout_s=1)
    period = link.topic("period")

    async def main():
        # a persistent QoS 1 subscriber: the broker keeps what it misses while it is away
        observer = sb.Observer(period, qos=1, persistent=True)
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.connected, 5000, "connected")
            for seq in (1, 2, 3):
                link.publish_period({"seq": seq, "ts": 1700000000 + seq, "modules": {}})
            await sb.wait_until(lambda: seqs(observer, period) == [1, 2, 3] and len(backlog) == 0, 5000,
                                "records 1-3 delivered and acknowledged", observer)
            observer.sync()  # else the broker may not have our PUBACK for 3 and deliver it again
            broker_control("stop")
            try:
                observer.close(abrupt=True)
                for seq in range(4, 11):
                    assert link.publish_period({"seq": seq, "ts": None, "modules": {}})
                await sb.wait_until(lambda: not link.connected, 10000, "the link noticing the outage")
                assert len(backlog) == 7
                await sb.wait_until(lambda: link.stats["failures"] >= 2, 10000, "a failed reconnect")
            finally:
                broker_control("start")
            observer.reconnect()
            await sb.wait_until(lambda: len(seqs(observer, period)) >= 10, 30000, "records 4-10", observer)
            await sb.wait_until(lambda: len(backlog) == 0, 5000, "the backlog acknowledged")
        finally:
            await sb.finish(link, task, graceful=True)
            observer.close()
        assert seqs(observer, period) == list(range(1, 11))
        assert link.stats["connects"] >= 2

    sb.run(main(), timeout_s=90)
    backlog.close()


def test_a_broker_that_stops_answering_is_left_and_nothing_is_lost():
    from xrt.broker import broker_control

    link, log = make_link(device="gw-stall", timeout_s=1)
    period = link.topic("period")
    avail = link.topic("availability")

    async def main():
        observer = sb.Observer(period, qos=1)
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.connected, 5000, "connected")
            link.publish_period({"seq": 1, "modules": {}})
            await sb.wait_until(lambda: seqs(observer, period) == [1], 5000, "record 1", observer)
            broker_control("pause")  # TCP still accepted by the kernel; nothing is answered
            try:
                link.publish_period({"seq": 2, "modules": {}})
                await sb.wait_until(lambda: link.stats["failures"] >= 2, 20000, "two timeouts")
                assert "PUBACK" in log.text() and "CONNACK" in log.text(), log.text()
                assert not link.connected
            finally:
                broker_control("resume")
            await sb.wait_until(lambda: 2 in seqs(observer, period) and len(link.backlog) == 0, 30000,
                                "record 2 delivered and acknowledged after the stall", observer)
            # the stalled connections' last wills may land after our "online": the link repairs it
            await sb.wait_until(lambda: sb.retained(avail) == b"online", 10000, "online retained")
        finally:
            await sb.finish(link, task)
            observer.close()
        received = seqs(observer, period)
        # QoS 1 is at-least-once: record 2 was in flight when the broker stalled and may come twice
        assert received[0] == 1 and set(received) == {1, 2} and received == sorted(received), received

    sb.run(main(), timeout_s=90)


def test_a_stale_offline_on_our_availability_topic_is_corrected():
    link, log = make_link(device="gw-stale")
    avail = link.topic("availability")

    async def main():
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.connected and sb.retained(avail) == b"online", 5000, "online")
            stale = sb.Observer()
            stale.publish(avail, b"offline", retain=True)
            stale.close()
            await sb.wait_until(lambda: sb.retained(avail) == b"online", 5000, "online again")
        finally:
            await sb.finish(link, task)
        assert "stale last will" in log.text()

    sb.run(main())


def test_packet_ids_wrap_without_ever_using_zero():
    link, log = make_link(device="gw-pid")
    period = link.topic("period")

    async def main():
        observer = sb.Observer(period, qos=1)
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.connected and link._session is not None, 5000, "connected")
            link._session.wire.last_pid = 65533  # as after a long session
            for seq in range(1, 6):
                link.publish_period({"seq": seq})
            await sb.wait_until(lambda: len(seqs(observer, period)) == 5, 5000, "five records", observer)
            assert 0 < link._session.wire.last_pid < 10
        finally:
            await sb.finish(link, task)
            observer.close()
        assert seqs(observer, period) == [1, 2, 3, 4, 5]
        assert link.stats["failures"] == 0, link.stats  # the broker would drop us for a packet id 0

    sb.run(main())


def test_credentials_never_appear_in_payloads_or_logs():
    secret = "s3cret-PW-%s" % xrt.runtime()
    link, log = make_link(device="gw-secret", user="meter", password=secret)
    from gateway.discovery import discovery_messages

    link.set_ha_prefix(sb.unique("ha"))
    link.set_discovery(discovery_messages("ha-x", link.base_topic, "gw-secret", MODULES, ORIGIN))

    async def main():
        observer = sb.Observer("#")
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.connected, 5000, "connected")
            link.publish_totals({"0x50": {"import_wh": [1.0]}})
            link.publish_state({"modules": {}})
            link.publish_period({"seq": 1})
            await sb.wait_until(lambda: observer.payloads(link.topic("period")), 5000, "the period", observer)
        finally:
            await sb.finish(link, task, graceful=True)
            observer.close()
        assert len(observer.messages) > 10
        for topic, payload in observer.messages:
            assert secret.encode() not in payload and secret not in topic
        assert secret not in log.text() and secret not in repr(link.stats)

    sb.run(main())


def test_live_state_keeps_flowing_during_a_long_catch_up():
    backlog = fresh_backlog("catchup")
    link, log = make_link(device="gw-catchup", backlog=backlog)
    for seq in range(1, 301):
        link.publish_period({"seq": seq, "ts": None, "modules": {}})
    state = link.topic("state")
    period = link.topic("period")

    async def main():
        observer = sb.Observer(state, period)
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: len(observer.payloads(period)) >= 10, 10000, "the catch-up", observer)
            link.publish_state({"live": True})
            await sb.wait_until(lambda: observer.payloads(state), 10000, "the live state", observer)
            behind = 300 - len(observer.payloads(period))
            await sb.wait_until(lambda: len(backlog) == 0 and len(observer.payloads(period)) == 300, 60000,
                                "the end of the catch-up", observer)
        finally:
            await sb.finish(link, task)
            observer.close()
        assert behind > 100, behind  # the state did not wait for the backlog to drain
        topics = [t for t, _ in observer.messages]
        assert 0 < topics.index(state) < len(topics) - 100
        assert seqs(observer, period) == list(range(1, 301))

    sb.run(main(), timeout_s=120)
    backlog.close()


def test_keepalive_pings_hold_an_idle_connection():
    # mosquitto drops a client that is silent for 1.5 keepalive periods
    link, log = make_link(device="gw-idle", keepalive=1)

    async def main():
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.stats["pings"] >= 4, 10000, "four pings")
            assert link.connected
        finally:
            await sb.finish(link, task)

    sb.run(main())
    assert link.stats["connects"] == 1 and link.stats["failures"] == 0, link.stats


class CountingClock:
    """The system clock, counting the waits the link makes on it (sleeps and event waits)."""

    def __init__(self):
        from rbamp.clock import SYSTEM_CLOCK

        self.inner = SYSTEM_CLOCK
        self.waits = 0
        self.waiting = False

    def ticks_ms(self):
        return self.inner.ticks_ms()

    def ticks_us(self):
        return self.inner.ticks_us()

    def ticks_diff(self, a, b):
        return self.inner.ticks_diff(a, b)

    def ticks_add(self, t, delta):
        return self.inner.ticks_add(t, delta)

    async def asleep_ms(self, ms):
        self.waits += 1
        await self.inner.asleep_ms(ms)

    async def wait_event(self, flag, timeout_ms, happened):
        self.waits += 1
        self.waiting = True
        try:
            return await self.inner.wait_event(flag, timeout_ms, happened)
        finally:
            self.waiting = False


def test_an_idle_link_waits_for_work_instead_of_polling():
    sb.install_umqtt_names()
    from gateway.mqtt_link import MqttLink

    clock = CountingClock()
    link = MqttLink(sb.mqtt_config(), "gw-wake", sb.ListLog(), clock=clock, rng_seed=7)
    state = link.topic("state")
    counts = []

    async def main():
        observer = sb.Observer(state)
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.connected and clock.waiting, 5000, "the link idle")
            before = clock.waits
            await asyncio.sleep(1.0)  # real time, not the link's clock: a polling link would wake ~20 times
            counts.append(clock.waits - before)
            before = clock.waits
            for n in range(5):
                link.publish_state({"n": n})
                await sb.wait_until(lambda: len(observer.payloads(state)) == n + 1, 5000, "state %d" % n, observer)
                await sb.wait_until(lambda: clock.waiting, 5000, "the link idle again")
            counts.append(clock.waits - before)
        finally:
            await sb.finish(link, task)
            observer.close()

    sb.run(main())
    idle, busy = counts
    # the retained "online" coming back from our own subscription may wake it once or twice
    assert idle <= 2, counts
    # a publish wakes the link: one round that sends, one that finds nothing more, then the wait
    assert busy <= 5 * 3, counts
