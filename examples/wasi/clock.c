/* Read the clocks, sleep briefly and draw random bytes; print checks, not values,
 * so the output is the same on every run. */
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

static int64_t ns(clockid_t id) {
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(void) {
    struct timespec res;
    printf("monotonic resolution ok: %d\n",
           clock_getres(CLOCK_MONOTONIC, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0);
    int64_t wall = ns(CLOCK_REALTIME);
    printf("realtime after 2020: %d\n", wall > (int64_t)1577836800 * 1000000000);
    int64_t start = ns(CLOCK_MONOTONIC);
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    int64_t slept = ns(CLOCK_MONOTONIC) - start;
    printf("slept at least 20 ms: %d\n", slept >= 20 * 1000 * 1000);
    unsigned char a[32], b[32];
    getentropy(a, sizeof a);
    getentropy(b, sizeof b);
    printf("random buffers differ: %d\n", memcmp(a, b, sizeof a) != 0);
    return 0;
}
