/*
 * slm - command-line tool for the slm library.
 *
 *   slm run      -m FILE -p PROMPT [-n N] [sampler options]   generate text
 *   slm chat     -m FILE [-s SYSTEM] [sampler options]        chat in the terminal
 *   slm tokenize -m FILE -p TEXT [--no-bos] [--special]       show the tokens
 *   slm info     -m FILE [-c CTX]            describe a GGUF model (or a vocabulary)
 *   slm logits   -m FILE --ids "1 2 3" [--all] --out FILE.f32
 *   slm quantize -m IN.gguf -o OUT.gguf --type Q4_K_M [-t N] [-v]
 *   slm serve    -m FILE [--host H] [--port P] [--parallel N]   OpenAI/Ollama HTTP server
 *
 * Every error prints one line to stderr and exits non-zero.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif
#include "slm.h"
#include "serve/serve.h"
#include "serve/think.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(_WIN32)
#include <io.h>
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <shellapi.h>
#define stdin_is_tty() _isatty(_fileno(stdin))
#elif defined(__unix__) || defined(__APPLE__)
#include <termios.h>
#include <unistd.h>
#define stdin_is_tty() isatty(0)
#define HAVE_TERMIOS 1
#else
#define stdin_is_tty() 1
#endif

static const char *prog = "slm";

#if defined(_WIN32)
/* Windows: the arguments as UTF-8 (the library takes UTF-8 paths and text;
   main's argv is in the ANSI code page), files opened by UTF-8 name, and
   the console set to UTF-8 output while slm runs. */
static UINT console_cp;
static void restore_console(void) { SetConsoleOutputCP(console_cp); }

static void windows_utf8(int *argc, char ***argv) {
    int n;
    wchar_t **w = CommandLineToArgvW(GetCommandLineW(), &n);
    char **a = w ? (char **)calloc((size_t)n + 1, sizeof *a) : NULL;
    for (int i = 0; a && i < n; i++) {
        int len = WideCharToMultiByte(CP_UTF8, 0, w[i], -1, NULL, 0, NULL, NULL);
        if (len <= 0 || !(a[i] = (char *)malloc((size_t)len))) a = NULL; /* keep the ANSI argv */
        else WideCharToMultiByte(CP_UTF8, 0, w[i], -1, a[i], len, NULL, NULL);
    }
    if (w) LocalFree(w);
    if (a) {
        *argc = n;
        *argv = a;
    }
    if ((console_cp = GetConsoleOutputCP()) != 0 && SetConsoleOutputCP(CP_UTF8)) atexit(restore_console);
}

static FILE *fopen_utf8(const char *path, const char *mode) {
    wchar_t w[4096], m[8];
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, 4096) > 0 &&
        MultiByteToWideChar(CP_UTF8, 0, mode, -1, m, 8) > 0)
        return _wfopen(w, m);
    return fopen(path, mode);
}
#else
#define fopen_utf8 fopen
#endif

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

/* ---- option parsing shared by the subcommands ---------------------------- */

enum { C_INFO = 1, C_LOGITS = 2, C_RUN = 4, C_TOKENIZE = 8, C_CHAT = 16 };

typedef struct opts {
    const char *cmd;
    const char *model, *ids, *out, *prompt, *prompt_file, *prompt_cache;
    char *prompt_buf; /* the prompt read from -f FILE or -p - (malloc) */
    int all, n_ctx, threads, kv_f32, no_mmap;
    int isa; /* --isa: SLM_ISA_* (0: the best this CPU runs) */
    /* run / tokenize */
    int n_predict, no_bos, special, no_echo, have_seed, have_n;
    int context_shift, no_shift, n_keep;
    /* chat */
    const char *system, *tmpl;
    int verbose, hide_thinking, no_think;
    unsigned long long seed;
    slm_sampler_params sp;
    const char *stop[16];
    int n_stop;
    /* structured output (run, chat) */
    const char *grammar_file, *schema_file;
    int json;
} opts;

static int parse_int(const char *s, const char *flag) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < -2147483647L || v > 2147483647L) die("invalid number for %s", flag);
    return (int)v;
}

static float parse_float(const char *s, const char *flag) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v == v) || v > 1e30 || v < -1e30) die("invalid number for %s", flag);
    return (float)v;
}

static const char *need_arg(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) die("option %s needs a value", argv[*i]);
    return argv[++*i];
}

static const char *INFO_HELP =
    "usage: slm info -m FILE [-c CTX] [--meta] [--tensors]\n"
    "  Print the architecture, hyperparameters, parameter count, tensor type\n"
    "  histogram, tokenizer (kind, pre-tokenizer, special tokens), chat template\n"
    "  family, file size and the memory a session of CTX tokens needs. Files\n"
    "  slm cannot run and vocabulary-only files are described as far as they go.\n"
    "  -m, --model FILE   GGUF model file\n"
    "  -c, --ctx N        context for the memory estimate (default: 4096 or the\n"
    "                     training context if smaller)\n"
    "  --meta             also list every metadata key and value\n"
    "  --tensors          also list every tensor\n"
    "  --no-mmap          read the file instead of mapping it\n";

static const char *LOGITS_HELP =
    "usage: slm logits -m FILE --ids \"ID ID ...\" [--all] --out FILE.f32\n"
    "  Run the token ids through the model and write float32 little-endian\n"
    "  logits: the last position's n_vocab values, or with --all every\n"
    "  position's (row-major [n_ids][n_vocab]).\n"
    "  -m, --model FILE   GGUF model file\n"
    "  --ids \"...\"        token ids separated by spaces or commas\n"
    "  --all              write the logits of every position\n"
    "  -o, --out FILE     output file\n"
    "  -t, --threads N    threads (default: one per performance core, at most 8)\n"
    "  --kv-f32           keep the KV cache in F32 (default F16)\n"
    "  --isa NAME         kernels: avx512, avx2, sse4, scalar, ... (default: the best this CPU runs)\n"
    "  --no-mmap          read the file instead of mapping it\n";

static const char *RUN_HELP =
    "usage: slm run -m FILE -p PROMPT [options]\n"
    "  Generate text: the prompt is printed, then the generated text streams to\n"
    "  stdout as it is made. One timing line goes to stderr at the end (load\n"
    "  time, prompt and generation speed, why it stopped, the seed).\n"
    "  Generation stops at an end-of-generation token, after N tokens, at a\n"
    "  stop string, or when the context is full.\n"
    "  -m, --model FILE         GGUF model file\n"
    "  -p, --prompt TEXT        the prompt (BOS is added if the model asks for it);\n"
    "                           -p - reads it from stdin\n"
    "  -f, --file FILE          read the prompt from FILE\n"
    "  -n, --n-predict N        tokens to generate (default 128; -1 or -2: until the\n"
    "                           context is full)\n"
    "  -c, --ctx N              context length (default: training context, at most 4096)\n"
    "  -t, --threads N          threads (default: one per performance core, at most 8)\n"
    "  --temp T                 temperature (default 0.8; 0: greedy)\n"
    "  --top-k K                keep the K most likely tokens (default 40; 0: off)\n"
    "  --top-p P                keep the smallest set with probability >= P (default 0.95; 1: off)\n"
    "  --min-p P                drop tokens below P x the top probability (default 0.05; 0: off)\n"
    "  --repeat-penalty R       penalize tokens seen in the last N (default 1.0: off)\n"
    "  --repeat-last-n N        window of the penalties (default 64)\n"
    "  --presence-penalty P     subtract P from seen tokens (default 0)\n"
    "  --frequency-penalty F    subtract F x count from seen tokens (default 0)\n"
    "  --seed S                 random seed (default or -1: from the clock); the same seed\n"
    "                           and options give the same text\n"
    "  --stop TEXT              stop when TEXT appears (not printed); up to 16 times\n"
    "  --special                parse special tokens (\"<s>\") in the prompt and print\n"
    "                           control tokens\n"
    "  --no-echo                do not print the prompt\n"
    "  --context-shift          when the context is full, keep the first --keep prompt\n"
    "                           tokens and the newest half, and go on (with -n -1: until\n"
    "                           an end-of-generation token)\n"
    "  --keep N                 prompt tokens kept by a context shift (default 0: BOS;\n"
    "                           -1: the whole prompt)\n"
    "  --prompt-cache FILE      keep the session state after the prompt in FILE: a\n"
    "                           later run whose prompt starts the same way decodes\n"
    "                           only the rest (-n 0 just fills the cache)\n"
    "  --grammar FILE           constrain the output to a GBNF grammar (llama.cpp's\n"
    "                           .gbnf format; the rule 'root' starts it)\n"
    "  --json                   the output is a JSON object (built-in grammar)\n"
    "  --json-schema FILE       the output is JSON valid against a JSON Schema\n"
    "                           (the subset in docs/grammar.md)\n"
    "                           With a grammar, generation also stops when the grammar\n"
    "                           is complete and allows nothing more.\n"
    "  --kv-f32                 keep the KV cache in F32 (default F16)\n"
    "  --isa NAME               kernels: avx512, avx2, sse4, scalar, ... (default: the best this CPU runs)\n"
    "  --no-mmap                read the file instead of mapping it\n"
    "  Options take their value as --name VALUE or --name=VALUE.\n"
    "  Sampler order: penalties, grammar, top-k, top-p, min-p, temperature, draw.\n";

static const char *TOKENIZE_HELP =
    "usage: slm tokenize -m FILE -p TEXT [--no-bos] [--special]\n"
    "  Print the tokens of TEXT, one per line: the id and the piece it\n"
    "  decodes to (control characters escaped), then the count on stderr.\n"
    "  Only the vocabulary is loaded.\n"
    "  -m, --model FILE   GGUF model file\n"
    "  -p, --prompt TEXT  the text (-p - reads it from stdin)\n"
    "  -f, --file FILE    read the text from FILE\n"
    "  --no-bos           do not add BOS/EOS even if the model asks for them\n"
    "  --special          parse special tokens (\"<s>\", \"<|im_end|>\") in the text\n"
    "  --no-mmap          read the file instead of mapping it\n";

static const char *CHAT_HELP =
    "usage: slm chat -m FILE [-s SYSTEM] [-c CTX] [-t N] [options]\n"
    "  Chat with the model: type a message, the reply streams back. The\n"
    "  conversation stays in the session (KV cache), so each turn processes only\n"
    "  its own new text. Messages are formatted with the model's chat template\n"
    "  (tokenizer.chat_template) when slm knows its family, else the one its\n"
    "  architecture or its turn tokens imply, else ChatML.\n"
    "  One message per line; input from a pipe works too. Ctrl-D (end of input)\n"
    "  quits, Ctrl-C stops a reply. When the context fills, the oldest turns are\n"
    "  dropped (the system prompt stays) and slm says so. Commands: /reset starts a new conversation\n"
    "  (keeping the system prompt), /quit quits.\n"
    "  -m, --model FILE         GGUF model file\n"
    "  -s, --system TEXT        system prompt\n"
    "  -c, --ctx N              context length (default: training context, at most 4096)\n"
    "  -n, --n-predict N        longest reply in tokens (default: until the end of the turn)\n"
    "  -t, --threads N          threads (default: one per performance core, at most 8)\n"
    "  --template NAME          chatml, llama3, gemma, phi3, phi4-mini, zephyr, mistral, llama2,\n"
    "                           granite, olmo2, qwen3, qwen3.5, smollm3, lfm2\n"
    "                           (default: the model's own)\n"
    "  --hide-thinking          do not print <think>...</think> blocks of reasoning\n"
    "                           models (Qwen3/3.5, SmolLM3); they stay in the context\n"
    "  --no-think               ask the model to answer without thinking where its\n"
    "                           template can (Qwen3/3.5: an empty <think></think>,\n"
    "                           SmolLM3: /no_think mode)\n"
    "  --no-context-shift       when the context is full, refuse the message instead of\n"
    "                           dropping the oldest turns (the system prompt stays)\n"
    "  -v, --verbose            after each turn, a line on stderr: prompt and reply\n"
    "                           tokens, speeds, why the reply ended, context used\n"
    "  --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n,\n"
    "  --presence-penalty, --frequency-penalty, --seed   sampler options as for run\n"
    "  --grammar FILE, --json, --json-schema FILE   every reply follows the grammar\n"
    "                           (as for run; the reply ends when the grammar is complete)\n"
    "  --kv-f32                 keep the KV cache in F32 (default F16)\n"
    "  --isa NAME               kernels: avx512, avx2, sse4, scalar, ... (default: the best this CPU runs)\n"
    "  --no-mmap                read the file instead of mapping it\n";

/* Every option: names, whether it takes a value, the commands it applies to. */
typedef struct optdef {
    const char *s, *l;
    int arg, cmds;
} optdef;

#define C_GEN (C_RUN | C_CHAT)
static const optdef OPTS[] = {
    {"-m", "--model", 1, C_INFO | C_LOGITS | C_GEN | C_TOKENIZE},
    {NULL, "--ids", 1, C_LOGITS},
    {"-o", "--out", 1, C_LOGITS},
    {NULL, "--all", 0, C_LOGITS},
    {"-c", "--ctx", 1, C_INFO | C_GEN},
    {"-t", "--threads", 1, C_LOGITS | C_GEN},
    {NULL, "--kv-f32", 0, C_LOGITS | C_GEN},
    {NULL, "--no-mmap", 0, C_INFO | C_LOGITS | C_GEN | C_TOKENIZE},
    {NULL, "--isa", 1, C_INFO | C_LOGITS | C_GEN},
    {NULL, "--meta", 0, C_INFO},
    {NULL, "--tensors", 0, C_INFO},
    {"-p", "--prompt", 1, C_RUN | C_TOKENIZE},
    {"-f", "--file", 1, C_RUN | C_TOKENIZE},
    {"-n", "--n-predict", 1, C_GEN},
    {NULL, "--temp", 1, C_GEN},
    {NULL, "--top-k", 1, C_GEN},
    {NULL, "--top-p", 1, C_GEN},
    {NULL, "--min-p", 1, C_GEN},
    {NULL, "--repeat-penalty", 1, C_GEN},
    {NULL, "--repeat-last-n", 1, C_GEN},
    {NULL, "--presence-penalty", 1, C_GEN},
    {NULL, "--frequency-penalty", 1, C_GEN},
    {NULL, "--seed", 1, C_GEN},
    {"-s", "--system", 1, C_CHAT},
    {NULL, "--template", 1, C_CHAT},
    {"-v", "--verbose", 0, C_CHAT},
    {NULL, "--hide-thinking", 0, C_CHAT},
    {NULL, "--no-think", 0, C_CHAT},
    {NULL, "--stop", 1, C_RUN},
    {NULL, "--special", 0, C_RUN | C_TOKENIZE},
    {NULL, "--no-echo", 0, C_RUN},
    {NULL, "--prompt-cache", 1, C_RUN},
    {NULL, "--context-shift", 0, C_RUN},
    {NULL, "--no-context-shift", 0, C_CHAT},
    {NULL, "--keep", 1, C_RUN},
    {NULL, "--no-bos", 0, C_TOKENIZE},
    {NULL, "--grammar", 1, C_RUN | C_CHAT},
    {NULL, "--json", 0, C_RUN | C_CHAT},
    {NULL, "--json-schema", 1, C_RUN | C_CHAT},
};

/* --isa NAME: an instruction set this build has and this CPU runs */
static int parse_isa(const char *v) {
    const int isa = slm_isa_from_name(v);
    if (isa < 0 || !slm_isa_available(isa)) {
        fprintf(stderr, "%s: --isa %s: not %s; this build on this CPU runs:", prog, v, isa < 0 ? "an instruction set" : "available");
        for (int i = 1; i < SLM_ISA_COUNT; i++)
            if (slm_isa_available(i)) fprintf(stderr, " %s", slm_isa_name(i));
        fputc('\n', stderr);
        exit(1);
    }
    return isa;
}

/* The values llama.cpp gives a meaning are accepted with that meaning;
   the rest is refused with the valid range. */
static void check_opts(opts *o) {
    slm_sampler_params *p = &o->sp;
    if (!(p->temperature >= 0)) die("%s", "--temp must be >= 0 (0: greedy, the most likely token)");
    if (p->top_k < 0) die("%s", "--top-k must be >= 0 (0: off, every token)");
    if (!(p->top_p >= 0 && p->top_p <= 1)) die("%s", "--top-p must be between 0 and 1 (1: off)");
    if (!(p->min_p >= 0 && p->min_p <= 1)) die("%s", "--min-p must be between 0 and 1 (0: off)");
    if (!(p->repeat_penalty > 0)) die("%s", "--repeat-penalty must be > 0 (1: off)");
    if (p->repeat_last_n < -1) die("%s", "--repeat-last-n must be >= 0 (or -1: the whole context)");
    if (o->n_predict < -2) die("%s", "-n must be >= 0, or -1 (no limit) or -2 (until the context is full)");
    if (o->n_ctx < 0) die("%s", "-c must be >= 0 (0: the model's training context, at most 4096)");
    if (o->threads < -1 || o->threads > 1024)
        die("%s", "-t must be a number of threads from 1 to 1024 (0 or -1: the default)");
    if (o->threads == -1) o->threads = 0;
}

/* A whole text file, or stdin for "-", NUL-terminated (malloc); dies with
   the reason. Prompts longer than an argument can be pass this way. */
static char *read_text(const char *path) {
    FILE *f = strcmp(path, "-") ? fopen_utf8(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "%s: cannot open '%s': %s\n", prog, path, strerror(errno));
        exit(1);
    }
    size_t cap = 1 << 16, n = 0, got;
    char *b = (char *)malloc(cap);
    while (b && (got = fread(b + n, 1, cap - 1 - n, f)) > 0) {
        n += got;
        if (n == cap - 1) {
            if (cap >= ((size_t)1 << 30)) die("'%s' is larger than 1 GiB", path);
            char *q = (char *)realloc(b, cap *= 2);
            if (!q) free(b);
            b = q;
        }
    }
    if (!b) die("%s", "out of memory reading the prompt");
    if (ferror(f)) {
        fprintf(stderr, "%s: cannot read '%s': %s\n", prog, strcmp(path, "-") ? path : "stdin", strerror(errno));
        exit(1);
    }
    if (f != stdin) fclose(f);
    b[n] = 0;
    if (strlen(b) != n) die("'%s' holds a NUL byte: not a text", path);
    return b;
}

static void parse_opts(int argc, char **argv, const char *help, int cmd, opts *o) {
    memset(o, 0, sizeof *o);
    o->cmd = argv[1];
    o->n_predict = 128;
    slm_sampler_params_init(&o->sp);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            exit(0);
        }
        /* --name=value as well as --name value */
        char name[64];
        const char *eq = !strncmp(a, "--", 2) ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = 0;
            a = name;
        }
        const optdef *d = NULL;
        for (size_t k = 0; k < sizeof OPTS / sizeof OPTS[0]; k++)
            if ((OPTS[k].s && !strcmp(a, OPTS[k].s)) || !strcmp(a, OPTS[k].l)) d = &OPTS[k];
        if (!d) {
            fprintf(stderr, "%s %s: unknown option '%s' (see slm %s --help)\n", prog, o->cmd, a, o->cmd);
            exit(1);
        }
        if (!(d->cmds & cmd)) {
            fprintf(stderr, "%s %s: option '%s' does not apply to '%s' (see slm %s --help)\n", prog, o->cmd, a,
                    o->cmd, o->cmd);
            exit(1);
        }
        if (eq && !d->arg) {
            fprintf(stderr, "%s %s: option '%s' takes no value\n", prog, o->cmd, a);
            exit(1);
        }
        const char *v = eq ? eq + 1 : d->arg ? need_arg(argc, argv, &i) : NULL;
        const char *l = d->l;
        if (!strcmp(l, "--model")) o->model = v;
        else if (!strcmp(l, "--ids")) o->ids = v;
        else if (!strcmp(l, "--out")) o->out = v;
        else if (!strcmp(l, "--all")) o->all |= 1;
        else if (!strcmp(l, "--ctx")) o->n_ctx = parse_int(v, a);
        else if (!strcmp(l, "--threads")) o->threads = parse_int(v, a);
        else if (!strcmp(l, "--kv-f32")) o->kv_f32 = 1;
        else if (!strcmp(l, "--no-mmap")) o->no_mmap = 1;
        else if (!strcmp(l, "--isa")) o->isa = parse_isa(v);
        else if (!strcmp(l, "--meta")) o->all |= 2;
        else if (!strcmp(l, "--tensors")) o->all |= 4;
        else if (!strcmp(l, "--prompt")) o->prompt = v;
        else if (!strcmp(l, "--file")) o->prompt_file = v;
        else if (!strcmp(l, "--prompt-cache")) o->prompt_cache = v;
        else if (!strcmp(l, "--context-shift")) o->context_shift = 1;
        else if (!strcmp(l, "--no-context-shift")) o->no_shift = 1;
        else if (!strcmp(l, "--keep")) o->n_keep = parse_int(v, a);
        else if (!strcmp(l, "--n-predict")) o->n_predict = parse_int(v, a), o->have_n = 1;
        else if (!strcmp(l, "--system")) o->system = v;
        else if (!strcmp(l, "--template")) o->tmpl = v;
        else if (!strcmp(l, "--verbose")) o->verbose = 1;
        else if (!strcmp(l, "--hide-thinking")) o->hide_thinking = 1;
        else if (!strcmp(l, "--no-think")) o->no_think = 1;
        else if (!strcmp(l, "--temp")) o->sp.temperature = parse_float(v, a);
        else if (!strcmp(l, "--top-k")) o->sp.top_k = parse_int(v, a);
        else if (!strcmp(l, "--top-p")) o->sp.top_p = parse_float(v, a);
        else if (!strcmp(l, "--min-p")) o->sp.min_p = parse_float(v, a);
        else if (!strcmp(l, "--repeat-penalty")) o->sp.repeat_penalty = parse_float(v, a);
        else if (!strcmp(l, "--repeat-last-n")) o->sp.repeat_last_n = parse_int(v, a);
        else if (!strcmp(l, "--presence-penalty")) o->sp.presence_penalty = parse_float(v, a);
        else if (!strcmp(l, "--frequency-penalty")) o->sp.frequency_penalty = parse_float(v, a);
        else if (!strcmp(l, "--seed")) {
            char *end;
            errno = 0;
            if (!strcmp(v, "-1")) { /* as llama.cpp: a random seed */
                o->have_seed = 0;
                continue;
            }
            o->seed = strtoull(v, &end, 10);
            if (errno || *end || end == v || *v == '-')
                die("invalid --seed '%s' (a number from 0 to 18446744073709551615, or -1 for a random seed)", v);
            o->have_seed = 1;
        } else if (!strcmp(l, "--stop")) {
            if (o->n_stop == 16) die("%s", "at most 16 --stop strings");
            o->stop[o->n_stop++] = v;
        } else if (!strcmp(l, "--special")) o->special = 1;
        else if (!strcmp(l, "--no-echo")) o->no_echo = 1;
        else if (!strcmp(l, "--no-bos")) o->no_bos = 1;
        else if (!strcmp(l, "--grammar")) o->grammar_file = v;
        else if (!strcmp(l, "--json")) o->json = 1;
        else if (!strcmp(l, "--json-schema")) o->schema_file = v;
    }
    if (!o->model) die("%s", "no model given (-m FILE)");
    check_opts(o);
    if (o->prompt && o->prompt_file) die("%s", "give the prompt with -p or with -f, not both");
    if (o->prompt_file) o->prompt = o->prompt_buf = read_text(o->prompt_file);
    else if (o->prompt && !strcmp(o->prompt, "-")) o->prompt = o->prompt_buf = read_text("-");
}

static slm_model *load(const opts *o, int vocab_only) {
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.use_mmap = !o->no_mmap;
    mp.vocab_only = vocab_only;
    mp.isa = o->isa;
    slm_model *m = NULL;
    slm_error err;
    if (slm_model_load_file(o->model, &mp, &m, &err) != SLM_OK) die("%s", err.message);
    return m;
}

/* A session with the options' context size (n_ctx: 0 = the model's),
   threads and KV cache type; dies on error. */
static slm_session *open_session(slm_model *m, const opts *o, int n_ctx, int logits_all) {
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = n_ctx;
    sp.n_threads = o->threads;
    sp.logits_all = logits_all;
    if (o->kv_f32) sp.kv_type = SLM_TYPE_F32;
    slm_session *s = NULL;
    slm_error err;
    slm_model_info in;
    slm_model_get_info(m, &in);
    if (n_ctx > in.n_ctx_train && in.n_ctx_train > 0)
        fprintf(stderr, "%s: warning: context %d is larger than the model's training context (%d): quality may "
                        "degrade past %d tokens\n", prog, n_ctx, in.n_ctx_train, in.n_ctx_train);
    if (slm_session_create(m, &sp, &s, &err) != SLM_OK) die("%s", err.message);
    return s;
}

/* stdout could not take the text (a full disk, a closed pipe): say so, exit 1 */
static void stdout_failed(void) {
    fprintf(stderr, "%s: write error on standard output: %s\n", prog, errno ? strerror(errno) : "unknown error");
    exit(1);
}

static void flush_stdout(void) {
    if (fflush(stdout) != 0 || ferror(stdout)) stdout_failed();
}

static double load_ms(const slm_model *m) {
    slm_model_info in;
    slm_model_get_info(m, &in);
    return in.load_ms;
}

static void human(double bytes, char *buf, size_t n) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (bytes >= 1024 && i < 4) bytes /= 1024, i++;
    snprintf(buf, n, i ? "%.2f %s" : "%.0f %s", bytes, u[i]);
}

/* ---- info ------------------------------------------------------------------- */

/* A special token as "ID 'TEXT'", or "-". */
static const char *tok_desc(const slm_model *m, int32_t id, char *buf, size_t n) {
    size_t l = 0;
    const char *t = slm_token_text(m, id, &l);
    if (!t) return "-";
    snprintf(buf, n, "%d '%.*s'", id, (int)(l < 40 ? l : 40), t);
    return buf;
}

static void describe_vocab(const slm_model *m) {
    static const char *VT[] = {"none", "SentencePiece", "byte-level BPE", "other (not supported)"};
    int vt = slm_vocab_type(m);
    int64_t ki = slm_meta_find(m, "tokenizer.ggml.model"), kp = slm_meta_find(m, "tokenizer.ggml.pre");
    int64_t km = slm_meta_find(m, "tokenizer.ggml.merges");
    const char *model = "", *pre = NULL;
    if (ki >= 0) slm_meta_get_string(m, ki, -1, &model, NULL);
    if (kp >= 0) slm_meta_get_string(m, kp, -1, &pre, NULL);
    if (vt == 0) {
        printf("tokenizer:     none\n");
        return;
    }
    printf("tokenizer:     %s (tokenizer.ggml.model \"%s\"), %d tokens", VT[vt >= 0 && vt <= 3 ? vt : 3], model,
           slm_vocab_size(m));
    if (vt == SLM_VOCAB_BPE) printf(", %lld merges", km >= 0 ? (long long)slm_meta_array_count(m, km) : 0LL);
    printf("\n");
    if (vt == SLM_VOCAB_BPE) {
        int fb = 0;
        const char *used = slm_vocab_pretokenizer(m, &fb);
        if (pre)
            printf("pre-tokenizer: %s (tokenizer.ggml.pre \"%s\"%s)\n", used, pre, fb ? ", unknown to slm: fallback" : "");
        else
            printf("pre-tokenizer: %s (no tokenizer.ggml.pre: fallback)\n", used);
    }
    char b1[64], b2[64], b3[64], b4[64], b5[64];
    printf("special:       bos %s, eos %s, eot %s, unk %s, pad %s\n", tok_desc(m, slm_token_bos(m), b1, sizeof b1),
           tok_desc(m, slm_token_eos(m), b2, sizeof b2), tok_desc(m, slm_token_eot(m), b3, sizeof b3),
           tok_desc(m, slm_token_unk(m), b4, sizeof b4), tok_desc(m, slm_token_pad(m), b5, sizeof b5));
    int n_ctrl = 0, n_user = 0, n_eog = 0;
    for (int32_t i = 0; i < slm_vocab_size(m); i++) {
        int a = slm_token_attr(m, i);
        n_ctrl += (a & SLM_TOKEN_CONTROL) != 0;
        n_user += (a & SLM_TOKEN_USER_DEFINED) != 0;
        n_eog += slm_token_is_eog(m, i);
    }
    printf("               %d control, %d user-defined tokens; %d end the turn; tokenizing adds BOS: %s, EOS: %s\n",
           n_ctrl, n_user, n_eog, slm_vocab_add_bos(m) ? "yes" : "no", slm_vocab_add_eos(m) ? "yes" : "no");
    int64_t kt = slm_meta_find(m, "tokenizer.chat_template");
    const char *tmpl = NULL;
    if (kt >= 0) slm_meta_get_string(m, kt, -1, &tmpl, NULL);
    int fam = slm_chat_detect(tmpl);
    if (fam)
        printf("chat template: %s (detected in tokenizer.chat_template)\n", slm_chat_family_name(fam));
    else
        printf("chat template: %s: slm chat uses %s (from the architecture or the vocabulary's turn tokens; "
               "--template chooses another)\n",
               tmpl ? "not one slm knows" : "none in the file", slm_chat_family_name(slm_chat_model_family(m, NULL)));
}

static int cmd_info(int argc, char **argv) {
    opts o;
    parse_opts(argc, argv, INFO_HELP, C_INFO, &o);
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.use_mmap = !o.no_mmap;
    mp.isa = o.isa;
    slm_model *m = NULL;
    slm_error err;
    int vocab_only = 0;
    if (slm_model_load_file(o.model, &mp, &m, &err) != SLM_OK) {
        /* still describe files we cannot run (unknown arch, unsupported
           types) and vocabulary-only files (no tensors) */
        if (err.status == SLM_ERR_IO || err.status == SLM_ERR_NOMEM) die("%s", err.message);
        slm_error first = err;
        mp.vocab_only = 1;
        vocab_only = 1;
        if (slm_model_load_file(o.model, &mp, &m, &err) != SLM_OK) die("%s", first.message);
        if (slm_tensor_count(m) > 0) fprintf(stderr, "%s: note: %s\n", prog, first.message);
        else vocab_only = 2;
    }
    slm_model_info in;
    slm_model_get_info(m, &in);
    char b1[32], b2[32];
    human((double)in.file_size, b1, sizeof b1);
    printf("file:          %s (%s, GGUF v%d%s)\n", o.model, b1, in.gguf_version,
           vocab_only == 2 ? ", vocabulary only: no tensors" : "");
    printf("architecture:  %s%s\n", in.arch, vocab_only == 1 ? " (cannot run: see note)" : "");
    if (in.name[0]) printf("name:          %s\n", in.name);
    /* parameters and types from the tensor directory */
    uint64_t nparams = 0, bytes = 0, count[64] = {0}, elems[64] = {0};
    int64_t nt = slm_tensor_count(m);
    for (int64_t i = 0; i < nt; i++) {
        slm_tensor_info ti;
        slm_tensor_get_info(m, i, &ti);
        uint64_t ne = (uint64_t)ti.ne[0] * ti.ne[1] * ti.ne[2] * ti.ne[3];
        nparams += ne;
        bytes += ti.nbytes;
        if (ti.type >= 0 && ti.type < 64) count[ti.type]++, elems[ti.type] += ne;
    }
    human((double)bytes, b1, sizeof b1);
    if (nt > 0) {
        printf("parameters:    %llu (%.1f M), %s of tensor data, %.2f bits/weight\n", (unsigned long long)nparams,
               nparams / 1e6, b1, nparams ? bytes * 8.0 / nparams : 0.0);
        printf("tensor types: ");
        for (int t = 0; t < 64; t++)
            if (count[t]) printf(" %s: %llu tensors (%.1f%% of weights);", slm_type_name(t) ? slm_type_name(t) : "?",
                                 (unsigned long long)count[t], 100.0 * elems[t] / (nparams ? nparams : 1));
        printf("\n");
    }
    if (!vocab_only) {
        printf("vocab:         %d\n", in.n_vocab);
        printf("context:       %d (training)\n", in.n_ctx_train);
        printf("layers:        %d, embd %d, ffn %d\n", in.n_layer, in.n_embd, in.n_ff);
        printf("attention:     %d heads, %d kv heads, head dim %d, rope dims %d, rope base %g\n", in.n_head,
               in.n_head_kv, in.head_dim, in.n_rot, in.rope_freq_base);
        printf("norm eps:      %g\n", in.norm_eps);
        if (slm_model_is_encoder(m) || slm_model_pooling(m) != SLM_POOLING_NONE)
            printf("embeddings:    %d floats, %s pooling%s (slm embed)\n", slm_model_n_embd_out(m),
                   slm_pooling_name(slm_model_pooling(m)),
                   slm_model_is_encoder(m) ? "; an encoder: it embeds, it does not generate" : "");
    }
    describe_vocab(m);
    if (!vocab_only) {
        slm_session_params sp;
        slm_session_params_init(&sp);
        sp.n_ctx = o.n_ctx;
        size_t f16 = slm_session_memory_size(m, &sp);
        sp.kv_type = SLM_TYPE_F32;
        size_t f32 = slm_session_memory_size(m, &sp);
        int ctx = o.n_ctx ? o.n_ctx : (in.n_ctx_train < 4096 ? in.n_ctx_train : 4096);
        human((double)f16, b1, sizeof b1);
        human((double)f32, b2, sizeof b2);
        printf("session:       %s at context %d with F16 KV cache (%s with F32)\n", b1, ctx, b2);
        human((double)f16 + (double)in.weight_bytes, b1, sizeof b1);
        printf("memory:        %s in all (weights mapped from the file + session)\n", b1);
    }
    if (o.all & 2) {
        printf("\nmetadata (%lld keys):\n", (long long)slm_meta_count(m));
        for (int64_t i = 0; i < slm_meta_count(m); i++) {
            char v[160];
            slm_meta_format(m, i, v, sizeof v);
            printf("  %-44s %s\n", slm_meta_key(m, i), v);
        }
    }
    if (o.all & 4) {
        printf("\ntensors (%lld):\n", (long long)nt);
        for (int64_t i = 0; i < nt; i++) {
            slm_tensor_info ti;
            slm_tensor_get_info(m, i, &ti);
            printf("  %-40s %-7s [", ti.name, slm_type_name(ti.type));
            for (int d = 0; d < ti.n_dims; d++) printf(d ? ", %lld" : "%lld", (long long)ti.ne[d]);
            printf("] at %llu\n", (unsigned long long)ti.offset);
        }
    }
    slm_model_free(m);
    return 0;
}

/* ---- logits ------------------------------------------------------------------- */

static int cmd_logits(int argc, char **argv) {
    opts o;
    parse_opts(argc, argv, LOGITS_HELP, C_LOGITS, &o);
    if (!o.ids) die("%s", "no token ids given (--ids \"1 2 3\")");
    if (!o.out) die("%s", "no output file given (--out FILE.f32)");
    int32_t *ids = NULL;
    int n = 0, cap = 0;
    for (const char *p = o.ids; *p;) {
        if (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') {
            p++;
            continue;
        }
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 2147483647L) die("invalid token id in --ids near '%s'", p);
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            ids = (int32_t *)realloc(ids, (size_t)cap * sizeof *ids);
            if (!ids) die("%s", "out of memory");
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    if (n == 0) die("%s", "--ids holds no token ids");
    slm_model *m = load(&o, 0);
    slm_session *s = open_session(m, &o, o.n_ctx ? o.n_ctx : n, o.all);
    slm_error err;
    if (slm_decode(s, ids, n, &err) != SLM_OK) die("%s", err.message);
    slm_model_info in;
    slm_model_get_info(m, &in);
    /* float32 little-endian, whatever the host order; written whole to a
       temporary file and renamed into place (slm_file_write) */
    const int first = o.all ? 0 : n - 1;
    const size_t rows = (size_t)(n - first), nbytes = rows * (size_t)in.n_vocab * 4;
    unsigned char *buf = (unsigned char *)malloc(nbytes ? nbytes : 1);
    if (!buf) die("%s", "out of memory for the logits");
    for (int i = first; i < n; i++) {
        const float *lg = slm_session_logits(s, i);
        unsigned char *b = buf + (size_t)(i - first) * (size_t)in.n_vocab * 4;
        for (int j = 0; j < in.n_vocab; j++, b += 4) {
            uint32_t u;
            memcpy(&u, &lg[j], 4);
            b[0] = (unsigned char)u, b[1] = (unsigned char)(u >> 8), b[2] = (unsigned char)(u >> 16),
            b[3] = (unsigned char)(u >> 24);
        }
    }
    if (slm_file_write(o.out, buf, nbytes, &err) != SLM_OK) die("%s", err.message);
    free(buf);
    slm_session_free(s);
    slm_model_free(m);
    free(ids);
    return 0;
}

/* ---- run ------------------------------------------------------------------------ */

/* Streamed text to stdout; a write error stops generation (and exits 1). */
static int write_out(void *user, const char *text, size_t len) {
    (void)user;
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
        *(int *)user = errno ? errno : EIO;
        return 1;
    }
    return 0;
}

/* --prompt-cache FILE, as llama.cpp's: the session state after the
   prompt. If FILE holds a state of this model, the prompt's tokens it shares
   are reused and only the rest is decoded; then FILE is rewritten (safely)
   with the state after this prompt. */
static void use_prompt_cache(slm_session *s, const opts *o, int32_t n_prompt) {
    const slm_model *m = slm_session_model(s);
    const int n_ctx = slm_session_n_ctx(s);
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n_prompt + 1));
    int32_t *cached = (int32_t *)malloc(sizeof(int32_t) * (size_t)n_ctx);
    slm_error err;
    if (!ids || !cached) die("%s", "out of memory");
    if (slm_tokenize(m, o->prompt, strlen(o->prompt), 1, o->special, ids, n_prompt, &n_prompt, &err) != SLM_OK)
        die("%s", err.message);
    int32_t nc = 0, keep = 0;
    slm_status st = slm_session_state_load_file(s, o->prompt_cache, cached, n_ctx, &nc, &err);
    if (st == SLM_OK) {
        int32_t common = 0;
        while (common < nc && common < n_prompt && cached[common] == ids[common]) common++;
        keep = common;
        /* the last prompt token's logits are needed: decode it again unless
           the state ends exactly there with its logits */
        if (!(common == nc && common == n_prompt && slm_session_logits(s, -1))) keep = common < n_prompt ? common : n_prompt - 1;
        if (keep < 0) keep = 0;
        if (keep != slm_session_pos(s)) slm_session_rewind(s, keep);
    } else if (st == SLM_ERR_IO) {
        fprintf(stderr, "%s: prompt cache: %s; it will be created\n", prog, err.message);
    } else {
        fprintf(stderr, "%s: warning: prompt cache not used: %s; it will be replaced\n", prog, err.message);
        slm_session_rewind(s, 0);
    }
    if (n_prompt > keep && slm_decode(s, ids + keep, n_prompt - keep, &err) != SLM_OK) die("%s", err.message);
    const int same = st == SLM_OK && keep == n_prompt && nc == n_prompt;
    if (!same && slm_session_state_save_file(s, o->prompt_cache, ids, n_prompt, &err) != SLM_OK) die("%s", err.message);
    fprintf(stderr, "%s: prompt cache '%s': %d of %d prompt tokens reused, %d decoded%s\n", prog, o->prompt_cache,
            keep, n_prompt, n_prompt - keep, same ? "" : ", saved");
    free(ids);
    free(cached);
}

/* run --context-shift: when generation stops at a full context, keep the
   first --keep prompt tokens (BOS at least) and the newest half of the
   context, decode them again from the start and go on, as llama.cpp does,
   until -n tokens or the end of generation. r sums the calls. */
static void context_shift_loop(slm_session *s, const opts *o, slm_generate_params *gp, slm_generate_result *r,
                               int32_t *gen, int32_t n_prompt) {
    const slm_model *m = slm_session_model(s);
    const int n_ctx = slm_session_n_ctx(s);
    int32_t *hist = (int32_t *)malloc(sizeof(int32_t) * (size_t)(2 * n_ctx + n_prompt + 1)), nh = 0;
    int32_t *prompt = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n_prompt + 1));
    slm_error err;
    if (!hist || !prompt) die("%s", "out of memory");
    if (slm_tokenize(m, o->prompt, strlen(o->prompt), 1, o->special, prompt, n_prompt, &n_prompt, &err) != SLM_OK)
        die("%s", err.message);
    memcpy(hist, prompt, sizeof(int32_t) * (size_t)n_prompt);
    nh = n_prompt;
    int32_t keep = o->n_keep < 0 ? n_prompt : (o->n_keep < n_prompt ? o->n_keep : n_prompt);
    if (keep == 0 && n_prompt > 0 && prompt[0] == slm_token_bos(m)) keep = 1;
    if (keep > n_ctx / 4) keep = n_ctx / 4;
    int shifts = 0;
    slm_generate_result total = *r;
    while (r->stop_reason == SLM_STOP_CONTEXT_FULL && (o->n_predict < 0 || total.n_generated < o->n_predict)) {
        int32_t ng = r->n_generated < n_ctx ? r->n_generated : n_ctx;
        memcpy(hist + nh, gen, sizeof(int32_t) * (size_t)ng);
        nh += ng;
        /* keep[0..keep) + the newest n_ctx/2 - keep */
        int32_t tail = n_ctx / 2 - keep;
        if (tail < 1 || nh <= keep + tail) break;
        memmove(hist + keep, hist + nh - tail, sizeof(int32_t) * (size_t)tail);
        nh = keep + tail;
        shifts++;
        fprintf(stderr, "\n%s: context shift %d: kept %d + %d tokens, dropped the rest\n", prog, shifts, keep, tail);
        slm_session_rewind(s, 0);
        if (o->n_predict > 0) gp->max_tokens = o->n_predict - total.n_generated;
        gp->sampler.seed += 1; /* not the same draws again */
        if (slm_generate(s, NULL, 0, hist, nh, gp, r, &err) != SLM_OK) die("%s", err.message);
        total.n_generated += r->n_generated;
        total.gen_ms += r->gen_ms;
        total.stop_reason = r->stop_reason;
    }
    total.gen_tps = total.gen_ms > 0 ? total.n_generated * 1000.0 / total.gen_ms : 0;
    *r = total;
    free(hist);
    free(prompt);
}

static const char *STOP_NAMES[] = {"none", "end of generation", "max tokens", "stop string", "callback",
                                   "context full", "grammar complete"};

/* die() with two strings: "A: B" */
static void die2(const char *a, const char *b) {
    char msg[600];
    snprintf(msg, sizeof msg, "%s: %s", a, b);
    die("%s", msg);
}

/* A whole text file (NUL-terminated, malloc'ed); dies with the reason. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen_utf8(path, "rb");
    if (!f) die2(path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *b = (char *)malloc(cap);
    for (;;) {
        if (!b) die("%s", "out of memory");
        size_t r = fread(b + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
        if (n + 1 == cap) {
            if (cap > (64u << 20)) die("%s is too large", path);
            cap *= 2;
            b = (char *)realloc(b, cap);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) die("cannot read %s", path);
    b[n] = 0;
    *len = n;
    return b;
}

/* The grammar of --grammar / --json / --json-schema, or NULL. */
static slm_grammar *load_grammar(const opts *o, const slm_model *m) {
    if (!!o->grammar_file + o->json + !!o->schema_file > 1) die("%s", "use one of --grammar, --json, --json-schema");
    slm_error err;
    char *text = NULL;
    size_t len = 0;
    const char *what = o->grammar_file;
    if (o->grammar_file) {
        text = slurp(o->grammar_file, &len);
    } else if (o->schema_file) {
        size_t sl;
        char *schema = slurp(o->schema_file, &sl);
        if (slm_json_schema_to_grammar(schema, sl, NULL, 0, &len, &err) != SLM_ERR_BUFFER)
            die2(o->schema_file, err.message);
        text = (char *)malloc(len + 1);
        if (!text || slm_json_schema_to_grammar(schema, sl, text, len + 1, &len, &err) != SLM_OK)
            die2(o->schema_file, text ? err.message : "out of memory");
        free(schema);
        what = o->schema_file;
    } else if (o->json) {
        what = "--json";
    } else {
        return NULL;
    }
    slm_grammar *g;
    if (slm_grammar_create(m, text ? text : slm_grammar_json(), text ? len : strlen(slm_grammar_json()), NULL, &g,
                           &err) != SLM_OK)
        die2(what, err.message);
    free(text);
    return g;
}

static int cmd_run(int argc, char **argv) {
    opts o;
    parse_opts(argc, argv, RUN_HELP, C_RUN, &o);
    if (!o.prompt) die("%s", "no prompt given (-p TEXT, -p - for stdin, or -f FILE)");
    if (!o.have_seed) o.seed = (unsigned long long)time(NULL) ^ ((unsigned long long)clock() << 20);
    slm_model *m = load(&o, 0);
    slm_session *s = open_session(m, &o, o.n_ctx, 0);
    slm_error err;
    slm_generate_params gp;
    slm_generate_params_init(&gp);
    gp.max_tokens = o.n_predict < 0 ? 0 : o.n_predict;
    gp.sampler = o.sp;
    gp.sampler.seed = o.seed;
    gp.parse_special = o.special;
    gp.emit_special = o.special;
    gp.stop = o.stop;
    gp.n_stop = o.n_stop;
    gp.on_text = write_out;
    int out_errno = 0;
    gp.user = &out_errno;
    /* a prompt that does not fit: said before anything is printed */
    int32_t n_prompt = 0;
    const size_t plen = strlen(o.prompt);
    slm_tokenize(m, o.prompt, plen, 1, o.special, NULL, 0, &n_prompt, NULL);
    const int n_ctx = slm_session_n_ctx(s);
    if (n_prompt >= n_ctx) {
        slm_model_info in;
        slm_model_get_info(m, &in);
        fprintf(stderr, "%s: the prompt is %d tokens and the context holds %d (-c %d): use a larger context with "
                        "-c N (the model was trained with %d) or a shorter prompt\n",
                prog, n_prompt, n_ctx, n_ctx, in.n_ctx_train);
        exit(1);
    }
    if (gp.sampler.repeat_last_n == -1) gp.sampler.repeat_last_n = n_ctx;
    if (o.prompt_cache) use_prompt_cache(s, &o, n_prompt);
    slm_grammar *grammar = load_grammar(&o, m);
    gp.sampler.grammar = grammar;
    if (!o.no_echo) {
        fputs(o.prompt, stdout);
        flush_stdout();
    }
    slm_generate_result r;
    /* --context-shift: the generated ids are kept to continue from */
    int32_t *gen = NULL;
    if (o.context_shift) {
        gen = (int32_t *)malloc(sizeof(int32_t) * (size_t)n_ctx);
        if (!gen) die("%s", "out of memory");
        gp.tokens_out = gen;
        gp.tokens_cap = n_ctx;
    }
    /* with a prompt cache the prompt is in the session already */
    if (o.n_predict != 0 && slm_generate(s, o.prompt_cache ? NULL : o.prompt, o.prompt_cache ? 0 : plen, NULL, 0, &gp,
                                         &r, &err) != SLM_OK) {
        fputc('\n', stdout);
        die("%s", err.message);
    }
    if (o.context_shift && o.n_predict != 0) context_shift_loop(s, &o, &gp, &r, gen, n_prompt);
    free(gen);
    if (out_errno) {
        errno = out_errno;
        stdout_failed();
    }
    if (o.n_predict == 0) memset(&r, 0, sizeof r);
    fputc('\n', stdout);
    flush_stdout();
    fprintf(stderr,
            "%s: load %.1f ms | prompt %d tokens in %.1f ms, %.1f tok/s | generated %d tokens in %.1f ms, "
            "%.1f tok/s | stop: %s | seed %llu | %s\n",
            prog, load_ms(m), r.n_prompt, r.prompt_ms, r.prompt_tps, r.n_generated, r.gen_ms,
            r.gen_tps, r.stop_reason >= 0 && r.stop_reason <= 6 ? STOP_NAMES[r.stop_reason] : "?", o.seed,
            slm_isa_name(slm_model_isa(m)));
    slm_grammar_free(grammar);
    slm_session_free(s);
    slm_model_free(m);
    free(o.prompt_buf);
    return 0;
}

/* ---- chat ------------------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct text_buf {
    char *s;
    size_t n, cap;
} text_buf;

static void tb_add(text_buf *b, const char *t, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = (char *)realloc(b->s, b->cap);
        if (!b->s) die("%s", "out of memory");
    }
    memcpy(b->s + b->n, t, n);
    b->n += n;
    b->s[b->n] = 0;
}

/* The reply as it streams: all of it into the message, to stdout without
   its <think>...</think> block when thinking is hidden (the split of slm
   serve, examples/serve/think.h: a tag may arrive in pieces; the white
   space around the block goes too). */
typedef struct chat_sink {
    text_buf reply;
    int hide;
    think_split split;
} chat_sink;

static int chat_out_errno;

/* think.h's output: the answer goes to stdout, the thinking nowhere */
static int chat_show(void *user, int thinking, const char *text, size_t len) {
    (void)user;
    if (!thinking && fwrite(text, 1, len, stdout) != len && !chat_out_errno) chat_out_errno = errno ? errno : EIO;
    return 0;
}

static int chat_text(void *user, const char *text, size_t len) {
    chat_sink *c = (chat_sink *)user;
    if (c->hide) think_push(&c->split, text, len, chat_show, NULL);
    else if (fwrite(text, 1, len, stdout) != len) chat_out_errno = errno ? errno : EIO;
    if (fflush(stdout) != 0 && !chat_out_errno) chat_out_errno = errno ? errno : EIO;
    if (chat_out_errno) return 1;
    tb_add(&c->reply, text, len);
    return interrupted != 0;
}

/* One line of stdin without its line end; NULL at the end of input. */
static char *read_line(void) {
    text_buf b = {NULL, 0, 0};
    char chunk[1024];
    while (fgets(chunk, sizeof chunk, stdin)) {
        size_t l = strlen(chunk);
        tb_add(&b, chunk, l);
        if (l && chunk[l - 1] == '\n') break;
    }
    if (!b.s) return NULL;
    while (b.n && (b.s[b.n - 1] == '\n' || b.s[b.n - 1] == '\r')) b.s[--b.n] = 0;
    return b.s;
}

static char *dup_str(const char *s);

#if defined(HAVE_TERMIOS)
/* ---- line editing in the terminal (no dependency) ---------------------------
   Only when stdin and stdout are terminals, and only while a line is read:
   raw mode (no echo, byte by byte), restored before anything else runs.
   Left/Right, Home/End (and Ctrl-A/E), Backspace, Delete, Ctrl-U/K/W,
   Up/Down through this session's history; Ctrl-C clears the line, Ctrl-D on
   an empty line ends the input. Columns count code points (wide characters
   are not measured). */
#define HIST_MAX 100
static char *hist[HIST_MAX];
static int n_hist;
static struct termios saved_tio;
static int raw_on;

static void raw_off(void) {
    if (raw_on) tcsetattr(0, TCSAFLUSH, &saved_tio);
    raw_on = 0;
}

static int raw_enable(void) {
    struct termios t;
    if (tcgetattr(0, &saved_tio) != 0) return 0;
    t = saved_tio;
    t.c_lflag &= ~(tcflag_t)(ECHO | ICANON | ISIG | IEXTEN);
    t.c_iflag &= ~(tcflag_t)(IXON | ICRNL | INLCR);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(0, TCSAFLUSH, &t) != 0) return 0;
    if (!raw_on) {
        static int registered;
        if (!registered) atexit(raw_off), registered = 1;
    }
    raw_on = 1;
    return 1;
}

static size_t cp_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

static void redraw(const char *prompt, const text_buf *b, size_t cur) {
    fputs("\r", stdout);
    fputs(prompt, stdout);
    if (b->n) fwrite(b->s, 1, b->n, stdout);
    fputs("\x1b[K", stdout);
    size_t back = cp_count(b->s + cur, b->n - cur);
    if (back) printf("\x1b[%zuD", back);
    fflush(stdout);
}

static int read_byte(void) {
    unsigned char c;
    for (;;) {
        ssize_t r = read(0, &c, 1);
        if (r == 1) return c;
        if (r < 0 && errno == EINTR) continue;
        return -1;
    }
}

/* One edited line (malloc), NULL at the end of input. */
static char *edit_line(const char *prompt) {
    if (!raw_enable()) return NULL;
    text_buf b = {NULL, 0, 0};
    tb_add(&b, "", 0);
    size_t cur = 0;
    int h = n_hist; /* n_hist: the line being typed */
    char *typed = NULL;
    fputs(prompt, stdout);
    fflush(stdout);
    for (;;) {
        int c = read_byte();
        if (c < 0 || (c == 4 && b.n == 0)) { /* end of input, Ctrl-D on an empty line */
            raw_off();
            free(b.s);
            free(typed);
            return NULL;
        }
        if (c == '\r' || c == '\n') break;
        if (c == 3) { /* Ctrl-C: drop the line */
            b.n = cur = 0;
            b.s[0] = 0;
            fputs("^C", stdout);
            break;
        }
        if (c == 127 || c == 8) { /* Backspace: one code point */
            if (cur > 0) {
                size_t p = cur - 1;
                while (p > 0 && ((unsigned char)b.s[p] & 0xc0) == 0x80) p--;
                memmove(b.s + p, b.s + cur, b.n - cur + 1);
                b.n -= cur - p;
                cur = p;
            }
        } else if (c == 1) cur = 0;                       /* Ctrl-A */
        else if (c == 5) cur = b.n;                       /* Ctrl-E */
        else if (c == 21) {                               /* Ctrl-U */
            memmove(b.s, b.s + cur, b.n - cur + 1);
            b.n -= cur;
            cur = 0;
        } else if (c == 11) b.n = cur, b.s[cur] = 0;      /* Ctrl-K */
        else if (c == 23) {                               /* Ctrl-W: the word before */
            size_t p = cur;
            while (p > 0 && b.s[p - 1] == ' ') p--;
            while (p > 0 && b.s[p - 1] != ' ') p--;
            memmove(b.s + p, b.s + cur, b.n - cur + 1);
            b.n -= cur - p;
            cur = p;
        } else if (c == 27) { /* escape sequences: ESC [ X, ESC [ N ~, ESC O X */
            int c1 = read_byte(), c2 = c1 == '[' || c1 == 'O' ? read_byte() : -1, num = 0;
            while (c2 >= '0' && c2 <= '9') num = num * 10 + (c2 - '0'), c2 = read_byte();
            if (c2 == ';') /* modifiers (ESC [ 1 ; 5 C): skipped */
                while ((c2 = read_byte()) >= '0' && c2 <= '9') {}
            if (c2 == 'D' && cur > 0) { /* Left */
                cur--;
                while (cur > 0 && ((unsigned char)b.s[cur] & 0xc0) == 0x80) cur--;
            } else if (c2 == 'C' && cur < b.n) { /* Right */
                cur++;
                while (cur < b.n && ((unsigned char)b.s[cur] & 0xc0) == 0x80) cur++;
            } else if (c2 == 'H' || (c2 == '~' && (num == 1 || num == 7))) cur = 0;
            else if (c2 == 'F' || (c2 == '~' && (num == 4 || num == 8))) cur = b.n;
            else if (c2 == '~' && num == 3 && cur < b.n) { /* Delete */
                size_t e = cur + 1;
                while (e < b.n && ((unsigned char)b.s[e] & 0xc0) == 0x80) e++;
                memmove(b.s + cur, b.s + e, b.n - e + 1);
                b.n -= e - cur;
            } else if ((c2 == 'A' && h > 0) || (c2 == 'B' && h < n_hist)) { /* Up, Down */
                if (h == n_hist) {
                    free(typed);
                    typed = dup_str(b.s);
                }
                h += c2 == 'A' ? -1 : 1;
                const char *t = h == n_hist ? (typed ? typed : "") : hist[h];
                b.n = 0;
                tb_add(&b, t, strlen(t));
                cur = b.n;
            }
        } else if (c >= 32 || c == 9) { /* text (UTF-8 bytes as they come) */
            char ch = (char)c;
            tb_add(&b, "", 1); /* room for one more */
            b.n--;
            memmove(b.s + cur + 1, b.s + cur, b.n - cur + 1);
            b.s[cur++] = ch;
            b.n++;
        }
        redraw(prompt, &b, cur);
    }
    raw_off();
    fputs("\r\n", stdout);
    fflush(stdout);
    free(typed);
    if (b.n && (n_hist == 0 || strcmp(hist[n_hist - 1], b.s) != 0)) {
        if (n_hist == HIST_MAX) {
            free(hist[0]);
            memmove(hist, hist + 1, sizeof hist[0] * (HIST_MAX - 1));
            n_hist--;
        }
        hist[n_hist++] = dup_str(b.s);
    }
    return b.s;
}
#endif

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = (char *)malloc(n);
    if (!d) die("%s", "out of memory");
    memcpy(d, s, n);
    return d;
}

/* The chat text of msgs[n_past..n) (with the generation prompt), malloc'ed;
   *ntok its token count (with BOS when from_start). Dies on error. */
static char *chat_text_of(const slm_model *m, int family, const slm_chat_message *msgs, int32_t n, int32_t n_past,
                          int gen, size_t *len, int32_t *ntok) {
    slm_error err;
    size_t need = 0;
    slm_chat_format(m, family, msgs, n, n_past, gen, NULL, 0, &need, NULL, NULL);
    char *text = (char *)malloc(need + 1);
    if (!text || slm_chat_format(m, family, msgs, n, n_past, gen, text, need + 1, &need, NULL, &err) != SLM_OK)
        die("%s", text ? err.message : "out of memory");
    *len = need;
    *ntok = 0;
    slm_tokenize(m, text, need, n_past == 0, 1, NULL, 0, ntok, NULL);
    return text;
}

static int cmd_chat(int argc, char **argv) {
    opts o;
    parse_opts(argc, argv, CHAT_HELP, C_CHAT, &o);
    if (!o.have_seed) o.seed = (unsigned long long)time(NULL) ^ ((unsigned long long)clock() << 20);
    slm_model *m = load(&o, 0);
    slm_model_info in;
    slm_model_get_info(m, &in);
    slm_session *s = open_session(m, &o, o.n_ctx, 0);
    slm_error err;
    int n_ctx = slm_session_n_ctx(s);
    slm_grammar *grammar = load_grammar(&o, m);
    const int gen = SLM_CHAT_GEN | (o.no_think ? SLM_CHAT_NO_THINK : 0);

    int family, fallback = 0;
    if (o.tmpl) {
        family = slm_chat_family_from_name(o.tmpl);
        if (!family) die("unknown template '%s' (chatml, llama3, gemma, phi3, phi4-mini, zephyr, mistral, llama2, granite, olmo2)", o.tmpl);
    } else {
        family = slm_chat_model_family(m, &fallback);
    }
    if (fallback)
        fprintf(stderr, "%s: note: the model has no chat template slm knows (tokenizer.chat_template); using %s, "
                        "from its architecture or its turn tokens, else chatml (--template chooses another)\n",
                prog, slm_chat_family_name(family));
    int tty = stdin_is_tty();
    if (tty)
        fprintf(stderr, "%s: chatting with %s (template %s, context %d tokens). Ctrl-D quits, /reset starts over.\n",
                prog, in.name[0] ? in.name : o.model, slm_chat_family_name(family), n_ctx);

    slm_chat_message *msgs = NULL;
    int32_t n_msgs = 0, cap = 0, n_past = 0, n_keep = 0, turn = 0;
#define PUSH_MSG(r, c)                                                                          \
    do {                                                                                        \
        if (n_msgs == cap) {                                                                    \
            cap = cap ? cap * 2 : 16;                                                           \
            msgs = (slm_chat_message *)realloc(msgs, (size_t)cap * sizeof *msgs);               \
            if (!msgs) die("%s", "out of memory");                                              \
        }                                                                                       \
        msgs[n_msgs].role = (r);                                                                \
        msgs[n_msgs].content = (c);                                                             \
        n_msgs++;                                                                               \
    } while (0)
    if (o.system) PUSH_MSG("system", dup_str(o.system));
    n_keep = n_msgs;

#if defined(HAVE_TERMIOS)
    const int edit = tty && isatty(1) && getenv("TERM") && strcmp(getenv("TERM"), "dumb") != 0;
#else
    const int edit = 0;
#endif
    for (;;) {
        if (tty && !edit) {
            fputs("> ", stdout);
            fflush(stdout);
        }
#if defined(HAVE_TERMIOS)
        char *line = edit ? edit_line("> ") : read_line();
#else
        char *line = read_line();
#endif
        if (!line) break;
        if (!line[0]) {
            free(line);
            continue;
        }
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) {
            free(line);
            break;
        }
        if (!strcmp(line, "/reset") || !strcmp(line, "/clear")) {
            free(line);
            for (int32_t i = n_keep; i < n_msgs; i++) free((char *)msgs[i].content);
            n_msgs = n_keep;
            n_past = 0;
            slm_session_rewind(s, 0);
            fprintf(stderr, "%s: new conversation\n", prog);
            continue;
        }
        PUSH_MSG("user", line);
        /* only what is new since the last reply */
        size_t need = 0;
        int32_t ntok = 0;
        char *text = chat_text_of(m, family, msgs, n_msgs, n_past, gen, &need, &ntok);
        /* context shift, as llama.cpp and ollama do: when this message and
           room for the reply do not fit, the oldest turns go (the system
           prompt stays) and the rest is decoded again from the start */
        const int32_t room = o.have_n && o.n_predict > 0 ? o.n_predict : n_ctx / 4;
        if (slm_session_pos(s) + ntok + room > n_ctx && !o.no_shift) {
            int32_t dropped = 0;
            free(text);
            text = chat_text_of(m, family, msgs, n_msgs, 0, gen, &need, &ntok);
            while (ntok + room > n_ctx && n_msgs - n_keep > 1) {
                /* the oldest turn: a user message and the reply to it */
                int32_t k = 1 + (n_keep + 1 < n_msgs - 1 && !strcmp(msgs[n_keep + 1].role, "assistant"));
                for (int32_t i = 0; i < k; i++) free((char *)msgs[n_keep + i].content);
                memmove(msgs + n_keep, msgs + n_keep + k, sizeof *msgs * (size_t)(n_msgs - n_keep - k));
                n_msgs -= k;
                dropped += k;
                free(text);
                text = chat_text_of(m, family, msgs, n_msgs, 0, gen, &need, &ntok);
            }
            if (dropped > 0 || slm_session_pos(s) > 0) {
                slm_session_rewind(s, 0);
                n_past = 0;
                fprintf(stderr, "%s: the context is full: dropped the oldest %d message%s%s; the conversation goes "
                                "on from %d tokens (of %d)\n", prog, dropped, dropped == 1 ? "" : "s",
                        n_keep ? " (the system prompt stays)" : "", ntok, n_ctx);
            }
        }

        slm_generate_params gp;
        slm_generate_params_init(&gp);
        gp.max_tokens = o.have_n && o.n_predict > 0 ? o.n_predict : 0;
        gp.sampler = o.sp;
        gp.sampler.seed = o.seed + (unsigned long long)turn;
        gp.sampler.grammar = grammar;
        gp.parse_special = 1; /* the template's special tokens */
        chat_sink sink;
        memset(&sink, 0, sizeof sink);
        sink.hide = o.hide_thinking;
        /* a template that opens the reply inside <think> (Qwen3.5): the
           reply starts as thinking */
        const int opened = think_prompt_opens(text, need);
        think_init(&sink.split, opened);
        if (opened && !sink.hide) fputs("<think>\n", stdout);
        gp.on_text = chat_text;
        gp.user = &sink;
        int32_t pos0 = slm_session_pos(s);
        slm_generate_result r;
        interrupted = 0;
        (void)ntok;
        void (*old)(int) = signal(SIGINT, on_sigint);
        slm_status st = slm_generate(s, text, need, NULL, 0, &gp, &r, &err);
        signal(SIGINT, old == SIG_ERR ? SIG_DFL : old);
        if (st == SLM_ERR_CONTEXT_FULL) {
            int32_t nt = 0;
            slm_tokenize(m, text, need, pos0 == 0, 1, NULL, 0, &nt, NULL);
            if (pos0 == 0)
                fprintf(stderr,
                        "%s: the context is full: this message needs %d tokens and the context holds %d. Send a "
                        "shorter message, or restart with a larger context (-c N; the model was trained with %d).\n",
                        prog, nt, n_ctx, in.n_ctx_train);
            else
                fprintf(stderr,
                        "%s: the context is full: this message needs %d tokens, %d of %d are free. Type /reset to "
                        "start a new conversation, or restart with a larger context (-c N; the model was trained "
                        "with %d).\n",
                        prog, nt, n_ctx - pos0, n_ctx, in.n_ctx_train);
            free((char *)msgs[--n_msgs].content);
            free(text);
            continue;
        }
        if (st != SLM_OK) die("%s", err.message);
        if (chat_out_errno) {
            errno = chat_out_errno;
            stdout_failed();
        }
        free(text);
        turn++;
        if (sink.hide) think_flush(&sink.split, chat_show, NULL); /* a tag that never came */
        text_buf reply = sink.reply;
        if (!reply.n || reply.s[reply.n - 1] != '\n') fputc('\n', stdout);
        fflush(stdout);
        /* the end-of-turn token goes: the next turn writes the template's own
           end-of-turn text after the reply */
        if (r.stop_reason == SLM_STOP_EOG && slm_session_pos(s) == pos0 + r.n_prompt + r.n_generated + 1)
            slm_session_rewind(s, slm_session_pos(s) - 1);
        PUSH_MSG("assistant", reply.s ? reply.s : dup_str(""));
        n_past = n_msgs;
        if (o.verbose)
            fprintf(stderr,
                    "%s: turn %d: prompt %d tokens (%.1f tok/s), reply %d tokens (%.1f tok/s), stop: %s, "
                    "context %d/%d\n",
                    prog, turn, r.n_prompt, r.prompt_tps, r.n_generated, r.gen_tps,
                    r.stop_reason >= 0 && r.stop_reason <= 6 ? STOP_NAMES[r.stop_reason] : "?", slm_session_pos(s),
                    n_ctx);
        if (r.stop_reason == SLM_STOP_CONTEXT_FULL)
            fprintf(stderr, "%s: the context is full (%d tokens) and the reply was cut. %s (-c N; the model was "
                            "trained with %d).\n",
                    prog, n_ctx,
                    o.no_shift ? "Type /reset to start a new conversation, or restart with a larger context"
                               : "The next message drops the oldest turns; or restart with a larger context",
                    in.n_ctx_train);
        else if (r.stop_reason == SLM_STOP_CALLBACK)
            fprintf(stderr, "%s: (reply stopped)\n", prog);
    }
#undef PUSH_MSG
    if (tty) fputc('\n', stdout);
    flush_stdout();
    for (int32_t i = 0; i < n_msgs; i++) free((char *)msgs[i].content);
    free(msgs);
    slm_grammar_free(grammar);
    slm_session_free(s);
    slm_model_free(m);
    return 0;
}

/* ---- tokenize ------------------------------------------------------------------- */

/* Length of a valid multi-byte UTF-8 sequence at s, else 0 or 1. */
static size_t utf8_seq(const char *s, size_t n) {
    unsigned char b = (unsigned char)s[0];
    size_t need = b >= 0xf0 && b < 0xf5 ? 4 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xc2 && b < 0xe0 ? 2 : 1;
    if (need == 1 || need > n) return 1;
    for (size_t i = 1; i < need; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) return 1;
    return need;
}

static int cmd_tokenize(int argc, char **argv) {
    opts o;
    parse_opts(argc, argv, TOKENIZE_HELP, C_TOKENIZE, &o);
    if (!o.prompt) die("%s", "no text given (-p TEXT, -p - for stdin, or -f FILE)");
    slm_model *m = load(&o, 1);
    slm_error err;
    int32_t n = 0;
    size_t len = strlen(o.prompt);
    slm_status st = slm_tokenize(m, o.prompt, len, !o.no_bos, o.special, NULL, 0, &n, &err);
    if (st != SLM_OK && st != SLM_ERR_BUFFER) die("%s", err.message);
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    if (!ids) die("%s", "out of memory");
    if (slm_tokenize(m, o.prompt, len, !o.no_bos, o.special, ids, n, &n, &err) != SLM_OK) die("%s", err.message);
    size_t cap = (size_t)slm_vocab_max_piece(m) + 1;
    char *piece = (char *)malloc(cap);
    if (!piece) die("%s", "out of memory");
    for (int32_t i = 0; i < n; i++) {
        size_t pl = 0;
        slm_token_to_piece(m, ids[i], 1, piece, cap, &pl);
        printf("%6d -> '", ids[i]);
        for (size_t k = 0; k < pl;) {
            unsigned char c = (unsigned char)piece[k];
            size_t u = utf8_seq(piece + k, pl - k);
            if (u > 1) {
                fwrite(piece + k, 1, u, stdout);
                k += u;
                continue;
            }
            if (c == '\n') fputs("\\n", stdout);
            else if (c == '\t') fputs("\\t", stdout);
            else if (c == '\r') fputs("\\r", stdout);
            else if (c == '\\') fputs("\\\\", stdout);
            else if (c < 0x20 || c >= 0x7f) printf("\\x%02x", c);
            else putchar(c);
            k++;
        }
        printf("'\n");
    }
    flush_stdout();
    fprintf(stderr, "%s: %d token%s\n", prog, n, n == 1 ? "" : "s");
    free(piece);
    free(ids);
    slm_model_free(m);
    return 0;
}

/* ---- quantize ------------------------------------------------------------------ */

static const char *QUANTIZE_HELP =
    "usage: slm quantize -m IN.gguf -o OUT.gguf --type TYPE [-t N] [-v]\n"
    "  Write a copy of a GGUF model with its weight matrices converted to TYPE.\n"
    "  1-D tensors (norms, biases) stay as they are; all metadata is copied.\n"
    "  -m, --model FILE   input GGUF file (any architecture)\n"
    "  -o, --out FILE     output GGUF file\n"
    "  --type TYPE        one of\n"
    "                       F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1\n"
    "                       Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL IQ4_XS   (every matrix of TYPE)\n"
    "                       Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M\n"
    "                                      (llama.cpp's mixes: output.weight and some\n"
    "                                       attn_v/ffn_down layers get more bits)\n"
    "                     Rows whose length is not a multiple of TYPE's block (256 for\n"
    "                     K-quants and IQ4_XS, 32 otherwise) fall back to a compatible\n"
    "                     type (Q5_0, Q5_1, Q8_0, IQ4_NL, else F16); the tool says so.\n"
    "  -t, --threads N    threads (default: one per performance core, at most 8)\n"
    "  -v, --verbose      one line per tensor\n";

static int verbose_log;

static void log_cb(void *user, int level, const char *msg) {
    (void)user;
    if (level <= SLM_LOG_WARN) fprintf(stderr, "%s: warning: %s\n", prog, msg);
    else if (verbose_log) printf("  %s\n", msg);
}

static int cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *type = NULL;
    int threads = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(QUANTIZE_HELP, stdout);
            exit(0);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) in = need_arg(argc, argv, &i);
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) out = need_arg(argc, argv, &i);
        else if (!strcmp(a, "--type")) type = need_arg(argc, argv, &i);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) threads = parse_int(need_arg(argc, argv, &i), a);
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) verbose_log = 1;
        else die("unknown option '%s' (see --help)", a);
    }
    if (!in) die("%s", "no input model given (-m FILE)");
    if (!out) die("%s", "no output file given (-o FILE)");
    if (!type) die("%s", "no target type given (--type Q4_K_M, see --help)");
    slm_quantize_params qp;
    slm_quantize_params_init(&qp);
    if (slm_quantize_parse_type(type, &qp.type, &qp.mix) != SLM_OK) die("unknown type '%s' (see --help)", type);
    qp.n_threads = threads;
    qp.log = log_cb;
    slm_quantize_stats st;
    slm_error err;
    if (slm_quantize_file(in, out, &qp, &st, &err) != SLM_OK) die("%s", err.message);
    char b1[32], b2[32], b3[32], b4[32];
    human((double)st.bytes_in, b1, sizeof b1);
    human((double)st.bytes_out, b2, sizeof b2);
    human((double)st.file_in, b3, sizeof b3);
    human((double)st.file_out, b4, sizeof b4);
    printf("wrote %s (%s)\n", out, type);
    printf("tensors:      %d, %d converted, %d kept\n", st.n_tensors, st.n_converted, st.n_tensors - st.n_converted);
    printf("output types:");
    for (int t = 0; t < 40; t++)
        if (st.n_by_type[t]) printf(" %s: %d;", slm_type_name(t) ? slm_type_name(t) : "?", st.n_by_type[t]);
    printf("\n");
    printf("fallbacks:    %d matri%s whose rows do not fit the block size%s\n", st.n_fallback,
           st.n_fallback == 1 ? "x" : "ces", st.n_fallback ? " (see the warnings above)" : "");
    printf("tensor data:  %s -> %s (%.1f%%)\n", b1, b2, st.bytes_in ? 100.0 * st.bytes_out / st.bytes_in : 0.0);
    printf("file size:    %s -> %s\n", b3, b4);
    return 0;
}

/* ---- bench ---------------------------------------------------------------------- */

static const char *BENCH_HELP =
    "usage: slm bench -m FILE [-t 1,2] [-p 128] [-n 64] [-r 5] [-b 128] [-d 0] [--kv-f32] [--isa NAME] [--csv]\n"
    "  Measure prompt processing (pp: P random tokens in one decode call on an\n"
    "  empty context) and generation (tg: N tokens decoded one at a time) in\n"
    "  tokens/s, the median of R repetitions after one warm-up, for each thread\n"
    "  count; then the process's peak resident memory.\n"
    "  -m, --model FILE    GGUF model file\n"
    "  -t, --threads LIST  thread counts, comma-separated (default: 1,2)\n"
    "  -p, --n-prompt P    prompt tokens (default 128; 0 skips the test)\n"
    "  -n, --n-gen N       generated tokens (default 64; 0 skips the test)\n"
    "  -r, --reps R        repetitions (default 5)\n"
    "  -b, --batch B       tokens per forward chunk (default: P)\n"
    "  -d, --depth D       run the tests after D tokens already in the context\n"
    "                      (default 0), to see attention over a long context\n"
    "  --kv-f32            F32 KV cache (default F16)\n"
    "  --isa NAME          kernels to measure (avx512, avx2, sse4, scalar, ...; default: the best)\n"
    "  --csv               machine-readable lines: model,type,threads,test,median,min,max,peak_rss_kib\n"
    "  --embed             embedding throughput instead (the default for encoders such as\n"
    "                      BERT): K texts of P random tokens each (the model's pooling),\n"
    "                      texts/s and tokens/s, median of R repetitions after a warm-up\n"
    "  --texts K           texts per repetition for --embed (default 16)\n"
    "  The type is the file's (general.file_type: Q4_K_M, ...), or ~TYPE: the type of\n"
    "  most of the weights when the file does not say.\n";

/* The median of n > 0 values, and their minimum and maximum (sorts v) */
static double median_of(double *v, int n, double *mn, double *mx) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *mn = v[0], *mx = v[n - 1];
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double now_sec(void) {
#if defined(CLOCK_MONOTONIC)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

static long peak_rss_kib(void) {
#if defined(__linux__)
    /* VmHWM: the high-water mark of resident memory */
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
#else
    return -1;
#endif
}

/* The type of most of the matrix bytes */
static int main_weight_type(const slm_model *m) {
    uint64_t by_type[64] = {0};
    for (int64_t i = 0; i < slm_tensor_count(m); i++) {
        slm_tensor_info ti;
        slm_tensor_get_info(m, i, &ti);
        if (ti.type >= 0 && ti.type < 64 && ti.n_dims >= 2) by_type[ti.type] += ti.nbytes;
    }
    int main_type = 0;
    for (int t = 0; t < 64; t++)
        if (by_type[t] > by_type[main_type]) main_type = t;
    return main_type;
}

/* n token ids below n_vocab, the same sequence on every run */
static void random_ids(int32_t *ids, size_t n, int32_t n_vocab) {
    unsigned long long r = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        ids[i] = (int32_t)(r % (unsigned long long)n_vocab);
    }
}

/* the lines under a table: peak memory, build and kernels */
static void bench_footer(const slm_model *m, int csv) {
    long rss = peak_rss_kib();
    if (csv) return;
    if (rss >= 0) printf("peak RSS: %.1f MiB\n", rss / 1024.0);
    printf("build: %s; kernels: %s\n", slm_build_info(), slm_isa_name(slm_model_isa(m)));
}

/* One repetition: tokens/s of the test on a context rewound to `depth`. */
static double bench_once(slm_session *s, const int32_t *ids, int n, int gen, int depth) {
    slm_error err;
    slm_session_rewind(s, depth);
    double t0 = now_sec();
    if (!gen) {
        if (slm_decode(s, ids, n, &err) != SLM_OK) die("%s", err.message);
    } else {
        for (int i = 0; i < n; i++)
            if (slm_decode(s, ids + i, 1, &err) != SLM_OK) die("%s", err.message);
    }
    return n / (now_sec() - t0);
}

static int bench_embed(slm_model *m, const char *base, const int *threads, int nt, int np, int n_texts, int reps,
                       int kv_f32, int csv);

static int cmd_bench(int argc, char **argv) {
    const char *model = NULL, *tlist = "1,2";
    int np = 128, ng = 64, reps = 5, batch = 0, depth = 0, kv_f32 = 0, csv = 0, isa = SLM_ISA_BEST;
    int embed = 0, n_texts = 16;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(BENCH_HELP, stdout);
            exit(0);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = need_arg(argc, argv, &i);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) tlist = need_arg(argc, argv, &i);
        else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) np = parse_int(need_arg(argc, argv, &i), a);
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) ng = parse_int(need_arg(argc, argv, &i), a);
        else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) reps = parse_int(need_arg(argc, argv, &i), a);
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) batch = parse_int(need_arg(argc, argv, &i), a);
        else if (!strcmp(a, "-d") || !strcmp(a, "--depth")) depth = parse_int(need_arg(argc, argv, &i), a);
        else if (!strcmp(a, "--kv-f32")) kv_f32 = 1;
        else if (!strcmp(a, "--isa")) isa = parse_isa(need_arg(argc, argv, &i));
        else if (!strcmp(a, "--csv")) csv = 1;
        else if (!strcmp(a, "--embed")) embed = 1;
        else if (!strcmp(a, "--texts")) n_texts = parse_int(need_arg(argc, argv, &i), a);
        else die("unknown option '%s' (see slm bench --help)", a);
    }
    if (!model) die("%s", "no model given (-m FILE)");
    if (np < 0 || ng < 0 || reps < 1 || reps > 1000 || batch < 0 || depth < 0) die("%s", "invalid -p, -n, -r, -b or -d");
    int threads[16], nt = 0;
    for (const char *p = tlist; *p && nt < 16;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1024) die("invalid thread list '%s'", tlist);
        threads[nt++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') die("invalid thread list '%s'", tlist);
    }
    slm_model *m = NULL;
    slm_error err;
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.isa = isa;
    if (slm_model_load_file(model, &mp, &m, &err) != SLM_OK) die("%s", err.message);
    if (embed || slm_model_is_encoder(m)) {
        if (np < 1 || n_texts < 1 || n_texts > 100000) die("%s", "--embed needs -p >= 1 and --texts in [1, 100000]");
        const char *b = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
        int rc = bench_embed(m, b, threads, nt, np, n_texts, reps, kv_f32, csv);
        slm_model_free(m);
        return rc;
    }
    slm_model_info in;
    slm_model_get_info(m, &in);
    const int main_type = main_weight_type(m); /* for the table */
    /* the label: the file type (general.file_type, as llama.cpp names it),
       else the type of most of the weights */
    char type_label[24];
    {
        static const char *const FT[] = {"F32", "F16", "Q4_0", "Q4_1", NULL, NULL, NULL, "Q8_0", "Q5_0", "Q5_1",
                                         "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S",
                                         "Q5_K_M", "Q6_K", NULL, NULL, NULL, NULL, NULL, NULL, "IQ4_NL", NULL, NULL,
                                         NULL, NULL, "IQ4_XS", NULL, "BF16"};
        int64_t k = slm_meta_find(m, "general.file_type");
        int64_t ft = -1;
        if (k >= 0 && slm_meta_get_int(m, k, -1, &ft) != SLM_OK) ft = -1;
        if (ft >= 0 && ft < (int64_t)(sizeof FT / sizeof FT[0]) && FT[ft])
            snprintf(type_label, sizeof type_label, "%s", FT[ft]);
        else
            snprintf(type_label, sizeof type_label, "~%s", slm_type_name(main_type) ? slm_type_name(main_type) : "?");
    }
    const char *base = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
    int n_ids = np > ng ? np : ng;
    n_ids = n_ids > depth ? n_ids : depth;
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n_ids ? n_ids : 1));
    if (!ids) die("%s", "out of memory");
    random_ids(ids, (size_t)n_ids, in.n_vocab);
    char sz[32];
    human((double)in.weight_bytes, sz, sizeof sz);
    if (!csv) {
        printf("| %-28s | %10s | %8s | %-6s | %7s | %5s | %16s |\n", "model", "size", "params", "type", "threads",
               "test", "t/s (min-max)");
        printf("|------------------------------|-----------:|---------:|--------|--------:|------:|-----------------:|\n");
    }
    for (int ti = 0; ti < nt; ti++) {
        slm_session_params sp;
        slm_session_params_init(&sp);
        sp.n_ctx = depth + np + ng + 8;
        sp.n_threads = threads[ti];
        sp.n_batch = batch ? batch : (np ? np : 1);
        if (!batch && depth && sp.n_batch < 512) sp.n_batch = depth < 512 ? depth : 512; /* fill the context quickly */
        if (kv_f32) sp.kv_type = SLM_TYPE_F32;
        slm_session *s = NULL;
        if (slm_session_create(m, &sp, &s, &err) != SLM_OK) die("%s", err.message);
        for (int d = 0; d < depth; d += sp.n_batch) { /* the context the tests start from */
            const int k = depth - d < sp.n_batch ? depth - d : sp.n_batch;
            if (slm_decode(s, ids + d, k, &err) != SLM_OK) die("%s", err.message);
        }
        for (int test = 0; test < 2; test++) {
            int n = test ? ng : np;
            if (n == 0) continue;
            double v[1000];
            bench_once(s, ids, n, test, depth); /* warm-up: page in the weights, spin up threads */
            for (int k = 0; k < reps; k++) v[k] = bench_once(s, ids, n, test, depth);
            double mn, mx, med = median_of(v, reps, &mn, &mx);
            char tname[32];
            if (depth) snprintf(tname, sizeof tname, "%s%d@d%d", test ? "tg" : "pp", n, depth);
            else snprintf(tname, sizeof tname, "%s%d", test ? "tg" : "pp", n);
            if (csv)
                printf("%s,%s,%d,%s,%.2f,%.2f,%.2f,%ld\n", base, type_label, threads[ti], tname, med, mn,
                       mx, peak_rss_kib());
            else
                printf("| %-28.28s | %10s | %7.1fM | %-6s | %7d | %5s | %7.1f (%.0f-%.0f) |\n", base, sz,
                       in.n_params / 1e6, type_label, threads[ti], tname, med, mn, mx);
            fflush(stdout);
        }
        slm_session_free(s);
    }
    bench_footer(m, csv);
    free(ids);
    slm_model_free(m);
    return 0;
}

/* Embedding throughput: n_texts sequences of np random token ids each
   (slm_embed_tokens, the model's pooling) per repetition, per thread count. */
static int bench_embed(slm_model *m, const char *base, const int *threads, int nt, int np, int n_texts, int reps,
                       int kv_f32, int csv) {
    slm_model_info in;
    slm_model_get_info(m, &in);
    const int main_type = main_weight_type(m);
    const int dim = slm_model_n_embd_out(m);
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)np * (size_t)n_texts);
    float *vec = (float *)malloc(sizeof(float) * (size_t)dim);
    if (!ids || !vec) die("%s", "out of memory");
    random_ids(ids, (size_t)np * (size_t)n_texts, in.n_vocab);
    char sz[32], tname[32];
    human((double)in.weight_bytes, sz, sizeof sz);
    snprintf(tname, sizeof tname, "emb%dx%d", np, n_texts);
    if (!csv) {
        printf("| %-28s | %10s | %8s | %-6s | %7s | %10s | %18s | %18s |\n", "model", "size", "params", "type", "threads",
               "test", "texts/s (min-max)", "tokens/s");
        printf("|------------------------------|-----------:|---------:|--------|--------:|-----------:|-------------------:|"
               "-------------------:|\n");
    }
    slm_embed_params ep;
    slm_embed_params_init(&ep);
    if (slm_model_pooling(m) == SLM_POOLING_NONE) ep.pooling = SLM_POOLING_MEAN; /* one vector per text */
    for (int ti = 0; ti < nt; ti++) {
        slm_session_params sp;
        slm_session_params_init(&sp);
        sp.n_ctx = np;
        sp.n_threads = threads[ti];
        if (kv_f32) sp.kv_type = SLM_TYPE_F32;
        slm_session *s = NULL;
        slm_error err;
        if (slm_session_create(m, &sp, &s, &err) != SLM_OK) die("%s", err.message);
        double v[1000];
        for (int k = -1; k < reps; k++) { /* k = -1: warm-up */
            double t0 = now_sec();
            for (int t = 0; t < n_texts; t++)
                if (slm_embed_tokens(s, ids + (size_t)t * (size_t)np, np, &ep, vec, (size_t)dim, &err) != SLM_OK)
                    die("%s", err.message);
            if (k >= 0) v[k] = n_texts / (now_sec() - t0);
        }
        double mn, mx, med = median_of(v, reps, &mn, &mx);
        if (csv)
            printf("%s,%s,%d,%s,%.2f,%.2f,%.2f,%ld\n", base, slm_type_name(main_type), threads[ti], tname, med, mn, mx,
                   peak_rss_kib());
        else
            printf("| %-28.28s | %10s | %7.1fM | %-6s | %7d | %10s | %8.2f (%.1f-%.1f) | %18.1f |\n", base, sz,
                   in.n_params / 1e6, slm_type_name(main_type), threads[ti], tname, med, mn, mx, med * np);
        fflush(stdout);
        slm_session_free(s);
    }
    bench_footer(m, csv);
    free(ids);
    free(vec);
    return 0;
}

/* ---- embed --------------------------------------------------------------------- */

static const char *EMBED_HELP =
    "usage: slm embed -m FILE (-p TEXT | -f FILE) [--pooling P] [--normalize] [--json] [options]\n"
    "  Embed texts with an embedding model (bert, nomic-bert, gemma-embedding,\n"
    "  or a decoder such as Qwen3-Embedding): each text is its own sequence,\n"
    "  pooled as the model's pooling_type says unless --pooling is given. The\n"
    "  vectors are raw, as llama.cpp returns them, unless --normalize.\n"
    "  Output: one line of floats per text (pooling none: one line per token,\n"
    "  a blank line between texts); --json prints one JSON array holding one\n"
    "  array of floats per input text, in input order (pooling none: an array\n"
    "  of per-token arrays per text). Counts and speed go to stderr.\n"
    "  -m, --model FILE   GGUF model file\n"
    "  -p, --prompt TEXT  a text to embed (may be repeated, up to 16 times)\n"
    "  -f, --file FILE    texts to embed, one per line (a final newline ends the\n"
    "                     last line; a \\r before a newline is dropped)\n"
    "  --pooling P        none, mean, cls or last (default: the model's)\n"
    "  --normalize        divide every vector by its L2 norm\n"
    "  --json             JSON output\n"
    "  -c, --ctx N        context length (default: training context, at most 4096)\n"
    "  -t, --threads N    threads (default: one per performance core, at most 8)\n"
    "  --kv-f32           keep the KV cache in F32 (default F16)\n"
    "  --no-mmap          read the file instead of mapping it\n";

/* Read a whole text file for slm embed -f (NUL-terminated, up to 1 GB); dies on error. */
static char *slurp_texts(const char *path, size_t *len) {
    FILE *f = fopen_utf8(path, "rb");
    if (!f) die("cannot open '%s'", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = (char *)malloc(cap);
    if (!buf) die("%s", "out of memory");
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > ((size_t)1 << 30)) die("'%s' is larger than 1 GB", path);
            char *nb = (char *)realloc(buf, cap * 2);
            if (!nb) die("%s", "out of memory");
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) die("cannot read '%s'", path);
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static void print_vec(const float *v, int n, int json) {
    if (json) putchar('[');
    for (int i = 0; i < n; i++) printf(i ? (json ? ",%.9g" : " %.9g") : "%.9g", (double)v[i]);
    if (json) putchar(']');
}

static int cmd_embed(int argc, char **argv) {
    opts o;
    memset(&o, 0, sizeof o);
    o.cmd = "embed";
    const char *file = NULL;
    int pooling = SLM_POOLING_UNSPECIFIED, normalize = 0, json = 0, n_texts = 0, cap_texts = 16;
    const char **texts = (const char **)malloc(sizeof(char *) * (size_t)cap_texts);
    size_t *lens = (size_t *)malloc(sizeof(size_t) * (size_t)cap_texts);
    if (!texts || !lens) die("%s", "out of memory");
    char *fbuf = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(EMBED_HELP, stdout);
            exit(0);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) o.model = need_arg(argc, argv, &i);
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            const char *t = need_arg(argc, argv, &i);
            if (n_texts == 16) die("%s", "at most 16 -p texts (use -f FILE for more)");
            texts[n_texts] = t;
            lens[n_texts++] = strlen(t);
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) file = need_arg(argc, argv, &i);
        else if (!strcmp(a, "--pooling")) {
            const char *v = need_arg(argc, argv, &i);
            if ((pooling = slm_pooling_from_name(v)) < 0) die("unknown pooling '%s' (none, mean, cls, last)", v);
        } else if (!strcmp(a, "--normalize")) normalize = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) o.n_ctx = parse_int(need_arg(argc, argv, &i), a);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) o.threads = parse_int(need_arg(argc, argv, &i), a);
        else if (!strcmp(a, "--kv-f32")) o.kv_f32 = 1;
        else if (!strcmp(a, "--no-mmap")) o.no_mmap = 1;
        else die("unknown option '%s' (see slm embed --help)", a);
    }
    if (!o.model) die("%s", "no model given (-m FILE)");
    if (file && n_texts) die("%s", "give the texts with -p or with -f, not both");
    if (o.n_ctx < 0 || o.threads < 0) die("%s", "-c and -t must not be negative");
    if (file) {
        size_t n;
        fbuf = slurp_texts(file, &n);
        for (size_t b = 0; b < n;) {
            size_t e = b;
            while (e < n && fbuf[e] != '\n') e++;
            size_t l = e - b;
            if (l && fbuf[b + l - 1] == '\r') l--;
            if (n_texts == cap_texts) {
                if (cap_texts > (1 << 24)) die("%s", "too many lines");
                cap_texts *= 2;
                const char **nt = (const char **)realloc((void *)texts, sizeof(char *) * (size_t)cap_texts);
                size_t *nl = (size_t *)realloc(lens, sizeof(size_t) * (size_t)cap_texts);
                if (!nt || !nl) die("%s", "out of memory");
                texts = nt, lens = nl;
            }
            texts[n_texts] = fbuf + b;
            lens[n_texts++] = l;
            b = e + 1;
        }
    }
    if (!n_texts) die("%s", "no text to embed (-p TEXT or -f FILE)");
    slm_model *m = load(&o, 0);
    slm_session *s = open_session(m, &o, o.n_ctx, 0);
    slm_embed_params ep;
    slm_embed_params_init(&ep);
    ep.pooling = pooling;
    ep.normalize = normalize;
    const int dim = slm_model_n_embd_out(m), pool = pooling < 0 ? slm_model_pooling(m) : pooling;
    const size_t max_rows = pool == SLM_POOLING_NONE ? (size_t)slm_session_n_ctx(s) : 1;
    float *vec = (float *)malloc(sizeof(float) * max_rows * (size_t)dim);
    if (!vec) die("%s", "out of memory");
    slm_error err;
    double t0 = now_sec(), tokens = 0;
    if (json) putchar('[');
    for (int i = 0; i < n_texts; i++) {
        int32_t rows = 0, nt = 0;
        if (slm_embed(s, &texts[i], &lens[i], 1, &ep, vec, max_rows * (size_t)dim, &rows, &err) != SLM_OK) {
            fflush(stdout);
            fprintf(stderr, "%s: text %d: %s\n", prog, i + 1, err.message);
            exit(1);
        }
        slm_tokenize(m, texts[i], lens[i], 1, 1, NULL, 0, &nt, NULL);
        tokens += nt;
        if (json && i) putchar(',');
        if (pool == SLM_POOLING_NONE) {
            if (json) putchar('[');
            for (int r = 0; r < rows; r++) {
                if (json && r) putchar(',');
                print_vec(vec + (size_t)r * (size_t)dim, dim, json);
                if (!json) putchar('\n');
            }
            if (json) putchar(']');
            else if (i + 1 < n_texts) putchar('\n');
        } else {
            print_vec(vec, dim, json);
            if (!json) putchar('\n');
        }
    }
    if (json) puts("]");
    double dt = now_sec() - t0;
    fprintf(stderr, "%s: %d text%s, %.0f tokens, %d floats each (%s pooling%s) in %.3f s: %.1f texts/s, %.1f tokens/s\n",
            prog, n_texts, n_texts == 1 ? "" : "s", tokens, dim, slm_pooling_name(pool), normalize ? ", normalized" : "",
            dt, dt > 0 ? n_texts / dt : 0.0, dt > 0 ? tokens / dt : 0.0);
    free(vec);
    free(fbuf);
    free((void *)texts);
    free(lens);
    slm_session_free(s);
    slm_model_free(m);
    return 0;
}

/* --name=value -> --name value, for the subcommands with their own parsers */
static void split_eq(int *argc, char ***argv) {
    char **a = (char **)malloc(sizeof(char *) * (size_t)(2 * *argc + 1));
    int n = 0;
    if (!a) die("%s", "out of memory");
    for (int i = 0; i < *argc; i++) {
        char *eq = i >= 2 && !strncmp((*argv)[i], "--", 2) ? strchr((*argv)[i], '=') : NULL;
        if (eq) {
            size_t l = (size_t)(eq - (*argv)[i]);
            char *name = (char *)malloc(l + 1);
            if (!name) die("%s", "out of memory");
            memcpy(name, (*argv)[i], l);
            name[l] = 0;
            a[n++] = name;
            a[n++] = eq + 1;
        } else {
            a[n++] = (*argv)[i];
        }
    }
    a[n] = NULL;
    *argc = n;
    *argv = a;
}

static const char *MAIN_HELP =
    "usage: slm COMMAND [options]   (slm COMMAND --help for details)\n"
    "commands:\n"
    "  run       generate text from a prompt, streamed to stdout\n"
    "  chat      chat with the model in the terminal (keeps the conversation)\n"
    "  tokenize  show the token ids and pieces of a text\n"
    "  embed     embedding vectors of texts (embedding models: bert, qwen3, ...)\n"
    "  info      describe a GGUF model file\n"
    "  logits    write the logits of a sequence of token ids\n"
    "  quantize  convert a GGUF model's weights to another type (Q4_K_M, Q8_0, ...)\n"
    "  bench     measure prompt and generation speed (tokens/s) and peak memory\n"
    "  serve     serve the model over HTTP to OpenAI and Ollama clients\n"
    "  version   print the library version and build configuration\n"
    "example:\n"
    "  slm run -m tests/data/demo/kjv-1m-q8_0.gguf -p \"And the LORD said\" -n 64 --seed 1\n";

int main(int argc, char **argv) {
#if defined(_WIN32)
    windows_utf8(&argc, &argv);
#endif
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(MAIN_HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "quantize") || !strcmp(cmd, "bench") || !strcmp(cmd, "embed")) split_eq(&argc, &argv);
    if (!strcmp(cmd, "info")) return cmd_info(argc, argv);
    if (!strcmp(cmd, "logits")) return cmd_logits(argc, argv);
    if (!strcmp(cmd, "run")) return cmd_run(argc, argv);
    if (!strcmp(cmd, "chat")) return cmd_chat(argc, argv);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc, argv);
    if (!strcmp(cmd, "quantize")) return cmd_quantize(argc, argv);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc, argv);
    if (!strcmp(cmd, "embed")) return cmd_embed(argc, argv);
    if (!strcmp(cmd, "serve")) return serve_main(argc, argv);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("slm %s (%s)\n", slm_version(), slm_build_info());
        return 0;
    }
    die("unknown command '%s' (see slm --help)", cmd);
    return 1;
}
