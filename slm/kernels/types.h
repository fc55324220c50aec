/*
 * types.h: tensor element types and their block layouts, byte-for-byte the layouts GGUF files use
 * (ggml's numbering and structs), so weights are used straight from the mmapped file.
 *
 * Every quantized type stores runs of BLCK elements in one block; a row of n elements (n a
 * multiple of BLCK) takes n / BLCK * sizeof(block) bytes. The K types use super-blocks of 256.
 */
#ifndef SLM_KERNELS_TYPES_H
#define SLM_KERNELS_TYPES_H

#include <stddef.h>
#include <stdint.h>

typedef uint16_t slm_f16;    /* IEEE half, stored as bits */
typedef uint16_t slm_bf16;   /* bfloat16, stored as bits */

/* ggml type ids: the values GGUF files carry. Types we do not implement are listed so the loader
 * can name them in its refusal. */
enum slm_type {
  SLM_TYPE_F32 = 0, SLM_TYPE_F16 = 1, SLM_TYPE_Q4_0 = 2, SLM_TYPE_Q4_1 = 3,
  SLM_TYPE_Q5_0 = 6, SLM_TYPE_Q5_1 = 7, SLM_TYPE_Q8_0 = 8, SLM_TYPE_Q8_1 = 9,
  SLM_TYPE_Q2_K = 10, SLM_TYPE_Q3_K = 11, SLM_TYPE_Q4_K = 12, SLM_TYPE_Q5_K = 13,
  SLM_TYPE_Q6_K = 14, SLM_TYPE_Q8_K = 15,
  SLM_TYPE_IQ2_XXS = 16, SLM_TYPE_IQ2_XS = 17, SLM_TYPE_IQ3_XXS = 18, SLM_TYPE_IQ1_S = 19,
  SLM_TYPE_IQ4_NL = 20, SLM_TYPE_IQ3_S = 21, SLM_TYPE_IQ2_S = 22, SLM_TYPE_IQ4_XS = 23,
  SLM_TYPE_I8 = 24, SLM_TYPE_I16 = 25, SLM_TYPE_I32 = 26, SLM_TYPE_I64 = 27, SLM_TYPE_F64 = 28,
  SLM_TYPE_IQ1_M = 29, SLM_TYPE_BF16 = 30,
  SLM_TYPE_TQ1_0 = 34, SLM_TYPE_TQ2_0 = 35,
  SLM_TYPE_MXFP4 = 39,
  SLM_TYPE_COUNT = 40
};

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef struct { slm_f16 d; uint8_t qs[QK4_0 / 2]; } block_q4_0;                 /* 18 bytes */
typedef struct { slm_f16 d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;              /* 20 bytes */
typedef struct { slm_f16 d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;  /* 22 bytes */
typedef struct { slm_f16 d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1; /* 24 bytes */
typedef struct { slm_f16 d; int8_t qs[QK8_0]; } block_q8_0;                      /* 34 bytes */
typedef struct { slm_f16 d, s; int8_t qs[QK8_1]; } block_q8_1;                   /* 36 bytes; s = d * sum(qs) */

typedef struct {                       /* 144 bytes: 8 sub-blocks of 32, 6-bit scales and mins */
  slm_f16 d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
} block_q4_K;

typedef struct {                       /* 176 bytes */
  slm_f16 d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
} block_q5_K;

typedef struct {                       /* 210 bytes: 16 sub-blocks of 16, 8-bit scales */
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  slm_f16 d;
} block_q6_K;

typedef struct {                       /* activations for K-type dot products (never in files) */
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];            /* sums of groups of 16 qs */
} block_q8_K;

_Static_assert(sizeof(block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K layout");

struct slm_type_info {
  const char *name;        /* "Q4_K", ...; NULL for ids that are not types */
  int blck;                /* elements per block (1 for float types) */
  size_t size;             /* bytes per block */
  int supported;           /* 1 if the engine can compute with it */
};

/* Table indexed by enum slm_type; entries of unknown ids have name == NULL. */
extern const struct slm_type_info slm_type_infos[SLM_TYPE_COUNT];

/* Bytes of a row of N elements; 0 if the type is unknown or N is not a multiple of its block. */
size_t slm_row_size(enum slm_type t, int64_t n);
/* "Q4_K"-style name for messages, or "type#N" for unknown ids (then in thread-local storage,
 * valid until the next call on the same thread). */
const char *slm_type_name(enum slm_type t);

#endif
