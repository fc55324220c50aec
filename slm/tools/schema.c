/*
 * schema.c: `tiergate slm schema check|bench`: JSON Schema constraints from the command line.
 *
 *   slm schema check SCHEMA.json [--compact] [--relaxed] [--nullable]
 *       reads JSON texts from stdin, one per line, and prints "accept" or "reject" for each,
 *       judged byte by byte by the matcher the sampler uses (accepted: every byte allowed and
 *       the constraint can end after the last). A schema that cannot be compiled prints
 *       "unsupported: KEYWORD at POINTER (why)" on stderr and exits 3.
 *   slm schema bench --vocab FILE [--suite FILE.jsonl] [--limit N] [--json]
 *       compile time per schema and mask time per token over a MaskBench-style suite (see
 *       bench_main below).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slm/slm.h"
#include "slm/tools/tools.h"

#define MAX_TEXT (64u << 20)

static const char *CHECK_USAGE =
    "usage: tiergate slm schema check SCHEMA.json [--compact] [--relaxed] [--nullable]\n"
    "  reads JSON texts from stdin, one per line; prints accept or reject for each\n"
    "  --compact    no whitespace between tokens (the generation mode)\n"
    "  --relaxed    ignore keywords that cannot be expressed (listed on stderr)\n"
    "  --nullable   OpenAPI \"nullable\": true allows null\n"
    "exit: 0 judged, 1 I/O error, 2 usage, 3 schema not supported\n";

/* Reads the whole file (or stdin for "-") into a malloc'd buffer. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (n == cap) {
      if (cap >= MAX_TEXT) {
        free(buf);
        buf = NULL;
        break;
      }
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    size_t k = fread(buf + n, 1, cap - n, f);
    n += k;
    if (k == 0) break;
  }
  if (f != stdin) fclose(f);
  *len = n;
  return buf;
}

static void print_error(const struct slm_constraint_error *ce) {
  fprintf(stderr, "unsupported: %s at %s (%s)\n", ce->keyword[0] ? ce->keyword : "schema", ce->pointer,
          ce->message);
}

static int check_main(int argc, char **argv) {
  struct slm_args a = slm_args_init("schema check", argc, argv);
  const char *path = NULL, *arg;
  struct slm_constraint_params p = slm_constraint_default_params();
  while ((arg = slm_args_next(&a))) {
    if (slm_args_help(arg)) {
      fputs(CHECK_USAGE, stdout);
      return 0;
    } else if (slm_args_is(arg, NULL, "--compact")) {
      p.whitespace = SLM_JSON_WS_COMPACT;
    } else if (slm_args_is(arg, NULL, "--relaxed")) {
      p.relaxed = true;
    } else if (slm_args_is(arg, NULL, "--nullable")) {
      p.openapi_nullable = true;
    } else if (slm_args_positional(&a, arg) && !path) {
      path = arg;
    } else {
      return slm_args_unknown(&a, CHECK_USAGE);
    }
  }
  if (!path) return slm_tool_usage_error("schema check", CHECK_USAGE, "SCHEMA.json is required");
  size_t len;
  char *text = read_file(path, &len);
  if (!text) {
    slm_tool_errorf("schema check", "cannot read %s: %s", path, strerror(errno ? errno : EIO));
    return 1;
  }
  struct slm_constraint_error ce;
  p.mask_cache_bytes = 0;
  struct slm_constraint *c = slm_constraint_new(NULL, SLM_CONSTRAINT_JSON_SCHEMA, text, len, &p, &ce);
  free(text);
  if (!c) {
    print_error(&ce);
    return 3;
  }
  if (slm_constraint_relaxed_keywords(c)[0])
    fprintf(stderr, "relaxed: ignored %s\n", slm_constraint_relaxed_keywords(c));
  struct slm_matcher *mt = slm_matcher_new(c);
  if (!mt) {
    slm_constraint_free(c);
    slm_tool_errorf("schema check", "out of memory");
    return 1;
  }
  size_t cap = 1 << 16;
  char *line = malloc(cap);
  int rc = 0;
  for (;;) {
    size_t n = 0;
    int ch = 0;
    bool got = false;
    while ((ch = getchar()) != EOF) {
      got = true;
      if (ch == '\n') break;
      if (n + 1 >= cap) {
        char *nl = cap < MAX_TEXT ? realloc(line, cap * 2) : NULL;
        if (!nl) {
          slm_tool_errorf("schema check", "line too long");
          rc = 1;
          goto out;
        }
        line = nl;
        cap *= 2;
      }
      line[n++] = (char)ch;
    }
    if (!got) break;
    slm_matcher_reset(mt);
    bool ok = slm_matcher_accept_bytes(mt, line, n) == 0 && slm_matcher_can_end(mt);
    puts(ok ? "accept" : "reject");
    if (ch == EOF) break;
  }
out:
  free(line);
  slm_matcher_free(mt);
  slm_constraint_free(c);
  return rc;
}

int slm_tool_schema(int argc, char **argv) {
  if (argc < 2 || slm_args_help(argv[1])) {
    fputs("usage: tiergate slm schema check|bench ...   (--help after either for its options)\n",
          argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "check")) return check_main(argc - 1, argv + 1);
  if (!strcmp(argv[1], "bench")) return slm_schema_bench_main(argc - 1, argv + 1);
  fprintf(stderr, "tiergate slm schema: unknown command '%s' (check or bench)\n", argv[1]);
  return 2;
}
