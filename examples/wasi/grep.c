/* Print the lines of each FILE (or stdin) that contain PATTERN, like grep -F -n.
 * Exit status 0 when a line matched, 1 when none did, 2 on error. */
#include <stdio.h>
#include <string.h>

static int scan(FILE *f, const char *name, const char *pattern, int show_name) {
    char line[65536];
    int matched = 0;
    long number = 0;
    while (fgets(line, sizeof line, f)) {
        number++;
        if (strstr(line, pattern)) {
            matched = 1;
            if (show_name) printf("%s:", name);
            printf("%ld:%s", number, line);
            size_t len = strlen(line);
            if (len && line[len - 1] != '\n') putchar('\n');
        }
    }
    return matched;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATTERN [FILE...]\n", argv[0]);
        return 2;
    }
    int matched = 0, status = 0;
    if (argc == 2) return scan(stdin, "-", argv[1], 0) ? 0 : 1;
    for (int i = 2; i < argc; i++) {
        FILE *f = fopen(argv[i], "r");
        if (!f) { perror(argv[i]); status = 2; continue; }
        matched |= scan(f, argv[i], argv[1], argc > 3);
        fclose(f);
    }
    return status ? status : (matched ? 0 : 1);
}
