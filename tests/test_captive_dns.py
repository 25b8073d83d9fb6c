"""The setup mode's catch-all DNS (gateway.captive_dns) answering real UDP queries on 127.0.0.1:
A records carry the access point's address, other types get an empty NOERROR, other opcodes
NOTIMP, and garbage, truncated and oversized datagrams are dropped and counted without stopping
the responder. A query sent after the bad ones proves they were read: datagrams on loopback
arrive in order, so its reply being the only one means none of them was answered."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import os
import socket
import struct

import support_broker as sb
import xrt
from gateway.captive_dns import MAX_PACKET, TTL_S, CaptiveDns, build_reply, ipv4_bytes

try:
    import asyncio
except ImportError:
    asyncio = None

AP_IP = "192.168.4.1"
TYPE_A = 1
TYPE_AAAA = 28
TYPE_MX = 15


class QuietLog:
    def __init__(self):
        self.lines = []

    def debug(self, fmt, *args):
        self.lines.append(fmt % args if args else fmt)

    info = warning = error = debug


def query(name, qtype=TYPE_A, qid=0x1234, opcode=0, qclass=1, flags_low=0):
    packet = bytearray(struct.pack("!HBBHHHH", qid, (opcode << 3) | 0x01, flags_low, 1, 0, 0, 0))
    for label in name.split("."):
        packet.append(len(label))
        packet.extend(label.encode())
    packet.append(0)
    packet.extend(struct.pack("!HH", qtype, qclass))
    return bytes(packet)


def open_dns():
    """A responder bound to a free loopback port (MicroPython sockets have no getsockname())."""
    seed = os.urandom(2)
    start = (seed[0] << 8 | seed[1]) % 40000
    for i in range(200):
        port = 20000 + (start + i * 97) % 40000
        dns = CaptiveDns(AP_IP, QuietLog())
        try:
            dns.open("127.0.0.1", port)
            return dns, port
        except OSError:
            continue
    raise AssertionError("no free loopback UDP port found")


def exchange(packets, replies_expected):
    """Send the datagrams to a fresh responder; return (replies received, responder stats)."""
    dns, port = open_dns()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setblocking(False)
    target = socket.getaddrinfo("127.0.0.1", port, 0, socket.SOCK_DGRAM)[0][-1]
    replies = []

    async def main():
        task = asyncio.create_task(dns.serve())
        try:
            for packet in packets:
                client.sendto(packet, target)

            def got_all():
                try:
                    replies.append(client.recv(1024))
                except OSError:
                    pass
                return len(replies) >= replies_expected

            await sb.wait_until(got_all, 5000, "%d DNS replies" % replies_expected)
            assert not task.done(), "the responder stopped"
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    try:
        sb.run(main())
    finally:
        dns.close()
        client.close()
    return replies, dns.stats


def header(reply):
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", reply[:12])
    return {"id": qid, "qr": flags >> 15, "opcode": (flags >> 11) & 15, "aa": (flags >> 10) & 1,
            "rd": (flags >> 8) & 1, "rcode": flags & 15, "qd": qd, "an": an, "ns": ns, "ar": ar}


def test_every_a_query_gets_the_access_points_address():
    names = ("connectivitycheck.gstatic.com", "captive.apple.com", "www.msftconnecttest.com", "x")
    packets = [query(name, qid=100 + i) for i, name in enumerate(names)]
    replies, stats = exchange(packets, len(names))
    assert len(replies) == len(names)
    by_id = {}
    for reply in replies:
        by_id[header(reply)["id"]] = reply
    for i, name in enumerate(names):
        reply = by_id[100 + i]
        sent = packets[i]
        h = header(reply)
        assert (h["qr"], h["opcode"], h["aa"], h["rd"], h["rcode"]) == (1, 0, 1, 1, 0), h
        assert (h["qd"], h["an"], h["ns"], h["ar"]) == (1, 1, 0, 0), h
        assert reply[12:len(sent)] == sent[12:], "the question is echoed as asked"
        answer = reply[len(sent):]
        pointer, rtype, rclass, ttl, rdlength = struct.unpack("!HHHIH", answer[:12])
        assert (pointer, rtype, rclass, ttl, rdlength) == (0xC00C, TYPE_A, 1, TTL_S, 4)
        assert answer[12:] == bytes([192, 168, 4, 1]), answer
    assert stats["answered"] == len(names) and stats["malformed"] == 0, stats


def test_aaaa_and_other_types_get_an_empty_noerror():
    replies, stats = exchange([query("captive.apple.com", TYPE_AAAA, qid=7),
                               query("example.org", TYPE_MX, qid=8)], 2)
    for reply in replies:
        h = header(reply)
        assert h["id"] in (7, 8) and h["qr"] == 1 and h["rcode"] == 0, h
        assert h["an"] == 0 and h["qd"] == 1, h
    assert stats["answered"] == 2, stats


def test_another_opcode_gets_notimp():
    replies, _ = exchange([query("example.org", opcode=2, qid=9)], 1)
    h = header(replies[0])
    assert (h["id"], h["qr"], h["opcode"], h["rcode"], h["an"]) == (9, 1, 2, 4, 0), h


def test_garbage_is_dropped_and_counted_and_the_next_query_answered():
    good = query("example.org", qid=4242)
    as_response = bytearray(good)
    as_response[2] |= 0x80
    two_questions = bytearray(good)
    two_questions[5] = 2
    long_label = query("a" * 64 + ".org")
    pointer = bytearray(good[:12]) + b"\xc0\x0c\x00\x01\x00\x01"
    long_name = query(".".join(["abcdefghij"] * 24))  # 264 bytes of name
    garbage = [b"", b"\x00", os.urandom(11), bytes(as_response), bytes(two_questions), long_label,
               bytes(pointer), long_name, good[:-2], good[:14], b"\xff" * 40]
    replies, stats = exchange(garbage + [good], 1)
    assert len(replies) == 1 and header(replies[0])["id"] == 4242, replies
    assert stats["malformed"] == len(garbage) and stats["answered"] == 1, stats


def test_an_oversized_datagram_is_dropped():
    good = query("example.org", qid=77)
    huge = good + bytes(2000)
    replies, stats = exchange([huge, good], 1)
    assert len(replies) == 1 and header(replies[0])["id"] == 77
    assert stats["oversized"] == 1 and stats["answered"] == 1, stats


def test_a_taken_port_is_an_oserror():
    dns, port = open_dns()
    try:
        other = CaptiveDns(AP_IP, QuietLog())
        failed = False
        try:
            other.open("127.0.0.1", port)
        except OSError:
            failed = True
        assert failed and not other.is_open
    finally:
        dns.close()
    assert not dns.is_open


def test_addresses_are_checked():
    assert ipv4_bytes("10.0.0.255") == b"\x0a\x00\x00\xff"
    for bad in ("192.168.4", "192.168.4.256", "a.b.c.d", "1.2.3.4.5", ""):
        xrt.raises(ValueError, ipv4_bytes, bad)


def test_building_a_reply_allocates_nothing():
    if not xrt.is_micropython():
        raise xrt.Skip("heap_lock is MicroPython's")
    import micropython

    packet = query("connectivitycheck.gstatic.com")
    length = len(packet)
    address = ipv4_bytes(AP_IP)
    out = bytearray(MAX_PACKET + 16)
    micropython.heap_lock()
    try:
        size = build_reply(packet, length, address, out)
    finally:
        micropython.heap_unlock()
    assert size == length + 16 and out[length + 12:size] == address
