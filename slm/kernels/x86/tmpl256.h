/*
 * tmpl256.h: the 256-bit quantized dot products and gemm tiles, written once and compiled twice:
 * by avx2.c (maddubs + madd) and by avx512_vnni.c (vpdpbusd on ymm via AVX512-VL, and 32 vector
 * registers, so bigger tiles). On Zen 4, 512-bit integer ops run as two 256-bit halves, so ymm
 * code with VNNI already reaches the int8 peak; what matters is the work per multiply-add.
 *
 * The includer defines SFX (a name suffix), T_VNNI (0 or 1), T_NR, T_NC, T_NCK (largest tiles)
 * and T_FLOAT (1: also the float-type dots).
 *
 * DESIGN. Every quantized dot is exact integer arithmetic per block followed by the float
 * scaling the reference (ref.c) states; only the order of float additions differs (lanes, then a
 * horizontal sum), which test_checkasm.c bounds.
 *
 * Weights are decoded to unsigned bytes u with a zero point z (the signed value is u - z:
 * Q4_0 z=8, Q5_0 z=16, Q4_1/Q5_1 z=0, Q8_0 z=128 at the VNNI level). The unsigned-times-signed
 * multiply (maddubs or vpdpbusd) then gives dot(u, a), and the zero point is removed in integers
 * by starting the accumulator at -z * (sums of 4 activations per lane), computed once per
 * activation block and shared by every weight row of the tile. maddubs adds two u8*s8 products
 * into an int16 with saturation, so the maddubs path needs u <= 128 (|a| <= 127 always holds for
 * our activation quantizers): Q8_0 there uses the sign trick (|w|, a * sign(w)) instead.
 *
 * gemm tiles hold NR weight rows x NC activation rows of accumulators: each decoded weight block
 * is used NC times and each activation block NR times, which is what turns prompt processing
 * from memory- into compute-bound. Tile sizes are compile-time so the accumulators stay in
 * registers.
 */

#define CAT2_(a, b) a##b
#define CAT2(a, b) CAT2_(a, b)
#define FN(name) CAT2(name, SFX)
#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* tile loops have compile-time trip counts: unrolled fully, the accumulator arrays become registers */
#define UNROLL _Pragma("GCC unroll 16")

/* ---------------------------------------------------------------- helpers */

ALWAYS_INLINE float FN(hsum8)(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* acc + (sums of 4 u8*s8 products per int32 lane); u <= 128 on the maddubs path */
ALWAYS_INLINE __m256i FN(dot_us)(__m256i acc, __m256i u, __m256i s) {
#if T_VNNI
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

ALWAYS_INLINE float FN(h2f)(slm_f16 h) { return _cvtsh_ss(h); }

/* 32 nibbles of 16 bytes: low nibbles are elements 0..15, high nibbles 16..31 */
ALWAYS_INLINE __m256i FN(nibbles32)(const uint8_t *p) {
  __m128i x = _mm_loadu_si128((const __m128i *)p);
  __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(x), _mm_srli_epi16(x, 4), 1);
  return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

/* 32 bits of qh to bytes 0x10 where set */
ALWAYS_INLINE __m256i FN(bit4_32)(const uint8_t *qh) {
  uint32_t x;
  memcpy(&x, qh, 4);
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                         0x0101010101010101, 0x0000000000000000);
  __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
  b = _mm256_and_si256(b, _mm256_set1_epi64x(0x8040201008040201));
  b = _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(0x8040201008040201));
  return _mm256_and_si256(b, _mm256_set1_epi8(0x10));
}

/* ---------------------------------------------------------------- legacy 32-blocks */

/* Decoded weight block: u (unsigned bytes), d, and m for the _1 types. */
struct FN(wblk) { __m256i u; float d, m; };

#define WDEC(name, T, body)                                                     \
  ALWAYS_INLINE struct FN(wblk) FN(name)(const T *b) {                          \
    struct FN(wblk) r;                                                          \
    body;                                                                       \
    return r;                                                                   \
  }
WDEC(dec_q4_0, block_q4_0, { r.u = FN(nibbles32)(b->qs); r.d = FN(h2f)(b->d); r.m = 0; })
WDEC(dec_q4_1, block_q4_1, { r.u = FN(nibbles32)(b->qs); r.d = FN(h2f)(b->d); r.m = FN(h2f)(b->m); })
WDEC(dec_q5_0, block_q5_0, {
  r.u = _mm256_or_si256(FN(nibbles32)(b->qs), FN(bit4_32)(b->qh)); r.d = FN(h2f)(b->d); r.m = 0; })
WDEC(dec_q5_1, block_q5_1, {
  r.u = _mm256_or_si256(FN(nibbles32)(b->qs), FN(bit4_32)(b->qh)); r.d = FN(h2f)(b->d);
  r.m = FN(h2f)(b->m); })
#if T_VNNI
WDEC(dec_q8_0, block_q8_0, {
  r.u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)b->qs), _mm256_set1_epi8((char)0x80));
  r.d = FN(h2f)(b->d); r.m = 0; })
#else
/* maddubs path: u = |w| (<= 128), the activation gets w's sign per pair (see tile) */
WDEC(dec_q8_0, block_q8_0, {
  r.u = _mm256_loadu_si256((const __m256i *)b->qs); r.d = FN(h2f)(b->d); r.m = 0; })
#endif

/*
 * Tile over 32-blocks: NR weight rows of WT (stride ws bytes) x NC activation rows of AT (q8_0 or
 * q8_1, stride as bytes). ZSHIFT: the zero point is 1 << ZSHIFT (0: none). HAS_M adds m * s per
 * block (q8_1 activations). SIGNED8: the maddubs Q8_0 path (sign trick, no zero point).
 */
#define TILE32(name, WT, AT, DEC, ZSHIFT, HAS_M, SIGNED8)                                         \
  ALWAYS_INLINE void FN(name)(const int NR, const int NC, int64_t nb, float *y, int64_t ys,      \
                              const char *w, size_t ws, const char *a, size_t as) {              \
    __m256 acc[T_NR][T_NC], accm[T_NR][T_NC];                                                     \
    UNROLL for (int i = 0; i < NR; i++)                                                                  \
      UNROLL for (int j = 0; j < NC; j++) acc[i][j] = accm[i][j] = _mm256_setzero_ps();                  \
    for (int64_t b = 0; b < nb; b++) {                                                            \
      __m256i wu[T_NR], w8[T_NR];                                                                 \
      __m256 dw[T_NR], mw[T_NR];                                                                  \
      UNROLL for (int i = 0; i < NR; i++) {                                                              \
        struct FN(wblk) d = DEC((const WT *)(w + i * ws) + b);                                    \
        w8[i] = d.u;                                                                              \
        wu[i] = (SIGNED8 && !T_VNNI) ? _mm256_abs_epi8(d.u) : d.u;                                \
        dw[i] = _mm256_set1_ps(d.d);                                                              \
        mw[i] = _mm256_set1_ps(d.m);                                                              \
      }                                                                                           \
      UNROLL for (int j = 0; j < NC; j++) {                                                              \
        const AT *ab = (const AT *)(a + j * as) + b;                                              \
        const __m256i aq = _mm256_loadu_si256((const __m256i *)ab->qs);                           \
        const __m256 da = _mm256_set1_ps(FN(h2f)(ab->d));                                         \
        __m256i corr = _mm256_setzero_si256();                                                    \
        if (ZSHIFT) {                                                                             \
          corr = FN(dot_us)(_mm256_setzero_si256(), _mm256_set1_epi8(1), aq);                     \
          corr = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, ZSHIFT));       \
        }                                                                                         \
        __m256 sa = _mm256_setzero_ps();                                                          \
        if (HAS_M)                                                                                \
          sa = _mm256_zextps128_ps256(_mm_set_ss(FN(h2f)(((const block_q8_1 *)ab)->s)));          \
        UNROLL for (int i = 0; i < NR; i++) {                                                            \
          __m256i p;                                                                              \
          if (SIGNED8 && !T_VNNI)                                                                 \
            p = FN(dot_us)(_mm256_setzero_si256(), wu[i], _mm256_sign_epi8(aq, w8[i]));           \
          else                                                                                    \
            p = FN(dot_us)(corr, wu[i], aq);                                                      \
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw[i], da), acc[i][j]); \
          if (HAS_M) accm[i][j] = _mm256_fmadd_ps(mw[i], sa, accm[i][j]);                         \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
    UNROLL for (int j = 0; j < NC; j++)                                                                  \
      UNROLL for (int i = 0; i < NR; i++)                                                                \
        y[j * ys + i] = FN(hsum8)(HAS_M ? _mm256_add_ps(acc[i][j], accm[i][j]) : acc[i][j]);      \
  }

TILE32(tile_q4_0, block_q4_0, block_q8_0, FN(dec_q4_0), 3, 0, 0)
TILE32(tile_q4_1, block_q4_1, block_q8_1, FN(dec_q4_1), 0, 1, 0)
TILE32(tile_q5_0, block_q5_0, block_q8_0, FN(dec_q5_0), 4, 0, 0)
TILE32(tile_q5_1, block_q5_1, block_q8_1, FN(dec_q5_1), 0, 1, 0)
#if T_VNNI
TILE32(tile_q8_0, block_q8_0, block_q8_0, FN(dec_q8_0), 7, 0, 0)
#else
TILE32(tile_q8_0, block_q8_0, block_q8_0, FN(dec_q8_0), 0, 0, 1)
#endif

/* ---------------------------------------------------------------- K types */

/* The 8 six-bit scales (bytes 0..7) and mins (bytes 8..15) of a Q4_K/Q5_K super-block. */
ALWAYS_INLINE void FN(k4_unpack)(const uint8_t *q, uint8_t out[16]) {
  uint32_t u[4];
  memcpy(u, q, 12);
  const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
  u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);   /* mins 4..7 */
  const uint32_t mins03 = u[1] & m6;
  u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);          /* scales 4..7 */
  u[2] = mins03;
  u[0] &= m6;                                              /* scales 0..3 */
  memcpy(out, u, 16);
}

/*
 * Q4_K / Q5_K tile. Per super-block and pair: for each 64 values, maddubs of the low and high
 * nibbles (plus bit 4 for Q5_K) with the activations, madd with the sub-block scale broadcast as
 * int16 pairs: an exact int32 sum with the 6-bit scales applied. The min term uses q8_K's
 * bsums: madd of the 16 bsums with each min duplicated into two int16 slots gives
 * m_j * (bsum_2j + bsum_2j+1) per lane.
 */
#define TILEK45(name, WT, IS5)                                                                    \
  ALWAYS_INLINE void FN(name)(const int NR, const int NC, int64_t nb, float *y, int64_t ys,      \
                              const char *w, size_t ws, const char *a, size_t as) {              \
    __m256 acc[T_NR][T_NCK];                                                                      \
    UNROLL for (int i = 0; i < NR; i++)                                                                  \
      UNROLL for (int j = 0; j < NC; j++) acc[i][j] = _mm256_setzero_ps();                               \
    const __m256i m4 = _mm256_set1_epi8(0x0f);                                                    \
    for (int64_t b = 0; b < nb; b++) {                                                            \
      uint8_t sm[T_NR][16];                                                                       \
      __m256i mins[T_NR];                                                                         \
      float dw[T_NR], dmw[T_NR];                                                                  \
      UNROLL for (int i = 0; i < NR; i++) {                                                              \
        const WT *wb = (const WT *)(w + i * ws) + b;                                              \
        FN(k4_unpack)(wb->scales, sm[i]);                                                         \
        __m128i m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm[i] + 8)));           \
        mins[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(m16, m16)),  \
                                          _mm_unpackhi_epi16(m16, m16), 1);                       \
        dw[i] = FN(h2f)(wb->d);                                                                   \
        dmw[i] = FN(h2f)(wb->dmin);                                                               \
      }                                                                                           \
      UNROLL for (int j = 0; j < NC; j++) {                                                              \
        const block_q8_K *ab = (const block_q8_K *)(a + j * as) + b;                              \
        const __m256i bs = _mm256_loadu_si256((const __m256i *)ab->bsums);                        \
        UNROLL for (int i = 0; i < NR; i++) {                                                            \
          const WT *wb = (const WT *)(w + i * ws) + b;                                            \
          __m256i isum = _mm256_setzero_si256();                                                  \
          __m256i qh = _mm256_setzero_si256();                                                    \
          if (IS5) qh = _mm256_loadu_si256((const __m256i *)((const block_q5_K *)wb)->qh);       \
          UNROLL for (int k = 0; k < 4; k++) {                                                           \
            const __m256i q = _mm256_loadu_si256((const __m256i *)(wb->qs + 32 * k));             \
            __m256i lo = _mm256_and_si256(q, m4);                                                 \
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);                           \
            if (IS5) {                                                                            \
              const __m256i one = _mm256_set1_epi8(1);                                            \
              lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(qh, one), 4));          \
              hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 1), one), 4)); \
              qh = _mm256_srli_epi16(qh, 2);                                                      \
            }                                                                                     \
            const __m256i a0 = _mm256_loadu_si256((const __m256i *)(ab->qs + 64 * k));           \
            const __m256i a1 = _mm256_loadu_si256((const __m256i *)(ab->qs + 64 * k + 32));      \
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a0),                    \
                                                 _mm256_set1_epi16(sm[i][2 * k]));                \
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a1),                    \
                                                 _mm256_set1_epi16(sm[i][2 * k + 1]));            \
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(p0, p1));                              \
          }                                                                                       \
          const __m256i imin = _mm256_madd_epi16(bs, mins[i]);                                    \
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(ab->d * dw[i]), acc[i][j]); \
          acc[i][j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(imin), _mm256_set1_ps(ab->d * dmw[i]), acc[i][j]); \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
    UNROLL for (int j = 0; j < NC; j++)                                                                  \
      UNROLL for (int i = 0; i < NR; i++) y[j * ys + i] = FN(hsum8)(acc[i][j]);                          \
  }

TILEK45(tile_q4_K, block_q4_K, 0)
TILEK45(tile_q5_K, block_q5_K, 1)

/*
 * Q6_K tile. Values are 6-bit unsigned u = q + 32 (0..63), maddubs-safe; each 32-value vector
 * spans two 16-value sub-blocks, so the madd scale vector holds sc[lo] in the low 128-bit lane
 * and sc[hi] in the high one. The +32 is removed once per super-block: 32 * sum_j sc_j*bsum_j,
 * one madd of the bsums with the 16 scales widened to int16.
 */
ALWAYS_INLINE __m256i FN(sc2)(int8_t lo, int8_t hi) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(lo)), _mm_set1_epi16(hi), 1);
}

ALWAYS_INLINE void FN(tile_q6_K)(const int NR, const int NC, int64_t nb, float *y, int64_t ys,
                                 const char *w, size_t ws, const char *a, size_t as) {
  __m256 acc[T_NR][T_NCK];
  UNROLL for (int i = 0; i < NR; i++)
    UNROLL for (int j = 0; j < NC; j++) acc[i][j] = _mm256_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(0x03);
  for (int64_t b = 0; b < nb; b++) {
    __m256i sc16[T_NR];
    float dw[T_NR];
    UNROLL for (int i = 0; i < NR; i++) {
      const block_q6_K *wb = (const block_q6_K *)(w + i * ws) + b;
      sc16[i] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wb->scales));
      dw[i] = FN(h2f)(wb->d);
    }
    UNROLL for (int j = 0; j < NC; j++) {
      const block_q8_K *ab = (const block_q8_K *)(a + j * as) + b;
      const __m256i bs = _mm256_loadu_si256((const __m256i *)ab->bsums);
      UNROLL for (int i = 0; i < NR; i++) {
        const block_q6_K *wb = (const block_q6_K *)(w + i * ws) + b;
        __m256i isum = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16[i]), 5);
        isum = _mm256_sub_epi32(_mm256_setzero_si256(), isum);
        UNROLL for (int h = 0; h < 2; h++) {
          const uint8_t *ql = wb->ql + 64 * h, *qhp = wb->qh + 32 * h;
          const int8_t *sc = wb->scales + 8 * h, *qa = ab->qs + 128 * h;
          const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
          const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
          const __m256i qh = _mm256_loadu_si256((const __m256i *)qhp);
          const __m256i u0 = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                             _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
          const __m256i u1 = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
          const __m256i u2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
          const __m256i u3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
          const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(u0, _mm256_loadu_si256((const __m256i *)qa)), FN(sc2)(sc[0], sc[1]));
          const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(u1, _mm256_loadu_si256((const __m256i *)(qa + 32))), FN(sc2)(sc[2], sc[3]));
          const __m256i p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(u2, _mm256_loadu_si256((const __m256i *)(qa + 64))), FN(sc2)(sc[4], sc[5]));
          const __m256i p3 = _mm256_madd_epi16(_mm256_maddubs_epi16(u3, _mm256_loadu_si256((const __m256i *)(qa + 96))), FN(sc2)(sc[6], sc[7]));
          isum = _mm256_add_epi32(isum, _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
        }
        acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(ab->d * dw[i]), acc[i][j]);
      }
    }
  }
  UNROLL for (int j = 0; j < NC; j++)
    UNROLL for (int i = 0; i < NR; i++) y[j * ys + i] = FN(hsum8)(acc[i][j]);
}

/* ---------------------------------------------------------------- entry points */

/*
 * Full T_NR x NCMAX tiles, then leftover rows one at a time against NCMAX columns, and leftover
 * columns against T_NR rows: four compile-time shapes per type, all accumulators in registers.
 */
#define GEMM_ENTRY(t, BLK, NCMAX)                                                                 \
  static void FN(gemm_##t)(int64_t n, int nr, int nc, float *y, int64_t ys, const void *w,       \
                           size_t ws, const void *a, size_t as) {                                \
    const int64_t nb = n / BLK;                                                                   \
    const char *W = w, *A = a;                                                                    \
    int j = 0;                                                                                    \
    for (; j + NCMAX <= nc; j += NCMAX) {                                                         \
      int i = 0;                                                                                  \
      for (; i + T_NR <= nr; i += T_NR)                                                           \
        FN(tile_##t)(T_NR, NCMAX, nb, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);        \
      for (; i < nr; i++)                                                                         \
        FN(tile_##t)(1, NCMAX, nb, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);           \
    }                                                                                             \
    for (; j < nc; j++) {                                                                         \
      int i = 0;                                                                                  \
      for (; i + T_NR <= nr; i += T_NR)                                                           \
        FN(tile_##t)(T_NR, 1, nb, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);            \
      for (; i < nr; i++)                                                                         \
        FN(tile_##t)(1, 1, nb, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);               \
    }                                                                                             \
  }                                                                                               \
  static void FN(vec_dot_##t)(int64_t n, float *s, const void *w, const void *a) {               \
    FN(tile_##t)(1, 1, n / BLK, s, 0, w, 0, a, 0);                                                \
  }

GEMM_ENTRY(q4_0, 32, T_NC)
GEMM_ENTRY(q4_1, 32, T_NC)
GEMM_ENTRY(q5_0, 32, T_NC)
GEMM_ENTRY(q5_1, 32, T_NC)
GEMM_ENTRY(q8_0, 32, T_NC)
GEMM_ENTRY(q4_K, 256, T_NCK)
GEMM_ENTRY(q5_K, 256, T_NCK)
GEMM_ENTRY(q6_K, 256, T_NCK)

static void FN(fill_quant_dots)(struct slm_kernels *k) {
#define SETQ(T, t)                                  \
  k->vec_dot[SLM_TYPE_##T] = FN(vec_dot_##t); \
  k->gemm[SLM_TYPE_##T] = FN(gemm_##t);
  SETQ(Q4_0, q4_0)
  SETQ(Q4_1, q4_1)
  SETQ(Q5_0, q5_0)
  SETQ(Q5_1, q5_1)
  SETQ(Q8_0, q8_0)
  SETQ(Q4_K, q4_K)
  SETQ(Q5_K, q5_K)
  SETQ(Q6_K, q6_K)
#undef SETQ
}

/* ---------------------------------------------------------------- x8 (repacked) kernels */

/*
 * x8 kernels (layout and float order in kernels.h). Lanes are the 8 rows of a group. Per 4 columns: one 32-byte load of the 8 rows' quants (u8)
 * and one vpdpbusd per activation row against its 4 bytes broadcast from memory. Per block: the
 * zero point (-z * sum of the activation block, from a table made once per call), one cvt and
 * one FMA per activation row with the 8 row scales: the order slm_gemm_x8_ref states, exactly.
 * Up to X8_NC activation rows share each weight load. On the maddubs path (AVX2) the quants must
 * stay <= 128 per byte: Q8_0 (stored + 128) is VNNI only; the others are at most 63.
 */
#ifndef X8_NC
#define X8_NC 4     /* K types: 4 accumulator sets of 4 vectors each */
#define X8_NCL 8    /* legacy types: 8 activation rows per weight load (2 vectors each) */
#define X8_MAXNB 1024   /* legacy activation block sums on the stack (32 KiB): n <= 32768, else the C reference */
#endif   /* activation block sums on the stack: n <= 65536 (else the C reference) */

ALWAYS_INLINE __m256i FN(bcast4)(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

/* sum of the 32 int8 of a q8_0 block */
ALWAYS_INLINE int32_t FN(q8_block_sum)(const int8_t *q) {
  const __m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)q), _mm256_set1_epi8((char)0x80));
  const __m256i s = _mm256_sad_epu8(x, _mm256_setzero_si256());
  __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  t = _mm_add_epi64(t, _mm_unpackhi_epi64(t, t));
  return (int32_t)_mm_cvtsi128_si32(t) - 32 * 128;
}

/* 8 chunk vectors (4 columns x 8 rows each) of a legacy block: Q8_0 stored, Q4_0/Q5_0 nibbles */
ALWAYS_INLINE void FN(x8_legacy_chunks)(enum slm_type t, const uint8_t *o, __m256i u[8]) {
  if (t == SLM_TYPE_Q8_0) {
    UNROLL for (int c = 0; c < 8; c++) u[c] = _mm256_loadu_si256((const __m256i *)(o + 16 + 32 * c));
    return;
  }
  const uint8_t *q = o + (t == SLM_TYPE_Q5_0 ? 48 : 16);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  UNROLL for (int c = 0; c < 4; c++) {
    const __m256i x = _mm256_loadu_si256((const __m256i *)(q + 32 * c));
    u[c] = _mm256_and_si256(x, m4);
    u[c + 4] = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
  }
  if (t == SLM_TYPE_Q5_0) {
    UNROLL for (int c = 0; c < 8; c++) {
      uint32_t h;
      memcpy(&h, o + 16 + 4 * c, 4);
#if T_VNNI
      u[c] = _mm256_mask_add_epi8(u[c], _cvtu32_mask32(h), u[c], _mm256_set1_epi8(16));
#else
      u[c] = _mm256_or_si256(u[c], FN(bit4_32)(o + 16 + 4 * c));
#endif
    }
  }
}

ALWAYS_INLINE void FN(x8_legacy)(enum slm_type t, const int NC, int64_t nb, int ngroups, float *y, int64_t ys,
                             const uint8_t *w, size_t ws, const uint8_t *a, size_t as) {
  const int zshift = t == SLM_TYPE_Q8_0 ? 7 : t == SLM_TYPE_Q4_0 ? 3 : 4;
  const size_t bsz = t == SLM_TYPE_Q8_0 ? 272 : t == SLM_TYPE_Q4_0 ? 144 : 176;
  int32_t negz[X8_NCL][X8_MAXNB];
  UNROLL for (int j = 0; j < NC; j++) {
    const block_q8_0 *ab = (const block_q8_0 *)(a + j * as);
    for (int64_t b = 0; b < nb; b++) negz[j][b] = -FN(q8_block_sum)(ab[b].qs) * (1 << zshift);
  }
  for (int g = 0; g < ngroups; g++) {
    const uint8_t *grp = w + (size_t)g * ws;
    __m256 facc[X8_NCL];
    UNROLL for (int j = 0; j < NC; j++) facc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t *o = grp + (size_t)b * bsz;
      __m256i u[8], iacc[X8_NCL];
      FN(x8_legacy_chunks)(t, o, u);
      UNROLL for (int j = 0; j < NC; j++) iacc[j] = _mm256_set1_epi32(negz[j][b]);
      UNROLL for (int c = 0; c < 8; c++)
        UNROLL for (int j = 0; j < NC; j++)
          iacc[j] = FN(dot_us)(iacc[j], u[c], FN(bcast4)(((const block_q8_0 *)(a + j * as))[b].qs + 4 * c));
      const __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)o));
      UNROLL for (int j = 0; j < NC; j++) {
        const __m256 s = _mm256_mul_ps(dv, _mm256_set1_ps(_cvtsh_ss(((const block_q8_0 *)(a + j * as))[b].d)));
        facc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[j]), s, facc[j]);
      }
    }
    UNROLL for (int j = 0; j < NC; j++) _mm256_storeu_ps(y + j * ys + 8 * g, facc[j]);
  }
}

/* Q4_K, and Q5_K (IS5: bit 4 of each value from a 32-bit mask per 4 columns x 8 rows) */
ALWAYS_INLINE void FN(x8_q45_K)(const int IS5, const int NC, int64_t nb, int ngroups, float *y, int64_t ys,
                                const uint8_t *w, size_t ws, const uint8_t *a, size_t as) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  for (int g = 0; g < ngroups; g++) {
    const uint8_t *grp = w + (size_t)g * ws;
    __m256 facc[X8_NC];
    UNROLL for (int j = 0; j < NC; j++) facc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t *o = grp + (size_t)b * (IS5 ? 1440 : 1184);
      __m256i isum[X8_NC], imin[X8_NC];
      UNROLL for (int j = 0; j < NC; j++) isum[j] = imin[j] = _mm256_setzero_si256();
      UNROLL for (int sb = 0; sb < 8; sb++) {
        const __m256i scv = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(o + 32 + 8 * sb)));
        const __m256i mv = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(o + 96 + 8 * sb)));
        __m256i dot[X8_NC];
        UNROLL for (int j = 0; j < NC; j++) dot[j] = _mm256_setzero_si256();
        UNROLL for (int c = 0; c < 4; c++) {
          const __m256i x = _mm256_loadu_si256((const __m256i *)(o + 160 + 128 * sb + 32 * c));
          __m256i lo = _mm256_and_si256(x, m4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
          if (IS5) {
            const uint8_t *hb = o + 1184 + 32 * sb;
#if T_VNNI
            uint32_t h0, h1;
            memcpy(&h0, hb + 4 * c, 4);
            memcpy(&h1, hb + 4 * c + 16, 4);
            lo = _mm256_mask_add_epi8(lo, _cvtu32_mask32(h0), lo, _mm256_set1_epi8(16));
            hi = _mm256_mask_add_epi8(hi, _cvtu32_mask32(h1), hi, _mm256_set1_epi8(16));
#else
            lo = _mm256_or_si256(lo, FN(bit4_32)(hb + 4 * c));
            hi = _mm256_or_si256(hi, FN(bit4_32)(hb + 4 * c + 16));
#endif
          }
          UNROLL for (int j = 0; j < NC; j++) {
            const int8_t *aq = ((const block_q8_K *)(a + j * as))[b].qs + 32 * sb;
            dot[j] = FN(dot_us)(dot[j], lo, FN(bcast4)(aq + 4 * c));
            dot[j] = FN(dot_us)(dot[j], hi, FN(bcast4)(aq + 16 + 4 * c));
          }
        }
        UNROLL for (int j = 0; j < NC; j++) {
          const int16_t *bs = ((const block_q8_K *)(a + j * as))[b].bsums;
          isum[j] = _mm256_add_epi32(isum[j], _mm256_mullo_epi32(dot[j], scv));
          imin[j] = _mm256_add_epi32(imin[j], _mm256_mullo_epi32(mv, _mm256_set1_epi32(bs[2 * sb] + bs[2 * sb + 1])));
        }
      }
      const __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)o));
      const __m256 dmv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 16)));
      UNROLL for (int j = 0; j < NC; j++) {
        const __m256 da = _mm256_set1_ps(((const block_q8_K *)(a + j * as))[b].d);
        facc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_mul_ps(da, dv), facc[j]);
        facc[j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(imin[j]), _mm256_mul_ps(da, dmv), facc[j]);
      }
    }
    UNROLL for (int j = 0; j < NC; j++) _mm256_storeu_ps(y + j * ys + 8 * g, facc[j]);
  }
}

/* bits 4..5 of the 6-bit values of chunk 4h+k, from the hi[h] vector: ((v >> 2k) & 3) << 4 */
ALWAYS_INLINE __m256i FN(q6_hi)(__m256i v, int k) {
  const __m256i m = _mm256_set1_epi8(0x30);
  switch (k) {
  case 0: return _mm256_and_si256(_mm256_slli_epi16(v, 4), m);
  case 1: return _mm256_and_si256(_mm256_slli_epi16(v, 2), m);
  case 2: return _mm256_and_si256(v, m);
  default: return _mm256_and_si256(_mm256_srli_epi16(v, 2), m);
  }
}

ALWAYS_INLINE void FN(x8_q6_K)(const int NC, int64_t nb, int ngroups, float *y, int64_t ys, const uint8_t *w,
                           size_t ws, const uint8_t *a, size_t as) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  for (int g = 0; g < ngroups; g++) {
    const uint8_t *grp = w + (size_t)g * ws;
    __m256 facc[X8_NC];
    UNROLL for (int j = 0; j < NC; j++) facc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t *o = grp + (size_t)b * 1680;
      __m256i isum[X8_NC];
      UNROLL for (int j = 0; j < NC; j++) isum[j] = _mm256_setzero_si256();
      UNROLL for (int gi = 0; gi < 8; gi++) {
        const uint8_t *lo = o + 144 + 192 * gi;
        const __m256i h0 = _mm256_loadu_si256((const __m256i *)(lo + 128));
        const __m256i h1 = _mm256_loadu_si256((const __m256i *)(lo + 160));
        __m256i d0[X8_NC], d1[X8_NC];
        UNROLL for (int j = 0; j < NC; j++) d0[j] = d1[j] = _mm256_setzero_si256();
        UNROLL for (int c = 0; c < 4; c++) {
          const __m256i x = _mm256_loadu_si256((const __m256i *)(lo + 32 * c));
          const __m256i u0 = _mm256_or_si256(_mm256_and_si256(x, m4), FN(q6_hi)(h0, c));
          const __m256i u1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(x, 4), m4), FN(q6_hi)(h1, c));
          UNROLL for (int j = 0; j < NC; j++) {
            const int8_t *aq = ((const block_q8_K *)(a + j * as))[b].qs + 32 * gi;
            d0[j] = FN(dot_us)(d0[j], u0, FN(bcast4)(aq + 4 * c));
            d1[j] = FN(dot_us)(d1[j], u1, FN(bcast4)(aq + 16 + 4 * c));
          }
        }
        const __m256i sc0 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(o + 16 + 16 * gi)));
        const __m256i sc1 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(o + 24 + 16 * gi)));
        UNROLL for (int j = 0; j < NC; j++) {
          const int16_t *bs = ((const block_q8_K *)(a + j * as))[b].bsums;
          const __m256i t0 = _mm256_sub_epi32(d0[j], _mm256_set1_epi32(32 * bs[2 * gi]));
          const __m256i t1 = _mm256_sub_epi32(d1[j], _mm256_set1_epi32(32 * bs[2 * gi + 1]));
          isum[j] = _mm256_add_epi32(isum[j], _mm256_add_epi32(_mm256_mullo_epi32(t0, sc0), _mm256_mullo_epi32(t1, sc1)));
        }
      }
      const __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)o));
      UNROLL for (int j = 0; j < NC; j++) {
        const __m256 da = _mm256_set1_ps(((const block_q8_K *)(a + j * as))[b].d);
        facc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_mul_ps(da, dv), facc[j]);
      }
    }
    UNROLL for (int j = 0; j < NC; j++) _mm256_storeu_ps(y + j * ys + 8 * g, facc[j]);
  }
}

/* Entry points: activation rows in fours, then one at a time; rows nr / 8 groups. */
#define X8_ENTRY(name, CALL, BLK, SMALLN, NCW)                                                          \
  static void name(int64_t n, int nr, int nc, float *y, int64_t ys, const void *w, size_t ws,     \
                   const void *a, size_t as) {                                                     \
    const int64_t nb = n / BLK;                                                                    \
    if (!(SMALLN)) {                                                                               \
      slm_gemm_x8_ref(T_TYPE, n, nr, nc, y, ys, w, ws, a, as);                                     \
      return;                                                                                      \
    }                                                                                              \
    const uint8_t *W = w, *A = a;                                                                  \
    int j = 0;                                                                                     \
    for (; j + NCW <= nc; j += NCW) CALL(NCW, nb, nr / 8, y + j * ys, ys, W, ws, A + j * as, as);   \
    for (; j < nc; j++) CALL(1, nb, nr / 8, y + j * ys, ys, W, ws, A + j * as, as);               \
  }

#define T_TYPE SLM_TYPE_Q8_0
#define CALL_Q8_0(NC, ...) FN(x8_legacy)(SLM_TYPE_Q8_0, NC, __VA_ARGS__)
#if T_VNNI
X8_ENTRY(FN(gemm_x8_q8_0), CALL_Q8_0, 32, nb <= X8_MAXNB, X8_NCL)
#endif
#undef T_TYPE
#define T_TYPE SLM_TYPE_Q4_0
#define CALL_Q4_0(NC, ...) FN(x8_legacy)(SLM_TYPE_Q4_0, NC, __VA_ARGS__)
X8_ENTRY(FN(gemm_x8_q4_0), CALL_Q4_0, 32, nb <= X8_MAXNB, X8_NCL)
#undef T_TYPE
#define T_TYPE SLM_TYPE_Q5_0
#define CALL_Q5_0(NC, ...) FN(x8_legacy)(SLM_TYPE_Q5_0, NC, __VA_ARGS__)
X8_ENTRY(FN(gemm_x8_q5_0), CALL_Q5_0, 32, nb <= X8_MAXNB, X8_NCL)
#undef T_TYPE
#define T_TYPE SLM_TYPE_Q4_K
#define CALL_Q4_K(NC, ...) FN(x8_q45_K)(0, NC, __VA_ARGS__)
X8_ENTRY(FN(gemm_x8_q4_K), CALL_Q4_K, 256, 1, X8_NC)
#undef T_TYPE
#define T_TYPE SLM_TYPE_Q5_K
#define CALL_Q5_K(NC, ...) FN(x8_q45_K)(1, NC, __VA_ARGS__)
X8_ENTRY(FN(gemm_x8_q5_K), CALL_Q5_K, 256, 1, X8_NC)
#undef T_TYPE
#define T_TYPE SLM_TYPE_Q6_K
X8_ENTRY(FN(gemm_x8_q6_K), FN(x8_q6_K), 256, 1, X8_NC)
#undef T_TYPE

static void FN(fill_x8)(struct slm_kernels *k) {
#if T_VNNI
  k->gemm_x8[SLM_TYPE_Q8_0] = FN(gemm_x8_q8_0);
#endif
  k->gemm_x8[SLM_TYPE_Q4_0] = FN(gemm_x8_q4_0);
  k->gemm_x8[SLM_TYPE_Q5_0] = FN(gemm_x8_q5_0);
  k->gemm_x8[SLM_TYPE_Q4_K] = FN(gemm_x8_q4_K);
  k->gemm_x8[SLM_TYPE_Q5_K] = FN(gemm_x8_q5_K);
  k->gemm_x8[SLM_TYPE_Q6_K] = FN(gemm_x8_q6_K);
}

/* ---------------------------------------------------------------- float types */

#if T_FLOAT   /* only the AVX2 object: higher levels have zmm versions (avx512.c, avx512_vnni.c) */

ALWAYS_INLINE __m256 FN(ld_f32)(const void *p) { return _mm256_loadu_ps((const float *)p); }
ALWAYS_INLINE __m256 FN(ld_f16)(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
ALWAYS_INLINE __m256 FN(ld_bf16)(const void *p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
ALWAYS_INLINE float FN(sc_f32)(const void *p, int64_t i) { return ((const float *)p)[i]; }
ALWAYS_INLINE float FN(sc_f16)(const void *p, int64_t i) { return FN(h2f)(((const slm_f16 *)p)[i]); }
ALWAYS_INLINE float FN(sc_bf16)(const void *p, int64_t i) { return slm_bf16_to_f32(((const slm_bf16 *)p)[i]); }

/* Float tile: 8 elements per step, one FMA per pair (one 8-lane accumulator per pair, so every
 * pair sums in the same order in any tile shape); the n % 8 tail in scalar. */
#define TILEF(t, ES)                                                                              \
  ALWAYS_INLINE void FN(tile_##t)(const int NR, const int NC, int64_t n, float *y, int64_t ys,   \
                                  const char *w, size_t ws, const char *a, size_t as) {          \
    __m256 acc[T_NR][T_NC];                                                                       \
    UNROLL for (int i = 0; i < NR; i++)                                                                  \
      UNROLL for (int j = 0; j < NC; j++) acc[i][j] = _mm256_setzero_ps();                               \
    int64_t k = 0;                                                                                \
    for (; k + 8 <= n; k += 8) {                                                                  \
      __m256 wv[T_NR];                                                                            \
      UNROLL for (int i = 0; i < NR; i++) wv[i] = FN(ld_##t)(w + i * ws + k * ES);                       \
      UNROLL for (int j = 0; j < NC; j++) {                                                              \
        const __m256 av = FN(ld_##t)(a + j * as + k * ES);                                        \
        UNROLL for (int i = 0; i < NR; i++) acc[i][j] = _mm256_fmadd_ps(wv[i], av, acc[i][j]);           \
      }                                                                                           \
    }                                                                                             \
    UNROLL for (int j = 0; j < NC; j++)                                                                  \
      UNROLL for (int i = 0; i < NR; i++) {                                                              \
        float s = FN(hsum8)(acc[i][j]);                                                           \
        for (int64_t r = k; r < n; r++)                                                           \
          s += FN(sc_##t)(w + i * ws, r) * FN(sc_##t)(a + j * as, r);                             \
        y[j * ys + i] = s;                                                                        \
      }                                                                                           \
  }                                                                                               \
  /* a lone dot is the 1x1 tile: the same order for every pair whatever the tile shape, so      \
   * batching rows never changes a result */                                                     \
  static void FN(vec_dot_##t)(int64_t n, float *s, const void *w, const void *a) {               \
    FN(tile_##t)(1, 1, n, s, 0, w, 0, a, 0);                                                      \
  }                                                                                               \
  static void FN(gemm_##t)(int64_t n, int nr, int nc, float *y, int64_t ys, const void *w,       \
                           size_t ws, const void *a, size_t as) {                                \
    const char *W = w, *A = a;                                                                    \
    int j = 0;                                                                                    \
    for (; j + T_NC <= nc; j += T_NC) {                                                           \
      int i = 0;                                                                                  \
      for (; i + T_NR <= nr; i += T_NR)                                                           \
        FN(tile_##t)(T_NR, T_NC, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);          \
      for (; i < nr; i++) FN(tile_##t)(1, T_NC, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as); \
    }                                                                                             \
    for (; j < nc; j++) {                                                                         \
      int i = 0;                                                                                  \
      for (; i + T_NR <= nr; i += T_NR)                                                           \
        FN(tile_##t)(T_NR, 1, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);             \
      for (; i < nr; i++) FN(tile_##t)(1, 1, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as); \
    }                                                                                             \
  }

TILEF(f32, 4)
TILEF(f16, 2)

/*
 * BF16: products of two bfloats are exact in float (8-bit significands), and the sum is kept in
 * double, so the result is the reference's (double) sum rounded once, whatever the order.
 * Float accumulation (FMA lanes, or vdpbf16ps) is only ~1e-7 off per dot, but BF16 models
 * re-round every activation to 8 bits, which amplifies such differences: on tiny-llama-BF16 both
 * land 0.0105 from llama.cpp's logits (tolerance 0.01) where the accurate sum lands 0.0047.
 */
ALWAYS_INLINE void FN(tile_bf16)(const int NR, const int NC, int64_t n, float *y, int64_t ys,
                                 const char *w, size_t ws, const char *a, size_t as) {
  __m256d lo[T_NR][2], hi[T_NR][2];
  UNROLL for (int i = 0; i < NR; i++)
    UNROLL for (int j = 0; j < NC; j++) lo[i][j] = hi[i][j] = _mm256_setzero_pd();
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 wv[T_NR];
    UNROLL for (int i = 0; i < NR; i++) wv[i] = FN(ld_bf16)(w + i * ws + 2 * k);
    UNROLL for (int j = 0; j < NC; j++) {
      const __m256 av = FN(ld_bf16)(a + j * as + 2 * k);
      UNROLL for (int i = 0; i < NR; i++) {
        const __m256 p = _mm256_mul_ps(wv[i], av);
        lo[i][j] = _mm256_add_pd(lo[i][j], _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
        hi[i][j] = _mm256_add_pd(hi[i][j], _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
      }
    }
  }
  UNROLL for (int j = 0; j < NC; j++)
    UNROLL for (int i = 0; i < NR; i++) {
      const __m256d s4 = _mm256_add_pd(lo[i][j], hi[i][j]);
      const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
      double s = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
      for (int64_t r = k; r < n; r++)
        s += (double)FN(sc_bf16)(w + i * ws, r) * FN(sc_bf16)(a + j * as, r);
      y[j * ys + i] = (float)s;
    }
}

static void FN(vec_dot_bf16)(int64_t n, float *s, const void *w, const void *a) {
  FN(tile_bf16)(1, 1, n, s, 0, w, 0, a, 0);
}

static void FN(gemm_bf16)(int64_t n, int nr, int nc, float *y, int64_t ys, const void *w, size_t ws,
                          const void *a, size_t as) {
  const char *W = w, *A = a;
  int j = 0;
  for (; j + 2 <= nc; j += 2) {
    int i = 0;
    for (; i + T_NR <= nr; i += T_NR) FN(tile_bf16)(T_NR, 2, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);
    for (; i < nr; i++) FN(tile_bf16)(1, 2, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);
  }
  for (; j < nc; j++) {
    int i = 0;
    for (; i + T_NR <= nr; i += T_NR) FN(tile_bf16)(T_NR, 1, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);
    for (; i < nr; i++) FN(tile_bf16)(1, 1, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);
  }
}

static void FN(fill_float_dots)(struct slm_kernels *k) {
  k->vec_dot[SLM_TYPE_F32] = FN(vec_dot_f32);
  k->gemm[SLM_TYPE_F32] = FN(gemm_f32);
  k->vec_dot[SLM_TYPE_F16] = FN(vec_dot_f16);
  k->gemm[SLM_TYPE_F16] = FN(gemm_f16);
  k->vec_dot[SLM_TYPE_BF16] = FN(vec_dot_bf16);
  k->gemm[SLM_TYPE_BF16] = FN(gemm_bf16);
}
#endif   /* T_FLOAT */
