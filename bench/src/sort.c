/* Memory-heavy work: each of the size rounds fills two arrays of 256
 * pseudo-random 32-bit integers, sorts one with quicksort and the other with
 * heapsort, checks that they agree, and folds them into the checksum. */
#include "common.h"

static void quicksort(uint32_t *a, long lo, long hi) {
    while (lo < hi) {
        uint32_t pivot = a[lo + (hi - lo) / 2];
        long i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                uint32_t t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        /* Recurse into the smaller half so the stack depth stays logarithmic. */
        if (j - lo < hi - i) {
            quicksort(a, lo, j);
            lo = i;
        } else {
            quicksort(a, i, hi);
            hi = j;
        }
    }
}

static void sift_down(uint32_t *a, long root, long end) {
    while (2 * root + 1 < end) {
        long child = 2 * root + 1;
        if (child + 1 < end && a[child] < a[child + 1]) child++;
        if (a[root] >= a[child]) return;
        uint32_t t = a[root];
        a[root] = a[child];
        a[child] = t;
        root = child;
    }
}

static void heapsort(uint32_t *a, long n) {
    for (long i = n / 2 - 1; i >= 0; i--) sift_down(a, i, n);
    for (long end = n - 1; end > 0; end--) {
        uint32_t t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(a, 0, end);
    }
}

static uint32_t checksum(const uint32_t *a, long n) {
    uint32_t sum = 0;
    for (long i = 0; i < n; i++) sum = sum * 31u + a[i] * (uint32_t)(i + 1);
    return sum;
}

#define LENGTH 256

static uint32_t a[LENGTH];
static uint32_t b[LENGTH];

int main(int argc, char **argv) {
    long rounds = bench_size(argc, argv, 10);
    uint32_t sum = 0;
    for (long round = 0; round < rounds; round++) {
        for (long i = 0; i < LENGTH; i++) a[i] = b[i] = bench_rand();
        quicksort(a, 0, LENGTH - 1);
        heapsort(b, LENGTH);
        for (long i = 0; i < LENGTH; i++) {
            if (a[i] != b[i] || (i > 0 && a[i - 1] > a[i])) {
                printf("sort size=%ld checksum=unsorted-at-%ld\n", rounds, i);
                return 1;
            }
        }
        sum = sum * 31u + checksum(a, LENGTH);
    }
    printf("sort size=%ld checksum=%08x\n", rounds, (unsigned)sum);
    return 0;
}
