"""Peers of `deno task attack --scenario handshake-flood`, on pyzmq (an independent libzmq).

  handshake_flood.py probe XSUB XPUB SERVER_KEY PUBLIC SECRET RATE
      A PUB on XSUB sends `probe.<send time ns>` RATE times a second; an admitted CURVE SUB on
      XPUB receives them. Prints "ready" once the first arrived; then, for each line "mark" on
      stdin, one JSON line with the latency figures (µs) of the messages received since the last
      mark. Ends when stdin closes.
  handshake_flood.py flood XPUB SERVER_KEY RATE SECONDS
      RATE CURVE clients a second, each with a fresh random key (so each is denied), each
      connecting once (no reconnect) and closed a second later. Prints one JSON line at the end.
"""

import json
import resource
import sys
import threading
import time
from collections import deque

import zmq


def probe(xsub, xpub, server_key, public, secret, rate):
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(xsub)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.curve_serverkey = server_key.encode()
    sub.curve_publickey = public.encode()
    sub.curve_secretkey = secret.encode()
    sub.setsockopt(zmq.SUBSCRIBE, b"probe.")
    sub.connect(xpub)
    marks = deque()
    threading.Thread(target=lambda: [marks.append(line) for line in sys.stdin] + [marks.append(None)],
                     daemon=True).start()
    interval = 1e9 / rate
    next_send = time.perf_counter_ns()
    samples = []
    sent = 0
    ready = False
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    while True:
        now = time.perf_counter_ns()
        if now >= next_send:
            try:
                pub.send(b"probe.%d" % now, zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                pass
            next_send += interval
            if next_send < now:
                next_send = now + interval
        wait_ms = max(0, (next_send - time.perf_counter_ns()) / 1e6)
        if poller.poll(wait_ms):
            while True:
                try:
                    msg = sub.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                samples.append((time.perf_counter_ns() - int(msg[6:])) / 1000)
                if not ready:
                    ready = True
                    samples.clear()
                    print("ready", flush=True)
        while marks:
            line = marks.popleft()
            if line is None:
                return
            s = sorted(samples)
            at = lambda q: s[min(len(s) - 1, int(q * len(s)))] if s else None
            print(json.dumps({"received": len(s), "sent": sent, "p50": at(0.5), "p99": at(0.99),
                              "p999": at(0.999), "max": s[-1] if s else None}), flush=True)
            samples = []
            sent = 0


def flood(xpub, server_key, rate, seconds):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = zmq.Context()
    ctx.setsockopt(zmq.MAX_SOCKETS, 8192)
    open_sockets = deque()
    made = 0
    failed = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * rate)
        while made < due:
            public, secret = zmq.curve_keypair()
            try:
                s = ctx.socket(zmq.SUB)
            except zmq.ZMQError:
                failed += 1  # out of sockets or descriptors: the clients already made are still open
                made += 1
                continue
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RECONNECT_IVL, -1)
            s.curve_serverkey = server_key.encode()
            s.curve_publickey = public
            s.curve_secretkey = secret
            s.connect(xpub)
            open_sockets.append((time.monotonic(), s))
            made += 1
        while open_sockets and time.monotonic() - open_sockets[0][0] > 0.5:
            open_sockets.popleft()[1].close()
        time.sleep(0.002)
    elapsed = time.monotonic() - start
    for _, s in open_sockets:
        s.close()
    ctx.term()
    print(json.dumps({"clients": made - failed, "failed": failed, "seconds": elapsed}), flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "probe":
        probe(*sys.argv[2:7], float(sys.argv[7]))
    elif mode == "flood":
        flood(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit(f"unknown mode {mode}")
