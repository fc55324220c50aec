/*
 * bench_tokenizer.c: tokenizer speed on a few KB of English text (not a test: it prints numbers).
 *
 *   build/tests/bench/bench_tokenizer [SHARED_DIR] [REPS]
 *
 * For each vocabulary in ../shared/vocab: load time, then REPS tokenize calls (no BOS, specials
 * parsed, as the router does) over the first 4 KiB of ../shared/DESIGN.md (English prose with some
 * Markdown) and over 4 KiB of user-style utterances from ../shared/data/intent/clinc150_test.jsonl;
 * prints microseconds per call, tokens/s and MB/s, and a detokenize round. Times are the calling
 * thread's CPU time (CLOCK_THREAD_CPUTIME_ID), best of 10 rounds, so that other load on a shared
 * machine (time spent descheduled) does not count; cache contention still can.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slm/gguf.h"
#include "slm/internal.h"
#include "slm/vocab.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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

/* Cuts LEN back to a UTF-8 character boundary at most MAX. */
static size_t cut_utf8(const char *s, size_t len, size_t max) {
  if (len <= max) return len;
  while (max && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
  return max;
}

/* "text" fields of a JSONL file, joined with spaces, up to MAX bytes. */
static char *utterances(const char *path, size_t max, size_t *len) {
  size_t n;
  char *all = read_all(path, &n);
  if (!all) return NULL;
  char *out = malloc(max + 1);
  size_t k = 0;
  for (char *p = strstr(all, "\"text\": \""); p && k < max; p = strstr(p, "\"text\": \"")) {
    p += 9;
    char *q = strchr(p, '"');
    if (!q) break;
    size_t m = (size_t)(q - p);
    if (k + m + 1 > max) break;
    if (k) out[k++] = ' ';
    memcpy(out + k, p, m);
    k += m;
    p = q;
  }
  out[k] = 0;
  *len = k;
  free(all);
  return out;
}

static void bench(const char *shared, const char *name, const char *label, const char *text,
                  size_t len, int reps) {
  char path[1024], err[256];
  snprintf(path, sizeof path, "%s/vocab/%s", shared, name);
  struct slm_gguf_file *f;
  if (slm_gguf_open(path, &f, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  struct slm_vocab *v;
  double t0 = now_s();
  if (slm_vocab_load(f, &v, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    slm_gguf_close(f);
    return;
  }
  double t_load = now_s() - t0;
  slm_token *toks = malloc((len + 16) * sizeof *toks);
  int32_t n = slm_vocab_tokenize(v, text, len, toks, (int32_t)len + 16, false, true);
  double best = 1e9;
  for (int round = 0; round < 10; round++) {
    t0 = now_s();
    for (int r = 0; r < reps; r++) slm_vocab_tokenize(v, text, len, toks, (int32_t)len + 16, false, true);
    double dt = (now_s() - t0) / reps;
    if (dt < best) best = dt;
  }
  char *back = malloc(len * 4 + 64);
  double best_d = 1e9;
  for (int round = 0; round < 10; round++) {
    t0 = now_s();
    for (int r = 0; r < reps; r++) slm_vocab_detokenize(v, toks, n, back, (int32_t)len * 4 + 64, false, false);
    double dt = (now_s() - t0) / reps;
    if (dt < best_d) best_d = dt;
  }
  printf("%-48s %-9s %5zu B %5d tok  load %6.1f ms  tokenize %7.1f us/call %6.2f Mtok/s %6.1f MB/s"
         "  detok %5.1f us\n",
         name, label, len, n, t_load * 1e3, best * 1e6, n / best / 1e6, len / best / 1e6,
         best_d * 1e6);
  free(back);
  free(toks);
  slm_vocab_free(v);
  slm_gguf_close(f);
}

int main(int argc, char **argv) {
  const char *shared = argc > 1 ? argv[1] : getenv("TIERGATE_SHARED_DIR");
  if (!shared) shared = "../shared";
  int reps = argc > 2 ? atoi(argv[2]) : 200;
  if (reps < 1) reps = 1;
  char path[1024];
  size_t n1, n2;
  snprintf(path, sizeof path, "%s/DESIGN.md", shared);
  char *prose = read_all(path, &n1);
  snprintf(path, sizeof path, "%s/data/intent/clinc150_test.jsonl", shared);
  char *utt = utterances(path, 4096, &n2);
  if (!prose || !utt) {
    fprintf(stderr, "bench_tokenizer: cannot read %s/DESIGN.md or the clinc150 data\n", shared);
    return 1;
  }
  n1 = cut_utf8(prose, n1, 4096);
  static const char *const vocabs[] = {
      "ggml-vocab-qwen2-from-qwen3-tokenizer.gguf", "ggml-vocab-llama-bpe-from-llama3-tokenizer.gguf",
      "ggml-vocab-gpt-2.gguf", "vocab-smollm2-synthetic.gguf", "ggml-vocab-llama-spm.gguf",
      "ggml-vocab-phi-3.gguf", NULL};
  for (int i = 0; vocabs[i]; i++) {
    bench(shared, vocabs[i], "prose", prose, n1, reps);
    bench(shared, vocabs[i], "utterance", utt, n2, reps);
  }
  free(prose);
  free(utt);
  return 0;
}
