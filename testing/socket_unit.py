#!/usr/bin/python3
"""A socket unit, as systemd runs one (ListenStream=, then the service with LISTEN_FDS), for tests.

  socket_unit.py serve ENDPOINT CONTROL   listen on ENDPOINT (ipc:///path or tcp://ip:port) and hand
                                          the listening socket to whoever connects to the unix
                                          socket CONTROL (SCM_RIGHTS); prints "listening"; runs
                                          until its stdin closes. The socket outlives each service.
  socket_unit.py exec CONTROL -- CMD ...  fetch the socket from CONTROL, put it at descriptor 3,
                                          set LISTEN_PID (this pid, which exec keeps), LISTEN_FDS=1
                                          and LISTEN_FDNAMES, and exec CMD: the service's start.
"""

import os
import socket
import sys
import threading


def serve(endpoint, control):
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
    if os.path.exists(control):
        os.unlink(control)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(control)
    server.listen(16)

    def hand_out():
        while True:
            conn, _ = server.accept()
            with conn:
                socket.send_fds(conn, [b"fd"], [listener.fileno()])

    threading.Thread(target=hand_out, daemon=True).start()
    print("listening", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    os.unlink(control)
    if endpoint.startswith("ipc://") and os.path.exists(endpoint[len("ipc://"):]):
        os.unlink(endpoint[len("ipc://"):])


def execute(control, command):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(control)
        _, fds, _, _ = socket.recv_fds(conn, 16, 1)
    os.dup2(fds[0], 3, inheritable=True)
    if fds[0] != 3:
        os.close(fds[0])
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_FDNAMES"] = "adaptor.socket"
    os.execvp(command[0], command)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 4 and sys.argv[1] == "exec" and sys.argv[3] == "--":
        execute(sys.argv[2], sys.argv[4:])
    else:
        sys.exit(__doc__)
