/*
 * listen_fds_exec CONTROL CMD ...: the service's start under a socket unit, as systemd does it
 * (fork, then exec with the sockets at descriptors 3, 4, ... and LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES), for
 * deno task gateway-bench. The sockets come over the unix socket CONTROL (SCM_RIGHTS) from
 * testing/socket_unit.py, which holds them across restarts. The C twin of `socket_unit.py exec`:
 * no Python start-up in a restart's timing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#define MAX_FDS 16

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
    char control[CMSG_SPACE(MAX_FDS * sizeof(int))];
    struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *cmsg;
    if (recvmsg(conn, &msg, 0) < 0 || !(cmsg = CMSG_FIRSTHDR(&msg)) || cmsg->cmsg_type != SCM_RIGHTS) {
        fprintf(stderr, "listen_fds_exec: no descriptor from %s\n", argv[1]);
        return 1;
    }
    int n = (int) ((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int fds[MAX_FDS];
    memcpy(fds, CMSG_DATA(cmsg), n * sizeof(int));
    close(conn);
    // Above the range first, so that placing one does not close another; then at 3, 4, ...
    for (int i = 0; i < n; i++) {
        int high = fcntl(fds[i], F_DUPFD, 3 + n);
        close(fds[i]);
        fds[i] = high;
    }
    for (int i = 0; i < n; i++) {
        dup2(fds[i], 3 + i);
        close(fds[i]);
    }
    char pid[32], count[8], names[MAX_FDS * 16] = "";
    snprintf(pid, sizeof pid, "%d", (int) getpid());
    snprintf(count, sizeof count, "%d", n);
    for (int i = 0; i < n; i++) strcat(strcat(names, i ? ":" : ""), "adaptor.socket");
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", count, 1);
    setenv("LISTEN_FDNAMES", names, 1);
    execvp(argv[2], argv + 2);
    perror("listen_fds_exec: exec");
    return 1;
}
