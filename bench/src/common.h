/* Shared helpers for the wasmtee benchmarks.
 *
 * Each program takes one workload-size argument (argv[1]) and prints one line
 * "<name> size=<n> checksum=<hex>" on standard output, so that run.py can
 * check that every runtime computed the same result. The work grows linearly
 * with the size (size rounds of a fixed kernel, or size simulation steps), so
 * run.py can separate start-up cost from per-round cost by timing two sizes.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static long bench_size(int argc, char **argv, long default_size) {
    if (argc < 2) {
        return default_size;
    }
    char *end = NULL;
    long size = strtol(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0' || size <= 0) {
        fprintf(stderr, "invalid workload size: %s (expected a positive integer)\n", argv[1]);
        exit(2);
    }
    return size;
}

/* xorshift32: a small deterministic generator, identical on every target. */
static uint32_t bench_rng_state = 2463534242u;

static uint32_t bench_rand(void) {
    uint32_t x = bench_rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    bench_rng_state = x;
    return x;
}

#endif
