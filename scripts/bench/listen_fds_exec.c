/*
 * listen_fds_exec CONTROL CMD ...: the service's start under a socket unit, as systemd does it
 * (fork, then exec with the socket at descriptor 3 and LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES), for
 * deno task gateway-bench. The socket comes over the unix socket CONTROL (SCM_RIGHTS) from
 * testing/socket_unit.py, which holds it across restarts. The C twin of `socket_unit.py exec`:
 * no Python start-up in a restart's timing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: listen_fds_exec CONTROL CMD ...\n");
        return 2;
    }
    int conn = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    if (conn < 0 || connect(conn, (struct sockaddr *) &addr, sizeof addr) != 0) {
        perror("listen_fds_exec: connect");
        return 1;
    }
    char data[16];
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *cmsg;
    if (recvmsg(conn, &msg, 0) < 0 || !(cmsg = CMSG_FIRSTHDR(&msg)) || cmsg->cmsg_type != SCM_RIGHTS) {
        fprintf(stderr, "listen_fds_exec: no descriptor from %s\n", argv[1]);
        return 1;
    }
    int fd;
    memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
    close(conn);
    if (fd != 3) {
        dup2(fd, 3);
        close(fd);
    }
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int) getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_FDNAMES", "adaptor.socket", 1);
    execvp(argv[2], argv + 2);
    perror("listen_fds_exec: exec");
    return 1;
}
