/*
 * bench.c: `tiergate slm bench`: prompt-processing and generation speed, measured the way
 * llama.cpp's llama-bench measures them, so the two can be put side by side on the same file.
 *
 *   ppN: N random tokens decoded as one batch from an empty cache (logits of the last one).
 *   tgN: N tokens decoded one at a time from an empty cache.
 *   ...@dD (-d D, llama-bench's --n-depth): the same after D random tokens already in the cache
 *   (prefilled untimed), so a decode is measured at the context depth a served request has.
 * Each test runs once to warm up (caches, page faults, thread wake-up), then REPS times; the
 * figure is tokens / wall time, mean and sample standard deviation over the repetitions.
 * -p, -n, -t and -d take comma-separated lists, like llama-bench.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "slm/internal.h"
#include "slm/slm.h"
#include "slm/tools/tools.h"

#define MAX_LIST 16
#define MAX_REPS 1000

static void usage(FILE *out) {
  fputs("usage: tiergate slm bench -m FILE [options]\n"
        "\n"
        "  -m, --model FILE        GGUF model\n"
        "  -p, --n-prompt N,...    prompt-processing tests (default 128; 0 = none)\n"
        "  -n, --n-gen N,...       generation tests (default 64; 0 = none)\n"
        "  -t, --threads N,...     thread counts (default: all online CPUs)\n"
        "  -d, --n-depth N,...     tokens already in the cache before each test (default 0)\n"
        "  -r, --repetitions N     repetitions per test (default 5)\n"
        "      --kv-type f16|f32   KV cache element type (default f16, as llama-bench)\n"
        "      --cpu LEVEL         highest kernel level: ref, avx2, avx512, vnni, bf16 (default: best)\n"
        "      --json              print a JSON array instead of a table\n"
        "  -h, --help\n",
        out);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_list(const char *s, long lo, long hi, long *out, int cap) {
  int n = 0;
  while (*s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || v < lo || v > hi || n >= cap) return -1;
    out[n++] = v;
    s = end;
    if (*s == ',') s++;
    else if (*s) return -1;
  }
  return n;
}

static int cpu_level(const char *s) {
  if (!strcmp(s, "ref")) return 0;
  if (!strcmp(s, "avx2")) return 1;
  if (!strcmp(s, "avx512")) return 2;
  if (!strcmp(s, "vnni")) return 3;
  if (!strcmp(s, "bf16")) return 4;
  return -1;
}

/* kB value of a "Key:" line of /proc/self/status, or -1 */
static long proc_status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, key, kl) && line[kl] == ':') {
      v = strtol(line + kl + 1, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

/* Bytes of weights one decode step reads: all of them, except that an untied token embedding is
 * only looked up (one row); a tied one is read in full by the output projection. */
static uint64_t decode_bytes(const struct slm_model *m) {
  uint64_t b = m->tensor_bytes;
  if (m->output.data != m->tok_embd.data) b -= (uint64_t)m->tok_embd.row_bytes * (uint64_t)(m->tok_embd.ne1 - 1);
  return b;
}

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static int32_t rand_token(int32_t nv) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (int32_t)((rng_state >> 33) % (uint64_t)nv);
}

/* One measurement: returns seconds, or a negative value on a decode error. */
static double run_once(struct slm_context *c, const struct slm_model *m, slm_token *toks,
                       int n_depth, int n_prompt, int n_gen) {
  int32_t nv = slm_n_vocab(m);
  slm_kv_clear(c);
  if (n_depth > 0) {   /* untimed: the context the test starts from */
    for (int i = 0; i < n_depth; i++) toks[i] = rand_token(nv);
    if (slm_add_bos(m) && slm_token_bos(m) >= 0) toks[0] = slm_token_bos(m);
    struct slm_batch b = slm_batch_one(toks, n_depth);
    if (slm_decode(c, &b) < 0) return -1;
  }
  double t0 = now_s();
  if (n_prompt > 0) {
    for (int i = 0; i < n_prompt; i++) toks[i] = rand_token(nv);
    if (!n_depth && slm_add_bos(m) && slm_token_bos(m) >= 0) toks[0] = slm_token_bos(m);
    struct slm_batch b = slm_batch_one(toks, n_prompt);
    if (slm_decode(c, &b) < 0) return -1;
  }
  slm_token t = slm_token_bos(m) >= 0 ? slm_token_bos(m) : 0;
  for (int i = 0; i < n_gen; i++) {
    struct slm_batch b = slm_batch_one(&t, 1);
    if (slm_decode(c, &b) < 0) return -1;
    t = rand_token(nv);
  }
  return now_s() - t0;
}

int slm_tool_bench(int argc, char **argv) {
  const char *model_path = NULL;
  long pl[MAX_LIST] = {128}, nl[MAX_LIST] = {64}, tl[MAX_LIST] = {0}, dl[MAX_LIST] = {0};
  int np = 1, nn = 1, nt = 1, nd = 1;
  long reps = 5;
  bool json = false;
  int cpu = 4;
  enum slm_kv_type kv = SLM_KV_F16;
  tl[0] = slm_context_default_params().n_threads;

  struct slm_args args = slm_args_init("bench", argc, argv);
  const char *arg, *v;
  int64_t iv;
  while ((arg = slm_args_next(&args))) {
    if (slm_args_help(arg)) {
      usage(stdout);
      return 0;
    } else if (slm_args_is(arg, "-m", "--model")) {
      if (!(model_path = slm_args_value(&args))) return 2;
    } else if (slm_args_is(arg, "-p", "--n-prompt") || slm_args_is(arg, "-n", "--n-gen") ||
               slm_args_is(arg, "-t", "--threads") || slm_args_is(arg, "-d", "--n-depth")) {
      const char *flag = args.flag;
      if (!(v = slm_args_value(&args))) return 2;
      bool thr = slm_args_is(flag, "-t", "--threads");
      long *dst = slm_args_is(flag, "-p", "--n-prompt") ? pl
                  : slm_args_is(flag, "-n", "--n-gen")  ? nl
                  : slm_args_is(flag, "-d", "--n-depth") ? dl
                                                         : tl;
      int cnt = parse_list(v, thr ? 1 : 0, thr ? 256 : 65536, dst, MAX_LIST);
      if (cnt <= 0)
        return slm_tool_usage_error("bench", NULL, "%s: '%s' is not a list of integers in %s", flag, v,
                                    thr ? "1..256" : "0..65536");
      if (dst == pl) np = cnt;
      else if (dst == nl) nn = cnt;
      else if (dst == dl) nd = cnt;
      else nt = cnt;
    } else if (slm_args_is(arg, "-r", "--repetitions")) {
      if (slm_args_int(&args, 1, MAX_REPS, &iv)) return 2;
      reps = (long)iv;
    } else if (slm_args_is(arg, NULL, "--kv-type")) {
      if (!(v = slm_args_value(&args))) return 2;
      if (!strcmp(v, "f16")) kv = SLM_KV_F16;
      else if (!strcmp(v, "f32")) kv = SLM_KV_F32;
      else return slm_tool_usage_error("bench", NULL, "--kv-type: '%s' is not f16 or f32", v);
    } else if (slm_args_is(arg, NULL, "--cpu")) {
      if (!(v = slm_args_value(&args))) return 2;
      if ((cpu = cpu_level(v)) < 0)
        return slm_tool_usage_error("bench", NULL, "--cpu: '%s' is not ref, avx2, avx512, vnni or bf16", v);
    } else if (slm_args_is(arg, NULL, "--json")) {
      json = true;
    } else {
      usage(stderr);
      return slm_args_unknown(&args, NULL);
    }
  }
  if (!model_path) {
    usage(stderr);
    return slm_tool_usage_error("bench", NULL, "-m FILE is required");
  }

  struct slm_model_params mp = slm_model_default_params();
  mp.cpu_max_level = cpu;
  char err[512];
  struct slm_model *m = slm_model_load(model_path, &mp, err, sizeof err);
  if (!m) {
    slm_tool_errorf("bench", "%s", err);
    return 1;
  }
  struct stat st;
  uint64_t file_bytes = stat(model_path, &st) == 0 ? (uint64_t)st.st_size : 0;
  const char *base = strrchr(model_path, '/');
  base = base ? base + 1 : model_path;
  long max_p = 1;
  for (int i = 0; i < np; i++) max_p = pl[i] > max_p ? pl[i] : max_p;
  for (int i = 0; i < nd; i++) max_p = dl[i] > max_p ? dl[i] : max_p;
  slm_token *toks = malloc(sizeof *toks * (size_t)max_p);
  double *samples = malloc(sizeof *samples * (size_t)reps);
  json_t *out = json_array();
  int rc = 0;
  if (!toks || !samples || !out) {
    slm_tool_errorf("bench", "out of memory");
    rc = 1;
    goto done;
  }
  if (!json) {
    printf("| model | size | threads | test | t/s |\n");
    printf("| --- | ---: | ---: | ---: | ---: |\n");
    fflush(stdout);
  }

  for (int kind = 0; kind < 2; kind++) {
    int cnt = kind == 0 ? np : nn;
    for (int ti = 0; ti < cnt; ti++) {
      int n_prompt = kind == 0 ? (int)pl[ti] : 0, n_gen = kind == 1 ? (int)nl[ti] : 0;
      if (n_prompt + n_gen == 0) continue;
      for (int di = 0; di < nd; di++)
      for (int th = 0; th < nt; th++) {
        int n_depth = (int)dl[di];
        struct slm_context_params cp = slm_context_default_params();
        cp.n_threads = (int)tl[th];
        cp.n_ctx = (uint32_t)(n_depth + n_prompt + n_gen);
        int nb = n_prompt > n_depth ? n_prompt : n_depth;
        cp.n_batch = (uint32_t)(nb > 0 ? nb : 1);
        cp.kv_type = kv;
        struct slm_context *c = slm_context_new(m, &cp);
        if (!c) {
          slm_tool_errorf("bench", "cannot create a context");
          rc = 1;
          goto done;
        }
        bool fail = run_once(c, m, toks, n_depth, n_prompt, n_gen > 0 ? 1 : 0) < 0;   /* warm-up */
        for (long r = 0; r < reps && !fail; r++) {
          double s = run_once(c, m, toks, n_depth, n_prompt, n_gen);
          fail = s < 0;
          samples[r] = (n_prompt + n_gen) / s;
        }
        if (fail) {
          slm_tool_errorf("bench", "%s", slm_errmsg(c));
          slm_context_free(c);
          rc = 1;
          goto done;
        }
        double mean = 0, var = 0;
        for (long r = 0; r < reps; r++) mean += samples[r];
        mean /= (double)reps;
        for (long r = 0; r < reps; r++) var += (samples[r] - mean) * (samples[r] - mean);
        double sd = reps > 1 ? sqrt(var / (double)(reps - 1)) : 0.0;
        char test[32];
        int tl_ = snprintf(test, sizeof test, "%s%d", n_prompt ? "pp" : "tg", n_prompt ? n_prompt : n_gen);
        if (n_depth) snprintf(test + tl_, sizeof test - (size_t)tl_, "@d%d", n_depth);
        if (json) {
          json_t *sa = json_array();
          for (long r = 0; r < reps; r++) json_array_append_new(sa, json_real(samples[r]));
          json_array_append_new(
              out, json_pack("{s:s,s:s,s:I,s:I,s:I,s:i,s:i,s:i,s:i,s:s,s:f,s:f,s:o,s:I,s:I,s:I}",
                             "model_filename", base, "arch", slm_model_arch(m), "model_size",
                             (json_int_t)slm_model_size_bytes(m), "file_size", (json_int_t)file_bytes,
                             "weight_bytes_per_token", (json_int_t)decode_bytes(m),
                             "n_threads", slm_context_n_threads(c), "n_prompt", n_prompt, "n_gen",
                             n_gen, "n_depth", n_depth, "test", test, "avg_ts", mean, "stddev_ts", sd, "samples_ts", sa,
                             "kv_bytes", (json_int_t)slm_context_kv_bytes(c), "vm_rss_kib",
                             (json_int_t)proc_status_kb("VmRSS"), "vm_hwm_kib",
                             (json_int_t)proc_status_kb("VmHWM")));
        } else {
          printf("| %s | %.2f MiB | %d | %s | %.2f ± %.2f |\n", base,
                 (double)slm_model_size_bytes(m) / (1024.0 * 1024.0), slm_context_n_threads(c),
                 test, mean, sd);
          fflush(stdout);
        }
        slm_context_free(c);
      }
    }
  }
  if (json) {
    char *s = json_dumps(out, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    if (s) puts(s);
    free(s);
  }
done:
  json_decref(out);
  free(samples);
  free(toks);
  slm_model_free(m);
  return rc;
}
