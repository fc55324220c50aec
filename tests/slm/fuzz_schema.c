/*
 * fuzz_schema.c: libFuzzer target for the constraint compiler (JSON Schema, regular expressions,
 * choices) and the token matcher over it (slm/constrain/).
 *
 * Input: byte 0 picks what the rest is (bits 0-1: a JSON Schema, a regular expression, choices
 * separated by '\n', or a JSON Schema compiled relaxed with flexible whitespace and OpenAPI
 * nullable); byte 1 picks the vocabulary (bit 0: stories260K, SentencePiece with byte fallback, or
 * tiny-qwen2, byte-level BPE, both from ../shared through TIERGATE_SHARED_DIR) and seeds the walk.
 * A compile must give a constraint or an error with a keyword and a message, never a crash. A
 * compiled constraint is walked for up to 48 tokens: at each step the mask is filled and checked
 * against per-token answers for a spread of tokens, one allowed token (picked by the seed) is
 * accepted, a refused one must leave the matcher unchanged, and a non-empty constraint never
 * reaches a state that can neither continue nor end. Then the matcher is reset and the text of
 * the input is fed as bytes (all or nothing).
 *
 * Built as a fuzzer with -Dfuzz=true and CC=clang (tests/slm/meson.build; the compiler's sources
 * are compiled into the target so that coverage reaches them); the same function is linked into
 * test_schema_corpus, which replays tests/slm/corpus/schema/ in every normal test run.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/slm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STEPS 48

static void fuzz_abort(const char *what) {
  fprintf(stderr, "fuzz_schema: %s\n", what);
  abort();
}

struct fz_vocab {
  struct slm_model *m;
  struct slm_vocab_index *vi;
  uint32_t *bits;
  int32_t n_vocab;
};
static struct fz_vocab vocabs[2];

static void load_vocab(struct fz_vocab *v, const char *rel) {
  const char *dir = getenv("TIERGATE_SHARED_DIR");
  char path[4096], err[512];
  snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "../shared", rel);
  struct slm_model_params mp = slm_model_default_params();
  mp.vocab_only = true;
  v->m = slm_model_load(path, &mp, err, sizeof err);
  if (!v->m) {
    fprintf(stderr, "fuzz_schema: %s: %s (set TIERGATE_SHARED_DIR)\n", path, err);
    abort();
  }
  v->vi = slm_vocab_index_new(v->m);
  if (!v->vi) fuzz_abort("vocab index");
  v->n_vocab = slm_vocab_index_n_vocab(v->vi);
  v->bits = calloc(((size_t)v->n_vocab + 31) / 32, sizeof *v->bits);
  if (!v->bits) fuzz_abort("out of memory");
}

static uint64_t rng;
static uint32_t next_rand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(rng >> 33);
}

static bool bit(const uint32_t *bits, int32_t t) { return bits[t >> 5] >> (t & 31) & 1; }

/* Walks C; returns the tokens accepted. */
static int walk(struct fz_vocab *v, struct slm_constraint *c) {
  struct slm_matcher *mt = slm_matcher_new(c);
  int steps = 0;
  if (!mt) return 0;   /* memory */
  if (slm_matcher_n_vocab(mt) != v->n_vocab) fuzz_abort("matcher width != vocabulary");
  bool empty = slm_constraint_is_empty(c);
  for (int step = 0; step < MAX_STEPS; step++) {
    int32_t n = slm_matcher_fill_mask(mt, v->bits);
    if (n == -ENOMEM) break;
    if (n < 0) fuzz_abort("fill_mask failed");
    if (n == 0 && !empty && !slm_matcher_can_end(mt)) fuzz_abort("stuck: no token allowed and the text cannot end");
    /* the mask agrees with per-token answers, on a spread of tokens */
    for (int k = 0; k < 24; k++) {
      int32_t t = (int32_t)(next_rand() % (uint32_t)v->n_vocab);
      if (slm_token_is_eog(v->m, t)) continue;   /* allowed by either answer when the text can end */
      if (slm_matcher_token_allowed(mt, t) != bit(v->bits, t)) fuzz_abort("mask != token_allowed");
    }
    if (n == 0 || slm_matcher_is_done(mt)) break;
    /* a refused token changes nothing */
    uint32_t before = slm_matcher_bytes_to_end(mt);
    for (int k = 0; k < 4; k++) {
      int32_t t = (int32_t)(next_rand() % (uint32_t)v->n_vocab);
      if (bit(v->bits, t) || slm_token_is_eog(v->m, t)) continue;
      if (slm_matcher_accept_token(mt, t) != -EINVAL) fuzz_abort("a refused token was accepted");
      if (slm_matcher_bytes_to_end(mt) != before) fuzz_abort("a refused token moved the matcher");
    }
    /* one allowed token, the seed's pick among them */
    int32_t pick = (int32_t)(next_rand() % (uint32_t)n), chosen = -1;
    for (int32_t t = 0; t < v->n_vocab; t++)
      if (bit(v->bits, t) && pick-- == 0) {
        chosen = t;
        break;
      }
    if (chosen < 0) fuzz_abort("the mask holds fewer tokens than it counts");
    if (slm_token_is_eog(v->m, chosen)) break;
    int rc = slm_matcher_accept_token(mt, chosen);
    if (rc == -ENOMEM) break;
    if (rc) fuzz_abort("an allowed token was refused");
    steps++;
  }
  slm_matcher_free(mt);
  return steps;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!vocabs[0].m) {
    load_vocab(&vocabs[0], "models/stories260K.gguf");
    load_vocab(&vocabs[1], "models/tiny-qwen2-Q8_0.gguf");
  }
  if (size < 2) return 0;
  int mode = data[0] & 3;
  struct fz_vocab *v = &vocabs[data[1] & 1];
  rng = 0x9E3779B97F4A7C15ull ^ data[1];
  const char *text = (const char *)data + 2;
  size_t len = size - 2;

  struct slm_constraint_params p = slm_constraint_default_params();
  p.whitespace = SLM_JSON_WS_COMPACT;
  p.max_states = 20000;          /* keeps one input quick; over it is -E2BIG, a clean refusal */
  p.mask_cache_bytes = 1 << 20;
  if (mode == 3) {
    p.relaxed = true;
    p.openapi_nullable = true;
    p.whitespace = SLM_JSON_WS_FLEXIBLE;
  }
  struct slm_constraint_error err;
  memset(&err, 0, sizeof err);
  struct slm_constraint *c = NULL;
  if (mode == 2) {
    /* choices: the lines of the text (NUL-terminated copies; at most 64) */
    char *copy = malloc(len + 1);
    if (!copy) return 0;
    memcpy(copy, text, len);
    copy[len] = 0;
    const char *choices[64];
    size_t n = 0;
    for (char *s = copy; n < 64;) {
      choices[n++] = s;
      char *nl = memchr(s, '\n', (size_t)(copy + len - s));
      if (!nl) break;
      *nl = 0;
      s = nl + 1;
    }
    c = slm_constraint_new_choice(v->vi, choices, n, &p, &err);
    free(copy);
  } else {
    enum slm_constraint_kind kind = mode == 1 ? SLM_CONSTRAINT_REGEX : SLM_CONSTRAINT_JSON_SCHEMA;
    c = slm_constraint_new(v->vi, kind, text, len, &p, &err);
  }
  bool verbose = getenv("FUZZ_SCHEMA_VERBOSE") != NULL;   /* what each input did, for the corpus */
  if (!c) {
    if (verbose) fprintf(stderr, "mode %d: refused: %s at '%s': %s\n", mode, err.keyword, err.pointer, err.message);
    if (err.code != -EINVAL && err.code != -E2BIG && err.code != -ENOMEM) fuzz_abort("refused without an error code");
    if (err.code == -EINVAL && !err.message[0]) fuzz_abort("refused without a message");
    if (!memchr(err.keyword, 0, sizeof err.keyword) || !memchr(err.pointer, 0, sizeof err.pointer) ||
        !memchr(err.message, 0, sizeof err.message))
      fuzz_abort("an error field is not terminated");
    return 0;
  }
  if (!slm_constraint_relaxed_keywords(c)) fuzz_abort("no relaxed-keywords string");
  int steps = walk(v, c);
  if (verbose) fprintf(stderr, "mode %d: compiled, %d token(s) walked\n", mode, steps);
  /* the input's own text fed as bytes: all or nothing */
  struct slm_matcher *mt = slm_matcher_new(c);
  if (mt) {
    uint32_t before = slm_matcher_bytes_to_end(mt);
    if (slm_matcher_accept_bytes(mt, text, len) != 0 && slm_matcher_bytes_to_end(mt) != before)
      fuzz_abort("refused bytes moved the matcher");
    slm_matcher_free(mt);
  }
  slm_constraint_free(c);
  return 0;
}
