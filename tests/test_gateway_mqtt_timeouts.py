"""The MQTT link against servers that misbehave (silent, refusing, garbage, broken packets), and
its packet encoding. No broker needed: the servers are local sockets in the test's own loop."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import support_broker as sb
import xrt

try:
    import asyncio
except ImportError:
    asyncio = None


def link_for(port, clock=None, timeout_s=0.5, backlog=None, **extra):
    sb.install_umqtt_names()
    from gateway.mqtt_link import MqttLink

    cfg = sb.full_mqtt_config(host="127.0.0.1", port=port, base_topic="t", timeout_s=timeout_s, **extra)
    log = sb.ListLog()
    link = MqttLink(cfg, "gw", log, clock=clock, rng_seed=11, backlog=backlog)
    if clock is None:
        link._backoff.base_ms = 100  # real time: keep the retries quick
        link._backoff.reset()
    return link, log


def against(reply, close_after_reply=False, failures=2, prepare=None):
    """Run a link against a FakeServer until it failed `failures` times; returns (link, log, server)."""
    server = sb.FakeServer(reply, close_after_reply)
    link, log = link_for(server.port)
    if prepare is not None:
        prepare(link)

    async def main():
        serving = asyncio.create_task(server.serve())
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.stats["failures"] >= failures, 15000, "%d failures" % failures)
            assert not task.done()  # run() never gives up and never raises
        finally:
            await sb.finish(link, task)
            server.close()
            serving.cancel()

    sb.run(main())
    return link, log, server


def test_a_silent_server_is_timed_out_on_the_clock_and_the_loop_keeps_running():
    from rbampsim.clock import VirtualClock

    clock = VirtualClock()
    server = sb.FakeServer(reply=None)  # accepts, reads, never answers
    # 30 s timeouts: if any wait were a real blocking call, three of them would outlast the deadline
    link, log = link_for(server.port, clock=clock, timeout_s=30)
    ticks = [0]
    seen = []

    async def sampler():  # stands in for the metering: wants to run every 200 ms
        while True:
            await clock.asleep_ms(200)
            ticks[0] += 1

    async def main():
        serving = asyncio.create_task(server.serve())
        sampling = asyncio.create_task(sampler())
        start_us = clock.now_us()
        task = asyncio.create_task(link.run())
        try:
            # the server polls its socket in real time while the link runs on the virtual clock:
            # wait for it to have read the CONNECT too (a loaded machine can take longer)
            await sb.wait_until(lambda: link.stats["failures"] >= 3 and server.received, 25000,
                                "three timeouts, and the CONNECT at the server")
            failures = link.stats["failures"]
            elapsed_ms = (clock.now_us() - start_us) // 1000
            seen.append((failures, elapsed_ms, ticks[0]))
        finally:
            await sb.finish(link, task)
            sampling.cancel()
            serving.cancel()
            server.close()

    sb.run(main(), timeout_s=40)
    failures, elapsed_ms, sampled = seen[0]
    # each attempt waited its full 30 s for a CONNACK, with a backoff pause between attempts
    pauses = sum(min(60000, 1000 << i) // 2 for i in range(failures - 1))
    assert elapsed_ms >= failures * 30000 + pauses, (failures, elapsed_ms)
    assert "no CONNACK within 30000 ms" in link.stats["last_error"], link.stats
    # the sampler got every one of its 200 ms turns meanwhile
    assert abs(sampled - elapsed_ms // 200) <= 1, (sampled, elapsed_ms)
    assert server.received.startswith(b"\x10")  # it did get our CONNECT
    assert not link.connected


def test_connection_refused_fails_fast_and_retries():
    sock, port = sb.listening_socket()
    sock.close()  # nobody listens there now
    link, log = link_for(port)

    async def main():
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.stats["failures"] >= 3, 15000, "three refusals")
        finally:
            await sb.finish(link, task)

    sb.run(main())
    assert "refused" in link.stats["last_error"] or "111" in link.stats["last_error"], link.stats
    assert "retrying in" in log.text()
    assert link.stats["connects"] == 0


def test_refused_credentials_are_reported_by_name():
    link, log, server = against(b"\x20\x02\x00\x05")
    assert "not authorised" in link.stats["last_error"], link.stats
    assert link.stats["connects"] == 0
    link, log, server = against(b"\x20\x02\x00\x04")
    assert "bad user name or password" in link.stats["last_error"], link.stats


def test_an_http_server_is_garbage_and_only_ends_the_session():
    link, log, server = against(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n", close_after_reply=True)
    assert link.stats["last_error"], link.stats
    assert link.stats["connects"] == 0


def test_a_umqtt_assertion_on_a_broken_packet_ends_the_session():
    # a PINGRESP with a body: umqtt.simple's wait_msg asserts on it
    link, log, server = against(b"\x20\x02\x00\x00\xd0\x01\x00")
    assert "umqtt.simple assertion" in link.stats["last_error"], link.stats


def test_an_announced_giant_packet_is_refused_before_it_is_buffered():
    link, log, server = against(b"\x20\x02\x00\x00\x30\xff\xff\xff\x7f")
    assert "over the 8192 limit" in link.stats["last_error"], link.stats


def test_a_malformed_length_is_a_protocol_error():
    link, log, server = against(b"\x20\x02\x00\x00\x30\xff\xff\xff\xff\x01")
    assert "malformed remaining length" in link.stats["last_error"], link.stats


def test_no_puback_times_out_and_the_record_stays_in_the_backlog():
    def queue_one(link):
        link.publish_period({"seq": 1})

    link, log, server = against(b"\x20\x02\x00\x00", prepare=queue_one)  # CONNACK, then silence
    assert "no PUBACK within 500 ms" in link.stats["last_error"], link.stats
    assert link.stats["connects"] >= 2
    assert len(link.backlog) == 1 and link.backlog.oldest()[0] == 1


def test_connect_packet_matches_the_mqtt_3_1_1_layout():
    from gateway.mqtt_wire import connect_packet

    packet = connect_packet("gw", 60, "u", "p", "a/b", b"offline", 1, True)
    body = (b"\x00\x04MQTT\x04" + bytes([0x02 | 0x04 | 0x08 | 0x20 | 0x80 | 0x40]) + b"\x00\x3c"
            + b"\x00\x02gw" + b"\x00\x03a/b" + b"\x00\x07offline" + b"\x00\x01u" + b"\x00\x01p")
    assert bytes(packet) == b"\x10" + bytes([len(body)]) + body
    # no will, no credentials, a UTF-8 client id: lengths count bytes
    packet = connect_packet("g\u00e5", 0)
    assert bytes(packet) == b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x00\x00\x03g\xc3\xa5"
    # a body over 127 bytes needs a two-byte remaining length
    packet = connect_packet("x" * 200, 10)
    assert packet[1] == (212 & 0x7F) | 0x80 and packet[2] == 212 >> 7 and len(packet) == 3 + 212


def test_unsubscribe_packet_layout():
    from gateway.mqtt_wire import unsubscribe_packet

    assert bytes(unsubscribe_packet(0x1234, "a/b")) == b"\xa2\x07\x12\x34\x00\x03a/b"


def test_packet_framing_waits_for_whole_packets():
    from gateway.mqtt_wire import MqttError, _UmqttSocket

    buffers = _UmqttSocket()
    assert buffers.next_packet() is None
    buffers.feed(b"\x30")
    assert buffers.next_packet() is None  # only the type byte
    buffers.feed(b"\x82")
    buffers.feed(b"\x01")
    assert buffers.next_packet() is None  # header complete, body missing
    buffers.feed(b"\x00" * 130)
    assert buffers.next_packet() == (0x30, 3 + 130)
    buffers.read(133)
    buffers.feed(b"\x40\x02\x00")
    assert buffers.next_packet() is None  # PUBACK without its last byte
    assert isinstance(xrt.raises(MqttError, buffers.read, 4), MqttError)
    assert buffers.next_packet() is None  # a failed read takes nothing
    buffers.feed(b"\x07")
    assert buffers.next_packet() == (0x40, 4) and bytes(buffers.read(4)) == b"\x40\x02\x00\x07"
    buffers.feed(b"\x30\xff\xff\xff\xff\x01")
    assert "malformed" in str(xrt.raises(MqttError, buffers.next_packet))


def test_a_peer_that_closes_ends_the_session_with_a_clear_error():
    server = sb.FakeServer(b"\x20\x02\x00\x00", close_after_reply=True)  # CONNACK, then gone
    link, log = link_for(server.port)

    async def main():
        serving = asyncio.create_task(server.serve())
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.stats["failures"] >= 1, 15000, "the closed connection")
        finally:
            await sb.finish(link, task)
            server.close()
            serving.cancel()

    sb.run(main())
    error = link.stats["last_error"]
    assert "closed the connection" in error or "ECONNRESET" in error or "104" in error or "32" in error, error


def test_what_the_config_cannot_check_is_refused_clearly():
    # the mqtt section comes validated from gateway.config (tests/test_gateway_config.py); the
    # device id (possibly read from a file on the board) and the calls are checked here
    sb.install_umqtt_names()
    from gateway.mqtt_link import MqttLink

    log = sb.ListLog()
    assert "device_id" in str(xrt.raises(ValueError, MqttLink, sb.full_mqtt_config(host="h"), "", log))
    assert "device_id" in str(xrt.raises(ValueError, MqttLink, sb.full_mqtt_config(host="h"), "gw/#", log))
    link = MqttLink(sb.full_mqtt_config(host="h", password="pw-only"), "gw", log)
    assert "password without a user name" in log.text() and "pw-only" not in log.text()
    assert link.port == 1883 and link.client_id == "gw" and link.topic("state") == "rbamp/gw/state"
    other = MqttLink(sb.full_mqtt_config(host="h", client_id="me", base_topic="home/meters"), "gw", log)
    assert other.client_id == "me" and other.topic("totals") == "home/meters/gw/totals"
    assert "seq" in str(xrt.raises(ValueError, link.publish_period, {"no": "seq"}))
    assert link.publish_period({"seq": 5}) is True
    assert link.publish_period({"seq": 5}) is False  # not above the last: refused, not raised
    assert link.stats["periods_refused"] == 1 and "not queued" in log.text()
    assert link.last_period_seq == 5


def test_stop_without_run_returns_at_once():
    sb.install_umqtt_names()
    from gateway.mqtt_link import MqttLink

    link = MqttLink(sb.full_mqtt_config(host="127.0.0.1", port=1), "gw", sb.ListLog())
    sb.run(link.stop(), timeout_s=5)
    assert not link.connected


def test_an_unanswered_ping_ends_the_session():
    from rbampsim.clock import VirtualClock

    # CONNACK, the PUBACK for "online" (packet id 1), the SUBACK for our availability topic (2);
    # then nothing, not even a PINGRESP
    clock = VirtualClock()
    server = sb.FakeServer(b"\x20\x02\x00\x00" + b"\x40\x02\x00\x01" + b"\x90\x03\x00\x02\x00", clock=clock)
    link, log = link_for(server.port, clock=clock, timeout_s=2, keepalive=10)

    async def main():
        serving = asyncio.create_task(server.serve())
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: link.stats["failures"] >= 1, 15000, "the missing PINGRESP")
        finally:
            await sb.finish(link, task)
            serving.cancel()
            server.close()

    sb.run(main())
    assert link.stats["connects"] >= 1 and link.stats["pings"] >= 1, link.stats
    assert "no PINGRESP within 2000 ms" in link.stats["last_error"], link.stats
    assert b"\xc0\x00" in server.received  # the PINGREQ went out
