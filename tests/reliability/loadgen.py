#!/usr/bin/env python3
"""loadgen.py - per-device increasing sequence numbers over real MQTT.

usage: loadgen.py HOST PORT NDEV RATE OUTDIR

Publishes 1, 2, 3, ... to every topic seq/dev<i> (i = 0 .. NDEV-1), RATE
numbers per second per device, through one `mosquitto_pub -l -q 1` per device
(the real client, one line = one message). Runs until SIGTERM/SIGINT, then
closes the publishers' stdin, waits for them and writes the last number it
generated to OUTDIR/last. A publisher that dies (the broker went away) is
restarted on the next tick; numbers written to a dead one are simply not
delivered, which is fine: the tests only rely on order and on a final value
they publish themselves.
"""
import os
import signal
import subprocess
import sys
import time

host, port, ndev, rate, outdir = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
stop = False


def on_signal(signum, frame):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def spawn(i):
    return subprocess.Popen(
        ["mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-l",
         "-i", "loadgen-%d-%d" % (os.getpid(), i), "-t", "seq/dev%d" % i],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


pubs = [spawn(i) for i in range(ndev)]
spawned = [time.monotonic()] * ndev
n = 0
period = 1.0 / rate
next_tick = time.monotonic()
restarts = 0
while not stop:
    n += 1
    line = b"%d\n" % n
    for i, p in enumerate(pubs):
        if p.poll() is not None:
            # At most one restart per device and second while the broker is away.
            if time.monotonic() - spawned[i] < 1.0:
                continue
            pubs[i] = p = spawn(i)
            spawned[i] = time.monotonic()
            restarts += 1
        try:
            p.stdin.write(line)
            p.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
    next_tick += period
    delay = next_tick - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    else:
        next_tick = time.monotonic()

for p in pubs:
    try:
        p.stdin.close()
    except OSError:
        pass
for p in pubs:
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
with open(os.path.join(outdir, "last"), "w") as f:
    f.write("%d\n" % n)
print("# loadgen: %d numbers per device, %d publisher restarts" % (n, restarts))
