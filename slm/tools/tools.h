/*
 * tools.h: private header of the `tiergate slm <tool>` commands (slm/tools/). The dispatcher
 * (tools.c) calls slm_tool_<name>(argc, argv) with ARGV[0] the tool name; each tool parses its
 * own flags with the small helpers below so that errors read the same everywhere:
 *
 *   int slm_tool_bench(int argc, char **argv) {
 *     struct slm_args a = slm_args_init("bench", argc, argv);
 *     const char *model = NULL;
 *     int64_t reps = 5;
 *     const char *arg;
 *     while ((arg = slm_args_next(&a))) {
 *       if (slm_args_help(arg)) { fputs(BENCH_USAGE, stdout); return 0; }
 *       else if (slm_args_is(arg, "-m", "--model")) { if (!(model = slm_args_value(&a))) return 2; }
 *       else if (slm_args_is(arg, "-r", "--repetitions")) {
 *         if (slm_args_int(&a, 1, 1000, &reps)) return 2;
 *       } else return slm_args_unknown(&a, BENCH_USAGE);
 *     }
 *     if (!model) return slm_tool_usage_error("bench", BENCH_USAGE, "-m FILE is required");
 *     ...
 *   }
 *
 * Exit codes: 0 success, 1 the work failed (a bad file, an I/O error), 2 a usage error.
 */
#ifndef SLM_TOOLS_TOOLS_H
#define SLM_TOOLS_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "slm/kernels/types.h"

/* The tools; each returns the process exit code. ARGV[0] is the tool name. */
int slm_tool_info(int argc, char **argv);       /* info.c */
int slm_tool_tokenize(int argc, char **argv);   /* tokenize.c */
int slm_tool_run(int argc, char **argv);        /* run.c */
int slm_tool_bench(int argc, char **argv);      /* bench.c */
int slm_tool_mkmodel(int argc, char **argv);    /* mkmodel.c */
int slm_tool_quantize(int argc, char **argv);   /* quantize.c */
int slm_tool_schema(int argc, char **argv);     /* schema.c: check; schema_bench.c: bench */
int slm_schema_bench_main(int argc, char **argv);

/* Argument cursor over ARGV[1..ARGC-1]. Flags may be given as "--flag VALUE" or "--flag=VALUE". */
struct slm_args {
  const char *tool;
  int argc;
  char **argv;
  int i;                  /* index of the next argument */
  const char *flag;       /* the current flag (without any "=value" part), for messages */
  const char *inline_val; /* the value after '=' in "--flag=value", or NULL */
  bool dashdash;          /* "--" seen: everything after it is positional */
  char flagbuf[64];
};

struct slm_args slm_args_init(const char *tool, int argc, char **argv);
/* The next argument (a flag, or a positional one), or NULL at the end. "--" ends flag parsing:
 * everything after it is returned with slm_args_positional() true. */
const char *slm_args_next(struct slm_args *a);
/* True if ARG (the value slm_args_next just returned) is positional: it does not start with '-',
 * is "-" alone, or came after "--". */
bool slm_args_positional(const struct slm_args *a, const char *arg);
/* True if ARG is SHORT_NAME or LONG_NAME (either may be NULL). */
bool slm_args_is(const char *arg, const char *short_name, const char *long_name);
/* True for -h / --help. */
bool slm_args_help(const char *arg);
/* The value of the current flag; prints "tiergate slm TOOL: FLAG needs a value" and returns NULL
 * when it is missing. */
const char *slm_args_value(struct slm_args *a);
/* Value parsed as an integer in [LO, HI] / a finite float in [LO, HI]; 0 on success, else prints
 * a message and returns -1. */
int slm_args_int(struct slm_args *a, int64_t lo, int64_t hi, int64_t *out);
int slm_args_float(struct slm_args *a, double lo, double hi, double *out);
/* Prints "unknown option" (or "unexpected argument") and the usage to stderr; returns 2. */
int slm_args_unknown(struct slm_args *a, const char *usage);

/* Parsers for values that do not come through a cursor (e.g. positional arguments). */
int slm_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);       /* 0 or -1 */
int slm_parse_float(const char *s, double lo, double hi, double *out);       /* 0 or -1 */
/* "1,2,3" into OUT (at most CAP); returns the count or -1 on a malformed list / overflow. */
int slm_parse_int_list(const char *s, int32_t *out, int cap);

/* Messages: "tiergate slm TOOL: ..." on stderr. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void slm_tool_errorf(const char *tool, const char *fmt, ...);
/* A usage error: the message, then the usage text, on stderr; returns 2. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int slm_tool_usage_error(const char *tool, const char *usage, const char *fmt, ...);

/* "1.23 MiB"-style size into BUF (returned). */
const char *slm_tool_fmt_bytes(uint64_t n, char *buf, size_t cap);

/* ---------------------------------------------------------------- quantization mixes (qmix.c) */

/* A llama.cpp "file type" (general.file_type, enum llama_ftype) that quantize/mkmodel can write. */
struct slm_ftype_info {
  const char *name;            /* "Q4_K_M" */
  uint32_t ftype;              /* llama_ftype number, written to general.file_type */
  enum slm_type default_type;  /* the type most weights get */
  const char *what;
};
/* By name, case-insensitive ("q4_k_m"); NULL if unknown. "Q4_K"/"Q5_K" are aliases of the _M mixes,
 * as in llama-quantize. */
const struct slm_ftype_info *slm_ftype_find(const char *name);
const struct slm_ftype_info *slm_ftype_at(size_t i);   /* iteration; NULL past the end */
const char *slm_ftype_name(uint32_t ftype);            /* NULL if not one of ours */

/* The per-tensor chooser; call slm_qmix_choose for every tensor in llama.cpp's order
 * (slm_qmix_cmp_names), since attn_v and ffn_down choices depend on their index. */
struct slm_qmix {
  const struct slm_ftype_info *ft;
  bool pure;             /* every quantizable tensor gets ft->default_type (fallbacks still apply) */
  bool tied;             /* no output.weight: token_embd is quantized like the output */
  int n_layer;           /* <arch>.block_count */
  int n_attention_wv;    /* number of attn_v (or fused qkv) tensors */
  int i_attention_wv, i_ffn_down, n_fallback;
};
void slm_qmix_init(struct slm_qmix *q, const struct slm_ftype_info *ft, bool pure, int n_layer,
                   bool tied, int n_attention_wv);
/* The type for tensor NAME with N_DIMS dims and rows of NE0, currently stored as CUR (returned
 * unchanged for tensors that are never quantized: norms, biases, 1-D tensors). */
enum slm_type slm_qmix_choose(struct slm_qmix *q, const char *name, uint32_t n_dims, int64_t ne0,
                              enum slm_type cur);
bool slm_qmix_counts_as_attn_v(const char *name);
/* llama.cpp's tensor order (llama_model_loader::weight_name_comparer): tensors outside blocks
 * first, then by block number, by name within a block. strcmp-style result. */
int slm_qmix_cmp_names(const char *a, const char *b);

/* quantize.c: IN (F32/F16/BF16 tensors) to OUT with file type FT, as llama-quantize does (kvs
 * copied, general.quantization_version and general.file_type set, tensors in llama.cpp's order).
 * Returns 0 or a negative errno with a message. VERBOSE prints one line per tensor to stdout. */
int slm_quantize_file(const char *in, const char *out, const struct slm_ftype_info *ft, bool pure,
                      bool verbose, char *err, size_t errlen);

#endif
