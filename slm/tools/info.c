/*
 * info.c: `tiergate slm info -m FILE`: what a GGUF file holds, read straight from its metadata and
 * tensor infos (works on vocabulary-only files too): architecture, hyperparameters, parameter count,
 * tensors by type with their bytes, the shapes of the global and first-layer tensors, the
 * vocabulary and the chat template.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/gguf.h"
#include "slm/internal.h"
#include "slm/tools/tools.h"
#include "slm/vocab.h"

static const char INFO_USAGE[] =
  "usage: tiergate slm info -m FILE [--tensors] [--kv]\n"
  "\n"
  "  -m, --model FILE   the GGUF file (a model or a vocabulary-only file)\n"
  "  --tensors          list every tensor (default: global tensors and layer 0)\n"
  "  --kv               print every metadata key and value\n"
  "  -h, --help         this text\n";

/* llama.cpp's general.file_type numbering (enum llama_ftype). */
static const char *ftype_name(uint32_t ft) {
  switch (ft) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K_S";
    case 12: return "Q3_K_M";
    case 13: return "Q3_K_L";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 16: return "Q5_K_S";
    case 17: return "Q5_K_M";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return NULL;
  }
}

/* Prints S (N bytes from a file) escaped and cut to MAX bytes. */
static void put_escaped(FILE *out, const char *s, uint64_t n, uint64_t max) {
  for (uint64_t i = 0; i < n && i < max; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n') fputs("\\n", out);
    else if (c == '\t') fputs("\\t", out);
    else if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c < 0x20 || c == 0x7f) fprintf(out, "\\x%02x", c);
    else fputc(c, out);
  }
  if (n > max) fprintf(out, "...(%" PRIu64 " bytes)", n);
}

static void put_scalar(FILE *out, enum slm_gguf_vtype t, const uint8_t *p) {
  switch (t) {
    case GGUF_VT_UINT8: fprintf(out, "%u", p[0]); break;
    case GGUF_VT_INT8: fprintf(out, "%d", (int8_t)p[0]); break;
    case GGUF_VT_BOOL: fputs(p[0] ? "true" : "false", out); break;
    case GGUF_VT_UINT16: { uint16_t v; memcpy(&v, p, 2); fprintf(out, "%u", v); break; }
    case GGUF_VT_INT16: { int16_t v; memcpy(&v, p, 2); fprintf(out, "%d", v); break; }
    case GGUF_VT_UINT32: { uint32_t v; memcpy(&v, p, 4); fprintf(out, "%" PRIu32, v); break; }
    case GGUF_VT_INT32: { int32_t v; memcpy(&v, p, 4); fprintf(out, "%" PRId32, v); break; }
    case GGUF_VT_FLOAT32: { float v; memcpy(&v, p, 4); fprintf(out, "%g", v); break; }
    case GGUF_VT_UINT64: { uint64_t v; memcpy(&v, p, 8); fprintf(out, "%" PRIu64, v); break; }
    case GGUF_VT_INT64: { int64_t v; memcpy(&v, p, 8); fprintf(out, "%" PRId64, v); break; }
    case GGUF_VT_FLOAT64: { double v; memcpy(&v, p, 8); fprintf(out, "%g", v); break; }
    default: fputs("?", out);
  }
}

static size_t vt_size(enum slm_gguf_vtype t) {
  switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_INT8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16: case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32: case GGUF_VT_INT32: case GGUF_VT_FLOAT32: return 4;
    default: return 8;
  }
}

static const char *vt_name(enum slm_gguf_vtype t) {
  static const char *const n[] = { "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str",
                                   "arr", "u64", "i64", "f64" };
  return (unsigned)t < sizeof n / sizeof n[0] ? n[t] : "?";
}

/* One kv's value: scalars in full, strings escaped and cut, arrays as type[n] and their head. */
static void put_value(FILE *out, const struct slm_gguf_file *f, const struct slm_gguf_kv *kv) {
  switch (kv->type) {
    case GGUF_VT_STRING:
      fputc('"', out);
      put_escaped(out, kv->v.str.p, kv->v.str.n, 96);
      fputc('"', out);
      return;
    case GGUF_VT_ARRAY: {
      fprintf(out, "%s[%" PRIu64 "] [", vt_name(kv->arr_type), kv->arr_n);
      uint64_t show = kv->arr_n < 6 ? kv->arr_n : 6;
      for (uint64_t i = 0; i < show; i++) {
        if (i) fputs(", ", out);
        if (kv->arr_type == GGUF_VT_STRING) {
          struct slm_gguf_str s = slm_gguf_arr_str(f, kv, i);
          fputc('"', out);
          put_escaped(out, s.p, s.n, 32);
          fputc('"', out);
        } else {
          put_scalar(out, kv->arr_type, kv->arr_data + i * vt_size(kv->arr_type));
        }
      }
      fputs(kv->arr_n > show ? ", ...]" : "]", out);
      return;
    }
    default: {
      uint8_t b[8];
      /* re-encode the decoded value little-endian to share put_scalar */
      if (kv->type == GGUF_VT_FLOAT32) {
        float x = (float)kv->v.f64;
        memcpy(b, &x, 4);
      } else if (kv->type == GGUF_VT_FLOAT64) {
        memcpy(b, &kv->v.f64, 8);
      } else if (kv->type == GGUF_VT_BOOL) {
        b[0] = kv->v.b;
      } else {
        memcpy(b, &kv->v.u64, 8);
      }
      put_scalar(out, kv->type, b);
    }
  }
}

static bool key_has_prefix(const struct slm_gguf_kv *kv, const char *p, size_t n) {
  return kv->key.n > n && !memcmp(kv->key.p, p, n);
}

static void put_tensor(FILE *out, const struct slm_gguf_tensor *t) {
  char shape[128];
  int o = snprintf(shape, sizeof shape, "[%" PRId64, t->ne[0]);
  for (uint32_t d = 1; d < t->n_dims; d++)
    o += snprintf(shape + o, sizeof shape - (size_t)o, ", %" PRId64, t->ne[d]);
  snprintf(shape + o, sizeof shape - (size_t)o, "]");
  char nb[32];
  fprintf(out, "  %-32.*s %-6s %-16s %s\n", (int)t->name.n, t->name.p, slm_type_name(t->type), shape,
          slm_tool_fmt_bytes(t->nbytes, nb, sizeof nb));
}

/* Token I's text as a short escaped string, or "" if out of range. */
static void put_token(FILE *out, const struct slm_gguf_file *f, const struct slm_gguf_kv *tokens, uint32_t id) {
  if (!tokens || id >= tokens->arr_n) return;
  struct slm_gguf_str s = slm_gguf_arr_str(f, tokens, id);
  fputs(" \"", out);
  put_escaped(out, s.p, s.n, 40);
  fputc('"', out);
}

static int print_info(const char *path, bool all_tensors, bool all_kv) {
  struct slm_gguf_file *f = NULL;
  char err[512];
  int rc = slm_gguf_open(path, &f, err, sizeof err);
  if (rc) {
    slm_tool_errorf("info", "%s", err);
    return 1;
  }
  FILE *out = stdout;
  char nb[32];
  fprintf(out, "file:          %s\n", path);
  fprintf(out, "size:          %zu bytes (%s), GGUF v%" PRIu32 ", alignment %" PRIu32 ", %" PRIu64
               " kv, %" PRIu64 " tensors\n",
          slm_gguf_file_size(f), slm_tool_fmt_bytes(slm_gguf_file_size(f), nb, sizeof nb), slm_gguf_version(f),
          slm_gguf_alignment(f), slm_gguf_n_kv(f), slm_gguf_n_tensors(f));

  struct slm_gguf_str arch = { "", 0 }, name = { NULL, 0 };
  slm_gguf_get_str(f, "general.architecture", &arch);
  if (slm_gguf_get_str(f, "general.name", &name) == 0) {
    fputs("name:          ", out);
    put_escaped(out, name.p, name.n, 80);
    fputc('\n', out);
  }
  fputs("architecture:  ", out);
  put_escaped(out, arch.p, arch.n, 40);
  fputc('\n', out);
  uint32_t ft;
  if (slm_gguf_get_u32(f, "general.file_type", &ft) == 0) {
    const char *fn = ftype_name(ft);
    fprintf(out, "file type:     %s (%" PRIu32 ")\n", fn ? fn : "unknown", ft);
  }

  /* hyperparameters: every "<arch>." key */
  char prefix[128];
  int pn = snprintf(prefix, sizeof prefix, "%.*s.", (int)(arch.n < 100 ? arch.n : 100), arch.p);
  bool any = false;
  for (uint64_t i = 0; i < slm_gguf_n_kv(f); i++) {
    const struct slm_gguf_kv *kv = slm_gguf_kv_at(f, i);
    if (!arch.n || !key_has_prefix(kv, prefix, (size_t)pn)) continue;
    if (!any) fputs("hyperparameters:\n", out);
    any = true;
    fprintf(out, "  %-40.*s ", (int)(kv->key.n - (uint64_t)pn), kv->key.p + pn);
    put_value(out, f, kv);
    fputc('\n', out);
  }
  /* derived shape facts */
  char key[200];
  uint32_t n_embd = 0, n_head = 0, n_head_kv = 0, key_len = 0;
  snprintf(key, sizeof key, "%.*s.embedding_length", (int)arch.n, arch.p);
  slm_gguf_get_u32(f, key, &n_embd);
  snprintf(key, sizeof key, "%.*s.attention.head_count", (int)arch.n, arch.p);
  slm_gguf_get_u32(f, key, &n_head);
  snprintf(key, sizeof key, "%.*s.attention.head_count_kv", (int)arch.n, arch.p);
  if (slm_gguf_get_u32(f, key, &n_head_kv)) n_head_kv = n_head;
  snprintf(key, sizeof key, "%.*s.attention.key_length", (int)arch.n, arch.p);
  if (slm_gguf_get_u32(f, key, &key_len) && n_head) key_len = n_embd / n_head;
  if (n_head) {
    fprintf(out, "attention:     %" PRIu32 " heads, %" PRIu32 " kv heads (GQA %" PRIu32 "), head dim %" PRIu32 "\n",
            n_head, n_head_kv, n_head_kv ? n_head / n_head_kv : 0, key_len);
  }

  /* tensors by type */
  if (slm_gguf_n_tensors(f)) {
    uint64_t count[SLM_TYPE_COUNT] = { 0 }, bytes[SLM_TYPE_COUNT] = { 0 }, elems[SLM_TYPE_COUNT] = { 0 };
    uint64_t total_bytes = 0, total_elems = 0;
    for (uint64_t i = 0; i < slm_gguf_n_tensors(f); i++) {
      const struct slm_gguf_tensor *t = slm_gguf_tensor_at(f, i);
      uint64_t ne = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
      count[t->type]++;
      bytes[t->type] += t->nbytes;
      elems[t->type] += ne;
      total_bytes += t->nbytes;
      total_elems += ne;
    }
    fprintf(out, "parameters:    %.2f M (%" PRIu64 "), %s of tensor data, %.2f bits per weight\n",
            total_elems / 1e6, total_elems, slm_tool_fmt_bytes(total_bytes, nb, sizeof nb),
            total_elems ? 8.0 * (double)total_bytes / (double)total_elems : 0.0);
    fputs("tensor types:\n", out);
    for (int t = 0; t < SLM_TYPE_COUNT; t++) {
      if (!count[t]) continue;
      fprintf(out, "  %-6s %4" PRIu64 " tensors  %10.3f M weights  %s%s\n", slm_type_name((enum slm_type)t),
              count[t], elems[t] / 1e6, slm_tool_fmt_bytes(bytes[t], nb, sizeof nb),
              slm_type_infos[t].supported ? "" : "  (not supported by the engine)");
    }
    fputs(all_tensors ? "tensors:\n" : "tensors (global and layer 0; --tensors for all):\n", out);
    for (uint64_t i = 0; i < slm_gguf_n_tensors(f); i++) {
      const struct slm_gguf_tensor *t = slm_gguf_tensor_at(f, i);
      bool layer = t->name.n > 4 && !memcmp(t->name.p, "blk.", 4);
      bool layer0 = t->name.n > 6 && !memcmp(t->name.p, "blk.0.", 6);
      if (all_tensors || !layer || layer0) put_tensor(out, t);
    }
  }

  /* vocabulary */
  struct slm_gguf_str tm;
  if (slm_gguf_get_str(f, "tokenizer.ggml.model", &tm) == 0) {
    const struct slm_gguf_kv *tokens = slm_gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (tokens && (tokens->type != GGUF_VT_ARRAY || tokens->arr_type != GGUF_VT_STRING)) tokens = NULL;
    const struct slm_gguf_kv *merges = slm_gguf_find_kv(f, "tokenizer.ggml.merges");
    fputs("vocab:         ", out);
    put_escaped(out, tm.p, tm.n, 20);
    bool spm = tm.n == 5 && !memcmp(tm.p, "llama", 5);
    bool bpe = tm.n == 4 && !memcmp(tm.p, "gpt2", 4);
    fputs(spm ? " (SentencePiece)" : bpe ? " (byte-level BPE)" : "", out);
    fprintf(out, ", %" PRIu64 " tokens", tokens ? tokens->arr_n : 0);
    if (merges && merges->type == GGUF_VT_ARRAY) fprintf(out, ", %" PRIu64 " merges", merges->arr_n);
    struct slm_gguf_str pre;
    if (slm_gguf_get_str(f, "tokenizer.ggml.pre", &pre) == 0) {
      fputs(", pre-tokenizer '", out);
      put_escaped(out, pre.p, pre.n, 40);
      fputc('\'', out);
    }
    fputc('\n', out);
    static const char *const ids[][2] = {
      { "bos", "tokenizer.ggml.bos_token_id" }, { "eos", "tokenizer.ggml.eos_token_id" },
      { "eot", "tokenizer.ggml.eot_token_id" }, { "unk", "tokenizer.ggml.unknown_token_id" },
      { "pad", "tokenizer.ggml.padding_token_id" },
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
      uint32_t id;
      if (slm_gguf_get_u32(f, ids[i][1], &id)) continue;
      fprintf(out, "  %s %" PRIu32, ids[i][0], id);
      put_token(out, f, tokens, id);
      fputc('\n', out);
    }
    bool b;
    if (slm_gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b) == 0) fprintf(out, "  add_bos %s\n", b ? "true" : "false");
    if (slm_gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &b) == 0) fprintf(out, "  add_eos %s\n", b ? "true" : "false");
  } else {
    fputs("vocab:         none\n", out);
  }

  /* what the engine makes of the vocabulary and the template */
  struct slm_vocab *voc = NULL;
  char verr[256];
  if (slm_gguf_find_kv(f, "tokenizer.ggml.model")) {
    if (slm_vocab_load(f, &voc, verr, sizeof verr) == 0) {
      fprintf(out, "  tokenizer     %s, %d tokens (loaded by the engine)\n",
              slm_vocab_kind(voc) == SLM_VOCAB_SPM ? "SentencePiece" : "byte-level BPE",
              (int)slm_vocab_n_tokens(voc));
    } else {
      fprintf(out, "  tokenizer     not usable by the engine: %s\n", verr);
    }
  }
  struct slm_gguf_str tmpl;
  const char *tmpl_z = voc ? slm_vocab_chat_template(voc) : NULL;
  if (slm_gguf_get_str(f, "tokenizer.chat_template", &tmpl) == 0) {
    fprintf(out, "chat template: %s (%" PRIu64 " bytes in the file): \"",
            tmpl_z ? slm_chat_family(tmpl_z) : "?", tmpl.n);
    put_escaped(out, tmpl.p, tmpl.n, 60);
    fputs("\"\n", out);
  } else {
    fprintf(out, "chat template: none in the file (the engine falls back to %s)\n", slm_chat_family(NULL));
  }
  slm_vocab_free(voc);

  /* can the engine run it? (loading maps the file and checks arch, tensors and types) */
  if (slm_gguf_n_tensors(f)) {
    struct slm_model_params mp = slm_model_default_params();
    char merr[512];
    struct slm_model *m = slm_model_load(path, &mp, merr, sizeof merr);
    if (m) fputs("engine:        supported (loads for inference)\n", out);
    else fprintf(out, "engine:        not supported: %s\n", merr);
    slm_model_free(m);
  }

  if (all_kv) {
    fputs("metadata:\n", out);
    for (uint64_t i = 0; i < slm_gguf_n_kv(f); i++) {
      const struct slm_gguf_kv *kv = slm_gguf_kv_at(f, i);
      fputs("  ", out);
      put_escaped(out, kv->key.p, kv->key.n, 80);
      fprintf(out, " (%s) = ", vt_name(kv->type));
      put_value(out, f, kv);
      fputc('\n', out);
    }
  }
  slm_gguf_close(f);
  return 0;
}

int slm_tool_info(int argc, char **argv) {
  struct slm_args a = slm_args_init("info", argc, argv);
  const char *model = NULL, *arg;
  bool all_tensors = false, all_kv = false;
  while ((arg = slm_args_next(&a))) {
    if (slm_args_help(arg)) {
      fputs(INFO_USAGE, stdout);
      return 0;
    } else if (slm_args_is(arg, "-m", "--model")) {
      if (!(model = slm_args_value(&a))) return 2;
    } else if (slm_args_is(arg, NULL, "--tensors")) {
      all_tensors = true;
    } else if (slm_args_is(arg, NULL, "--kv")) {
      all_kv = true;
    } else if (slm_args_positional(&a, arg) && !model) {
      model = arg;   /* `info FILE` works too */
    } else {
      return slm_args_unknown(&a, INFO_USAGE);
    }
  }
  if (!model) return slm_tool_usage_error("info", INFO_USAGE, "-m FILE is required");
  return print_info(model, all_tensors, all_kv);
}
