/*
 * backoff.c: how long to wait before retrying an upstream call: exponential backoff with jitter,
 * and the wait a response asks for itself (retry-after-ms, retry-after as seconds or HTTP-date).
 * Pure functions (randomness and the clock come in as arguments), unit-tested in
 * tests/upstream/test_backoff.c. Contract in upstream.h.
 *
 * Jitter, after Marc Brooker's "Exponential Backoff And Jitter" (AWS architecture blog, 2015):
 * many clients failing together and retrying on the same schedule hit the upstream together
 * again; spreading each wait over [0, cap] ("full") or over [base, 3 x previous] ("decorrelated")
 * breaks the synchronisation. "none" is the bare exponential, for tests and debugging.
 */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/upstream.h"

#define MAX_WAIT_MS 2147483647LL   /* what fits an int; the SDKs cap retry-after the same way */

int up_backoff_ms(enum up_jitter j, int base_ms, int max_ms, int retry, int prev_ms, double u) {
  if (max_ms < 0) max_ms = 0;
  if (base_ms < 0) base_ms = 0;
  if (base_ms > max_ms) base_ms = max_ms;
  if (!(u >= 0.0)) u = 0.0;          /* also catches NaN */
  if (u >= 1.0) u = 0.999999999;
  if (retry < 1) retry = 1;
  if (j == UP_JITTER_DECORRELATED) {
    double prev = prev_ms > base_ms ? (double)prev_ms : (double)base_ms;
    double hi = 3.0 * prev;
    double d = (double)base_ms + u * (hi - (double)base_ms);
    if (d > (double)max_ms) d = (double)max_ms;
    return (int)d;
  }
  /* base * 2^(retry-1), saturating at max (retry can be large; never shift past 30) */
  double cap = (double)base_ms;
  for (int i = 1; i < retry && cap < (double)max_ms; i++) cap *= 2.0;
  if (cap > (double)max_ms) cap = (double)max_ms;
  if (j == UP_JITTER_NONE) return (int)cap;
  return (int)(u * cap);
}

/* A decimal number with nothing but spaces around it; -1 when it is not one (or negative, NaN,
 * infinite). "1.5" is accepted: RFC 9110 says delay-seconds is an integer, the SDKs use
 * parseFloat, and being lenient here costs nothing. */
static double parse_number(const char *s) {
  while (*s == ' ' || *s == '\t') s++;
  if (!isdigit((unsigned char)*s) && *s != '.') return -1;
  char *end;
  double v = strtod(s, &end);
  if (end == s) return -1;
  while (*end == ' ' || *end == '\t') end++;
  if (*end || !isfinite(v) || v < 0) return -1;
  return v;
}

static int month_of(const char *m) {
  static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  for (int i = 0; i < 12; i++)
    if (!strncmp(m, names + 3 * i, 3)) return i + 1;
  return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's
 * days_from_civil): no timegm(), no time zone, no locale. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static bool all_alpha(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (!isalpha((unsigned char)s[i])) return false;
  return true;
}

/* Reads exactly N digits at *p; -1 if they are not there. */
static int digits(const char **p, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i])) return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  return v;
}

static bool lit(const char **p, const char *s) {
  size_t n = strlen(s);
  if (strncmp(*p, s, n)) return false;
  *p += n;
  return true;
}

/* "HH:MM:SS" */
static bool clock_of(const char **p, int *h, int *mi, int *se) {
  *h = digits(p, 2);
  if (*h < 0 || !lit(p, ":")) return false;
  *mi = digits(p, 2);
  if (*mi < 0 || !lit(p, ":")) return false;
  *se = digits(p, 2);
  return *se >= 0;
}

int64_t up_http_date(const char *s) {
  if (!s) return -1;
  while (*s == ' ' || *s == '\t') s++;
  const char *p = s;
  while (isalpha((unsigned char)*p)) p++;
  size_t wd = (size_t)(p - s);
  if (!all_alpha(s, wd)) return -1;
  int y, mo, d, h, mi, se;
  if (*p == ',') {
    p++;
    if (!lit(&p, " ")) return -1;
    if (wd == 3) {
      /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
      if ((d = digits(&p, 2)) < 0 || !lit(&p, " ")) return -1;
      if (!(mo = month_of(p))) return -1;
      p += 3;
      if (!lit(&p, " ") || (y = digits(&p, 4)) < 0 || !lit(&p, " ")) return -1;
      if (!clock_of(&p, &h, &mi, &se) || !lit(&p, " GMT")) return -1;
    } else {
      /* obsolete RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year more than 50 years
       * in the future means the past century (RFC 9110 5.6.7): with no clock here, 70-99 is
       * 19xx and 00-69 is 20xx, which is the same rule until 2069. */
      if ((d = digits(&p, 2)) < 0 || !lit(&p, "-")) return -1;
      if (!(mo = month_of(p))) return -1;
      p += 3;
      if (!lit(&p, "-") || (y = digits(&p, 2)) < 0 || !lit(&p, " ")) return -1;
      y += y < 70 ? 2000 : 1900;
      if (!clock_of(&p, &h, &mi, &se) || !lit(&p, " GMT")) return -1;
    }
  } else if (*p == ' ' && wd == 3) {
    /* asctime: "Sun Nov  6 08:49:37 1994" */
    p++;
    if (!(mo = month_of(p))) return -1;
    p += 3;
    if (!lit(&p, " ")) return -1;
    if (*p == ' ') {
      p++;
      if ((d = digits(&p, 1)) < 0) return -1;
    } else if ((d = digits(&p, 2)) < 0) {
      return -1;
    }
    if (!lit(&p, " ") || !clock_of(&p, &h, &mi, &se) || !lit(&p, " ")) return -1;
    if ((y = digits(&p, 4)) < 0) return -1;
  } else {
    return -1;
  }
  while (*p == ' ' || *p == '\t') p++;
  if (*p) return -1;
  static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap)) return -1;
  if (h > 23 || mi > 59 || se > 60) return -1;   /* 60: a leap second, tolerated */
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
}

int64_t up_retry_after_ms(const char *retry_after_ms, const char *retry_after, int64_t now_wall_ms) {
  if (retry_after_ms) {
    double v = parse_number(retry_after_ms);
    if (v >= 0) return v > (double)MAX_WAIT_MS ? MAX_WAIT_MS : (int64_t)ceil(v);
  }
  if (retry_after) {
    double v = parse_number(retry_after);
    if (v >= 0) return v * 1000.0 > (double)MAX_WAIT_MS ? MAX_WAIT_MS : (int64_t)ceil(v * 1000.0);
    int64_t t = up_http_date(retry_after);
    if (t >= 0) {
      int64_t ms = t * 1000 - now_wall_ms;
      if (ms < 0) return 0;
      return ms > MAX_WAIT_MS ? MAX_WAIT_MS : ms;
    }
  }
  return -1;
}
