/*
 * test_chat.c: chat templates (slm/chat.c).
 *
 * Each real template in ../shared/templates (and the Phi-3 one inside ggml-vocab-phi-3.gguf) is
 * recognised as its family and renders fixed conversations to the exact text its Jinja produces
 * (HF settings: trim_blocks, lstrip_blocks). The expected strings were written by reading each
 * template (and checked against llama.cpp's llm_chat_apply_template where the two agree; where
 * they differ, e.g. Qwen2.5's default system prompt or Llama 3.2's date header, the Jinja wins).
 * Also: the ChatML fallback for a missing or unknown template, Qwen3 thinking blocks, SmolLM3's
 * /no_think, the capacity contract, and that a rendered ChatML prompt tokenizes with the special
 * tokens as single tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "slm/gguf.h"
#include "slm/internal.h"
#include "slm/vocab.h"

static char *tmpl(const char *name) {
  char rel[256];
  snprintf(rel, sizeof rel, "templates/%s", name);
  char *t = check_read_file(check_shared_path(rel), NULL);
  CHECK_MSG(t != NULL, "cannot read %s", rel);
  return t;
}

/* A: system + a finished exchange + a new question. B: one user turn. */
static const struct slm_chat_msg CONV_A[] = {
    {"system", "You are terse."},
    {"user", "Hi there"},
    {"assistant", "Hello!"},
    {"user", "What is 2+2?"},
};
static const struct slm_chat_msg CONV_B[] = {{"user", "Hi"}};

static void expect(const char *t, const struct slm_chat_opts *op, const struct slm_chat_msg *m,
                   size_t n, bool add, const char *want, const char *what) {
  char buf[8192];
  int32_t k = slm_chat_render_opts(t, op, m, n, add, buf, sizeof buf);
  CHECK_MSG(k == (int32_t)strlen(want), "%s: length %d, want %zu", what, k, strlen(want));
  if (k >= 0 && strcmp(buf, want) != 0) {
    CHECK_MSG(0, "%s: rendering differs", what);
    fprintf(stderr, "--- got:\n%s\n--- want:\n%s\n---\n", buf, want);
  }
}

static void test_families(void) {
  static const struct slm_chat_opts fixed_date = {.date_string = "26 Jul 2024"};
  char *t;

  t = tmpl("Qwen-Qwen2.5-7B-Instruct.jinja");
  if (t) {
    CHECK_STR(slm_chat_family(t), "chatml");
    expect(t, NULL, CONV_A, 4, true,
           "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
           "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
           "<|im_start|>assistant\n",
           "qwen2.5 A");
    /* no system message: the template's own default system prompt */
    expect(t, NULL, CONV_B, 1, true,
           "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
           "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
           "qwen2.5 B");
    /* tool results: one user turn wrapping consecutive <tool_response> blocks */
    const struct slm_chat_msg tools[] = {{"system", "S"}, {"user", "U"}, {"assistant", "A"},
                                         {"tool", "r1"}, {"tool", "r2"}};
    expect(t, NULL, tools, 5, false,
           "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant"
           "\nA<|im_end|>\n<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n"
           "<tool_response>\nr2\n</tool_response><|im_end|>\n",
           "qwen2.5 tools");
    free(t);
  }

  t = tmpl("Qwen-Qwen3-0.6B.jinja");
  if (t) {
    CHECK_STR(slm_chat_family(t), "qwen3");
    expect(t, NULL, CONV_A, 4, true,
           "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
           "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
           "<|im_start|>assistant\n",
           "qwen3 A");
    /* no default system prompt in Qwen3 */
    expect(t, NULL, CONV_B, 1, true, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
           "qwen3 B");
    /* enable_thinking=false closes an empty think block */
    const struct slm_chat_opts nothink = {.enable_thinking = -1};
    expect(t, &nothink, CONV_B, 1, true,
           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
           "qwen3 B no-think");
    /* reasoning of turns before the last user query is dropped; the last one keeps its block */
    const struct slm_chat_msg think[] = {
        {"user", "Q1"},
        {"assistant", "<think>\nreasoning A\n</think>\n\nAnswer A"},
        {"user", "Q2"},
        {"assistant", "<think>r2</think>A2"},
    };
    expect(t, NULL, think, 4, false,
           "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nAnswer A<|im_end|>\n"
           "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n<think>\nr2\n</think>\n\nA2"
           "<|im_end|>\n",
           "qwen3 think");
    /* the last assistant turn without reasoning still gets an (empty) block */
    const struct slm_chat_msg last[] = {{"user", "Q"}, {"assistant", "A"}};
    expect(t, NULL, last, 2, false,
           "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nA"
           "<|im_end|>\n",
           "qwen3 last");
    free(t);
  }

  t = tmpl("HuggingFaceTB-SmolLM3-3B.jinja");
  if (t) {
    CHECK_STR(slm_chat_family(t), "smollm3");
    expect(t, NULL, CONV_A, 4, true,
           "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: "
           "/think\n\n## Custom Instructions\n\nYou are terse.\n\n<|im_end|>\n<|im_start|>user\n"
           "Hi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat "
           "is 2+2?<|im_end|>\n<|im_start|>assistant\n",
           "smollm3 A");
    const struct slm_chat_msg nt[] = {{"system", "Be brief. /no_think"}, {"user", "Hi"},
                                      {"assistant", "\n\nYo"}};
    expect(t, NULL, nt, 3, true,
           "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: "
           "/no_think\n\n## Custom Instructions\n\nBe brief.\n\n<|im_end|>\n<|im_start|>user\nHi"
           "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\nYo<|im_end|>\n"
           "<|im_start|>assistant\n<think>\n\n</think>\n",
           "smollm3 no_think");
    /* no system message, thinking on: the long default instructions */
    char buf[8192];
    int32_t k = slm_chat_render(t, CONV_B, 1, true, buf, sizeof buf);
    CHECK(k > 1000);
    CHECK(k > 0 && strstr(buf, "Reasoning Mode: /think\n\n## Custom Instructions\n\nYou are a "
                               "helpful AI assistant named SmolLM, trained by Hugging Face. Your "
                               "role as an assistant involves"));
    CHECK(k > 0 && strstr(buf, "reach the conclusion.\n\n<|im_end|>\n<|im_start|>user\nHi"
                               "<|im_end|>\n<|im_start|>assistant\n"));
    free(t);
  }

  t = tmpl("meta-llama-Llama-3.2-3B-Instruct.jinja");
  if (t) {
    CHECK_STR(slm_chat_family(t), "llama3");
    expect(t, &fixed_date, CONV_A, 4, true,
           "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
           "Today Date: 26 Jul 2024\n\nYou are terse.<|eot_id|><|start_header_id|>user"
           "<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
           "\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?"
           "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
           "llama3.2 A");
    /* contents are trimmed ("| trim") */
    const struct slm_chat_msg sp[] = {{"user", "  Hi \n"}};
    expect(t, &fixed_date, sp, 1, false,
           "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
           "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi"
           "<|eot_id|>",
           "llama3.2 trim");
    /* without a fixed date: strftime_now("%d %b %Y"), i.e. today */
    char buf[4096];
    int32_t k = slm_chat_render(t, CONV_B, 1, true, buf, sizeof buf);
    CHECK(k > 0 && strstr(buf, "Today Date: ") && !strstr(buf, "Today Date: 26 Jul 2024\n"));
    free(t);
  }

  t = tmpl("google-gemma-2-2b-it.jinja");
  if (t) {
    CHECK_STR(slm_chat_family(t), "gemma");
    expect(t, NULL, CONV_B, 1, true, "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
           "gemma B");
    expect(t, NULL, CONV_A, 4, true,
           "<start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n<start_of_turn>model\n"
           "Hello!<end_of_turn>\n<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
           "<start_of_turn>model\n",
           "gemma A");
    free(t);
  }

  t = tmpl("microsoft-Phi-3.5-mini-instruct.jinja");
  if (t) {
    CHECK_STR(slm_chat_family(t), "phi3");
    expect(t, NULL, CONV_A, 4, true,
           "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\nHello!"
           "<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n",
           "phi3.5 A");
    /* no generation prompt: the template prints eos_token */
    expect(t, NULL, CONV_B, 1, false, "<|user|>\nHi<|end|>\n<|endoftext|>", "phi3.5 B no-add");
    const struct slm_chat_msg empty_sys[] = {{"system", ""}, {"user", "Hi"}};
    expect(t, NULL, empty_sys, 2, true, "<|user|>\nHi<|end|>\n<|assistant|>\n", "phi3.5 empty sys");
    free(t);
  }

  /* the Phi-3-mini template carried by the Phi-3 vocabulary file */
  {
    struct slm_gguf_file *f = NULL;
    struct slm_vocab *v = NULL;
    char err[256];
    if (slm_gguf_open(check_shared_path("vocab/ggml-vocab-phi-3.gguf"), &f, err, sizeof err) == 0 &&
        slm_vocab_load(f, &v, err, sizeof err) == 0) {
      const char *pt = slm_vocab_chat_template(v);
      CHECK_STR(slm_chat_family(pt), "phi3-legacy");
      expect(pt, NULL, CONV_A, 4, true,
             "<|user|>\nHi there<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nWhat is 2+2?"
             "<|end|>\n<|assistant|>\n",
             "phi3 legacy A");
      char buf[1024];
      CHECK_EQ_INT(slm_vocab_chat_render(v, CONV_B, 1, true, buf, sizeof buf),
                   (int32_t)strlen("<|user|>\nHi<|end|>\n<|assistant|>\n"));
    } else {
      CHECK_MSG(0, "phi-3 vocab: %s", err);
    }
    slm_vocab_free(v);
    slm_gguf_close(f);
  }

  /* families named directly, and templates reduced to their markers */
  expect("llama2", NULL, CONV_A, 4, true,
         "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello! </s><s>[INST] What "
         "is 2+2? [/INST]",
         "llama2 A");
  const struct slm_chat_opts tok_texts = {.bos_text = "<BOS>", .eos_text = "<EOS>"};
  expect("{% if x %}<<SYS>>{% endif %}[INST]", &tok_texts, CONV_A, 4, true,
         "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello! <EOS><BOS>[INST] "
         "What is 2+2? [/INST]",
         "llama2 markers");
  expect("{{ '[INST] ' + message['content'] + ' [/INST]' }}", NULL, CONV_A, 4, true,
         "[INST] You are terse.\n\nHi there [/INST]Hello!</s>[INST] What is 2+2? [/INST]",
         "mistral");
  const char *zephyr =
      "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + "
      "message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ "
      "'<|assistant|>\\n' + message['content'] + eos_token }}\n{% endif %}\n{% endfor %}";
  CHECK_STR(slm_chat_family(zephyr), "zephyr");
  expect(zephyr, NULL, CONV_A, 4, true,
         "<|system|>\nYou are terse.</s>\n<|user|>\nHi there</s>\n<|assistant|>\nHello!</s>\n"
         "<|user|>\nWhat is 2+2?</s>\n<|assistant|>\n",
         "zephyr A");
  expect("<|im_start|>{{ role }}<|im_sep|>", NULL, CONV_B, 1, true,
         "<|im_start|>user<|im_sep|>Hi<|im_end|><|im_start|>assistant<|im_sep|>", "phi4 B");
  expect("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}", NULL,
         CONV_A, 4, false,
         "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
         "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>"
         "assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>"
         "\n\nWhat is 2+2?<|eot_id|>",
         "llama3.0 A");

  /* a SmolLM2-style ChatML template with a default system prompt written with a real newline */
  const char *smol =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
      "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
      "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
      "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
      "'<|im_start|>assistant\n' }}{% endif %}";
  expect(smol, NULL, CONV_B, 1, true,
         "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
         "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
         "smollm2 B");
  /* quotes inside the default prompt: escaped in a '...' literal, plain in a "..." literal */
  expect("{{ '<|im_start|>system\\nYou\\'re a \\\"bot\\\".<|im_end|>\\n' }}", NULL, CONV_B, 1, false,
         "<|im_start|>system\nYou're a \"bot\".<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
         "default system, escaped quotes");
  expect("{{ \"<|im_start|>system\\nIt's me.<|im_end|>\\n\" }}", NULL, CONV_B, 1, false,
         "<|im_start|>system\nIt's me.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
         "default system, double quotes");
  /* an expression, not a literal: no default prompt */
  expect("{{ '<|im_start|>system\\n' + x + '<|im_end|>' }}", NULL, CONV_B, 1, false,
         "<|im_start|>user\nHi<|im_end|>\n", "no default system");
  expect(smol, NULL, CONV_A, 4, false,
         "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
         "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n",
         "smollm2 A");
}

static void test_fallback_and_contract(void) {
  const char *chatml_b = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
  expect(NULL, NULL, CONV_B, 1, true, chatml_b, "NULL template");
  expect("", NULL, CONV_B, 1, true, chatml_b, "empty template");
  expect("{{ something unknown }}", NULL, CONV_B, 1, true, chatml_b, "unknown template");
  CHECK_STR(slm_chat_family(NULL), "chatml");
  CHECK_STR(slm_chat_family("{{ x }}"), "chatml");
  CHECK_STR(slm_chat_family("gemma"), "gemma");

  char buf[64];
  int32_t n = (int32_t)strlen(chatml_b);
  CHECK_EQ_INT(slm_chat_render(NULL, CONV_B, 1, true, buf, 10), -(n + 1));
  CHECK_EQ_INT(slm_chat_render(NULL, CONV_B, 1, true, NULL, 0), -(n + 1));
  CHECK_EQ_INT(slm_chat_render(NULL, CONV_B, 1, true, buf, n), -(n + 1));   /* no room for NUL */
  CHECK_EQ_INT(slm_chat_render(NULL, CONV_B, 1, true, buf, n + 1), n);
  CHECK_STR(buf, chatml_b);
  CHECK_EQ_INT(slm_chat_render(NULL, NULL, 0, true, buf, sizeof buf),
               (int32_t)strlen("<|im_start|>assistant\n"));
  const struct slm_chat_msg bad[] = {{"user", NULL}};
  CHECK_EQ_INT(slm_chat_render(NULL, bad, 1, true, buf, sizeof buf), INT32_MIN);
  CHECK_EQ_INT(slm_chat_render(NULL, CONV_B, 1, true, buf, -1), INT32_MIN);
  CHECK_EQ_INT(slm_chat_render(NULL, NULL, 3, true, buf, sizeof buf), INT32_MIN);
}

/* The rendered prompt tokenizes with <|im_start|>/<|im_end|> as single tokens. */
static void test_render_then_tokenize(void) {
  struct slm_gguf_file *f = NULL;
  struct slm_vocab *v = NULL;
  char err[256];
  if (slm_gguf_open(check_shared_path("vocab/ggml-vocab-qwen2-from-qwen3-tokenizer.gguf"), &f, err,
                sizeof err) ||
      slm_vocab_load(f, &v, err, sizeof err)) {
    CHECK_MSG(0, "qwen vocab: %s", err);
    slm_gguf_close(f);
    return;
  }
  char buf[1024];
  int32_t n = slm_chat_render(NULL, CONV_A, 4, true, buf, sizeof buf);
  CHECK(n > 0);
  slm_token t[512];
  int32_t k = slm_vocab_tokenize(v, buf, (size_t)n, t, 512, true, true);
  int starts = 0, ends = 0;
  for (int32_t i = 0; i < k; i++) {
    starts += t[i] == 151644;
    ends += t[i] == 151645;
  }
  CHECK_EQ_INT(starts, 5);
  CHECK_EQ_INT(ends, 4);
  CHECK(k > 0 && t[0] == 151644);   /* Qwen adds no BOS */
  slm_vocab_free(v);
  slm_gguf_close(f);
}

int main(void) {
  test_families();
  test_fallback_and_contract();
  test_render_then_tokenize();
  return check_done();
}
