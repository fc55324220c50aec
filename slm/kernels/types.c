/*
 * types.c: the table of tensor element types (names, block sizes, bytes per block) and row sizes.
 * Ids and layouts are ggml's, so a GGUF file's tensors are used as they are stored.
 */
#include <stdio.h>

#include "slm/kernels/types.h"

#define T(id, nm, b, sz, sup) [id] = { nm, b, sz, sup }

const struct slm_type_info slm_type_infos[SLM_TYPE_COUNT] = {
  T(SLM_TYPE_F32, "F32", 1, 4, 1),
  T(SLM_TYPE_F16, "F16", 1, 2, 1),
  T(SLM_TYPE_Q4_0, "Q4_0", QK4_0, sizeof(block_q4_0), 1),
  T(SLM_TYPE_Q4_1, "Q4_1", QK4_1, sizeof(block_q4_1), 1),
  T(SLM_TYPE_Q5_0, "Q5_0", QK5_0, sizeof(block_q5_0), 1),
  T(SLM_TYPE_Q5_1, "Q5_1", QK5_1, sizeof(block_q5_1), 1),
  T(SLM_TYPE_Q8_0, "Q8_0", QK8_0, sizeof(block_q8_0), 1),
  T(SLM_TYPE_Q8_1, "Q8_1", QK8_1, sizeof(block_q8_1), 0),
  T(SLM_TYPE_Q2_K, "Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4, 0),
  T(SLM_TYPE_Q3_K, "Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12, 0),
  T(SLM_TYPE_Q4_K, "Q4_K", QK_K, sizeof(block_q4_K), 1),
  T(SLM_TYPE_Q5_K, "Q5_K", QK_K, sizeof(block_q5_K), 1),
  T(SLM_TYPE_Q6_K, "Q6_K", QK_K, sizeof(block_q6_K), 1),
  T(SLM_TYPE_Q8_K, "Q8_K", QK_K, sizeof(block_q8_K), 0),
  T(SLM_TYPE_IQ2_XXS, "IQ2_XXS", QK_K, 2 + QK_K / 4, 0),
  T(SLM_TYPE_IQ2_XS, "IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32, 0),
  T(SLM_TYPE_IQ3_XXS, "IQ3_XXS", QK_K, 2 + 3 * QK_K / 8, 0),
  T(SLM_TYPE_IQ1_S, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16, 0),
  T(SLM_TYPE_IQ4_NL, "IQ4_NL", 32, 2 + 16, 0),
  T(SLM_TYPE_IQ3_S, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4, 0),
  T(SLM_TYPE_IQ2_S, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16, 0),
  T(SLM_TYPE_IQ4_XS, "IQ4_XS", QK_K, 2 + 2 + QK_K / 64 + QK_K / 2, 0),
  T(SLM_TYPE_I8, "I8", 1, 1, 0),
  T(SLM_TYPE_I16, "I16", 1, 2, 0),
  T(SLM_TYPE_I32, "I32", 1, 4, 0),
  T(SLM_TYPE_I64, "I64", 1, 8, 0),
  T(SLM_TYPE_F64, "F64", 1, 8, 0),
  T(SLM_TYPE_IQ1_M, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, 0),
  T(SLM_TYPE_BF16, "BF16", 1, 2, 1),
  T(SLM_TYPE_TQ1_0, "TQ1_0", QK_K, 2 + 4 * 13, 0),
  T(SLM_TYPE_TQ2_0, "TQ2_0", QK_K, 2 + 64, 0),
  T(SLM_TYPE_MXFP4, "MXFP4", 32, 1 + 16, 0),
};

size_t slm_row_size(enum slm_type t, int64_t n) {
  if ((unsigned)t >= SLM_TYPE_COUNT || !slm_type_infos[t].name || n < 0) return 0;
  const struct slm_type_info *ti = &slm_type_infos[t];
  if (n % ti->blck) return 0;
  return (size_t)(n / ti->blck) * ti->size;
}

const char *slm_type_name(enum slm_type t) {
  static _Thread_local char buf[16];
  if ((unsigned)t < SLM_TYPE_COUNT && slm_type_infos[t].name) return slm_type_infos[t].name;
  snprintf(buf, sizeof buf, "type#%d", (int)t);
  return buf;
}
