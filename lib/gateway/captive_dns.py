"""A catch-all DNS responder for setup mode: every name is the gateway.

A phone that joins the setup access point asks DNS for its connectivity-check host
(``connectivitycheck.gstatic.com``, ``captive.apple.com``, ``www.msftconnecttest.com``); answering
every A query with the access point's own address brings its HTTP probe to the gateway, whose
redirect to the setup page (``gateway.web_setup``) makes the phone open the page by itself.

    dns = CaptiveDns("192.168.4.1", log)      # the address every A query gets
    dns.open("0.0.0.0", 53)                   # OSError when the port is taken
    task = asyncio.create_task(dns.serve())   # until cancelled
    ...
    task.cancel(); dns.close()                # in this order: the wait must end before the socket
    dns.stats                                 # {"queries", "answered", "malformed", "oversized", ...}

What goes back, per RFC 1035:

| query | reply |
|---|---|
| standard query (opcode 0), one question, type A (or ANY), class IN | NOERROR, one A record (TTL 10 s) |
| standard query of another type (AAAA, MX, ...) | NOERROR, no answer (the name exists, the type does not) |
| another opcode (inverse query, status, notify, update) | NOTIMP, question echoed |
| a response, not one question, a broken name, too short, over 512 bytes | nothing (counted, logged at debug) |

The short TTL keeps a phone from holding on to the gateway's address for real names once it is
back on the home network. Additional records (an EDNS OPT) are not echoed: a reply without OPT
tells the client to stay within 512 bytes, which every reply here does.

The socket is non-blocking; waiting for a datagram is asyncio's own poll of the socket
(MicroPython: ``asyncio.StreamReader(sock)``, whose ``readinto`` of an empty buffer returns as
soon as the socket is readable and consumes nothing; CPython: the loop's ``add_reader``), then
every waiting datagram is read. A reply is built in one buffer made at start.
"""

import asyncio
import errno
import socket
import sys

MAX_PACKET = 512  # the classic DNS-over-UDP limit; a setup-mode query is far smaller
TTL_S = 10
_HEADER = 12
_MAX_NAME = 255
_MAX_LABEL = 63
_TYPE_A = 1
_TYPE_ANY = 255
_CLASS_IN = 1
_CLASS_ANY = 255
_RCODE_NOTIMP = 4
_MICROPYTHON = sys.implementation.name == "micropython"
_BUSY = (errno.EAGAIN, getattr(errno, "EWOULDBLOCK", errno.EAGAIN), errno.ETIMEDOUT, 118, 119, -110)


def ipv4_bytes(text):
    """b"\\xc0\\xa8\\x04\\x01" from "192.168.4.1"; ValueError for anything else."""
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError("not an IPv4 address: %r" % (text,))
    out = bytearray(4)
    for i in range(4):
        part = parts[i]
        if not part.isdigit() or len(part) > 3 or int(part) > 255:
            raise ValueError("not an IPv4 address: %r" % (text,))
        out[i] = int(part)
    return bytes(out)


def question_end(packet, length):
    """Offset just past the single question's QTYPE/QCLASS, or 0 when the name is malformed
    (a label over 63 bytes, a name over 255, a compression pointer, running past the end)."""
    pos = _HEADER
    name_len = 0
    while True:
        if pos >= length:
            return 0
        label = packet[pos]
        if label == 0:
            pos += 1
            break
        if label > _MAX_LABEL:  # 0xC0.. is a pointer: a question has nothing before it to point at
            return 0
        name_len += label + 1
        if name_len > _MAX_NAME:
            return 0
        pos += label + 1
    pos += 4
    return pos if pos <= length else 0


def build_reply(packet, length, address, out):
    """The reply to the query in ``packet[:length]``, written into ``out`` (at least
    ``MAX_PACKET`` + 16 bytes); returns its length, or 0 when nothing is to be sent (see the
    module's table). ``address``: the 4 bytes every A query gets."""
    if length < _HEADER + 5 or length > MAX_PACKET:
        return 0
    flags = packet[2]
    if flags & 0x80:  # QR: a response, never answered (a reflection loop otherwise)
        return 0
    if packet[4] != 0 or packet[5] != 1:  # QDCOUNT: exactly one question
        return 0
    end = question_end(packet, length)
    if not end:
        return 0
    opcode = (flags >> 3) & 0x0F
    qtype = packet[end - 4] << 8 | packet[end - 3]
    qclass = packet[end - 2] << 8 | packet[end - 1]
    out[0] = packet[0]
    out[1] = packet[1]
    out[2] = 0x80 | (flags & 0x79) | 0x04  # QR, the opcode and RD copied, AA
    if opcode != 0:
        out[3] = _RCODE_NOTIMP
        answers = 0
    else:
        out[3] = 0x80  # RA, NOERROR
        wanted = (qtype == _TYPE_A or qtype == _TYPE_ANY) and (qclass == _CLASS_IN or qclass == _CLASS_ANY)
        answers = 1 if wanted else 0
    out[4] = 0
    out[5] = 1
    out[6] = 0
    out[7] = answers
    for i in range(8, _HEADER):
        out[i] = 0  # no authority, no additional records
    for i in range(_HEADER, end):
        out[i] = packet[i]
    pos = end
    if answers:
        out[pos] = 0xC0  # the name: a pointer to the question's
        out[pos + 1] = _HEADER
        out[pos + 2] = 0
        out[pos + 3] = _TYPE_A
        out[pos + 4] = 0
        out[pos + 5] = _CLASS_IN
        out[pos + 6] = 0
        out[pos + 7] = 0
        out[pos + 8] = 0
        out[pos + 9] = TTL_S
        out[pos + 10] = 0
        out[pos + 11] = 4
        for i in range(4):
            out[pos + 12 + i] = address[i]
        pos += 16
    return pos


class CaptiveDns:
    def __init__(self, answer_ip, log):
        self.address = ipv4_bytes(answer_ip)
        self.answer_ip = answer_ip
        self.log = log
        self.stats = {"queries": 0, "answered": 0, "malformed": 0, "oversized": 0, "send_errors": 0,
                      "receive_errors": 0}
        self._sock = None
        self._reader = None
        self._fd = None
        self._waiting = False  # CPython: the loop watches the descriptor for serve()
        self._out = bytearray(MAX_PACKET + 16)

    def open(self, host, port):
        """Bind the UDP socket; OSError (e.g. EADDRINUSE, EACCES below 1024 on a PC) is the
        caller's to report: setup mode goes on without DNS, the page still answers by address."""
        address = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        if _MICROPYTHON:
            self._reader = asyncio.StreamReader(sock)  # pyright: ignore[reportCallIssue]  # MicroPython's Stream(sock)
        else:
            self._fd = sock.fileno()  # pyright: ignore[reportAttributeAccessIssue]  # CPython only

    @property
    def is_open(self):
        return self._sock is not None

    def close(self):
        sock = self._sock
        self._sock = None
        self._reader = None
        if self._waiting:
            # at once: the descriptor may be reused before a cancelled serve() runs again
            asyncio.get_event_loop().remove_reader(self._fd)  # pyright: ignore[reportAttributeAccessIssue, reportArgumentType]
            self._waiting = False
        self._fd = None
        if sock is not None:
            sock.close()

    async def serve(self):
        """Answer queries until cancelled or closed."""
        empty = bytearray(0)
        while self._sock is not None:
            if _MICROPYTHON:
                await self._reader.readinto(empty)  # pyright: ignore[reportOptionalMemberAccess]  # readable: returns 0
            else:
                await self._readable_cpython()
            self.answer_waiting()

    async def _readable_cpython(self):
        loop = asyncio.get_event_loop()
        ready = loop.create_future()  # pyright: ignore[reportAttributeAccessIssue]

        def readable():
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self._fd, readable)  # pyright: ignore[reportAttributeAccessIssue, reportArgumentType]
        self._waiting = True
        try:
            await ready
        finally:
            if self._waiting:
                self._waiting = False
                loop.remove_reader(self._fd)  # pyright: ignore[reportAttributeAccessIssue, reportArgumentType]

    def answer_waiting(self):
        """Read and answer every datagram waiting on the socket; returns how many were read."""
        count = 0
        while self._sock is not None:
            try:
                packet, peer = self._sock.recvfrom(MAX_PACKET + 1)
            except OSError as exc:
                if not (exc.args and exc.args[0] in _BUSY):
                    # e.g. an ICMP error some stacks report on the next read: the query is lost,
                    # the client asks again
                    self.stats["receive_errors"] += 1
                    self.log.debug("dns: receive failed: %s", exc)
                return count
            count += 1
            self.answer(packet, peer)
        return count

    def answer(self, packet, peer):
        """Reply to one datagram from ``peer`` (or count why not)."""
        stats = self.stats
        stats["queries"] += 1
        length = len(packet)
        if length > MAX_PACKET:
            stats["oversized"] += 1
            self.log.debug("dns: dropped a %d+ byte datagram", length)
            return
        size = build_reply(packet, length, self.address, self._out)
        if not size:
            stats["malformed"] += 1
            self.log.debug("dns: dropped a malformed query (%d bytes)", length)
            return
        try:
            self._sock.sendto(memoryview(self._out)[:size], peer)  # pyright: ignore[reportOptionalMemberAccess]
        except OSError as exc:  # the client went away or the stack is short of buffers: it asks again
            stats["send_errors"] += 1
            self.log.debug("dns: reply not sent: %s", exc)
            return
        stats["answered"] += 1
