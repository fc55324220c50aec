/*
 * test_quant_files.c: slm_quantize_row writes the bytes llama.cpp writes.
 *
 * The tiny reference models in ../shared/models were made by llama.cpp's quantize from the same
 * random F32 weights (checked here: same tensor names and shapes as tiny-*-F32.gguf). For every
 * tensor of a quantized (or F16/BF16) file, each row of the F32 tensor is quantized with our
 * reference quantizer to the file's type and compared byte for byte. The K_M files mix types
 * (Q4_K + Q6_K, Q5_K + Q6_K): each tensor is compared in its own type. Every row must match.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "slm/gguf.h"
#include "slm/kernels/kernels.h"

struct tally { long rows, rows_eq, tensors; };
static struct tally per_type[SLM_TYPE_COUNT];

static int same_name(struct slm_gguf_str a, struct slm_gguf_str b) { return a.n == b.n && memcmp(a.p, b.p, a.n) == 0; }

static void compare_file(const char *f32_name, const char *q_name) {
  char err[256];
  struct slm_gguf_file *ff = NULL, *fq = NULL;
  int rc = slm_gguf_open(check_shared_path(f32_name), &ff, err, sizeof err);
  CHECK_MSG(rc == 0, "%s: %s", f32_name, err);
  rc = slm_gguf_open(check_shared_path(q_name), &fq, err, sizeof err);
  CHECK_MSG(rc == 0, "%s: %s", q_name, err);
  if (!ff || !fq) {
    slm_gguf_close(ff);
    slm_gguf_close(fq);
    return;
  }
  CHECK_EQ_U64(slm_gguf_n_tensors(fq), slm_gguf_n_tensors(ff));
  long rows = 0, eq = 0;
  for (uint64_t i = 0; i < slm_gguf_n_tensors(fq); i++) {
    const struct slm_gguf_tensor *tq = slm_gguf_tensor_at(fq, i), *tf = NULL;
    for (uint64_t j = 0; j < slm_gguf_n_tensors(ff); j++)
      if (same_name(slm_gguf_tensor_at(ff, j)->name, tq->name)) tf = slm_gguf_tensor_at(ff, j);
    CHECK_MSG(tf != NULL, "%s: tensor %.*s missing from %s", q_name, (int)tq->name.n, tq->name.p, f32_name);
    if (!tf) continue;
    CHECK_MSG(tf->type == SLM_TYPE_F32, "%.*s is not F32 in %s", (int)tf->name.n, tf->name.p, f32_name);
    int same_shape = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) same_shape &= tf->ne[d] == tq->ne[d];
    CHECK_MSG(same_shape, "%.*s: shapes differ", (int)tq->name.n, tq->name.p);
    if (tq->type == SLM_TYPE_F32 || !same_shape || tf->type != SLM_TYPE_F32) continue;
    const int64_t n = tq->ne[0], nrows = tq->ne[1] * tq->ne[2] * tq->ne[3];
    const size_t rs = slm_row_size(tq->type, n);
    uint8_t *buf = malloc(rs);
    long teq = 0;
    for (int64_t r = 0; r < nrows; r++) {
      slm_quantize_row(tq->type, (const float *)tf->data + r * n, buf, n);
      teq += memcmp(buf, (const uint8_t *)tq->data + r * rs, rs) == 0;
    }
    free(buf);
    CHECK_MSG(teq == nrows, "%s %.*s (%s): %ld of %lld rows match", q_name, (int)tq->name.n, tq->name.p,
              slm_type_name(tq->type), teq, (long long)nrows);
    per_type[tq->type].rows += nrows;
    per_type[tq->type].rows_eq += teq;
    per_type[tq->type].tensors++;
    rows += nrows;
    eq += teq;
  }
  printf("%-30s %6ld of %6ld rows byte-identical\n", q_name, eq, rows);
  slm_gguf_close(ff);
  slm_gguf_close(fq);
}

int main(void) {
  static const char *llama[] = {"F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K_M", "Q5_K_M", "Q6_K"};
  static const char *other[] = {"F16", "Q8_0", "Q4_K_M"};
  char f32[64], q[64];
  for (size_t i = 0; i < sizeof llama / sizeof llama[0]; i++) {
    snprintf(q, sizeof q, "models/tiny-llama-%s.gguf", llama[i]);
    compare_file("models/tiny-llama-F32.gguf", q);
  }
  for (int m = 0; m < 2; m++) {
    const char *fam = m ? "qwen3" : "qwen2";
    snprintf(f32, sizeof f32, "models/tiny-%s-F32.gguf", fam);
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
      snprintf(q, sizeof q, "models/tiny-%s-%s.gguf", fam, other[i]);
      compare_file(f32, q);
    }
  }
  for (int t = 0; t < SLM_TYPE_COUNT; t++)
    if (per_type[t].tensors)
      printf("%-5s %3ld tensors, %6ld of %6ld rows byte-identical\n", slm_type_name((enum slm_type)t),
             per_type[t].tensors, per_type[t].rows_eq, per_type[t].rows);
  return check_done();
}
