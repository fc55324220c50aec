/*
 * schema_bench.c: `tiergate slm schema bench`: how fast constraints compile and how fast their
 * token masks are, MaskBench-style.
 *
 *   slm schema bench --vocab FILE [--suite FILE.jsonl] [--every N] [--limit N] [--compact]
 *                    [--json]
 *
 * For each schema of the suite (default ../shared/data/jsonschema/maskbench-dev.jsonl, or the
 * directory in TIERGATE_SHARED_DIR): compile it against the vocabulary (timed), judge every
 * instance byte by byte as `slm schema check` does (a schema "passes" when all are judged as the
 * suite says), then tokenize each valid instance and, at every token position, time the full mask
 * (slm_matcher_fill_mask) before advancing over the token. Each schema starts with an empty mask
 * cache, so first visits of states are in the numbers. One thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slm/constrain/cn.h"
#include "slm/slm.h"
#include "slm/tools/tools.h"

static const char *BENCH_USAGE =
    "usage: tiergate slm schema bench --vocab FILE [--suite FILE.jsonl] [--every N] [--limit N]\n"
    "                                 [--compact] [--json]\n"
    "  --vocab FILE   a GGUF model or vocabulary (../shared/vocab/*.gguf)\n"
    "  --suite FILE   MaskBench-style JSONL: {\"id\",\"schema\",\"tests\":[{\"valid\",\"data\"}]}\n"
    "                 (default: $TIERGATE_SHARED_DIR/data/jsonschema/maskbench-dev.jsonl)\n"
    "  --every N      every N-th schema only (default 1)\n"
    "  --limit N      at most N schemas\n"
    "  --compact      no whitespace in the grammar (instances are compact either way)\n"
    "  --json         one JSON object instead of text\n";

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

struct series {
  double *v;
  size_t n, cap;
};

static void add(struct series *s, double x) {
  if (cn_grow(&s->v, &s->cap, s->n + 1, sizeof *s->v) == 0) s->v[s->n++] = x;
}

static double pct(struct series *s, double q) {
  if (!s->n) return 0;
  size_t i = (size_t)(q * (double)(s->n - 1) + 0.5);
  return s->v[i];
}

int slm_schema_bench_main(int argc, char **argv) {
  struct slm_args a = slm_args_init("schema bench", argc, argv);
  const char *vocab = NULL, *suite = NULL, *arg;
  int64_t every = 1, limit = INT64_MAX;
  bool json = false, compact = false;
  while ((arg = slm_args_next(&a))) {
    if (slm_args_help(arg)) {
      fputs(BENCH_USAGE, stdout);
      return 0;
    } else if (slm_args_is(arg, NULL, "--vocab")) {
      if (!(vocab = slm_args_value(&a))) return 2;
    } else if (slm_args_is(arg, NULL, "--suite")) {
      if (!(suite = slm_args_value(&a))) return 2;
    } else if (slm_args_is(arg, NULL, "--every")) {
      if (slm_args_int(&a, 1, 1000000, &every)) return 2;
    } else if (slm_args_is(arg, NULL, "--limit")) {
      if (slm_args_int(&a, 1, INT64_MAX, &limit)) return 2;
    } else if (slm_args_is(arg, NULL, "--compact")) {
      compact = true;
    } else if (slm_args_is(arg, NULL, "--json")) {
      json = true;
    } else {
      return slm_args_unknown(&a, BENCH_USAGE);
    }
  }
  if (!vocab) return slm_tool_usage_error("schema bench", BENCH_USAGE, "--vocab FILE is required");
  char defpath[1024];
  if (!suite) {
    const char *sh = getenv("TIERGATE_SHARED_DIR");
    snprintf(defpath, sizeof defpath, "%s/data/jsonschema/maskbench-dev.jsonl", sh ? sh : "../shared");
    suite = defpath;
  }
  struct slm_model_params mp = slm_model_default_params();
  mp.vocab_only = true;
  char err[512];
  double t0 = now_us();
  struct slm_model *m = slm_model_load(vocab, &mp, err, sizeof err);
  if (!m) {
    /* a full model file works too */
    mp.vocab_only = false;
    m = slm_model_load(vocab, &mp, err, sizeof err);
  }
  if (!m) {
    slm_tool_errorf("schema bench", "%s", err);
    return 1;
  }
  double t_load = (now_us() - t0) / 1e3;
  t0 = now_us();
  struct slm_vocab_index *vi = slm_vocab_index_new(m);
  double t_index = (now_us() - t0) / 1e3;
  FILE *f = fopen(suite, "rb");
  if (!vi || !f) {
    slm_tool_errorf("schema bench", "cannot open %s or build the vocabulary index", suite);
    if (f) fclose(f);
    slm_vocab_index_free(vi);
    slm_model_free(m);
    return 1;
  }
  int32_t nv = slm_n_vocab(m);
  uint32_t *bits = malloc(((size_t)nv + 31) / 32 * sizeof *bits);
  slm_token *toks = malloc(sizeof *toks * (1 << 20));
  size_t cap = 1 << 20;
  char *line = malloc(cap), *buf = malloc(cap);
  struct series compile_ms = {0}, mask_us = {0};
  long schemas = 0, compiled = 0, passed = 0, unsound = 0, instances = 0, tok_refused = 0, idx = 0;
  struct slm_constraint_params p = slm_constraint_default_params();
  if (compact) p.whitespace = SLM_JSON_WS_COMPACT;
  while (bits && toks && line && buf && schemas < limit) {
    size_t n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF && ch != '\n') {
      if (n + 1 >= cap) {
        char *nl = realloc(line, cap * 2), *nb = nl ? realloc(buf, cap * 2) : NULL;
        if (!nl || !nb) {
          free(nl ? nl : line);
          line = NULL;
          break;
        }
        line = nl;
        buf = nb;
        cap *= 2;
      }
      line[n++] = (char)ch;
    }
    if (!line || (n == 0 && ch == EOF)) break;
    if (n == 0 || idx++ % every) continue;
    struct cn_arena ar;
    cn_arena_init(&ar, 0);
    struct cj_val *row = cj_parse(&ar, line, n, 512, err, sizeof err);
    const struct cj_val *sc = row ? cj_get(row, "schema") : NULL, *ts = row ? cj_get(row, "tests") : NULL;
    if (!sc || !ts || ts->type != CJ_ARRAY) {
      cn_arena_free(&ar);
      continue;
    }
    schemas++;
    size_t sl = cj_compact(line + sc->src_off, sc->src_len, buf);
    struct slm_constraint_error ce;
    double tc = now_us();
    struct slm_constraint *c = slm_constraint_new(vi, SLM_CONSTRAINT_JSON_SCHEMA, buf, sl, &p, &ce);
    tc = now_us() - tc;
    if (!c) {
      cn_arena_free(&ar);
      continue;
    }
    compiled++;
    add(&compile_ms, tc / 1e3);
    struct slm_matcher *mt = slm_matcher_new(c);
    bool right = mt != NULL, bad = false;
    for (uint32_t i = 0; mt && i < ts->len; i++) {
      const struct cj_val *t = &ts->u.items[i], *valid = cj_get(t, "valid"), *data = cj_get(t, "data");
      if (!valid || !data) continue;
      size_t dl = cj_compact(line + data->src_off, data->src_len, buf);
      slm_matcher_reset(mt);
      bool acc = slm_matcher_accept_bytes(mt, buf, dl) == 0 && slm_matcher_can_end(mt);
      bool want = valid->type == CJ_TRUE;
      if (acc != want) right = false;
      if (acc && !want) bad = true;
      if (!want || !acc) continue;
      /* masks along the instance's tokens */
      instances++;
      int32_t nt = slm_tokenize(m, buf, dl, toks, 1 << 20, false, false);
      slm_matcher_reset(mt);
      for (int32_t k = 0; k < nt; k++) {
        double tm = now_us();
        int32_t na = slm_matcher_fill_mask(mt, bits);
        tm = now_us() - tm;
        add(&mask_us, tm);
        if (getenv("CN_SLOW") && tm > atof(getenv("CN_SLOW"))) {
          char pre[200];
          int32_t pl = slm_detokenize(m, toks, k, pre, sizeof pre - 1, false, false);
          pre[pl > 0 && pl < (int32_t)sizeof pre ? pl : 0] = 0;
          fprintf(stderr, "slow mask %.0f us (%d allowed) after: %s\n", tm, na, pre);
        }
        if (na <= 0 || slm_matcher_accept_token(mt, toks[k])) {
          tok_refused++;   /* a tokenization the grammar's byte path does not follow */
          break;
        }
      }
    }
    passed += right;
    unsound += bad;
    slm_matcher_free(mt);
    slm_constraint_free(c);
    cn_arena_free(&ar);
  }
  fclose(f);
  if (compile_ms.n) qsort(compile_ms.v, compile_ms.n, sizeof *compile_ms.v, cmp_dbl);
  if (mask_us.n) qsort(mask_us.v, mask_us.n, sizeof *mask_us.v, cmp_dbl);
  double mean = 0;
  for (size_t i = 0; i < mask_us.n; i++) mean += mask_us.v[i];
  if (mask_us.n) mean /= (double)mask_us.n;
  if (json) {
    printf("{\"vocab\":\"%s\",\"n_vocab\":%d,\"load_ms\":%.1f,\"index_ms\":%.1f,\"schemas\":%ld,"
           "\"compiled\":%ld,\"passed\":%ld,\"unsound\":%ld,\"compile_ms\":{\"p50\":%.3f,\"p99\":%.3f,"
           "\"max\":%.1f},\"instances\":%ld,\"tokens\":%zu,\"mask_us\":{\"mean\":%.1f,\"p50\":%.1f,"
           "\"p99\":%.1f,\"max\":%.1f},\"tokenizations_refused\":%ld}\n",
           vocab, nv, t_load, t_index, schemas, compiled, passed, unsound, pct(&compile_ms, 0.5),
           pct(&compile_ms, 0.99), compile_ms.n ? compile_ms.v[compile_ms.n - 1] : 0.0, instances,
           mask_us.n, mean, pct(&mask_us, 0.5), pct(&mask_us, 0.99), mask_us.n ? mask_us.v[mask_us.n - 1] : 0.0,
           tok_refused);
  } else {
    printf("vocab %s: %d tokens (load %.1f ms, index %.1f ms)\n", vocab, nv, t_load, t_index);
    printf("schemas %ld, compiled %ld, passed %ld (%.1f%%), unsound %ld\n", schemas, compiled, passed,
           schemas ? 100.0 * (double)passed / (double)schemas : 0.0, unsound);
    printf("compile ms: p50 %.3f  p99 %.3f  max %.1f\n", pct(&compile_ms, 0.5), pct(&compile_ms, 0.99),
           compile_ms.n ? compile_ms.v[compile_ms.n - 1] : 0.0);
    printf("mask us per token (%zu tokens of %ld valid instances): mean %.1f  p50 %.1f  p99 %.1f  max %.1f\n",
           mask_us.n, instances, mean, pct(&mask_us, 0.5), pct(&mask_us, 0.99),
           mask_us.n ? mask_us.v[mask_us.n - 1] : 0.0);
    if (tok_refused)
      printf("(%ld instances stopped early: their tokenization leaves the grammar's byte path)\n", tok_refused);
  }
  free(compile_ms.v);
  free(mask_us.v);
  free(bits);
  free(toks);
  free(line);
  free(buf);
  slm_vocab_index_free(vi);
  slm_model_free(m);
  return 0;
}
