/*
 * quantize.c: `tiergate slm quantize IN OUT TYPE`: rewrite an F32/F16/BF16 GGUF with another tensor
 * type, choosing per tensor as llama-quantize does (qmix.c), with the reference quantizers of
 * kernels/quant.c, which reproduce llama.cpp's bytes. The output is laid out as llama-quantize
 * lays it out (kvs in input order, then general.quantization_version and general.file_type moved
 * to the end; tensors in llama.cpp's loader order), so the same input gives the same file.
 *
 * Tensors are converted one at a time while the file is written (slm_gguf_w_tensor_fill), so memory
 * stays at one tensor's output plus one row of floats.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/gguf.h"
#include "slm/kernels/kernels.h"
#include "slm/tools/tools.h"

static const char QUANTIZE_USAGE[] =
  "usage: tiergate slm quantize [--pure] [-v] IN OUT TYPE\n"
  "\n"
  "Converts IN (a GGUF with F32, F16 or BF16 tensors) to OUT with tensors of TYPE, choosing per\n"
  "tensor like llama-quantize: norms and biases stay as they are; output (and a tied token_embd)\n"
  "get Q6_K (Q8_0 if their rows are not a multiple of the block); the _M mixes give half of\n"
  "attn_v/ffn_down Q6_K; K types fall back to Q5_0/Q5_1/Q8_0 for rows not a multiple of 256.\n"
  "\n"
  "  TYPE       one of: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K\n"
  "             (Q4_K and Q5_K are aliases of Q4_K_M and Q5_K_M, as in llama-quantize)\n"
  "  --pure     give every quantizable tensor TYPE (row fallbacks still apply)\n"
  "  -v         print each tensor's choice\n"
  "  -h, --help this text\n";

struct qjob {
  const struct slm_gguf_tensor *in;
  enum slm_type out_type;
  float *row;   /* ne[0] floats, shared by all jobs */
};

static int fill_tensor(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen) {
  const struct qjob *j = ctx;
  const struct slm_gguf_tensor *t = j->in;
  int64_t n = t->ne[0];
  uint64_t rows = (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
  size_t in_rs = slm_row_size(t->type, n), out_rs = slm_row_size(j->out_type, n);
  if (out_rs * rows != nbytes) {
    snprintf(err, errlen, "internal size mismatch");
    return -EINVAL;
  }
  const uint8_t *src = t->data;
  uint8_t *d = dst;
  if (t->type == j->out_type) {
    memcpy(d, src, nbytes);
    return 0;
  }
  for (uint64_t r = 0; r < rows; r++) {
    slm_dequantize_row(t->type, src + r * in_rs, j->row, n);
    slm_quantize_row(j->out_type, j->row, d + r * out_rs, n);
  }
  return 0;
}


static int cmp_tensors(const void *a, const void *b) {
  const struct slm_gguf_tensor *x = *(const struct slm_gguf_tensor *const *)a;
  const struct slm_gguf_tensor *y = *(const struct slm_gguf_tensor *const *)b;
  char nx[1100], ny[1100];
  snprintf(nx, sizeof nx, "%.*s", (int)x->name.n, x->name.p);
  snprintf(ny, sizeof ny, "%.*s", (int)y->name.n, y->name.p);
  return slm_qmix_cmp_names(nx, ny);
}

int slm_quantize_file(const char *in, const char *out, const struct slm_ftype_info *ft, bool pure,
                      bool verbose, char *err, size_t errlen) {
  struct slm_gguf_file *f = NULL;
  int rc = slm_gguf_open(in, &f, err, errlen);
  if (rc) return rc;
  uint64_t nt = slm_gguf_n_tensors(f);
  if (nt == 0) {
    snprintf(err, errlen, "%s has no tensors (a vocabulary-only file?)", in);
    slm_gguf_close(f);
    return -EINVAL;
  }

  struct slm_gguf_str arch;
  char key[256];
  uint32_t n_layer = 0;
  if (slm_gguf_get_str(f, "general.architecture", &arch) == 0 && arch.n < 200) {
    snprintf(key, sizeof key, "%.*s.block_count", (int)arch.n, arch.p);
    slm_gguf_get_u32(f, key, &n_layer);
  }

  const struct slm_gguf_tensor **order = calloc((size_t)nt, sizeof *order);
  struct qjob *jobs = calloc((size_t)nt, sizeof *jobs);
  int64_t max_row = 0;
  bool tied = true;
  int n_attn_v = 0;
  rc = 0;
  if (!order || !jobs) {
    snprintf(err, errlen, "out of memory");
    rc = -ENOMEM;
    goto done;
  }
  for (uint64_t i = 0; i < nt; i++) {
    const struct slm_gguf_tensor *t = slm_gguf_tensor_at(f, i);
    char name[1100];
    snprintf(name, sizeof name, "%.*s", (int)t->name.n, t->name.p);
    if (t->type != SLM_TYPE_F32 && t->type != SLM_TYPE_F16 && t->type != SLM_TYPE_BF16) {
      snprintf(err, errlen, "tensor '%s' is %s: quantize reads only F32, F16 and BF16 tensors", name,
               slm_type_name(t->type));
      rc = -ENOTSUP;
      goto done;
    }
    if (!strcmp(name, "output.weight")) tied = false;
    if (slm_qmix_counts_as_attn_v(name)) n_attn_v++;
    if (t->ne[0] > max_row) max_row = t->ne[0];
    order[i] = t;
  }
  qsort(order, (size_t)nt, sizeof *order, cmp_tensors);

  float *row = malloc((size_t)max_row * sizeof(float));
  struct slm_gguf_writer *w = slm_gguf_writer_new();
  if (!row || !w) {
    free(row);
    slm_gguf_writer_free(w);
    snprintf(err, errlen, "out of memory");
    rc = -ENOMEM;
    goto done;
  }
  for (uint64_t i = 0; i < slm_gguf_n_kv(f); i++) slm_gguf_w_copy_kv(w, f, slm_gguf_kv_at(f, i));
  slm_gguf_w_u32(w, "general.quantization_version", 2);   /* GGML_QNT_VERSION */
  slm_gguf_w_u32(w, "general.file_type", ft->ftype);

  struct slm_qmix q;
  slm_qmix_init(&q, ft, pure, (int)n_layer, tied, n_attn_v);
  uint64_t in_bytes = 0, out_bytes = 0;
  for (uint64_t i = 0; i < nt; i++) {
    const struct slm_gguf_tensor *t = order[i];
    char name[1100];
    snprintf(name, sizeof name, "%.*s", (int)t->name.n, t->name.p);
    enum slm_type ot = slm_qmix_choose(&q, name, t->n_dims, t->ne[0], t->type);
    jobs[i] = (struct qjob){ t, ot, row };
    slm_gguf_w_tensor_fill(w, name, ot, t->n_dims, t->ne, fill_tensor, &jobs[i]);
    uint64_t ob = slm_row_size(ot, t->ne[0]) * (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
    in_bytes += t->nbytes;
    out_bytes += ob;
    if (verbose)
      printf("[%3" PRIu64 "/%3" PRIu64 "] %-32s %-5s -> %-5s %10.2f KiB\n", i + 1, nt, name,
             slm_type_name(t->type), slm_type_name(ot), ob / 1024.0);
  }
  rc = slm_gguf_writer_write(w, out, err, errlen);
  if (rc == 0 && verbose)
    printf("%s: %.2f MiB -> %.2f MiB (%s), %d tensors fell back to another type\n", out,
           in_bytes / 1048576.0, out_bytes / 1048576.0, ft->name, q.n_fallback);
  slm_gguf_writer_free(w);
  free(row);
done:
  free(order);
  free(jobs);
  slm_gguf_close(f);
  return rc;
}

int slm_tool_quantize(int argc, char **argv) {
  struct slm_args a = slm_args_init("quantize", argc, argv);
  const char *pos[3] = { 0 }, *arg;
  int npos = 0;
  bool pure = false, verbose = false;
  while ((arg = slm_args_next(&a))) {
    if (slm_args_positional(&a, arg)) {
      if (npos == 3) return slm_args_unknown(&a, QUANTIZE_USAGE);
      pos[npos++] = arg;
    } else if (slm_args_help(arg)) {
      fputs(QUANTIZE_USAGE, stdout);
      return 0;
    } else if (slm_args_is(arg, NULL, "--pure")) {
      pure = true;
    } else if (slm_args_is(arg, "-v", "--verbose")) {
      verbose = true;
    } else {
      return slm_args_unknown(&a, QUANTIZE_USAGE);
    }
  }
  if (npos != 3) return slm_tool_usage_error("quantize", QUANTIZE_USAGE, "needs IN OUT TYPE");
  const struct slm_ftype_info *ft = slm_ftype_find(pos[2]);
  if (!ft) return slm_tool_usage_error("quantize", QUANTIZE_USAGE, "unknown type '%s'", pos[2]);
  char err[512];
  int rc = slm_quantize_file(pos[0], pos[1], ft, pure, verbose, err, sizeof err);
  if (rc) {
    slm_tool_errorf("quantize", "%s", err);
    return 1;
  }
  return 0;
}
