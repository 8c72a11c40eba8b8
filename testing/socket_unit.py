#!/usr/bin/python3
"""A socket unit, as systemd runs one (ListenStream=, then the service with LISTEN_FDS), for tests.

  socket_unit.py serve ENDPOINT[,ENDPOINT] CONTROL [--drop-all]
        listen on each ENDPOINT (ipc:///path or tcp://ip:port) and hand the listening sockets to
        whoever connects to the unix socket CONTROL (SCM_RIGHTS); prints "listening"; runs until
        its stdin closes. The sockets outlive each service. --drop-all: a socket filter that drops
        every packet is left on the sockets, as an adaptor killed at its connection cap leaves it.
  socket_unit.py exec CONTROL -- CMD ...
        fetch the sockets from CONTROL, put them at descriptors 3, 4, ..., set LISTEN_PID (this
        pid, which exec keeps), LISTEN_FDS and LISTEN_FDNAMES, and exec CMD: the service's start.
"""

import ctypes
import fcntl
import os
import socket
import struct
import sys
import threading

SO_ATTACH_FILTER = 26


def drop_all(listener):
    """Attaches the classic BPF program `ret #0` (drop everything) to `listener`."""
    insn = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0))
    program = struct.pack("HL", 1, ctypes.addressof(insn))  # struct sock_fprog
    listener.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)


def listen(endpoint):
    if endpoint.startswith("ipc://"):
        path = endpoint[len("ipc://"):]
        if os.path.exists(path):
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o666)
    elif endpoint.startswith("tcp://"):
        host, port = endpoint[len("tcp://"):].rsplit(":", 1)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
    else:
        sys.exit(f"socket_unit.py: cannot listen on {endpoint}")
    listener.listen(1024)
    return listener


def serve(endpoints, control, drop):
    listeners = [listen(endpoint) for endpoint in endpoints]
    if drop:
        for listener in listeners:
            drop_all(listener)
    if os.path.exists(control):
        os.unlink(control)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(control)
    server.listen(16)

    def hand_out():
        while True:
            conn, _ = server.accept()
            with conn:
                socket.send_fds(conn, [b"fd"], [listener.fileno() for listener in listeners])

    threading.Thread(target=hand_out, daemon=True).start()
    print("listening", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    os.unlink(control)
    for endpoint in endpoints:
        if endpoint.startswith("ipc://") and os.path.exists(endpoint[len("ipc://"):]):
            os.unlink(endpoint[len("ipc://"):])


def execute(control, command):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(control)
        _, fds, _, _ = socket.recv_fds(conn, 16, 16)
    # Moved above the range first, so that placing one does not close another.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 3 + len(fds)) for fd in fds]
    for fd in fds:
        os.close(fd)
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i, inheritable=True)
        os.close(fd)
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = str(len(fds))
    os.environ["LISTEN_FDNAMES"] = ":".join(["adaptor.socket"] * len(fds))
    os.execvp(command[0], command)


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "serve":
        serve(sys.argv[2].split(","), sys.argv[3], sys.argv[4:] == ["--drop-all"])
    elif len(sys.argv) > 4 and sys.argv[1] == "exec" and sys.argv[3] == "--":
        execute(sys.argv[2], sys.argv[4:])
    else:
        sys.exit(__doc__)
