/*
 * test_gguf_corpus.c: replays every file of tests/slm/corpus/gguf/ (fuzz seeds and former crashers)
 * through the fuzz target's entry point, without libFuzzer, so the sanitizer CI build checks them.
 * Also feeds each file's every prefix of up to 512 bytes, which reaches the header paths cheaply.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(void) {
  const char *src = getenv("TIERGATE_SOURCE_DIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/tests/slm/corpus/gguf", src ? src : ".");
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
    for (size_t k = 0; k < got && k < 512; k++) LLVMFuzzerTestOneInput(buf, k);
    free(buf);
    n++;
  }
  closedir(dp);
  CHECK_MSG(n >= 5, "only %d corpus files in %s", n, dir);
  printf("replayed %d corpus files\n", n);
  return check_done();
}
