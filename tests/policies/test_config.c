/* test_config.c: the YAML config loader (policies/config.c): values, defaults, ${VAR} expansion,
 * and every error with its exact file:line:col. */
#include "policies/policies.h"
#include "tests/check.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static struct pol_errors errs;

static struct pol_config *load(const char *yaml) {
  struct pol_config *c = NULL;
  int rc = pol_config_load_str("t.yaml", yaml, strlen(yaml), &c, &errs);
  if (rc != 0) {
    char buf[700];
    for (int i = 0; i < errs.n && i < POL_MAX_ERRORS; i++) {
      pol_error_format(&errs.e[i], buf, sizeof buf);
      fprintf(stderr, "  (load error: %s)\n", buf);
    }
  }
  return c;
}

/* Loading YAML must fail, and its errors (in file order) must be exactly the lines in WANT,
 * separated by '\n'. */
#define EXPECT_ERRORS(yaml, want) expect_errors_(__LINE__, yaml, want)
static void expect_errors_(int line, const char *yaml, const char *want) {
  struct pol_config *c = NULL;
  int rc = pol_config_load_str("t.yaml", yaml, strlen(yaml), &c, &errs);
  char got[8192] = "", buf[700];
  for (int i = 0; i < errs.n && i < POL_MAX_ERRORS; i++) {
    pol_error_format(&errs.e[i], buf, sizeof buf);
    if (i) strncat(got, "\n", sizeof got - strlen(got) - 1);
    strncat(got, buf, sizeof got - strlen(got) - 1);
  }
  CHECK_MSG(rc == -EINVAL && c == NULL, "line %d: expected a failure, got rc %d", line, rc);
  CHECK_MSG(!strcmp(got, want), "line %d: errors differ\n--- got:\n%s\n--- want:\n%s", line, got,
            want);
  pol_config_free(c);
}

#define PROVIDER "providers:\n  oa:\n    kind: openai\n    base_url: http://127.0.0.1:9/v1\n"
#define MODEL "models:\n  m:\n    provider: oa\n    model: gpt-4o-mini\n"

/* ------------------------------------------------------------------ happy paths */

static void test_minimal_and_defaults(void) {
  struct pol_config *c = load(PROVIDER MODEL);
  CHECK(c != NULL);
  if (!c) return;
  CHECK_STR(c->path, "t.yaml");
  CHECK_STR(c->listen_host, "127.0.0.1");
  CHECK_EQ_INT(c->listen_port, 8080);
  CHECK_STR(c->db_path, "tiergate.db");
  CHECK_EQ_INT(c->limits.max_body_bytes, 4 << 20);
  CHECK_EQ_INT(c->limits.connect_timeout_ms, 5000);
  CHECK_EQ_INT(c->limits.first_byte_timeout_ms, 60000);
  CHECK_EQ_INT(c->limits.total_timeout_ms, 600000);
  CHECK_EQ_INT(c->limits.client_timeout_ms, 30000);
  CHECK_EQ_INT(c->limits.idle_timeout_ms, 60000);
  CHECK_EQ_INT(c->limits.max_connections, 4096);
  CHECK_EQ_INT(c->n_providers, 1);
  CHECK_STR(c->providers[0].name, "oa");
  CHECK_EQ_INT(c->providers[0].kind, POL_PROVIDER_OPENAI);
  CHECK_STR(c->providers[0].base_url, "http://127.0.0.1:9/v1");
  CHECK(c->providers[0].api_key_env == NULL && c->providers[0].api_key == NULL);
  CHECK(c->providers[0].anthropic_version == NULL);
  CHECK_EQ_INT(c->providers[0].line, 2);
  CHECK_EQ_INT(c->n_models, 1);
  const struct pol_model *m = pol_model_find(c, "m");
  CHECK(m != NULL && m == &c->models[0]);
  CHECK(m->provider == &c->providers[0]);
  CHECK_STR(m->upstream_model, "gpt-4o-mini");
  CHECK(m->has_price);
  CHECK_EQ_INT(m->price.input_uusd, 150000);
  CHECK_EQ_INT(m->line, 6);
  CHECK_EQ_INT(m->n_deployments, 1);
  CHECK(m->deployments[0].provider == m->provider && m->deployments[0].weight == 1);
  CHECK_EQ_INT(m->retry.max_attempts, 3);
  CHECK_EQ_INT(m->retry.base_delay_ms, 250);
  CHECK_EQ_INT(m->retry.max_delay_ms, 8000);
  CHECK_EQ_INT(m->retry.on, POL_FAIL_CONNECT | POL_FAIL_TIMEOUT | POL_FAIL_408 | POL_FAIL_429 |
                                POL_FAIL_5XX | POL_FAIL_529);
  CHECK_EQ_INT(m->fallback_on,
               POL_FAIL_CONNECT | POL_FAIL_TIMEOUT | POL_FAIL_429 | POL_FAIL_5XX | POL_FAIL_529);
  CHECK_EQ_INT(m->breaker.failures, 5);
  CHECK_EQ_INT(m->timeouts.connect_ms, 5000);
  CHECK_EQ_INT(m->timeouts.total_ms, 600000);
  CHECK(c->default_model == NULL && c->baseline_model == NULL);
  CHECK(pol_model_find(c, "gpt-4o-mini") == NULL);   /* public names only */
  CHECK(pol_provider_find(c, "oa") == &c->providers[0]);
  CHECK_EQ_INT(c->n_warnings, 0);
  pol_config_free(c);
  pol_config_free(NULL);
}

static void test_full(void) {
  setenv("TG_T_KEY", "sk-test-123", 1);
  setenv("TG_T_AKEY", "ak-1", 1);
  struct pol_config *c = load(
      "listen: '[::1]:9090'\n"
      "database: /tmp/x.db\n"
      "providers:\n"
      "  oa:\n"
      "    kind: openai\n"
      "    base_url: HTTPS://api.example.com:8443/v1///\n"
      "    api_key_env: TG_T_KEY\n"
      "    headers:\n"
      "      OpenAI-Project: proj_1\n"
      "      X-Trace: \"a b\"\n"
      "  an:\n"
      "    kind: anthropic\n"
      "    api_key_env: TG_T_AKEY\n"
      "models:\n"
      "  fast:\n"
      "    provider: oa\n"
      "    model: gpt-4.1-nano-2025-04-14\n"
      "    price: {output: 0.5}\n"
      "    fallbacks: [smart]\n"
      "    fallback_on: [5xx, 4xx]\n"
      "    retry: {max_attempts: 2, on: [429]}\n"
      "    timeouts: {first_byte: 2s}\n"
      "  smart:\n"
      "    deployments:\n"
      "      - {provider: oa, model: gpt-4o, weight: 3}\n"
      "      - provider: an\n"
      "        model: claude-sonnet-4-5\n"
      "        price: {input: 2.5}\n"
      "    balance: least_in_flight\n"
      "    breaker: {failures: 0, error_rate: 25%, window: 1m}\n"
      "  local:\n"
      "    provider: oa\n"
      "    model: my-llama\n"
      "    price: {input: 0, output: 0}\n"
      "default_model: fast\n"
      "baseline_model: smart\n"
      "limits:\n"
      "  max_body_bytes: 512KiB\n"
      "  connect_timeout: 1.5s\n"
      "  first_byte_timeout: 250ms\n"
      "  total_timeout: 2m\n"
      "  client_timeout: 1h\n"
      "  idle_timeout: 10s\n"
      "  max_connections: 100\n"
      "retry:\n"
      "  max_attempts: 4\n"
      "  base_delay: 100ms\n"
      "  max_delay: 2s\n"
      "breaker:\n"
      "  cooldown: 5s\n");
  CHECK(c != NULL);
  if (!c) return;
  CHECK_STR(c->listen_host, "::1");
  CHECK_EQ_INT(c->listen_port, 9090);
  CHECK_STR(c->db_path, "/tmp/x.db");
  const struct pol_provider *oa = pol_provider_find(c, "oa"), *an = pol_provider_find(c, "an");
  CHECK(oa && an);
  if (!oa || !an) return;
  CHECK_STR(oa->base_url, "https://api.example.com:8443/v1");
  CHECK_STR(oa->api_key_env, "TG_T_KEY");
  CHECK_STR(oa->api_key, "sk-test-123");
  CHECK_EQ_INT(oa->n_headers, 2);
  CHECK_STR(oa->headers[0].name, "OpenAI-Project");
  CHECK_STR(oa->headers[0].value, "proj_1");
  CHECK_STR(oa->headers[1].value, "a b");
  CHECK_EQ_INT(an->kind, POL_PROVIDER_ANTHROPIC);
  CHECK_STR(an->base_url, "https://api.anthropic.com");
  CHECK_STR(an->anthropic_version, "2023-06-01");
  CHECK_STR(an->api_key, "ak-1");

  const struct pol_model *fast = pol_model_find(c, "fast"), *smart = pol_model_find(c, "smart"),
                         *local = pol_model_find(c, "local");
  CHECK(fast && smart && local);
  if (!fast || !smart || !local) return;
  /* dated upstream name finds gpt-4.1-nano; the override replaces only the output price */
  CHECK_EQ_INT(fast->price.input_uusd, 100000);
  CHECK_EQ_INT(fast->price.cached_input_uusd, 25000);
  CHECK_EQ_INT(fast->price.output_uusd, 500000);
  CHECK_EQ_INT(fast->n_fallbacks, 1);
  CHECK(fast->fallbacks[0] == smart);
  CHECK_EQ_INT(fast->fallback_on, POL_FAIL_5XX | POL_FAIL_4XX);
  CHECK_EQ_INT(fast->retry.max_attempts, 2);
  CHECK_EQ_INT(fast->retry.base_delay_ms, 100);   /* from the top-level block */
  CHECK_EQ_INT(fast->retry.on, POL_FAIL_429);
  CHECK_EQ_INT(fast->timeouts.first_byte_ms, 2000);
  CHECK_EQ_INT(fast->timeouts.connect_ms, 1500);  /* from limits */
  CHECK_EQ_INT(fast->timeouts.idle_ms, 10000);
  CHECK_EQ_INT(fast->breaker.cooldown_ms, 5000);

  CHECK_EQ_INT(smart->n_deployments, 2);
  CHECK(smart->provider == oa);
  CHECK_STR(smart->upstream_model, "gpt-4o");
  CHECK_EQ_INT(smart->deployments[0].weight, 3);
  CHECK(smart->deployments[1].provider == an);
  CHECK_EQ_INT(smart->deployments[1].weight, 1);
  CHECK_EQ_INT(smart->deployments[1].price.input_uusd, 2500000);     /* deployment override */
  CHECK_EQ_INT(smart->deployments[1].price.output_uusd, 15000000);   /* built-in row */
  CHECK_EQ_INT(smart->deployments[1].price.cache_write_uusd, 3750000);
  CHECK_EQ_INT(smart->balance, POL_BALANCE_LEAST_IN_FLIGHT);
  CHECK_EQ_INT(smart->breaker.failures, 0);
  CHECK_EQ_INT(smart->breaker.error_rate_pct, 25);
  CHECK_EQ_INT(smart->breaker.window_ms, 60000);
  CHECK_EQ_INT(smart->breaker.cooldown_ms, 5000);
  CHECK_EQ_INT(smart->retry.max_attempts, 4);
  CHECK(local->has_price);
  CHECK_EQ_INT(local->price.input_uusd, 0);
  CHECK(c->default_model == fast && c->baseline_model == smart);

  CHECK_EQ_INT(c->limits.max_body_bytes, 512 * 1024);
  CHECK_EQ_INT(c->limits.connect_timeout_ms, 1500);
  CHECK_EQ_INT(c->limits.first_byte_timeout_ms, 250);
  CHECK_EQ_INT(c->limits.total_timeout_ms, 120000);
  CHECK_EQ_INT(c->limits.client_timeout_ms, 3600000);
  CHECK_EQ_INT(c->limits.max_connections, 100);
  CHECK_EQ_INT(c->n_warnings, 0);

  /* baseline cost: the usage priced at smart (gpt-4o): 1000 x 2.5 + 100 x 10 */
  struct pol_usage u = {.input_tokens = 1000, .output_tokens = 100};
  CHECK_EQ_INT(pol_baseline_cost_pusd(c, fast, &u), 3500000000LL);
  CHECK_EQ_INT(pol_cost_pusd(&fast->price, &u), 150000000LL);   /* 1000 x 0.1 + 100 x 0.5 */
  pol_config_free(c);
  unsetenv("TG_T_KEY");
  unsetenv("TG_T_AKEY");
}

static void test_list_form_providers(void) {
  struct pol_config *c = load("providers:\n"
                              "  - name: a\n"
                              "    kind: openai\n"
                              "  - name: b\n"
                              "    kind: anthropic\n"
                              "    anthropic_version: 2026-10-21\n"
                              "models:\n"
                              "  x: {provider: b, model: claude-haiku-4-5}\n");
  CHECK(c != NULL);
  if (!c) return;
  CHECK_EQ_INT(c->n_providers, 2);
  CHECK_STR(c->providers[0].base_url, "https://api.openai.com/v1");
  CHECK_STR(c->providers[1].anthropic_version, "2026-10-21");
  CHECK_EQ_INT(c->providers[1].line, 4);
  CHECK(c->models[0].provider == &c->providers[1]);
  pol_config_free(c);
}

/* The shipped example must load with no variable set, and take the documented ones. */
static void test_example(void) {
  const char *vars[] = {"TIERGATE_LISTEN", "TIERGATE_DB", "OPENAI_BASE_URL", "OPENAI_API_KEY",
                        "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "OPENAI_PROJECT_ID"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
  char path[4096];
  const char *src = getenv("TIERGATE_SOURCE_DIR");
  snprintf(path, sizeof path, "%s/examples/tiergate.yaml", src ? src : ".");
  struct pol_config *c = NULL;
  int rc = pol_config_load(path, &c, &errs);
  CHECK_EQ_INT(rc, 0);
  if (!c) return;
  CHECK_STR(c->listen_host, "127.0.0.1");
  CHECK_EQ_INT(c->listen_port, 8080);
  CHECK_STR(c->db_path, "tiergate.db");
  const struct pol_provider *oa = pol_provider_find(c, "openai");
  CHECK(oa != NULL);
  CHECK_STR(oa->base_url, "https://api.openai.com/v1");
  CHECK(oa->api_key == NULL);
  CHECK_STR(oa->api_key_env, "OPENAI_API_KEY");
  const struct pol_provider *an = pol_provider_find(c, "anthropic");
  CHECK(an != NULL && an->kind == POL_PROVIDER_ANTHROPIC);
  if (an) {
    CHECK_STR(an->base_url, "https://api.anthropic.com");
    CHECK_STR(an->api_key_env, "ANTHROPIC_API_KEY");
    CHECK_STR(an->anthropic_version, "2023-06-01");
  }
  /* the only warnings: the missing keys, which do not stop the gateway */
  CHECK_EQ_INT(c->n_warnings, 2);
  if (c->n_warnings == 2) {
    CHECK(strstr(c->warnings[0].msg, "OPENAI_API_KEY is not set") != NULL);
    CHECK(strstr(c->warnings[1].msg, "ANTHROPIC_API_KEY is not set") != NULL);
  }
  const char *must[] = {"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"};
  for (size_t i = 0; i < 3; i++) {
    const struct pol_model *m = pol_model_find(c, must[i]);
    CHECK_MSG(m && m->has_price && m->provider == oa, "example lacks priced model %s", must[i]);
  }
  const char *claude[] = {"claude-haiku-4-5", "claude-sonnet-4-5"};
  for (size_t i = 0; i < 2; i++) {
    const struct pol_model *m = pol_model_find(c, claude[i]);
    CHECK_MSG(m && m->has_price && m->provider == an, "example lacks priced model %s", claude[i]);
  }
  for (size_t i = 0; i < c->n_models; i++)
    CHECK_MSG(c->models[i].has_price, "example model %s has no price", c->models[i].name);
  CHECK(c->default_model && !strcmp(c->default_model->name, "gpt-4o-mini"));
  CHECK(c->baseline_model && !strcmp(c->baseline_model->name, "gpt-4o"));
  pol_config_free(c);

  setenv("TIERGATE_LISTEN", "0.0.0.0:0", 1);
  setenv("TIERGATE_DB", "/tmp/tg-test.db", 1);
  setenv("OPENAI_BASE_URL", "http://127.0.0.1:18080/v1/", 1);
  setenv("OPENAI_API_KEY", "sk-x", 1);
  setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:18081", 1);
  setenv("ANTHROPIC_API_KEY", "sk-ant-x", 1);
  rc = pol_config_load(path, &c, &errs);
  CHECK_EQ_INT(rc, 0);
  if (c) {
    CHECK_STR(c->listen_host, "0.0.0.0");
    CHECK_EQ_INT(c->listen_port, 0);
    CHECK_STR(c->db_path, "/tmp/tg-test.db");
    CHECK_STR(c->providers[0].base_url, "http://127.0.0.1:18080/v1");
    CHECK_STR(c->providers[0].api_key, "sk-x");
    CHECK_STR(c->providers[1].base_url, "http://127.0.0.1:18081");
    CHECK_STR(c->providers[1].api_key, "sk-ant-x");
    CHECK_EQ_INT(c->n_warnings, 0);
  }
  pol_config_free(c);
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

/* ------------------------------------------------------------------ ${VAR} */

static void test_env(void) {
  unsetenv("TG_NOPE");
  setenv("TG_EMPTY", "", 1);
  setenv("TG_PORT", "9123", 1);
  setenv("TG_ABC", "abc", 1);
  struct pol_config *c = load("listen: ${TG_HOST:-10.0.0.1}:${TG_PORT}\n"
                              "database: ${TG_EMPTY:-fallback.db}\n"
                              PROVIDER
                              "    headers: {X-Lit: \"$${NOT_A_VAR} and $5 and ${TG_EMPTY}.\"}\n"
                              MODEL);
  CHECK(c != NULL);
  if (c) {
    CHECK_STR(c->listen_host, "10.0.0.1");
    CHECK_EQ_INT(c->listen_port, 9123);
    CHECK_STR(c->db_path, "fallback.db");   /* set but empty takes the default, like the shell */
    CHECK_STR(c->providers[0].headers[0].value, "${NOT_A_VAR} and $5 and .");
  }
  pol_config_free(c);

  /* unset without default: the error points at the `$` of that reference */
  EXPECT_ERRORS("listen: 127.0.0.1:${TG_NOPE}\n" PROVIDER MODEL,
                "t.yaml:1:19: environment variable TG_NOPE is not set (write ${TG_NOPE:-default} "
                "to give a default)");
  /* inside a quoted scalar: the quote counts */
  EXPECT_ERRORS(PROVIDER MODEL "database: \"a/${TG_NOPE}/b\"\n",
                "t.yaml:9:14: environment variable TG_NOPE is not set (write ${TG_NOPE:-default} "
                "to give a default)");
  /* the second of two references, after a multi-byte character */
  EXPECT_ERRORS(PROVIDER MODEL "database: é${TG_PORT}${TG_NOPE}\n",
                "t.yaml:9:22: environment variable TG_NOPE is not set (write ${TG_NOPE:-default} "
                "to give a default)");
  /* a folded multi-line scalar: reported at the scalar's start */
  EXPECT_ERRORS(PROVIDER MODEL "database: >\n  a\n  ${TG_NOPE}\n",
                "t.yaml:9:11: environment variable TG_NOPE is not set (write ${TG_NOPE:-default} "
                "to give a default)");
  EXPECT_ERRORS(PROVIDER MODEL "database: x${TG_PORT\n",
                "t.yaml:9:12: unterminated '${' (missing '}'; write '$${' for a literal '${')");
  EXPECT_ERRORS(PROVIDER MODEL "database: ${1BAD}\n",
                "t.yaml:9:11: bad variable name '1BAD' in '${...}'");
  EXPECT_ERRORS(PROVIDER MODEL "database: ${}\n",
                "t.yaml:9:11: bad variable name '' in '${...}'");
  EXPECT_ERRORS(PROVIDER MODEL "database: ${TG_PORT:=x}\n",
                "t.yaml:9:11: bad '${TG_PORT:=x}': expected ${VAR} or ${VAR:-default}");
  EXPECT_ERRORS(PROVIDER MODEL "database: ${A:-${B}}\n",
                "t.yaml:9:11: nested '${' inside a default is not supported");
  /* expansion happens before typing: the typed error quotes the expanded text */
  EXPECT_ERRORS(PROVIDER MODEL "limits:\n  max_connections: ${TG_ABC}\n",
                "t.yaml:10:20: expected integer, got 'abc'");
  c = load(PROVIDER MODEL "limits:\n  max_connections: ${TG_PORT}\n");
  CHECK(c && c->limits.max_connections == 9123);
  pol_config_free(c);
  /* a value under an unknown key is not expanded (no second, confusing error) */
  EXPECT_ERRORS(PROVIDER MODEL "bogus: ${TG_NOPE}\n",
                "t.yaml:9:1: unknown key 'bogus' in the configuration");
  unsetenv("TG_EMPTY");
  unsetenv("TG_PORT");
  unsetenv("TG_ABC");
}

/* ------------------------------------------------------------------ errors */

static void test_unknown_and_duplicate_keys(void) {
  EXPECT_ERRORS(PROVIDER MODEL "databse: x.db\n",
                "t.yaml:9:1: unknown key 'databse' in the configuration (did you mean 'database'?)");
  EXPECT_ERRORS("providers:\n  oa:\n    kind: openai\n    baseurl: http://x\n" MODEL,
                "t.yaml:4:5: unknown key 'baseurl' in provider 'oa' (did you mean 'base_url'?)");
  EXPECT_ERRORS("providers:\n  oa:\n    kind: openai\n    api_key: sk-123\n" MODEL,
                "t.yaml:4:5: unknown key 'api_key' in provider 'oa' (keys never go in the file: "
                "name the variable that holds it with api_key_env)");
  EXPECT_ERRORS(PROVIDER "models:\n  m:\n    provider: oa\n    temperature: 1\n",
                "t.yaml:8:5: unknown key 'temperature' in model 'm'");
  EXPECT_ERRORS(PROVIDER MODEL "limits:\n  max_body: 1MiB\n",
                "t.yaml:10:3: unknown key 'max_body' in limits");
  EXPECT_ERRORS(PROVIDER MODEL "    price: {input: 1, outptu: 2}\n",
                "t.yaml:9:23: unknown key 'outptu' in price (did you mean 'output'?)");
  EXPECT_ERRORS("listen: :1\n" PROVIDER MODEL "listen: :2\n",
                "t.yaml:10:1: duplicate key 'listen' in the configuration (first at line 1)");
  EXPECT_ERRORS("providers:\n  oa:\n    kind: openai\n    kind: anthropic\n" MODEL,
                "t.yaml:4:5: duplicate key 'kind' in provider 'oa' (first at line 3)");
  EXPECT_ERRORS(PROVIDER MODEL "  m:\n    provider: oa\n",
                "t.yaml:9:3: duplicate key 'm' in models (first at line 6)");
  EXPECT_ERRORS(PROVIDER "  oa:\n    kind: openai\n" MODEL,
                "t.yaml:5:3: duplicate key 'oa' in providers (first at line 2)");
  EXPECT_ERRORS("providers:\n  - {name: a, kind: openai}\n  - {name: a, kind: openai}\n"
                "models: {m: {provider: a}}\n",
                "t.yaml:3:12: duplicate provider name 'a' (first at line 2)");
  EXPECT_ERRORS(PROVIDER "    headers: {X-A: 1, x-a: 2}\n" MODEL,
                "t.yaml:5:23: duplicate header 'x-a' (header names ignore case)");
  EXPECT_ERRORS(PROVIDER MODEL "? [a, b]\n: 1\n",
                "t.yaml:9:3: keys must be plain strings, got a list");
}

static void test_wrong_types(void) {
  EXPECT_ERRORS("listen: {host: x}\n" PROVIDER MODEL,
                "t.yaml:1:9: expected host:port, got a mapping");
  EXPECT_ERRORS("listen: localhost\n" PROVIDER MODEL,
                "t.yaml:1:9: expected host:port like 127.0.0.1:8080 or [::1]:8080, got 'localhost'");
  EXPECT_ERRORS("listen: ::1:80\n" PROVIDER MODEL,
                "t.yaml:1:9: expected host:port like 127.0.0.1:8080 or [::1]:8080, got '::1:80'");
  EXPECT_ERRORS("listen: x:70000\n" PROVIDER MODEL,
                "t.yaml:1:9: listen port must be between 0 and 65535, got 70000");
  EXPECT_ERRORS(PROVIDER MODEL "limits:\n  max_connections: abc\n",
                "t.yaml:10:20: expected integer, got 'abc'");
  EXPECT_ERRORS(PROVIDER MODEL "limits:\n  max_connections: 0\n",
                "t.yaml:10:20: must be between 1 and 1000000, got 0");
  EXPECT_ERRORS(PROVIDER MODEL "limits:\n  max_connections: [1]\n",
                "t.yaml:10:20: expected integer, got a list");
  EXPECT_ERRORS(PROVIDER MODEL "limits:\n  max_body_bytes: 4 MiB\n",
                "t.yaml:10:19: expected a size like 4MiB, 512KiB or 1048576, got '4 MiB'");
  EXPECT_ERRORS(PROVIDER MODEL "limits:\n  max_body_bytes: 4mb\n",
                "t.yaml:10:19: expected a size like 4MiB, 512KiB or 1048576, got '4mb'");
  EXPECT_ERRORS(PROVIDER MODEL "limits:\n  max_body_bytes: 2GiB\n",
                "t.yaml:10:19: size must be between 1024 and 1073741824 bytes, got '2GiB'");
  EXPECT_ERRORS(PROVIDER MODEL "limits:\n  connect_timeout: 5\n",
                "t.yaml:10:20: expected a duration with a unit (ms, s, m, h) like 5s or 250ms, got '5'");
  EXPECT_ERRORS(PROVIDER MODEL "limits:\n  connect_timeout: 0.5ms\n",
                "t.yaml:10:20: expected a duration like 5s or 250ms, got '0.5ms'");
  EXPECT_ERRORS(PROVIDER MODEL "limits:\n  connect_timeout: 0s\n",
                "t.yaml:10:20: duration must be between 1ms and 24h, got '0s'");
  EXPECT_ERRORS(PROVIDER MODEL "limits:\n  connect_timeout: 5 s\n",
                "t.yaml:10:20: expected a duration like 5s or 250ms, got '5 s'");
  EXPECT_ERRORS(PROVIDER MODEL "limits: 5\n", "t.yaml:9:9: expected limits (a mapping), got '5'");
  EXPECT_ERRORS("providers: openai\n" MODEL,
                "t.yaml:1:12: expected providers (a mapping of name to settings), got 'openai'");
  EXPECT_ERRORS(PROVIDER "models:\n  - m\n", "t.yaml:6:3: expected models (a mapping), got a list");
  EXPECT_ERRORS(PROVIDER "models:\n  m:\n    provider: oa\n    price: {input: cheap}\n",
                "t.yaml:8:20: expected a price in USD per 1M tokens like 0.15 (at most 6 "
                "decimals), got 'cheap'");
  EXPECT_ERRORS(PROVIDER "models:\n  m:\n    provider: oa\n    price: {input: 0.0000001}\n",
                "t.yaml:8:20: expected a price in USD per 1M tokens like 0.15 (at most 6 "
                "decimals), got '0.0000001'");
  EXPECT_ERRORS(PROVIDER "models:\n  m:\n    provider: oa\n    price: {input: -1}\n",
                "t.yaml:8:20: expected a price in USD per 1M tokens like 0.15 (at most 6 "
                "decimals), got '-1'");
  EXPECT_ERRORS(PROVIDER "models:\n  m:\n    provider: [oa]\n",
                "t.yaml:7:15: expected a provider name, got a list");
  EXPECT_ERRORS(PROVIDER "models:\n  m:\n    provider:\n",
                "t.yaml:7:14: expected a provider name, got null");
  EXPECT_ERRORS("providers:\n  oa:\n    kind: azure\n" MODEL,
                "t.yaml:3:11: unknown provider kind 'azure' (expected openai, anthropic or local)");
  EXPECT_ERRORS("providers:\n  oa:\n    base_url: http://x\n" MODEL,
                "t.yaml:2:3: provider 'oa': missing key 'kind' (openai, anthropic or local)");
  EXPECT_ERRORS(PROVIDER "    anthropic_version: 2023-06-01\n" MODEL,
                "t.yaml:5:5: anthropic_version only applies to providers of kind anthropic");
  EXPECT_ERRORS("providers:\n  a: {kind: anthropic, anthropic_version: latest}\n"
                "models: {m: {provider: a}}\n",
                "t.yaml:2:43: expected an API version like 2023-06-01, got 'latest'");
  EXPECT_ERRORS(PROVIDER "    api_key_env: MY-KEY\n" MODEL,
                "t.yaml:5:18: bad environment variable name 'MY-KEY'");
  EXPECT_ERRORS(PROVIDER "    headers: {Host: x}\n" MODEL,
                "t.yaml:5:15: header 'Host' is set by the gateway and cannot be configured");
  EXPECT_ERRORS(PROVIDER "    headers: {\"Bad Name\": x}\n" MODEL,
                "t.yaml:5:15: bad header name 'Bad Name'");
  EXPECT_ERRORS(PROVIDER "    headers: {X-A: \"a\\r\\nX-Evil: 1\"}\n" MODEL,
                "t.yaml:5:20: header value for 'X-A' must be one line of at most 8192 bytes");
  EXPECT_ERRORS(PROVIDER "    api_key_env: K\n    headers: {Authorization: Bearer x}\n" MODEL,
                "t.yaml:5:5: provider 'oa': api_key_env conflicts with the configured "
                "'Authorization' header (use one of them)");
  EXPECT_ERRORS("providers:\n  'o a': {kind: openai}\nmodels: {m: {provider: 'o a'}}\n",
                "t.yaml:2:3: bad provider name 'o a' (letters, digits, '.', '-', '_')\n"
                "t.yaml:3:24: unknown provider 'o a' (not defined under providers)");
  EXPECT_ERRORS(PROVIDER "models:\n  'a b': {provider: oa}\n",
                "t.yaml:6:3: bad model name 'a b' (no spaces or control characters, at most 128 "
                "bytes)");
}

static void test_urls(void) {
  struct { const char *url, *want; } cases[] = {
      {"ftp://x/v1", "t.yaml:4:15: bad base_url 'ftp://x/v1': scheme must be http or https"},
      {"api.openai.com/v1",
       "t.yaml:4:15: bad base_url 'api.openai.com/v1': expected an absolute URL starting with "
       "http:// or https://"},
      {"http:///v1", "t.yaml:4:15: bad base_url 'http:///v1': host is missing"},
      {"http://:80/v1", "t.yaml:4:15: bad base_url 'http://:80/v1': host is missing"},
      {"https://u:p@host/v1",
       "t.yaml:4:15: bad base_url 'https://u:p@host/v1': credentials in the URL are not allowed "
       "(the key comes from api_key_env)"},
      {"http://host:0/v1", "t.yaml:4:15: bad base_url 'http://host:0/v1': bad port"},
      {"http://host:99999", "t.yaml:4:15: bad base_url 'http://host:99999': bad port"},
      {"http://host:/v1", "t.yaml:4:15: bad base_url 'http://host:/v1': bad port"},
      {"http://host/v1?x=1",
       "t.yaml:4:15: bad base_url 'http://host/v1?x=1': URL must not have a query or fragment"},
      {"http://ho$t/v1", "t.yaml:4:15: bad base_url 'http://ho$t/v1': bad character in host"},
      {"http://[zz]/v1", "t.yaml:4:15: bad base_url 'http://[zz]/v1': bad IPv6 host"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char yaml[512];
    snprintf(yaml, sizeof yaml, "providers:\n  oa:\n    kind: openai\n    base_url: %s\n" MODEL,
             cases[i].url);
    EXPECT_ERRORS(yaml, cases[i].want);
  }
  struct pol_config *c = load("providers:\n  oa:\n    kind: openai\n"
                              "    base_url: http://[::1]:8000/\n" MODEL);
  CHECK(c && !strcmp(c->providers[0].base_url, "http://[::1]:8000"));
  pol_config_free(c);
}

static void test_references(void) {
  EXPECT_ERRORS(PROVIDER "models:\n  m:\n    provider: nope\n",
                "t.yaml:7:15: unknown provider 'nope' (not defined under providers)");
  EXPECT_ERRORS(PROVIDER "models:\n  m: {model: gpt-4o}\n", "t.yaml:6:3: model 'm': missing key 'provider'");
  EXPECT_ERRORS(PROVIDER MODEL "default_model: gpt-4o\n",
                "t.yaml:9:16: default_model 'gpt-4o' is not a configured model");
  EXPECT_ERRORS(PROVIDER MODEL "baseline_model: zz\n",
                "t.yaml:9:17: baseline_model 'zz' is not a configured model");
  EXPECT_ERRORS(PROVIDER "models:\n  m: {provider: oa, model: mystery}\nbaseline_model: m\n",
                "t.yaml:7:17: baseline_model 'm' has no known price (give it a price override)");
  EXPECT_ERRORS(PROVIDER "models:\n  m: {provider: oa, fallbacks: [m]}\n",
                "t.yaml:6:33: model 'm' lists itself as a fallback");
  EXPECT_ERRORS(PROVIDER "models:\n  m: {provider: oa, fallbacks: [x]}\n",
                "t.yaml:6:33: fallback 'x' is not a configured model");
  EXPECT_ERRORS(PROVIDER "models:\n  a: {provider: oa, fallbacks: [b]}\n"
                "  b: {provider: oa, fallbacks: [c]}\n  c: {provider: oa, fallbacks: [a]}\n",
                "t.yaml:8:32: fallback cycle: model 'c' falls back to 'a', which leads back to it");
  EXPECT_ERRORS(PROVIDER "models:\n  m:\n    provider: oa\n    deployments: [{provider: oa}]\n",
                "t.yaml:8:5: model 'm': give either provider/model or deployments, not both");
  EXPECT_ERRORS(PROVIDER "models:\n  m:\n    deployments: []\n",
                "t.yaml:7:18: expected deployments (a non-empty list), got an empty list");
  EXPECT_ERRORS(PROVIDER "models:\n  m:\n    deployments:\n      - {model: x}\n",
                "t.yaml:8:9: deployment: missing key 'provider'");
  EXPECT_ERRORS(PROVIDER "models:\n  m:\n    deployments:\n      - {provider: oa, weight: 0}\n",
                "t.yaml:8:7: model 'm': every deployment has weight 0");
  EXPECT_ERRORS(PROVIDER "models:\n  m:\n    provider: oa\n    balance: random\n",
                "t.yaml:8:14: unknown balance 'random' (expected weighted or least_in_flight)");
  EXPECT_ERRORS(PROVIDER MODEL "retry: {on: [500]}\n",
                "t.yaml:9:14: unknown failure class '500' (expected connect, timeout, 408, 429, "
                "4xx, 5xx, 529, context_length, rate_limit, server_error, overloaded or "
                "client_error)");
  EXPECT_ERRORS(PROVIDER MODEL "retry: {base_delay: 10s}\n",
                "t.yaml:9:8: retry base_delay (10000ms) is longer than max_delay (8000ms)");
  EXPECT_ERRORS(PROVIDER MODEL "retry: {max_attempts: 11}\n",
                "t.yaml:9:23: must be between 1 and 10, got 11");
  EXPECT_ERRORS(PROVIDER MODEL "breaker: {error_rate: 150%}\n",
                "t.yaml:9:23: expected a percentage between 0% and 100%, got '150%'");
  /* a model with a broken provider does not add a misleading "unknown provider" error */
  EXPECT_ERRORS("providers:\n  oa:\n    kind: openai\n    base_url: ftp://x\n" MODEL,
                "t.yaml:4:15: bad base_url 'ftp://x': scheme must be http or https");
  EXPECT_ERRORS(PROVIDER "models: {}\n", "t.yaml:5:9: no models defined (the models mapping is empty)");
  EXPECT_ERRORS(PROVIDER, "t.yaml:1:1: no models defined (add a 'models' mapping)");
}

static void test_warnings(void) {
  unsetenv("TG_UNSET_KEY");
  struct pol_config *c = load(PROVIDER "    api_key_env: TG_UNSET_KEY\n"
                              "models:\n  m: {provider: oa, model: my-llama}\n"
                              "  n: {provider: oa, model: other, price: {input: 1}}\n"
                              "  p: {provider: oa, model: other, price: {input: 1, output: 2}}\n");
  CHECK(c != NULL);
  if (!c) return;
  CHECK(c->providers[0].api_key == NULL);
  CHECK_EQ_INT(c->n_warnings, 3);
  char buf[700];
  if (c->n_warnings == 3) {
    pol_error_format(&c->warnings[0], buf, sizeof buf);
    CHECK_STR(buf, "t.yaml:5:18: provider 'oa': environment variable TG_UNSET_KEY is not set; "
                   "requests routed to it fail with an authentication error until it is set");
    pol_error_format(&c->warnings[1], buf, sizeof buf);
    CHECK_STR(buf, "t.yaml:7:3: model 'm': no known price for upstream model 'my-llama'; its cost "
                   "is logged as unknown (add price: {input: ..., output: ...} in USD per 1M "
                   "tokens)");
    pol_error_format(&c->warnings[2], buf, sizeof buf);
    CHECK_STR(buf, "t.yaml:8:3: model 'n': no known price for upstream model 'other' (output "
                   "price missing); its cost is logged as unknown (add price: {input: ..., "
                   "output: ...} in USD per 1M tokens)");
  }
  const struct pol_model *m = pol_model_find(c, "m");
  CHECK(m && !m->has_price);
  struct pol_usage u = {.input_tokens = 10, .output_tokens = 10};
  CHECK_EQ_INT(pol_cost_pusd(&m->price, &u), -1);
  CHECK_EQ_INT(pol_baseline_cost_pusd(c, m, &u), -1);   /* no baseline: its own (unknown) price */
  const struct pol_model *p = pol_model_find(c, "p");
  CHECK_EQ_INT(pol_cost_pusd(&p->price, &u), 30000000);
  CHECK_EQ_INT(pol_baseline_cost_pusd(c, p, &u), 30000000);
  pol_config_free(c);
  setenv("TG_UNSET_KEY", "", 1);
  c = load(PROVIDER "    api_key_env: TG_UNSET_KEY\n" MODEL);
  CHECK(c && c->n_warnings == 1 && strstr(c->warnings[0].msg, "TG_UNSET_KEY is empty"));
  CHECK(c && c->providers[0].api_key == NULL);
  pol_config_free(c);
  unsetenv("TG_UNSET_KEY");
}

static void test_documents(void) {
  EXPECT_ERRORS("", "t.yaml:1:1: empty configuration (expected a mapping with providers and models)");
  EXPECT_ERRORS("# only a comment\n",
                "t.yaml:1:1: empty configuration (expected a mapping with providers and models)");
  EXPECT_ERRORS("- a\n- b\n", "t.yaml:1:1: expected the configuration (a mapping), got a list");
  EXPECT_ERRORS(PROVIDER MODEL "---\nlisten: :1\n",
                "t.yaml:10:1: only one YAML document is allowed (found a second one)");
  EXPECT_ERRORS("listen: [1, 2\n",
                "t.yaml:2:1: YAML syntax error: did not find expected ',' or ']' while parsing a "
                "flow sequence");
  EXPECT_ERRORS("a: b: c\n",
                "t.yaml:1:5: YAML syntax error: mapping values are not allowed in this context");
  EXPECT_ERRORS("listen: \"\\q\"\n",
                "t.yaml:1:10: YAML syntax error: found unknown escape character while parsing a "
                "quoted scalar");
  EXPECT_ERRORS("providers:\n\tx: 1\n",
                "t.yaml:2:1: YAML syntax error: found character that cannot start any token while "
                "scanning for the next token");
  const char bin[] = "listen: \x01\n";
  EXPECT_ERRORS(bin, "t.yaml:1:9: YAML syntax error: control characters are not allowed (character 0x01)");

  struct pol_config *c = (struct pol_config *)1;
  CHECK_EQ_INT(pol_config_load("/nonexistent/tiergate.yaml", &c, &errs), -ENOENT);
  CHECK(c == NULL);
  char buf[700];
  pol_error_format(&errs.e[0], buf, sizeof buf);
  CHECK_STR(buf, "/nonexistent/tiergate.yaml: cannot open: No such file or directory");

  CHECK_EQ_INT(pol_config_load("/tmp", &c, &errs), -EISDIR);
  pol_error_format(&errs.e[0], buf, sizeof buf);
  CHECK_STR(buf, "/tmp: read error: Is a directory");

  /* lists whose checks are quadratic are capped */
  char many[4096] = PROVIDER "models:\n  m:\n    provider: oa\n    fallbacks: [";
  for (int i = 0; i < 65; i++) {
    char item[16];
    snprintf(item, sizeof item, "%sf%d", i ? ", " : "", i);
    strcat(many, item);
  }
  strcat(many, "]\n");
  EXPECT_ERRORS(many, "t.yaml:8:16: too many fallbacks (65, at most 64)");

  /* errors past POL_MAX_ERRORS are counted, the first ones stored in file order */
  char big[8192] = PROVIDER MODEL;
  for (int i = 0; i < 40; i++) {
    char line[32];
    snprintf(line, sizeof line, "bad%d: 1\n", i);
    strcat(big, line);
  }
  c = load(big);
  CHECK(c == NULL);
  CHECK_EQ_INT(errs.n, 40);
  CHECK_STR(errs.e[0].msg, "unknown key 'bad0' in the configuration");
  CHECK_EQ_INT(errs.e[31].line, 40);

  /* anchors and aliases work, merge keys are not part of the schema */
  c = load(PROVIDER "    headers: &h {X-A: '1'}\n  ob:\n    kind: openai\n    headers: *h\n" MODEL);
  CHECK(c && c->n_providers == 2 && c->providers[1].n_headers == 1);
  pol_config_free(c);
}

/* Mutations of a valid file: whatever the bytes, the loader answers with a config or errors, and
 * ASan/UBSan watch for the rest. Deterministic so failures replay. */
static void test_mutations(void) {
  const char *base = "listen: ${TIERGATE_LISTEN:-127.0.0.1:8080}\n" PROVIDER
                     "    headers: {X-A: '1'}\n"
                     "models:\n  m: {provider: oa, model: gpt-4o, fallbacks: [n]}\n"
                     "  n:\n    deployments: [{provider: oa, model: x, weight: 2}]\n"
                     "limits: {max_body_bytes: 1MiB, connect_timeout: 2s}\n"
                     "retry: {on: [429, 5xx]}\nbaseline_model: m\n";
  size_t n = strlen(base);
  char *buf = malloc(n + 64);
  uint32_t s = 12345;
  int ok = 0, bad = 0;
  const char alphabet[] = ":-{}[],'\"&*!|>#%@`$\n\t \\x0aZ9";
  for (int it = 0; it < 3000; it++) {
    memcpy(buf, base, n + 1);
    size_t len = n;
    int edits = 1 + it % 4;
    for (int e = 0; e < edits; e++) {
      s = s * 1103515245u + 12345u;
      size_t pos = (s >> 8) % len;
      s = s * 1103515245u + 12345u;
      char ch = alphabet[(s >> 8) % (sizeof alphabet - 1)];
      switch ((s >> 20) % 3) {
        case 0: buf[pos] = ch; break;
        case 1: memmove(buf + pos, buf + pos + 1, len - pos); len--; break;
        default: memmove(buf + pos + 1, buf + pos, len - pos + 1); buf[pos] = ch; len++; break;
      }
    }
    struct pol_config *c = NULL;
    int rc = pol_config_load_str("fuzz.yaml", buf, len, &c, &errs);
    if (rc == 0) {
      ok++;
      CHECK(c != NULL && c->n_models >= 1);
    } else {
      bad++;
      CHECK(c == NULL && errs.n >= 1 && errs.e[0].msg[0]);
    }
    pol_config_free(c);
  }
  free(buf);
  CHECK(ok > 0 && bad > 0);
}

/* The resilience keys added with the retry/fallback/breaker work: jitter, budget, breaker `on`,
 * failure-class aliases and context_length, and their defaults. */
static void test_resilience_keys(void) {
  struct pol_config *c = load(PROVIDER MODEL);
  CHECK(c != NULL);
  if (c) {
    const struct pol_model *m = pol_model_find(c, "m");
    CHECK_EQ_INT(m->retry.jitter, POL_JITTER_FULL);
    CHECK_EQ_INT(m->retry.budget_ms, 0);
    CHECK_EQ_INT(m->breaker.on, POL_FAIL_CONNECT | POL_FAIL_TIMEOUT | POL_FAIL_5XX | POL_FAIL_529);
    pol_config_free(c);
  }
  c = load(PROVIDER
           "models:\n"
           "  m:\n    provider: oa\n"
           "    fallback_on: [rate_limit, server_error, overloaded, context_length]\n"
           "    retry: {jitter: decorrelated, budget: 1500ms, on: [client_error]}\n"
           "    breaker: {on: [connect, 429]}\n"
           "  n:\n    provider: oa\n"
           "retry: {jitter: none}\n");
  CHECK(c != NULL);
  if (c) {
    const struct pol_model *m = pol_model_find(c, "m"), *n = pol_model_find(c, "n");
    CHECK_EQ_INT(m->fallback_on, POL_FAIL_429 | POL_FAIL_5XX | POL_FAIL_529 | POL_FAIL_CONTEXT);
    CHECK_EQ_INT(m->retry.jitter, POL_JITTER_DECORRELATED);
    CHECK_EQ_INT(m->retry.budget_ms, 1500);
    CHECK_EQ_INT(m->retry.on, POL_FAIL_4XX);
    CHECK_EQ_INT(m->breaker.on, POL_FAIL_CONNECT | POL_FAIL_429);
    CHECK_EQ_INT(n->retry.jitter, POL_JITTER_NONE);   /* from the top-level block */
    pol_config_free(c);
  }
  EXPECT_ERRORS(PROVIDER MODEL "    retry: {jitter: equal}\n",
                "t.yaml:9:21: unknown jitter 'equal' (expected full, decorrelated or none)");
  EXPECT_ERRORS(PROVIDER MODEL "    breaker: {on: [sometimes]}\n",
                "t.yaml:9:20: unknown failure class 'sometimes' (expected connect, timeout, 408, "
                "429, 4xx, 5xx, 529, context_length, rate_limit, server_error, overloaded or "
                "client_error)");
  EXPECT_ERRORS(PROVIDER MODEL "    retry: {budget: 5}\n",
                "t.yaml:9:21: expected a duration with a unit (ms, s, m, h) like 5s or 250ms, "
                "got '5'");
}

/* examples/resilience.yaml loads with no variable set and means what its comments say. */
static void test_resilience_example(void) {
  const char *vars[] = {"TIERGATE_LISTEN", "TIERGATE_DB", "OPENAI_BASE_URL", "OPENAI_API_KEY",
                        "OPENAI_EU_BASE_URL", "OPENAI_EU_API_KEY", "ANTHROPIC_BASE_URL",
                        "ANTHROPIC_API_KEY"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
  char path[4096];
  const char *src = getenv("TIERGATE_SOURCE_DIR");
  snprintf(path, sizeof path, "%s/examples/resilience.yaml", src ? src : ".");
  struct pol_config *c = NULL;
  CHECK_EQ_INT(pol_config_load(path, &c, &errs), 0);
  if (!c) return;
  CHECK_EQ_INT(c->n_warnings, 3);   /* the three unset keys */
  const struct pol_model *mini = pol_model_find(c, "gpt-4o-mini"), *o = pol_model_find(c, "gpt-4o"),
                         *m41 = pol_model_find(c, "gpt-4.1-mini");
  CHECK(mini && o && m41);
  if (mini && o && m41) {
    CHECK_EQ_INT(mini->n_deployments, 2);
    CHECK_EQ_INT(mini->deployments[0].weight, 3);
    CHECK_EQ_INT(mini->n_fallbacks, 1);
    CHECK_EQ_INT(o->balance, POL_BALANCE_LEAST_IN_FLIGHT);
    CHECK_EQ_INT(o->deployments[2].weight, 0);
    CHECK_EQ_INT(o->retry.jitter, POL_JITTER_DECORRELATED);
    CHECK_EQ_INT(o->retry.max_attempts, 4);
    CHECK_EQ_INT(o->retry.budget_ms, 30000);
    CHECK_EQ_INT(o->timeouts.first_byte_ms, 30000);
    CHECK_EQ_INT(o->timeouts.connect_ms, 5000);
    CHECK(m41->fallback_on & POL_FAIL_CONTEXT);
    CHECK(!(m41->fallback_on & POL_FAIL_4XX));
  }
  pol_config_free(c);
}

/* Deep nesting is refused at a depth of 64, fast: libyaml's scanner is quadratic in flow
 * nesting, so a 4 MB "[[[[..." file took minutes before the depth check. */
static double mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_depth(void) {
  size_t n = 4000000;
  char *deep = malloc(n + 1);
  memset(deep, '[', n);
  deep[n] = 0;
  double t0 = mono_ms();
  EXPECT_ERRORS(deep, "t.yaml:1:65: nesting deeper than 64 levels of mappings and sequences");
  double el = mono_ms() - t0;
  CHECK_MSG(el < 1000, "a 4 MB '[[[[...' file took %.0f ms to refuse", el);
  /* balanced, 2 MB each way */
  for (size_t i = 0; i < n / 2; i++) deep[n / 2 + i] = ']';
  t0 = mono_ms();
  EXPECT_ERRORS(deep, "t.yaml:1:65: nesting deeper than 64 levels of mappings and sequences");
  el = mono_ms() - t0;
  CHECK_MSG(el < 1000, "a balanced 4 MB '[[..]]' file took %.0f ms to refuse", el);
  /* mappings in flow and in blocks count the same */
  size_t o = 0;
  for (int i = 0; i < 100; i++) o += (size_t)sprintf(deep + o, "{a: ");
  deep[o] = 0;
  EXPECT_ERRORS(deep, "t.yaml:1:257: nesting deeper than 64 levels of mappings and sequences");
  o = 0;
  for (int i = 0; i < 70; i++) o += (size_t)sprintf(deep + o, "%*sk%d:\n", i, "", i);
  deep[o] = 0;
  EXPECT_ERRORS(deep, "t.yaml:65:65: nesting deeper than 64 levels of mappings and sequences");
  /* 64 levels are fine for the depth check (the file is wrong for other reasons) */
  o = (size_t)sprintf(deep, "listen: ");
  for (int i = 0; i < 63; i++) deep[o++] = '[';
  for (int i = 0; i < 63; i++) deep[o++] = ']';
  deep[o] = 0;
  struct pol_config *c = NULL;
  pol_config_load_str("t.yaml", deep, o, &c, &errs);
  char buf[700] = "";
  if (errs.n) pol_error_format(&errs.e[0], buf, sizeof buf);
  CHECK_MSG(errs.n > 0 && !strstr(buf, "nesting"), "64 levels: %s", buf);
  pol_config_free(c);
  free(deep);
}

int main(void) {
  test_minimal_and_defaults();
  test_resilience_example();
  test_resilience_keys();
  test_full();
  test_list_form_providers();
  test_example();
  test_env();
  test_unknown_and_duplicate_keys();
  test_wrong_types();
  test_urls();
  test_references();
  test_warnings();
  test_documents();
  test_mutations();
  test_depth();
  return check_done();
}
