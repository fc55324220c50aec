/*
 * gguf_write.c: the GGUF v3 writer (mkmodel, quantize, tests and fuzz seeds).
 *
 * Each kv is serialized when it is set (type and value bytes in a small blob, key kept apart so a
 * second set of the same key replaces the blob in place). Tensors keep a pointer to the caller's
 * data until the file is written. The layout is the one llama.cpp's gguf writer produces: header,
 * kvs in insertion order, tensor infos in insertion order with offsets packed back to back, each
 * padded to the alignment, zero padding up to the aligned data section, then the data.
 *
 * Setters record the first error and later calls become no-ops; slm_gguf_writer_write*() reports it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slm/gguf.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_write.c writes host-order arrays and assumes a little-endian host"
#endif

struct wkv {
  char *key;
  size_t keylen;
  uint8_t *blob;   /* u32 type + value, as in the file */
  size_t blob_n;
};

struct wtensor {
  char *name;
  enum slm_type type;
  uint32_t n_dims;
  int64_t ne[GGUF_MAX_DIMS];
  const void *data;        /* or NULL with FILL */
  slm_gguf_fill_fn fill;
  void *fill_ctx;
  uint64_t nbytes;
  uint64_t offset;
};

struct slm_gguf_writer {
  struct wkv *kvs;
  size_t n_kv, cap_kv;
  struct wtensor *ts;
  size_t n_t, cap_t;
  int err;
  char errmsg[256];
};

/* growable byte buffer for blobs and the header */
struct buf {
  uint8_t *p;
  size_t n, cap;
  int oom;
};

static void buf_put(struct buf *b, const void *src, size_t n) {
  if (b->oom) return;
  if (n > SIZE_MAX - b->n) {
    b->oom = 1;
    return;
  }
  if (b->n + n > b->cap) {
    size_t nc = b->cap ? b->cap : 64;
    while (nc < b->n + n) nc = nc > SIZE_MAX / 2 ? b->n + n : nc * 2;
    uint8_t *np = realloc(b->p, nc);
    if (!np) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = nc;
  }
  if (n) memcpy(b->p + b->n, src, n);
  b->n += n;
}

static void buf_u32(struct buf *b, uint32_t v) { buf_put(b, &v, 4); }
static void buf_u64(struct buf *b, uint64_t v) { buf_put(b, &v, 8); }
static void buf_str(struct buf *b, const char *s, size_t n) {
  buf_u64(b, n);
  buf_put(b, s, n);
}
static void buf_zero(struct buf *b, size_t n) {
  static const uint8_t z[64];
  while (n) {
    size_t k = n < sizeof z ? n : sizeof z;
    buf_put(b, z, k);
    n -= k;
  }
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void set_err(struct slm_gguf_writer *w, int code, const char *fmt, ...) {
  if (w->err) return;
  w->err = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->errmsg, sizeof w->errmsg, fmt, ap);
  va_end(ap);
}

struct slm_gguf_writer *slm_gguf_writer_new(void) { return calloc(1, sizeof(struct slm_gguf_writer)); }

void slm_gguf_writer_free(struct slm_gguf_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n_kv; i++) {
    free(w->kvs[i].key);
    free(w->kvs[i].blob);
  }
  for (size_t i = 0; i < w->n_t; i++) free(w->ts[i].name);
  free(w->kvs);
  free(w->ts);
  free(w);
}

static size_t elt_size(enum slm_gguf_vtype t) {
  switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_INT8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16: case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32: case GGUF_VT_INT32: case GGUF_VT_FLOAT32: return 4;
    case GGUF_VT_UINT64: case GGUF_VT_INT64: case GGUF_VT_FLOAT64: return 8;
    default: return 0;
  }
}

/* Takes ownership of B's bytes as the value of KEY (replacing an earlier value). */
static void put_kv(struct slm_gguf_writer *w, const char *key, struct buf *b) {
  if (w->err) {
    free(b->p);
    return;
  }
  if (b->oom) {
    free(b->p);
    set_err(w, -ENOMEM, "out of memory writing kv '%s'", key);
    return;
  }
  size_t kl = strlen(key);
  if (kl == 0 || kl > 65535) {
    free(b->p);
    set_err(w, -EINVAL, "kv key length %zu not in 1..65535", kl);
    return;
  }
  /* like llama.cpp's slm_gguf_set_val_*: drop an earlier value, append the new one */
  for (size_t i = 0; i < w->n_kv; i++) {
    if (w->kvs[i].keylen == kl && !memcmp(w->kvs[i].key, key, kl)) {
      free(w->kvs[i].key);
      free(w->kvs[i].blob);
      memmove(&w->kvs[i], &w->kvs[i + 1], (w->n_kv - i - 1) * sizeof w->kvs[0]);
      w->n_kv--;
      break;
    }
  }
  if (w->n_kv == w->cap_kv) {
    size_t nc = w->cap_kv ? w->cap_kv * 2 : 32;
    struct wkv *nk = realloc(w->kvs, nc * sizeof *nk);
    if (!nk) {
      free(b->p);
      set_err(w, -ENOMEM, "out of memory");
      return;
    }
    w->kvs = nk;
    w->cap_kv = nc;
  }
  char *k = malloc(kl + 1);
  if (!k) {
    free(b->p);
    set_err(w, -ENOMEM, "out of memory");
    return;
  }
  memcpy(k, key, kl + 1);
  w->kvs[w->n_kv++] = (struct wkv){ k, kl, b->p, b->n };
}

static void put_scalar(struct slm_gguf_writer *w, const char *key, enum slm_gguf_vtype t, const void *v) {
  struct buf b = { 0 };
  buf_u32(&b, t);
  buf_put(&b, v, elt_size(t));
  put_kv(w, key, &b);
}

void slm_gguf_w_u8(struct slm_gguf_writer *w, const char *key, uint8_t v) { put_scalar(w, key, GGUF_VT_UINT8, &v); }
void slm_gguf_w_i8(struct slm_gguf_writer *w, const char *key, int8_t v) { put_scalar(w, key, GGUF_VT_INT8, &v); }
void slm_gguf_w_u16(struct slm_gguf_writer *w, const char *key, uint16_t v) { put_scalar(w, key, GGUF_VT_UINT16, &v); }
void slm_gguf_w_i16(struct slm_gguf_writer *w, const char *key, int16_t v) { put_scalar(w, key, GGUF_VT_INT16, &v); }
void slm_gguf_w_u32(struct slm_gguf_writer *w, const char *key, uint32_t v) { put_scalar(w, key, GGUF_VT_UINT32, &v); }
void slm_gguf_w_i32(struct slm_gguf_writer *w, const char *key, int32_t v) { put_scalar(w, key, GGUF_VT_INT32, &v); }
void slm_gguf_w_u64(struct slm_gguf_writer *w, const char *key, uint64_t v) { put_scalar(w, key, GGUF_VT_UINT64, &v); }
void slm_gguf_w_i64(struct slm_gguf_writer *w, const char *key, int64_t v) { put_scalar(w, key, GGUF_VT_INT64, &v); }
void slm_gguf_w_f32(struct slm_gguf_writer *w, const char *key, float v) { put_scalar(w, key, GGUF_VT_FLOAT32, &v); }
void slm_gguf_w_f64(struct slm_gguf_writer *w, const char *key, double v) { put_scalar(w, key, GGUF_VT_FLOAT64, &v); }

void slm_gguf_w_bool(struct slm_gguf_writer *w, const char *key, bool v) {
  uint8_t x = v ? 1 : 0;
  put_scalar(w, key, GGUF_VT_BOOL, &x);
}

void slm_gguf_w_strn(struct slm_gguf_writer *w, const char *key, const char *v, size_t n) {
  struct buf b = { 0 };
  buf_u32(&b, GGUF_VT_STRING);
  buf_str(&b, v, n);
  put_kv(w, key, &b);
}

void slm_gguf_w_str(struct slm_gguf_writer *w, const char *key, const char *v) {
  slm_gguf_w_strn(w, key, v, strlen(v));
}

void slm_gguf_w_arr(struct slm_gguf_writer *w, const char *key, enum slm_gguf_vtype elt, const void *v, size_t n) {
  size_t es = elt_size(elt);
  if (!es) {
    set_err(w, -EINVAL, "kv '%s': array element type %d is not numeric", key, (int)elt);
    return;
  }
  if (n > SIZE_MAX / es) {
    set_err(w, -ENOMEM, "kv '%s': array too large", key);
    return;
  }
  struct buf b = { 0 };
  buf_u32(&b, GGUF_VT_ARRAY);
  buf_u32(&b, elt);
  buf_u64(&b, n);
  buf_put(&b, v, n * es);
  put_kv(w, key, &b);
}

void slm_gguf_w_arr_f32(struct slm_gguf_writer *w, const char *key, const float *v, size_t n) {
  slm_gguf_w_arr(w, key, GGUF_VT_FLOAT32, v, n);
}

void slm_gguf_w_arr_i32(struct slm_gguf_writer *w, const char *key, const int32_t *v, size_t n) {
  slm_gguf_w_arr(w, key, GGUF_VT_INT32, v, n);
}

void slm_gguf_w_arr_str(struct slm_gguf_writer *w, const char *key, const char *const *v, size_t n) {
  struct buf b = { 0 };
  buf_u32(&b, GGUF_VT_ARRAY);
  buf_u32(&b, GGUF_VT_STRING);
  buf_u64(&b, n);
  for (size_t i = 0; i < n; i++) buf_str(&b, v[i], strlen(v[i]));
  put_kv(w, key, &b);
}

void slm_gguf_w_copy_kv(struct slm_gguf_writer *w, const struct slm_gguf_file *f, const struct slm_gguf_kv *kv) {
  if (w->err) return;
  if (kv->key.n > 65535 || memchr(kv->key.p, 0, (size_t)kv->key.n)) {
    set_err(w, -EINVAL, "cannot copy a kv whose key holds a NUL byte or is too long");
    return;
  }
  char *key = malloc((size_t)kv->key.n + 1);
  if (!key) {
    set_err(w, -ENOMEM, "out of memory");
    return;
  }
  memcpy(key, kv->key.p, (size_t)kv->key.n);
  key[kv->key.n] = 0;
  struct buf b = { 0 };
  buf_u32(&b, kv->type);
  switch (kv->type) {
    case GGUF_VT_UINT8: case GGUF_VT_UINT16: case GGUF_VT_UINT32: case GGUF_VT_UINT64:
      buf_put(&b, &kv->v.u64, elt_size(kv->type));   /* low bytes first: little-endian host */
      break;
    case GGUF_VT_INT8: case GGUF_VT_INT16: case GGUF_VT_INT32: case GGUF_VT_INT64:
      buf_put(&b, &kv->v.i64, elt_size(kv->type));
      break;
    case GGUF_VT_FLOAT32: {
      float x = (float)kv->v.f64;
      buf_put(&b, &x, 4);
      break;
    }
    case GGUF_VT_FLOAT64: buf_put(&b, &kv->v.f64, 8); break;
    case GGUF_VT_BOOL: {
      uint8_t x = kv->v.b;
      buf_put(&b, &x, 1);
      break;
    }
    case GGUF_VT_STRING: buf_str(&b, kv->v.str.p, (size_t)kv->v.str.n); break;
    case GGUF_VT_ARRAY:
      buf_u32(&b, kv->arr_type);
      buf_u64(&b, kv->arr_n);
      if (kv->arr_type == GGUF_VT_STRING) {
        for (uint64_t i = 0; i < kv->arr_n; i++) {
          struct slm_gguf_str s = slm_gguf_arr_str(f, kv, i);
          buf_str(&b, s.p, (size_t)s.n);
        }
      } else {
        buf_put(&b, kv->arr_data, (size_t)kv->arr_n * elt_size(kv->arr_type));
      }
      break;
    default:
      free(b.p);
      set_err(w, -EINVAL, "kv '%s': cannot copy type %d", key, (int)kv->type);
      free(key);
      return;
  }
  put_kv(w, key, &b);
  free(key);
}

static void add_tensor(struct slm_gguf_writer *w, const char *name, enum slm_type type, uint32_t n_dims,
                       const int64_t *ne, const void *data, slm_gguf_fill_fn fill, void *fill_ctx);

void slm_gguf_w_tensor(struct slm_gguf_writer *w, const char *name, enum slm_type type, uint32_t n_dims,
                   const int64_t *ne, const void *data) {
  add_tensor(w, name, type, n_dims, ne, data, NULL, NULL);
}

void slm_gguf_w_tensor_fill(struct slm_gguf_writer *w, const char *name, enum slm_type type, uint32_t n_dims,
                        const int64_t *ne, slm_gguf_fill_fn fill, void *ctx) {
  add_tensor(w, name, type, n_dims, ne, NULL, fill, ctx);
}

uint64_t slm_gguf_writer_n_tensors(const struct slm_gguf_writer *w) { return w->n_t; }

static void add_tensor(struct slm_gguf_writer *w, const char *name, enum slm_type type, uint32_t n_dims,
                       const int64_t *ne, const void *data, slm_gguf_fill_fn fill, void *fill_ctx) {
  if (w->err) return;
  size_t nl = strlen(name);
  if (nl == 0 || nl > 1024) {
    set_err(w, -EINVAL, "tensor name length %zu not in 1..1024", nl);
    return;
  }
  if ((unsigned)type >= SLM_TYPE_COUNT || !slm_type_infos[type].name) {
    set_err(w, -EINVAL, "tensor '%s': unknown type id %d", name, (int)type);
    return;
  }
  if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) {
    set_err(w, -EINVAL, "tensor '%s': n_dims %u not in 1..4", name, n_dims);
    return;
  }
  struct wtensor t = { .type = type, .n_dims = n_dims, .data = data, .fill = fill, .fill_ctx = fill_ctx };
  uint64_t rows = 1;
  for (int d = 0; d < GGUF_MAX_DIMS; d++) {
    t.ne[d] = d < (int)n_dims ? ne[d] : 1;
    if (t.ne[d] < 1) {
      set_err(w, -EINVAL, "tensor '%s': ne[%d] = %" PRId64 " < 1", name, d, t.ne[d]);
      return;
    }
    if (d > 0) {
      if (rows > UINT64_MAX / (uint64_t)t.ne[d]) {
        set_err(w, -EINVAL, "tensor '%s': too many rows", name);
        return;
      }
      rows *= (uint64_t)t.ne[d];
    }
  }
  size_t rs = slm_row_size(type, t.ne[0]);
  if (!rs) {
    set_err(w, -EINVAL, "tensor '%s': row length %" PRId64 " is not a multiple of %s's block of %d",
            name, t.ne[0], slm_type_infos[type].name, slm_type_infos[type].blck);
    return;
  }
  if (rows > UINT64_MAX / rs) {
    set_err(w, -EINVAL, "tensor '%s': too large", name);
    return;
  }
  t.nbytes = rs * rows;
  for (size_t i = 0; i < w->n_t; i++) {
    if (!strcmp(w->ts[i].name, name)) {
      set_err(w, -EINVAL, "duplicate tensor name '%s'", name);
      return;
    }
  }
  if (w->n_t == w->cap_t) {
    size_t nc = w->cap_t ? w->cap_t * 2 : 64;
    struct wtensor *nt = realloc(w->ts, nc * sizeof *nt);
    if (!nt) {
      set_err(w, -ENOMEM, "out of memory");
      return;
    }
    w->ts = nt;
    w->cap_t = nc;
  }
  t.name = malloc(nl + 1);
  if (!t.name) {
    set_err(w, -ENOMEM, "out of memory");
    return;
  }
  memcpy(t.name, name, nl + 1);
  w->ts[w->n_t++] = t;
}

/* Alignment from general.alignment (must be a uint32 power of two) or 32. */
static int get_alignment(struct slm_gguf_writer *w, uint32_t *out) {
  *out = 32;
  for (size_t i = 0; i < w->n_kv; i++) {
    if (w->kvs[i].keylen == 17 && !memcmp(w->kvs[i].key, "general.alignment", 17)) {
      uint32_t t, a;
      memcpy(&t, w->kvs[i].blob, 4);
      if (t != GGUF_VT_UINT32) {
        set_err(w, -EINVAL, "general.alignment must be a uint32");
        return w->err;
      }
      memcpy(&a, w->kvs[i].blob + 4, 4);
      if (a == 0 || (a & (a - 1)) || a > (1u << 30)) {
        set_err(w, -EINVAL, "general.alignment %u is not a power of two up to 2^30", a);
        return w->err;
      }
      *out = a;
    }
  }
  return 0;
}

/* Builds the header (everything before the data section, padding included) into B and assigns
 * tensor offsets; returns the total data section size in *data_n. */
static int build_header(struct slm_gguf_writer *w, struct buf *b, uint32_t *align_out, uint64_t *data_n) {
  uint32_t align;
  if (get_alignment(w, &align)) return w->err;
  buf_put(b, "GGUF", 4);
  buf_u32(b, 3);
  buf_u64(b, w->n_t);
  buf_u64(b, w->n_kv);
  for (size_t i = 0; i < w->n_kv; i++) {
    buf_str(b, w->kvs[i].key, w->kvs[i].keylen);
    buf_put(b, w->kvs[i].blob, w->kvs[i].blob_n);
  }
  uint64_t off = 0;
  for (size_t i = 0; i < w->n_t; i++) {
    struct wtensor *t = &w->ts[i];
    t->offset = off;
    buf_str(b, t->name, strlen(t->name));
    buf_u32(b, t->n_dims);
    for (uint32_t d = 0; d < t->n_dims; d++) buf_u64(b, (uint64_t)t->ne[d]);
    buf_u32(b, t->type);
    buf_u64(b, t->offset);
    uint64_t padded = t->nbytes + (align - t->nbytes % align) % align;
    if (padded < t->nbytes || off > UINT64_MAX - padded) {
      set_err(w, -EINVAL, "data section too large");
      return w->err;
    }
    off += padded;
  }
  buf_zero(b, (align - b->n % align) % align);
  if (b->oom) {
    set_err(w, -ENOMEM, "out of memory building the header");
    return w->err;
  }
  *align_out = align;
  *data_n = off;
  return 0;
}

/* The bytes of tensor T: its data pointer, or FILL run into *SCRATCH (grown as needed). */
static const void *tensor_bytes(struct slm_gguf_writer *w, const struct wtensor *t, uint8_t **scratch,
                                size_t *scratch_n) {
  if (!t->fill) return t->data;
  if (*scratch_n < t->nbytes) {
    free(*scratch);
    *scratch = malloc((size_t)t->nbytes);
    *scratch_n = *scratch ? (size_t)t->nbytes : 0;
    if (!*scratch) {
      set_err(w, -ENOMEM, "out of memory for tensor '%s' (%" PRIu64 " bytes)", t->name, t->nbytes);
      return NULL;
    }
  }
  char msg[200] = "";
  int rc = t->fill(t->fill_ctx, *scratch, (size_t)t->nbytes, msg, sizeof msg);
  if (rc) {
    set_err(w, rc, "tensor '%s': %s", t->name, msg[0] ? msg : "fill failed");
    return NULL;
  }
  return *scratch;
}

static int report(struct slm_gguf_writer *w, char *err, size_t errlen) {
  if (err && errlen) snprintf(err, errlen, "%s", w->err ? w->errmsg : "");
  return w->err;
}

int slm_gguf_writer_write_mem(struct slm_gguf_writer *w, void **out, size_t *len, char *err, size_t errlen) {
  *out = NULL;
  *len = 0;
  struct buf b = { 0 };
  uint32_t align;
  uint64_t data_n;
  if (w->err || build_header(w, &b, &align, &data_n)) {
    free(b.p);
    return report(w, err, errlen);
  }
  uint8_t *scratch = NULL;
  size_t scratch_n = 0;
  for (size_t i = 0; i < w->n_t; i++) {
    const struct wtensor *t = &w->ts[i];
    const void *src = tensor_bytes(w, t, &scratch, &scratch_n);
    if (!src) {
      free(scratch);
      free(b.p);
      return report(w, err, errlen);
    }
    buf_put(&b, src, (size_t)t->nbytes);
    buf_zero(&b, (align - t->nbytes % align) % align);
  }
  free(scratch);
  if (b.oom) {
    free(b.p);
    set_err(w, -ENOMEM, "out of memory");
    return report(w, err, errlen);
  }
  *out = b.p;
  *len = b.n;
  return report(w, err, errlen);
}

int slm_gguf_writer_write(struct slm_gguf_writer *w, const char *path, char *err, size_t errlen) {
  struct buf b = { 0 };
  uint32_t align;
  uint64_t data_n;
  if (w->err || build_header(w, &b, &align, &data_n)) {
    free(b.p);
    return report(w, err, errlen);
  }
  size_t pl = strlen(path);
  char *tmp = malloc(pl + 5);
  if (!tmp) {
    free(b.p);
    if (err && errlen) snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  memcpy(tmp, path, pl);
  memcpy(tmp + pl, ".tmp", 5);
  FILE *fp = fopen(tmp, "wb");
  if (!fp) {
    int en = errno;
    if (err && errlen) snprintf(err, errlen, "%s: %s", tmp, strerror(en));
    free(tmp);
    free(b.p);
    return -en;
  }
  static const uint8_t zeros[4096];
  uint8_t *scratch = NULL;
  size_t scratch_n = 0;
  int ok = fwrite(b.p, 1, b.n, fp) == b.n;
  int fill_failed = 0;
  for (size_t i = 0; ok && i < w->n_t; i++) {
    const struct wtensor *t = &w->ts[i];
    const void *src = tensor_bytes(w, t, &scratch, &scratch_n);
    if (!src) {
      ok = 0;
      fill_failed = 1;
      break;
    }
    ok = fwrite(src, 1, (size_t)t->nbytes, fp) == t->nbytes;
    size_t pad = (align - t->nbytes % align) % align;
    while (ok && pad) {
      size_t k = pad < sizeof zeros ? pad : sizeof zeros;
      ok = fwrite(zeros, 1, k, fp) == k;
      pad -= k;
    }
  }
  int en = ok ? 0 : errno;
  if (fflush(fp) != 0 && ok) {
    ok = 0;
    en = errno;
  }
  if (fclose(fp) != 0 && ok) {
    ok = 0;
    en = errno;
  }
  free(b.p);
  free(scratch);
  if (fill_failed) {
    unlink(tmp);
    free(tmp);
    return report(w, err, errlen);
  }
  if (!ok) {
    if (!en) en = EIO;
    if (err && errlen) snprintf(err, errlen, "writing %s: %s", tmp, strerror(en));
    unlink(tmp);
    free(tmp);
    return -en;
  }
  if (rename(tmp, path) != 0) {
    en = errno;
    if (err && errlen) snprintf(err, errlen, "rename %s -> %s: %s", tmp, path, strerror(en));
    unlink(tmp);
    free(tmp);
    return -en;
  }
  free(tmp);
  if (err && errlen) err[0] = 0;
  return 0;
}
