/*
 * test_vocab_corpus.c: replays every file of tests/slm/corpus/vocab/ (fuzz seeds and former
 * crashers) through fuzz_vocab.c's entry point, without libFuzzer, so the sanitizer build checks
 * them; also every prefix of up to 256 bytes of each file (truncated vocabularies, cut UTF-8).
 *
 * `test_vocab_corpus --write-corpus DIR` writes the seeds: the two built-in vocabularies of the
 * fuzz target and a few texts (specials, invalid UTF-8, whitespace runs, digits).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
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
  if (argc == 3 && !strcmp(argv[1], "--write-corpus")) return write_corpus(argv[2]);
  const char *src = getenv("TIERGATE_SOURCE_DIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/tests/slm/corpus/vocab", src ? src : ".");
  DIR *dp = opendir(dir);
  CHECK_MSG(dp != NULL, "cannot open %s", dir);
  if (!dp) return check_done();
  int n = 0;
  struct dirent *de;
  while ((de = readdir(dp))) {
    if (de->d_name[0] == '.') continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    FILE *fp = fopen(path, "rb");
    CHECK_MSG(fp != NULL, "cannot read %s", path);
    if (!fp) continue;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    size_t got = fread(buf, 1, (size_t)len, fp);
    fclose(fp);
    CHECK_EQ_U64(got, (uint64_t)len);
    LLVMFuzzerTestOneInput(buf, got);
    for (size_t k = 0; k < got && k < 256; k++) LLVMFuzzerTestOneInput(buf, k);
    free(buf);
    n++;
  }
  closedir(dp);
  CHECK_MSG(n >= 5, "only %d corpus files in %s", n, dir);
  printf("replayed %d corpus files\n", n);
  return check_done();
}
