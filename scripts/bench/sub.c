/*
 * Benchmark subscriber: one SUB socket (subscribed to everything) connecting to the proxy's
 * XPUB endpoint.
 *
 *   sub --connect EP --id J --pubs P [--ready-dir D] [--idle-ms MS] [--first]
 *       [--reconnect-ivl MS] [--rcvhwm H]
 *
 * Writes D/sub-J.ready once a warm-up message from each of the P publishers has arrived (see
 * pub.c). Then counts data messages until it has seen an END message from every publisher, or
 * nothing arrived for --idle-ms (default 3000) after data started, or 120 s passed.
 * An END message carries the number of data messages its publisher sent; for a publisher
 * whose END never arrived, the highest sequence number seen + 1 stands in (reported as
 * "ends_missing").
 * Prints one JSON line: messages received, lost (messages sent - received),
 * out-of-order, the delivery window (earliest send stamp of a received data message to the
 * last data receive), throughput, and end-to-end latency percentiles (receive time minus send
 * stamp, nearest-rank) and the CPU seconds this process used (before sorting the latencies).
 * --first: print "first" on stdout as soon as any message arrives, then exit (start-up test).
 * --rcvhwm: the SUB's receive high-water mark (libzmq's default: 1000); the bench's fixed-rate
 * runs give a large one, so that a burst after a late wake-up is never dropped here.
 */
#include "common.h"

#include <fcntl.h>
#include <unistd.h>
#include <zmq.h>

static int cmp_u64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

static double pct_us (const uint64_t *sorted, uint64_t n, double p)
{
    if (n == 0)
        return 0;
    uint64_t rank = (uint64_t) (p * (double) n + 0.999999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double) sorted[rank - 1] / 1000.0;
}

int main (int argc, char **argv)
{
    const char *endpoint = arg_str (argc, argv, "--connect", NULL);
    if (!endpoint)
        DIE ("usage: sub --connect ENDPOINT [--id J --pubs P --count N --ready-dir D --idle-ms MS --first]");
    long long id = arg_int (argc, argv, "--id", 0);
    long long pubs = arg_int (argc, argv, "--pubs", 1);
    const char *ready_dir = arg_str (argc, argv, "--ready-dir", NULL);
    long long idle_ms = arg_int (argc, argv, "--idle-ms", 3000);
    long long max_ms = arg_int (argc, argv, "--max-ms", 120000);
    long long reconnect_ivl = arg_int (argc, argv, "--reconnect-ivl", -1);
    long long rcvhwm = arg_int (argc, argv, "--rcvhwm", -1);
    int first_only = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp (argv[i], "--first") == 0)
            first_only = 1;
    if (pubs < 1 || pubs > 1024)
        DIE ("--pubs must be 1..1024");

    void *ctx = zmq_ctx_new ();
    void *sub = zmq_socket (ctx, ZMQ_SUB);
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "", 0);
    int timeout = 100;
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    if (rcvhwm >= 0) {
        int v = (int) rcvhwm;
        zmq_setsockopt (sub, ZMQ_RCVHWM, &v, sizeof v);
    }
    if (reconnect_ivl >= 0) {
        int v = (int) reconnect_ivl;
        zmq_setsockopt (sub, ZMQ_RECONNECT_IVL, &v, sizeof v);
    }
    if (zmq_connect (sub, endpoint) != 0)
        DIE ("sub: connect %s: %s", endpoint, zmq_strerror (zmq_errno ()));

    uint64_t lat_cap = 1 << 20;
    uint64_t *lat = malloc ((size_t) lat_cap * sizeof *lat);
    uint64_t *sent = calloc ((size_t) pubs, sizeof *sent);
    int64_t *next_seq = calloc ((size_t) pubs, sizeof *next_seq);
    char *warm = calloc ((size_t) pubs, 1);
    char *ended = calloc ((size_t) pubs, 1);
    long long warm_pubs = 0, ended_pubs = 0;
    uint64_t received = 0, out_of_order = 0, warmups = 0, bytes = 0;
    uint64_t first_sent = UINT64_MAX, first_recv = 0, last_recv = 0;
    int ready_written = ready_dir == NULL;
    const char *why = "end";

    zmq_msg_t msg;
    zmq_msg_init (&msg);
    uint64_t started = mono_ns ();
    uint64_t last_any = started;
    for (;;) {
        int rc = zmq_msg_recv (&msg, sub, 0);
        uint64_t now = mono_ns ();
        if (rc < 0) {
            if (zmq_errno () != EAGAIN && zmq_errno () != EINTR)
                DIE ("sub: recv: %s", zmq_strerror (zmq_errno ()));
            if (received > 0 && now - last_any > (uint64_t) idle_ms * 1000000ull) {
                why = "idle";
                break;
            }
            if (now - started > (uint64_t) max_ms * 1000000ull) {
                why = "timeout";
                break;
            }
            continue;
        }
        last_any = now;
        if (first_only) {
            printf ("first\n");
            fflush (stdout);
            break;
        }
        if (rc < HEADER_SIZE)
            continue;
        bench_header_t h;
        memcpy (&h, zmq_msg_data (&msg), sizeof h);
        if (h.pub_id >= (uint32_t) pubs)
            continue;
        if (h.kind == KIND_WARMUP) {
            warmups++;
            if (!warm[h.pub_id]) {
                warm[h.pub_id] = 1;
                warm_pubs++;
            }
            if (!ready_written && warm_pubs == pubs) {
                char path[4096], tmp[4096];
                snprintf (tmp, sizeof tmp, "%s/.sub-%lld.tmp", ready_dir, id);
                snprintf (path, sizeof path, "%s/sub-%lld.ready", ready_dir, id);
                int fd = open (tmp, O_CREAT | O_WRONLY | O_TRUNC, 0644);
                if (fd < 0 || close (fd) != 0 || rename (tmp, path) != 0)
                    DIE ("sub: cannot write %s", path);
                ready_written = 1;
            }
        } else if (h.kind == KIND_DATA) {
            if (received == lat_cap) {
                lat_cap *= 2;
                if (!(lat = realloc (lat, (size_t) lat_cap * sizeof *lat)))
                    DIE ("sub: out of memory");
            }
            lat[received] = now - h.sent_ns;
            received++;
            bytes += (uint64_t) rc;
            if (h.sent_ns < first_sent)
                first_sent = h.sent_ns;
            if (!first_recv)
                first_recv = now;
            last_recv = now;
            if ((int64_t) h.seq < next_seq[h.pub_id])
                out_of_order++;
            else
                next_seq[h.pub_id] = (int64_t) h.seq + 1;
        } else if (h.kind == KIND_END && !ended[h.pub_id]) {
            ended[h.pub_id] = 1;
            sent[h.pub_id] = h.seq;
            if (++ended_pubs == pubs)
                break;
        }
    }
    zmq_msg_close (&msg);
    if (first_only)
        goto done;

    double cpu = cpu_seconds ();
    uint64_t n = received, expected = 0;
    long long ends_missing = 0;
    for (long long p = 0; p < pubs; p++) {
        if (!ended[p])
            ends_missing++;
        expected += ended[p] ? sent[p] : (uint64_t) next_seq[p];
    }
    qsort (lat, (size_t) n, sizeof *lat, cmp_u64);
    double seconds = received ? (double) (last_recv - first_sent) / 1e9 : 0;
    printf ("{\"id\":%lld,\"received\":%llu,\"expected\":%llu,\"lost\":%lld,\"out_of_order\":%llu,"
            "\"ends_missing\":%lld,\"bytes\":%llu,\"warmups\":%llu,\"stop\":\"%s\",\"first_sent_ns\":%llu,"
            "\"first_recv_ns\":%llu,"
            "\"last_recv_ns\":%llu,\"seconds\":%.6f,\"msgs_per_s\":%.1f,\"cpu_s\":%.3f,"
            "\"lat_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}}\n",
            id, (unsigned long long) received, (unsigned long long) expected,
            (long long) expected - (long long) received, (unsigned long long) out_of_order, ends_missing,
            (unsigned long long) bytes, (unsigned long long) warmups, why,
            (unsigned long long) (received ? first_sent : 0), (unsigned long long) first_recv,
            (unsigned long long) last_recv, seconds, seconds > 0 ? (double) received / seconds : 0.0, cpu,
            pct_us (lat, n, 0.50), pct_us (lat, n, 0.90), pct_us (lat, n, 0.99), pct_us (lat, n, 0.999),
            n ? (double) lat[n - 1] / 1000.0 : 0.0);
    fflush (stdout);
done:;
    int zero = 0;
    zmq_setsockopt (sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close (sub);
    zmq_ctx_term (ctx);
    return 0;
}
