/* The command-line tool as a user meets it (build/slm, SLM_CLI overrides):
   the validation table (what llama.cpp accepts is accepted with its meaning,
   the rest refused with the range), --name=value, prompts from a file and
   from stdin, errors that give the reason (a directory as model, a missing
   file, a prompt longer than the context, a full stdout), the logits file
   written safely. POSIX shells only (popen with redirections). */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "test.h"

#include <stdlib.h>
#include <string.h>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/wait.h>
#define HAVE_SH 1
#endif

#if defined(HAVE_SH)
static const char *cli_path(void) { return getenv("SLM_CLI") ? getenv("SLM_CLI") : "build/slm"; }

/* Run `slm ARGS` through sh (stderr into out); the exit code, -2 if no CLI. */
static int cli(const char *args, char *out, size_t cap) {
    FILE *probe = fopen(cli_path(), "rb");
    if (!probe) return -2;
    fclose(probe);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s%s", cli_path(), args, strstr(args, "2>") ? "" : " 2>&1");
    FILE *p = popen(cmd, "r");
    if (!p) return -2;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}
#endif

void test_cli(void) {
#if !defined(HAVE_SH)
    printf("  slm CLI: no POSIX shell here, skipped\n");
#else
    char out[16384], args[2048];
    const char *M = data_path("demo/kjv-1m-q8_0.gguf");
    snprintf(args, sizeof args, "version");
    int rc = cli(args, out, sizeof out);
    CHECK(rc != -2, "build/slm not found (make builds it; SLM_CLI overrides the path)");
    if (rc == -2) return;

    /* the validation table: option, value, accepted?, words of the message */
    static const struct {
        const char *opt;
        int ok;
        const char *says;
    } TABLE[] = {
        {"--top-p 2", 0, "between 0 and 1"},   {"--top-p 1", 1, NULL},        {"--top-p=0.5", 1, NULL},
        {"--min-p 1.5", 0, "between 0 and 1"}, {"--min-p 0", 1, NULL},        {"--top-k -5", 0, ">= 0"},
        {"--top-k 0", 1, NULL},                {"--temp -1", 0, ">= 0"},      {"--temp 0", 1, NULL},
        {"--seed -1", 1, NULL},                {"--seed -2", 0, "-1 for a random seed"},
        {"--seed 18446744073709551615", 1, NULL},
        {"-t -3", 0, "number of threads"},     {"-t -1", 1, NULL},            {"-t 0", 1, NULL},
        {"-n -1", 1, NULL},                    {"-n -2", 1, NULL},            {"-n -3", 0, "-1 (no limit)"},
        {"-c -1", 0, "-c must be"},            {"--repeat-penalty 0", 0, "> 0"},
        {"--repeat-last-n -1", 1, NULL},       {"--repeat-last-n -2", 0, ">= 0"},
        {"--temp=abc", 0, "invalid number"},   {"--no-echo=1", 0, "takes no value"},
        {"--frobnicate 1", 0, "unknown option"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; i++) {
        snprintf(args, sizeof args, "run -m %s -p \"And the\" -n 2 %s", M, TABLE[i].opt);
        rc = cli(args, out, sizeof out);
        int ok = TABLE[i].ok ? rc == 0 : rc == 1 && TABLE[i].says && strstr(out, TABLE[i].says) != NULL;
        CHECK(ok, "slm run %s: exit %d, expected %s:\n%s", TABLE[i].opt, rc, TABLE[i].ok ? "success" : TABLE[i].says,
              out);
        bad += !ok;
        CHECK(!strstr(out, "n_batch"), "%s does not mention n_batch", TABLE[i].opt);
    }
    printf("  slm CLI validation table: %d cases, %d wrong\n", (int)(sizeof TABLE / sizeof TABLE[0]), bad);

    /* -c above the training context: a warning, and it runs */
    snprintf(args, sizeof args, "run -m %s -p \"And the\" -n 2 -c 512", M);
    rc = cli(args, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "warning") && strstr(out, "training context (256)"), "-c 512 warns:\n%s", out);

    /* greedy text the same from -p, -p - (stdin), -f FILE and --name=value */
    char ref[4096], path[600];
    snprintf(args, sizeof args, "run -m %s -p \"And God said\" -n 8 --temp 0 -t 1 2>/dev/null", M);
    rc = cli(args, ref, sizeof ref);
    CHECK(rc == 0 && strstr(ref, "And God said"), "run -p: %d %s", rc, ref);
    snprintf(path, sizeof path, "%s/slm-cli-prompt-%d.txt", tmp_dir(), (int)rand());
    FILE *f = fopen(path, "wb");
    if (f) fputs("And God said", f), fclose(f);
    snprintf(args, sizeof args, "run --model=%s -p - --n-predict=8 --temp=0 --threads=1 2>/dev/null < %s", M, path);
    rc = cli(args, out, sizeof out);
    CHECK(rc == 0 && !strcmp(out, ref), "run -p - (stdin) and --name=value give the -p text:\n%s\n%s", out, ref);
    snprintf(args, sizeof args, "run -m %s -f %s -n 8 --temp 0 -t 1 2>/dev/null", M, path);
    rc = cli(args, out, sizeof out);
    CHECK(rc == 0 && !strcmp(out, ref), "run -f FILE gives the -p text:\n%s\n%s", out, ref);
    snprintf(args, sizeof args, "tokenize -m %s -f %s", M, path);
    rc = cli(args, out, sizeof out);
    CHECK(rc == 0 && strstr(out, " tokens"), "tokenize -f: %s", out);
    remove(path);
    snprintf(args, sizeof args, "tokenize -m %s -p a --no-bos", M);
    rc = cli(args, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "slm: 1 token\n"), "tokenize says \"1 token\": %s", out);

    /* errors with their reasons */
    snprintf(args, sizeof args, "run -m %s -p hi", data_path("demo"));
    rc = cli(args, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "is a directory") && !strstr(out, "out of memory"), "a directory as model: %s", out);
    snprintf(args, sizeof args, "run -m %s/no-such-model.gguf -p hi", tmp_dir());
    rc = cli(args, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "No such file"), "a missing model gives the reason: %s", out);
    snprintf(args, sizeof args, "run -m %s -f %s/no-such-prompt.txt", M, tmp_dir());
    rc = cli(args, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "No such file"), "a missing prompt file gives the reason: %s", out);
    {
        char longp[1200];
        size_t k = 0;
        while (k + 5 < sizeof longp - 1) memcpy(longp + k, "Lord ", 5), k += 5;
        longp[k] = 0;
        snprintf(args, sizeof args, "run -m %s -c 32 -p \"%s\"", M, longp);
        rc = cli(args, out, sizeof out);
        CHECK(rc == 1 && strstr(out, "-c") && strstr(out, "trained with 256") && !strstr(out, "Lord Lord"),
              "a prompt longer than the context names -c and the training context, without echoing it:\n%.300s", out);
    }
    snprintf(args, sizeof args, "run -m %s -p hi -n 4 2>&1 > /dev/full", M);
    if (fopen("/dev/full", "wb")) {
        rc = cli(args, out, sizeof out);
        CHECK(rc == 1 && strstr(out, "write error on standard output"), "run > /dev/full exits 1: %d %s", rc, out);
    }
    snprintf(args, sizeof args, "chat -m %s --template ChatML -n 2 < /dev/null", M);
    rc = cli(args, out, sizeof out);
    CHECK(rc == 0, "--template ChatML (any case): %d %s", rc, out);

    /* --prompt-cache: the same text with and without it; the second run
       reuses the prompt, a longer prompt reuses the shared part */
    {
        char cache[600], plain[4096], again[4096];
        snprintf(cache, sizeof cache, "%s/slm-cli-cache-%d.bin", tmp_dir(), (int)rand());
        remove(cache);
        snprintf(args, sizeof args, "run -m %s -p \"And the LORD said unto Moses\" -n 8 --temp 0 -t 1 2>/dev/null", M);
        cli(args, plain, sizeof plain);
        snprintf(args, sizeof args, "run -m %s -p \"And the LORD said unto Moses\" -n 8 --temp 0 -t 1 --prompt-cache %s",
                 M, cache);
        rc = cli(args, out, sizeof out);
        CHECK(rc == 0 && strstr(out, "0 of 7 prompt tokens reused"), "first run fills the cache: %s", out);
        snprintf(args, sizeof args,
                 "run -m %s -p \"And the LORD said unto Moses\" -n 8 --temp 0 -t 1 --prompt-cache %s 2>/dev/null", M,
                 cache);
        rc = cli(args, again, sizeof again);
        CHECK(rc == 0 && !strcmp(again, plain), "the same text from the cache:\n%s\n%s", again, plain);
        snprintf(args, sizeof args, "run -m %s -p \"And the LORD said unto Moses and\" -n 2 --prompt-cache %s", M, cache);
        rc = cli(args, out, sizeof out);
        CHECK(rc == 0 && strstr(out, "7 of 8 prompt tokens reused"), "a longer prompt reuses the cached part: %s", out);
        snprintf(args, sizeof args, "run -m %s -p \"And\" -n 2 --prompt-cache %s",
                 data_path("demo/kjv-1m-f32.gguf"), cache);
        rc = cli(args, out, sizeof out);
        CHECK(rc == 0 && strstr(out, "another model"), "another model's cache is not used: %s", out);
        remove(cache);
    }

    /* context shift: chat drops the oldest turns and goes on; with
       --no-context-shift later messages are refused; run --context-shift
       generates past the context */
    {
        const char *msgs = "And the LORD said unto Moses\\nAnd Moses went up\\nAnd the people\\nAnd it came to pass\\n"
                           "Blessed are the meek\\n";
        snprintf(args, sizeof args, "chat -m %s -c 96 -n 16 -s \"In the beginning\" --temp 0 -t 1 -v 2>&1 < /dev/null", M);
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "printf '%s' | %s chat -m %s -c 96 -n 16 -s \"In the beginning\" --temp 0 -t 1 -v 2>&1",
                 msgs, cli_path(), M);
        FILE *p = popen(cmd, "r");
        size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
        out[n] = 0;
        rc = p ? pclose(p) : -1;
        int turns = 0, drops = 0;
        for (const char *q = out; (q = strstr(q, "slm: turn ")) != NULL; q++) turns++;
        for (const char *q = out; (q = strstr(q, "dropped the oldest")) != NULL; q++) drops++;
        CHECK(rc == 0 && turns == 5 && drops >= 2 && strstr(out, "the system prompt stays"),
              "chat shifts the context: %d turns, %d shifts:\n%s", turns, drops, out);
        printf("  slm chat -c 96: 5 messages answered, %d context shifts\n", drops);
        snprintf(cmd, sizeof cmd,
                 "printf '%s' | %s chat -m %s -c 96 -n 16 -s \"In the beginning\" --temp 0 -t 1 -v --no-context-shift 2>&1",
                 msgs, cli_path(), M);
        p = popen(cmd, "r");
        n = p ? fread(out, 1, sizeof out - 1, p) : 0;
        out[n] = 0;
        rc = p ? pclose(p) : -1;
        turns = 0;
        for (const char *q = out; (q = strstr(q, "slm: turn ")) != NULL; q++) turns++;
        CHECK(rc == 0 && turns < 5 && strstr(out, "context is full") && !strstr(out, "dropped"),
              "--no-context-shift refuses instead (%d turns):\n%s", turns, out);
        snprintf(args, sizeof args, "run -m %s -p \"And the LORD said\" -n 300 -c 128 --context-shift --seed 1 -t 1", M);
        rc = cli(args, out, sizeof out);
        CHECK(rc == 0 && strstr(out, "context shift 1: kept 1 + 63 tokens") && strstr(out, "generated 300 tokens"),
              "run --context-shift generates past the context:\n%.400s", out);
        snprintf(args, sizeof args, "run -m %s -p \"And the LORD said\" -n 300 -c 128 --seed 1 -t 1", M);
        rc = cli(args, out, sizeof out);
        CHECK(rc == 0 && strstr(out, "stop: context full"), "without it, run stops at the full context");
    }

    /* logits: written through slm_file_write; /dev/full gives the reason */
    snprintf(args, sizeof args, "logits -m %s --ids \"1 2\" --out=/dev/full", M);
    rc = cli(args, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "/dev/full"), "logits to /dev/full: %d %s", rc, out);

    /* bench -d: the tests run after D tokens of context (attention at depth);
       the test names carry the depth, and a negative depth is refused */
    snprintf(args, sizeof args, "bench -m %s -t 1,2 -p 8 -n 4 -r 1 -d 600 --csv", M);
    rc = cli(args, out, sizeof out);
    CHECK(rc == 0 && strstr(out, ",1,pp8@d600,") && strstr(out, ",1,tg4@d600,") && strstr(out, ",2,pp8@d600,") &&
              strstr(out, ",2,tg4@d600,"),
          "bench -d 600 (several chunks of keys):\n%s", out);
    snprintf(args, sizeof args, "bench -m %s -t 1 -p 8 -n 0 -r 1 --depth=-5", M);
    rc = cli(args, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "-d"), "bench --depth=-5 is refused: %d %s", rc, out);
#endif
}
