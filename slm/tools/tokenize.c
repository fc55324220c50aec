/* tokenize.c: slm tokenize (not written yet; slm-tok replaces this placeholder, which only keeps the
 * dispatcher in tools.c linking). */
#include "slm/tools/tools.h"

int slm_tool_tokenize(int argc, char **argv) {
  (void)argc;
  (void)argv;
  slm_tool_errorf("tokenize", "not implemented yet");
  return 1;
}
