"""MQTT 5 packets for the province server's ingest sessions: those it sends, and a fast split of those it receives.

A province's sessions take thousands of PUBLISH packets a second and answer
each with a PUBACK. paho reads a packet with five recv() calls and builds a
Properties object for each (`scripts/bench_ingest.py`, stage `mqtt_paho`);
here one read of up to 256 KiB is split into its packets in one pass, and a
PUBLISH's properties are skipped by their length (the session allows no
topic aliases, the one property that would change what a message means).
The few other packets (CONNACK, SUBACK, PUBACK, DISCONNECT) have their
properties read in full. Names of reason codes are paho's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP, DISCONNECT = 2, 3, 4, 9, 13, 14
PINGREQ = b"\xc0\x00"
MAX_LENGTH = 268_435_455  # the largest remaining length four bytes can say


class ProtocolError(Exception):
    """The broker sent bytes that are not MQTT 5; the connection must be closed."""


class Message(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool
    pid: int  # 0 for QoS 0


# -- what the session sends --------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return len(raw).to_bytes(2, "big") + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect(
    client_id: str,
    *,
    keepalive_s: int,
    clean_start: bool,
    session_expiry_s: int,
    receive_maximum: int,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    flags = (0x02 if clean_start else 0) | (0x80 if username else 0) | (0x40 if username and password else 0)
    props = b"\x11" + session_expiry_s.to_bytes(4, "big") + b"\x21" + receive_maximum.to_bytes(2, "big")
    body = _string("MQTT") + bytes([5, flags]) + keepalive_s.to_bytes(2, "big") + varint(len(props)) + props
    body += _string(client_id)
    if username:
        body += _string(username)
        if password:
            body += _string(password.encode("utf-8"))
    return _packet(0x10, body)


def subscribe(pid: int, filters: Sequence[str], qos: int = 1, retain_handling: int = 1) -> bytes:
    """Retain handling 1: the retained messages only for a subscription the session did not have."""
    options = bytes([qos | (retain_handling << 4)])
    return _packet(0x82, pid.to_bytes(2, "big") + b"\x00" + b"".join(_string(f) + options for f in filters))


def publish(topic: str, payload: bytes, pid: int, *, qos: int = 1, dup: bool = False) -> bytes:
    head = _string(topic) + (pid.to_bytes(2, "big") if qos else b"")
    return _packet(0x30 | (0x08 if dup else 0) | (qos << 1), head + b"\x00" + payload)


def pubacks(pids: Iterable[int]) -> bytes:
    """One PUBACK (success, no properties) per packet id, as one write."""
    return b"".join(b"\x40\x02" + pid.to_bytes(2, "big") for pid in pids)


def disconnect(reason: int = 0) -> bytes:
    return b"\xe0\x00" if reason == 0 else b"\xe0\x01" + bytes([reason])


# -- what the broker sends -----------------------------------------------------------


class Splitter:
    """Bytes off the socket in, whole packets out; a packet cut by the read waits for the next one."""

    def __init__(self) -> None:
        self._rest = b""

    def reset(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> tuple[list[Message], list[tuple[int, bytes]]]:
        """The PUBLISH messages, and every other packet as (first byte, body)."""
        data = self._rest + chunk if self._rest else chunk
        messages: list[Message] = []
        others: list[tuple[int, bytes]] = []
        n = len(data)
        pos = 0
        try:
            while n - pos >= 2:
                first = data[pos]
                i = pos + 1
                length = 0
                shift = 0
                while True:  # the remaining length, 1-4 bytes
                    if i >= n:
                        length = -1  # the length itself is cut
                        break
                    b = data[i]
                    i += 1
                    length |= (b & 0x7F) << shift
                    if b < 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise ProtocolError("a remaining length longer than four bytes")
                if length < 0:
                    break
                end = i + length
                if end > n:
                    break
                if first >> 4 == PUBLISH:
                    messages.append(_publish(first, data, i, end))
                else:
                    others.append((first, data[i:end]))
                pos = end
        except IndexError:
            raise ProtocolError("a packet shorter than its fields") from None
        self._rest = data[pos:]
        return messages, others


def _publish(first: int, data: bytes, p: int, end: int) -> Message:
    size = (data[p] << 8) | data[p + 1]
    try:
        topic = data[p + 2 : p + 2 + size].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("a topic that is not UTF-8") from None
    p += 2 + size
    qos = (first >> 1) & 3
    if qos > 1:
        raise ProtocolError(f"a PUBLISH with QoS {qos}: the session subscribes at QoS 1")
    pid = 0
    if qos:
        pid = (data[p] << 8) | data[p + 1]
        p += 2
    length, p = _varint_at(data, p)
    p += length
    if p > end:
        raise ProtocolError("a PUBLISH shorter than its fields")
    return Message(topic, data[p:end], qos, bool(first & 1), pid)


def _varint_at(data: bytes, p: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        b = data[p]
        p += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, p
        shift += 7
        if shift > 21:
            raise ProtocolError("a variable integer longer than four bytes")


# Each property's identifier → how its value is written (MQTT 5.0, 2.2.2.2).
_PROPERTY = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "var", 0x11: "u32", 0x12: "str",
    0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte", 0x18: "u32", 0x19: "byte", 0x1A: "str", 0x1C: "str",
    0x1F: "str", 0x21: "u16", 0x22: "u16", 0x23: "u16", 0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32",
    0x28: "byte", 0x29: "byte", 0x2A: "byte",
}  # fmt: skip
REASON_STRING, RECEIVE_MAXIMUM, SERVER_KEEP_ALIVE, ASSIGNED_CLIENT_ID = 0x1F, 0x21, 0x13, 0x12


def properties(data: bytes, p: int) -> tuple[dict[int, Any], int]:
    """The properties at `p` (user properties are skipped) and where they end."""
    length, p = _varint_at(data, p)
    end = p + length
    if end > len(data):
        raise ProtocolError("properties longer than their packet")
    found: dict[int, Any] = {}
    try:
        while p < end:
            ident, p = _varint_at(data, p)
            kind = _PROPERTY.get(ident)
            if kind is None:
                raise ProtocolError(f"an unknown property {ident:#04x}")
            if kind == "byte":
                value: Any = data[p]
                p += 1
            elif kind in ("u16", "u32"):
                size = 2 if kind == "u16" else 4
                value = int.from_bytes(data[p : p + size], "big")
                p += size
            elif kind == "var":
                value, p = _varint_at(data, p)
            else:
                value, p = _field(data, p)
                if kind == "pair":
                    _, p = _field(data, p)
                    continue
                if kind == "str":
                    value = value.decode("utf-8", "replace")
            found[ident] = value
    except IndexError:
        raise ProtocolError("properties shorter than their fields") from None
    return found, end


def _field(data: bytes, p: int) -> tuple[bytes, int]:
    size = int.from_bytes(data[p : p + 2], "big")
    if p + 2 + size > len(data):
        raise ProtocolError("a string longer than its packet")
    return data[p + 2 : p + 2 + size], p + 2 + size


def connack(body: bytes) -> tuple[bool, int, dict[int, Any]]:
    """(session present, reason code, properties)."""
    if len(body) < 2:
        raise ProtocolError("a CONNACK shorter than two bytes")
    props, _ = properties(body, 2) if len(body) > 2 else ({}, 2)
    return bool(body[0] & 1), body[1], props


def puback(body: bytes) -> tuple[int, int]:
    """A PUBACK's packet id and reason code (none written: success)."""
    if len(body) < 2:
        raise ProtocolError("a PUBACK without its packet id")
    return int.from_bytes(body[:2], "big"), body[2] if len(body) > 2 else 0


def suback(body: bytes) -> tuple[int, list[int], dict[int, Any]]:
    """A SUBACK's packet id, one reason code per filter, and its properties."""
    if len(body) < 3:
        raise ProtocolError("a SUBACK without its packet id")
    props, p = properties(body, 2)
    return int.from_bytes(body[:2], "big"), list(body[p:]), props


def disconnected(body: bytes) -> tuple[int, dict[int, Any]]:
    """A DISCONNECT from the broker: its reason code and properties (none written: normal)."""
    if not body:
        return 0, {}
    props, _ = properties(body, 1) if len(body) > 1 else ({}, 1)
    return body[0], props


def reason_name(packet: str, code: int) -> str:
    """`Bad user name or password` for CONNACK 0x86; the number when paho has no name for it."""
    kind = {"CONNACK": PacketTypes.CONNACK, "SUBACK": PacketTypes.SUBACK, "DISCONNECT": PacketTypes.DISCONNECT}
    try:
        return str(ReasonCode(kind.get(packet, PacketTypes.PUBACK), identifier=code).getName())
    except Exception:  # paho raises for a code it does not know
        return f"reason code {code:#04x}"
