/*
 * Shared by the benchmark's C helpers (pub.c, sub.c). Not part of the adaptor.
 *
 * Every benchmark message starts with this header; the rest of the payload is filler.
 * Publishers and subscribers run on the same machine, so CLOCK_MONOTONIC stamps taken in
 * different processes are directly comparable.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

enum { KIND_DATA = 0, KIND_WARMUP = 1, KIND_END = 2 };

typedef struct {
    uint64_t seq;     /* 0..count-1 for data; a counter for warm-up; count for END */
    uint64_t sent_ns; /* CLOCK_MONOTONIC at zmq_send */
    uint32_t pub_id;  /* which publisher (0..pubs-1) */
    uint32_t kind;    /* KIND_* */
} bench_header_t;

#define HEADER_SIZE ((int) sizeof (bench_header_t))

static inline uint64_t mono_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static inline void sleep_until_ns (uint64_t deadline)
{
    struct timespec ts = {(time_t) (deadline / 1000000000ull), (long) (deadline % 1000000000ull)};
    while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static inline void sleep_ms (int ms)
{
    sleep_until_ns (mono_ns () + (uint64_t) ms * 1000000ull);
}

/* CPU seconds (user + system) used so far by this process, all threads. */
static inline double cpu_seconds (void)
{
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    return (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
           + (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

#define DIE(...)                                                                                   \
    do {                                                                                           \
        fprintf (stderr, __VA_ARGS__);                                                             \
        fputc ('\n', stderr);                                                                      \
        exit (1);                                                                                  \
    } while (0)

/* Parses "--name value" pairs; returns the value of `name` or `fallback`. */
static inline const char *arg_str (int argc, char **argv, const char *name, const char *fallback)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp (argv[i], name) == 0)
            return argv[i + 1];
    return fallback;
}

static inline long long arg_int (int argc, char **argv, const char *name, long long fallback)
{
    const char *text = arg_str (argc, argv, name, NULL);
    if (!text)
        return fallback;
    char *end;
    long long value = strtoll (text, &end, 10);
    if (*end != '\0')
        DIE ("%s: bad number '%s'", name, text);
    return value;
}

#endif
