/* test_cost.c: the cost rules of policies/cost.c, with exact pico-USD figures worked by hand. */
#include "policies/policies.h"
#include "tests/check.h"

#include <errno.h>
#include <jansson.h>

static int openai(const char *json, struct pol_usage *u) {
  json_error_t e;
  json_t *j = json_loads(json, 0, &e);
  if (!j) {
    fprintf(stderr, "bad test json: %s\n", e.text);
    return -999;
  }
  int rc = pol_usage_from_openai(j, u);
  json_decref(j);
  return rc;
}

static int anthropic(const char *json, struct pol_usage *u, bool update) {
  json_error_t e;
  json_t *j = json_loads(json, JSON_DECODE_ANY, &e);
  if (!j) return -999;
  int rc = update ? pol_usage_update_anthropic(j, u) : pol_usage_from_anthropic(j, u);
  json_decref(j);
  return rc;
}

static void test_openai_cached(void) {
  /* gpt-4o-mini, 1000 prompt tokens of which 400 cached, 200 completion:
   *   600 x 0.15 $/M = 90e6 pusd; 400 x 0.075 = 30e6; 200 x 0.60 = 120e6  -> 240e6 pusd */
  struct pol_usage u;
  CHECK_EQ_INT(openai("{\"prompt_tokens\":1000,\"completion_tokens\":200,\"total_tokens\":1200,"
                      "\"prompt_tokens_details\":{\"cached_tokens\":400,\"audio_tokens\":0},"
                      "\"completion_tokens_details\":{\"reasoning_tokens\":0}}", &u), 0);
  CHECK_EQ_INT(u.input_tokens, 1000);
  CHECK_EQ_INT(u.cached_tokens, 400);
  CHECK_EQ_INT(u.cache_write_tokens, 0);
  CHECK_EQ_INT(u.output_tokens, 200);
  CHECK_EQ_INT(u.reasoning_tokens, 0);
  const struct pol_price *p = pol_price_builtin("gpt-4o-mini");
  CHECK(p != NULL);
  CHECK_EQ_INT(pol_cost_pusd(p, &u), 240000000);
  CHECK_NEAR(pol_cost_usd(p, &u), 0.00024, 1e-15);
  /* the dated snapshot name the upstream reports costs the same */
  CHECK_EQ_INT(pol_cost_pusd(pol_price_builtin("gpt-4o-mini-2024-07-18"), &u), 240000000);
  /* baseline: the same canonical usage at gpt-4o: 600 x 2.5 + 400 x 1.25 + 200 x 10 (x1e6) */
  CHECK_EQ_INT(pol_cost_pusd(pol_price_builtin("gpt-4o"), &u), 4000000000LL);
}

static void test_openai_reasoning(void) {
  /* o4-mini: completion_tokens 500 INCLUDES 300 reasoning: billed 500 output, never 800.
   *   100 x 1.10 = 110e6; 500 x 4.40 = 2200e6 -> 2310e6 pusd */
  struct pol_usage u;
  CHECK_EQ_INT(openai("{\"prompt_tokens\":100,\"completion_tokens\":500,"
                      "\"completion_tokens_details\":{\"reasoning_tokens\":300}}", &u), 0);
  CHECK_EQ_INT(u.output_tokens, 500);
  CHECK_EQ_INT(u.reasoning_tokens, 300);
  CHECK_EQ_INT(pol_cost_pusd(pol_price_builtin("o4-mini"), &u), 2310000000LL);
}

static void test_openai_cache_write(void) {
  /* An OpenAI-compatible endpoint reporting cache writes (prompt_tokens includes them).
   * gpt-4o has no cache-write price: writes bill as plain input.
   *   uncached 1000-200-300 = 500 x 2.5 = 1250e6; cached 200 x 1.25 = 250e6;
   *   writes 300 x 2.5 = 750e6; output 10 x 10 = 100e6 -> 2350e6 */
  struct pol_usage u;
  CHECK_EQ_INT(openai("{\"prompt_tokens\":1000,\"completion_tokens\":10,\"prompt_tokens_details\":"
                      "{\"cached_tokens\":200,\"cache_write_tokens\":300}}", &u), 0);
  CHECK_EQ_INT(u.cache_write_tokens, 300);
  CHECK_EQ_INT(pol_cost_pusd(pol_price_builtin("gpt-4o"), &u), 2350000000LL);
  /* the same usage at claude-sonnet-4-5 (cache write 3.75): 500x3 + 200x0.3 + 300x3.75 + 10x15 */
  CHECK_EQ_INT(pol_cost_pusd(pol_price_builtin("claude-sonnet-4-5"), &u),
               1500000000LL + 60000000LL + 1125000000LL + 150000000LL);
}

static void test_openai_bad(void) {
  struct pol_usage u = {7, 7, 7, 7, 7, 7};
  CHECK_EQ_INT(openai("[1,2]", &u), -EINVAL);
  CHECK_EQ_INT(openai("{}", &u), -EINVAL);
  CHECK_EQ_INT(openai("{\"prompt_tokens\":-1,\"completion_tokens\":1}", &u), -EINVAL);
  CHECK_EQ_INT(openai("{\"prompt_tokens\":\"12\",\"completion_tokens\":1}", &u), -EINVAL);
  CHECK_EQ_INT(openai("{\"prompt_tokens\":1.5,\"completion_tokens\":1}", &u), -EINVAL);
  CHECK_EQ_INT(openai("{\"prompt_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":11}}", &u),
               -EINVAL);
  CHECK_EQ_INT(openai("{\"completion_tokens\":10,\"completion_tokens_details\":"
                      "{\"reasoning_tokens\":11}}", &u), -EINVAL);
  CHECK_EQ_INT(openai("{\"prompt_tokens\":10,\"prompt_tokens_details\":5}", &u), -EINVAL);
  CHECK_EQ_INT(u.input_tokens, 7);   /* untouched on failure */
  CHECK_EQ_INT(pol_usage_from_openai(NULL, &u), -EINVAL);
  /* null details are fine (some servers send them) */
  CHECK_EQ_INT(openai("{\"prompt_tokens\":10,\"completion_tokens\":2,\"prompt_tokens_details\":null}",
                      &u), 0);
  CHECK_EQ_INT(u.input_tokens, 10);
  CHECK_EQ_INT(u.cached_tokens, 0);
}

static void test_anthropic(void) {
  /* claude-haiku-4-5: input_tokens 100 EXCLUDES 1000 cache reads and 500 cache writes (200 of
   * them 1-hour); output 300 includes 100 thinking.
   *   100 x 1.00 = 100e6; 1000 x 0.10 = 100e6; 300 x 1.25 = 375e6; 200 x 2.00 = 400e6;
   *   300 x 5.00 = 1500e6 -> 2475e6 pusd */
  struct pol_usage u;
  CHECK_EQ_INT(anthropic("{\"input_tokens\":100,\"output_tokens\":300,"
                         "\"cache_creation_input_tokens\":500,\"cache_read_input_tokens\":1000,"
                         "\"cache_creation\":{\"ephemeral_5m_input_tokens\":300,"
                         "\"ephemeral_1h_input_tokens\":200},"
                         "\"output_tokens_details\":{\"thinking_tokens\":100},"
                         "\"service_tier\":\"standard\"}", &u, false), 0);
  CHECK_EQ_INT(u.input_tokens, 1600);
  CHECK_EQ_INT(u.cached_tokens, 1000);
  CHECK_EQ_INT(u.cache_write_tokens, 500);
  CHECK_EQ_INT(u.cache_write_1h_tokens, 200);
  CHECK_EQ_INT(u.output_tokens, 300);
  CHECK_EQ_INT(u.reasoning_tokens, 100);
  CHECK_EQ_INT(pol_cost_pusd(pol_price_builtin("claude-haiku-4-5-20251001"), &u), 2475000000LL);
  /* baseline at gpt-4o for the same canonical usage (no cache-write price: input rate):
   *   uncached 100 x 2.5 = 250e6; cached 1000 x 1.25 = 1250e6; writes 500 x 2.5 = 1250e6;
   *   output 300 x 10 = 3000e6 -> 5750e6 */
  CHECK_EQ_INT(pol_cost_pusd(pol_price_builtin("gpt-4o"), &u), 5750000000LL);

  /* a stream: message_start has the input side, message_delta cumulative output */
  struct pol_usage s = {0};
  CHECK_EQ_INT(anthropic("{\"input_tokens\":25,\"output_tokens\":1,"
                         "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":10}", &s,
                         true), 0);
  CHECK_EQ_INT(anthropic("{\"output_tokens\":20}", &s, true), 0);
  CHECK_EQ_INT(anthropic("{\"output_tokens\":42}", &s, true), 0);
  CHECK_EQ_INT(s.input_tokens, 35);
  CHECK_EQ_INT(s.cached_tokens, 10);
  CHECK_EQ_INT(s.output_tokens, 42);   /* overwritten, not added */
  /* claude-sonnet-4-5: 25 x 3 + 10 x 0.3 + 42 x 15 = 75e6 + 3e6 + 630e6 */
  CHECK_EQ_INT(pol_cost_pusd(pol_price_builtin("claude-sonnet-4-5"), &s), 708000000);
  /* a later delta that restates input counts replaces them */
  CHECK_EQ_INT(anthropic("{\"input_tokens\":30,\"output_tokens\":50}", &s, true), 0);
  CHECK_EQ_INT(s.input_tokens, 40);
  CHECK_EQ_INT(s.cached_tokens, 10);

  CHECK_EQ_INT(anthropic("{}", &u, false), -EINVAL);
  CHECK_EQ_INT(anthropic("\"x\"", &u, false), -EINVAL);
  CHECK_EQ_INT(anthropic("{\"input_tokens\":-3}", &u, false), -EINVAL);
  CHECK_EQ_INT(anthropic("{\"input_tokens\":3,\"output_tokens\":2,\"output_tokens_details\":"
                         "{\"thinking_tokens\":5}}", &u, false), -EINVAL);
}

static void test_cost_edges(void) {
  struct pol_price p = {1000000, -1, -1, 2000000, -1};   /* 1 $/M in, 2 $/M out, no cache rows */
  struct pol_usage u = {.input_tokens = 10, .cached_tokens = 4, .output_tokens = 3};
  /* cached bills at the input price when no cached price is listed: 10 x 1 + 3 x 2 */
  CHECK_EQ_INT(pol_cost_pusd(&p, &u), 16000000);
  struct pol_usage zero = {0};
  CHECK_EQ_INT(pol_cost_pusd(&p, &zero), 0);
  CHECK_EQ_INT(pol_cost_pusd(NULL, &u), -1);
  struct pol_price noout = {1000000, -1, -1, -1, -1};
  CHECK_EQ_INT(pol_cost_pusd(&noout, &u), -1);
  CHECK_NEAR(pol_cost_usd(&noout, &u), -1.0, 0);
  struct pol_usage bad = {.input_tokens = 5, .cached_tokens = 6};
  CHECK_EQ_INT(pol_cost_pusd(&p, &bad), -1);
  struct pol_usage neg = {.input_tokens = -5};
  CHECK_EQ_INT(pol_cost_pusd(&p, &neg), -1);
  struct pol_usage huge = {.input_tokens = INT64_MAX / 2};
  CHECK_EQ_INT(pol_cost_pusd(&p, &huge), -1);   /* overflow is unknown, never wrapped */
  /* a million output tokens of the dearest listed model: 75 USD exactly */
  struct pol_usage m = {.output_tokens = 1000000};
  CHECK_EQ_INT(pol_cost_pusd(pol_price_builtin("claude-opus-4-1"), &m), 75000000000000LL);
}

static void test_fail_class(void) {
  CHECK_EQ_INT(pol_fail_class(0, true, false), POL_FAIL_CONNECT);
  CHECK_EQ_INT(pol_fail_class(0, false, true), POL_FAIL_TIMEOUT);
  CHECK_EQ_INT(pol_fail_class(429, false, false), POL_FAIL_429);
  CHECK_EQ_INT(pol_fail_class(529, false, false), POL_FAIL_529);
  CHECK_EQ_INT(pol_fail_class(503, false, false), POL_FAIL_5XX);
  CHECK_EQ_INT(pol_fail_class(408, false, false), POL_FAIL_408);
  CHECK_EQ_INT(pol_fail_class(400, false, false), POL_FAIL_4XX);
  CHECK_EQ_INT(pol_fail_class(200, false, false), 0);
}

int main(void) {
  test_openai_cached();
  test_openai_reasoning();
  test_openai_cache_write();
  test_openai_bad();
  test_anthropic();
  test_cost_edges();
  test_fail_class();
  return check_done();
}
