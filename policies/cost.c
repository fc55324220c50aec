/*
 * cost.c: the cost rules. Provider usage objects -> canonical pol_usage -> exact cost.
 *
 * Units: prices are integer micro-USD per 1M tokens, so tokens * price is pico-USD (1e-12 USD)
 * exactly: no floating point anywhere on the way to the logged figure. 1M output tokens of the
 * dearest listed model is 75e6 * 1e6 = 7.5e13 pusd, far inside int64; overflow is still checked
 * because token counts come from the network.
 *
 * The two wire formats count input differently (PROTOCOLS.md 3.4), which is the classic way to
 * double-bill or under-bill cached tokens:
 *   OpenAI     prompt_tokens = uncached + cached (+ cache_write on compatible servers that
 *              report it); completion_tokens = visible + reasoning.
 *   Anthropic  input_tokens = uncached only; cache_read_input_tokens and
 *              cache_creation_input_tokens come on top; output_tokens = visible + thinking.
 * Canonical usage always holds the OpenAI-style totals plus their parts.
 */
#include "policies/policies.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

/* --------------------------------------------------------------- cost */

static bool add_term(int64_t *acc, int64_t tokens, int64_t price) {
  int64_t t;
  if (tokens == 0) return true;   /* an unknown price on a zero count costs nothing */
  if (price < 0) return false;
  if (__builtin_mul_overflow(tokens, price, &t)) return false;
  return !__builtin_add_overflow(*acc, t, acc);
}

int64_t pol_cost_pusd(const struct pol_price *p, const struct pol_usage *u) {
  if (!p || !u || p->input_uusd < 0 || p->output_uusd < 0) return -1;
  if (u->input_tokens < 0 || u->cached_tokens < 0 || u->cache_write_tokens < 0 ||
      u->output_tokens < 0 || u->reasoning_tokens < 0 || u->cache_write_1h_tokens < 0)
    return -1;
  if (u->cached_tokens > u->input_tokens - u->cache_write_tokens) return -1;
  if (u->reasoning_tokens > u->output_tokens) return -1;
  if (u->cache_write_1h_tokens > u->cache_write_tokens) return -1;

  int64_t cached_price = p->cached_input_uusd >= 0 ? p->cached_input_uusd : p->input_uusd;
  int64_t write_price = p->cache_write_uusd >= 0 ? p->cache_write_uusd : p->input_uusd;
  int64_t write1h_price = p->cache_write_1h_uusd >= 0 ? p->cache_write_1h_uusd : write_price;

  int64_t uncached = u->input_tokens - u->cached_tokens - u->cache_write_tokens;
  int64_t write5m = u->cache_write_tokens - u->cache_write_1h_tokens;
  int64_t pusd = 0;
  if (!add_term(&pusd, uncached, p->input_uusd) || !add_term(&pusd, u->cached_tokens, cached_price) ||
      !add_term(&pusd, write5m, write_price) ||
      !add_term(&pusd, u->cache_write_1h_tokens, write1h_price) ||
      !add_term(&pusd, u->output_tokens, p->output_uusd))
    return -1;
  return pusd;
}

double pol_cost_usd(const struct pol_price *p, const struct pol_usage *u) {
  int64_t pusd = pol_cost_pusd(p, u);
  return pusd < 0 ? -1.0 : (double)pusd / 1e12;
}

int64_t pol_baseline_cost_pusd(const struct pol_config *c, const struct pol_model *model,
                               const struct pol_usage *u) {
  const struct pol_model *b = c && c->baseline_model ? c->baseline_model : model;
  if (!b || !b->has_price) return -1;
  return pol_cost_pusd(&b->price, u);
}

/* --------------------------------------------------------------- usage parsers */

/* Reads OBJ[KEY] as a count. Absent or null: *out unchanged and returns 0 (1 if present). A value
 * that is not a non-negative integer is -EINVAL. */
static int get_count(const json_t *obj, const char *key, int64_t *out) {
  const json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0) return -EINVAL;
  *out = (int64_t)json_integer_value(v);
  return 1;
}

/* OBJ[KEY] if it is an object, NULL if absent or null, (json_t *)-1 on a wrong type. */
static const json_t *get_details(const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) return NULL;
  return json_is_object(v) ? v : (const json_t *)-1;
}
#define BAD_DETAILS ((const json_t *)-1)

int pol_usage_from_openai(const void *usage_json, struct pol_usage *out) {
  const json_t *u = usage_json;
  struct pol_usage r = {0};
  if (!u || !json_is_object(u)) return -EINVAL;
  int a = get_count(u, "prompt_tokens", &r.input_tokens);
  int b = get_count(u, "completion_tokens", &r.output_tokens);
  if (a < 0 || b < 0) return -EINVAL;
  if (a == 0 && b == 0) return -EINVAL;   /* neither count: not a usage object */
  const json_t *pd = get_details(u, "prompt_tokens_details");
  const json_t *cd = get_details(u, "completion_tokens_details");
  if (pd == BAD_DETAILS || cd == BAD_DETAILS) return -EINVAL;
  if (pd && (get_count(pd, "cached_tokens", &r.cached_tokens) < 0 ||
             get_count(pd, "cache_write_tokens", &r.cache_write_tokens) < 0))
    return -EINVAL;
  if (cd && get_count(cd, "reasoning_tokens", &r.reasoning_tokens) < 0) return -EINVAL;
  if (r.cached_tokens > r.input_tokens || r.cache_write_tokens > r.input_tokens - r.cached_tokens ||
      r.reasoning_tokens > r.output_tokens)
    return -EINVAL;
  *out = r;
  return 0;
}

/* Raw Anthropic counts, kept apart so partial updates can be merged. */
struct anth_raw { int64_t input, cache_read, cache_write, cache_write_1h, output, thinking; };

static void raw_from_usage(const struct pol_usage *u, struct anth_raw *r) {
  r->cache_read = u->cached_tokens;
  r->cache_write = u->cache_write_tokens;
  r->cache_write_1h = u->cache_write_1h_tokens;
  r->input = u->input_tokens - u->cached_tokens - u->cache_write_tokens;
  r->output = u->output_tokens;
  r->thinking = u->reasoning_tokens;
}

/* Overwrites the fields of R present in U (message_delta counts are cumulative: overwrite, never
 * add). Returns how many top-level counts were present, or -EINVAL. */
static int raw_update(const json_t *u, struct anth_raw *r) {
  if (!u || !json_is_object(u)) return -EINVAL;
  int n = 0, k;
  if ((k = get_count(u, "input_tokens", &r->input)) < 0) return -EINVAL;
  n += k;
  if ((k = get_count(u, "output_tokens", &r->output)) < 0) return -EINVAL;
  n += k;
  if ((k = get_count(u, "cache_read_input_tokens", &r->cache_read)) < 0) return -EINVAL;
  n += k;
  if ((k = get_count(u, "cache_creation_input_tokens", &r->cache_write)) < 0) return -EINVAL;
  n += k;
  const json_t *cc = get_details(u, "cache_creation");
  const json_t *od = get_details(u, "output_tokens_details");
  if (cc == BAD_DETAILS || od == BAD_DETAILS) return -EINVAL;
  if (cc && get_count(cc, "ephemeral_1h_input_tokens", &r->cache_write_1h) < 0) return -EINVAL;
  if (od && get_count(od, "thinking_tokens", &r->thinking) < 0) return -EINVAL;
  return n;
}

static int usage_from_raw(const struct anth_raw *r, struct pol_usage *out) {
  struct pol_usage u = {0};
  if (r->cache_write_1h > r->cache_write || r->thinking > r->output) return -EINVAL;
  if (__builtin_add_overflow(r->input, r->cache_read, &u.input_tokens) ||
      __builtin_add_overflow(u.input_tokens, r->cache_write, &u.input_tokens))
    return -EINVAL;
  u.cached_tokens = r->cache_read;
  u.cache_write_tokens = r->cache_write;
  u.cache_write_1h_tokens = r->cache_write_1h;
  u.output_tokens = r->output;
  u.reasoning_tokens = r->thinking;
  *out = u;
  return 0;
}

int pol_usage_from_anthropic(const void *usage_json, struct pol_usage *out) {
  struct anth_raw r = {0};
  int n = raw_update(usage_json, &r);
  if (n <= 0) return -EINVAL;   /* not an object, a bad count, or no count at all */
  return usage_from_raw(&r, out);
}

int pol_usage_update_anthropic(const void *usage_json, struct pol_usage *acc) {
  struct anth_raw r;
  if (!acc) return -EINVAL;
  raw_from_usage(acc, &r);
  if (raw_update(usage_json, &r) < 0) return -EINVAL;
  return usage_from_raw(&r, acc);
}

/* --------------------------------------------------------------- failure classes */

unsigned pol_fail_class(int http_status, bool connect_error, bool timed_out) {
  if (timed_out) return POL_FAIL_TIMEOUT;
  if (connect_error) return POL_FAIL_CONNECT;
  if (http_status == 408) return POL_FAIL_408;
  if (http_status == 429) return POL_FAIL_429;
  if (http_status == 529) return POL_FAIL_529;
  if (http_status >= 500 && http_status <= 599) return POL_FAIL_5XX;
  if (http_status >= 400 && http_status <= 499) return POL_FAIL_4XX;
  return 0;
}
