/*
 * kernels.h: the compute kernels of the engine, as a function table filled at run time.
 *
 * DESIGN. Every kernel has a plain C reference (kernels/ref.c, always built) and may have faster
 * versions per ISA (kernels/x86/avx2.c, kernels/x86/avx512.c, each compiled with its own -m flags).
 * slm_kernels_init() detects the CPU once and fills the table in ascending ISA order, so a level
 * only overrides what it implements; a maximum level can be forced (tests, benchmarks, the env var
 * SLM_CPU_MAX=ref|avx2|avx512|vnni|bf16). tests/slm/test_checkasm.c runs every entry at every level
 * against the reference: bit-exact for integer kernels and quantizers, within stated tolerances for
 * float reductions (reordered sums).
 *
 * Quantized matrix products follow llama.cpp's scheme, so results match its reference outputs:
 * the activation row is quantized once (q8_0 blocks of 32 for Q4_0/Q5_0/Q8_0 weights, q8_1 for
 * Q4_1/Q5_1, q8_K blocks of 256 for the K types), then each weight row is dotted in integer
 * arithmetic and scaled per block. F16/BF16 weights take F16/BF16 activations... or F32 where
 * slm_vec_dot_type() says so.
 *
 * No kernel allocates, none keeps state, all are safe to call from any thread. Stack use is small
 * except gemm_x8 on Q8_0/Q4_0/Q5_0, which keeps activation block sums on the stack (32 KiB).
 */
#ifndef SLM_KERNELS_KERNELS_H
#define SLM_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "slm/kernels/types.h"

enum slm_cpu_level {
  SLM_CPU_REF = 0,
  SLM_CPU_AVX2 = 1,          /* AVX2 + FMA + F16C */
  SLM_CPU_AVX512 = 2,        /* AVX-512 F/BW/VL/DQ */
  SLM_CPU_AVX512_VNNI = 3,   /* + VNNI (vpdpbusd) */
  SLM_CPU_AVX512_BF16 = 4,   /* + AVX512-BF16 (vdpbf16ps), e.g. Zen 4, Sapphire Rapids */
  SLM_CPU_LEVEL_COUNT
};

/* s[0] = dot(weight row W of type t, activation row A of type slm_vec_dot_type(t)), N elements. */
typedef void (*slm_vec_dot_fn)(int64_t n, float *s, const void *w, const void *a);

/* Tile product: for i < NR weight rows and j < NC activation rows,
 *   y[j * ys + i] = dot(w + i * ws bytes, a + j * as bytes)   over N elements.
 * Strides in bytes for w/a, in floats for y. This is the prompt-processing (and batched decode)
 * workhorse; an ISA version may process several rows and columns per step to reuse loads.
 * Every output is bit-identical to vec_dot of the same pair at the same level, whatever nr, nc
 * and the position in the tile: batching never changes a result (checked by test_checkasm). */
typedef void (*slm_gemm_fn)(int64_t n, int nr, int nc, float *y, int64_t ys,
                            const void *w, size_t ws, const void *a, size_t as);

struct slm_kernels {
  enum slm_cpu_level level;

  /* activation quantizers: K floats (K a multiple of the block) into blocks */
  void (*quantize_q8_0)(const float *x, void *y, int64_t k);
  void (*quantize_q8_1)(const float *x, void *y, int64_t k);
  void (*quantize_q8_K)(const float *x, void *y, int64_t k);
  void (*f32_to_f16)(const float *x, slm_f16 *y, int64_t k);
  void (*f16_to_f32)(const slm_f16 *x, float *y, int64_t k);
  void (*f32_to_bf16)(const float *x, slm_bf16 *y, int64_t k);

  /* indexed by enum slm_type of the weight; NULL where the type is not a weight type */
  slm_vec_dot_fn vec_dot[SLM_TYPE_COUNT];
  slm_gemm_fn gemm[SLM_TYPE_COUNT];

  /* float helpers used by the transformer (n any size) */
  float (*dot_f32)(int64_t n, const float *a, const float *b);
  float (*dot_f32_f16)(int64_t n, const float *a, const slm_f16 *b);      /* attention q·k, F16 cache */
  void (*axpy_f32)(int64_t n, float alpha, const float *x, float *y);     /* y += alpha * x */
  void (*axpy_f16)(int64_t n, float alpha, const slm_f16 *x, float *y);   /* attention sum over V */
  void (*scale_f32)(int64_t n, float alpha, float *y);                    /* y *= alpha */
  void (*add_f32)(int64_t n, float *y, const float *x);                   /* y += x */
  void (*rmsnorm_f32)(int64_t n, float *y, const float *x, const float *w, float eps); /* y = x / rms(x) * w */
  void (*swiglu_f32)(int64_t n, float *y, const float *gate, const float *up);       /* y = silu(gate) * up */
  float (*max_f32)(int64_t n, const float *x);
  float (*exp_sum_f32)(int64_t n, float *y, const float *x, float max);   /* y = exp(x - max); returns sum */

  /* Matrix product on repacked ("x8") weights, see slm_repack_x8 below: rows in groups of 8,
   * nr a multiple of 8, w the group holding row 0, ws the byte stride between groups
   * (slm_repack_x8_size(t, n) for a whole repacked tensor); a, as, y, ys as for gemm.
   * NULL where this level has no fast x8 kernel for the type: then do not repack. */
  slm_gemm_fn gemm_x8[SLM_TYPE_COUNT];
};

/* Fills the table once (thread-safe, idempotent) up to min(detected level, max_level) and the
 * SLM_CPU_MAX environment override. Returns the table; the pointer stays valid for the process. */
const struct slm_kernels *slm_kernels_init(enum slm_cpu_level max_level);
/* A table for exactly LEVEL (which must be <= the detected level), for tests; NULL if unsupported. */
const struct slm_kernels *slm_kernels_at(enum slm_cpu_level level);
enum slm_cpu_level slm_cpu_detect(void);
const char *slm_cpu_level_name(enum slm_cpu_level level);

/* Activation type a weight type is dotted with (SLM_TYPE_Q8_0, _Q8_1, _Q8_K, _F16, _BF16 or _F32). */
enum slm_type slm_vec_dot_type(enum slm_type weight_type);

/* Reference conversions of whole rows, used by the loader, quantize and mkmodel (not hot paths):
 * dequantize N elements of type T to floats; quantize N floats to type T exactly as llama.cpp's
 * reference quantizers do (same rounding, same scale search), so files we write match its files. */
void slm_dequantize_row(enum slm_type t, const void *src, float *dst, int64_t n);
void slm_quantize_row(enum slm_type t, const float *src, void *dst, int64_t n);

/*
 * Repacked weights ("x8"). A GGUF row keeps its blocks together, so a SIMD kernel spends most of
 * its instructions unpacking one row's block and scaling it. x8 interleaves 8 rows: for each block
 * (or K super-block) index, the 8 rows' scales, then for every 4 columns the 8 rows' 4 quants side
 * by side, so one 32-byte load feeds one vpdpbusd that advances all 8 rows (lanes = rows) against
 * 4 broadcast activation bytes, and one FMA per block scales 8 rows at once. The 8 rows are one
 * sequential stream (the prefetcher follows it, unlike 4 rows read side by side), at the same
 * size as the original rows (Q4_K: +2.8%, 6-bit scales and mins stored as bytes).
 *
 * Types with an x8 form: Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K (slm_repack_x8_size() != 0). Layout per block
 * index b of a group (all little-endian; r = row 0..7, e = 0..3):
 *   Q8_0  (272 B) f16 d[8]; u8 q[8][8][4]: q[c][r][e] = w[r][4c+e] + 128
 *   Q4_0  (144 B) f16 d[8]; u8 q[4][8][4]: q[c][r][e] = n[r][4c+e] | n[r][16+4c+e] << 4 (nibbles 0..15)
 *   Q5_0  (176 B) f16 d[8]; u32 h[8]: bit 4r+e of h[c] = bit 4 of value 4c+e of row r; q as Q4_0
 *   Q4_K (1184 B) f16 d[8], dmin[8]; u8 sc[8][8] (sub-block, row); u8 m[8][8]; then per sub-block
 *                 j of 32 values, u8 q[4][8][4] as Q4_0 over values 32j..32j+31
 *   Q5_K (1440 B) as Q4_K, then u32 h[8][8]: bit 4r+e of h[j][c] = bit 4 of value 32j+4c+e
 *   Q6_K (1680 B) f16 d[8]; i8 sc[16][8]; per group g of 32 values: u8 lo[4][8][4] (low nibbles of
 *                 u = q + 32, as Q4_0), then u8 hi[2][8][4]: bits 2k..2k+1 of hi[h][r][e] = bits 4..5
 *                 of value 4(4h+k)+e
 * The dot of each row is the reference's integer sum per block, scaled in float one block at a
 * time, in this order (fmaf: one rounding):
 *   Q8_0/Q4_0/Q5_0:  acc = fmaf((float)isum_b, dw_b * da_b, acc)
 *   Q4_K, Q5_K:      acc = fmaf((float)isum_B, da_B * d_B, acc); acc = fmaf(-(float)imin_B, da_B * dmin_B, acc)
 *   Q6_K:            acc = fmaf((float)isum_B, da_B * d_B, acc)
 * so SIMD versions (lanes = rows) equal slm_gemm_x8_ref bit for bit, and the reference vec_dot on
 * the original rows within float reordering. Every nc gives the same bits per (row, input row).
 *
 * Use (loader, once per tensor of NROWS rows of N elements, when k->gemm_x8[t] is set):
 *     size_t gs = slm_repack_x8_size(t, n);         -- 0: keep the original rows
 *     void *x8 = aligned_alloc(64, nrows / 8 * gs);  -- rows beyond a multiple of 8 stay original
 *     slm_repack_x8(t, n, nrows / 8 * 8, data, row_bytes, x8);
 *     madvise(the tensor's whole pages, MADV_DONTNEED): the file pages read by the repack leave
 *     the RSS again, so RSS stays about the file size (the repacked copy replaces them).
 * (matmul, rows [r0, r1) with r0 % 8 == 0, for decode nc = 1 and prefill alike):
 *     k->gemm_x8[t](n, (r1 - r0) / 8 * 8, nc, y + r0, ys, (char *)x8 + r0 / 8 * gs, gs, a, as);
 * Measured with tests/bench/bench_kernels (one Zen 4 core, busy machine): Q8_0 matvec 19 -> 48 GB/s,
 * 128-row gemm 33 -> 165 GOP/s; Q4_0 10 -> 25 GB/s, 52 -> 177 GOP/s; Q4_K 18 -> 41, 70 -> 166.
 */
size_t slm_repack_x8_size(enum slm_type t, int64_t n);   /* bytes per group of 8 rows; 0: no x8 form */
/* Repacks rows [0, nrows) of SRC (row stride src_stride bytes, N elements each, nrows % 8 == 0)
 * into DST (nrows / 8 * slm_repack_x8_size(t, n) bytes). */
void slm_repack_x8(enum slm_type t, int64_t n, int64_t nrows, const void *src, size_t src_stride, void *dst);
/* The plain C gemm_x8 (the contract above; tests and CPUs without a fast version). */
void slm_gemm_x8_ref(enum slm_type t, int64_t n, int nr, int nc, float *y, int64_t ys, const void *w,
                     size_t ws, const void *a, size_t as);

/* Scalar half/bfloat conversions (exact, round-to-nearest-even). */
float slm_f16_to_f32(slm_f16 h);
slm_f16 slm_f32_to_f16(float f);
float slm_bf16_to_f32(slm_bf16 h);
slm_bf16 slm_f32_to_bf16(float f);

#endif
