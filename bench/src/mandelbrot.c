/* Floating point: the Mandelbrot set, 50 iterations per point, on an image
 * 64 points wide and size rows high (row y samples the same line as row
 * y mod 64). The checksum is a CRC-32 of the packed bitmap. */
#include "common.h"

#define WIDTH 64
#define MAX_ITER 50

int main(int argc, char **argv) {
    long rows = bench_size(argc, argv, 64);
    uint32_t crc = 0xffffffffu;
    uint32_t inside = 0;
    for (long y = 0; y < rows; y++) {
        double ci = 2.0 * (double)(y % WIDTH) / WIDTH - 1.0;
        uint8_t bits = 0;
        for (long x = 0; x < WIDTH; x++) {
            double cr = 2.0 * (double)x / WIDTH - 1.5;
            double zr = 0, zi = 0, tr = 0, ti = 0;
            int i = 0;
            for (; i < MAX_ITER && tr + ti <= 4.0; i++) {
                zi = 2.0 * zr * zi + ci;
                zr = tr - ti + cr;
                tr = zr * zr;
                ti = zi * zi;
            }
            bits = (uint8_t)((bits << 1) | (i == MAX_ITER));
            inside += (i == MAX_ITER);
            if ((x & 7) == 7) {
                crc ^= bits;
                for (int bit = 0; bit < 8; bit++) {
                    crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
                }
                bits = 0;
            }
        }
    }
    printf("mandelbrot size=%ld checksum=%08x%08x\n", rows, (unsigned)inside, (unsigned)~crc);
    return 0;
}
