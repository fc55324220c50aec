/*
 * test_tokenizer.c: the vocabulary loader and the tokenizers (slm/vocab.c, slm/tokenizer.c,
 * slm/tok_spm.c, slm/tok_bpe.c).
 *
 * 1. Reference vectors: for every ../shared/vocab/X.gguf with X.gguf.inp/.out, every string
 *    tokenizes (no BOS, special tokens parsed) to exactly llama.cpp's ids.
 * 2. What load derives: kinds, BOS/EOS/EOT, add_bos defaults, the end-of-generation set, the
 *    chat template, and the refusal of broken vocabularies (hand-built with the GGUF writer).
 * 3. Round trips: detokenize(tokenize(s)) == s for every reference string where it must hold,
 *    per vocabulary, and for the synthetic SmolLM2 vocabulary; pieces of byte tokens reassemble
 *    UTF-8; special tokens render only when asked.
 * 4. Special tokens: parse_special on/off, longest match first, control vs user-defined tokens.
 * 5. Invalid UTF-8 never crashes: SPM keeps the bytes, BPE reads them as U+FFFD.
 * 6. stories260K: the prompts of stories260K-greedy.json tokenize to their prompt_ids.
 * 7. Capacity contract: -(needed) when the output is too small, INT32_MIN on bad arguments.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "slm/gguf.h"
#include "slm/internal.h"
#include "slm/vocab.h"

struct loaded {
  struct slm_gguf_file *f;
  struct slm_vocab *v;
};

/* Vocabularies are loaded once and shared by the tests (loading Llama 3's takes a while under
 * ASan); unload() is a no-op and free_all() releases them at the end. */
static struct {
  char rel[128];
  struct loaded l;
} cache[16];
static int n_cache;

static struct loaded load(const char *rel) {
  for (int i = 0; i < n_cache; i++)
    if (!strcmp(cache[i].rel, rel)) return cache[i].l;
  struct loaded l = {0};
  char err[256] = "";
  const char *path = check_shared_path(rel);
  int rc = slm_gguf_open(path, &l.f, err, sizeof err);
  CHECK_MSG(rc == 0, "gguf_open %s: %s", path, err);
  if (!rc) {
    rc = slm_vocab_load(l.f, &l.v, err, sizeof err);
    CHECK_MSG(rc == 0, "slm_vocab_load %s: %s", path, err);
  }
  if (n_cache < 16) {
    snprintf(cache[n_cache].rel, sizeof cache[n_cache].rel, "%s", rel);
    cache[n_cache++].l = l;
  }
  return l;
}

static void unload(struct loaded *l) { (void)l; }

static void free_all(void) {
  for (int i = 0; i < n_cache; i++) {
    slm_vocab_free(cache[i].l.v);
    slm_gguf_close(cache[i].l.f);
  }
  n_cache = 0;
}

/* Tokenizes S into a malloc'd array (count in *n); NULL on failure. */
static slm_token *tok(const struct slm_vocab *v, const char *s, size_t len, bool add_special,
                      bool parse_special, int32_t *n) {
  int32_t cap = (int32_t)len + 8;
  slm_token *t = malloc((size_t)cap * sizeof *t);
  int32_t k = slm_vocab_tokenize(v, s, len, t, cap, add_special, parse_special);
  if (k < 0 && k != INT32_MIN) {
    cap = -k;
    t = realloc(t, (size_t)cap * sizeof *t);
    k = slm_vocab_tokenize(v, s, len, t, cap, add_special, parse_special);
  }
  if (k < 0) {
    free(t);
    return NULL;
  }
  *n = k;
  return t;
}

/* Detokenizes into a malloc'd NUL-terminated string (length in *len). */
static char *detok(const struct slm_vocab *v, const slm_token *t, int32_t n, bool rm_space,
                   bool special, int32_t *len) {
  int32_t k = slm_vocab_detokenize(v, t, n, NULL, 0, rm_space, special);
  if (k == INT32_MIN) return NULL;
  int32_t cap = k < 0 ? -k : k;
  char *b = malloc((size_t)cap + 1);
  k = slm_vocab_detokenize(v, t, n, b, cap, rm_space, special);
  if (k < 0) {
    free(b);
    return NULL;
  }
  b[k] = 0;
  *len = k;
  return b;
}

/* ---------------------------------------------------------------- 1. reference vectors */

static const char *const VECTOR_VOCABS[] = {
    "ggml-vocab-llama-spm.gguf",
    "ggml-vocab-phi-3.gguf",
    "ggml-vocab-gpt-2.gguf",
    "ggml-vocab-qwen2-from-qwen3-tokenizer.gguf",
    "ggml-vocab-llama-bpe-from-llama3-tokenizer.gguf",
    NULL,
};

#define SEP "\n__ggml_vocab_test__\n"

/* Splits the .inp text into strings (in place; each NUL-terminated). */
static int split_inp(char *inp, size_t len, char **strs, size_t *lens, int cap) {
  int n = 0;
  char *p = inp, *end = inp + len;
  while (p < end && n < cap) {
    char *q = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
    if (!q) break;
    *q = 0;
    strs[n] = p;
    lens[n] = (size_t)(q - p);
    n++;
    p = q + strlen(SEP);
  }
  return n;
}

static int vectors_one(const char *name, int *n_pass, int *n_total) {
  char rel[256], path_inp[512];
  snprintf(rel, sizeof rel, "vocab/%s", name);
  snprintf(path_inp, sizeof path_inp, "%s.inp", check_shared_path(rel));
  size_t li, lo;
  char *inp = check_read_file(path_inp, &li);
  char path_out[512];
  snprintf(path_out, sizeof path_out, "%s.out", check_shared_path(rel));
  char *outs = check_read_file(path_out, &lo);
  CHECK_MSG(inp && outs, "cannot read %s / %s", path_inp, path_out);
  if (!inp || !outs) {
    free(inp);
    free(outs);
    return 0;
  }
  struct loaded l = load(rel);
  if (!l.v) {
    free(inp);
    free(outs);
    return 0;
  }
  char *strs[256];
  size_t lens[256];
  int n = split_inp(inp, li, strs, lens, 256);
  CHECK_MSG(n >= 40, "%s: only %d test strings", name, n);
  char *line = outs, *save = NULL;
  int pass = 0;
  for (int i = 0; i < n; i++) {
    /* .out: one line of ids per string (an empty line for the empty string) */
    char *nl = line ? strchr(line, '\n') : NULL;
    if (!line || !nl) {
      CHECK_MSG(0, "%s: .out has fewer lines than .inp has strings (%d)", name, n);
      break;
    }
    *nl = 0;
    slm_token want[1024];
    int nw = 0;
    for (char *t = strtok_r(line, " ", &save); t && nw < 1024; t = strtok_r(NULL, " ", &save))
      want[nw++] = (slm_token)strtol(t, NULL, 10);
    line = nl + 1;
    int32_t ng = 0;
    slm_token *got = tok(l.v, strs[i], lens[i], false, true, &ng);
    bool ok = got && ng == nw && memcmp(got, want, (size_t)nw * sizeof *want) == 0;
    if (ok) {
      pass++;
    } else {
      char shown[64];
      snprintf(shown, sizeof shown, "%.60s", strs[i]);
      CHECK_MSG(0, "%s: string %d \"%s\": got %d tokens, want %d", name, i, shown, got ? ng : -1,
                nw);
      fprintf(stderr, "  got :");
      for (int j = 0; got && j < ng; j++) fprintf(stderr, " %d", got[j]);
      fprintf(stderr, "\n  want:");
      for (int j = 0; j < nw; j++) fprintf(stderr, " %d", want[j]);
      fprintf(stderr, "\n");
    }
    /* again, now that the vocabulary has learnt which words are whole tokens (v->whole) */
    int32_t ng2 = 0;
    slm_token *again = tok(l.v, strs[i], lens[i], false, true, &ng2);
    CHECK_MSG(again && got && ng2 == ng && memcmp(again, got, (size_t)ng * sizeof *got) == 0,
              "%s: string %d tokenizes differently the second time", name, i);
    free(again);
    free(got);
  }
  printf("vectors %-52s %d/%d\n", name, pass, n);
  *n_pass += pass;
  *n_total += n;
  unload(&l);
  free(inp);
  free(outs);
  return n;
}

static void test_vectors(void) {
  int pass = 0, total = 0;
  for (int i = 0; VECTOR_VOCABS[i]; i++) vectors_one(VECTOR_VOCABS[i], &pass, &total);
  CHECK_EQ_INT(pass, total);
  CHECK_EQ_INT(total, 5 * 46);
}


/* ---------------------------------------------------------------- 2. what load derives */

static bool has_eog(const struct slm_vocab *v, slm_token t) { return slm_vocab_is_eog(v, t); }

static void test_load_facts(void) {
  struct loaded l = load("vocab/ggml-vocab-llama-spm.gguf");
  if (l.v) {
    CHECK_EQ_INT(slm_vocab_kind(l.v), SLM_VOCAB_SPM);
    CHECK_EQ_INT(slm_vocab_n_tokens(l.v), 32000);
    CHECK_EQ_INT(slm_vocab_bos(l.v), 1);
    CHECK_EQ_INT(slm_vocab_eos(l.v), 2);
    CHECK_EQ_INT(slm_vocab_unk(l.v), 0);
    CHECK(slm_vocab_add_bos(l.v));
    CHECK(!slm_vocab_add_eos(l.v));
    CHECK(has_eog(l.v, 2));
    CHECK(!has_eog(l.v, 1));
    CHECK_EQ_INT(slm_vocab_nl(l.v), 13);   /* <0x0A> */
    CHECK(slm_vocab_chat_template(l.v) == NULL);
    CHECK_STR(slm_vocab_model(l.v), "llama");
    CHECK(slm_vocab_is_control(l.v, 1));
    const char *t;
    CHECK_EQ_INT(slm_vocab_token_text(l.v, 1, &t), 3);
    CHECK(memcmp(t, "<s>", 3) == 0);
    CHECK_EQ_INT(slm_vocab_text_to_token(l.v, "</s>", 4), 2);
  }
  unload(&l);

  l = load("vocab/ggml-vocab-phi-3.gguf");
  if (l.v) {
    CHECK_EQ_INT(slm_vocab_eos(l.v), 32000);
    CHECK_EQ_INT(slm_vocab_eot(l.v), 32007);   /* <|end|> */
    CHECK(has_eog(l.v, 32000) && has_eog(l.v, 32007));
    CHECK(has_eog(l.v, 2));                    /* "</s>" is in llama.cpp's EOG list */
    CHECK(slm_vocab_chat_template(l.v) != NULL);
  }
  unload(&l);

  l = load("vocab/ggml-vocab-qwen2-from-qwen3-tokenizer.gguf");
  if (l.v) {
    CHECK_EQ_INT(slm_vocab_kind(l.v), SLM_VOCAB_BPE);
    CHECK_STR(slm_vocab_pre(l.v), "qwen2");
    CHECK_EQ_INT(slm_vocab_bos(l.v), 151643);
    CHECK_EQ_INT(slm_vocab_eot(l.v), 151645);
    CHECK(!slm_vocab_add_bos(l.v));
    /* eos, <|im_end|>, and llama.cpp's FIM pad/repo/file-sep tokens */
    CHECK(has_eog(l.v, 151643) && has_eog(l.v, 151645));
    CHECK(has_eog(l.v, 151662) && has_eog(l.v, 151663) && has_eog(l.v, 151664));
    CHECK(!has_eog(l.v, 151644));
    /* and "</s>" (a plain token in Qwen's vocabulary), which llama.cpp adds by its spelling */
    CHECK(has_eog(l.v, 128247));
    slm_token ids[32];
    CHECK_EQ_INT(slm_vocab_eog_ids(l.v, ids, 32), 6);
    CHECK_EQ_INT(slm_vocab_nl(l.v), 198);   /* "Ċ" */
  }
  unload(&l);

  l = load("vocab/ggml-vocab-llama-bpe-from-llama3-tokenizer.gguf");
  if (l.v) {
    CHECK_STR(slm_vocab_pre(l.v), "llama-bpe");
    CHECK(slm_vocab_add_bos(l.v));
    CHECK_EQ_INT(slm_vocab_bos(l.v), 128000);
    CHECK_EQ_INT(slm_vocab_eos(l.v), 128009);
    CHECK_EQ_INT(slm_vocab_eot(l.v), 128009);
    CHECK(has_eog(l.v, 128001) && has_eog(l.v, 128009));
    CHECK(!has_eog(l.v, 128000));
  }
  unload(&l);

  l = load("vocab/ggml-vocab-gpt-2.gguf");
  if (l.v) {
    CHECK_EQ_INT(slm_vocab_bos(l.v), 50256);
    CHECK(!slm_vocab_add_bos(l.v));
    CHECK(has_eog(l.v, 50256));
  }
  unload(&l);

  l = load("vocab/vocab-smollm2-synthetic.gguf");
  if (l.v) {
    CHECK_STR(slm_vocab_pre(l.v), "smollm");
    CHECK_EQ_INT(slm_vocab_n_tokens(l.v), 49152);
    CHECK_EQ_INT(slm_vocab_eos(l.v), 0);
    CHECK_EQ_INT(slm_vocab_eot(l.v), 2);
    CHECK(has_eog(l.v, 0) && has_eog(l.v, 2) && !has_eog(l.v, 1));
  }
  unload(&l);

  l = load("models/stories260K.gguf");
  if (l.v) {
    CHECK_EQ_INT(slm_vocab_n_tokens(l.v), 512);
    CHECK(slm_vocab_add_bos(l.v));   /* absent from the file: SPM default */
    CHECK_EQ_INT(slm_vocab_pad(l.v), -1);   /* 0xFFFFFFFF in the file means unset */
  }
  unload(&l);
}

/* ---------------------------------------------------------------- 3. round trips */

/* BPE vocabularies with clean_up_tokenization_spaces change " ," and friends on purpose. */
static bool cleanup_applies(const char *s, size_t n) {
  for (size_t i = 1; i < n; i++)
    if (s[i - 1] == ' ' && (s[i] == '?' || s[i] == '!' || s[i] == '.' || s[i] == ',' ||
                            s[i] == '\''))
      return true;
  return false;
}

static int round_trip(const struct slm_vocab *v, const char *s, size_t n, bool add_special) {
  int32_t nt, nb;
  slm_token *t = tok(v, s, n, add_special, false, &nt);
  char *b = t ? detok(v, t, nt, true, false, &nb) : NULL;
  bool ok = b && (size_t)nb == n && memcmp(b, s, n) == 0;
  if (!ok)
    CHECK_MSG(0, "round trip of \"%.40s\" (%zu bytes) gave \"%.40s\" (%d bytes)", s, n,
              b ? b : "(null)", b ? nb : -1);
  free(t);
  free(b);
  return ok;
}

static void test_round_trips(void) {
  char path[512];
  size_t li;
  snprintf(path, sizeof path, "%s", check_shared_path("vocab/ggml-vocab-llama-spm.gguf.inp"));
  char *inp = check_read_file(path, &li);
  CHECK(inp != NULL);
  if (!inp) return;
  char *strs[256];
  size_t lens[256];
  int n = split_inp(inp, li, strs, lens, 256);
  static const char *const extra[] = {
      "The quick brown fox jumps over the lazy dog.",
      "  leading and trailing spaces  ",
      "tabs\tand\nnewlines\r\n",
      "\xc3\xa9t\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7",
      "code: for (int i = 0; i < n; i++) { x[i] = y[i] * 2; }",
      "12345678901234567890 3.14159 1e-9",
      NULL,
  };
  for (int k = 0; VECTOR_VOCABS[k]; k++) {
    char rel[256];
    snprintf(rel, sizeof rel, "vocab/%s", VECTOR_VOCABS[k]);
    struct loaded l = load(rel);
    if (!l.v) continue;
    bool clean = strstr(rel, "gpt-2") || strstr(rel, "llama-bpe");
    int ok = 0, tried = 0;
    for (int i = 0; i < n; i++) {
      if (clean && cleanup_applies(strs[i], lens[i])) continue;
      tried++;
      ok += round_trip(l.v, strs[i], lens[i], false);
      round_trip(l.v, strs[i], lens[i], true);   /* BOS is not printed; its space is dropped */
    }
    for (int i = 0; extra[i]; i++) {
      tried++;
      ok += round_trip(l.v, extra[i], strlen(extra[i]), false);
    }
    printf("round trips %-48s %d/%d\n", VECTOR_VOCABS[k], ok, tried);
    CHECK(tried >= 40);
    unload(&l);
  }
  /* the synthetic SmolLM2 vocabulary loads and round-trips too */
  struct loaded l = load("vocab/vocab-smollm2-synthetic.gguf");
  if (l.v) {
    for (int i = 0; i < n; i++) round_trip(l.v, strs[i], lens[i], false);
    for (int i = 0; extra[i]; i++) round_trip(l.v, extra[i], strlen(extra[i]), true);
    /* smollm splits digits one by one before the gpt2 pattern */
    int32_t nt;
    slm_token *t = tok(l.v, "2024", 4, false, false, &nt);
    CHECK(t && nt == 4);
    free(t);
  }
  unload(&l);
  free(inp);
}

/* ---------------------------------------------------------------- 4. special tokens */

/* tokenize(A + B) == tokenize(A) ++ tokenize(B) is what the partition guarantees around a
 * special token; the checks below compare against separately tokenized parts. */
static void expect_concat(const struct slm_vocab *v, const char *text, bool parse,
                          const slm_token *prefix, int np, const char *mid, const slm_token *suffix,
                          int ns) {
  int32_t nm = 0, nt = 0;
  slm_token *m = mid ? tok(v, mid, strlen(mid), false, false, &nm) : NULL;
  slm_token *t = tok(v, text, strlen(text), false, parse, &nt);
  slm_token want[256];
  int nw = 0;
  for (int i = 0; i < np; i++) want[nw++] = prefix[i];
  for (int i = 0; i < nm; i++) want[nw++] = m[i];
  for (int i = 0; i < ns; i++) want[nw++] = suffix[i];
  bool ok = t && nt == nw && memcmp(t, want, (size_t)nw * sizeof *want) == 0;
  CHECK_MSG(ok, "\"%s\" (parse_special=%d): got %d tokens, want %d", text, parse, t ? nt : -1, nw);
  free(m);
  free(t);
}

static void test_specials(void) {
  struct loaded l = load("vocab/ggml-vocab-qwen2-from-qwen3-tokenizer.gguf");
  if (l.v) {
    const slm_token im_start = 151644, im_end = 151645;
    expect_concat(l.v, "<|im_start|>user\nHello", true, &im_start, 1, "user\nHello", NULL, 0);
    expect_concat(l.v, "Hi<|im_end|>", true, NULL, 0, "Hi", &im_end, 1);
    /* without parse_special the control text is plain text */
    int32_t nt;
    slm_token *t = tok(l.v, "<|im_start|>", 12, false, false, &nt);
    CHECK(t && nt > 1);
    for (int i = 0; t && i < nt; i++) CHECK(t[i] != im_start);
    free(t);
    /* user-defined tokens (<think>) are matched even without parse_special, as in llama.cpp */
    t = tok(l.v, "<think>", 7, false, false, &nt);
    CHECK(t && nt == 1 && t[0] == 151667);
    free(t);
    /* rendering: control tokens only when asked; user-defined always */
    char buf[64];
    CHECK_EQ_INT(slm_vocab_token_to_piece(l.v, im_start, buf, sizeof buf, false), 0);
    CHECK_EQ_INT(slm_vocab_token_to_piece(l.v, im_start, buf, sizeof buf, true), 12);
    CHECK(memcmp(buf, "<|im_start|>", 12) == 0);
    CHECK_EQ_INT(slm_vocab_token_to_piece(l.v, 151667, buf, sizeof buf, false), 7);
    slm_token seq[] = {im_start, 872, 198, 9707, im_end};   /* <|im_start|>user\nHello<|im_end|> */
    int32_t nb;
    char *s = detok(l.v, seq, 5, false, true, &nb);
    CHECK_STR(s, "<|im_start|>user\nHello<|im_end|>");
    free(s);
    s = detok(l.v, seq, 5, false, false, &nb);
    CHECK_STR(s, "user\nHello");
    free(s);
  }
  unload(&l);

  l = load("vocab/ggml-vocab-llama-bpe-from-llama3-tokenizer.gguf");
  if (l.v) {
    const slm_token bot = 128000, sh = 128006, eh = 128007, r10 = 128015;
    expect_concat(l.v, "<|begin_of_text|>Hi", true, &bot, 1, "Hi", NULL, 0);
    slm_token hdr[] = {bot, sh};
    expect_concat(l.v, "<|begin_of_text|><|start_header_id|>user", true, hdr, 2, "user", NULL, 0);
    expect_concat(l.v, "x<|reserved_special_token_10|>", true, NULL, 0, "x", &r10, 1);
    (void)eh;
    /* add_special adds BOS for llama3 */
    int32_t nt;
    slm_token *t = tok(l.v, "Hi", 2, true, false, &nt);
    CHECK(t && nt == 2 && t[0] == bot);
    free(t);
  }
  unload(&l);

  l = load("vocab/ggml-vocab-llama-spm.gguf");
  if (l.v) {
    /* after a special token SPM adds the prefix space again (llama.cpp's is_prev_special) */
    const slm_token bos = 1;
    expect_concat(l.v, "<s>Hello", true, &bos, 1, "Hello", NULL, 0);
    int32_t nt;
    slm_token *t = tok(l.v, "Hello", 5, true, false, &nt);
    CHECK(t && nt >= 2 && t[0] == 1);
    free(t);
  }
  unload(&l);

  l = load("vocab/ggml-vocab-phi-3.gguf");
  if (l.v) {
    /* Phi-3: spaces right of <|user|> are dropped (RSTRIP), not left of it */
    const slm_token user = 32010;
    expect_concat(l.v, "<|user|>   Hi", true, &user, 1, "Hi", NULL, 0);
  }
  unload(&l);
}

/* ---------------------------------------------------------------- 5. invalid UTF-8 */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 32);
}

/* U+FFFD for every byte that does not start a valid UTF-8 sequence (the BPE reading). */
static size_t sanitize(const uint8_t *s, size_t n, char *out) {
  size_t j = 0;
  for (size_t i = 0; i < n;) {
    size_t k = 0;
    uint8_t c = s[i];
    if (c < 0x80) k = 1;
    else if (c >= 0xC2 && c < 0xE0) k = (i + 1 < n && (s[i + 1] & 0xC0) == 0x80) ? 2 : 0;
    else if (c >= 0xE0 && c < 0xF0) {
      k = (i + 2 < n && (s[i + 1] & 0xC0) == 0x80 && (s[i + 2] & 0xC0) == 0x80) ? 3 : 0;
      if (k && c == 0xE0 && s[i + 1] < 0xA0) k = 0;
      if (k && c == 0xED && s[i + 1] >= 0xA0) k = 0;
    } else if (c >= 0xF0 && c < 0xF5) {
      k = (i + 3 < n && (s[i + 1] & 0xC0) == 0x80 && (s[i + 2] & 0xC0) == 0x80 &&
           (s[i + 3] & 0xC0) == 0x80) ? 4 : 0;
      if (k && c == 0xF0 && s[i + 1] < 0x90) k = 0;
      if (k && c == 0xF4 && s[i + 1] >= 0x90) k = 0;
    }
    if (!k) {
      memcpy(out + j, "\xEF\xBF\xBD", 3);
      j += 3;
      i++;
    } else {
      memcpy(out + j, s + i, k);
      j += k;
      i += k;
    }
  }
  return j;
}

static void test_invalid_utf8(void) {
  static const char *const pieces[] = {"a", " ", "\n", "ab", "\xc3\xa9", "\xe4\xb8\xad",
                                       "\xf0\x9f\x98\x80", "\xff", "\xc3", "\xe4\xb8", "\x80",
                                       "\xed\xa0\x80", "\xc0\xaf", "\xf5\x80\x80\x80", "<s>",
                                       "<|im_start|>", "  ", "1", "'s", "\t", "\0", NULL};
  size_t np = 0;
  while (pieces[np]) np++;
  const char *files[] = {"vocab/ggml-vocab-llama-spm.gguf",
                         "vocab/ggml-vocab-qwen2-from-qwen3-tokenizer.gguf",
                         "vocab/ggml-vocab-llama-bpe-from-llama3-tokenizer.gguf", NULL};
  for (int k = 0; files[k]; k++) {
    struct loaded l = load(files[k]);
    if (!l.v) continue;
    bool spm = slm_vocab_kind(l.v) == SLM_VOCAB_SPM;
    int bad = 0;
    for (int iter = 0; iter < 300; iter++) {
      char s[256];
      size_t n = 0;
      int parts = 1 + (int)(rnd() % 12);
      for (int p = 0; p < parts; p++) {
        const char *x = pieces[rnd() % np];
        size_t xl = x[0] ? strlen(x) : 1;   /* "\0" is one NUL byte */
        memcpy(s + n, x, xl);
        n += xl;
      }
      for (int parse = 0; parse < 2; parse++) {
        int32_t nt, nb;
        slm_token *t = tok(l.v, s, n, false, parse, &nt);
        if (!t) {
          bad++;
          continue;
        }
        for (int i = 0; i < nt; i++)
          if (t[i] < 0 || t[i] >= slm_vocab_n_tokens(l.v)) bad++;
        char *b = detok(l.v, t, nt, true, parse, &nb);
        char want[1024];
        size_t nw = spm ? n : sanitize((const uint8_t *)s, n, want);
        if (spm) memcpy(want, s, n);
        /* parse=0 never sees specials: the bytes come back exactly (modulo U+FFFD for BPE);
         * the llama3 vocabulary's clean-up may drop a space before ' */
        if (!parse && !(strstr(files[k], "llama-bpe") && cleanup_applies(want, nw)) &&
            (!b || (size_t)nb != nw || memcmp(b, want, nw) != 0))
          bad++;
        free(t);
        free(b);
      }
    }
    CHECK_MSG(bad == 0, "%s: %d random inputs with invalid UTF-8 misbehaved", files[k], bad);
    /* a lone invalid byte: SPM emits its byte token, BPE the tokens of U+FFFD */
    int32_t n1, n2;
    slm_token *a = tok(l.v, "x\xffy", 3, false, false, &n1);
    slm_token *b = tok(l.v, "x\xef\xbf\xbdy", 5, false, false, &n2);
    if (spm) {
      bool has_ff = false;
      for (int i = 0; a && i < n1; i++) has_ff |= a[i] == 3 + 0xFF;   /* <0xFF> */
      CHECK(has_ff);
    } else {
      CHECK(a && b && n1 == n2 && memcmp(a, b, (size_t)n1 * sizeof *a) == 0);
    }
    free(a);
    free(b);
    unload(&l);
  }
}

/* ---------------------------------------------------------------- 6. stories260K prompts */

static void test_stories_prompts(void) {
  json_error_t je;
  json_t *root = json_load_file(check_shared_path("models/stories260K-greedy.json"), 0, &je);
  CHECK_MSG(root != NULL, "stories260K-greedy.json: %s", je.text);
  if (!root) return;
  struct loaded l = load("models/stories260K.gguf");
  json_t *runs = json_object_get(root, "runs");
  size_t i;
  json_t *run;
  int checked = 0;
  json_array_foreach(runs, i, run) {
    const char *prompt = json_string_value(json_object_get(run, "prompt"));
    json_t *ids = json_object_get(run, "prompt_ids");
    if (!prompt || !json_is_array(ids) || !l.v) continue;
    int32_t nt;
    /* the reference was made with BOS added as the vocabulary asks (it does: ids start with 1) */
    slm_token *t = tok(l.v, prompt, strlen(prompt), true, false, &nt);
    bool ok = t && (size_t)nt == json_array_size(ids);
    for (size_t k = 0; ok && k < json_array_size(ids); k++)
      ok = t[k] == (slm_token)json_integer_value(json_array_get(ids, k));
    CHECK_MSG(ok, "stories260K prompt \"%s\" does not tokenize to its prompt_ids", prompt);
    CHECK(json_integer_value(json_array_get(ids, 0)) == 1);
    free(t);
    checked++;
  }
  CHECK_EQ_INT(checked, 3);
  unload(&l);
  json_decref(root);
}

/* ---------------------------------------------------------------- 7. capacity and arguments */

static void test_contract(void) {
  struct loaded l = load("vocab/ggml-vocab-qwen2-from-qwen3-tokenizer.gguf");
  if (!l.v) return;
  const char *s = "Hello world, this is a test.";
  slm_token t[64];
  int32_t n = slm_vocab_tokenize(l.v, s, strlen(s), t, 64, false, false);
  CHECK(n > 3);
  CHECK_EQ_INT(slm_vocab_tokenize(l.v, s, strlen(s), t, 2, false, false), -n);
  CHECK_EQ_INT(slm_vocab_tokenize(l.v, s, strlen(s), NULL, 0, false, false), -n);
  CHECK_EQ_INT(slm_vocab_tokenize(l.v, "", 0, NULL, 0, false, false), 0);
  CHECK_EQ_INT(slm_vocab_tokenize(l.v, NULL, 0, t, 64, false, false), 0);
  CHECK_EQ_INT(slm_vocab_tokenize(NULL, s, 3, t, 64, false, false), INT32_MIN);
  CHECK_EQ_INT(slm_vocab_tokenize(l.v, NULL, 3, t, 64, false, false), INT32_MIN);
  CHECK_EQ_INT(slm_vocab_tokenize(l.v, s, 3, NULL, 5, false, false), INT32_MIN);
  CHECK_EQ_INT(slm_vocab_tokenize(l.v, s, 3, t, -1, false, false), INT32_MIN);
  char buf[8];
  CHECK_EQ_INT(slm_vocab_token_to_piece(l.v, 151644, buf, 4, true), -12);
  CHECK_EQ_INT(slm_vocab_token_to_piece(l.v, -1, buf, 8, true), INT32_MIN);
  CHECK_EQ_INT(slm_vocab_token_to_piece(l.v, 151936, buf, 8, true), INT32_MIN);
  int32_t need = slm_vocab_detokenize(l.v, t, n, buf, 8, false, false);
  CHECK_EQ_INT(need, -(int32_t)strlen(s));
  slm_token badt[] = {1, 999999};
  CHECK_EQ_INT(slm_vocab_detokenize(l.v, badt, 2, buf, 8, false, false), INT32_MIN);
  CHECK_EQ_INT(slm_vocab_detokenize(l.v, t, 0, buf, 8, false, false), 0);
  /* a long input (64 KiB) in one call */
  size_t big = 65536;
  char *text = malloc(big);
  for (size_t i = 0; i < big; i++) text[i] = "abc de\nf, 12"[i % 12];
  int32_t nb = slm_vocab_tokenize(l.v, text, big, NULL, 0, false, false);
  CHECK(nb < -1000);
  free(text);
  unload(&l);
}

/* ---------------------------------------------------------------- 8. hand-built vocabularies */

/* A small vocabulary description; fields left 0/NULL are not written. */
struct mini {
  const char *model;            /* tokenizer.ggml.model */
  const char *pre;
  const char *const *tokens;
  int n_tokens;
  const float *scores;
  int n_scores;
  const int32_t *types;
  int n_types;
  const char *const *merges;
  int n_merges;
  int64_t bos;                  /* -2: not written */
  bool tokens_not_strings;
  int add_bos;                  /* -1: not written */
};

static int mini_load(const struct mini *m, struct slm_vocab **v, struct slm_gguf_file **f, void **buf,
                     char *err, size_t errlen) {
  struct slm_gguf_writer *w = slm_gguf_writer_new();
  if (m->model) slm_gguf_w_str(w, "tokenizer.ggml.model", m->model);
  if (m->pre) slm_gguf_w_str(w, "tokenizer.ggml.pre", m->pre);
  if (m->tokens_not_strings) {
    int32_t x[3] = {1, 2, 3};
    slm_gguf_w_arr_i32(w, "tokenizer.ggml.tokens", x, 3);
  } else if (m->tokens) {
    slm_gguf_w_arr_str(w, "tokenizer.ggml.tokens", m->tokens, (size_t)m->n_tokens);
  }
  if (m->scores) slm_gguf_w_arr_f32(w, "tokenizer.ggml.scores", m->scores, (size_t)m->n_scores);
  if (m->types) slm_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", m->types, (size_t)m->n_types);
  if (m->merges) slm_gguf_w_arr_str(w, "tokenizer.ggml.merges", m->merges, (size_t)m->n_merges);
  if (m->bos != -2) slm_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)m->bos);
  if (m->add_bos >= 0) slm_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", m->add_bos != 0);
  size_t len;
  *buf = NULL;
  *v = NULL;
  *f = NULL;
  int rc = slm_gguf_writer_write_mem(w, buf, &len, err, errlen);
  slm_gguf_writer_free(w);
  if (rc) return rc;
  rc = slm_gguf_open_mem(*buf, len, f, err, errlen);
  if (rc) return rc;
  return slm_vocab_load(*f, v, err, errlen);
}

static void mini_free(struct slm_vocab *v, struct slm_gguf_file *f, void *buf) {
  slm_vocab_free(v);
  slm_gguf_close(f);
  free(buf);
}

/* Loads M and expects failure with a message containing WHAT. */
static void expect_refused(const struct mini *m, int code, const char *what) {
  struct slm_vocab *v;
  struct slm_gguf_file *f;
  void *buf;
  char err[256] = "";
  int rc = mini_load(m, &v, &f, &buf, err, sizeof err);
  CHECK_MSG(rc == code, "expected %d for \"%s\", got %d (%s)", code, what, rc, err);
  CHECK_MSG(strstr(err, what) != NULL, "message \"%s\" does not mention \"%s\"", err, what);
  CHECK(v == NULL);
  mini_free(v, f, buf);
}

static void test_mini_vocabs(void) {
  /* a BPE vocabulary where the merge order decides: "abc" is a+b -> ab, ab+c -> abc when "a b"
   * ranks first; with "b c" first it becomes a + bc (and "a bc" is not a merge) */
  static const char *const toks[] = {"a", "b", "c", "ab", "bc", "abc", "<|eot|>", "<|im_end|>"};
  static const int32_t types[] = {1, 1, 1, 1, 1, 1, 3, 3};
  static const char *const m1[] = {"a b", "b c", "ab c"};
  static const char *const m2[] = {"b c", "a b", "ab c"};
  struct mini m = {.model = "gpt2", .pre = "gpt-2", .tokens = toks, .n_tokens = 8,
                   .types = types, .n_types = 8, .merges = m1, .n_merges = 3, .bos = -2,
                   .add_bos = -1};
  struct slm_vocab *v;
  struct slm_gguf_file *f;
  void *buf;
  char err[256] = "";
  int rc = mini_load(&m, &v, &f, &buf, err, sizeof err);
  CHECK_MSG(rc == 0, "mini vocab: %s", err);
  if (!rc) {
    slm_token t[8];
    CHECK_EQ_INT(slm_vocab_tokenize(v, "abc", 3, t, 8, false, false), 1);
    CHECK_EQ_INT(t[0], 5);
    CHECK_EQ_INT(slm_vocab_tokenize(v, "abcab", 5, t, 8, false, false), 2);
    CHECK(t[0] == 5 && t[1] == 3);
    /* "<|eot|>" is not in llama.cpp's list, "<|im_end|>" is */
    CHECK(slm_vocab_is_eog(v, 7));
    CHECK(!slm_vocab_is_eog(v, 6));
    CHECK_EQ_INT(slm_vocab_eot(v), 7);
    /* default BOS/EOS (11) are outside this vocabulary: dropped */
    CHECK_EQ_INT(slm_vocab_bos(v), -1);
    /* a byte with no token is dropped, as llama.cpp does */
    CHECK_EQ_INT(slm_vocab_tokenize(v, "az", 2, t, 8, false, false), 1);
  }
  mini_free(v, f, buf);
  m.merges = m2;
  rc = mini_load(&m, &v, &f, &buf, err, sizeof err);
  if (!rc) {
    slm_token t[8];
    CHECK_EQ_INT(slm_vocab_tokenize(v, "abc", 3, t, 8, false, false), 2);
    CHECK(t[0] == 0 && t[1] == 4);
  }
  mini_free(v, f, buf);

  /* longest special first, and partition order */
  static const char *const st[] = {"<", ">", "a", "<a>", "<a><b>", "b"};
  static const int32_t sty[] = {1, 1, 1, 3, 4, 1};
  static const float ssc[] = {0, 0, 0, 0, 0, 0};
  struct mini ms = {.model = "llama", .tokens = st, .n_tokens = 6, .scores = ssc, .n_scores = 6,
                    .types = sty, .n_types = 6, .bos = -2, .add_bos = 0};
  rc = mini_load(&ms, &v, &f, &buf, err, sizeof err);
  CHECK_MSG(rc == 0, "mini spm: %s", err);
  if (!rc) {
    slm_token t[16];
    int32_t n = slm_vocab_tokenize(v, "<a><b><a>", 9, t, 16, false, true);
    CHECK_EQ_INT(n, 2);   /* "<a><b>" (user-defined, longer) then "<a>" (control) */
    CHECK(t[0] == 4 && t[1] == 3);
    /* without parse_special only the user-defined token is matched */
    n = slm_vocab_tokenize(v, "<a><b><a>", 9, t, 16, false, false);
    CHECK(n >= 2 && t[0] == 4 && t[1] != 3);
  }
  mini_free(v, f, buf);

  /* refusals, each with a message naming the problem */
  struct mini bad = m;
  bad.model = NULL;
  expect_refused(&bad, -EINVAL, "tokenizer.ggml.model");
  bad = m;
  bad.model = "bert";
  expect_refused(&bad, -ENOTSUP, "'bert'");
  bad = m;
  bad.pre = "unknown-pre";
  expect_refused(&bad, -ENOTSUP, "'unknown-pre'");
  bad = m;
  bad.merges = NULL;
  expect_refused(&bad, -EINVAL, "merges is missing");
  static const char *const nospace[] = {"a b", "bc"};
  bad = m;
  bad.merges = nospace;
  bad.n_merges = 2;
  expect_refused(&bad, -EINVAL, "merge 1 has no space");
  bad = m;
  bad.n_types = 7;
  expect_refused(&bad, -EINVAL, "token_type has 7 entries");
  bad = ms;
  bad.n_scores = 5;
  expect_refused(&bad, -EINVAL, "scores has 5 entries");
  static const char *const dup[] = {"a", "b", "a"};
  bad = ms;
  bad.tokens = dup;
  bad.n_tokens = bad.n_scores = bad.n_types = 3;
  expect_refused(&bad, -EINVAL, "duplicate token 'a'");
  static const char *const inval[] = {"a", "b\xff", "c"};
  bad = ms;
  bad.tokens = inval;
  bad.n_tokens = bad.n_scores = bad.n_types = 3;
  expect_refused(&bad, -EINVAL, "token 1 is not valid UTF-8");
  bad = ms;
  bad.tokens_not_strings = true;
  expect_refused(&bad, -EINVAL, "not an array of strings");
  bad = ms;
  bad.bos = 99;
  expect_refused(&bad, -EINVAL, "bos_token_id = 99");
  bad = m;
  bad.add_bos = 1;   /* BPE with no usable BOS id */
  expect_refused(&bad, -EINVAL, "add_bos_token is true");
  /* 0xFFFFFFFF means "unset": the SPM default (1) stays */
  struct mini ok = ms;
  ok.bos = 0xFFFFFFFFll;
  rc = mini_load(&ok, &v, &f, &buf, err, sizeof err);
  CHECK_MSG(rc == 0, "bos 0xFFFFFFFF: %s", err);
  if (!rc) CHECK_EQ_INT(slm_vocab_bos(v), 1);
  mini_free(v, f, buf);
}

/* ---------------------------------------------------------------- 9. threads */

/* Several threads tokenize the same texts with one freshly loaded vocabulary (its whole-word
 * memo starts empty and fills concurrently); every result must equal the single-thread one. */
struct thread_job {
  const struct slm_vocab *v;
  const char *const *texts;
  const slm_token *want;
  const int32_t *want_n;
  int bad;
};

static void *thread_main(void *arg) {
  struct thread_job *j = arg;
  for (int rep = 0; rep < 20; rep++) {
    size_t off = 0;
    for (int i = 0; j->texts[i]; i++) {
      slm_token t[512];
      int32_t n = slm_vocab_tokenize(j->v, j->texts[i], strlen(j->texts[i]), t, 512, false, true);
      if (n != j->want_n[i] || memcmp(t, j->want + off, (size_t)n * sizeof *t) != 0) j->bad++;
      off += (size_t)j->want_n[i];
    }
  }
  return NULL;
}

static void test_threads(void) {
  static const char *const texts[] = {
      "The quick brown fox jumps over the lazy dog, again and again.",
      "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n",
      "the the the of of and and to to in in is is that that",
      "numbers 1234567 and words: tokenization, detokenization.",
      NULL,
  };
  const char *files[] = {"vocab/ggml-vocab-qwen2-from-qwen3-tokenizer.gguf",
                         "vocab/ggml-vocab-llama-spm.gguf", NULL};
  for (int k = 0; files[k]; k++) {
    /* reference ids from the shared (already warm) vocabulary */
    struct loaded ref = load(files[k]);
    if (!ref.v) continue;
    slm_token want[2048];
    int32_t want_n[8];
    size_t off = 0;
    for (int i = 0; texts[i]; i++) {
      want_n[i] = slm_vocab_tokenize(ref.v, texts[i], strlen(texts[i]), want + off, 512, false,
                                     true);
      off += (size_t)want_n[i];
    }
    /* a fresh copy, cold memo */
    struct slm_gguf_file *f;
    struct slm_vocab *v;
    char err[256];
    if (slm_gguf_open(check_shared_path(files[k]), &f, err, sizeof err) ||
        slm_vocab_load(f, &v, err, sizeof err)) {
      CHECK_MSG(0, "%s: %s", files[k], err);
      continue;
    }
    pthread_t th[4];
    struct thread_job jobs[4];
    for (int i = 0; i < 4; i++) {
      jobs[i] = (struct thread_job){v, texts, want, want_n, 0};
      pthread_create(&th[i], NULL, thread_main, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
      pthread_join(th[i], NULL);
      CHECK_EQ_INT(jobs[i].bad, 0);
    }
    slm_vocab_free(v);
    slm_gguf_close(f);
  }
}

int main(void) {
  test_vectors();
  test_threads();
  test_mini_vocabs();
  test_load_facts();
  test_round_trips();
  test_specials();
  test_invalid_utf8();
  test_stories_prompts();
  test_contract();
  free_all();
  return check_done();
}
