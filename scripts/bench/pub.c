/*
 * Benchmark load generator: one PUB socket connecting to the proxy's XSUB endpoint.
 *
 *   pub --connect EP --id I (--count N | --duration-ms MS) --size S [--rate R]
 *       [--ready-dir D --subs K] [--sndhwm H] [--reconnect-ivl MS] [--no-warmup]
 *
 * 1. Warm-up (how we know subscriptions have propagated): sends a KIND_WARMUP message every
 *    millisecond until the K files D/sub-0.ready .. D/sub-(K-1).ready exist. A subscriber
 *    writes its file once it has received a warm-up message from every publisher, which
 *    proves that its subscription went SUB -> XPUB -> proxy -> XSUB -> this PUB and that the
 *    path back works. Gives up after 30 s (exit 3).
 * 2. Measured run: N data messages (or as many as fit in MS milliseconds) of S bytes, each
 *    with its sequence number and the CLOCK_MONOTONIC time of its send. R = 0 (default) floods: zmq_send as fast as possible,
 *    with the PUB socket's default high-water mark unless --sndhwm is given (a PUB drops,
 *    never blocks, at its HWM; the subscriber counts what arrives). R > 0 paces the sends to
 *    R messages per second against absolute deadlines (clock_nanosleep).
 * 3. Prints one JSON line (sent count, send duration, CPU seconds so far) on stdout, then sends a KIND_END message
 *    (its seq is the number of data messages sent) every 10 ms for up to 10 s so that
 *    subscribers learn the run is over and how many messages to expect; the bench stops this
 *    process with SIGTERM once its subscribers have finished.
 */
#include "common.h"

#include <unistd.h>
#include <zmq.h>

int main (int argc, char **argv)
{
    const char *endpoint = arg_str (argc, argv, "--connect", NULL);
    if (!endpoint)
        DIE ("usage: pub --connect ENDPOINT [--id I --count N --size S --rate R --ready-dir D --subs K]");
    uint32_t id = (uint32_t) arg_int (argc, argv, "--id", 0);
    long long count = arg_int (argc, argv, "--count", -1);
    long long duration_ms = arg_int (argc, argv, "--duration-ms", -1);
    if ((count < 0) == (duration_ms < 0))
        DIE ("pub: give exactly one of --count and --duration-ms");
    long long size = arg_int (argc, argv, "--size", 64);
    long long rate = arg_int (argc, argv, "--rate", 0);
    const char *ready_dir = arg_str (argc, argv, "--ready-dir", NULL);
    long long subs = arg_int (argc, argv, "--subs", 1);
    long long sndhwm = arg_int (argc, argv, "--sndhwm", -1);
    long long reconnect_ivl = arg_int (argc, argv, "--reconnect-ivl", -1);
    int warmup = 1;
    for (int i = 1; i < argc; i++)
        if (strcmp (argv[i], "--no-warmup") == 0)
            warmup = 0;
    if (size < HEADER_SIZE)
        DIE ("--size must be at least %d bytes", HEADER_SIZE);

    void *ctx = zmq_ctx_new ();
    void *pub = zmq_socket (ctx, ZMQ_PUB);
    if (sndhwm >= 0) {
        int v = (int) sndhwm;
        zmq_setsockopt (pub, ZMQ_SNDHWM, &v, sizeof v);
    }
    if (reconnect_ivl >= 0) {
        int v = (int) reconnect_ivl;
        zmq_setsockopt (pub, ZMQ_RECONNECT_IVL, &v, sizeof v);
    }
    if (zmq_connect (pub, endpoint) != 0)
        DIE ("pub: connect %s: %s", endpoint, zmq_strerror (zmq_errno ()));

    unsigned char *buf = malloc ((size_t) size);
    memset (buf, 'x', (size_t) size);
    bench_header_t *h = (bench_header_t *) buf;
    h->pub_id = id;

    uint64_t warmups = 0;
    if (warmup && ready_dir) {
        uint64_t give_up = mono_ns () + 30000000000ull;
        for (;;) {
            int ready = 1;
            for (long long j = 0; j < subs && ready; j++) {
                char path[4096];
                snprintf (path, sizeof path, "%s/sub-%lld.ready", ready_dir, j);
                ready = access (path, F_OK) == 0;
            }
            if (ready)
                break;
            if (mono_ns () > give_up) {
                fprintf (stderr, "pub %u: subscribers not ready after 30 s\n", id);
                return 3;
            }
            h->kind = KIND_WARMUP;
            h->seq = warmups++;
            h->sent_ns = mono_ns ();
            zmq_send (pub, buf, (size_t) size, 0);
            sleep_ms (1);
        }
    }

    h->kind = KIND_DATA;
    uint64_t period = rate > 0 ? 1000000000ull / (uint64_t) rate : 0;
    uint64_t start = mono_ns ();
    uint64_t stop = duration_ms >= 0 ? start + (uint64_t) duration_ms * 1000000ull : UINT64_MAX;
    long long i = 0;
    for (; count < 0 || i < count; i++) {
        if ((i & 255) == 0 && count < 0 && mono_ns () >= stop)
            break;
        if (period) {
            uint64_t due = start + (uint64_t) i * period;
            if (mono_ns () < due)
                sleep_until_ns (due);
        }
        h->seq = (uint64_t) i;
        h->sent_ns = mono_ns ();
        zmq_send (pub, buf, (size_t) size, 0);
    }
    uint64_t end = mono_ns ();
    count = i;
    double seconds = (double) (end - start) / 1e9;
    printf ("{\"id\":%u,\"sent\":%lld,\"warmups\":%llu,\"seconds\":%.6f,\"msgs_per_s\":%.1f,\"cpu_s\":%.3f}\n",
            id, count, (unsigned long long) warmups, seconds, seconds > 0 ? (double) count / seconds : 0.0,
            cpu_seconds ());
    fflush (stdout);

    h->kind = KIND_END;
    h->seq = (uint64_t) count;
    for (int i = 0; i < 1000; i++) {
        h->sent_ns = mono_ns ();
        zmq_send (pub, buf, (size_t) size, ZMQ_DONTWAIT);
        sleep_ms (10);
    }
    int zero = 0;
    zmq_setsockopt (pub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close (pub);
    zmq_ctx_term (ctx);
    free (buf);
    return 0;
}
