/*
 * The reference: libzmq's own C proxy, zmq_proxy(XSUB, XPUB), set up like the adaptor's main
 * channel (src/adaptor/adaptor.ts): XSUB binds --bind, XPUB binds --publish, both sockets get the
 * same SNDHWM, RCVHWM, LINGER and TCP keepalive, one context with --io-threads I/O threads.
 * As with the adaptor's -b/-p, an endpoint written '>tcp://…' is connected instead of bound
 * (the bench's two-hop chain: the aggregator's XSUB connects to the edge's XPUB), '@…' binds.
 *
 *   proxy --bind EP --publish EP [--sndhwm 10000 --rcvhwm 10000 --linger 500
 *         --io-threads 1 --tcp-keepalive 60] [--lib PATH]
 *
 * Prints "ready" on stderr once both sockets are bound; SIGTERM/SIGINT stop it (a thread
 * waiting for them shuts the context down, which ends zmq_proxy with ETERM).
 * Built twice by scripts/bench.ts: linked with -lzmq (the system libzmq), and with
 * -DBENCH_DLOPEN, where --lib names the libzmq to dlopen (the bench passes the zeromq npm
 * addon the adaptor itself uses, to separate "Deno vs C" from "libzmq build vs build").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#ifdef BENCH_DLOPEN
#include <dlfcn.h>
#define FUNCS(X)                                                                                   \
    X (void *, zmq_ctx_new, (void))                                                                \
    X (int, zmq_ctx_set, (void *, int, int))                                                       \
    X (int, zmq_ctx_term, (void *))                                                                \
    X (int, zmq_ctx_shutdown, (void *))                                                            \
    X (void *, zmq_socket, (void *, int))                                                          \
    X (int, zmq_setsockopt, (void *, int, const void *, size_t))                                   \
    X (int, zmq_bind, (void *, const char *))                                                      \
    X (int, zmq_connect, (void *, const char *))                                                   \
    X (int, zmq_proxy, (void *, void *, void *))                                                   \
    X (int, zmq_close, (void *))                                                                   \
    X (int, zmq_errno, (void))                                                                     \
    X (const char *, zmq_strerror, (int))                                                          \
    X (void, zmq_version, (int *, int *, int *))
#define DECLARE(ret, name, params) static ret(*p_##name) params;
FUNCS (DECLARE)
#define CALL(name) p_##name
static void load (const char *path)
{
    /* RTLD_LAZY: the npm addon also references Node-API functions that we never call. */
    void *lib = dlopen (path, RTLD_LAZY | RTLD_LOCAL);
    if (!lib) {
        fprintf (stderr, "proxy: dlopen %s: %s\n", path, dlerror ());
        exit (1);
    }
#define RESOLVE(ret, name, params)                                                                 \
    if (!(p_##name = (ret(*) params) dlsym (lib, #name))) {                                        \
        fprintf (stderr, "proxy: %s has no %s\n", path, #name);                                    \
        exit (1);                                                                                  \
    }
    FUNCS (RESOLVE)
}
#else
#define CALL(name) name
#endif

static const char *arg (int argc, char **argv, const char *name, const char *fallback)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp (argv[i], name) == 0)
            return argv[i + 1];
    return fallback;
}

static sigset_t stop_signals;

/* Waits for SIGTERM/SIGINT, then makes zmq_proxy return (ETERM) by shutting the context down. */
static void *signal_thread (void *ctx)
{
    int sig;
    sigwait (&stop_signals, &sig);
    CALL (zmq_ctx_shutdown) (ctx);
    return NULL;
}

static void set_int (void *socket, int option, int value)
{
    if (CALL (zmq_setsockopt) (socket, option, &value, sizeof value) != 0) {
        fprintf (stderr, "proxy: setsockopt %d: %s\n", option, CALL (zmq_strerror) (CALL (zmq_errno) ()));
        exit (1);
    }
}

int main (int argc, char **argv)
{
    const char *bind_ep = arg (argc, argv, "--bind", NULL);
    const char *publish_ep = arg (argc, argv, "--publish", NULL);
    if (!bind_ep || !publish_ep) {
        fprintf (stderr, "usage: proxy --bind EP --publish EP [--sndhwm N --rcvhwm N --linger MS "
                         "--io-threads N --tcp-keepalive S --lib PATH]\n");
        return 2;
    }
    int sndhwm = atoi (arg (argc, argv, "--sndhwm", "10000"));
    int rcvhwm = atoi (arg (argc, argv, "--rcvhwm", "10000"));
    int linger = atoi (arg (argc, argv, "--linger", "500"));
    int io_threads = atoi (arg (argc, argv, "--io-threads", "1"));
    int keepalive = atoi (arg (argc, argv, "--tcp-keepalive", "60"));
#ifdef BENCH_DLOPEN
    load (arg (argc, argv, "--lib", "libzmq.so.5"));
#endif

    /* Every thread (libzmq's too) blocks the stop signals; one thread takes them with sigwait. */
    sigemptyset (&stop_signals);
    sigaddset (&stop_signals, SIGTERM);
    sigaddset (&stop_signals, SIGINT);
    pthread_sigmask (SIG_BLOCK, &stop_signals, NULL);

    void *ctx = CALL (zmq_ctx_new) ();
    pthread_t waiter;
    pthread_create (&waiter, NULL, signal_thread, ctx);
    CALL (zmq_ctx_set) (ctx, ZMQ_IO_THREADS, io_threads);
    void *xsub = CALL (zmq_socket) (ctx, ZMQ_XSUB);
    void *xpub = CALL (zmq_socket) (ctx, ZMQ_XPUB);
    void *sockets[2] = {xsub, xpub};
    const char *endpoints[2] = {bind_ep, publish_ep};
    for (int i = 0; i < 2; i++) {
        set_int (sockets[i], ZMQ_SNDHWM, sndhwm);
        set_int (sockets[i], ZMQ_RCVHWM, rcvhwm);
        set_int (sockets[i], ZMQ_LINGER, linger);
        if (keepalive > 0) {
            set_int (sockets[i], ZMQ_TCP_KEEPALIVE, 1);
            set_int (sockets[i], ZMQ_TCP_KEEPALIVE_IDLE, keepalive);
        }
        const char *ep = endpoints[i];
        int dial = ep[0] == '>';
        if (ep[0] == '>' || ep[0] == '@')
            ep++;
        int rc = dial ? CALL (zmq_connect) (sockets[i], ep) : CALL (zmq_bind) (sockets[i], ep);
        if (rc != 0) {
            fprintf (stderr, "proxy: %s %s: %s\n", dial ? "connect" : "bind", ep,
                     CALL (zmq_strerror) (CALL (zmq_errno) ()));
            return 1;
        }
    }
    int major, minor, patch;
    CALL (zmq_version) (&major, &minor, &patch);
    fprintf (stderr, "proxy ready (pid %d, libzmq %d.%d.%d)\n", (int) getpid (), major, minor, patch);

    int rc = CALL (zmq_proxy) (xsub, xpub, NULL);
    int err = CALL (zmq_errno) ();
    CALL (zmq_close) (xsub);
    CALL (zmq_close) (xpub);
    CALL (zmq_ctx_term) (ctx);
    if (rc != 0 && err != EINTR && err != ETERM) {
        fprintf (stderr, "proxy: zmq_proxy: %s\n", CALL (zmq_strerror) (err));
        return 1;
    }
    fprintf (stderr, "proxy stopped\n");
    return 0;
}
