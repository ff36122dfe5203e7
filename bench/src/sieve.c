/* Integer loops: each of the size rounds runs a sieve of Eratosthenes up to
 * 1024 and a bitwise CRC-32 (no lookup table) over the sieve bytes, chained
 * from the previous round's CRC. */
#include <string.h>
#include "common.h"

#define LIMIT 1024

static uint8_t composite[LIMIT + 1];

int main(int argc, char **argv) {
    long rounds = bench_size(argc, argv, 10);
    uint32_t primes = 0;
    uint32_t crc = 0xffffffffu;
    for (long round = 0; round < rounds; round++) {
        memset(composite, 0, sizeof composite);
        /* Odd rounds start at 3 and skip the multiples of 2, so rounds differ. */
        long start = 2 + (round & 1);
        for (long i = start; i <= LIMIT; i++) {
            if (composite[i]) {
                continue;
            }
            primes++;
            for (long j = i * i; j <= LIMIT; j += i) {
                composite[j] = 1;
            }
        }
        for (long i = 0; i <= LIMIT; i++) {
            crc ^= composite[i];
            for (int bit = 0; bit < 8; bit++) {
                crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
            }
        }
    }
    printf("sieve size=%ld checksum=%08x%08x\n", rounds, (unsigned)primes, (unsigned)~crc);
    return 0;
}
