/* Recursion: naive Fibonacci. Each of the size rounds computes fib(16) or
 * fib(17), chosen by the running result so the compiler cannot hoist it. */
#include "common.h"

static uint32_t fib(uint32_t n) {
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

int main(int argc, char **argv) {
    long rounds = bench_size(argc, argv, 10);
    uint32_t acc = 0;
    for (long i = 0; i < rounds; i++) {
        acc = acc * 31u + fib(16u + (acc & 1u));
    }
    printf("fib size=%ld checksum=%08x\n", rounds, (unsigned)acc);
    return 0;
}
