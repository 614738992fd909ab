/* 64-bit directory offsets on 32-bit hosts: without it readdir fails with
   EOVERFLOW on file systems with 64-bit hashes (armv7 under qemu-user) */
#define _FILE_OFFSET_BITS 64
/* Data safety: no operation of slm destroys a user's file. The output of
   slm_quantize_file and slm_file_write is the input by another name (./,
   dir/.., a symbolic link, a hard link): refused, input untouched. A device
   node as output (/dev/full, /dev/null) is written directly and stays a
   device. A directory is refused. An existing output is replaced whole
   (its mode kept; through a symbolic link, the file it points to), and a
   process killed in the middle of writing leaves the old file and no
   temporary file. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "test.h"
#include "../slm.h"

#include <stdlib.h>
#include <string.h>

#if defined(__unix__) || defined(__APPLE__)
#define HAVE_POSIX 1
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#if defined(HAVE_POSIX)
static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* 1 if the file holds exactly p[n] */
static int holds(const char *path, const void *p, size_t n) {
    size_t m = 0;
    unsigned char *b = read_all(path, &m);
    int ok = b && m == n && memcmp(b, p, n) == 0;
    free(b);
    return ok;
}

/* Names in dir other than . and .., joined by spaces into out. */
static int list_dir(const char *dir, char *out, size_t cap) {
    DIR *d = opendir(dir);
    int n = 0;
    out[0] = 0;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", l ? " " : "", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static int kill_after;
static void kill_log(void *user, int level, const char *msg) {
    (void)user, (void)msg;
    if (level == SLM_LOG_INFO && --kill_after == 0) kill(getpid(), SIGKILL); /* mid-write */
}

static void rm_rf_dir(const char *dir) {
    DIR *d = opendir(dir);
    char p[1024];
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) rm_rf_dir(p);
        else unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}
#endif

void test_safety(void) {
#if !defined(HAVE_POSIX)
    printf("  data safety: the POSIX cases (links, devices, fork) do not apply here, skipped\n");
#else
    char dir[512], in[600], out[600], alias[700], names[2048];
    snprintf(dir, sizeof dir, "%s/slm-safety-%ld", tmp_dir(), (long)getpid());
    rm_rf_dir(dir);
    CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    size_t n_model = 0;
    unsigned char *model = read_all(data_path("demo/kjv-1m-f32.gguf"), &n_model);
    CHECK(model != NULL, "demo model");
    if (!model) return;
    snprintf(in, sizeof in, "%s/in.gguf", dir);
    CHECK(write_bytes(in, model, n_model), "copy the model");
    snprintf(alias, sizeof alias, "%s/sub", dir);
    mkdir(alias, 0755);

    slm_quantize_params qp;
    slm_quantize_params_init(&qp);
    qp.type = SLM_TYPE_Q8_0;
    qp.mix = SLM_MIX_PURE;
    qp.n_threads = 1;
    slm_error err;

    /* the input by other names */
    static const char *const how[4] = {"./", "dir/../", "symlink", "hard link"};
    for (int k = 0; k < 4; k++) {
        if (k == 0) snprintf(alias, sizeof alias, "%s/./in.gguf", dir);
        if (k == 1) snprintf(alias, sizeof alias, "%s/sub/../in.gguf", dir);
        if (k == 2) {
            snprintf(alias, sizeof alias, "%s/link.gguf", dir);
            CHECK(symlink("in.gguf", alias) == 0, "symlink");
        }
        if (k == 3) {
            snprintf(alias, sizeof alias, "%s/hard.gguf", dir);
            CHECK(link(in, alias) == 0, "hard link");
        }
        slm_status st = slm_quantize_file(in, alias, &qp, NULL, &err);
        CHECK(st == SLM_ERR_INVALID_ARG && strstr(err.message, "same file"), "output = input by %s: %d %s", how[k],
              (int)st, err.message);
        CHECK(holds(in, model, n_model), "the input is untouched after output by %s", how[k]);
        if (k >= 2) unlink(alias);
    }
    CHECK(list_dir(dir, names, sizeof names) == 2, "no stray files: %s", names);

    /* devices: written directly, never replaced or removed */
    struct stat sb;
    if (stat("/dev/full", &sb) == 0 && S_ISCHR(sb.st_mode) && access("/dev/full", W_OK) == 0) {
        slm_status st = slm_quantize_file(in, "/dev/full", &qp, NULL, &err);
        CHECK(st == SLM_ERR_IO && strstr(err.message, "/dev/full") && strstr(err.message, "write error"),
              "quantize to /dev/full: %d %s", (int)st, err.message);
        CHECK(stat("/dev/full", &sb) == 0 && S_ISCHR(sb.st_mode), "/dev/full is still a device");
        st = slm_file_write("/dev/full", model, 100000, &err);
        CHECK(st == SLM_ERR_IO, "slm_file_write to /dev/full fails: %s", err.message);
        CHECK(stat("/dev/full", &sb) == 0 && S_ISCHR(sb.st_mode), "/dev/full is still a device");
        printf("  /dev/full: %s\n", err.message);
    } else {
        printf("  /dev/full: not here, skipped\n");
    }
    if (stat("/dev/null", &sb) == 0 && S_ISCHR(sb.st_mode) && access("/dev/null", W_OK) == 0) {
        CHECK(slm_quantize_file(in, "/dev/null", &qp, NULL, &err) == SLM_OK, "quantize to /dev/null: %s", err.message);
        CHECK(stat("/dev/null", &sb) == 0 && S_ISCHR(sb.st_mode), "/dev/null is still a device");
    }
    /* a directory */
    snprintf(alias, sizeof alias, "%s/sub", dir);
    CHECK(slm_quantize_file(in, alias, &qp, NULL, &err) == SLM_ERR_IO && strstr(err.message, "directory"),
          "a directory as output: %s", err.message);
    CHECK(slm_file_write(alias, "x", 1, &err) == SLM_ERR_IO, "slm_file_write to a directory: %s", err.message);
    rmdir(alias);

    /* replacing an existing file: whole, with its mode */
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    CHECK(write_bytes(out, "old", 3), "old output");
    chmod(out, 0640);
    slm_quantize_stats qs;
    CHECK(slm_quantize_file(in, out, &qp, &qs, &err) == SLM_OK, "quantize over an existing file: %s", err.message);
    CHECK(stat(out, &sb) == 0 && (sb.st_mode & 0777) == 0640 && (uint64_t)sb.st_size == qs.file_out,
          "replaced, mode 0640 kept (mode %o, %lld bytes, %llu reported)", (unsigned)(sb.st_mode & 0777),
          (long long)sb.st_size, (unsigned long long)qs.file_out);
    slm_model *m = NULL;
    CHECK(slm_model_load_file(out, NULL, &m, &err) == SLM_OK, "the new file loads: %s", err.message);
    slm_model_free(m);
    CHECK(list_dir(dir, names, sizeof names) == 2, "no stray files: %s", names);

    /* through a symbolic link: the file it points to is replaced, the link stays */
    snprintf(alias, sizeof alias, "%s/link.gguf", dir);
    CHECK(symlink("out.gguf", alias) == 0, "symlink to the output");
    CHECK(slm_file_write(alias, "new", 3, &err) == SLM_OK, "write through a link: %s", err.message);
    CHECK(lstat(alias, &sb) == 0 && S_ISLNK(sb.st_mode), "the link is still a link");
    CHECK(holds(out, "new", 3), "the file it points to holds the new bytes");
    unlink(alias);
    /* a dangling link: its file is created, as cp does */
    CHECK(symlink("made.bin", alias) == 0, "dangling symlink");
    CHECK(slm_file_write(alias, "made", 4, &err) == SLM_OK, "write through a dangling link: %s", err.message);
    snprintf(names, sizeof names, "%s/made.bin", dir);
    CHECK(holds(names, "made", 4), "the dangling link's file was created");
    unlink(names);
    unlink(alias);
    /* a missing directory: the reason */
    snprintf(alias, sizeof alias, "%s/nodir/x.bin", dir);
    CHECK(slm_file_write(alias, "x", 1, &err) == SLM_ERR_IO && strstr(err.message, "No such file"),
          "a missing directory: %s", err.message);

    /* killed while writing (after two tensors): the old output stays, and
       no temporary file is left */
    CHECK(write_bytes(out, "old", 3), "old output");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        slm_quantize_params kq = qp;
        kill_after = 2;
        kq.log = kill_log;
        slm_quantize_file(in, out, &kq, NULL, NULL);
        _exit(0); /* not reached */
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait");
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer was killed mid-write (status %d)", status);
    CHECK(holds(out, "old", 3), "the old output is untouched after the kill");
    int left = list_dir(dir, names, sizeof names);
    CHECK(left == 2, "no temporary file left after the kill: %s", names);

    /* a failed write (the input is not a model): the old output stays */
    snprintf(alias, sizeof alias, "%s/bad.gguf", dir);
    CHECK(write_bytes(alias, "GGUF....", 8), "bad input");
    CHECK(slm_quantize_file(alias, out, &qp, NULL, &err) != SLM_OK, "a bad input fails");
    CHECK(holds(out, "old", 3), "the old output is untouched after a failure");
    unlink(alias);

    printf("  data safety: same file by ./, .., symlink, hard link refused; devices kept; kill mid-write: "
           "old file kept, %d entries in the directory (%s)\n", left, names);
    free(model);
    rm_rf_dir(dir);
#endif
}
