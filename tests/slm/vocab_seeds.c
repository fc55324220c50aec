/*
 * vocab_seeds.c: `vocab_seeds DIR` writes the seeds of tests/slm/corpus/vocab/: the two built-in
 * vocabularies of the fuzz target (fuzz_vocab.c) and a few texts (specials, invalid UTF-8,
 * whitespace runs, digits). The corpus is replayed by the vocab_corpus test (tests/fuzz_replay.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fuzz_vocab_build(int which, void **buf, size_t *len);

static int write_file(const char *dir, const char *name, const void *p, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *fp = fopen(path, "wb");
  if (!fp || fwrite(p, 1, n, fp) != n) {
    fprintf(stderr, "cannot write %s\n", path);
    if (fp) fclose(fp);
    return 1;
  }
  return fclose(fp) != 0;
}

static int write_corpus(const char *dir) {
  int rc = 0;
  for (int i = 0; i < 2; i++) {
    void *buf;
    size_t len;
    if (fuzz_vocab_build(i, &buf, &len)) return 1;
    rc |= write_file(dir, i ? "vocab-bpe-qwen2.bin" : "vocab-spm-phi3.bin", buf, len);
    free(buf);
  }
  static const struct { const char *name, *text; size_t n; } texts[] = {
      {"text-specials", "<|im_start|>user\nthe thing<|im_end|>\n<x><y> <|user|>  hi<think>", 0},
      {"text-invalid-utf8", "ab\xff\xfe c\xe2\x82 \xed\xa0\x80 \xc0\xaf \xf5\x80\x80\x80 \xe4\xb8", 0},
      {"text-whitespace", "  \t\n\n \r\n   x  \xc2\x85 \xe3\x80\x80y\n", 0},
      {"text-digits", "2024-11-22 3.14159 1234567 \xd9\xa3\xd9\xa4", 0},
      {"text-nul", "a\0b\0\0", 5},
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
    rc |= write_file(dir, texts[i].name, texts[i].text,
                     texts[i].n ? texts[i].n : strlen(texts[i].text));
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: vocab_seeds DIR   (writes the seeds of tests/slm/corpus/vocab/)\n");
    return 2;
  }
  return write_corpus(argv[1]);
}
