/*
 * fuzz_gguf.c: libFuzzer target for the GGUF reader. Opens the input with slm_gguf_open_mem and, when
 * it opens, touches everything the reader hands out (every kv, every string array element, every
 * tensor's bytes) so a validation gap shows up as an out-of-bounds read under ASan.
 *
 * Built as a fuzzer with -Dfuzz=true and CC=clang (tests/slm/meson.build); the same function is
 * linked into test_gguf_corpus, which replays tests/slm/corpus/gguf/ in every normal test run.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slm/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink;

static void touch(const void *p, uint64_t n) {
  const uint8_t *b = p;
  uint8_t x = 0;
  if (n) x ^= b[0] ^ b[n - 1];
  for (uint64_t i = 0; i < n; i += 4096) x ^= b[i];
  sink ^= x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* a private copy of exactly SIZE bytes, so a read past the end is caught */
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy) return 0;
  if (size) memcpy(copy, data, size);
  struct slm_gguf_file *f = NULL;
  char err[256];
  if (slm_gguf_open_mem(copy, size, &f, err, sizeof err) == 0) {
    for (uint64_t i = 0; i < slm_gguf_n_kv(f); i++) {
      const struct slm_gguf_kv *kv = slm_gguf_kv_at(f, i);
      touch(kv->key.p, kv->key.n);
      char key[128];
      size_t kn = kv->key.n < sizeof key - 1 ? (size_t)kv->key.n : sizeof key - 1;
      memcpy(key, kv->key.p, kn);
      key[kn] = 0;
      (void)slm_gguf_find_kv(f, key);
      uint32_t u;
      int64_t i64;
      float fl;
      bool b;
      struct slm_gguf_str s;
      (void)slm_gguf_get_u32(f, key, &u);
      (void)slm_gguf_get_i64(f, key, &i64);
      (void)slm_gguf_get_f32(f, key, &fl);
      (void)slm_gguf_get_bool(f, key, &b);
      if (slm_gguf_get_str(f, key, &s) == 0) touch(s.p, s.n);
      if (kv->type == GGUF_VT_ARRAY) {
        if (kv->arr_type == GGUF_VT_STRING) {
          for (uint64_t j = 0; j < kv->arr_n; j++) {
            s = slm_gguf_arr_str(f, kv, j);
            touch(s.p, s.n);
          }
        } else if (kv->arr_n) {
          size_t es = kv->arr_type == GGUF_VT_UINT8 || kv->arr_type == GGUF_VT_INT8 ||
                              kv->arr_type == GGUF_VT_BOOL ? 1
                      : kv->arr_type == GGUF_VT_UINT16 || kv->arr_type == GGUF_VT_INT16 ? 2
                      : kv->arr_type == GGUF_VT_UINT64 || kv->arr_type == GGUF_VT_INT64 ||
                              kv->arr_type == GGUF_VT_FLOAT64 ? 8 : 4;
          touch(kv->arr_data, kv->arr_n * es);
        }
      }
    }
    for (uint64_t i = 0; i < slm_gguf_n_tensors(f); i++) {
      const struct slm_gguf_tensor *t = slm_gguf_tensor_at(f, i);
      touch(t->name.p, t->name.n);
      touch(t->data, t->nbytes);
    }
    slm_gguf_close(f);
  }
  free(copy);
  return 0;
}
