"""A gateway worker as Adobe's api-gateway-zmq-logger on CZMQ 3 sets it up, on pyzmq (an
independent libzmq): zctx's defaults, SNDHWM 1000 and RCVHWM 1000, linger 0, libzmq's 100 ms
reconnect interval, and a send that drops in silence when the queue is full (no NODROP).
Publishes `<argv[2]>.<seq>` to argv[1] at argv[3] events a second, in 1 ms ticks. Prints
"publishing" once connected; when stdin closes, prints "published N" (the count) and exits."""

import sys
import threading
import time

import zmq

endpoint, name, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
ctx = zmq.Context()
pub = ctx.socket(zmq.PUB)
pub.setsockopt(zmq.SNDHWM, 1000)
pub.setsockopt(zmq.RCVHWM, 1000)
pub.setsockopt(zmq.LINGER, 0)
pub.connect(endpoint)
print("publishing", flush=True)

stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
seq = 0
start = time.monotonic()
while not stop.is_set():
    due = int((time.monotonic() - start) * rate)
    while seq < due:
        pub.send(f"{name}.{seq}".encode())  # a PUB at its HWM drops, as zstr_send's did
        seq += 1
    time.sleep(0.001)
print(f"published {seq}", flush=True)
pub.close()
ctx.term()
