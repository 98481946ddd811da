"""The client pod's nameserver for the DNS ServiceEntry test: answers A queries on
127.0.0.1:53 (UDP) from `dns/zone.json` ({"name": "IPv4"}, read per query; the test
writes it), NXDOMAIN for any other name, and appends each query to `dns/queries.log`.
It also listens on $PORT, which is how `plait up` sees the app is ready."""

import json
import os
import socket
import struct
import threading
from pathlib import Path

ZONE = Path("dns/zone.json")
QUERIES = Path("dns/queries.log")
A, IN = 1, 1


def question(packet: bytes) -> tuple[str, int, int]:
    """(name, qtype, end offset) of the packet's one question."""
    labels, i = [], 12
    while packet[i]:
        labels.append(packet[i + 1 : i + 1 + packet[i]].decode())
        i += 1 + packet[i]
    qtype = struct.unpack("!H", packet[i + 1 : i + 3])[0]
    return ".".join(labels).lower(), qtype, i + 5


def answer(packet: bytes) -> bytes:
    name, qtype, end = question(packet)
    with QUERIES.open("a") as log:
        log.write(f"{name} {qtype}\n")
    zone = json.loads(ZONE.read_text()) if ZONE.exists() else {}
    known = name in zone
    answers = b""
    if known and qtype == A:
        rdata = socket.inet_aton(zone[name])
        answers = struct.pack("!HHHIH", 0xC00C, A, IN, 5, 4) + rdata
    flags = 0x8180 | (0 if known else 3)  # a response, recursion available; NXDOMAIN
    header = struct.pack(
        "!HHHHHH", *struct.unpack("!H", packet[:2]), flags, 1, int(bool(answers)), 0, 0
    )
    return header + packet[12:end] + answers


def serve_dns() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    while True:
        packet, peer = sock.recvfrom(512)
        try:
            sock.sendto(answer(packet), peer)
        except (IndexError, struct.error, UnicodeDecodeError):
            continue  # not a query this server understands: no answer


threading.Thread(target=serve_dns, daemon=True).start()
ready = socket.socket()
ready.bind(("0.0.0.0", int(os.environ["PORT"])))
ready.listen(8)
while True:
    ready.accept()[0].close()
