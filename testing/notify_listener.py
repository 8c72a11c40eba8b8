"""A service manager's end of sd_notify(3) for tests: binds an AF_UNIX datagram socket at argv[1]
(a path, or @name for the abstract namespace), prints "listening", then one JSON line per
datagram: its fields, the sender's pid (SO_PASSCRED), CLOCK_MONOTONIC at receipt in us. On the
first READY=1 it freezes the sender (SIGSTOP), tries to connect to the ipc path argv[2] and the
tcp port argv[3] (127.0.0.1), then lets it go on (SIGCONT): "probe" says what accepted at the
moment READY=1 was sent. Runs until stdin closes."""

import json
import os
import signal
import socket
import struct
import sys
import threading
import time

address, ipc_path, tcp_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
sock.bind("\0" + address[1:] if address.startswith("@") else address)
sock.settimeout(0.2)
print("listening", flush=True)


def accepts(family, target):
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect(target)
        return True
    except OSError:
        return False
    finally:
        probe.close()


stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
ready_seen = False
while not stop.is_set():
    try:
        data, ancillary, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(12))
    except socket.timeout:
        continue
    at = time.monotonic_ns() // 1000
    pid = -1
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", value[:12])[0]
    fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
    line = {"at": at, "pid": pid, "fields": fields}
    if fields.get("READY") == "1" and not ready_seen and pid > 0:
        ready_seen = True
        os.kill(pid, signal.SIGSTOP)
        try:
            line["probe"] = {
                "ipc": accepts(socket.AF_UNIX, ipc_path),
                "tcp": accepts(socket.AF_INET, ("127.0.0.1", tcp_port)),
            }
        finally:
            os.kill(pid, signal.SIGCONT)
    print(json.dumps(line), flush=True)
sock.close()
if not address.startswith("@"):
    os.unlink(address)
