"""A gateway worker stand-in on pyzmq (an independent libzmq): a PUB connects to argv[1] and
publishes `<argv[2]>.<seq>` every 10 ms, as an nginx worker does with its events. Its libzmq
keeps every subscription the adaptor passes upstream; the tests read its RSS from
/proc/PID/status. Prints "publishing" once connected; runs until killed or stdin closes."""

import sys
import threading
import time

import zmq

endpoint, name = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
pub = ctx.socket(zmq.PUB)
pub.setsockopt(zmq.LINGER, 0)
pub.connect(endpoint)
print("publishing", flush=True)

stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
seq = 0
while not stop.is_set():
    try:
        pub.send(f"{name}.{seq}".encode(), zmq.NOBLOCK)
    except zmq.Again:
        pass
    seq += 1
    time.sleep(0.01)
pub.close()
ctx.term()
