/*
 * gen_constrained.c: generates text under constraints with a real model, for
 * test_schema_gen.py to validate independently (python3-jsonschema, Python's re).
 *
 *   gen_constrained MODEL SUITE.jsonl OUT.jsonl [--every N] [--offset K] [--seeds N]
 *                   [--max-tokens T] [--regexes FILE] [--choices FILE]
 *
 * For every N-th schema of SUITE that compiles (and is not empty), and each seed: the text from
 * BOS, sampled with slm_sampler_sample_constrained (seed 0: greedy; odd seeds: temperature 1
 * without top-k, so full masks; even seeds: temperature 0.9, top-k 40), with the budget set to
 * the tokens left. --regexes FILE (one pattern per line) and --choices FILE (one
 * comma-separated list per line) add those constraints. Each result is one JSON line:
 * {"kind":"schema","id":..,"seed":..,"done":true,"tokens":N,"text":".."} ("regex"/"choice" lines
 * carry the pattern or list instead of the id). "done" says whether the constraint could end
 * when generation stopped. Exit 1 when a constrained step found no allowed token. A constraint
 * whose shortest text does not fit the model's context is skipped (counted).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"
#include "slm/slm.h"

struct gen {
  struct slm_model *m;
  struct slm_context *c;
  struct slm_vocab_index *vi;
  FILE *out;
  int max_tokens;
  int nseeds;
  int stuck;
  long runs, too_long;
};

/* The pieces of TOKS concatenated into a malloc'd string (*LEN bytes). */
static char *pieces(const struct slm_model *m, const slm_token *t, int n, size_t *len) {
  size_t cap = 64, o = 0;
  char *buf = malloc(cap);
  char tmp[512];
  for (int i = 0; i < n && buf; i++) {
    int32_t k = slm_token_to_piece(m, t[i], tmp, (int32_t)sizeof tmp, false);
    if (k < 0) k = 0;
    if (o + (size_t)k + 1 > cap) {
      while (o + (size_t)k + 1 > cap) cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        return NULL;
      }
      buf = nb;
    }
    memcpy(buf + o, tmp, (size_t)k);
    o += (size_t)k;
  }
  if (buf) buf[o] = 0;
  *len = o;
  return buf;
}

/* One generation under C with SEED; writes its line with the fields of TAG (stolen). */
static void run_one(struct gen *g, struct slm_constraint *cons, int seed, json_t *tag) {
  struct slm_sampler_params sp = slm_sampler_default_params();
  sp.seed = (uint64_t)seed * 7919 + 1;
  if (seed == 0) sp.temperature = 0;
  else if (seed % 2) sp.temperature = 1.0f, sp.top_k = 0, sp.top_p = 1.0f, sp.min_p = 0;
  else sp.temperature = 0.9f, sp.top_k = 40;
  struct slm_sampler *s = slm_sampler_new(g->m, &sp);
  struct slm_matcher *mt = slm_matcher_new(cons);
  slm_token *toks = malloc(sizeof *toks * (slm_context_n_ctx(g->c) + 8));
  if (!s || !mt || !toks) goto out;
  slm_kv_clear(g->c);
  slm_token bos = slm_token_bos(g->m);
  slm_token first = bos >= 0 ? bos : 0;
  struct slm_batch b = slm_batch_one(&first, 1);
  if (slm_decode(g->c, &b)) goto out;
  /* the budget: what the longest minimal text needs, with room */
  int budget = g->max_tokens;
  uint32_t need = slm_matcher_bytes_to_end(mt);
  if ((int)need + 16 > budget) budget = (int)need + 16;
  if (budget > (int)slm_context_n_ctx(g->c) - 2) {   /* the shortest text does not fit the model */
    g->too_long++;
    goto out;
  }
  int n = 0;
  while (n < budget && !slm_matcher_is_done(mt)) {
    slm_matcher_set_budget(mt, budget - n);
    const float *lg = slm_get_logits(g->c, 0);
    slm_token t = slm_sampler_sample_constrained(s, lg, mt, NULL);
    if (t < 0) {
      g->stuck++;
      size_t len;
      char *text = pieces(g->m, toks, n, &len);
      char *tagline = json_dumps(tag, JSON_COMPACT);
      fprintf(stderr, "stuck: %s seed %d after %d tokens (budget %d, %u bytes to end): %s\n",
              tagline ? tagline : "?", seed, n, budget - n, slm_matcher_bytes_to_end(mt), text ? text : "");
      free(tagline);
      free(text);
      break;
    }
    if (slm_token_is_eog(g->m, t)) break;
    if (slm_matcher_accept_token(mt, t)) {
      g->stuck++;
      break;
    }
    toks[n++] = t;
    b = slm_batch_one(&t, 1);
    if (slm_decode(g->c, &b)) break;
  }
  size_t len;
  char *text = pieces(g->m, toks, n, &len);
  if (text) {
    json_object_set_new(tag, "seed", json_integer(seed));
    json_object_set_new(tag, "done", json_boolean(slm_matcher_can_end(mt)));
    json_object_set_new(tag, "tokens", json_integer(n));
    json_t *js = json_stringn(text, len);
    json_object_set_new(tag, "text", js ? js : json_string(""));
    json_object_set_new(tag, "valid_utf8", json_boolean(js != NULL));
    char *line = json_dumps(tag, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (line) fprintf(g->out, "%s\n", line);
    free(line);
    g->runs++;
  }
  free(text);
out:
  json_decref(tag);
  free(toks);
  slm_matcher_free(mt);
  slm_sampler_free(s);
}

static struct slm_constraint *compile(struct gen *g, enum slm_constraint_kind k, const char *t, size_t n) {
  struct slm_constraint_params p = slm_constraint_default_params();
  p.whitespace = SLM_JSON_WS_COMPACT;
  p.all_escapes = false;
  struct slm_constraint_error ce;
  struct slm_constraint *c = slm_constraint_new(g->vi, k, t, n, &p, &ce);
  if (c && slm_constraint_is_empty(c)) {
    slm_constraint_free(c);
    return NULL;
  }
  return c;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: gen_constrained MODEL SUITE OUT [--every N] [--offset K] [--seeds N] [--max-tokens T] [--regexes F] [--choices F]\n");
    return 2;
  }
  long every = 1, offset = 0;
  const char *regexes = NULL, *choices = NULL;
  struct gen g;
  memset(&g, 0, sizeof g);
  g.max_tokens = 160;
  g.nseeds = 2;
  for (int i = 4; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--every")) every = strtol(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--offset")) offset = strtol(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--seeds")) g.nseeds = (int)strtol(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--max-tokens")) g.max_tokens = (int)strtol(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--regexes")) regexes = argv[i + 1];
    else if (!strcmp(argv[i], "--choices")) choices = argv[i + 1];
  }
  if (every < 1) every = 1;
  char err[256];
  g.m = slm_model_load(argv[1], NULL, err, sizeof err);
  if (!g.m) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  struct slm_context_params cp = slm_context_default_params();
  cp.n_ctx = 2048;
  cp.n_threads = 1;
  g.c = slm_context_new(g.m, &cp);
  g.vi = slm_vocab_index_new(g.m);
  g.out = fopen(argv[3], "w");
  FILE *f = fopen(argv[2], "rb");
  if (!g.c || !g.vi || !g.out || !f) {
    fprintf(stderr, "setup failed\n");
    return 1;
  }
  size_t cap = 1 << 20;
  char *line = malloc(cap), *buf = malloc(cap);
  long idx = 0, compiled = 0;
  while (line && buf) {
    size_t n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF && ch != '\n') {
      if (n + 1 >= cap) {
        cap *= 2;
        line = realloc(line, cap);
        buf = realloc(buf, cap);
        if (!line || !buf) return 1;
      }
      line[n++] = (char)ch;
    }
    if (n == 0 && ch == EOF) break;
    if (n == 0 || idx++ % every != offset % every) continue;
    struct cn_arena a;
    cn_arena_init(&a, 0);
    struct cj_val *row = cj_parse(&a, line, n, 512, err, sizeof err);
    const struct cj_val *id = row ? cj_get(row, "id") : NULL, *sc = row ? cj_get(row, "schema") : NULL;
    if (id && sc) {
      size_t sl = cj_compact(line + sc->src_off, sc->src_len, buf);
      struct slm_constraint *c = compile(&g, SLM_CONSTRAINT_JSON_SCHEMA, buf, sl);
      if (c) {
        compiled++;
        for (int s = 0; s < g.nseeds; s++)
          run_one(&g, c, s, json_pack("{s:s,s:s}", "kind", "schema", "id", id->u.s));
        slm_constraint_free(c);
      }
    }
    cn_arena_free(&a);
  }
  fclose(f);
  /* regexes and choices, one per line */
  for (int which = 0; which < 2; which++) {
    const char *path = which ? choices : regexes;
    if (!path) continue;
    FILE *rf = fopen(path, "rb");
    if (!rf) {
      fprintf(stderr, "cannot open %s\n", path);
      return 1;
    }
    while (fgets(line, (int)cap, rf)) {
      size_t n = strlen(line);
      while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
      if (!n) continue;
      struct slm_constraint *c;
      if (which == 0) {
        c = compile(&g, SLM_CONSTRAINT_REGEX, line, n);
      } else {
        memcpy(buf, line, n + 1);
        for (size_t i = 0; i < n; i++)
          if (buf[i] == ',') buf[i] = 0;
        c = compile(&g, SLM_CONSTRAINT_CHOICE, buf, n + 1);
      }
      if (!c) {
        fprintf(stderr, "not compiled: %s\n", line);
        return 1;
      }
      for (int s = 0; s < g.nseeds; s++)
        run_one(&g, c, s, json_pack("{s:s,s:s}", "kind", which ? "choice" : "regex", which ? "choices" : "regex", line));
      slm_constraint_free(c);
    }
    fclose(rf);
  }
  fclose(g.out);
  fprintf(stderr, "gen_constrained: %ld schemas compiled, %ld generations, %d stuck, %ld skipped (the shortest "
          "text does not fit the context)\n", compiled, g.runs, g.stuck, g.too_long);
  free(line);
  free(buf);
  slm_vocab_index_free(g.vi);
  slm_context_free(g.c);
  slm_model_free(g.m);
  return g.stuck ? 1 : 0;
}
