/*
 * json.h: byte-level JSON helpers for a proxy that must not reformat what it forwards: a top-level
 * member scanner, byte-exact splicing, string quoting. Uses only libevent's evbuffer (for output).
 * Private to router/: every room may use it.
 */
#ifndef TIERGATE_ROUTER_JSON_H
#define TIERGATE_ROUTER_JSON_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;


/* [off, off+len) inside the scanned text. A key span includes its quotes. */
struct rt_json_span {
  size_t off, len;
};

/* Walks the members of a top-level JSON object without building a tree. Safe on any input
 * (bounds-checked; malformed text ends the walk with -1) but only exact on valid JSON: parse with
 * jansson first when the text comes from a client. */
struct rt_json_iter {
  const char *s;
  size_t n, pos;
  int count;
};
/* Returns 0 when S starts (after whitespace) with '{', -1 otherwise. */
int rt_json_iter_begin(struct rt_json_iter *it, const char *s, size_t n);
/* Returns 1 and the next member, 0 at the closing '}' (it->pos is then its offset), -1 malformed. */
int rt_json_iter_next(struct rt_json_iter *it, struct rt_json_span *key, struct rt_json_span *val);
/* Does the quoted key at KEY (escapes decoded) equal NAME? */
bool rt_json_key_is(const char *s, struct rt_json_span key, const char *name);
/* Finds the top-level member NAME; 1 found (val set), 0 absent, -1 malformed. */
int rt_json_find(const char *s, size_t n, const char *name, struct rt_json_span *val);
/* Is the value at VAL the literal null / an empty array? */
bool rt_json_is_null(const char *s, struct rt_json_span val);
bool rt_json_is_empty_array(const char *s, struct rt_json_span val);

/* An edit for rt_json_splice: replace [off, off+len) with rep[0..rep_len). */
struct rt_json_edit {
  size_t off, len;
  const char *rep;
  size_t rep_len;
};
/* Applies edits (sorted by offset, not overlapping) to S. Returns a malloc'd buffer (*out_len
 * set) or NULL on allocation failure. */
char *rt_json_splice(const char *s, size_t n, const struct rt_json_edit *e, size_t ne,
                     size_t *out_len);
/* Writes S as a JSON string literal (quotes included) to OUT / into a malloc'd C string. */
void rt_json_quote(struct evbuffer *out, const char *s, size_t n);
char *rt_json_quote_str(const char *s, size_t n, size_t *out_len);

/* V as a compact JSON text, key order kept, malloc'd (NULL when out of memory). Unlike
 * json_dumps, each real is written in the fewest digits that read back as the same double:
 * jansson writes 1.1 as 1.1000000000000001, which is another number to anyone who reads the
 * digits (an enum of it has no short member, and an exclusive bound of 0.1 would let 0.1 in). */
struct json_t;
char *rt_json_dumps_exact(const struct json_t *v);

#endif
