/*
 * testsrv.h: a small loopback HTTP/1.1 server for the upstream/ and router/ tests, speaking just
 * enough OpenAI chat completions (plain and SSE) with fault modes. It runs its own libevent loop
 * in a thread so a test can drive blocking clients (or a gateway process) against it.
 *
 * The behaviour is picked per request by the first "MODE:<name>" found in the request body (or
 * the path "/mode/<name>" for GET requests):
 *   plain (default)  200 chat.completion, usage 9/12 tokens with 3 cached, x-request-id,
 *                    x-ratelimit-remaining-requests; model "gpt-4o-mini-2024-07-18"
 *   sse              if the body says "stream":true: 3 content chunks split at odd byte
 *                    boundaries with CRLF line ends and a comment, a usage chunk only when the
 *                    body contains "include_usage":true, then [DONE]; else plain
 *   status429        429 OpenAI error with retry-after: 7
 *   status500        500 OpenAI error
 *   stall            never answers
 *   reset            closes the connection without answering
 *   midreset         SSE headers and one chunk, then closes the connection
 *   slowsse          SSE: a chunk every 50 ms, 200 of them (client-disconnect tests)
 *   huge             200 with a 40 MiB body
 *   echo             200 {"body": <request body as a string>, "authorization": <header>,
 *                    "accept": <header>}
 */
#ifndef TIERGATE_TESTS_TESTSRV_H
#define TIERGATE_TESTS_TESTSRV_H

#include <stddef.h>

struct testsrv;

struct testsrv_stats {
  int requests;         /* complete requests read */
  int connections;      /* accepted */
  int peer_closed;      /* connections the client closed while we were still answering */
};

/* Starts on 127.0.0.1 with an ephemeral port; NULL on failure. */
struct testsrv *testsrv_start(int *port);
void testsrv_stats(struct testsrv *s, struct testsrv_stats *out);
void testsrv_stop(struct testsrv *s);

#endif
