/* Chat templates: family detection, the formatted text of every family
   against the published templates, incremental formatting, the ChatML
   fallback; and `slm chat` driven through a pipe on the demo model and the
   tiny qwen2 fixture. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* popen */
#endif
#include "test.h"

#include "slm.h"
#include "vocab_build.h"

#include <stdlib.h>
#include <string.h>

static const slm_chat_message CONV[] = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello! "},
    {"assistant", " Hi there."},
    {"user", "Tell me a joke."},
};

/* system + user + assistant + user with the generation prompt, written out
   from each family's published template (Hugging Face tokenizer_config.json
   of the reference model; BOS left to the tokenizer). */
static const struct {
    int family;
    const char *name;
    const char *want;
    const char *reply; /* the assistant's content as the template writes it */
} EXPECT[] = {
    {SLM_CHAT_CHATML, "chatml (Qwen2.5 / SmolLM2)",
     "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! <|im_end|>\n"
     "<|im_start|>assistant\n Hi there.<|im_end|>\n<|im_start|>user\nTell me a joke.<|im_end|>\n"
     "<|im_start|>assistant\n",
     " Hi there."},
    {SLM_CHAT_LLAMA3, "llama3 (Meta-Llama-3-8B-Instruct)",
     "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\nHi there.<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\n",
     "Hi there."},
    {SLM_CHAT_GEMMA, "gemma (gemma-3-1b-it)",
     "<start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n"
     "<start_of_turn>model\nHi there.<end_of_turn>\n<start_of_turn>user\nTell me a joke.<end_of_turn>\n"
     "<start_of_turn>model\n",
     "Hi there."},
    {SLM_CHAT_PHI3, "phi3 (Phi-3-mini-4k-instruct)",
     "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello! <|end|>\n<|assistant|>\n Hi there.<|end|>\n"
     "<|user|>\nTell me a joke.<|end|>\n<|assistant|>\n",
     " Hi there."},
    {SLM_CHAT_PHI4_MINI, "phi4-mini (Phi-4-mini-instruct)",
     "<|system|>You are a helpful assistant.<|end|><|user|>Hello! <|end|><|assistant|> Hi there.<|end|>"
     "<|user|>Tell me a joke.<|end|><|assistant|>",
     " Hi there."},
    {SLM_CHAT_ZEPHYR, "zephyr (zephyr-7b-beta, TinyLlama-1.1B-Chat)",
     "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello! </s>\n<|assistant|>\n Hi there.</s>\n"
     "<|user|>\nTell me a joke.</s>\n<|assistant|>\n",
     " Hi there."},
    {SLM_CHAT_MISTRAL, "mistral (Mistral-7B-Instruct-v0.1, tokenizer V1)",
     " [INST] You are a helpful assistant.\n\nHello!  [/INST]  Hi there.</s> [INST] Tell me a joke. [/INST]",
     " Hi there."},
    {SLM_CHAT_LLAMA2, "llama2 (Llama-2-7b-chat-hf)",
     "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] Hi there. </s><s>[INST] Tell me a joke. [/INST]",
     "Hi there."},
};

/* Excerpts of the published Jinja templates, enough to tell them apart. */
static const struct {
    const char *tmpl;
    int family;
} DETECT[] = {
    {"{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
     "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
     SLM_CHAT_CHATML},
    {"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
     "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}",
     SLM_CHAT_LLAMA3},
    {"{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + "
     "'<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}",
     SLM_CHAT_GEMMA},
    {"{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + "
     "'<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}"
     "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}",
     SLM_CHAT_PHI3},
    {"{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is "
     "not none %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + "
     "'<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}",
     SLM_CHAT_PHI4_MINI},
    /* the older Phi-3 template of llama.cpp's ggml-vocab-phi-3.gguf */
    {"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + "
     "message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') %}"
     "{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}",
     SLM_CHAT_PHI3},
    {"{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
     "eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}"
     "\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
     SLM_CHAT_ZEPHYR},
    {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ ' [INST] ' + message['content'] + "
     "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token}}{% endif %}"
     "{% endfor %}",
     SLM_CHAT_MISTRAL},
    {"{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
     "'\\n<</SYS>>\\n\\n' + message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + "
     "content.strip() + ' [/INST]' }}",
     SLM_CHAT_LLAMA2},
    {"{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}", SLM_CHAT_AUTO},
};

static char *format(const slm_model *m, int fam, const slm_chat_message *msg, int n, int n_past, int gen, int *fb) {
    size_t need = 0;
    slm_status st = slm_chat_format(m, fam, msg, n, n_past, gen, NULL, 0, &need, fb, NULL);
    if (st != SLM_ERR_BUFFER && st != SLM_OK) return NULL;
    char *buf = (char *)malloc(need + 1);
    size_t len = 0;
    if (slm_chat_format(m, fam, msg, n, n_past, gen, buf, need + 1, &len, fb, NULL) != SLM_OK || len != need) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void show(const char *label, const char *s) {
    printf("  %s: \"", label);
    for (const char *p = s; p && *p; p++) {
        if (*p == '\n') printf("\\n");
        else putchar(*p);
    }
    printf("\"\n");
}

static void families(void) {
    for (size_t i = 0; i < sizeof EXPECT / sizeof EXPECT[0]; i++) {
        int fam = EXPECT[i].family;
        char *full = format(NULL, fam, CONV, 4, 0, 1, NULL);
        int ok = full && !strcmp(full, EXPECT[i].want);
        CHECK(ok, "%s: formatted text differs", EXPECT[i].name);
        if (!ok) {
            show("got ", full);
            show("want", EXPECT[i].want);
        }
        /* the new turn alone is the end of the full text, cut right after the
           assistant's reply */
        char *inc = format(NULL, fam, CONV, 4, 3, 1, NULL);
        size_t fl = full ? strlen(full) : 0, il = inc ? strlen(inc) : 0, rl = strlen(EXPECT[i].reply);
        int suffix = inc && full && il > 0 && il < fl && !strcmp(full + fl - il, inc);
        int cut = suffix && fl - il >= rl && !memcmp(full + fl - il - rl, EXPECT[i].reply, rl);
        CHECK(suffix && cut, "%s: incremental text '%s' is not the suffix after the reply", EXPECT[i].name,
              inc ? inc : "(null)");
        /* names */
        CHECK(slm_chat_family_from_name(slm_chat_family_name(fam)) == fam, "%s: name round trip", EXPECT[i].name);
        free(full);
        free(inc);
    }
    CHECK(slm_chat_family_from_name("tinyllama") == SLM_CHAT_ZEPHYR && slm_chat_family_from_name("qwen") == SLM_CHAT_CHATML &&
              slm_chat_family_from_name("jinja") == SLM_CHAT_AUTO,
          "family aliases");
    for (size_t i = 0; i < sizeof DETECT / sizeof DETECT[0]; i++)
        CHECK(slm_chat_detect(DETECT[i].tmpl) == DETECT[i].family, "detect template %zu: %d, want %d", i,
              slm_chat_detect(DETECT[i].tmpl), DETECT[i].family);

    /* without the generation prompt; no system message for gemma */
    char *t = format(NULL, SLM_CHAT_CHATML, CONV + 1, 1, 0, 0, NULL);
    CHECK(t && !strcmp(t, "<|im_start|>user\nHello! <|im_end|>\n"), "chatml without generation prompt");
    free(t);
    t = format(NULL, SLM_CHAT_GEMMA, CONV + 1, 1, 0, 1, NULL);
    CHECK(t && !strcmp(t, "<start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n"), "gemma without system");
    free(t);
    t = format(NULL, SLM_CHAT_LLAMA2, CONV + 1, 1, 0, 1, NULL);
    CHECK(t && !strcmp(t, "[INST] Hello! [/INST]"), "llama2 without system");
    free(t);

    /* errors and the buffer contract */
    char small[8];
    size_t len = 0;
    CHECK(slm_chat_format(NULL, SLM_CHAT_CHATML, CONV, 4, 0, 1, small, sizeof small, &len, NULL, NULL) == SLM_ERR_BUFFER &&
              len == strlen(EXPECT[0].want),
          "small buffer: needs %zu", len);
    CHECK(slm_chat_format(NULL, SLM_CHAT_AUTO, CONV, 4, 0, 1, NULL, 0, &len, NULL, NULL) == SLM_ERR_INVALID_ARG,
          "AUTO needs a model");
    CHECK(slm_chat_format(NULL, SLM_CHAT_CHATML, CONV, 4, 2, 1, NULL, 0, &len, NULL, NULL) == SLM_ERR_INVALID_ARG,
          "n_past must follow an assistant message");
    CHECK(slm_chat_format(NULL, 99, CONV, 4, 0, 1, NULL, 0, &len, NULL, NULL) == SLM_ERR_INVALID_ARG, "bad family");
}

/* A model's template: detected from tokenizer.chat_template, its own EOS
   text, and the ChatML fallback (reported) for none or an unknown one. */
static void model_templates(void) {
    static const char *toks[] = {"<unk>", "<s>", "<|eot|>", "a", "b"};
    static const int types[] = {2, 3, 3, 1, 1};
    const char *tmpls[] = {DETECT[6].tmpl, DETECT[9].tmpl, NULL};
    for (int i = 0; i < 3; i++) {
        vocab_spec vs;
        memset(&vs, 0, sizeof vs);
        vs.model = "llama";
        vs.tokens = toks;
        vs.types = types;
        vs.n_tokens = 5;
        vs.chat_template = tmpls[i];
        vs.bos = 1;
        vs.eos = 2;
        gbuf g = vocab_gguf(&vs);
        logcap lc;
        memset(&lc, 0, sizeof lc);
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.vocab_only = 1;
        mp.log = logcap_fn;
        mp.log_user = &lc;
        slm_model *m = NULL;
        if (slm_model_load_memory(g.p, g.n, &mp, &m, NULL) != SLM_OK) {
            CHECK(0, "load vocab with template %d", i);
            free(g.p);
            continue;
        }
        int fb = -1;
        int fam = slm_chat_model_family(m, &fb);
        int w0 = lc.warns;
        char *t = format(m, SLM_CHAT_AUTO, CONV + 1, 2, 0, 1, &fb);
        if (i == 0) {
            CHECK(fam == SLM_CHAT_ZEPHYR && fb == 0 && w0 == 0, "zephyr template detected in the model");
            CHECK(t && !strcmp(t, "<|user|>\nHello! <|eot|>\n<|assistant|>\n Hi there.<|eot|>\n<|assistant|>\n"),
                  "zephyr with the model's EOS text: '%s'", t ? t : "");
        } else {
            /* one warning per call that has to fall back */
            CHECK(fam == SLM_CHAT_CHATML && fb == 1 && w0 == 1 && lc.warns > w0, "fallback %d: family %d fb %d warns %d",
                  i, fam, fb, lc.warns);
            CHECK(strstr(lc.last, "ChatML") != NULL, "the warning names ChatML: '%s'", lc.last);
            CHECK(t && !strncmp(t, "<|im_start|>user\n", 17), "fallback formats ChatML");
        }
        free(t);
        slm_model_free(m);
        free(g.p);
    }
}

/* ---- slm chat through a pipe ----------------------------------------------------- */

#if defined(__unix__) || defined(__APPLE__)
#define HAVE_POPEN 1
#include <stdio.h>
FILE *popen(const char *command, const char *type);
int pclose(FILE *stream);
#elif defined(_WIN32)
/* through cmd.exe: the input from a file (no printf there), a path with
   backslashes (a slash starts an option) */
#define HAVE_POPEN 1
#define popen _popen
#define pclose _pclose
#endif

typedef struct turn {
    int prompt, reply, pos, ctx;
} turn;

/* Run the CLI with `input` on stdin; collect stdout+stderr and the verbose
   turn lines ("slm: turn N: prompt P tokens ..., context POS/CTX"). */
static int run_chat(const char *args, const char *input, char *out, size_t cap, turn *turns, int *n_turns) {
#ifdef HAVE_POPEN
#if defined(_WIN32)
    const char *cli = getenv("SLM_CLI") ? getenv("SLM_CLI") : "build/win/slm.exe"; /* make test-windows */
#else
    const char *cli = getenv("SLM_CLI") ? getenv("SLM_CLI") : "build/slm";
#endif
    FILE *probe = fopen(cli, "rb");
    if (!probe) return -2;
    fclose(probe);
    char cmd[2048];
#if defined(_WIN32)
    char exe[512], in[600];
    snprintf(exe, sizeof exe, "%s", cli);
    for (char *c = exe; *c; c++)
        if (*c == '/') *c = '\\';
    static int salt;
    snprintf(in, sizeof in, "%s\\slm-chat-%lx.txt", tmp_dir(), (unsigned long)(size_t)&salt ^ (unsigned long)rand());
    FILE *fi = fopen(in, "wb");
    if (!fi) return -2;
    for (const char *c = input; *c; c++) {
        if (c[0] == '\\' && c[1] == 'n') fputc('\n', fi), c++;
        else fputc(*c, fi);
    }
    fclose(fi);
    snprintf(cmd, sizeof cmd, "%s chat %s < %s 2>&1", exe, args, in);
#else
    snprintf(cmd, sizeof cmd, "printf '%s' | %s chat %s 2>&1", input, cli, args);
#endif
    FILE *p = popen(cmd, "r");
    if (!p) return -2;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int rc = pclose(p);
#if defined(_WIN32)
    remove(in);
#endif
    *n_turns = 0;
    for (const char *s = strstr(out, "slm: turn "); s && *n_turns < 8; s = strstr(s + 1, "slm: turn ")) {
        turn t = {0, 0, 0, 0};
        const char *q = strstr(s, "prompt ");
        const char *r = strstr(s, "reply ");
        const char *c = strstr(s, "context ");
        if (!q || !r || !c) break;
        t.prompt = atoi(q + 7);
        t.reply = atoi(r + 6);
        t.pos = atoi(c + 8);
        t.ctx = atoi(strchr(c, '/') ? strchr(c, '/') + 1 : c);
        turns[(*n_turns)++] = t;
    }
    return rc;
#else
    (void)args, (void)input, (void)out, (void)cap, (void)turns, (void)n_turns;
    return -1;
#endif
}

static void cli_chat(void) {
    static char out[65536];
    turn t[8];
    int nt = 0;
    char args[1024];
    snprintf(args, sizeof args, "-m %s -n 12 --temp 0 -t 1 -c 256 -v", data_path("demo/kjv-1m-q8_0.gguf"));
    int rc = run_chat(args,
                      "In the beginning God created the heaven and the earth, and the earth was without form\\n"
                      "And God said\\n",
                      out, sizeof out, t, &nt);
    if (rc == -1) {
        printf("  slm chat: no popen on this platform, skipped\n");
        return;
    }
    CHECK(rc != -2, "build/slm not found (make builds it; SLM_CLI overrides the path)");
    if (rc == -2) return;
    CHECK(rc == 0, "slm chat exits %d at EOF", rc);
    CHECK(nt == 2, "two turns reported (%d):\n%s", nt, out);
    CHECK(strstr(out, "chatml") != NULL, "the ChatML fallback is reported:\n%s", out);
    if (nt == 2) {
        /* the session keeps the first turn: the second decodes only its own
           prompt, which is shorter than the history before it */
        CHECK(t[0].reply > 0 && t[1].reply > 0, "both replies have tokens (%d, %d)", t[0].reply, t[1].reply);
        CHECK(t[0].pos == t[0].prompt + t[0].reply || t[0].pos == t[0].prompt + t[0].reply - 1,
              "turn 1 position %d = prompt %d + reply %d", t[0].pos, t[0].prompt, t[0].reply);
        CHECK(t[1].prompt < t[0].pos, "turn 2 decodes %d prompt tokens, less than the %d in the session", t[1].prompt,
              t[0].pos);
        CHECK(t[1].pos >= t[0].pos + t[1].prompt + t[1].reply - 1 && t[1].pos <= t[0].pos + t[1].prompt + t[1].reply,
              "turn 2 appends to the session: %d -> %d (+%d +%d)", t[0].pos, t[1].pos, t[1].prompt, t[1].reply);
        printf("  slm chat (demo): turn 1 prompt %d reply %d, turn 2 prompt %d reply %d, context %d/%d\n", t[0].prompt,
               t[0].reply, t[1].prompt, t[1].reply, t[1].pos, t[1].ctx);
    }

    /* the tiny qwen2 fixture: ChatML with its own special tokens */
    snprintf(args, sizeof args, "-m %s -n 6 --temp 0 -t 1 -s \"Be brief.\" -v", data_path("models/tiny-qwen2-Q8_0.gguf"));
    rc = run_chat(args, "hi\\nthe other one\\n", out, sizeof out, t, &nt);
    CHECK(rc == 0 && nt == 2, "qwen2 chat: exit %d, %d turns:\n%s", rc, nt, out);
    if (nt == 2) {
        /* <|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n */
        CHECK(t[0].prompt > 10 && t[0].prompt < 40, "qwen2 turn 1 prompt %d tokens", t[0].prompt);
        CHECK(t[1].prompt < t[0].pos, "qwen2 turn 2 decodes %d tokens, not the %d before", t[1].prompt, t[0].pos);
    }

    /* a prompt that does not fit: told, and the chat goes on to a clean EOF */
    snprintf(args, sizeof args, "-m %s -n 4 --temp 0 -t 1 -c 32", data_path("demo/kjv-1m-q8_0.gguf"));
    rc = run_chat(args,
                  "And it came to pass in those days, that there went out a decree from Caesar Augustus, that all "
                  "the world should be taxed\\n",
                  out, sizeof out, t, &nt);
    CHECK(rc == 0 && strstr(out, "context is full") && strstr(out, "-c"), "full context is reported (exit %d):\n%s", rc,
          out);

    /* EOF right away */
    snprintf(args, sizeof args, "-m %s", data_path("demo/kjv-1m-q8_0.gguf"));
    rc = run_chat(args, "", out, sizeof out, t, &nt);
    CHECK(rc == 0 && nt == 0, "empty input exits 0 (%d)", rc);
}

void test_chat(void) {
    families();
    model_templates();
    cli_chat();
}
