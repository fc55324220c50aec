/*
 * sse.c: incremental Server-Sent Events parser (see upstream.h for the contract).
 *
 * Chunks arrive with arbitrary boundaries, so a line may be split anywhere, including between the
 * CR and LF of a CRLF. Complete lines inside a chunk are processed in place; only a partial line
 * at the end of a chunk is copied into p->line. Caps: an event's field lines together (and any
 * single comment line) at most max_event bytes, a partial line at most max_event + 3 (room for a
 * leading BOM). The verdict is the same however the bytes are chunked (the fuzz target checks it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/upstream.h"

void up_sse_init(struct up_sse *p, size_t max_event_bytes) {
  memset(p, 0, sizeof *p);
  p->max_event = max_event_bytes ? max_event_bytes : UP_SSE_DEFAULT_MAX_EVENT;
}

void up_sse_free(struct up_sse *p) {
  free(p->line);
  free(p->data);
  p->line = p->data = NULL;
  p->line_len = p->line_cap = p->data_len = p->data_cap = 0;
}

bool up_sse_truncated(const struct up_sse *p) {
  return p->line_len > 0 || p->has_data || p->event[0] != '\0';
}

/* Grows *buf to hold at least need bytes (plus a NUL), never beyond cap+1. */
static int grow(char **buf, size_t *bufcap, size_t need, size_t cap) {
  if (need + 1 <= *bufcap) return 0;
  if (need > cap) return -E2BIG;
  size_t n = *bufcap ? *bufcap : 256;
  while (n < need + 1) n *= 2;
  if (n > cap + 1) n = cap + 1;
  char *b = realloc(*buf, n);
  if (!b) return -ENOMEM;
  *buf = b;
  *bufcap = n;
  return 0;
}

static void copy_field(char *dst, size_t cap, const char *v, size_t n) {
  if (n >= cap) n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static int dispatch(struct up_sse *p, up_sse_cb cb, void *ud) {
  int rc = 0;
  if (p->has_data) {
    /* the data buffer ends with the '\n' appended after the last data line: drop it */
    p->data_len--;
    p->data[p->data_len] = '\0';
    struct up_sse_event ev = {p->event, p->data, p->data_len, p->id};
    p->events++;
    rc = cb ? cb(ud, &ev) : 0;
  }
  p->data_len = 0;
  p->has_data = false;
  p->event[0] = '\0';
  p->event_bytes = 0;
  return rc;
}

static int process_line(struct up_sse *p, const char *l, size_t len, up_sse_cb cb, void *ud) {
  if (!p->started) {
    p->started = true;
    if (len >= 3 && (unsigned char)l[0] == 0xEF && (unsigned char)l[1] == 0xBB &&
        (unsigned char)l[2] == 0xBF) {
      l += 3;
      len -= 3;
    }
  }
  if (len == 0) return dispatch(p, cb, ud);
  if (l[0] == ':') return len > p->max_event ? -E2BIG : 0; /* comment: keep-alive pings */

  p->event_bytes += len + 1;
  if (p->event_bytes > p->max_event) return -E2BIG;

  const char *colon = memchr(l, ':', len);
  size_t flen = colon ? (size_t)(colon - l) : len;
  const char *v = colon ? colon + 1 : l + len;
  size_t vlen = (size_t)(l + len - v);
  if (vlen && *v == ' ') {
    v++;
    vlen--;
  }
  if (flen == 4 && !memcmp(l, "data", 4)) {
    int rc = grow(&p->data, &p->data_cap, p->data_len + vlen + 1, p->max_event);
    if (rc) return rc;
    memcpy(p->data + p->data_len, v, vlen);
    p->data_len += vlen;
    p->data[p->data_len++] = '\n';
    p->data[p->data_len] = '\0';
    p->has_data = true;
  } else if (flen == 5 && !memcmp(l, "event", 5)) {
    copy_field(p->event, sizeof p->event, v, vlen);
  } else if (flen == 2 && !memcmp(l, "id", 2)) {
    if (!memchr(v, '\0', vlen)) copy_field(p->id, sizeof p->id, v, vlen);
  }
  /* "retry" and unknown fields are ignored, as the spec says */
  return 0;
}

int up_sse_feed(struct up_sse *p, const char *buf, size_t n, up_sse_cb cb, void *ud) {
  if (p->error) return p->error;
  size_t i = 0;
  while (i < n) {
    if (p->last_cr) {
      p->last_cr = false;
      if (buf[i] == '\n') {
        i++;
        continue;
      }
    }
    size_t j = i;
    while (j < n && buf[j] != '\n' && buf[j] != '\r') j++;
    if (j == n) {
      /* partial line: keep it for the next chunk */
      size_t add = n - i;
      if (p->line_len + add > p->max_event + 3) {
        p->error = -E2BIG;
        return p->error;
      }
      int rc = grow(&p->line, &p->line_cap, p->line_len + add, p->max_event + 3);
      if (rc) {
        p->error = rc;
        return rc;
      }
      memcpy(p->line + p->line_len, buf + i, add);
      p->line_len += add;
      return 0;
    }
    int rc;
    if (p->line_len) {
      size_t add = j - i;
      if (p->line_len + add > p->max_event + 3) {
        p->error = -E2BIG;
        return p->error;
      }
      rc = grow(&p->line, &p->line_cap, p->line_len + add, p->max_event + 3);
      if (rc) {
        p->error = rc;
        return rc;
      }
      memcpy(p->line + p->line_len, buf + i, add);
      size_t len = p->line_len + add;
      p->line_len = 0;
      rc = process_line(p, p->line, len, cb, ud);
    } else {
      rc = process_line(p, buf + i, j - i, cb, ud);
    }
    if (buf[j] == '\r') {
      if (j + 1 < n) {
        if (buf[j + 1] == '\n') j++;
      } else {
        p->last_cr = true;
      }
    }
    i = j + 1;
    if (rc) {
      if (rc == -E2BIG || rc == -ENOMEM) p->error = rc;
      return rc;
    }
  }
  return 0;
}
