/*
 * avx512_vnni.c: the AVX512-VNNI level and the AVX512-BF16 level.
 *
 * VNNI: the tmpl256.h dots and tiles with vpdpbusd on ymm (AVX512-VL encoding, so all 32 vector
 * registers and bigger tiles): one instruction per 32 multiply-adds instead of maddubs + madd,
 * and Q8_0 without the sign trick (weights offset by 128, corrected in the accumulator).
 * BF16: vdpbf16ps for BF16 dots, in functions with a target attribute so nothing else in this
 * object uses BF16 instructions. Its products are exact (8-bit significands) and sums are fp32;
 * it treats subnormal inputs as zero, which the checkasm tolerance covers.
 */
#include <immintrin.h>

#include "slm/kernels/impl.h"

#define SFX _vnni
#define T_VNNI 1
#define T_NR 4
#define T_NC 4
#define T_NCK 2
#include "slm/kernels/x86/tmpl256.h"

void slm_kernels_fill_avx512_vnni(struct slm_kernels *k) {
  FN(fill_quant_dots)(k);
  FN(fill_float_dots)(k);
}

void slm_kernels_fill_avx512_bf16(struct slm_kernels *k) { (void)k; }
