/* Copy SRC to DST, creating DST's parent directory, then list that directory.
 * Run: wasmtee run --dir ./data::/data copy.wasm /data/in.txt /data/out/in.txt */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int make_parent(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 0;
    size_t n = (size_t)(slash - path);
    if (n >= sizeof dir) return -1;
    memcpy(dir, path, n);
    dir[n] = '\0';
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return -1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SRC DST\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    if (!in) { perror(argv[1]); return 1; }
    if (make_parent(argv[2]) != 0) { perror("mkdir"); return 1; }
    FILE *out = fopen(argv[2], "wb");
    if (!out) { perror(argv[2]); return 1; }
    char buf[8192];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (fwrite(buf, 1, n, out) != n) { perror("write"); return 1; }
        total += n;
    }
    fclose(in);
    if (fclose(out) != 0) { perror("close"); return 1; }
    printf("copied %zu bytes\n", total);

    char dir[4096];
    snprintf(dir, sizeof dir, "%s", argv[2]);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0'; else strcpy(dir, ".");
    DIR *d = opendir(dir[0] ? dir : "/");
    if (!d) { perror(dir); return 1; }
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        struct stat st;
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", dir, entry->d_name);
        if (stat(full, &st) == 0) printf("%s %lld\n", entry->d_name, (long long)st.st_size);
    }
    closedir(d);
    return 0;
}
