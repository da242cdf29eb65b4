#!/usr/bin/python3
"""powercut_load.py - the host side of one cut of `scripts/vm-test.sh --power-cut`.

Publishes /vm/cut/seq = start, start+1, ... at --rate msg/s (QoS 1) into the
guest's broker (a qemu hostfwd port) and polls the bridge's
GET /devices/cut/state (a second hostfwd) every --poll-ms; after --duration
seconds it kills qemu with SIGKILL: the power cut. Prints one JSON object:

  published  the last seq handed to the client
  acked      the highest seq whose PUBACK came back (the broker in the VM had it)
  seen       the highest seq the bridge served over HTTP before the cut
  required   the highest seq the bridge served over HTTP in a response that
             arrived at least --window-ms before the cut. The bridge had applied
             it by then, so the durability promise (a power cut loses at most
             commit_interval_ms + sync_interval_ms of transitions) says it must
             be in the database after the reboot: stored >= required. Measured,
             not guessed: no allowance for in-flight messages is needed, and the
             poll period only makes the check a little more lenient.
  seen_ms    the polls: [ms before the cut, seq served]
  sync_lag_ms  the longest a commit stayed not durable, from /metrics
             (wbmb_store_committed_seq, wbmb_store_durable_seq)

`--report FILE --stored S` then gives the age at the cut of the first lost
transition: ms between the first response that served a seq above S and the
cut (the stretch of applied transitions the cut lost, at least).
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt


def report(args):
    """The age at the cut of the first lost transition the bridge had served:
    ms between the first HTTP response showing a seq above --stored and the
    cut ("0" when none was served). The promise: below --window-ms, which is
    what stored >= required checks, at the resolution of the polls."""
    with open(args.report) as f:
        r = json.load(f)
    ages = [ms for ms, s in r["seen_ms"] if s > args.stored]
    print(round(max(ages)) if ages else 0)


def run(args):
    client = mqtt.Client(client_id="vmtest-powercut", clean_session=True)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc: connected.set() if rc == 0 else None
    # mid -> seq and mid -> PUBACK time, joined at the end: on_publish runs
    # under paho's own lock, which publish() takes too, so no lock of ours
    # may be held around publish() (single dict stores are atomic).
    mid_seq = {}
    ack_mid = {}

    def on_publish(c, u, mid):
        ack_mid[mid] = time.monotonic()

    client.on_publish = on_publish
    deadline = time.monotonic() + 60
    while True:
        try:
            client.connect("127.0.0.1", args.mqtt_port, keepalive=30)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    client.loop_start()
    if not connected.wait(60):
        sys.exit("powercut_load.py: no CONNACK within 60 s")

    seen = []  # (response arrival time, seq)
    store = []  # (request sent, response arrival, committed_seq, durable_seq)
    # The bridge's own account, from the last metrics poll: its longest
    # sync and the longest a change waited from queued to durable.
    extra_names = ("wbmb_store_sync_latency_max_seconds", "wbmb_store_durable_lag_max_seconds",
                   "wbmb_commit_latency_max_seconds",
                   "wbmb_store_checkpoint_latency_max_seconds")
    extra = {}
    stop = threading.Event()
    url = "http://127.0.0.1:%d/devices/cut/state" % args.http_port
    murl = "http://127.0.0.1:%d/metrics" % args.http_port

    def poller():
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    body = json.load(resp)
                t = time.monotonic()
                if isinstance(body.get("seq"), int):
                    seen.append((t, body["seq"]))
            except (OSError, ValueError):
                pass
            stop.wait(args.poll_ms / 1000.0)

    def metrics_poller():
        # The store's own seqs (its writes, not the messages'): how late its
        # syncs really come, measured: sync_lag below.
        while not stop.is_set():
            try:
                t_req = time.monotonic()
                with urllib.request.urlopen(murl, timeout=2) as resp:
                    text = resp.read().decode()
                t = time.monotonic()
                m = {}
                for line in text.splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[0] in ("wbmb_store_committed_seq", "wbmb_store_durable_seq"):
                        m[parts[0]] = int(float(parts[1]))
                    elif len(parts) == 2 and parts[0] in extra_names:
                        extra[parts[0]] = float(parts[1])
                if len(m) == 2:
                    store.append((t_req, t, m["wbmb_store_committed_seq"], m["wbmb_store_durable_seq"]))
            except (OSError, ValueError):
                pass
            stop.wait(args.poll_ms / 1000.0)

    for fn in (poller, metrics_poller):
        threading.Thread(target=fn, daemon=True).start()

    seq = args.start
    t0 = time.monotonic()
    period = 1.0 / args.rate
    n = 0
    while True:
        now = time.monotonic()
        if now - t0 >= args.duration:
            break
        target = t0 + n * period
        if now < target:
            time.sleep(target - now)
        info = client.publish("/vm/cut/seq", str(seq), qos=1)
        mid_seq[info.mid] = seq
        seq += 1
        n += 1
    t_kill = time.monotonic()
    os.kill(args.qemu_pid, signal.SIGKILL)
    stop.set()
    published = seq - 1
    client.loop_stop()
    acks = {mid_seq[m]: t for m, t in list(ack_mid.items()) if m in mid_seq and t <= t_kill}
    before = [s for (t, s) in seen if t <= t_kill]
    limit = t_kill - args.window_ms / 1000.0
    req = [s for (t, s) in seen if t <= limit]
    # sync_lag: for each committed_seq c the metrics showed (response at
    # r_c), the first later response whose durable_seq >= c (at r): r - r_c,
    # how long a commit stayed not yet durable, to a poll's accuracy. The
    # policy syncs sync_interval_ms after the first unsynced commit; what it
    # adds beyond that is the fsync's own time and the writer's lateness.
    lag = []
    for i, (_, r_c, c, _) in enumerate(store):
        for (_, r, _, d) in store[i:]:
            if d >= c:
                lag.append(r - r_c)
                break
    out = {
        "sync_lag_ms": round(max(lag) * 1000.0) if lag else None,
        "metrics_polls": len(store),
        "sync_max_ms": round(extra["wbmb_store_sync_latency_max_seconds"] * 1000.0)
        if "wbmb_store_sync_latency_max_seconds" in extra else None,
        "commit_max_ms": round(extra["wbmb_commit_latency_max_seconds"] * 1000.0)
        if "wbmb_commit_latency_max_seconds" in extra else None,
        "checkpoint_max_ms": round(extra["wbmb_store_checkpoint_latency_max_seconds"] * 1000.0)
        if "wbmb_store_checkpoint_latency_max_seconds" in extra else None,
        "durable_lag_max_ms": round(extra["wbmb_store_durable_lag_max_seconds"] * 1000.0)
        if "wbmb_store_durable_lag_max_seconds" in extra else None,
        "start": args.start,
        "published": published,
        "acked": max(acks) if acks else args.start - 1,
        "seen": max(before) if before else None,
        "required": max(req) if req else None,
        "polls": len(seen),
        "run_s": round(t_kill - t0, 2),
        "seen_ms": [[round((t_kill - t) * 1000.0, 1), s] for (t, s) in seen if t <= t_kill],
    }
    json.dump(out, sys.stdout)
    print()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mqtt-port", type=int)
    p.add_argument("--http-port", type=int)
    p.add_argument("--qemu-pid", type=int)
    p.add_argument("--start", type=int, default=1)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--poll-ms", type=float, default=20.0)
    p.add_argument("--window-ms", type=float, default=1100.0)
    p.add_argument("--report")
    p.add_argument("--stored", type=int)
    args = p.parse_args()
    if args.report:
        report(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
