/* quantize.c: slm quantize (being written). */
#include "slm/tools/tools.h"

int slm_tool_quantize(int argc, char **argv) {
  (void)argc;
  (void)argv;
  slm_tool_errorf("quantize", "not implemented yet");
  return 1;
}
