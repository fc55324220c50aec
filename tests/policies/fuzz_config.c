/*
 * fuzz_config.c: libFuzzer target for the YAML config loader. Loads the input; on success walks
 * everything the config hands out (every string, every pointer between models, deployments and
 * providers, every warning) so a dangling or unterminated value shows up under ASan; on failure
 * formats every stored error and checks each has a message.
 *
 * Built as a fuzzer with -Dfuzz=true and CC=clang (tests/policies/meson.build); the same function
 * is linked with tests/fuzz_replay.c into test_policies_config_corpus, which replays
 * tests/policies/corpus/config/ in every run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policies.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void touch(const char *s) {
  if (s) sink += strlen(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* a fixed environment so runs are deterministic: one variable set, one empty, one unset */
  static int env_ready;
  if (!env_ready) {
    setenv("TG_FUZZ_SET", "127.0.0.1:8080", 1);
    setenv("TG_FUZZ_EMPTY", "", 1);
    unsetenv("TG_FUZZ_UNSET");
    env_ready = 1;
  }
  /* a private copy of exactly SIZE bytes, so a read past the end is caught */
  char *copy = malloc(size ? size : 1);
  if (!copy) return 0;
  if (size) memcpy(copy, data, size);
  struct pol_errors errs;
  struct pol_config *c = NULL;
  char line[700];
  if (pol_config_load_str("fuzz.yaml", copy, size, &c, &errs) == 0) {
    if (!c || c->n_models == 0) abort();
    touch(c->listen_host);
    touch(c->db_path);
    for (size_t i = 0; i < c->n_providers; i++) {
      const struct pol_provider *p = &c->providers[i];
      touch(p->name);
      touch(p->base_url);
      touch(p->api_key_env);
      touch(p->api_key);
      touch(p->anthropic_version);
      for (size_t h = 0; h < p->n_headers; h++) {
        touch(p->headers[h].name);
        touch(p->headers[h].value);
      }
    }
    for (size_t i = 0; i < c->n_models; i++) {
      const struct pol_model *m = &c->models[i];
      if (!m->provider || !m->upstream_model || m->n_deployments == 0) abort();
      if (pol_model_find(c, m->name) != m) abort();
      touch(m->provider->name);
      touch(m->upstream_model);
      for (size_t d = 0; d < m->n_deployments; d++) touch(m->deployments[d].provider->name);
      for (size_t f = 0; f < m->n_fallbacks; f++) touch(m->fallbacks[f]->name);
      struct pol_usage u = {.input_tokens = 10, .cached_tokens = 3, .output_tokens = 5};
      int64_t cost = pol_cost_pusd(&m->price, &u);
      if (m->has_price != (cost >= 0)) abort();
      (void)pol_baseline_cost_pusd(c, m, &u);
    }
    for (size_t i = 0; i < c->n_warnings; i++) pol_error_format(&c->warnings[i], line, sizeof line);
    if (c->default_model) touch(c->default_model->name);
    if (c->baseline_model) touch(c->baseline_model->name);
  } else {
    if (c || errs.n < 1) abort();
    for (int i = 0; i < errs.n && i < POL_MAX_ERRORS; i++) {
      if (!errs.e[i].msg[0]) abort();
      pol_error_format(&errs.e[i], line, sizeof line);
    }
  }
  pol_config_free(c);
  free(copy);
  return 0;
}
