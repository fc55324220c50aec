/*
 * chat.c: chat templates. The family is recognised from marker strings in the template's Jinja
 * text (tokenizer.chat_template), as llama.cpp's llm_chat_detect_template does, and each family
 * is rendered by hand the way its real Jinja template renders plain system/user/assistant turns
 * (HF semantics: trim_blocks, lstrip_blocks; `trim` is Python's str.strip()). This is not a Jinja
 * interpreter: tools, tool calls, images and raise_exception() branches are not modelled, and
 * where a template raises (Gemma 2 with a system message) we render what llama.cpp renders.
 *
 * Where the text of a family's templates varies in ways that matter, the variant is read from the
 * template itself: ChatML's default system prompt (Qwen2.5's "You are Qwen, ...", SmolLM2's "You
 * are a helpful AI assistant named SmolLM, ...") is taken from the template's string literal;
 * Llama 3.1/3.2's system header is printed only when the template has one, with the template's
 * date rule. The BOS text a template prints at its very start is left out (the tokenizer adds
 * BOS); see vocab.h for the list of families and the options.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slm/vocab.h"
#include "slm/vocab_priv.h"

enum family {
  F_CHATML, F_QWEN3, F_SMOLLM3, F_LLAMA3, F_LLAMA2, F_MISTRAL, F_PHI3, F_PHI3_LEGACY, F_PHI4,
  F_GEMMA, F_ZEPHYR,
};

static const char *const FAMILY_NAMES[] = {
    [F_CHATML] = "chatml", [F_QWEN3] = "qwen3", [F_SMOLLM3] = "smollm3", [F_LLAMA3] = "llama3",
    [F_LLAMA2] = "llama2", [F_MISTRAL] = "mistral", [F_PHI3] = "phi3",
    [F_PHI3_LEGACY] = "phi3-legacy", [F_PHI4] = "phi4", [F_GEMMA] = "gemma",
    [F_ZEPHYR] = "zephyr",
};

static bool has(const char *t, const char *s) { return strstr(t, s) != NULL; }

static enum family detect(const char *t) {
  if (!t || !*t) return F_CHATML;
  for (size_t i = 0; i < sizeof FAMILY_NAMES / sizeof FAMILY_NAMES[0]; i++)
    if (!strcmp(t, FAMILY_NAMES[i])) return (enum family)i;   /* a family name given directly */
  if (has(t, "<|im_start|>")) {
    if (has(t, "<|im_sep|>")) return F_PHI4;
    if (has(t, "reasoning_mode") || has(t, "Reasoning Mode")) return F_SMOLLM3;
    if (has(t, "<think>") && has(t, "</think>")) return F_QWEN3;
    return F_CHATML;
  }
  if (!strncmp(t, "mistral", 7) || has(t, "[INST]"))
    return has(t, "<<SYS>>") ? F_LLAMA2 : F_MISTRAL;
  if (has(t, "<|assistant|>") && has(t, "<|end|>"))
    return has(t, "'<|end|>' + '\\n' + '<|assistant|>'") ||
                   has(t, "'<|end|>' + '\n' + '<|assistant|>'")
               ? F_PHI3_LEGACY
               : F_PHI3;
  if (has(t, "<|user|>") && has(t, "<|assistant|>")) return F_ZEPHYR;
  if (has(t, "<start_of_turn>")) return F_GEMMA;
  if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>")) return F_LLAMA3;
  return F_CHATML;   /* unknown template: ChatML, the most common format */
}

const char *slm_chat_family(const char *tmpl) { return FAMILY_NAMES[detect(tmpl)]; }

/* ------------------------------------------------------------------ output and string helpers */

struct out {
  char *buf;
  int64_t cap;   /* bytes available for text (the NUL is reserved) */
  int64_t n;
};

static void put(struct out *o, const char *s, size_t n) {
  if (o->n + (int64_t)n <= o->cap) memcpy(o->buf + o->n, s, n);
  o->n += (int64_t)n;
}

static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

struct str {
  const char *p;
  size_t n;
};

static struct str S(const char *s) { return (struct str){s, strlen(s)}; }
static void puts_s(struct out *o, struct str s) { put(o, s.p, s.n); }

/* Python's str.isspace() for the code point at P (sets *K to its byte length). */
static bool py_space_at(const char *p, size_t n, size_t *k) {
  const uint8_t *u = (const uint8_t *)p;
  size_t l = slm_utf8_valid_len(u, n);
  if (!l) {
    *k = 1;
    return false;
  }
  *k = l;
  uint32_t c;
  if (l == 1) c = u[0];
  else if (l == 2) c = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
  else if (l == 3) c = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
  else return false;
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Python str.strip() / lstrip() / rstrip() without arguments (Unicode whitespace). */
static struct str py_lstrip(struct str s) {
  size_t k;
  while (s.n && py_space_at(s.p, s.n, &k)) {
    s.p += k;
    s.n -= k;
  }
  return s;
}

static struct str py_rstrip(struct str s) {
  while (s.n) {
    /* find the start of the last code point */
    size_t j = s.n - 1;
    while (j && ((uint8_t)s.p[j] & 0xC0) == 0x80 && s.n - j < 4) j--;
    size_t k;
    if (!py_space_at(s.p + j, s.n - j, &k) || j + k != s.n) break;
    s.n = j;
  }
  return s;
}

static struct str py_strip(struct str s) { return py_rstrip(py_lstrip(s)); }

/* str.lstrip(CH) / rstrip(CH) with a single ASCII character. */
static struct str lstrip_ch(struct str s, char ch) {
  while (s.n && *s.p == ch) {
    s.p++;
    s.n--;
  }
  return s;
}

static struct str rstrip_ch(struct str s, char ch) {
  while (s.n && s.p[s.n - 1] == ch) s.n--;
  return s;
}

static const char *find_in(struct str s, const char *needle) {
  return memmem(s.p, s.n, needle, strlen(needle));
}

/* Last occurrence of NEEDLE in S, or NULL. */
static const char *rfind_in(struct str s, const char *needle) {
  size_t m = strlen(needle);
  if (m > s.n) return NULL;
  for (size_t i = s.n - m + 1; i-- > 0;)
    if (!memcmp(s.p + i, needle, m)) return s.p + i;
  return NULL;
}

static bool role_is(const struct slm_chat_msg *m, const char *r) { return !strcmp(m->role, r); }

/* ------------------------------------------------------------------ template-derived details */

#define VOCAB_MAX_SYSTEM_PROMPT (1u << 16)

/* ChatML default system prompt: a Jinja string literal '<|im_start|>system\n...<|im_end|>...'
 * (or "...") in the template that runs from the role line to <|im_end|> without closing, so its
 * middle is plain text and not an expression like ' + messages[0]['content'] + '. Jinja escapes
 * in it are undone. Returns a malloc'd string or NULL. */
static char *chatml_default_system(const char *t) {
  static const char key[] = "<|im_start|>system";
  for (const char *p = strstr(t, key); p; p = strstr(p + 1, key)) {
    char delim = p > t ? p[-1] : 0;
    if (delim != '\'' && delim != '"') continue;
    const char *q = p + strlen(key);
    if (q[0] == '\\' && q[1] == 'n') q += 2;
    else if (q[0] == '\n') q += 1;
    else continue;
    const char *e = strstr(q, "<|im_end|>");
    if (!e || e <= q) continue;
    size_t span = (size_t)(e - q);
    bool closed = false;
    for (const char *c = q; c < e && !closed; c++) {
      if (*c == '\\') c++;
      else if (*c == delim) closed = true;
    }
    if (closed || span > VOCAB_MAX_SYSTEM_PROMPT) continue;
    char *r = malloc(span + 1);
    if (!r) return NULL;
    size_t k = 0;
    for (const char *c = q; c < e; c++) {
      if (*c == '\\' && c + 1 < e) {
        c++;
        r[k++] = *c == 'n' ? '\n' : *c == 't' ? '\t' : *c;
      } else {
        r[k++] = *c;
      }
    }
    r[k] = 0;
    return r;
  }
  return NULL;
}

/* ------------------------------------------------------------------ families */

static void render_chatml(struct out *o, const char *t, const struct slm_chat_msg *m, size_t n,
                          bool add) {
  char *def = t ? chatml_default_system(t) : NULL;
  if (def && (n == 0 || !role_is(&m[0], "system"))) {
    puts_(o, "<|im_start|>system\n");
    puts_(o, def);
    puts_(o, "<|im_end|>\n");
  }
  free(def);
  bool tool_wrap = t && has(t, "<tool_response>");
  for (size_t i = 0; i < n; i++) {
    if (tool_wrap && role_is(&m[i], "tool")) {   /* Qwen: tool results as a user turn */
      if (i == 0 || !role_is(&m[i - 1], "tool")) puts_(o, "<|im_start|>user");
      puts_(o, "\n<tool_response>\n");
      puts_(o, m[i].content);
      puts_(o, "\n</tool_response>");
      if (i + 1 == n || !role_is(&m[i + 1], "tool")) puts_(o, "<|im_end|>\n");
      continue;
    }
    puts_(o, "<|im_start|>");
    puts_(o, m[i].role);
    puts_(o, "\n");
    puts_(o, m[i].content);
    puts_(o, "<|im_end|>\n");
  }
  if (add) puts_(o, "<|im_start|>assistant\n");
}

static void render_qwen3(struct out *o, const struct slm_chat_opts *op,
                         const struct slm_chat_msg *m, size_t n, bool add) {
  /* the last user turn that is not a wrapped tool response */
  size_t last_query = n ? n - 1 : 0;
  for (size_t k = n; k-- > 0;) {
    if (!role_is(&m[k], "user")) continue;
    struct str c = S(m[k].content);
    bool wrapped = c.n >= strlen("<tool_response>") &&
                   !strncmp(c.p, "<tool_response>", strlen("<tool_response>")) &&
                   c.n >= strlen("</tool_response>") &&
                   !memcmp(c.p + c.n - strlen("</tool_response>"), "</tool_response>",
                           strlen("</tool_response>"));
    if (!wrapped) {
      last_query = k;
      break;
    }
  }
  for (size_t i = 0; i < n; i++) {
    const struct slm_chat_msg *x = &m[i];
    if (role_is(x, "user") || role_is(x, "system")) {
      /* the first system message is the header; it renders the same way */
      puts_(o, "<|im_start|>");
      puts_(o, x->role);
      puts_(o, "\n");
      puts_(o, x->content);
      puts_(o, "<|im_end|>\n");
    } else if (role_is(x, "assistant")) {
      struct str content = S(x->content), reasoning = {"", 0};
      const char *close = find_in(content, "</think>");
      if (close) {
        const char *last = rfind_in(content, "</think>");
        struct str after = {last + 8, (size_t)(content.p + content.n - (last + 8))};
        struct str before = {content.p, (size_t)(close - content.p)};
        before = rstrip_ch(before, '\n');
        const char *open = rfind_in(before, "<think>");
        if (open) before = (struct str){open + 7, (size_t)(before.p + before.n - (open + 7))};
        reasoning = lstrip_ch(before, '\n');
        content = lstrip_ch(after, '\n');
      }
      puts_(o, "<|im_start|>assistant\n");
      if (i > last_query && (i + 1 == n || reasoning.n)) {
        puts_(o, "<think>\n");
        puts_s(o, rstrip_ch(lstrip_ch(reasoning, '\n'), '\n'));
        puts_(o, "\n</think>\n\n");
        puts_s(o, lstrip_ch(content, '\n'));
      } else {
        puts_s(o, content);
      }
      puts_(o, "<|im_end|>\n");
    } else if (role_is(x, "tool")) {
      if (i == 0 || !role_is(&m[i - 1], "tool")) puts_(o, "<|im_start|>user");
      puts_(o, "\n<tool_response>\n");
      puts_(o, x->content);
      puts_(o, "\n</tool_response>");
      if (i + 1 == n || !role_is(&m[i + 1], "tool")) puts_(o, "<|im_end|>\n");
    }
  }
  if (add) {
    puts_(o, "<|im_start|>assistant\n");
    if (op && op->enable_thinking < 0) puts_(o, "<think>\n\n</think>\n\n");
  }
}

static const char SMOLLM3_THINK_PROMPT[] =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an "
    "assistant involves thoroughly exploring questions through a systematic thinking process "
    "before providing the final precise and accurate solutions. This requires engaging in a "
    "comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, "
    "backtracking, and iteration to develop well-considered thinking process. Please structure "
    "your response into two main sections: Thought and Solution using the specified format: "
    "<think> Thought section </think> Solution section. In the Thought section, detail your "
    "reasoning process in steps. Each step should include detailed considerations such as "
    "analysing questions, summarizing relevant findings, brainstorming new ideas, verifying the "
    "accuracy of the current steps, refining any errors, and revisiting previous steps. In the "
    "Solution section, based on various attempts, explorations, and reflections from the Thought "
    "section, systematically present the final solution that you deem correct. The Solution "
    "section should be logical, accurate, and concise and detail necessary steps needed to reach "
    "the conclusion.\n\n";

/* Appends S with every occurrence of WHAT removed (Python's replace(WHAT, "")). */
static size_t remove_all(char *dst, struct str s, const char *what) {
  size_t w = strlen(what), k = 0;
  for (size_t i = 0; i < s.n;) {
    if (i + w <= s.n && !memcmp(s.p + i, what, w)) {
      i += w;
    } else {
      dst[k++] = s.p[i++];
    }
  }
  return k;
}

static int render_smollm3(struct out *o, const struct slm_chat_opts *op,
                          const struct slm_chat_msg *m, size_t n, bool add) {
  bool think = !(op && op->enable_thinking < 0);
  char *custom = NULL;
  struct str ci = {"", 0};
  if (n && role_is(&m[0], "system")) {
    struct str sys = S(m[0].content);
    if (find_in(sys, "/no_think")) think = false;
    else if (find_in(sys, "/think")) think = true;
    custom = malloc(sys.n + 1);
    char *tmp = malloc(sys.n + 1);
    if (!custom || !tmp) {
      free(custom);
      free(tmp);
      return -1;
    }
    size_t k = remove_all(tmp, sys, "/no_think");
    k = remove_all(custom, (struct str){tmp, k}, "/think");
    free(tmp);
    ci = py_rstrip((struct str){custom, k});
  }
  puts_(o, "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: ");
  puts_(o, think ? "/think" : "/no_think");
  puts_(o, "\n\n## Custom Instructions\n\n");
  if (ci.n) {
    puts_s(o, ci);
    puts_(o, "\n\n");
  } else if (think) {
    puts_(o, SMOLLM3_THINK_PROMPT);
  } else {
    puts_(o, "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n");
  }
  puts_(o, "<|im_end|>\n");
  free(custom);
  for (size_t i = 0; i < n; i++) {
    if (role_is(&m[i], "user") || role_is(&m[i], "tool")) {
      puts_(o, "<|im_start|>user\n");
      puts_(o, m[i].content);
      puts_(o, "<|im_end|>\n");
    } else if (role_is(&m[i], "assistant")) {
      puts_(o, think ? "<|im_start|>assistant\n" : "<|im_start|>assistant\n<think>\n\n</think>\n");
      puts_s(o, lstrip_ch(S(m[i].content), '\n'));
      puts_(o, "<|im_end|>\n");
    }
  }
  if (add) puts_(o, think ? "<|im_start|>assistant\n" : "<|im_start|>assistant\n<think>\n\n</think>\n");
  return 0;
}

static void render_llama3(struct out *o, const char *t, const struct slm_chat_opts *op,
                          const struct slm_chat_msg *m, size_t n, bool add) {
  size_t i = 0;
  if (t && has(t, "Cutting Knowledge Date")) {   /* Llama 3.1 / 3.2 system header */
    struct str sys = {"", 0};
    if (n && role_is(&m[0], "system")) {
      sys = py_strip(S(m[0].content));
      i = 1;
    }
    char date[64] = "26 Jul 2024";
    if (op && op->date_string) {
      snprintf(date, sizeof date, "%s", op->date_string);
    } else if (has(t, "strftime_now")) {
      time_t now = time(NULL);
      struct tm tm;
      if (localtime_r(&now, &tm)) strftime(date, sizeof date, "%d %b %Y", &tm);
    }
    puts_(o, "<|start_header_id|>system<|end_header_id|>\n\n");
    puts_(o, "Cutting Knowledge Date: December 2023\nToday Date: ");
    puts_(o, date);
    puts_(o, "\n\n");
    puts_s(o, sys);
    puts_(o, "<|eot_id|>");
  }
  for (; i < n; i++) {
    if (role_is(&m[i], "tool") || role_is(&m[i], "ipython")) {
      puts_(o, "<|start_header_id|>ipython<|end_header_id|>\n\n");
      puts_(o, m[i].content);
      puts_(o, "<|eot_id|>");
      continue;
    }
    puts_(o, "<|start_header_id|>");
    puts_(o, m[i].role);
    puts_(o, "<|end_header_id|>\n\n");
    puts_s(o, py_strip(S(m[i].content)));
    puts_(o, "<|eot_id|>");
  }
  if (add) puts_(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void render_llama2(struct out *o, const char *bos, const char *eos,
                          const struct slm_chat_msg *m, size_t n) {
  size_t i = 0;
  const char *sys = NULL;
  if (n && role_is(&m[0], "system")) {
    sys = m[0].content;
    i = 1;
  }
  for (size_t k = 0; i < n; i++, k++) {
    /* content = ('<<SYS>>\n' + system + '\n<</SYS>>\n\n' if first) + content, then .strip() */
    size_t cl = strlen(m[i].content), sl = sys && k == 0 ? strlen(sys) : 0;
    char *c = malloc(cl + sl + 32);
    if (!c) continue;
    size_t w = 0;
    if (sys && k == 0) {
      memcpy(c, "<<SYS>>\n", 8);
      memcpy(c + 8, sys, sl);
      memcpy(c + 8 + sl, "\n<</SYS>>\n\n", 11);
      w = 19 + sl;
    }
    memcpy(c + w, m[i].content, cl);
    w += cl;
    struct str s = py_strip((struct str){c, w});
    if (role_is(&m[i], "user")) {
      if (o->n) puts_(o, bos);   /* the BOS at the very start is the tokenizer's */
      puts_(o, "[INST] ");
      puts_s(o, s);
      puts_(o, " [/INST]");
    } else if (role_is(&m[i], "assistant")) {
      puts_(o, " ");
      puts_s(o, s);
      puts_(o, " ");
      puts_(o, eos);
    }
    free(c);
  }
}

static void render_mistral(struct out *o, const char *eos, const struct slm_chat_msg *m,
                           size_t n) {
  /* Mistral-7B-Instruct v0.1/v0.2: [INST] user [/INST]assistant</s>; a system message goes in
   * front of the first user message (as llama.cpp does; those templates reject it) */
  size_t i = 0;
  const char *sys = NULL;
  if (n && role_is(&m[0], "system")) {
    sys = m[0].content;
    i = 1;
  }
  for (bool first = true; i < n; i++) {
    if (role_is(&m[i], "user")) {
      puts_(o, "[INST] ");
      if (first && sys) {
        puts_(o, sys);
        puts_(o, "\n\n");
      }
      first = false;
      puts_(o, m[i].content);
      puts_(o, " [/INST]");
    } else if (role_is(&m[i], "assistant")) {
      puts_(o, m[i].content);
      puts_(o, eos);
    }
  }
}

static void render_phi3(struct out *o, bool legacy, const char *eos, const struct slm_chat_msg *m,
                        size_t n, bool add) {
  for (size_t i = 0; i < n; i++) {
    const struct slm_chat_msg *x = &m[i];
    if (legacy) {   /* Phi-3-mini: the user turn opens the assistant turn itself */
      if (role_is(x, "user")) {
        puts_(o, "<|user|>\n");
        puts_(o, x->content);
        puts_(o, "<|end|>\n<|assistant|>\n");
      } else if (role_is(x, "assistant")) {
        puts_(o, x->content);
        puts_(o, "<|end|>\n");
      }
      continue;
    }
    if ((role_is(x, "system") && *x->content) || role_is(x, "user") || role_is(x, "assistant")) {
      puts_(o, "<|");
      puts_(o, x->role);
      puts_(o, "|>\n");
      puts_(o, x->content);
      puts_(o, "<|end|>\n");
    }
  }
  if (!legacy) puts_(o, add ? "<|assistant|>\n" : eos);
}

static void render_phi4(struct out *o, const struct slm_chat_msg *m, size_t n, bool add) {
  for (size_t i = 0; i < n; i++) {
    if (!role_is(&m[i], "system") && !role_is(&m[i], "user") && !role_is(&m[i], "assistant"))
      continue;
    puts_(o, "<|im_start|>");
    puts_(o, m[i].role);
    puts_(o, "<|im_sep|>");
    puts_(o, m[i].content);
    puts_(o, "<|im_end|>");
  }
  if (add) puts_(o, "<|im_start|>assistant<|im_sep|>");
}

static void render_gemma(struct out *o, const struct slm_chat_msg *m, size_t n, bool add) {
  size_t i = 0;
  const char *prefix = NULL;
  if (n && role_is(&m[0], "system")) {   /* Gemma 3: "system\n\n" in front of the first turn */
    prefix = m[0].content;
    i = 1;
  }
  for (bool first = true; i < n; i++, first = false) {
    puts_(o, "<start_of_turn>");
    puts_(o, role_is(&m[i], "assistant") ? "model" : m[i].role);
    puts_(o, "\n");
    if (first && prefix) {
      puts_(o, prefix);
      puts_(o, "\n\n");
    }
    puts_s(o, py_strip(S(m[i].content)));
    puts_(o, "<end_of_turn>\n");
  }
  if (add) puts_(o, "<start_of_turn>model\n");
}

static void render_zephyr(struct out *o, const char *eos, const struct slm_chat_msg *m, size_t n,
                          bool add) {
  for (size_t i = 0; i < n; i++) {
    if (role_is(&m[i], "user") || role_is(&m[i], "system") || role_is(&m[i], "assistant")) {
      puts_(o, "<|");
      puts_(o, m[i].role);
      puts_(o, "|>\n");
      puts_(o, m[i].content);
      puts_(o, eos);
      puts_(o, "\n");
    }
    if (i + 1 == n && add) puts_(o, "<|assistant|>\n");
  }
}

/* ------------------------------------------------------------------ entry points */

int32_t slm_chat_render_opts(const char *tmpl, const struct slm_chat_opts *op,
                             const struct slm_chat_msg *msgs, size_t n, bool add_assistant,
                             char *buf, int32_t cap) {
  if (cap < 0 || (!buf && cap > 0) || (!msgs && n > 0) || n > (size_t)INT32_MAX) return INT32_MIN;
  for (size_t i = 0; i < n; i++)
    if (!msgs[i].role || !msgs[i].content) return INT32_MIN;
  enum family f = detect(tmpl);
  const char *bos = op && op->bos_text ? op->bos_text : "<s>";
  const char *eos = op && op->eos_text ? op->eos_text
                    : f == F_PHI3       ? "<|endoftext|>"
                                        : "</s>";
  struct out o = {.buf = buf, .cap = cap > 0 ? cap - 1 : 0, .n = 0};
  switch (f) {
    case F_CHATML: render_chatml(&o, tmpl, msgs, n, add_assistant); break;
    case F_QWEN3: render_qwen3(&o, op, msgs, n, add_assistant); break;
    case F_SMOLLM3:
      if (render_smollm3(&o, op, msgs, n, add_assistant)) return INT32_MIN;
      break;
    case F_LLAMA3: render_llama3(&o, tmpl, op, msgs, n, add_assistant); break;
    case F_LLAMA2: render_llama2(&o, bos, eos, msgs, n); break;
    case F_MISTRAL: render_mistral(&o, eos, msgs, n); break;
    case F_PHI3: render_phi3(&o, false, eos, msgs, n, add_assistant); break;
    case F_PHI3_LEGACY: render_phi3(&o, true, eos, msgs, n, add_assistant); break;
    case F_PHI4: render_phi4(&o, msgs, n, add_assistant); break;
    case F_GEMMA: render_gemma(&o, msgs, n, add_assistant); break;
    case F_ZEPHYR: render_zephyr(&o, eos, msgs, n, add_assistant); break;
  }
  if (o.n >= INT32_MAX) return INT32_MIN;
  if (o.n + 1 > (int64_t)cap) return -(int32_t)(o.n + 1);
  buf[o.n] = 0;
  return (int32_t)o.n;
}

int32_t slm_chat_render(const char *tmpl, const struct slm_chat_msg *msgs, size_t n,
                        bool add_assistant, char *buf, int32_t cap) {
  return slm_chat_render_opts(tmpl, NULL, msgs, n, add_assistant, buf, cap);
}

/* The vocabulary's text of token ID, NUL-terminated in BUF (empty if none). */
static const char *tok_text(const struct slm_vocab *v, slm_token id, char *buf, size_t cap) {
  buf[0] = 0;
  const char *t;
  int32_t k = id >= 0 ? slm_vocab_token_text(v, id, &t) : -1;
  if (k >= 0 && (size_t)k < cap) {
    memcpy(buf, t, (size_t)k);
    buf[k] = 0;
  }
  return buf;
}

int32_t slm_vocab_chat_render(const struct slm_vocab *v, const struct slm_chat_msg *msgs, size_t n,
                              bool add_assistant, char *buf, int32_t cap) {
  if (!v) return INT32_MIN;
  char bos[128], eos[128];
  struct slm_chat_opts op = {
      .bos_text = tok_text(v, slm_vocab_bos(v), bos, sizeof bos),
      .eos_text = tok_text(v, slm_vocab_eos(v), eos, sizeof eos),
  };
  if (!*op.bos_text) op.bos_text = NULL;
  if (!*op.eos_text) op.eos_text = NULL;
  return slm_chat_render_opts(slm_vocab_chat_template(v), &op, msgs, n, add_assistant, buf, cap);
}
