/*
 * tools.c: `tiergate slm <tool>` dispatch and the argument helpers every tool shares (tools.h).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/slm.h"
#include "slm/tools/tools.h"

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *what;
} tools[] = {
  { "info", slm_tool_info, "architecture, shapes, tensor types, vocabulary and template of a GGUF file" },
  { "tokenize", slm_tool_tokenize, "text to token ids (also on vocabulary-only GGUF files)" },
  { "run", slm_tool_run, "generate from a prompt or token ids" },
  { "bench", slm_tool_bench, "prompt-processing and generation speed, like llama-bench" },
  { "mkmodel", slm_tool_mkmodel, "a GGUF with random weights at a real model's shape" },
  { "quantize", slm_tool_quantize, "convert an F32/F16/BF16 GGUF to another tensor type" },
  { "schema", slm_tool_schema, "judge JSON texts against a JSON Schema (check); constraint speed (bench)" },
};

static void usage(FILE *out) {
  fputs("usage: tiergate slm <tool> [options]     (tiergate slm <tool> --help for its options)\n\n"
        "tools:\n",
        out);
  for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++)
    fprintf(out, "  %-10s %s\n", tools[i].name, tools[i].what);
}

int slm_tool_main(int argc, char **argv) {
  if (argc < 1) {
    usage(stderr);
    return 2;
  }
  if (slm_args_help(argv[0]) || !strcmp(argv[0], "help")) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++)
    if (!strcmp(argv[0], tools[i].name)) return tools[i].fn(argc, argv);
  fprintf(stderr, "tiergate slm: unknown tool '%s'\n", argv[0]);
  usage(stderr);
  return 2;
}

/* ---------------------------------------------------------------- messages */

void slm_tool_errorf(const char *tool, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "tiergate slm %s: ", tool);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int slm_tool_usage_error(const char *tool, const char *usage_text, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "tiergate slm %s: ", tool);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  if (usage_text) fputs(usage_text, stderr);
  return 2;
}

const char *slm_tool_fmt_bytes(uint64_t n, char *buf, size_t cap) {
  if (n < 1024) snprintf(buf, cap, "%llu B", (unsigned long long)n);
  else if (n < 1024 * 1024) snprintf(buf, cap, "%.2f KiB", n / 1024.0);
  else if (n < 1024ull * 1024 * 1024) snprintf(buf, cap, "%.2f MiB", n / (1024.0 * 1024));
  else snprintf(buf, cap, "%.2f GiB", n / (1024.0 * 1024 * 1024));
  return buf;
}

/* ---------------------------------------------------------------- parsing */

int slm_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 0);
  if (errno || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int slm_parse_float(const char *s, double lo, double hi, double *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v) || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int slm_parse_int_list(const char *s, int32_t *out, int cap) {
  int n = 0;
  if (!s) return -1;
  while (*s) {
    while (*s == ' ') s++;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || errno || v < INT32_MIN || v > INT32_MAX || n >= cap) return -1;
    out[n++] = (int32_t)v;
    s = end;
    while (*s == ' ') s++;
    if (*s == ',') {
      s++;
      if (!*s) return -1;
    } else if (*s) {
      return -1;
    }
  }
  return n;
}

/* ---------------------------------------------------------------- cursor */

struct slm_args slm_args_init(const char *tool, int argc, char **argv) {
  struct slm_args a;
  memset(&a, 0, sizeof a);
  a.tool = tool;
  a.argc = argc;
  a.argv = argv;
  a.i = 1;
  return a;
}

const char *slm_args_next(struct slm_args *a) {
  a->flag = NULL;
  a->inline_val = NULL;
  if (a->i >= a->argc) return NULL;
  const char *arg = a->argv[a->i++];
  if (!a->dashdash && !strcmp(arg, "--")) {
    a->dashdash = true;
    if (a->i >= a->argc) return NULL;
    arg = a->argv[a->i++];
  }
  if (a->dashdash || arg[0] != '-' || !arg[1]) return arg;   /* positional ("-" is stdin) */
  const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
  if (eq && (size_t)(eq - arg) < sizeof a->flagbuf) {
    memcpy(a->flagbuf, arg, (size_t)(eq - arg));
    a->flagbuf[eq - arg] = 0;
    a->flag = a->flagbuf;
    a->inline_val = eq + 1;
    return a->flag;
  }
  a->flag = arg;
  return arg;
}

bool slm_args_positional(const struct slm_args *a, const char *arg) {
  (void)arg;
  return a->flag == NULL;
}

bool slm_args_is(const char *arg, const char *short_name, const char *long_name) {
  return (short_name && !strcmp(arg, short_name)) || (long_name && !strcmp(arg, long_name));
}

bool slm_args_help(const char *arg) { return slm_args_is(arg, "-h", "--help"); }

const char *slm_args_value(struct slm_args *a) {
  if (a->inline_val) return a->inline_val;
  if (a->i >= a->argc) {
    slm_tool_errorf(a->tool, "%s needs a value", a->flag ? a->flag : "option");
    return NULL;
  }
  return a->argv[a->i++];
}

int slm_args_int(struct slm_args *a, int64_t lo, int64_t hi, int64_t *out) {
  const char *flag = a->flag ? a->flag : "option";
  const char *v = slm_args_value(a);
  if (!v) return -1;
  if (slm_parse_int(v, lo, hi, out)) {
    slm_tool_errorf(a->tool, "%s: '%s' is not an integer in %lld..%lld", flag, v, (long long)lo,
                    (long long)hi);
    return -1;
  }
  return 0;
}

int slm_args_float(struct slm_args *a, double lo, double hi, double *out) {
  const char *flag = a->flag ? a->flag : "option";
  const char *v = slm_args_value(a);
  if (!v) return -1;
  if (slm_parse_float(v, lo, hi, out)) {
    slm_tool_errorf(a->tool, "%s: '%s' is not a number in %g..%g", flag, v, lo, hi);
    return -1;
  }
  return 0;
}

int slm_args_unknown(struct slm_args *a, const char *usage_text) {
  const char *arg = a->i > 0 && a->i <= a->argc ? a->argv[a->i - 1] : "?";
  if (a->flag) return slm_tool_usage_error(a->tool, usage_text, "unknown option '%s'", a->flag);
  return slm_tool_usage_error(a->tool, usage_text, "unexpected argument '%s'", arg);
}
