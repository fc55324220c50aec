/*
 * internal.h: declarations shared between the files of policies/ (not for other folders).
 */
#ifndef TIERGATE_POLICIES_INTERNAL_H
#define TIERGATE_POLICIES_INTERNAL_H

#include "policies/policies.h"

/* The built-in row for MODEL (exact name, then both names without their snapshot date). */
const struct pol_price_row *pol_price_row_find(const char *model);
/* Length of NAME without a trailing "-YYYY-MM-DD", "-YYYYMMDD" or "-latest". */
size_t pol_model_base_len(const char *name);

#endif
