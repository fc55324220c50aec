/*
 * run.c: `tiergate slm run`: generate text from a prompt (or token ids) with a GGUF model.
 *
 *   slm run -m FILE (-p PROMPT | --tokens ID,ID,...) [-n N] [--temp T] [--seed S] [-t THREADS]
 *           [--json] [--top-logits K] [sampling and context flags, see --help]
 *           [--json-schema FILE | --regex RE | --choice A,B,C] [--json-ws compact|flexible]
 *
 * Without --json the text streams to stdout as it is generated (held back only where it could be
 * the start of a stop string or an incomplete UTF-8 character). With --json one object is printed
 * at the end: {"prompt_tokens":[...],"tokens":[...],"text":"...","timings":{...}} plus
 * "steps":[{"token":ID,"top":[[ID,LOGIT],...]},...] (raw logits, best first) with --top-logits K.
 *
 * The prompt is decoded in one batch (split at n_batch), then one token per step: exactly what
 * the reference outputs in ../shared/models were produced with.
 *
 * Under a constraint (--json-schema, --regex, --choice) every token comes from
 * slm_sampler_sample_constrained with the budget set to the tokens left, so the text ends in
 * the constraint's language within -n tokens when it can; the text is the tokens' pieces
 * concatenated (what the matcher judged). A schema that cannot be compiled prints
 * "unsupported: KEYWORD at POINTER (why)" and exits 3.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slm/slm.h"
#include "slm/tools/tools.h"

#define MAX_STOPS 16
#define MAX_PROMPT_TOKENS (1 << 20)

static void usage(FILE *out) {
  fputs(
      "usage: tiergate slm run -m FILE (-p PROMPT | --tokens ID,ID,...) [options]\n"
      "\n"
      "  -m, --model FILE        GGUF model\n"
      "  -p, --prompt TEXT       prompt text (BOS added if the vocabulary asks; special tokens parsed)\n"
      "  -f, --file FILE         read the prompt text from FILE\n"
      "      --tokens IDS        prompt as comma-separated token ids (no BOS added)\n"
      "  -n, --n-predict N       tokens to generate (default 128; stops early at end-of-generation)\n"
      "      --ignore-eos        do not stop at end-of-generation tokens\n"
      "      --temp T            temperature (default 0.8; 0 = greedy, ties to the lowest id)\n"
      "      --top-k K           (default 40; 0 = off)\n"
      "      --top-p P           (default 0.95; 1 = off)\n"
      "      --min-p P           (default 0.05; 0 = off)\n"
      "      --repeat-penalty F  (default 1.0 = off)\n"
      "      --presence-penalty F, --frequency-penalty F   (default 0 = off)\n"
      "      --repeat-last-n N   penalty window (default 64)\n"
      "  -s, --seed S            RNG seed (default 12648430)\n"
      "      --stop STR          stop when STR is generated (repeatable, up to 16)\n"
      "  -t, --threads N         threads (default: all online CPUs)\n"
      "  -c, --ctx-size N        context size (default: prompt + n, at most the model's)\n"
      "  -b, --batch-size N      prompt tokens per decode call (default 512)\n"
      "      --kv-type f16|f32   KV cache element type (default f16)\n"
      "      --cpu LEVEL         highest kernel level: ref, avx2, avx512, vnni, bf16 (default: best)\n"
      "      --json              print one JSON object at the end instead of streaming text\n"
      "      --top-logits K      with --json: the K best raw logits of every generated step\n"
      "      --n-probs K         with --json: log-probabilities of the chosen and K best tokens\n"
      "      --json-schema FILE  generate JSON valid under the JSON Schema in FILE\n"
      "      --regex RE          generate text matching RE (whole text)\n"
      "      --choice A,B,C      generate exactly one of the comma-separated texts\n"
      "      --json-ws MODE      with --json-schema: compact (default) or flexible whitespace\n"
      "  -h, --help\n",
      out);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cpu_level(const char *s) {
  if (!strcmp(s, "ref")) return 0;
  if (!strcmp(s, "avx2")) return 1;
  if (!strcmp(s, "avx512")) return 2;
  if (!strcmp(s, "vnni")) return 3;
  if (!strcmp(s, "bf16")) return 4;
  return -1;
}

/* Parses "1,2,3" into OUT (capacity CAP). Returns the count or -1. */
static int parse_ids(const char *s, slm_token *out, int cap) {
  int n = 0;
  while (*s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || v < 0 || v > INT32_MAX || n >= cap) return -1;
    out[n++] = (slm_token)v;
    s = end;
    while (*s == ' ') s++;
    if (*s == ',') s++;
    else if (*s) return -1;
  }
  return n;
}

/* Bytes at the end of BUF[0..len) that form an incomplete UTF-8 sequence (0 if complete). */
static size_t utf8_incomplete_tail(const char *buf, size_t len) {
  for (size_t back = 1; back <= 4 && back <= len; back++) {
    unsigned char ch = (unsigned char)buf[len - back];
    if ((ch & 0xC0) == 0x80) continue;   /* continuation byte: keep looking for the lead */
    size_t need = ch < 0x80 ? 1 : (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : (ch & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/* A JSON string of BUF with invalid UTF-8 replaced by U+FFFD (jansson wants valid UTF-8). */
static json_t *json_text(const char *buf, size_t len) {
  char *clean = malloc(len * 3 + 1);
  if (!clean) return json_string("");
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    unsigned char ch = (unsigned char)buf[i];
    size_t need = ch < 0x80 ? 1 : (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : (ch & 0xF8) == 0xF0 ? 4 : 0;
    bool ok = need > 0 && i + need <= len && !(need == 1 && ch == 0);
    for (size_t k = 1; ok && k < need; k++) ok = ((unsigned char)buf[i + k] & 0xC0) == 0x80;
    if (ok && need == 2) ok = ch >= 0xC2;
    if (ok && need == 3) {
      unsigned c1 = (unsigned char)buf[i + 1];
      ok = !(ch == 0xE0 && c1 < 0xA0) && !(ch == 0xED && c1 >= 0xA0);
    }
    if (ok && need == 4) {
      unsigned c1 = (unsigned char)buf[i + 1];
      ok = ch <= 0xF4 && !(ch == 0xF0 && c1 < 0x90) && !(ch == 0xF4 && c1 >= 0x90);
    }
    if (ok) {
      memcpy(clean + o, buf + i, need);
      o += need;
      i += need;
    } else {
      memcpy(clean + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i += 1;
    }
  }
  json_t *j = json_stringn(clean, o);
  free(clean);
  return j ? j : json_string("");
}

/* The pieces of TOKS[0..N) concatenated into BUF (capacity CAP): bytes written or -(needed). */
static int32_t pieces(const struct slm_model *m, const slm_token *toks, int32_t n, char *buf, int32_t cap) {
  int64_t total = 0;
  char tmp[512];
  for (int32_t i = 0; i < n; i++) {
    int32_t k = slm_token_to_piece(m, toks[i], tmp, (int32_t)sizeof tmp, false);
    if (k < 0) k = 0;
    if (total + k <= cap) memcpy(buf + total, tmp, (size_t)k);
    total += k;
  }
  return total > cap ? -(int32_t)total : (int32_t)total;
}

/* Indices of the K largest logits, best first, ties to the lower id. */
static void top_logits(const float *lg, int32_t nv, int k, int32_t *ids) {
  int n = 0;
  for (int32_t i = 0; i < nv; i++) {
    if (n == k && !(lg[i] > lg[ids[k - 1]])) continue;
    int pos = n < k ? n++ : k - 1;
    while (pos > 0 && lg[i] > lg[ids[pos - 1]]) {
      ids[pos] = ids[pos - 1];
      pos--;
    }
    ids[pos] = i;
  }
}

int slm_tool_run(int argc, char **argv) {
  const char *model_path = NULL, *prompt = NULL, *prompt_file = NULL, *tokens_arg = NULL;
  const char *stops[MAX_STOPS];
  size_t n_stops = 0;
  long n_predict = 128, threads = 0, n_ctx = 0, n_batch = 512, top_logits_k = 0, n_probs = 0;
  bool json = false, ignore_eos = false, ws_flexible = false;
  const char *schema_file = NULL, *regex = NULL, *choice = NULL;
  int cpu = 4;
  enum slm_kv_type kv = SLM_KV_F16;
  struct slm_sampler_params sp = slm_sampler_default_params();

  struct slm_args args = slm_args_init("run", argc, argv);
  const char *arg;
  int64_t iv;
  double fv;
  while ((arg = slm_args_next(&args))) {
#define VAL(dst) if (!((dst) = slm_args_value(&args))) return 2
#define INT(lo, hi, dst) do { if (slm_args_int(&args, lo, hi, &iv)) return 2; (dst) = iv; } while (0)
#define FLT(lo, hi, dst) do { if (slm_args_float(&args, lo, hi, &fv)) return 2; (dst) = (float)fv; } while (0)
    if (slm_args_help(arg)) {
      usage(stdout);
      return 0;
    } else if (slm_args_is(arg, "-m", "--model")) {
      VAL(model_path);
    } else if (slm_args_is(arg, "-p", "--prompt")) {
      VAL(prompt);
    } else if (slm_args_is(arg, "-f", "--file")) {
      VAL(prompt_file);
    } else if (slm_args_is(arg, NULL, "--tokens")) {
      VAL(tokens_arg);
    } else if (slm_args_is(arg, "-n", "--n-predict")) {
      INT(0, 1 << 20, n_predict);
    } else if (slm_args_is(arg, NULL, "--ignore-eos")) {
      ignore_eos = true;
    } else if (slm_args_is(arg, NULL, "--temp")) {
      FLT(0, 1e6, sp.temperature);
    } else if (slm_args_is(arg, NULL, "--top-k")) {
      INT(0, INT32_MAX, sp.top_k);
    } else if (slm_args_is(arg, NULL, "--top-p")) {
      FLT(0, 1, sp.top_p);
    } else if (slm_args_is(arg, NULL, "--min-p")) {
      FLT(0, 1, sp.min_p);
    } else if (slm_args_is(arg, NULL, "--repeat-penalty")) {
      FLT(0, 1e6, sp.repeat_penalty);
    } else if (slm_args_is(arg, NULL, "--presence-penalty")) {
      FLT(-1e6, 1e6, sp.presence_penalty);
    } else if (slm_args_is(arg, NULL, "--frequency-penalty")) {
      FLT(-1e6, 1e6, sp.frequency_penalty);
    } else if (slm_args_is(arg, NULL, "--repeat-last-n")) {
      INT(0, 1 << 20, sp.penalty_last_n);
    } else if (slm_args_is(arg, "-s", "--seed")) {
      INT(0, INT64_MAX, sp.seed);
    } else if (slm_args_is(arg, NULL, "--stop")) {
      const char *v;
      VAL(v);
      if (n_stops == MAX_STOPS)
        return slm_tool_usage_error("run", NULL, "at most %d --stop strings", MAX_STOPS);
      if (*v) stops[n_stops++] = v;
    } else if (slm_args_is(arg, "-t", "--threads")) {
      INT(1, 256, threads);
    } else if (slm_args_is(arg, "-c", "--ctx-size")) {
      INT(1, 1 << 24, n_ctx);
    } else if (slm_args_is(arg, "-b", "--batch-size")) {
      INT(1, 65536, n_batch);
    } else if (slm_args_is(arg, NULL, "--kv-type")) {
      const char *v;
      VAL(v);
      if (!strcmp(v, "f16")) kv = SLM_KV_F16;
      else if (!strcmp(v, "f32")) kv = SLM_KV_F32;
      else return slm_tool_usage_error("run", NULL, "--kv-type: '%s' is not f16 or f32", v);
    } else if (slm_args_is(arg, NULL, "--cpu")) {
      const char *v;
      VAL(v);
      if ((cpu = cpu_level(v)) < 0)
        return slm_tool_usage_error("run", NULL, "--cpu: '%s' is not ref, avx2, avx512, vnni or bf16", v);
    } else if (slm_args_is(arg, NULL, "--json")) {
      json = true;
    } else if (slm_args_is(arg, NULL, "--top-logits")) {
      INT(0, 1000, top_logits_k);
    } else if (slm_args_is(arg, NULL, "--n-probs")) {
      INT(0, 1000, n_probs);
    } else if (slm_args_is(arg, NULL, "--json-schema")) {
      VAL(schema_file);
    } else if (slm_args_is(arg, NULL, "--regex")) {
      VAL(regex);
    } else if (slm_args_is(arg, NULL, "--choice")) {
      VAL(choice);
    } else if (slm_args_is(arg, NULL, "--json-ws")) {
      const char *v;
      VAL(v);
      if (!strcmp(v, "flexible")) ws_flexible = true;
      else if (strcmp(v, "compact")) return slm_tool_usage_error("run", NULL, "--json-ws: '%s' is not compact or flexible", v);
    } else {
      usage(stderr);
      return slm_args_unknown(&args, NULL);
    }
#undef VAL
#undef INT
#undef FLT
  }
  if (!model_path || (!!prompt + !!prompt_file + !!tokens_arg) != 1) {
    usage(stderr);
    return slm_tool_usage_error("run", NULL, "need -m FILE and exactly one of -p PROMPT, -f FILE, --tokens IDS");
  }
  sp.n_probs = (int32_t)n_probs;
  if (!!schema_file + !!regex + !!choice > 1)
    return slm_tool_usage_error("run", NULL, "--json-schema, --regex and --choice exclude each other");

  int rc = 1;
  char *prompt_buf = NULL, *text = NULL;
  slm_token *ptoks = NULL, *gen = NULL;
  struct slm_model *m = NULL;
  struct slm_context *c = NULL;
  struct slm_sampler *smp = NULL;
  struct slm_vocab_index *vi = NULL;
  struct slm_constraint *cons = NULL;
  struct slm_matcher *mt = NULL;
  json_t *steps = NULL, *probs = NULL;
  int32_t *top_ids = NULL;
  struct slm_token_prob *tp = NULL;

  double t0 = now_ms();
  struct slm_model_params mp = slm_model_default_params();
  mp.cpu_max_level = cpu;
  char err[512];
  m = slm_model_load(model_path, &mp, err, sizeof err);
  if (!m) {
    slm_tool_errorf("run", "%s", err);
    goto out;
  }
  const int32_t nv = slm_n_vocab(m);
  if (schema_file || regex || choice) {
    struct slm_constraint_params cpar = slm_constraint_default_params();
    cpar.whitespace = ws_flexible ? SLM_JSON_WS_FLEXIBLE : SLM_JSON_WS_COMPACT;
    cpar.all_escapes = false;   /* plain text out: raw UTF-8, only the escapes JSON needs */
    struct slm_constraint_error ce;
    vi = slm_vocab_index_new(m);
    if (!vi) {
      slm_tool_errorf("run", "out of memory");
      goto out;
    }
    if (schema_file) {
      FILE *f = fopen(schema_file, "rb");
      char *sbuf = f ? malloc(16u << 20) : NULL;
      size_t sl = sbuf ? fread(sbuf, 1, (16u << 20) - 1, f) : 0;
      if (f) fclose(f);
      if (!sbuf) {
        slm_tool_errorf("run", "cannot read %s", schema_file);
        goto out;
      }
      cons = slm_constraint_new(vi, SLM_CONSTRAINT_JSON_SCHEMA, sbuf, sl, &cpar, &ce);
      free(sbuf);
    } else if (regex) {
      cons = slm_constraint_new(vi, SLM_CONSTRAINT_REGEX, regex, strlen(regex), &cpar, &ce);
    } else {
      /* "a,b,c" -> "a\0b\0c\0" */
      size_t cl = strlen(choice);
      char *cb = malloc(cl + 1);
      if (!cb) goto out;
      for (size_t i = 0; i <= cl; i++) cb[i] = choice[i] == ',' ? 0 : choice[i];
      cons = slm_constraint_new(vi, SLM_CONSTRAINT_CHOICE, cb, cl + 1, &cpar, &ce);
      free(cb);
    }
    if (!cons) {
      fprintf(stderr, "unsupported: %s at %s (%s)\n", ce.keyword[0] ? ce.keyword : "schema", ce.pointer, ce.message);
      rc = 3;
      goto out;
    }
    if (slm_constraint_is_empty(cons)) {
      slm_tool_errorf("run", "the constraint accepts no text at all");
      goto out;
    }
    mt = slm_matcher_new(cons);
    if (!mt) {
      slm_tool_errorf("run", "out of memory");
      goto out;
    }
  }
  double t_load = now_ms() - t0;

  /* prompt tokens */
  int32_t np = 0;
  if (tokens_arg) {
    ptoks = malloc(sizeof *ptoks * 65536);
    np = ptoks ? parse_ids(tokens_arg, ptoks, 65536) : -1;
    if (np < 0) {
      slm_tool_errorf("run", "bad --tokens list");
      goto out;
    }
    for (int32_t i = 0; i < np; i++)
      if (ptoks[i] >= nv) {
        slm_tool_errorf("run", "token %d out of range (n_vocab %d)", ptoks[i], nv);
        goto out;
      }
  } else {
    size_t plen;
    if (prompt_file) {
      FILE *f = fopen(prompt_file, "rb");
      if (!f) {
        slm_tool_errorf("run", "cannot open %s: %s", prompt_file, strerror(errno));
        goto out;
      }
      prompt_buf = malloc(16u << 20);
      plen = prompt_buf ? fread(prompt_buf, 1, (16u << 20) - 1, f) : 0;
      bool more = prompt_buf && !feof(f);
      fclose(f);
      if (!prompt_buf || more) {
        slm_tool_errorf("run", "%s: prompt file too large (16 MiB max)", prompt_file);
        goto out;
      }
      prompt = prompt_buf;
    } else {
      plen = strlen(prompt);
    }
    int32_t cap = (int32_t)(plen + 16 < MAX_PROMPT_TOKENS ? plen + 16 : MAX_PROMPT_TOKENS);
    ptoks = malloc(sizeof *ptoks * (size_t)cap);
    np = ptoks ? slm_tokenize(m, prompt, plen, ptoks, cap, true, true) : -1;
    if (np < 0) {
      slm_tool_errorf("run", "cannot tokenize the prompt");
      goto out;
    }
  }
  if (np == 0) {
    slm_tool_errorf("run", "empty prompt");
    goto out;
  }

  struct slm_context_params cp = slm_context_default_params();
  if (threads > 0) cp.n_threads = (int)threads;
  cp.n_ctx = n_ctx > 0 ? (uint32_t)n_ctx : (uint32_t)(np + n_predict + 1);
  cp.n_batch = (uint32_t)n_batch;
  cp.kv_type = kv;
  c = slm_context_new(m, &cp);
  if (!c) {
    slm_tool_errorf("run", "cannot create a context");
    goto out;
  }
  if ((uint32_t)np > slm_context_n_ctx(c)) {
    slm_tool_errorf("run", "prompt of %d tokens does not fit the context of %u", np,
            slm_context_n_ctx(c));
    goto out;
  }
  smp = slm_sampler_new(m, &sp);
  gen = malloc(sizeof *gen * (size_t)(n_predict + 1));
  size_t text_cap = 4096;
  text = malloc(text_cap);
  if (top_logits_k > 0) {
    top_logits_k = top_logits_k < nv ? top_logits_k : nv;
    top_ids = malloc(sizeof *top_ids * (size_t)top_logits_k);
    steps = json_array();
  }
  tp = calloc((size_t)n_probs + 1, sizeof *tp);
  if (n_probs > 0) probs = json_array();
  if (!smp || !gen || !text || (top_logits_k > 0 && (!top_ids || !steps)) || !tp) {
    slm_tool_errorf("run", "out of memory");
    goto out;
  }
  for (int32_t i = 0; i < np; i++) slm_sampler_accept(smp, ptoks[i]);

  /* prompt, in chunks of n_batch */
  double t1 = now_ms();
  for (int32_t i = 0; i < np; i += (int32_t)n_batch) {
    int32_t nb = np - i < n_batch ? np - i : (int32_t)n_batch;
    struct slm_batch b = slm_batch_one(ptoks + i, nb);
    int drc = slm_decode(c, &b);
    if (drc < 0) {
      slm_tool_errorf("run", "%s", slm_errmsg(c));
      goto out;
    }
  }
  double t_prompt = now_ms() - t1;
  const float *logits = slm_get_logits(c, (np - 1) % (int32_t)n_batch);

  /* generation */
  double t2 = now_ms();
  int32_t ng = 0;
  size_t text_len = 0, shown = 0;
  bool stopped = false;
  bool done = false;
  while (ng < n_predict && !stopped) {
    slm_token t;
    if (mt) {
      slm_matcher_set_budget(mt, (int32_t)(n_predict - ng));
      t = slm_sampler_sample_constrained(smp, logits, mt, n_probs > 0 ? tp : NULL);
      if (t < 0) {
        slm_tool_errorf("run", "the constraint allows no token here");
        break;
      }
    } else {
      t = slm_sampler_sample(smp, logits, n_probs > 0 ? tp : NULL);
    }
    if (steps) {
      top_logits(logits, nv, (int)top_logits_k, top_ids);
      json_t *top = json_array();
      for (int k = 0; k < top_logits_k; k++)
        json_array_append_new(top, json_pack("[i,f]", top_ids[k], (double)logits[top_ids[k]]));
      json_array_append_new(steps, json_pack("{s:i,s:o}", "token", t, "top", top));
    }
    if (probs) {
      json_t *alts = json_array();
      for (long k = 1; k <= n_probs; k++)
        json_array_append_new(alts, json_pack("[i,f]", tp[k].token, (double)tp[k].logprob));
      json_array_append_new(probs, json_pack("{s:i,s:f,s:o}", "token", t, "logprob",
                                             (double)tp[0].logprob, "top", alts));
    }
    if ((!ignore_eos || mt) && slm_token_is_eog(m, t)) break;
    if (mt && slm_matcher_accept_token(mt, t)) {
      slm_tool_errorf("run", "internal error: the sampled token is not allowed");
      goto out;
    }
    gen[ng++] = t;
    done = mt && slm_matcher_is_done(mt);

    /* text so far, stop strings, streaming (under a constraint: the pieces, byte for byte) */
    int32_t w = mt ? pieces(m, gen, ng, text, (int32_t)text_cap)
                   : slm_detokenize(m, gen, ng, text, (int32_t)text_cap, false, false);
    if (w < 0) {
      size_t need = (size_t)(-w) * 2;
      char *nt = need <= (64u << 20) ? realloc(text, need) : NULL;
      if (!nt) {
        slm_tool_errorf("run", "generated text too long");
        goto out;
      }
      text = nt;
      text_cap = need;
      w = mt ? pieces(m, gen, ng, text, (int32_t)text_cap)
             : slm_detokenize(m, gen, ng, text, (int32_t)text_cap, false, false);
      if (w < 0) w = 0;
    }
    text_len = (size_t)w;
    size_t safe = text_len;
    if (n_stops > 0 && slm_stop_scan(text, text_len, stops, n_stops, &safe) >= 0) {
      stopped = true;
      text_len = safe;
    }
    if (!stopped) safe -= utf8_incomplete_tail(text, safe);
    if (!json && safe > shown) {
      fwrite(text + shown, 1, safe - shown, stdout);
      fflush(stdout);
      shown = safe;
    }
    if (stopped || done || ng == n_predict) break;
    struct slm_batch b = slm_batch_one(&t, 1);
    int drc = slm_decode(c, &b);
    if (drc == -ENOSPC) break;   /* context full: stop like llama.cpp does */
    if (drc < 0) {
      slm_tool_errorf("run", "%s", slm_errmsg(c));
      goto out;
    }
    logits = slm_get_logits(c, 0);
  }
  double t_gen = now_ms() - t2;

  if (!json) {
    if (text_len > shown) fwrite(text + shown, 1, text_len - shown, stdout);
    fputc('\n', stdout);
    slm_tool_errorf("run", "prompt %d tokens in %.1f ms (%.1f t/s), generated %d tokens in %.1f ms (%.1f t/s)",
            np, t_prompt, np / (t_prompt / 1e3), ng, t_gen, ng > 0 ? ng / (t_gen / 1e3) : 0.0);
  } else {
    json_t *o = json_object();
    json_t *pt = json_array(), *gt = json_array();
    for (int32_t i = 0; i < np; i++) json_array_append_new(pt, json_integer(ptoks[i]));
    for (int32_t i = 0; i < ng; i++) json_array_append_new(gt, json_integer(gen[i]));
    json_object_set_new(o, "prompt_tokens", pt);
    json_object_set_new(o, "tokens", gt);
    json_object_set_new(o, "text", json_text(text, text_len));
    json_object_set_new(o, "timings", json_pack("{s:f,s:f,s:f,s:f,s:f,s:i}", "load_ms", t_load,
                                                "prompt_ms", t_prompt, "prompt_tokens_per_s",
                                                np / (t_prompt / 1e3), "gen_ms", t_gen,
                                                "gen_tokens_per_s", ng > 0 ? ng / (t_gen / 1e3) : 0.0,
                                                "n_threads", slm_context_n_threads(c)));
    if (mt) json_object_set_new(o, "constraint_satisfied", json_boolean(slm_matcher_can_end(mt)));
    if (steps) json_object_set(o, "steps", steps);
    if (probs) json_object_set(o, "probs", probs);
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (s) puts(s);
    free(s);
    json_decref(o);
  }
  rc = 0;
out:
  json_decref(steps);
  json_decref(probs);
  free(top_ids);
  free(tp);
  free(text);
  free(gen);
  free(ptoks);
  free(prompt_buf);
  slm_sampler_free(smp);
  slm_matcher_free(mt);
  slm_constraint_free(cons);
  slm_vocab_index_free(vi);
  slm_context_free(c);
  slm_model_free(m);
  return rc;
}
