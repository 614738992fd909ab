/* Chat templates of the reasoning families (issue 14): Qwen3, Qwen3.5,
   SmolLM3, LFM2. Detection from the distinctive lines of their published
   templates; the formatted text with thinking on and off
   (SLM_CHAT_NO_THINK), past replies' thinking kept or dropped as each
   template does, and incremental formatting a suffix of the full text. The
   expected strings are written out by hand from the templates. */
#include "test.h"

#include "slm.h"

#include <stdlib.h>
#include <string.h>

static char *fmt(int fam, const slm_chat_message *m, int n, int n_past, int gen) {
    size_t need = 0;
    if (slm_chat_format(NULL, fam, m, n, n_past, gen, NULL, 0, &need, NULL, NULL) != SLM_ERR_BUFFER) return NULL;
    char *b = (char *)malloc(need + 1);
    size_t len = 0;
    if (slm_chat_format(NULL, fam, m, n, n_past, gen, b, need + 1, &len, NULL, NULL) != SLM_OK || len != need) {
        free(b);
        return NULL;
    }
    return b;
}

static void expect(const char *what, int fam, const slm_chat_message *m, int n, int gen, const char *want) {
    char *got = fmt(fam, m, n, 0, gen);
    int ok = got && !strcmp(got, want);
    CHECK(ok, "%s:\n--- got\n%s\n--- want\n%s", what, got ? got : "(error)", want);
    /* incremental after each assistant reply: a suffix of the full text */
    for (int k = 1; ok && k <= n; k++) {
        if (strcmp(m[k - 1].role, "assistant")) continue;
        char *inc = fmt(fam, m, n, k, gen);
        size_t gl = strlen(got), il = inc ? strlen(inc) : 0;
        CHECK(inc && il <= gl && !strcmp(got + gl - il, inc), "%s: incremental after message %d is a suffix", what, k);
        free(inc);
    }
    free(got);
}

static const slm_chat_message CONV[] = {
    {"system", "Be brief."},
    {"user", "Hi"},
    {"assistant", "<think>\nsay hello\n</think>\n\nHello!"},
    {"user", "2+2?"},
};
static const slm_chat_message CONV_ASST_LAST[] = {
    {"user", "Hi"},
    {"assistant", "<think>\nplan\n</think>\n\nHello!"},
};

static void detection(void) {
    /* the lines that tell the templates apart (from the published ones) */
    static const struct {
        const char *t;
        int fam;
    } D[] = {
        {"{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}<|im_start|><think>"
         "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}",
         SLM_CHAT_QWEN3},
        {"{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}<|im_start|><think>"
         "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
         "{%- else %}{{- '<think>\\n' }}{%- endif %}",
         SLM_CHAT_QWEN35},
        {"{{- \"<|im_start|>system\\n\" -}}{{- \"Reasoning Mode: \" + reasoning_mode + \"\\n\\n\" -}}"
         "{%- set reasoning_mode = \"/no_think\" -%}",
         SLM_CHAT_SMOLLM3},
        {"{{- bos_token -}}{%- set ns.last_assistant_index = -1 -%}{{- \"<|im_start|>\" + message[\"role\"] -}}"
         "{%- if \"</think>\" in content -%}",
         SLM_CHAT_LFM2},
        {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'}}",
         SLM_CHAT_CHATML},
    };
    for (size_t i = 0; i < sizeof D / sizeof D[0]; i++)
        CHECK(slm_chat_detect(D[i].t) == D[i].fam, "detect %s: %d", slm_chat_family_name(D[i].fam),
              slm_chat_detect(D[i].t));
    const char *names[] = {"qwen3", "qwen3.5", "smollm3", "lfm2"};
    const int fams[] = {SLM_CHAT_QWEN3, SLM_CHAT_QWEN35, SLM_CHAT_SMOLLM3, SLM_CHAT_LFM2};
    for (int i = 0; i < 4; i++)
        CHECK(slm_chat_family_from_name(names[i]) == fams[i] && !strcmp(slm_chat_family_name(fams[i]), names[i]),
              "family name %s", names[i]);
}

static void qwen(void) {
    /* Qwen3: the reply before the last query loses its thinking; thinking
       off adds the empty block to the generation prompt */
    expect("qwen3", SLM_CHAT_QWEN3, CONV, 4, SLM_CHAT_GEN,
           "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
           "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
    expect("qwen3 no-think", SLM_CHAT_QWEN3, CONV, 4, SLM_CHAT_GEN | SLM_CHAT_NO_THINK,
           "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
           "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
           "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    /* a reply after the last query keeps it */
    expect("qwen3 last reply", SLM_CHAT_QWEN3, CONV_ASST_LAST, 2, 0,
           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nplan\n</think>\n\nHello!<|im_end|>\n");
    /* Qwen3.5 opens the reply inside the block; trims the texts */
    expect("qwen3.5", SLM_CHAT_QWEN35, CONV, 4, SLM_CHAT_GEN,
           "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
           "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n");
    expect("qwen3.5 no-think", SLM_CHAT_QWEN35, CONV, 4, SLM_CHAT_GEN | SLM_CHAT_NO_THINK,
           "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
           "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
           "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    /* the reply as the model wrote it after "<think>\n" (no opening tag), and
       without any block: an empty one */
    static const slm_chat_message Q35[] = {{"user", " Hi "}, {"assistant", "hmm\n</think>\n\nHello!"},
                                           {"user", "x"}, {"assistant", "plain"}};
    expect("qwen3.5 replies", SLM_CHAT_QWEN35, Q35, 4, 0,
           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nx<|im_end|>\n"
           "<|im_start|>assistant\n<think>\n\n</think>\n\nplain<|im_end|>\n");
}

static void smollm3(void) {
    static const char *DEF_NT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n";
    char want[4096];
    /* custom instructions, thinking on: replies as written */
    expect("smollm3", SLM_CHAT_SMOLLM3, CONV, 4, SLM_CHAT_GEN,
           "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: /think\n\n"
           "## Custom Instructions\n\nBe brief.\n\n<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
           "<|im_start|>assistant\n<think>\nsay hello\n</think>\n\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
           "<|im_start|>assistant\n");
    /* thinking off: /no_think mode, empty blocks, the short default prompt */
    snprintf(want, sizeof want,
             "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: /no_think\n\n"
             "## Custom Instructions\n\n%s<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
             "<|im_start|>assistant\n<think>\n\n</think>\nHello!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n",
             DEF_NT);
    static const slm_chat_message C2[] = {{"user", "Hi"}, {"assistant", "\nHello!"}};
    expect("smollm3 no-think", SLM_CHAT_SMOLLM3, C2, 2, SLM_CHAT_GEN | SLM_CHAT_NO_THINK, want);
    /* the flags in the system text win over the switch and are cut out */
    static const slm_chat_message C3[] = {{"system", "Be /think brief.  "}, {"user", "Hi"}};
    expect("smollm3 /think in the system text", SLM_CHAT_SMOLLM3, C3, 2, SLM_CHAT_GEN | SLM_CHAT_NO_THINK,
           "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: /think\n\n"
           "## Custom Instructions\n\nBe  brief.\n\n<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    static const slm_chat_message C4[] = {{"system", "/no_think"}, {"user", "Hi"}};
    snprintf(want, sizeof want,
             "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: /no_think\n\n"
             "## Custom Instructions\n\n%s<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
             "<|im_start|>assistant\n<think>\n\n</think>\n",
             DEF_NT);
    expect("smollm3 /no_think alone", SLM_CHAT_SMOLLM3, C4, 2, SLM_CHAT_GEN, want);
    /* "/th/no_thinkink": removing /no_think makes a /think, removed too */
    static const slm_chat_message C5[] = {{"system", "a/th/no_thinkink"}, {"user", "Hi"}};
    char *g = fmt(SLM_CHAT_SMOLLM3, C5, 2, 0, SLM_CHAT_GEN);
    CHECK(g && strstr(g, "Reasoning Mode: /no_think\n") && strstr(g, "Instructions\n\na\n\n<|im_end|>"),
          "smollm3 nested flags: %s", g ? g : "(error)");
    free(g);
    /* the default long prompt when thinking and no system text */
    g = fmt(SLM_CHAT_SMOLLM3, C2, 1, 0, SLM_CHAT_GEN);
    CHECK(g && strstr(g, "Reasoning Mode: /think\n") && strstr(g, "<think> Thought section </think> Solution section"),
          "smollm3 default thinking prompt");
    free(g);
}

static void lfm2(void) {
    static const slm_chat_message C[] = {{"system", "S"},  {"user", "Hi"}, {"assistant", "<think>a</think>  Hello! "},
                                         {"user", "More"}, {"assistant", "<think>b</think>Sure"}};
    expect("lfm2", SLM_CHAT_LFM2, C, 5, SLM_CHAT_GEN | SLM_CHAT_NO_THINK,
           "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
           "<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n<think>b</think>Sure<|im_end|>\n"
           "<|im_start|>assistant\n");
}

void test_chat_think(void) {
    detection();
    qwen();
    smollm3();
    lfm2();
}
