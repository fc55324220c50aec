/*
 * test_schema_suite.c: every schema and instance of ../shared/data/jsonschema/maskbench-dev.jsonl
 * through the constraint matcher (the same byte-level judgement `slm schema check` makes).
 *
 * A schema passes when it compiles and every instance (its text compacted: whitespace outside
 * strings removed, members in the given order) is judged as the suite says. The test fails if
 * fewer than FLOOR schemas pass, or if any compiled schema accepts an instance marked invalid:
 * a sound compiler may refuse a schema, never accept what it forbids.
 *
 *   test_schema_suite [--floor N] [--shard K/N] [--verbose] [--only ID] [--errors] [--slow MS] [FILE]
 * --verbose lists failing schemas, --errors counts refusals by keyword, --slow lists schemas
 * that take longer than MS milliseconds to compile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "slm/constrain/cn.h"
#include "slm/slm.h"

/* Raise as the compiler improves (never lower it to make a change pass): passing schemas of the
 * whole suite (SUITE_SCHEMAS of them). A shard (--shard K/N: every N-th schema from the K-th)
 * must pass its share of it. */
#define FLOOR 5650
#define SUITE_SCHEMAS 5842

struct kwcount { char kw[64]; int n; };

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  long floor = FLOOR;
  bool verbose = false, errors = false;
  double slow = 0;
  const char *only = NULL, *file = NULL;
  long shard = 0, nshards = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--floor") && i + 1 < argc) floor = strtol(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--verbose")) verbose = true;
    else if (!strcmp(argv[i], "--errors")) errors = true;
    else if (!strcmp(argv[i], "--slow") && i + 1 < argc) slow = strtod(argv[++i], NULL) / 1e3;
    else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!strcmp(argv[i], "--shard") && i + 1 < argc) {
      if (sscanf(argv[++i], "%ld/%ld", &shard, &nshards) != 2 || nshards < 1 || shard < 0 || shard >= nshards) {
        fprintf(stderr, "--shard K/N\n");
        return 2;
      }
    }
    else file = argv[i];
  }
  char path[1024];
  if (!file) {
    const char *sh = getenv("TIERGATE_SHARED_DIR");
    snprintf(path, sizeof path, "%s/data/jsonschema/maskbench-dev.jsonl", sh ? sh : "../shared");
    file = path;
  }
  FILE *f = fopen(file, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", file);
    return 1;
  }
  struct slm_constraint_params p = slm_constraint_default_params();
  p.mask_cache_bytes = 0;
  size_t cap = 1 << 20;
  char *line = malloc(cap), *buf = malloc(cap);
  long lineno = 0;
  int schemas = 0, compiled = 0, passed = 0, unsound = 0, tests = 0, wrong_valid = 0, wrong_invalid = 0;
  struct kwcount kws[64];
  int nkw = 0;
  double t0 = now_s();
  double *ctimes = malloc(8000 * sizeof *ctimes);
  int nct = 0;
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
    if (n == 0) continue;
    struct cn_arena a;
    cn_arena_init(&a, 0);
    char err[200];
    struct cj_val *row = cj_parse(&a, line, n, 512, err, sizeof err);
    CHECK_MSG(row != NULL, "suite line %d does not parse: %s", schemas + 1, err);
    if (!row) {
      cn_arena_free(&a);
      continue;
    }
    const struct cj_val *id = cj_get(row, "id"), *sc = cj_get(row, "schema"), *ts = cj_get(row, "tests");
    if (!id || !sc || !ts || ts->type != CJ_ARRAY) {
      CHECK_MSG(0, "suite line %d lacks id/schema/tests", schemas + 1);
      cn_arena_free(&a);
      continue;
    }
    if ((only && strcmp(only, id->u.s)) || (lineno++ % nshards) != shard) {
      cn_arena_free(&a);
      continue;
    }
    schemas++;
    size_t sl = cj_compact(line + sc->src_off, sc->src_len, buf);
    struct slm_constraint_error ce;
    if (slow > 0) fprintf(stderr, "compiling %s\n", id->u.s);
    double tc = now_s();
    struct slm_constraint *c = slm_constraint_new(NULL, SLM_CONSTRAINT_JSON_SCHEMA, buf, sl, &p, &ce);
    tc = now_s() - tc;
    if (c && ctimes && nct < 8000) ctimes[nct++] = tc * 1e3;
    if (slow > 0 && tc > slow)
      printf("SLOW %-60s %.1f ms, %u states\n", id->u.s, tc * 1e3, c ? slm_constraint_n_states(c) : 0);
    if (!c) {
      if (verbose) printf("%-60s unsupported: %s at %s (%s)\n", id->u.s, ce.keyword, ce.pointer, ce.message);
      int k;
      for (k = 0; k < nkw && strcmp(kws[k].kw, ce.keyword); k++) {}
      if (k == nkw && nkw < 64) kws[nkw].n = 0, snprintf(kws[nkw++].kw, sizeof kws[0].kw, "%s", ce.keyword);
      if (k < 64) kws[k].n++;
      cn_arena_free(&a);
      continue;
    }
    compiled++;
    struct slm_matcher *mt = slm_matcher_new(c);
    bool all_right = true, bad = false;
    for (uint32_t i = 0; i < ts->len; i++) {
      const struct cj_val *t = &ts->u.items[i], *valid = cj_get(t, "valid"), *data = cj_get(t, "data");
      if (!valid || !data) continue;
      tests++;
      size_t dl = cj_compact(line + data->src_off, data->src_len, buf);
      slm_matcher_reset(mt);
      bool acc = slm_matcher_accept_bytes(mt, buf, dl) == 0 && slm_matcher_can_end(mt);
      bool want = valid->type == CJ_TRUE;
      if (acc != want) {
        all_right = false;
        if (want) wrong_valid++;
        else wrong_invalid++, bad = true;
        if (verbose) printf("%-60s %s instance %u: %.200s\n", id->u.s, want ? "REJECTS valid" : "ACCEPTS INVALID", i, buf);
      }
    }
    if (bad) {
      unsound++;
      printf("UNSOUND: %s accepts an invalid instance\n", id->u.s);
    }
    if (all_right) passed++;
    slm_matcher_free(mt);
    slm_constraint_free(c);
    cn_arena_free(&a);
  }
  fclose(f);
  free(line);
  free(buf);
  double dt = now_s() - t0;
  printf("schemas %d, compiled %d, passed %d (%.1f%%), unsound %d; tests %d: %d valid rejected, "
         "%d invalid accepted; %.2f s\n",
         schemas, compiled, passed, schemas ? 100.0 * passed / schemas : 0.0, unsound, tests,
         wrong_valid, wrong_invalid, dt);
  if (ctimes && nct) {
    qsort(ctimes, (size_t)nct, sizeof *ctimes, cmp_dbl);
    printf("compile ms: p50 %.3f p90 %.3f p99 %.3f max %.1f\n", ctimes[nct / 2], ctimes[nct * 9 / 10],
           ctimes[nct * 99 / 100], ctimes[nct - 1]);
  }
  free(ctimes);
  if (errors)
    for (int k = 0; k < nkw; k++) printf("  refused %-24s %d\n", kws[k].kw, kws[k].n);
  CHECK_EQ_INT(unsound, 0);
  if (nshards > 1) floor = floor * schemas / SUITE_SCHEMAS;
  if (!only) CHECK_MSG(passed >= floor, "%d schemas pass, below the floor of %ld", passed, floor);
  return check_done();
}
