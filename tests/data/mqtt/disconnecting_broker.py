#!/usr/bin/env python3
"""A minimal MQTT 5 server for the tests: it accepts every CONNECT, answers
SUBSCRIBE, PUBLISH (QoS 1) and PINGREQ, and closes each of the first N
connections after HOLD seconds with a DISCONNECT carrying REASON (mosquitto
2.0.11 never sends one: it closes the socket). Later connections are kept.

usage: disconnecting_broker.py PORT N HOLD_S REASON_HEX
"""
import select
import socket
import sys
import threading
import time

port, n_drop, hold, reason = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4], 16)
count = 0
lock = threading.Lock()


def read_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b


def read_packet(s):
    h = read_exact(s, 1)[0]
    mult, length = 1, 0
    while True:
        d = read_exact(s, 1)[0]
        length += (d & 0x7F) * mult
        if not d & 0x80:
            break
        mult *= 128
    return h, read_exact(s, length)


def varint(b, i):
    mult, v = 1, 0
    while True:
        d = b[i]
        i += 1
        v += (d & 0x7F) * mult
        if not d & 0x80:
            return v, i
        mult *= 128


def serve(s):
    global count
    try:
        h, _ = read_packet(s)
        if h >> 4 != 1:
            return
        with lock:  # only connections that send CONNECT count
            count += 1
            drop = count <= n_drop
        start = time.monotonic()
        s.sendall(bytes([0x20, 3, 0, 0, 0]))  # CONNACK, success, no properties
        while True:
            if drop and time.monotonic() - start >= hold:
                s.sendall(bytes([0xE0, 2, reason, 0]))  # DISCONNECT with a reason
                return
            r, _, _ = select.select([s], [], [], 0.05)
            if not r:
                continue
            h, body = read_packet(s)
            kind = h >> 4
            if kind == 8:  # SUBSCRIBE: packet id, properties, filters
                pid = body[:2]
                plen, i = varint(body, 2)
                i += plen
                codes = b""
                while i < len(body):
                    tl = int.from_bytes(body[i:i + 2], "big")
                    i += 2 + tl + 1
                    codes += b"\x01"
                payload = pid + b"\x00" + codes
                s.sendall(bytes([0x90, len(payload)]) + payload)
            elif kind == 3 and (h >> 1) & 3 == 1:  # PUBLISH QoS 1: PUBACK
                tl = int.from_bytes(body[:2], "big")
                s.sendall(bytes([0x40, 2]) + body[2 + tl:4 + tl])
            elif kind == 12:  # PINGREQ
                s.sendall(bytes([0xD0, 0]))
            elif kind == 14:  # DISCONNECT
                return
    except (EOFError, OSError):
        pass
    finally:
        s.close()


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(8)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
