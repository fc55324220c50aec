/*
 * formats.c: JSON Schema "format" values as regular expressions (whole-string), each a subset of
 * what the format means (RFC 3339 dates with real month lengths and leap years, RFC 4122 UUIDs,
 * dotted-quad IPv4 without leading zeros, RFC 4291 IPv6 without zone ids, RFC 3986 URIs with a
 * registered-name host, a conservative e-mail address). Generated values therefore pass any
 * validator that checks the format, and so do the checked ones.
 */
#include <string.h>

#include "slm/constrain/cn.h"

#define YEAR "([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
#define LEAP "([0-9]{2}(0[48]|[2468][048]|[13579][26])|([2468][048]|[13579][26]|0[48])00)"
#define DATE                                                                             \
  "(" YEAR "-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|" \
  "02-(0[1-9]|1[0-9]|2[0-8]))|" LEAP "-02-29)"
#define TIME "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
#define H16 "[0-9a-fA-F]{1,4}"
#define DEC8 "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#define IPV4 DEC8 "\\." DEC8 "\\." DEC8 "\\." DEC8
#define LS32 "(" H16 ":" H16 "|" IPV4 ")"
#define IPV6                                                                                    \
  "((" H16 ":){6}" LS32 "|::(" H16 ":){5}" LS32 "|(" H16 ")?::(" H16 ":){4}" LS32 "|((" H16       \
  ":)?" H16 ")?::(" H16 ":){3}" LS32 "|((" H16 ":){0,2}" H16 ")?::(" H16 ":){2}" LS32 "|((" H16 \
  ":){0,3}" H16 ")?::" H16 ":" LS32 "|((" H16 ":){0,4}" H16 ")?::" LS32 "|((" H16 ":){0,5}" H16  \
  ")?::" H16 "|((" H16 ":){0,6}" H16 ")?::)"
#define LABEL "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
/* e-mail domain labels: at most 22 characters (a subset of the 63 DNS allows, and a much smaller
 * automaton: e-mail fields usually come with a maxLength that multiplies it) */
#define ELABEL "[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?"
#define UNRES "A-Za-z0-9._~"
#define SUBD "!$&'()*+,;="
#define PCT "%[0-9A-Fa-f]{2}"
#define PCHAR "([" UNRES SUBD ":@-]|" PCT ")"
#define URI                                                                               \
  "[A-Za-z][A-Za-z0-9+.-]*:(//(([" UNRES SUBD ":-]|" PCT ")*@)?([" UNRES SUBD "-]|" PCT ")*" \
  "(:[0-9]*)?(/" PCHAR "*)*|(/?" PCHAR "+(/" PCHAR "*)*)?)(\\?(" PCHAR "|[/?])*)?(#(" PCHAR  \
  "|[/?])*)?"

static const struct {
  const char *name;
  const char *re;
} formats[] = {
    {"date", DATE},
    {"time", TIME},
    {"date-time", DATE "T" TIME},
    {"uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"},
    {"ipv4", IPV4},
    {"ipv6", IPV6},
    {"hostname", LABEL "(\\." LABEL ")*"},
    {"email", "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@" ELABEL
              "(\\." ELABEL ")+"},
    {"uri", URI},
    {"json-pointer", "(/([^~/]|~[01])*)*"},
};

/* Formats validators know but we do not implement: refused (a validator that asserts them would
 * reject what we accept). Anything else is not a standard format and is ignored by validators. */
static const char *const unsupported[] = {
    "duration", "iri", "iri-reference", "uri-reference", "uri-template", "idn-email",
    "idn-hostname", "relative-json-pointer", "regex", NULL};

const char *cn_format_regex(const char *name, bool *known) {
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
    if (!strcmp(formats[i].name, name)) {
      *known = true;
      return formats[i].re;
    }
  *known = false;
  for (size_t i = 0; unsupported[i]; i++)
    if (!strcmp(unsupported[i], name)) *known = true;
  return NULL;
}
