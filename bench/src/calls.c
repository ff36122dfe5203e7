/* Calls: many small direct calls, and calls through a table of function
 * pointers (call_indirect in wasm). The size is the number of rounds. */
#include "common.h"

typedef uint32_t (*op_fn)(uint32_t, uint32_t);

/* noinline keeps these as real calls at -O2, on every target. */
__attribute__((noinline)) static uint32_t op_add(uint32_t a, uint32_t b) { return a + b; }
__attribute__((noinline)) static uint32_t op_xor(uint32_t a, uint32_t b) { return a ^ (b * 2654435761u); }
__attribute__((noinline)) static uint32_t op_rot(uint32_t a, uint32_t b) { return (a << (b & 31)) | (a >> ((32 - (b & 31)) & 31)); }
__attribute__((noinline)) static uint32_t op_mul(uint32_t a, uint32_t b) { return a * (b | 1u); }
__attribute__((noinline)) static uint32_t op_sub(uint32_t a, uint32_t b) { return a - b; }
__attribute__((noinline)) static uint32_t op_mix(uint32_t a, uint32_t b) { return (a ^ (a >> 15)) + b; }
__attribute__((noinline)) static uint32_t op_min(uint32_t a, uint32_t b) { return a < b ? a : b; }
__attribute__((noinline)) static uint32_t op_max(uint32_t a, uint32_t b) { return a > b ? a : b; }

/* volatile stops the compiler from turning indirect calls into a switch. */
static op_fn volatile table[8] = {op_add, op_xor, op_rot, op_mul, op_sub, op_mix, op_min, op_max};

__attribute__((noinline)) static uint32_t step(uint32_t acc, uint32_t i) {
    return op_add(op_xor(acc, i), 1u);
}

int main(int argc, char **argv) {
    long rounds = bench_size(argc, argv, 10000);
    uint32_t acc = 1;
    for (long i = 0; i < rounds; i++) {
        acc = step(acc, (uint32_t)i);
        uint32_t r = bench_rand();
        acc = table[r & 7](acc, r >> 3);
        acc = table[(r >> 8) & 7](acc, (uint32_t)i);
    }
    printf("calls size=%ld checksum=%08x\n", rounds, (unsigned)acc);
    return 0;
}
