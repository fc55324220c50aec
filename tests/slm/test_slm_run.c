/*
 * test_slm_run.c: the `tiergate slm run` and `tiergate slm bench` command lines, end to end on the
 * built binary (meson passes its path): --json output shape, greedy tokens and --top-logits
 * against llama.cpp's stories260K reference, the text prompt path, stop strings, seeds, and
 * bench's JSON.
 *
 * usage: test_slm_run TIERGATE_BINARY
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/check.h"

static const char *bin;

/* Runs "BIN slm ARGS" and returns its stdout parsed as JSON (NULL if it is not JSON). */
static json_t *run_json(const char *args, int *rc) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "'%s' slm %s 2>/dev/null", bin, args);
  FILE *p = popen(cmd, "r");
  if (!p) return NULL;
  static char out[1 << 20];
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = 0;
  int st = pclose(p);
  *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  json_error_t je;
  return json_loads(out, 0, &je);
}

static int run_rc(const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "'%s' slm %s >/dev/null 2>&1", bin, args);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_reference(void) {
  json_error_t je;
  const char *refp = check_shared_path("models/stories260K-greedy.json");
  json_t *ref = json_load_file(refp, 0, &je);
  CHECK_MSG(ref != NULL, "cannot read %s", refp);
  if (!ref) return;
  const char *model = check_shared_path("models/stories260K.gguf");
  size_t ri;
  json_t *run;
  json_array_foreach(json_object_get(ref, "runs"), ri, run) {
    json_t *gen = json_object_get(run, "generated_ids"), *steps = json_object_get(run, "steps");
    /* from the prompt ids */
    char ids[1024] = "";
    size_t k;
    json_t *v;
    json_array_foreach(json_object_get(run, "prompt_ids"), k, v) {
      size_t l = strlen(ids);
      snprintf(ids + l, sizeof ids - l, "%s%lld", k ? "," : "", json_integer_value(v));
    }
    char args[2048];
    snprintf(args, sizeof args, "run -m '%s' --tokens %s -n %zu --temp 0 -t 2 --kv-type f32 --json --top-logits 10",
             model, ids, json_array_size(gen));
    int rc;
    json_t *o = run_json(args, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_MSG(o != NULL, "run %zu: output is not JSON", ri);
    if (!o) continue;
    CHECK(json_equal(json_object_get(o, "prompt_tokens"), json_object_get(run, "prompt_ids")));
    CHECK_MSG(json_equal(json_object_get(o, "tokens"), gen), "run %zu: tokens differ from the reference", ri);
    CHECK(json_is_string(json_object_get(o, "text")) && json_string_length(json_object_get(o, "text")) > 0);
    json_t *tm = json_object_get(o, "timings");
    CHECK(json_is_object(tm) && json_number_value(json_object_get(tm, "gen_tokens_per_s")) > 0);
    json_t *my = json_object_get(o, "steps");
    CHECK_EQ_INT(json_array_size(my), json_array_size(gen));
    json_t *st;
    json_array_foreach(steps, k, st) {
      json_t *ms = json_array_get(my, k);
      CHECK_EQ_INT(json_integer_value(json_object_get(ms, "token")), json_integer_value(json_array_get(gen, k)));
      json_t *rt = json_object_get(st, "top"), *mt = json_object_get(ms, "top");
      CHECK_EQ_INT(json_array_size(mt), 10);
      /* each reference entry by id (near-ties may swap ranks); the lowest ones may drop out of
       * our top 10 only if the 10th and 11th are near-tied */
      size_t found = 0;
      for (size_t t = 0; t < json_array_size(rt); t++) {
        json_int_t id = json_integer_value(json_array_get(json_array_get(rt, t), 0));
        double rl = json_number_value(json_array_get(json_array_get(rt, t), 1));
        for (size_t u = 0; u < json_array_size(mt); u++)
          if (json_integer_value(json_array_get(json_array_get(mt, u), 0)) == id) {
            CHECK_NEAR(json_number_value(json_array_get(json_array_get(mt, u), 1)), rl, 0.01);
            found++;
          }
      }
      CHECK(found + 1 >= json_array_size(rt));
      CHECK_EQ_INT(json_integer_value(json_array_get(json_array_get(mt, 0), 0)),
                   json_integer_value(json_array_get(json_array_get(rt, 0), 0)));
    }
    /* the same from the text prompt: tokenizer + BOS give the same ids, so the same tokens */
    const char *text = json_string_value(json_object_get(run, "prompt"));
    snprintf(args, sizeof args, "run -m '%s' -p '%s' -n 16 --temp 0 --json", model, text);
    json_t *o2 = run_json(args, &rc);
    CHECK_EQ_INT(rc, 0);
    if (o2) {
      CHECK(json_equal(json_object_get(o2, "prompt_tokens"), json_object_get(run, "prompt_ids")));
      for (size_t i = 0; i < 16; i++)
        CHECK_EQ_INT(json_integer_value(json_array_get(json_object_get(o2, "tokens"), i)),
                     json_integer_value(json_array_get(gen, i)));
      /* stop string: the text ends before the first occurrence of a word it contains */
      const char *full = json_string_value(json_object_get(o2, "text"));
      const char *word = full ? strstr(full + 1, " ") : NULL;
      if (word && strlen(word) > 3) {
        char stop[8];
        snprintf(stop, sizeof stop, "%.3s", word);
        snprintf(args, sizeof args, "run -m '%s' -p '%s' -n 16 --temp 0 --json --stop '%s'", model, text, stop);
        json_t *o3 = run_json(args, &rc);
        CHECK_EQ_INT(rc, 0);
        const char *cut = o3 ? json_string_value(json_object_get(o3, "text")) : NULL;
        CHECK_MSG(cut && strlen(cut) == (size_t)(word - full), "stop '%s': '%s'", stop, cut ? cut : "(null)");
        json_decref(o3);
      }
      json_decref(o2);
    }
    json_decref(o);
  }
  json_decref(ref);
}

static void test_sampling_and_errors(void) {
  const char *model = check_shared_path("models/stories260K.gguf");
  char args[1024];
  int rc;
  json_t *a[3];
  const int seeds[3] = {7, 7, 8};
  for (int i = 0; i < 3; i++) {
    snprintf(args, sizeof args, "run -m '%s' --tokens 1,403 -n 24 --temp 1.0 --top-k 0 --top-p 1 --min-p 0 --seed %d --json", model, seeds[i]);
    a[i] = run_json(args, &rc);
    CHECK_EQ_INT(rc, 0);
  }
  if (a[0] && a[1] && a[2]) {
    CHECK(json_equal(json_object_get(a[0], "tokens"), json_object_get(a[1], "tokens")));
    CHECK(!json_equal(json_object_get(a[0], "tokens"), json_object_get(a[2], "tokens")));
  }
  for (int i = 0; i < 3; i++) json_decref(a[i]);

  snprintf(args, sizeof args, "run -m '%s' --tokens 1,99999 -n 2", model);
  CHECK_EQ_INT(run_rc(args), 1);   /* token out of range: the work failed */
  snprintf(args, sizeof args, "run -m '%s' -n 2", model);
  CHECK_EQ_INT(run_rc(args), 2);   /* no prompt: usage */
  snprintf(args, sizeof args, "run -m '%s' --tokens 1 --temp x", model);
  CHECK_EQ_INT(run_rc(args), 2);
  CHECK_EQ_INT(run_rc("run -m /nonexistent.gguf --tokens 1"), 1);
  CHECK_EQ_INT(run_rc("run --help"), 0);
  CHECK_EQ_INT(run_rc("bench --help"), 0);
  CHECK_EQ_INT(run_rc("bench"), 2);
}

static void test_bench(void) {
  char args[1024];
  snprintf(args, sizeof args, "bench -m '%s' -p 16 -n 8 -t 1,2 -r 2 --json",
           check_shared_path("models/stories260K.gguf"));
  int rc;
  json_t *o = run_json(args, &rc);
  CHECK_EQ_INT(rc, 0);
  CHECK(json_is_array(o) && json_array_size(o) == 4);
  size_t i;
  json_t *e;
  json_array_foreach(o, i, e) {
    const char *test = json_string_value(json_object_get(e, "test"));
    CHECK(test && (!strcmp(test, "pp16") || !strcmp(test, "tg8")));
    CHECK(json_number_value(json_object_get(e, "avg_ts")) > 0);
    CHECK_EQ_INT(json_array_size(json_object_get(e, "samples_ts")), 2);
    CHECK(json_integer_value(json_object_get(e, "vm_hwm_kib")) > 0);
    CHECK(json_integer_value(json_object_get(e, "weight_bytes_per_token")) > 0);
  }
  json_decref(o);
  /* -d: the same tests after tokens already in the cache, named as llama-bench names them */
  snprintf(args, sizeof args, "bench -m '%s' -p 16 -n 8 -d 0,24 -t 1 -r 1 --json",
           check_shared_path("models/stories260K.gguf"));
  o = run_json(args, &rc);
  CHECK_EQ_INT(rc, 0);
  CHECK(json_is_array(o) && json_array_size(o) == 4);
  const char *want[4] = {"pp16", "pp16@d24", "tg8", "tg8@d24"};
  json_array_foreach(o, i, e) {
    CHECK_STR(json_string_value(json_object_get(e, "test")), i < 4 ? want[i] : "");
    CHECK_EQ_INT(json_integer_value(json_object_get(e, "n_depth")), i % 2 ? 24 : 0);
    CHECK(json_number_value(json_object_get(e, "avg_ts")) > 0);
  }
  json_decref(o);
  CHECK_EQ_INT(run_rc("bench -m x -d -1"), 2);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs("usage: test_slm_run TIERGATE_BINARY\n", stderr);
    return 2;
  }
  bin = argv[1];
  test_reference();
  test_sampling_and_errors();
  test_bench();
  return check_done();
}
