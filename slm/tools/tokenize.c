/*
 * tokenize.c: `tiergate slm tokenize`, text to token ids like llama.cpp's llama-tokenize. It opens
 * the GGUF and loads only the vocabulary (slm_gguf_open + slm_vocab_load), so it works on the
 * vocabulary-only files in ../shared/vocab as well as on full models, without mapping weights
 * into a model.
 *
 * Output: one line per token, "%6d -> '%s'" with the token's piece (special tokens rendered), as
 * llama-tokenize prints; bytes of a piece that are not valid UTF-8 on their own (one byte of a
 * multi-byte character) are shown as \xNN. With --ids: the ids as a JSON list, "[1, 2, 3]".
 * As in llama-tokenize, escapes in command-line text (\n, \t, \\, \xNN, ...) are processed
 * unless --no-escape (text from -f or --stdin is taken as it is), and BOS/EOS are added when the
 * vocabulary asks for them unless --no-bos.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/gguf.h"
#include "slm/internal.h"
#include "slm/tools/tools.h"
#include "slm/vocab.h"

#define TOKENIZE_MAX_INPUT (64u << 20)   /* bytes of text read from a file or stdin */

static const char TOKENIZE_USAGE[] =
    "usage: tiergate slm tokenize -m FILE [options] [TEXT...]\n"
    "\n"
    "Tokenizes TEXT (the words are joined with spaces), or -p/-f/--stdin, with the vocabulary of\n"
    "FILE (a model or a vocabulary-only GGUF) and prints each token id with its piece.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE        GGUF file (required)\n"
    "  -p, --prompt TEXT       the text to tokenize\n"
    "  -f, --file PATH         read the text from a file\n"
    "      --stdin             read the text from standard input\n"
    "      --ids               print only the ids, as a JSON list: [1, 2, 3]\n"
    "      --no-bos            do not add BOS/EOS (default: as the vocabulary asks)\n"
    "      --add-special       add BOS/EOS as the vocabulary asks (the default)\n"
    "      --no-parse-special  treat texts like <|im_start|> as plain text\n"
    "      --no-escape         do not process escapes (\\n, \\t, \\xNN, ...) in the text\n"
    "      --show-count        print the number of tokens at the end\n"
    "  -h, --help              this help\n";

/* llama.cpp's string_process_escapes: \n \r \t \' \" \\ \xNN; other sequences stay as they are. */
static size_t process_escapes(char *s, size_t n) {
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '\\' || i + 1 >= n) {
      s[w++] = s[i];
      continue;
    }
    char c = s[++i];
    switch (c) {
      case 'n': s[w++] = '\n'; break;
      case 'r': s[w++] = '\r'; break;
      case 't': s[w++] = '\t'; break;
      case '\'': s[w++] = '\''; break;
      case '"': s[w++] = '"'; break;
      case '\\': s[w++] = '\\'; break;
      case 'x': {
        unsigned v = 0;
        int k = 0;
        while (k < 2 && i + 1 < n) {
          char h = s[i + 1];
          int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                  : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
          if (d < 0) break;
          v = v * 16 + (unsigned)d;
          i++;
          k++;
        }
        if (k == 2) {
          s[w++] = (char)v;
        } else {   /* not \xNN: keep the text */
          s[w++] = '\\';
          s[w++] = 'x';
          i -= (size_t)k;
        }
        break;
      }
      default:
        s[w++] = '\\';
        s[w++] = c;
    }
  }
  return w;
}

/* Reads all of FP (at most TOKENIZE_MAX_INPUT bytes) into a malloc'd buffer. */
static char *read_stream(FILE *fp, size_t *len, const char *what) {
  size_t cap = 4096, n = 0;
  char *b = malloc(cap);
  if (!b) return NULL;
  for (;;) {
    if (n == cap) {
      if (cap >= TOKENIZE_MAX_INPUT) {
        slm_tool_errorf("tokenize", "%s is larger than %u MiB", what, TOKENIZE_MAX_INPUT >> 20);
        free(b);
        return NULL;
      }
      cap *= 2;
      char *b2 = realloc(b, cap);
      if (!b2) {
        free(b);
        return NULL;
      }
      b = b2;
    }
    size_t k = fread(b + n, 1, cap - n, fp);
    n += k;
    if (k == 0) break;
  }
  if (ferror(fp)) {
    slm_tool_errorf("tokenize", "cannot read %s: %s", what, strerror(errno));
    free(b);
    return NULL;
  }
  *len = n;
  return b;
}

/* Prints PIECE with bytes that are not valid UTF-8 shown as \xNN; returns whether any were. */
static bool print_piece(const char *p, int32_t n) {
  bool bad = false;
  for (int32_t i = 0; i < n;) {
    const unsigned char c = (unsigned char)p[i];
    int k = c < 0x80 ? 1 : c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3
            : c >= 0xF0 && c < 0xF5 ? 4 : 0;
    bool ok = k > 0 && i + k <= n;
    for (int j = 1; ok && j < k; j++) ok = ((unsigned char)p[i + j] & 0xC0) == 0x80;
    if (ok) {
      fwrite(p + i, 1, (size_t)k, stdout);
      i += k;
    } else {
      printf("\\x%02X", c);
      bad = true;
      i++;
    }
  }
  return bad;
}

int slm_tool_tokenize(int argc, char **argv) {
  struct slm_args a = slm_args_init("tokenize", argc, argv);
  const char *model = NULL, *prompt = NULL, *file = NULL;
  bool use_stdin = false, ids_only = false, no_bos = false, parse_special = true, escape = true;
  bool show_count = false;
  char *words = NULL;   /* positional TEXT words joined with spaces */
  size_t words_len = 0;
  const char *arg;
  int rc = 2;
  while ((arg = slm_args_next(&a))) {
    if (slm_args_positional(&a, arg)) {
      size_t k = strlen(arg);
      char *w = realloc(words, words_len + k + 2);
      if (!w) {
        slm_tool_errorf("tokenize", "out of memory");
        free(words);
        return 1;
      }
      words = w;
      if (words_len) words[words_len++] = ' ';
      memcpy(words + words_len, arg, k);
      words_len += k;
      words[words_len] = 0;
    } else if (slm_args_help(arg)) {
      fputs(TOKENIZE_USAGE, stdout);
      free(words);
      return 0;
    } else if (slm_args_is(arg, "-m", "--model")) {
      if (!(model = slm_args_value(&a))) goto usage;
    } else if (slm_args_is(arg, "-p", "--prompt")) {
      if (!(prompt = slm_args_value(&a))) goto usage;
    } else if (slm_args_is(arg, "-f", "--file")) {
      if (!(file = slm_args_value(&a))) goto usage;
    } else if (slm_args_is(arg, NULL, "--stdin")) {
      use_stdin = true;
    } else if (slm_args_is(arg, NULL, "--ids")) {
      ids_only = true;
    } else if (slm_args_is(arg, NULL, "--no-bos")) {
      no_bos = true;
    } else if (slm_args_is(arg, NULL, "--add-special")) {
      no_bos = false;
    } else if (slm_args_is(arg, NULL, "--no-parse-special")) {
      parse_special = false;
    } else if (slm_args_is(arg, NULL, "--no-escape")) {
      escape = false;
    } else if (slm_args_is(arg, NULL, "--show-count")) {
      show_count = true;
    } else {
      rc = slm_args_unknown(&a, TOKENIZE_USAGE);
      free(words);
      return rc;
    }
  }
  if (!model) {
    free(words);
    return slm_tool_usage_error("tokenize", TOKENIZE_USAGE, "-m FILE is required");
  }
  int sources = (prompt != NULL) + (file != NULL) + use_stdin + (words != NULL);
  if (sources != 1) {
    free(words);
    return slm_tool_usage_error("tokenize", TOKENIZE_USAGE,
                                sources ? "give the text one way only (TEXT, -p, -f or --stdin)"
                                        : "no text: give TEXT, -p, -f or --stdin");
  }

  /* the text, in a buffer we own (escapes are processed in place) */
  char *text = NULL;
  size_t len = 0;
  bool from_cmdline = words || prompt;   /* escapes apply to command-line text only */
  if (words) {
    text = words;
    len = words_len;
    words = NULL;
  } else if (prompt) {
    len = strlen(prompt);
    text = malloc(len + 1);
    if (text) memcpy(text, prompt, len + 1);
  } else if (file) {
    FILE *fp = fopen(file, "rb");
    if (!fp) {
      slm_tool_errorf("tokenize", "cannot open %s: %s", file, strerror(errno));
      return 1;
    }
    text = read_stream(fp, &len, file);
    fclose(fp);
  } else {
    text = read_stream(stdin, &len, "standard input");
  }
  if (!text) return 1;
  if (escape && from_cmdline) len = process_escapes(text, len);

  char err[512];
  struct slm_gguf_file *f = NULL;
  struct slm_vocab *v = NULL;
  rc = 1;
  if (slm_gguf_open(model, &f, err, sizeof err)) {
    slm_tool_errorf("tokenize", "%s", err);
    goto done;
  }
  if (slm_vocab_load(f, &v, err, sizeof err)) {
    slm_tool_errorf("tokenize", "%s: %s", model, err);
    goto done;
  }
  bool add_special = slm_vocab_add_bos(v) && !no_bos;
  if (!no_bos && slm_vocab_add_eos(v)) add_special = true;
  int32_t n = slm_vocab_tokenize(v, text, len, NULL, 0, add_special, parse_special);
  if (n == INT32_MIN) {
    slm_tool_errorf("tokenize", "tokenization failed (out of memory?)");
    goto done;
  }
  int32_t cap = n < 0 ? -n : n;
  slm_token *toks = malloc((size_t)(cap ? cap : 1) * sizeof *toks);
  if (!toks) {
    slm_tool_errorf("tokenize", "out of memory");
    goto done;
  }
  n = slm_vocab_tokenize(v, text, len, toks, cap, add_special, parse_special);
  if (ids_only) {
    putchar('[');
    for (int32_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", toks[i]);
    puts("]");
  } else {
    char piece[256];
    for (int32_t i = 0; i < n; i++) {
      int32_t k = slm_vocab_token_to_piece(v, toks[i], piece, sizeof piece, true);
      char *big = NULL;
      const char *p = piece;
      if (k < 0 && k != INT32_MIN) {
        big = malloc((size_t)-k);
        if (big) k = slm_vocab_token_to_piece(v, toks[i], big, -k, true);
        p = big;
      }
      printf("%6d -> '", toks[i]);
      bool bad = p && k > 0 ? print_piece(p, k) : false;
      puts(bad ? "' (not valid UTF-8 on its own)" : "'");
      free(big);
    }
  }
  if (show_count) printf("Total number of tokens: %d\n", n);
  free(toks);
  rc = fflush(stdout) == 0 ? 0 : 1;
done:
  slm_vocab_free(v);
  slm_gguf_close(f);
  free(text);
  return rc;
usage:
  free(words);
  return 2;
}
