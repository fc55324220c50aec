/*
 * schema.c: a JSON Schema document: its draft, its subschema locations with their JSON pointers
 * (for error messages), its resources ($id / id, which set base URIs) and anchors ($anchor, or
 * "$id": "#name" in drafts 6-7, "id": "#name" in draft 4), and $ref resolution: JSON pointers
 * (with ~0 ~1 and %-escapes), anchors, and URIs that name a resource of the same document.
 * Anything else (another file, a URL on the network) is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/schema.h"

static uint32_t hptr(const void *p) {
  uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
  return (uint32_t)(h >> 32);
}

static int lrehash(struct sdoc *d, size_t nmask) {
  uint32_t *ns = calloc(nmask + 1, sizeof *ns);
  if (!ns) return -ENOMEM;
  for (size_t i = 0; i < d->nlocs; i++) {
    size_t j = hptr(d->locs[i].v) & nmask;
    while (ns[j]) j = (j + 1) & nmask;
    ns[j] = (uint32_t)i + 1;
  }
  free(d->lslot);
  d->lslot = ns;
  d->lmask = nmask;
  return 0;
}

uint32_t sd_loc(struct sdoc *d, const struct cj_val *v, const char *ptr, uint32_t res) {
  size_t j = hptr(v) & d->lmask;
  while (d->lslot[j]) {
    if (d->locs[d->lslot[j] - 1].v == v) return d->lslot[j] - 1;
    j = (j + 1) & d->lmask;
  }
  if (d->nlocs >= (1u << 30) || cn_grow(&d->locs, &d->cap_locs, d->nlocs + 1, sizeof *d->locs))
    return UINT32_MAX;
  const char *p = cn_memdup(d->a, ptr, strlen(ptr));
  if (!p) return UINT32_MAX;
  d->locs[d->nlocs] = (struct sloc){v, p, res};
  d->lslot[j] = (uint32_t)d->nlocs + 1;
  uint32_t id = (uint32_t)d->nlocs++;
  if (d->nlocs * 2 > d->lmask && lrehash(d, d->lmask * 2 + 1)) return UINT32_MAX;
  return id;
}

/* PTR + "/" + KEY escaped (~ -> ~0, / -> ~1), in the arena. */
static char *ptr_join(struct sdoc *d, const char *ptr, const char *key) {
  size_t n = strlen(ptr), k = strlen(key), extra = 0;
  for (size_t i = 0; i < k; i++)
    if (key[i] == '~' || key[i] == '/') extra++;
  if (n + k + extra + 2 > 4096) return cn_memdup(d->a, ptr, n);   /* keep messages bounded */
  char *o = cn_alloc(d->a, n + k + extra + 2);
  if (!o) return NULL;
  memcpy(o, ptr, n);
  size_t w = n;
  o[w++] = '/';
  for (size_t i = 0; i < k; i++) {
    if (key[i] == '~') o[w++] = '~', o[w++] = '0';
    else if (key[i] == '/') o[w++] = '~', o[w++] = '1';
    else o[w++] = key[i];
  }
  o[w] = 0;
  return o;
}

uint32_t sd_child(struct sdoc *d, uint32_t l, const char *key, int idx, const char *name) {
  const struct cj_val *o = d->locs[l].v;
  const struct cj_val *v = cj_get(o, key);
  if (!v) return UINT32_MAX;
  char *p = ptr_join(d, d->locs[l].ptr, key);
  if (!p) return UINT32_MAX;
  if (idx >= 0) {
    if (v->type != CJ_ARRAY || (uint32_t)idx >= v->len) return UINT32_MAX;
    v = &v->u.items[idx];
    char num[16];
    snprintf(num, sizeof num, "%d", idx);
    p = ptr_join(d, p, num);
  } else if (name) {
    v = cj_get(v, name);
    if (!v) return UINT32_MAX;
    p = ptr_join(d, p, name);
  }
  if (!p) return UINT32_MAX;
  return sd_loc(d, v, p, d->locs[l].res);
}

/* ---------------------------------------------------------------- URIs */

static bool has_scheme(const char *s) {
  if (!((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z')) return false;
  for (const char *p = s + 1; *p; p++) {
    if (*p == ':') return true;
    if (!((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') && !(*p >= '0' && *p <= '9') && *p != '+' &&
        *p != '-' && *p != '.')
      return false;
  }
  return false;
}

/* REF resolved against BASE (both without fragment), in the arena. */
static char *resolve(struct sdoc *d, const char *base, const char *ref) {
  size_t bl = strlen(base), rl = strlen(ref);
  if (!*ref) return cn_memdup(d->a, base, bl);
  if (has_scheme(ref) || !*base) return cn_memdup(d->a, ref, rl);
  char *o = cn_alloc(d->a, bl + rl + 2);
  if (!o) return NULL;
  if (ref[0] == '/' && ref[1] == '/') {
    const char *c = strchr(base, ':');
    size_t k = c ? (size_t)(c - base) + 1 : 0;
    memcpy(o, base, k);
    memcpy(o + k, ref, rl + 1);
    return o;
  }
  if (ref[0] == '/') {
    const char *c = strstr(base, "://");
    size_t k = 0;
    if (c) {
      const char *sl = strchr(c + 3, '/');
      k = sl ? (size_t)(sl - base) : bl;
    }
    memcpy(o, base, k);
    memcpy(o + k, ref, rl + 1);
    return o;
  }
  const char *sl = strrchr(base, '/');
  size_t k = sl ? (size_t)(sl - base) + 1 : 0;
  memcpy(o, base, k);
  memcpy(o + k, ref, rl + 1);
  return o;
}

static char *strip_frag(struct sdoc *d, const char *u) {
  const char *h = strchr(u, '#');
  return cn_memdup(d->a, u, h ? (size_t)(h - u) : strlen(u));
}

static int add_res(struct sdoc *d, const char *uri, uint32_t loc) {
  for (size_t i = 0; i < d->nres; i++)
    if (!strcmp(d->res[i].uri, uri)) return (int)i;   /* first wins */
  if (cn_grow(&d->res, &d->cap_res, d->nres + 1, sizeof *d->res)) return -ENOMEM;
  d->res[d->nres] = (struct sres){uri, loc};
  return (int)d->nres++;
}

static int add_anchor(struct sdoc *d, const char *name, uint32_t loc) {
  if (cn_grow(&d->anc, &d->cap_anc, d->nanc + 1, sizeof *d->anc)) return -ENOMEM;
  d->anc[d->nanc++] = (struct sanchor){name, loc};
  return 0;
}

/* ---------------------------------------------------------------- walking the document */

static const char *const single_kw[] = {"additionalProperties", "additionalItems", "items", "not",
                                        "if", "then", "else", "contains", "propertyNames",
                                        "unevaluatedItems", "unevaluatedProperties", NULL};
static const char *const list_kw[] = {"allOf", "anyOf", "oneOf", "items", "prefixItems", NULL};
static const char *const map_kw[] = {"properties", "patternProperties", "definitions", "$defs",
                                     "dependentSchemas", "dependencies", NULL};

static bool id_keyword(const struct sdoc *d, const char *key, const struct cj_val *v) {
  if (!strcmp(key, "$id")) return d->draft != DR_4;
  if (!strcmp(key, "id") && (d->draft == DR_4 || d->draft == DR_UNKNOWN)) {
    /* "id" is also a common property name: only URI-looking values name a resource */
    return v->len > 0 && (strchr(v->u.s, ':') || v->u.s[0] == '#' || strstr(v->u.s, ".json"));
  }
  return false;
}

static int walk(struct sdoc *d, const struct cj_val *v, const char *ptr, uint32_t res, int depth) {
  if (depth > 300) return 0;
  if (v->type != CJ_OBJECT) {
    if (v->type == CJ_TRUE || v->type == CJ_FALSE) return sd_loc(d, v, ptr, res) == UINT32_MAX ? -ENOMEM : 0;
    return 0;
  }
  /* a new resource? */
  for (uint32_t i = 0; i < v->len; i++) {
    const struct cj_member *m = &v->u.members[i];
    if (m->val.type != CJ_STRING || !id_keyword(d, m->key, &m->val)) continue;
    const char *id = m->val.u.s;
    if (id[0] == '#') {   /* "#name": an anchor (drafts 4-7) */
      if (id[1] && add_anchor(d, id + 1, UINT32_MAX)) return -ENOMEM;
      continue;
    }
    char *u = resolve(d, d->res[res].uri, strip_frag(d, id));
    if (!u) return -ENOMEM;
    int r = add_res(d, u, UINT32_MAX);
    if (r < 0) return r;
    res = (uint32_t)r;
  }
  uint32_t l = sd_loc(d, v, ptr, res);
  if (l == UINT32_MAX) return -ENOMEM;
  /* fill resource / anchor locations made above */
  if (d->res[res].loc == UINT32_MAX) d->res[res].loc = l;
  for (size_t i = 0; i < d->nanc; i++)
    if (d->anc[i].loc == UINT32_MAX) d->anc[i].loc = l;
  const struct cj_val *an = cj_get(v, "$anchor");
  if (an && an->type == CJ_STRING && add_anchor(d, an->u.s, l)) return -ENOMEM;
  an = cj_get(v, "$dynamicAnchor");
  if (an && an->type == CJ_STRING && add_anchor(d, an->u.s, l)) return -ENOMEM;
  for (uint32_t i = 0; i < v->len; i++) {
    const struct cj_member *m = &v->u.members[i];
    const struct cj_val *c = &m->val;
    char *p = ptr_join(d, ptr, m->key);
    if (!p) return -ENOMEM;
    int rc = 0;
    for (size_t k = 0; single_kw[k] && !rc; k++)
      if (!strcmp(m->key, single_kw[k]) && (c->type == CJ_OBJECT || c->type == CJ_TRUE || c->type == CJ_FALSE))
        rc = walk(d, c, p, res, depth + 1);
    for (size_t k = 0; list_kw[k] && !rc; k++)
      if (!strcmp(m->key, list_kw[k]) && c->type == CJ_ARRAY)
        for (uint32_t j = 0; j < c->len && !rc; j++) {
          char num[16];
          snprintf(num, sizeof num, "%u", j);
          char *q = ptr_join(d, p, num);
          rc = q ? walk(d, &c->u.items[j], q, res, depth + 1) : -ENOMEM;
        }
    for (size_t k = 0; map_kw[k] && !rc; k++)
      if (!strcmp(m->key, map_kw[k]) && c->type == CJ_OBJECT)
        for (uint32_t j = 0; j < c->len && !rc; j++) {
          char *q = ptr_join(d, p, c->u.members[j].key);
          rc = q ? walk(d, &c->u.members[j].val, q, res, depth + 1) : -ENOMEM;
        }
    if (rc) return rc;
  }
  return 0;
}

int sd_load(struct sdoc *d, struct cn_arena *a, const struct cj_val *root, struct cn_err *err) {
  memset(d, 0, sizeof *d);
  d->a = a;
  d->err = err;
  if (lrehash(d, 255)) return -ENOMEM;
  const struct cj_val *s = cj_get(root, "$schema");
  d->draft = DR_UNKNOWN;
  if (s && s->type == CJ_STRING) {
    if (strstr(s->u.s, "draft-04") || strstr(s->u.s, "draft-03")) d->draft = DR_4;
    else if (strstr(s->u.s, "draft-06")) d->draft = DR_6;
    else if (strstr(s->u.s, "draft-07")) d->draft = DR_7;
    else if (strstr(s->u.s, "2019-09")) d->draft = DR_2019;
    else if (strstr(s->u.s, "2020-12")) d->draft = DR_2020;
  }
  if (add_res(d, "", UINT32_MAX) < 0) return -ENOMEM;
  int rc = walk(d, root, "", 0, 0);
  if (rc) return rc;
  if (d->res[0].loc == UINT32_MAX) d->res[0].loc = sd_loc(d, root, "", 0);
  return d->res[0].loc == UINT32_MAX ? -ENOMEM : 0;
}

void sd_free(struct sdoc *d) {
  free(d->locs);
  free(d->lslot);
  free(d->res);
  free(d->anc);
  memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------- $ref */

static int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

int sd_ref(struct sdoc *d, uint32_t from, const char *ref, uint32_t *out) {
  const char *ptr = d->locs[from].ptr;
  const char *hash = strchr(ref, '#');
  size_t ul = hash ? (size_t)(hash - ref) : strlen(ref);
  const char *frag = hash ? hash + 1 : "";
  uint32_t res = d->locs[from].res;
  if (ul > 0) {
    char *u = cn_memdup(d->a, ref, ul);
    char *abs = u ? resolve(d, d->res[res].uri, u) : NULL;
    if (!abs) return -ENOMEM;
    size_t i;
    for (i = 0; i < d->nres; i++)
      if (!strcmp(d->res[i].uri, abs)) break;
    if (i == d->nres) {
      cn_errf(d->err, "$ref", ptr, "$ref '%.100s' points outside this document", ref);
      return -EINVAL;
    }
    res = (uint32_t)i;
  }
  uint32_t rl = d->res[res].loc;
  if (rl == UINT32_MAX) {
    cn_errf(d->err, "$ref", ptr, "$ref '%.100s' cannot be resolved", ref);
    return -EINVAL;
  }
  if (!*frag) {
    *out = rl;
    return 0;
  }
  if (frag[0] != '/') {
    for (size_t i = 0; i < d->nanc; i++)
      if (!strcmp(d->anc[i].name, frag) && d->anc[i].loc != UINT32_MAX) {
        *out = d->anc[i].loc;
        return 0;
      }
    cn_errf(d->err, "$ref", ptr, "$ref '%.100s': no such anchor", ref);
    return -EINVAL;
  }
  /* JSON pointer from the resource root */
  const struct cj_val *v = d->locs[rl].v;
  char tok[1024];
  const char *p = frag;
  while (*p == '/') {
    p++;
    size_t n = 0;
    while (*p && *p != '/') {
      char c = *p++;
      if (c == '~' && (*p == '0' || *p == '1')) c = *p++ == '0' ? '~' : '/';
      else if (c == '%' && hexv(p[0]) >= 0 && hexv(p[1]) >= 0) c = (char)(hexv(p[0]) * 16 + hexv(p[1])), p += 2;
      if (n + 1 < sizeof tok) tok[n++] = c;
    }
    tok[n] = 0;
    const struct cj_val *nx = NULL;
    if (v->type == CJ_OBJECT) {
      for (uint32_t i = 0; i < v->len; i++)
        if (v->u.members[i].klen == n && !memcmp(v->u.members[i].key, tok, n)) {
          nx = &v->u.members[i].val;
          break;
        }
    } else if (v->type == CJ_ARRAY) {
      char *end;
      unsigned long k = strtoul(tok, &end, 10);
      if (n && !*end && k < v->len) nx = &v->u.items[k];
    }
    if (!nx) {
      cn_errf(d->err, "$ref", ptr, "$ref '%.100s' points to nothing", ref);
      return -EINVAL;
    }
    v = nx;
  }
  if (v->type != CJ_OBJECT && v->type != CJ_TRUE && v->type != CJ_FALSE) {
    cn_errf(d->err, "$ref", ptr, "$ref '%.100s' is not a schema", ref);
    return -EINVAL;
  }
  char full[1100];
  snprintf(full, sizeof full, "%s%s", d->locs[rl].ptr, frag);
  uint32_t l = sd_loc(d, v, full, res);
  if (l == UINT32_MAX) return -ENOMEM;
  *out = l;
  return 0;
}
