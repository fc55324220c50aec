/* test_backoff.c: upstream/backoff.c: exponential backoff with each jitter kind (exact values
 * for given random draws, bounds over many draws), retry-after-ms / retry-after parsing, and
 * HTTP-dates in their three forms. */
#include <stdint.h>

#include "tests/check.h"
#include "upstream/upstream.h"

static void test_exponential(void) {
  /* none: base * 2^(retry-1), capped */
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_NONE, 250, 8000, 1, 0, 0.5), 250);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_NONE, 250, 8000, 2, 0, 0.5), 500);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_NONE, 250, 8000, 3, 0, 0.5), 1000);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_NONE, 250, 8000, 6, 0, 0.5), 8000);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_NONE, 250, 8000, 7, 0, 0.5), 8000);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_NONE, 250, 8000, 1000000, 0, 0.5), 8000);  /* no overflow */
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_NONE, 250, 8000, 0, 0, 0.5), 250);         /* retry < 1 */
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_NONE, 9000, 8000, 1, 0, 0.5), 8000);       /* base > max */
  /* full: U * cap */
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_FULL, 100, 8000, 3, 0, 0.0), 0);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_FULL, 100, 8000, 3, 0, 0.5), 200);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_FULL, 100, 8000, 3, 0, 0.75), 300);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_FULL, 100, 1000, 10, 0, 0.25), 250);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_FULL, 100, 1000, 10, 0, 1.0), 999);        /* u clamped */
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_FULL, 100, 1000, 10, 0, -3.0), 0);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_FULL, 100, 1000, 10, 0, 0.0 / 0.0), 0);     /* NaN */
  /* decorrelated: min(max, base + U * (3 * prev - base)); prev <= base counts as base */
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_DECORRELATED, 100, 8000, 1, 0, 0.0), 100);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_DECORRELATED, 100, 8000, 1, 0, 0.5), 200);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_DECORRELATED, 100, 8000, 2, 400, 0.5), 650);
  CHECK_EQ_INT(up_backoff_ms(UP_JITTER_DECORRELATED, 100, 1000, 5, 5000, 0.9), 1000);
  /* bounds over many draws */
  uint64_t x = 88172645463325252ULL;
  int prev = 0, lo_full = 1 << 30, hi_full = -1;
  for (int i = 0; i < 100000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    double u = (double)(x >> 11) * 0x1.0p-53;
    int retry = 1 + i % 8;
    int f = up_backoff_ms(UP_JITTER_FULL, 250, 8000, retry, 0, u);
    int cap = up_backoff_ms(UP_JITTER_NONE, 250, 8000, retry, 0, u);
    CHECK_MSG(f >= 0 && f <= cap, "full jitter %d outside [0, %d]", f, cap);
    if (retry == 8) {
      if (f < lo_full) lo_full = f;
      if (f > hi_full) hi_full = f;
    }
    int d = up_backoff_ms(UP_JITTER_DECORRELATED, 250, 8000, retry, prev, u);
    int want_hi = 3 * (prev > 250 ? prev : 250);
    CHECK_MSG(d >= 250 && d <= 8000 && d <= want_hi, "decorrelated %d after %d", d, prev);
    prev = d;
  }
  /* full jitter really spreads: the capped retries cover nearly all of [0, 8000] */
  CHECK_MSG(lo_full < 100 && hi_full > 7900, "full jitter range [%d, %d]", lo_full, hi_full);
}

static void test_retry_after(void) {
  const int64_t now = 784111777000LL;   /* Sun, 06 Nov 1994 08:49:37 GMT, in ms */
  CHECK_EQ_INT(up_retry_after_ms(NULL, NULL, now), -1);
  CHECK_EQ_INT(up_retry_after_ms("300", NULL, now), 300);
  CHECK_EQ_INT(up_retry_after_ms("1.5", NULL, now), 2);         /* fractions round up */
  CHECK_EQ_INT(up_retry_after_ms(" 20 ", "7", now), 20);         /* -ms wins */
  CHECK_EQ_INT(up_retry_after_ms("soon", "7", now), 7000);       /* a bad -ms falls back */
  CHECK_EQ_INT(up_retry_after_ms("-5", "2", now), 2000);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "7", now), 7000);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "0", now), 0);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "0.25", now), 250);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "1e3", now), 1000000);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "-1", now), -1);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "", now), -1);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "7s", now), -1);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "nan", now), -1);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "inf", now), -1);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "99999999999", now), 2147483647);   /* capped */
  CHECK_EQ_INT(up_retry_after_ms("1e12", NULL, now), 2147483647);
  /* HTTP-dates: 30 s ahead, in the past, in each form */
  CHECK_EQ_INT(up_retry_after_ms(NULL, "Sun, 06 Nov 1994 08:50:07 GMT", now), 30000);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "Sunday, 06-Nov-94 08:50:07 GMT", now), 30000);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "Sun Nov  6 08:50:07 1994", now), 30000);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "Sun, 06 Nov 1994 08:00:00 GMT", now), 0);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "Sun, 06 Nov 1994 08:50:07 GMT", now + 500), 29500);
  CHECK_EQ_INT(up_retry_after_ms(NULL, "Sun, 06 Nov 1994 08:50:07 PST", now), -1);
}

static void test_http_date(void) {
  CHECK_EQ_INT(up_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
  CHECK_EQ_INT(up_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  CHECK_EQ_INT(up_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  CHECK_EQ_INT(up_http_date("Sun Nov  6 08:49:37 1994"), 784111777);
  CHECK_EQ_INT(up_http_date("Sun Nov 16 08:49:37 1994"), 784111777 + 10 * 86400);
  CHECK_EQ_INT(up_http_date("  Sun, 06 Nov 1994 08:49:37 GMT  "), 784111777);
  CHECK_EQ_INT(up_http_date("Tue, 29 Feb 2028 12:00:00 GMT"), 1835438400);    /* leap day */
  CHECK_EQ_INT(up_http_date("Fri, 31 Dec 2099 23:59:59 GMT"), 4102444799);
  CHECK_EQ_INT(up_http_date("Monday, 01-Jan-35 00:00:00 GMT"), 2051222400);   /* 2-digit: 2035 */
  CHECK_EQ_INT(up_http_date("Wed, 30 Feb 2028 00:00:00 GMT"), -1);            /* no such day */
  CHECK_EQ_INT(up_http_date("Tue, 29 Feb 2027 00:00:00 GMT"), -1);            /* not a leap year */
  CHECK_EQ_INT(up_http_date("Sun, 06 Nov 1994 24:00:00 GMT"), -1);
  CHECK_EQ_INT(up_http_date("Sun, 06 Nov 1994 08:60:00 GMT"), -1);
  CHECK_EQ_INT(up_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), -1);
  CHECK_EQ_INT(up_http_date("Sun, 6 Nov 1994 08:49:37 GMT"), -1);             /* 2 digits */
  CHECK_EQ_INT(up_http_date("Sun, 06 Nov 1994 08:49:37"), -1);
  CHECK_EQ_INT(up_http_date("Sun, 06 Nov 1994 08:49:37 GMT x"), -1);
  CHECK_EQ_INT(up_http_date("06 Nov 1994 08:49:37 GMT"), -1);
  CHECK_EQ_INT(up_http_date(""), -1);
  CHECK_EQ_INT(up_http_date(NULL), -1);
  CHECK_EQ_INT(up_http_date("Sun,"), -1);
  CHECK_EQ_INT(up_http_date("Sun Nov"), -1);
}

int main(void) {
  test_exponential();
  test_retry_after();
  test_http_date();
  return check_done();
}
