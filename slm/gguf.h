/*
 * gguf.h: private interface of the GGUF reader and writer (slm/gguf.c, slm/gguf_write.c).
 *
 * The reader mmaps the whole file read-only and validates everything before handing out a pointer:
 * every count, string length, array length, offset, alignment, tensor shape and byte size is checked
 * against the file size, so a truncated or hostile file is an error, never an out-of-bounds read.
 * Pointers returned (strings, array data, tensor data) point into the mapping and live until
 * slm_gguf_close(). Strings are NOT NUL-terminated in the file: use the (ptr, len) pairs.
 *
 * Thread-safety: a slm_gguf_file is immutable after slm_gguf_open(); concurrent readers are fine.
 */
#ifndef SLM_GGUF_H
#define SLM_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slm/kernels/types.h"

/* Metadata value types, numbered as in the GGUF spec. */
enum slm_gguf_vtype {
  GGUF_VT_UINT8 = 0, GGUF_VT_INT8 = 1, GGUF_VT_UINT16 = 2, GGUF_VT_INT16 = 3,
  GGUF_VT_UINT32 = 4, GGUF_VT_INT32 = 5, GGUF_VT_FLOAT32 = 6, GGUF_VT_BOOL = 7,
  GGUF_VT_STRING = 8, GGUF_VT_ARRAY = 9, GGUF_VT_UINT64 = 10, GGUF_VT_INT64 = 11,
  GGUF_VT_FLOAT64 = 12,
  GGUF_VT_COUNT
};

struct slm_gguf_str { const char *p; uint64_t n; };   /* points into the mapping; not NUL-terminated */

struct slm_gguf_kv {
  struct slm_gguf_str key;
  enum slm_gguf_vtype type;
  /* For scalars: the value, decoded at open: UINT8..UINT64 in v.u64, INT8..INT64 sign-extended in
   * v.i64, FLOAT32 and FLOAT64 in v.f64, BOOL in v.b (the file must hold 0 or 1).
   * For GGUF_VT_STRING: str. For arrays: arr_type, arr_n and arr_data (for numeric arrays arr_data
   * points at arr_n packed little-endian elements in the mapping, NOT necessarily aligned: read
   * them with memcpy; bool elements are bytes 0/1; for string arrays use slm_gguf_arr_str()).
   * Nested arrays are rejected at open. */
  union {
    uint64_t u64; int64_t i64; double f64; bool b; struct slm_gguf_str str;
  } v;
  enum slm_gguf_vtype arr_type;
  uint64_t arr_n;
  const uint8_t *arr_data;
};

#define GGUF_MAX_DIMS 4

struct slm_gguf_tensor {
  struct slm_gguf_str name;
  enum slm_type type;
  uint32_t n_dims;
  int64_t ne[GGUF_MAX_DIMS];   /* ne[0] is the row length (fastest varying); unused dims are 1 */
  uint64_t offset;             /* relative to the data section */
  uint64_t nbytes;             /* validated: slm_row_size(type, ne[0]) * ne[1] * ne[2] * ne[3] */
  const void *data;            /* into the mapping, aligned to the file's alignment */
};

struct slm_gguf_file;

/* What open validates (each failure has a message naming the key/tensor and the byte offsets):
 * magic "GGUF"; version 2 or 3 (v1 and big-endian files -> -ENOTSUP); n_kv and n_tensors bounded
 * by the bytes left; every string and array inside the file; keys non-empty and unique; value
 * and element types known; no nested arrays; general.alignment (uint32, a power of two <= 2^30,
 * default 32); tensor names non-empty (<= 1024 bytes) and unique; 1..4 dims, each ne >= 1, no
 * overflow in element or byte counts; tensor type id known to slm_type_infos (unknown id ->
 * -ENOTSUP naming the id; known types the engine cannot compute with are accepted here and
 * refused by the model loader); ne[0] a multiple of the type's block; offsets multiples of the
 * alignment; data inside the file; no two tensors overlapping.
 *
 * Opens and validates PATH. On success returns 0 and *out; on failure a negative errno-style code
 * (-ENOENT, -EINVAL for malformed content, -ENOTSUP for an unknown tensor type or version,
 * -ENOMEM) and a message in err (NUL-terminated, truncated to errlen). */
int slm_gguf_open(const char *path, struct slm_gguf_file **out, char *err, size_t errlen);
/* Same, over a caller-owned memory buffer (used by the fuzz target and tests); the buffer must
 * outlive the handle. */
int slm_gguf_open_mem(const void *buf, size_t len, struct slm_gguf_file **out, char *err, size_t errlen);
void slm_gguf_close(struct slm_gguf_file *f);   /* accepts NULL */

uint32_t slm_gguf_version(const struct slm_gguf_file *f);
uint32_t slm_gguf_alignment(const struct slm_gguf_file *f);
size_t slm_gguf_file_size(const struct slm_gguf_file *f);
/* Byte offset of the data section in the file (tensor offsets are relative to it), and the start
 * of the mapping (or of the caller's buffer for slm_gguf_open_mem). */
size_t slm_gguf_data_offset(const struct slm_gguf_file *f);
const void *slm_gguf_base(const struct slm_gguf_file *f);

uint64_t slm_gguf_n_kv(const struct slm_gguf_file *f);
const struct slm_gguf_kv *slm_gguf_kv_at(const struct slm_gguf_file *f, uint64_t i);
const struct slm_gguf_kv *slm_gguf_find_kv(const struct slm_gguf_file *f, const char *key);   /* NULL if absent */

/* Typed getters: return 0 and fill *out, -ENOENT if absent, -EINVAL if the type does not fit
 * (integer getters accept any integer type whose value fits). */
int slm_gguf_get_u32(const struct slm_gguf_file *f, const char *key, uint32_t *out);
int slm_gguf_get_i64(const struct slm_gguf_file *f, const char *key, int64_t *out);
int slm_gguf_get_f32(const struct slm_gguf_file *f, const char *key, float *out);
int slm_gguf_get_bool(const struct slm_gguf_file *f, const char *key, bool *out);
int slm_gguf_get_str(const struct slm_gguf_file *f, const char *key, struct slm_gguf_str *out);
/* Element I of a string array kv (the kv must be GGUF_VT_ARRAY of GGUF_VT_STRING); O(1) after open. */
struct slm_gguf_str slm_gguf_arr_str(const struct slm_gguf_file *f, const struct slm_gguf_kv *kv, uint64_t i);

uint64_t slm_gguf_n_tensors(const struct slm_gguf_file *f);
const struct slm_gguf_tensor *slm_gguf_tensor_at(const struct slm_gguf_file *f, uint64_t i);
const struct slm_gguf_tensor *slm_gguf_find_tensor(const struct slm_gguf_file *f, const char *name);  /* NULL if absent */

/* Writer: builds a GGUF v3 file. Keys and tensors are written in insertion order; tensor data is
 * aligned to 32 bytes (or general.alignment if set). Strings are copied. Setting a key a second
 * time removes the old entry and appends the new one at the end, as llama.cpp's slm_gguf_set_val_*
 * do (so a file rewritten like llama-quantize rewrites it comes out byte-identical). The setters
 * never fail visibly:
 * errors (out of memory, a bad shape, a duplicate tensor name, a bad alignment) are remembered and
 * returned by slm_gguf_writer_write(). */
struct slm_gguf_writer;
struct slm_gguf_writer *slm_gguf_writer_new(void);
void slm_gguf_writer_free(struct slm_gguf_writer *w);   /* accepts NULL */
void slm_gguf_w_u32(struct slm_gguf_writer *w, const char *key, uint32_t v);
void slm_gguf_w_i32(struct slm_gguf_writer *w, const char *key, int32_t v);
void slm_gguf_w_f32(struct slm_gguf_writer *w, const char *key, float v);
void slm_gguf_w_bool(struct slm_gguf_writer *w, const char *key, bool v);
void slm_gguf_w_str(struct slm_gguf_writer *w, const char *key, const char *v);
void slm_gguf_w_arr_str(struct slm_gguf_writer *w, const char *key, const char *const *v, size_t n);
void slm_gguf_w_arr_f32(struct slm_gguf_writer *w, const char *key, const float *v, size_t n);
void slm_gguf_w_arr_i32(struct slm_gguf_writer *w, const char *key, const int32_t *v, size_t n);
/* The other scalar types, and a numeric/bool array of any element type ELT (elements packed
 * little-endian, vtype_size(ELT) bytes each; not GGUF_VT_STRING or GGUF_VT_ARRAY). */
void slm_gguf_w_u8(struct slm_gguf_writer *w, const char *key, uint8_t v);
void slm_gguf_w_i8(struct slm_gguf_writer *w, const char *key, int8_t v);
void slm_gguf_w_u16(struct slm_gguf_writer *w, const char *key, uint16_t v);
void slm_gguf_w_i16(struct slm_gguf_writer *w, const char *key, int16_t v);
void slm_gguf_w_u64(struct slm_gguf_writer *w, const char *key, uint64_t v);
void slm_gguf_w_i64(struct slm_gguf_writer *w, const char *key, int64_t v);
void slm_gguf_w_f64(struct slm_gguf_writer *w, const char *key, double v);
/* A string with explicit length (may contain NUL bytes). */
void slm_gguf_w_strn(struct slm_gguf_writer *w, const char *key, const char *v, size_t n);
void slm_gguf_w_arr(struct slm_gguf_writer *w, const char *key, enum slm_gguf_vtype elt, const void *v, size_t n);
/* Copies the kv as-is from an open file (used by quantize to carry metadata over). */
void slm_gguf_w_copy_kv(struct slm_gguf_writer *w, const struct slm_gguf_file *f, const struct slm_gguf_kv *kv);
/* Adds a tensor; DATA (slm_row_size(type, ne[0]) * rows bytes) is copied on write, must stay valid
 * until slm_gguf_writer_write() returns. */
void slm_gguf_w_tensor(struct slm_gguf_writer *w, const char *name, enum slm_type type, uint32_t n_dims,
                   const int64_t *ne, const void *data);
/* A tensor whose bytes are produced at write time, one tensor at a time (so a large model never
 * sits in memory whole): FILL(CTX, DST, NBYTES, ERR, ERRLEN) must fill DST with the tensor's
 * NBYTES bytes and return 0, or return a negative errno with a message (the write then fails). */
typedef int (*slm_gguf_fill_fn)(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen);
void slm_gguf_w_tensor_fill(struct slm_gguf_writer *w, const char *name, enum slm_type type, uint32_t n_dims,
                        const int64_t *ne, slm_gguf_fill_fn fill, void *ctx);
uint64_t slm_gguf_writer_n_tensors(const struct slm_gguf_writer *w);

/* Writes the file (to PATH.tmp, then renamed over PATH, so readers never see half a file);
 * returns 0 or a negative errno and a message in err. Can be called more than once. */
int slm_gguf_writer_write(struct slm_gguf_writer *w, const char *path, char *err, size_t errlen);
/* Same, into a malloc()ed buffer (*out, *len; the caller frees it): tests and fuzz seeds. */
int slm_gguf_writer_write_mem(struct slm_gguf_writer *w, void **out, size_t *len, char *err, size_t errlen);

#endif
