/*
 * gguf.c: the GGUF reader. Maps a file (or takes a caller's buffer), parses the header, the
 * metadata and the tensor infos, and validates all of it before anyone gets a pointer.
 *
 * DESIGN. A GGUF file is: "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv key/value pairs,
 * n_tensors tensor infos, padding up to general.alignment (default 32), then the data section that
 * tensor offsets are relative to. All integers are little-endian (we refuse byte-swapped files).
 *
 * Every read goes through a cursor that knows how many bytes are left, and every size computed
 * from file content (string lengths, array lengths times element sizes, tensor byte sizes, offsets
 * plus sizes) is checked with overflow-safe arithmetic before it is used. Counts are bounded by
 * what the remaining bytes could hold at the minimum encoded size of an entry, so a hostile count
 * cannot make us allocate more than a small multiple of the file size.
 *
 * Numeric scalar kvs are decoded at open (unsigned types into v.u64, signed into v.i64
 * sign-extended, floats into v.f64, bools into v.b). String arrays get a table of pointers to each
 * element's length prefix so slm_gguf_arr_str() is O(1). Keys and tensor names are indexed by sorted
 * arrays (binary search; neighbours in the order reveal duplicates): unlike a hash table, a hostile
 * file cannot make lookups or the duplicate check quadratic with colliding names.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slm/gguf.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
/* Caps that no real file comes near but keep hostile ones cheap. */
#define GGUF_MAX_KEY_LEN 65535u           /* the spec's limit on key length */
#define GGUF_MAX_TENSOR_NAME 1024u        /* ggml itself caps names at 63 bytes */
#define GGUF_MAX_ALIGNMENT (1u << 30)
/* Minimum encoded sizes, used to bound counts by the bytes left:
 * kv = key length (8) + type (4) + smallest value (1); tensor info = name length (8) + n_dims (4)
 * + one dim (8) + type (4) + offset (8). */
#define GGUF_MIN_KV_BYTES 13u
#define GGUF_MIN_TENSOR_BYTES 32u

struct slm_gguf_file {
  const uint8_t *base;      /* the mapping or the caller's buffer */
  size_t size;
  int mapped;               /* 1 if base must be munmap()ed */
  uint32_t version;
  uint32_t alignment;
  size_t data_start;        /* byte offset of the data section (may equal size when empty) */

  uint64_t n_kv;
  struct slm_gguf_kv *kvs;
  const uint8_t ***arr_str; /* per kv: for string arrays, pointers to each element's u64 length */

  uint64_t n_tensors;
  struct slm_gguf_tensor *tensors;

  uint32_t *kv_order;       /* kv indices sorted by key bytes */
  uint32_t *t_order;        /* tensor indices sorted by name bytes */
};

/* ---------------------------------------------------------------- errors */

struct perr {
  char *buf;
  size_t len;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(struct perr *e, int code, const char *fmt, ...) {
  if (e->buf && e->len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->buf, e->len, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* A printable, bounded copy of a name from the file for messages: non-printable bytes as \xNN,
 * long names cut with "...". Uses one of a few rotating static buffers: only for error paths of
 * a single open, which run on the caller's thread. */
static const char *pname(const char *p, uint64_t n) {
  static _Thread_local char bufs[2][200];
  static _Thread_local int k;
  char *out = bufs[k++ & 1];
  size_t o = 0;
  for (uint64_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (o + 8 >= sizeof bufs[0]) {
      memcpy(out + o, "...", 3);
      o += 3;
      break;
    }
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out[o++] = (char)c;
    } else {
      o += (size_t)snprintf(out + o, sizeof bufs[0] - o, "\\x%02x", c);
    }
  }
  out[o] = 0;
  return out;
}

static const char *vtype_name(uint32_t t) {
  static const char *const names[GGUF_VT_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array",
    "uint64", "int64", "float64",
  };
  return t < GGUF_VT_COUNT ? names[t] : "unknown";
}

/* ---------------------------------------------------------------- cursor */

struct cur {
  const uint8_t *p;
  size_t size;
  size_t off;
};

static size_t cur_left(const struct cur *c) { return c->size - c->off; }

static int cur_u32(struct cur *c, uint32_t *v) {
  if (cur_left(c) < 4) return -1;
  const uint8_t *b = c->p + c->off;
  *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  c->off += 4;
  return 0;
}

static int cur_u64(struct cur *c, uint64_t *v) {
  if (cur_left(c) < 8) return -1;
  const uint8_t *b = c->p + c->off;
  uint64_t x = 0;
  for (int i = 7; i >= 0; i--) x = x << 8 | b[i];
  *v = x;
  c->off += 8;
  return 0;
}

/* A length-prefixed string of at most MAXLEN bytes. */
static int cur_str(struct cur *c, struct slm_gguf_str *s, uint64_t maxlen, struct perr *e,
                   const char *what) {
  size_t at = c->off;
  uint64_t n;
  if (cur_u64(c, &n)) return fail(e, -EINVAL, "%s at byte %zu: truncated length", what, at);
  if (n > maxlen)
    return fail(e, -EINVAL, "%s at byte %zu: length %" PRIu64 " exceeds the limit %" PRIu64, what,
                at, n, maxlen);
  if (n > cur_left(c))
    return fail(e, -EINVAL,
                "%s at byte %zu: length %" PRIu64 " runs past the end of the file (%zu bytes left)",
                what, at, n, cur_left(c));
  s->p = (const char *)(c->p + c->off);
  s->n = n;
  c->off += (size_t)n;
  return 0;
}

/* ---------------------------------------------------------------- name index */

static int str_eq(struct slm_gguf_str a, const char *b, size_t bn) {
  return a.n == bn && memcmp(a.p, b, bn) == 0;
}

/* memcmp order, shorter first on a common prefix */
static int str_cmp(const char *a, uint64_t an, const char *b, uint64_t bn) {
  int c = memcmp(a, b, (size_t)(an < bn ? an : bn));
  if (c) return c;
  return an < bn ? -1 : an > bn;
}

static _Thread_local const struct slm_gguf_str *sort_names;   /* qsort has no context argument */
static _Thread_local size_t sort_stride;

static const struct slm_gguf_str *name_at(const void *base, size_t stride, uint32_t i) {
  return (const struct slm_gguf_str *)((const char *)base + (size_t)i * stride);
}

static int cmp_index(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  const struct slm_gguf_str *sx = name_at(sort_names, sort_stride, x), *sy = name_at(sort_names, sort_stride, y);
  int c = str_cmp(sx->p, sx->n, sy->p, sy->n);
  return c ? c : (x > y) - (x < y);   /* ties by position: the duplicate reported is the later one */
}

/* Sorts indices 0..N-1 of the names found at BASE + i * STRIDE (a struct slm_gguf_str); returns the
 * index array, or NULL without memory. On a duplicate, *DUP is the index of its second copy. */
static uint32_t *build_order(const void *base, size_t stride, uint64_t n, int64_t *dup) {
  uint32_t *o = malloc((size_t)(n ? n : 1) * sizeof *o);
  *dup = -1;
  if (!o) return NULL;
  for (uint64_t i = 0; i < n; i++) o[i] = (uint32_t)i;
  sort_names = base;
  sort_stride = stride;
  qsort(o, (size_t)n, sizeof *o, cmp_index);
  for (uint64_t i = 1; i < n; i++) {
    const struct slm_gguf_str *a = name_at(base, stride, o[i - 1]), *b = name_at(base, stride, o[i]);
    if (a->n == b->n && !memcmp(a->p, b->p, (size_t)a->n)) {
      if (*dup < 0 || o[i] < (uint32_t)*dup) *dup = o[i];
    }
  }
  return o;
}

/* Binary search in an order built by build_order; -1 if absent. */
static int64_t find_in(const void *base, size_t stride, const uint32_t *o, uint64_t n, const char *name,
                       size_t len) {
  uint64_t lo = 0, hi = n;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    const struct slm_gguf_str *s = name_at(base, stride, o[mid]);
    int c = str_cmp(s->p, s->n, name, len);
    if (c == 0) return o[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

/* ---------------------------------------------------------------- metadata */

static size_t vtype_size(uint32_t t) {
  switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_INT8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16: case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32: case GGUF_VT_INT32: case GGUF_VT_FLOAT32: return 4;
    case GGUF_VT_UINT64: case GGUF_VT_INT64: case GGUF_VT_FLOAT64: return 8;
    default: return 0;   /* string, array, unknown */
  }
}

static uint64_t load_le(const uint8_t *b, size_t n) {
  uint64_t x = 0;
  for (size_t i = n; i-- > 0;) x = x << 8 | b[i];
  return x;
}

/* Decodes a fixed-size scalar of type T at B into KV's value. */
static void decode_scalar(struct slm_gguf_kv *kv, uint32_t t, const uint8_t *b) {
  uint64_t x = load_le(b, vtype_size(t));
  switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_UINT16: case GGUF_VT_UINT32: case GGUF_VT_UINT64:
      kv->v.u64 = x;
      break;
    case GGUF_VT_INT8: kv->v.i64 = (int8_t)(uint8_t)x; break;
    case GGUF_VT_INT16: kv->v.i64 = (int16_t)(uint16_t)x; break;
    case GGUF_VT_INT32: kv->v.i64 = (int32_t)(uint32_t)x; break;
    case GGUF_VT_INT64: kv->v.i64 = (int64_t)x; break;
    case GGUF_VT_FLOAT32: {
      uint32_t u = (uint32_t)x;
      float fl;
      memcpy(&fl, &u, 4);
      kv->v.f64 = fl;
      break;
    }
    case GGUF_VT_FLOAT64: memcpy(&kv->v.f64, &x, 8); break;
    case GGUF_VT_BOOL: kv->v.b = x != 0; break;
    default: break;
  }
}

static int parse_kv(struct slm_gguf_file *f, struct cur *c, uint64_t idx, struct perr *e) {
  struct slm_gguf_kv *kv = &f->kvs[idx];
  size_t at = c->off;
  char what[64];
  snprintf(what, sizeof what, "key of kv #%" PRIu64, idx);
  int rc = cur_str(c, &kv->key, GGUF_MAX_KEY_LEN, e, what);
  if (rc) return rc;
  if (kv->key.n == 0) return fail(e, -EINVAL, "kv #%" PRIu64 " at byte %zu: empty key", idx, at);
  const char *kn = pname(kv->key.p, kv->key.n);

  uint32_t t;
  if (cur_u32(c, &t)) return fail(e, -EINVAL, "kv '%s': truncated value type", kn);
  if (t >= GGUF_VT_COUNT)
    return fail(e, -EINVAL, "kv '%s': unknown value type %" PRIu32, kn, t);
  kv->type = (enum slm_gguf_vtype)t;

  if (t == GGUF_VT_STRING) {
    snprintf(what, sizeof what, "string value of kv #%" PRIu64, idx);
    return cur_str(c, &kv->v.str, UINT64_MAX, e, what);
  }
  if (t != GGUF_VT_ARRAY) {
    size_t sz = vtype_size(t);
    if (cur_left(c) < sz) return fail(e, -EINVAL, "kv '%s': truncated %s value", kn, vtype_name(t));
    const uint8_t *b = c->p + c->off;
    if (t == GGUF_VT_BOOL && b[0] > 1)
      return fail(e, -EINVAL, "kv '%s': bool value %u is neither 0 nor 1", kn, b[0]);
    decode_scalar(kv, t, b);
    c->off += sz;
    return 0;
  }

  uint32_t at_;
  uint64_t n;
  if (cur_u32(c, &at_)) return fail(e, -EINVAL, "kv '%s': truncated array element type", kn);
  if (at_ == GGUF_VT_ARRAY) return fail(e, -EINVAL, "kv '%s': nested arrays are not supported", kn);
  if (at_ >= GGUF_VT_COUNT)
    return fail(e, -EINVAL, "kv '%s': unknown array element type %" PRIu32, kn, at_);
  if (cur_u64(c, &n)) return fail(e, -EINVAL, "kv '%s': truncated array length", kn);
  kv->arr_type = (enum slm_gguf_vtype)at_;
  kv->arr_n = n;
  kv->arr_data = c->p + c->off;
  if (at_ != GGUF_VT_STRING) {
    size_t sz = vtype_size(at_);
    if (n > cur_left(c) / sz)
      return fail(e, -EINVAL,
                  "kv '%s': array of %" PRIu64 " %s runs past the end of the file (%zu bytes left)",
                  kn, n, vtype_name(at_), cur_left(c));
    if (at_ == GGUF_VT_BOOL) {
      for (uint64_t i = 0; i < n; i++)
        if (kv->arr_data[i] > 1)
          return fail(e, -EINVAL, "kv '%s': bool element %" PRIu64 " is %u, neither 0 nor 1", kn,
                      i, kv->arr_data[i]);
    }
    c->off += (size_t)(n * sz);
    return 0;
  }
  /* string array: every element takes at least its 8-byte length */
  if (n > cur_left(c) / 8)
    return fail(e, -EINVAL,
                "kv '%s': array of %" PRIu64 " strings runs past the end of the file (%zu bytes left)",
                kn, n, cur_left(c));
  const uint8_t **tab = malloc((size_t)(n ? n : 1) * sizeof *tab);
  if (!tab) return fail(e, -ENOMEM, "kv '%s': out of memory for %" PRIu64 " strings", kn, n);
  f->arr_str[idx] = tab;
  for (uint64_t i = 0; i < n; i++) {
    struct slm_gguf_str s;
    tab[i] = c->p + c->off;
    snprintf(what, sizeof what, "element %" PRIu64 " of string array", i);
    rc = cur_str(c, &s, UINT64_MAX, e, what);
    if (rc) {
      /* prefix the key for context */
      char tmp[256];
      snprintf(tmp, sizeof tmp, "%s", e->buf && e->len ? e->buf : "");
      return fail(e, rc, "kv '%s': %s", kn, tmp);
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- tensors */

static int parse_tensor_info(struct slm_gguf_file *f, struct cur *c, uint64_t idx, struct perr *e) {
  struct slm_gguf_tensor *t = &f->tensors[idx];
  char what[64];
  snprintf(what, sizeof what, "name of tensor #%" PRIu64, idx);
  int rc = cur_str(c, &t->name, GGUF_MAX_TENSOR_NAME, e, what);
  if (rc) return rc;
  if (t->name.n == 0) return fail(e, -EINVAL, "tensor #%" PRIu64 ": empty name", idx);
  const char *tn = pname(t->name.p, t->name.n);

  uint32_t nd;
  if (cur_u32(c, &nd)) return fail(e, -EINVAL, "tensor '%s': truncated n_dims", tn);
  if (nd < 1 || nd > GGUF_MAX_DIMS)
    return fail(e, -EINVAL, "tensor '%s': n_dims %" PRIu32 " not in 1..%d", tn, nd, GGUF_MAX_DIMS);
  t->n_dims = nd;
  for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
  for (uint32_t d = 0; d < nd; d++) {
    uint64_t v;
    if (cur_u64(c, &v)) return fail(e, -EINVAL, "tensor '%s': truncated dims", tn);
    if (v == 0 || v > INT64_MAX)
      return fail(e, -EINVAL, "tensor '%s': ne[%" PRIu32 "] = %" PRIu64 " is not in 1..INT64_MAX",
                  tn, d, v);
    t->ne[d] = (int64_t)v;
  }
  /* element count without overflow */
  int64_t nel = t->ne[0];
  for (int d = 1; d < GGUF_MAX_DIMS; d++) {
    if (nel > INT64_MAX / t->ne[d])
      return fail(e, -EINVAL,
                  "tensor '%s': shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                  "] has more than INT64_MAX elements",
                  tn, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    nel *= t->ne[d];
  }

  uint32_t ty;
  if (cur_u32(c, &ty)) return fail(e, -EINVAL, "tensor '%s': truncated type", tn);
  if (ty >= SLM_TYPE_COUNT || !slm_type_infos[ty].name)
    return fail(e, -ENOTSUP, "tensor '%s': unknown tensor type id %" PRIu32, tn, ty);
  t->type = (enum slm_type)ty;
  const struct slm_type_info *ti = &slm_type_infos[ty];
  if (t->ne[0] % ti->blck)
    return fail(e, -EINVAL, "tensor '%s': row length %" PRId64 " is not a multiple of %s's block of %d",
                tn, t->ne[0], ti->name, ti->blck);
  /* bytes: blocks per row * block size * rows, each step checked */
  uint64_t blocks = (uint64_t)(t->ne[0] / ti->blck);
  uint64_t rows = (uint64_t)(nel / t->ne[0]);
  if (blocks > UINT64_MAX / ti->size || blocks * ti->size > UINT64_MAX / rows ||
      blocks * ti->size * rows > SIZE_MAX)
    return fail(e, -EINVAL, "tensor '%s': byte size overflows", tn);
  t->nbytes = blocks * ti->size * rows;

  if (cur_u64(c, &t->offset)) return fail(e, -EINVAL, "tensor '%s': truncated offset", tn);
  return 0;
}

static int cmp_by_offset(const void *a, const void *b) {
  const struct slm_gguf_tensor *x = *(const struct slm_gguf_tensor *const *)a;
  const struct slm_gguf_tensor *y = *(const struct slm_gguf_tensor *const *)b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* ---------------------------------------------------------------- open */

static int parse(struct slm_gguf_file *f, struct perr *e) {
  struct cur c = { f->base, f->size, 0 };
  int rc;

  if (f->size < 4 || memcmp(f->base, "GGUF", 4) != 0) {
    if (f->size < 4) return fail(e, -EINVAL, "not a GGUF file: only %zu bytes", f->size);
    return fail(e, -EINVAL, "not a GGUF file: magic is %s, expected 'GGUF'",
                pname((const char *)f->base, 4));
  }
  c.off = 4;
  if (cur_u32(&c, &f->version)) return fail(e, -EINVAL, "truncated GGUF header: no version");
  if (f->version == 1)
    return fail(e, -ENOTSUP, "GGUF v1 is not supported (re-convert the model with a current llama.cpp)");
  if (f->version != 2 && f->version != 3) {
    uint32_t v = f->version;
    uint32_t sw = (v >> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24);
    if (sw >= 1 && sw <= 3)
      return fail(e, -ENOTSUP, "big-endian GGUF (v%" PRIu32 ") is not supported", sw);
    return fail(e, -ENOTSUP, "GGUF version %" PRIu32 " is not supported (only 2 and 3)", v);
  }
  if (cur_u64(&c, &f->n_tensors) || cur_u64(&c, &f->n_kv))
    return fail(e, -EINVAL, "truncated GGUF header: %zu bytes", f->size);
  /* Bound the counts by what the rest of the file could hold. */
  uint64_t left = cur_left(&c);
  if (f->n_kv > left / GGUF_MIN_KV_BYTES || f->n_kv > UINT32_MAX / 4)
    return fail(e, -EINVAL, "n_kv %" PRIu64 " is impossible in a file of %zu bytes", f->n_kv, f->size);
  if (f->n_tensors > (left - f->n_kv * GGUF_MIN_KV_BYTES) / GGUF_MIN_TENSOR_BYTES ||
      f->n_tensors > UINT32_MAX / 4)
    return fail(e, -EINVAL, "n_tensors %" PRIu64 " is impossible in a file of %zu bytes",
                f->n_tensors, f->size);

  f->kvs = calloc((size_t)(f->n_kv ? f->n_kv : 1), sizeof *f->kvs);
  f->arr_str = calloc((size_t)(f->n_kv ? f->n_kv : 1), sizeof *f->arr_str);
  f->tensors = calloc((size_t)(f->n_tensors ? f->n_tensors : 1), sizeof *f->tensors);
  if (!f->kvs || !f->arr_str || !f->tensors) return fail(e, -ENOMEM, "out of memory");

  f->alignment = GGUF_DEFAULT_ALIGNMENT;
  for (uint64_t i = 0; i < f->n_kv; i++) {
    if ((rc = parse_kv(f, &c, i, e))) return rc;
    struct slm_gguf_kv *kv = &f->kvs[i];
    if (str_eq(kv->key, "general.alignment", 17)) {
      if (kv->type != GGUF_VT_UINT32)
        return fail(e, -EINVAL, "general.alignment has type %s, expected uint32", vtype_name(kv->type));
      uint64_t a = kv->v.u64;
      if (a == 0 || (a & (a - 1)) || a > GGUF_MAX_ALIGNMENT)
        return fail(e, -EINVAL, "general.alignment %" PRIu64 " is not a power of two up to 2^30", a);
      f->alignment = (uint32_t)a;
    }
  }

  for (uint64_t i = 0; i < f->n_tensors; i++) {
    if ((rc = parse_tensor_info(f, &c, i, e))) return rc;
  }

  int64_t dup;
  f->kv_order = build_order(&f->kvs[0].key, sizeof f->kvs[0], f->n_kv, &dup);
  if (!f->kv_order) return fail(e, -ENOMEM, "out of memory");
  if (dup >= 0) return fail(e, -EINVAL, "duplicate key '%s'", pname(f->kvs[dup].key.p, f->kvs[dup].key.n));
  f->t_order = build_order(&f->tensors[0].name, sizeof f->tensors[0], f->n_tensors, &dup);
  if (!f->t_order) return fail(e, -ENOMEM, "out of memory");
  if (dup >= 0)
    return fail(e, -EINVAL, "duplicate tensor name '%s'", pname(f->tensors[dup].name.p, f->tensors[dup].name.n));

  /* The data section starts at the next multiple of the alignment. With no tensors, a file may
   * end right after the header without padding. */
  size_t hdr_end = c.off;
  size_t pad = (f->alignment - hdr_end % f->alignment) % f->alignment;
  if (f->n_tensors == 0) {
    f->data_start = pad <= f->size - hdr_end ? hdr_end + pad : f->size;
    return 0;
  }
  if (pad > f->size - hdr_end)
    return fail(e, -EINVAL, "data section would start at byte %zu, beyond file size %zu",
                hdr_end + pad, f->size);
  f->data_start = hdr_end + pad;
  size_t data_len = f->size - f->data_start;

  for (uint64_t i = 0; i < f->n_tensors; i++) {
    struct slm_gguf_tensor *t = &f->tensors[i];
    const char *tn = pname(t->name.p, t->name.n);
    if (t->offset % f->alignment)
      return fail(e, -EINVAL, "tensor '%s': offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
                  tn, t->offset, f->alignment);
    if (t->offset > data_len || t->nbytes > data_len - t->offset) {
      /* report in absolute bytes, saturating so the message itself cannot overflow */
      uint64_t start = t->offset > UINT64_MAX - f->data_start ? UINT64_MAX : t->offset + f->data_start;
      uint64_t end = t->nbytes > UINT64_MAX - start ? UINT64_MAX : start + t->nbytes;
      return fail(e, -EINVAL, "tensor '%s': data ends at byte %" PRIu64 " beyond file size %zu", tn,
                  end, f->size);
    }
    t->data = f->base + f->data_start + t->offset;
  }

  /* No two tensors may share bytes. */
  struct slm_gguf_tensor **order = malloc((size_t)f->n_tensors * sizeof *order);
  if (!order) return fail(e, -ENOMEM, "out of memory");
  for (uint64_t i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
  qsort(order, (size_t)f->n_tensors, sizeof *order, cmp_by_offset);
  rc = 0;
  for (uint64_t i = 1; i < f->n_tensors; i++) {
    const struct slm_gguf_tensor *a = order[i - 1], *b = order[i];
    if (a->offset + a->nbytes > b->offset) {   /* both bounded by data_len: no overflow */
      rc = fail(e, -EINVAL, "tensor '%s' (bytes %" PRIu64 "..%" PRIu64 ") overlaps tensor '%s' (from %" PRIu64 ")",
                pname(b->name.p, b->name.n), b->offset, b->offset + b->nbytes,
                pname(a->name.p, a->name.n), a->offset);
      /* message names the later one first; both are relative to the data section */
      break;
    }
  }
  free(order);
  return rc;
}

static void free_file(struct slm_gguf_file *f) {
  if (!f) return;
  if (f->arr_str) {
    for (uint64_t i = 0; i < f->n_kv; i++) free(f->arr_str[i]);
    free(f->arr_str);
  }
  free(f->kvs);
  free(f->tensors);
  free(f->kv_order);
  free(f->t_order);
  if (f->mapped) munmap((void *)f->base, f->size);
  free(f);
}

static int open_common(struct slm_gguf_file *f, struct slm_gguf_file **out, struct perr *e) {
  int rc = parse(f, e);
  if (rc) {
    free_file(f);
    return rc;
  }
  if (e->buf && e->len) e->buf[0] = 0;
  *out = f;
  return 0;
}

int slm_gguf_open_mem(const void *buf, size_t len, struct slm_gguf_file **out, char *err, size_t errlen) {
  struct perr e = { err, errlen };
  *out = NULL;
  if (!buf && len) return fail(&e, -EINVAL, "NULL buffer");
  struct slm_gguf_file *f = calloc(1, sizeof *f);
  if (!f) return fail(&e, -ENOMEM, "out of memory");
  f->base = buf ? buf : (const uint8_t *)"";
  f->size = len;
  return open_common(f, out, &e);
}

int slm_gguf_open(const char *path, struct slm_gguf_file **out, char *err, size_t errlen) {
  struct perr e = { err, errlen };
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int en = errno;
    return fail(&e, -en, "%s: %s", path, strerror(en));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int en = errno;
    close(fd);
    return fail(&e, -en, "%s: %s", path, strerror(en));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return fail(&e, -EINVAL, "%s: not a regular file", path);
  }
  if (st.st_size < 4) {
    close(fd);
    return fail(&e, -EINVAL, "%s: not a GGUF file: only %lld bytes", path, (long long)st.st_size);
  }
  if ((uint64_t)st.st_size > SIZE_MAX) {
    close(fd);
    return fail(&e, -EINVAL, "%s: too large to map", path);
  }
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int en = errno;
  close(fd);
  if (m == MAP_FAILED) return fail(&e, -en, "%s: mmap: %s", path, strerror(en));
  struct slm_gguf_file *f = calloc(1, sizeof *f);
  if (!f) {
    munmap(m, (size_t)st.st_size);
    return fail(&e, -ENOMEM, "out of memory");
  }
  f->base = m;
  f->size = (size_t)st.st_size;
  f->mapped = 1;
  int rc = open_common(f, out, &e);
  if (rc && err && errlen) {
    /* prefix the path so the caller's message says which file */
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", err);
    snprintf(err, errlen, "%s: %s", path, tmp);
  }
  return rc;
}

void slm_gguf_close(struct slm_gguf_file *f) { free_file(f); }

/* ---------------------------------------------------------------- accessors */

uint32_t slm_gguf_version(const struct slm_gguf_file *f) { return f->version; }
uint32_t slm_gguf_alignment(const struct slm_gguf_file *f) { return f->alignment; }
size_t slm_gguf_file_size(const struct slm_gguf_file *f) { return f->size; }
size_t slm_gguf_data_offset(const struct slm_gguf_file *f) { return f->data_start; }
const void *slm_gguf_base(const struct slm_gguf_file *f) { return f->base; }

uint64_t slm_gguf_n_kv(const struct slm_gguf_file *f) { return f->n_kv; }

const struct slm_gguf_kv *slm_gguf_kv_at(const struct slm_gguf_file *f, uint64_t i) {
  return i < f->n_kv ? &f->kvs[i] : NULL;
}

const struct slm_gguf_kv *slm_gguf_find_kv(const struct slm_gguf_file *f, const char *key) {
  int64_t i = find_in(&f->kvs[0].key, sizeof f->kvs[0], f->kv_order, f->n_kv, key, strlen(key));
  return i < 0 ? NULL : &f->kvs[i];
}

static int is_unsigned(enum slm_gguf_vtype t) {
  return t == GGUF_VT_UINT8 || t == GGUF_VT_UINT16 || t == GGUF_VT_UINT32 || t == GGUF_VT_UINT64;
}
static int is_signed(enum slm_gguf_vtype t) {
  return t == GGUF_VT_INT8 || t == GGUF_VT_INT16 || t == GGUF_VT_INT32 || t == GGUF_VT_INT64;
}

int slm_gguf_get_u32(const struct slm_gguf_file *f, const char *key, uint32_t *out) {
  const struct slm_gguf_kv *kv = slm_gguf_find_kv(f, key);
  if (!kv) return -ENOENT;
  if (is_unsigned(kv->type) && kv->v.u64 <= UINT32_MAX) {
    *out = (uint32_t)kv->v.u64;
    return 0;
  }
  if (is_signed(kv->type) && kv->v.i64 >= 0 && kv->v.i64 <= (int64_t)UINT32_MAX) {
    *out = (uint32_t)kv->v.i64;
    return 0;
  }
  return -EINVAL;
}

int slm_gguf_get_i64(const struct slm_gguf_file *f, const char *key, int64_t *out) {
  const struct slm_gguf_kv *kv = slm_gguf_find_kv(f, key);
  if (!kv) return -ENOENT;
  if (is_signed(kv->type)) {
    *out = kv->v.i64;
    return 0;
  }
  if (is_unsigned(kv->type) && kv->v.u64 <= INT64_MAX) {
    *out = (int64_t)kv->v.u64;
    return 0;
  }
  return -EINVAL;
}

int slm_gguf_get_f32(const struct slm_gguf_file *f, const char *key, float *out) {
  const struct slm_gguf_kv *kv = slm_gguf_find_kv(f, key);
  if (!kv) return -ENOENT;
  if (kv->type != GGUF_VT_FLOAT32 && kv->type != GGUF_VT_FLOAT64) return -EINVAL;
  *out = (float)kv->v.f64;
  return 0;
}

int slm_gguf_get_bool(const struct slm_gguf_file *f, const char *key, bool *out) {
  const struct slm_gguf_kv *kv = slm_gguf_find_kv(f, key);
  if (!kv) return -ENOENT;
  if (kv->type != GGUF_VT_BOOL) return -EINVAL;
  *out = kv->v.b;
  return 0;
}

int slm_gguf_get_str(const struct slm_gguf_file *f, const char *key, struct slm_gguf_str *out) {
  const struct slm_gguf_kv *kv = slm_gguf_find_kv(f, key);
  if (!kv) return -ENOENT;
  if (kv->type != GGUF_VT_STRING) return -EINVAL;
  *out = kv->v.str;
  return 0;
}

struct slm_gguf_str slm_gguf_arr_str(const struct slm_gguf_file *f, const struct slm_gguf_kv *kv, uint64_t i) {
  struct slm_gguf_str s = { NULL, 0 };
  if (!kv || kv < f->kvs || kv >= f->kvs + f->n_kv) return s;
  if (kv->type != GGUF_VT_ARRAY || kv->arr_type != GGUF_VT_STRING || i >= kv->arr_n) return s;
  const uint8_t *b = f->arr_str[kv - f->kvs][i];
  s.n = load_le(b, 8);
  s.p = (const char *)(b + 8);
  return s;
}

uint64_t slm_gguf_n_tensors(const struct slm_gguf_file *f) { return f->n_tensors; }

const struct slm_gguf_tensor *slm_gguf_tensor_at(const struct slm_gguf_file *f, uint64_t i) {
  return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct slm_gguf_tensor *slm_gguf_find_tensor(const struct slm_gguf_file *f, const char *name) {
  int64_t i = find_in(&f->tensors[0].name, sizeof f->tensors[0], f->t_order, f->n_tensors, name,
                      strlen(name));
  return i < 0 ? NULL : &f->tensors[i];
}
