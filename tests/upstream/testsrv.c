/*
 * testsrv.c: the loopback OpenAI-ish server of the upstream/ and router/ tests (see testsrv.h).
 * Deliberately independent of router/'s parser: a bug there must not hide itself here.
 */
#include "testsrv.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

struct testsrv {
  struct event_base *base;
  struct evconnlistener *lis;
  pthread_t thread;
  pthread_mutex_t mu;
  struct testsrv_stats st;
  struct tconn *conns;
};

struct tconn {
  struct testsrv *s;
  struct tconn *prev, *next;
  struct bufferevent *bev;
  struct event *timer;
  int step;            /* streaming progress */
  int mode;
  int usage;           /* stream usage chunk wanted */
  int answering;       /* a reply is in progress */
  int close_after;
};

enum { M_PLAIN, M_SSE, M_429, M_500, M_STALL, M_RESET, M_MIDRESET, M_SLOWSSE, M_HUGE, M_ECHO };

static const char *plain_body =
    "{\"id\":\"chatcmpl-t1\",\"object\":\"chat.completion\",\"created\":1732000000,"
    "\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":\"Hello there\",\"refusal\":null},\"logprobs\":null,"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,"
    "\"total_tokens\":21,\"prompt_tokens_details\":{\"cached_tokens\":3},"
    "\"completion_tokens_details\":{\"reasoning_tokens\":0}},\"temperature\":0.7}";

static void stat_add(struct testsrv *s, int *field) {
  pthread_mutex_lock(&s->mu);
  (*field)++;
  pthread_mutex_unlock(&s->mu);
}

static void tconn_free(struct tconn *c) {
  if (c->answering) stat_add(c->s, &c->s->st.peer_closed);
  if (c->prev) c->prev->next = c->next;
  else c->s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  event_free(c->timer);
  bufferevent_free(c->bev);
  free(c);
}

static void send_head(struct tconn *c, int status, const char *ctype, long len, const char *extra) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  evbuffer_add_printf(out, "HTTP/1.1 %d X\r\nContent-Type: %s\r\n", status, ctype);
  if (len >= 0) evbuffer_add_printf(out, "Content-Length: %ld\r\n", len);
  else evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
  evbuffer_add_printf(out, "X-Request-Id: upstream-req-1\r\nx-ratelimit-remaining-requests: 99\r\n"
                           "X-Other: not-passed\r\n%s\r\n", extra ? extra : "");
}

static void send_chunk(struct tconn *c, const char *p, size_t n) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  evbuffer_add_printf(out, "%zx\r\n", n);
  evbuffer_add(out, p, n);
  evbuffer_add(out, "\r\n", 2);
}

static void done_reply(struct tconn *c) {
  c->answering = 0;
  if (c->close_after) {
    tconn_free(c);
  }
}

/* The SSE script for mode sse: frames cut at awkward places, CRLF, a comment. */
static const char *sse_parts[] = {
    ": keep-alive comment\r\n\r\ndata: {\"id\":\"chatcmpl-s1\",\"object\":\"chat.completion.chunk\","
    "\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
    "\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\r",
    "\n\r\ndata: {\"id\":\"chatcmpl-s1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"
    "\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},",
    "\"finish_reason\":null}],\"usage\":null}\n\ndata: {\"id\":\"chatcmpl-s1\",\"object\":"
    "\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{"
    "\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
};
static const char *sse_usage =
    "data: {\"id\":\"chatcmpl-s1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"
    "\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":5,"
    "\"total_tokens\":14,\"prompt_tokens_details\":{\"cached_tokens\":0},"
    "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n";

static void step_cb(evutil_socket_t fd, short kind, void *arg) {
  struct tconn *c = arg;
  struct timeval tv = {0, 10000};
  if (c->mode == M_SSE) {
    if (c->step < 3) {
      send_chunk(c, sse_parts[c->step], strlen(sse_parts[c->step]));
      c->step++;
      evtimer_add(c->timer, &tv);
      return;
    }
    if (c->usage) send_chunk(c, sse_usage, strlen(sse_usage));
    send_chunk(c, "data: [DONE]\n\n", 14);
    send_chunk(c, "", 0); /* "0\r\n\r\n" */
    done_reply(c);
    return;
  }
  if (c->mode == M_MIDRESET) {
    tconn_free(c);
    return;
  }
  if (c->mode == M_SLOWSSE) {
    if (c->step < 200) {
      char buf[256];
      int n = snprintf(buf, sizeof buf,
                       "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m\","
                       "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%d \"}}]}\n\n", c->step);
      send_chunk(c, buf, (size_t)n);
      c->step++;
      struct timeval slow = {0, 50000};
      evtimer_add(c->timer, &slow);
      return;
    }
    send_chunk(c, "data: [DONE]\n\n", 14);
    send_chunk(c, "", 0);
    done_reply(c);
  }
}

static void json_str(struct evbuffer *b, const char *s, size_t n) {
  evbuffer_add(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') evbuffer_add_printf(b, "\\%c", ch);
    else if (ch < 0x20) evbuffer_add_printf(b, "\\u%04x", ch);
    else evbuffer_add(b, &s[i], 1);
  }
  evbuffer_add(b, "\"", 1);
}

static const char *find_header(char *head, const char *name, char *out, size_t cap) {
  size_t nl = strlen(name);
  for (char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
    if (!strncasecmp(p + 2, name, nl) && p[2 + nl] == ':') {
      char *v = p + 3 + nl;
      while (*v == ' ') v++;
      char *e = strstr(v, "\r\n");
      size_t l = e ? (size_t)(e - v) : strlen(v);
      if (l >= cap) l = cap - 1;
      memcpy(out, v, l);
      out[l] = '\0';
      return out;
    }
  }
  out[0] = '\0';
  return out;
}

static void answer(struct tconn *c, char *head, const char *body, size_t blen) {
  stat_add(c->s, &c->s->st.requests);
  char modename[32] = "plain";
  const char *m = body ? memmem(body, blen, "MODE:", 5) : NULL;
  if (m) {
    size_t i = 0;
    m += 5;
    while (i < sizeof modename - 1 && m + i < body + blen && ((m[i] >= 'a' && m[i] <= 'z') || (m[i] >= '0' && m[i] <= '9'))) {
      modename[i] = m[i];
      i++;
    }
    modename[i] = '\0';
  } else if (!strncmp(head, "GET /mode/", 10)) {
    sscanf(head + 10, "%31[a-z0-9]", modename);
  }
  bool stream = body && (memmem(body, blen, "\"stream\":true", 13) || memmem(body, blen, "\"stream\": true", 14));
  c->usage = body && memmem(body, blen, "\"include_usage\":true", 20) != NULL;
  c->answering = 1;
  c->step = 0;
  struct timeval now = {0, 0};
  if (!strcmp(modename, "sse") && stream) {
    c->mode = M_SSE;
    send_head(c, 200, "text/event-stream", -1, NULL);
    evtimer_add(c->timer, &now);
  } else if (!strcmp(modename, "status429")) {
    static const char b[] = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\","
                            "\"param\":null,\"code\":\"rate_limit_exceeded\"}}";
    send_head(c, 429, "application/json", (long)sizeof b - 1, "retry-after: 7\r\n");
    evbuffer_add(bufferevent_get_output(c->bev), b, sizeof b - 1);
    done_reply(c);
  } else if (!strcmp(modename, "status500")) {
    static const char b[] = "{\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\","
                            "\"param\":null,\"code\":null}}";
    send_head(c, 500, "application/json", (long)sizeof b - 1, NULL);
    evbuffer_add(bufferevent_get_output(c->bev), b, sizeof b - 1);
    done_reply(c);
  } else if (!strcmp(modename, "stall")) {
    c->mode = M_STALL;
  } else if (!strcmp(modename, "reset")) {
    c->answering = 0;
    tconn_free(c);
  } else if (!strcmp(modename, "midreset")) {
    c->mode = M_MIDRESET;
    send_head(c, 200, "text/event-stream", -1, NULL);
    send_chunk(c, sse_parts[2], strlen(sse_parts[2]));
    struct timeval tv = {0, 20000};
    evtimer_add(c->timer, &tv);
  } else if (!strcmp(modename, "slowsse")) {
    c->mode = M_SLOWSSE;
    send_head(c, 200, "text/event-stream", -1, NULL);
    evtimer_add(c->timer, &now);
  } else if (!strcmp(modename, "huge")) {
    size_t n = 40u << 20;
    send_head(c, 200, "application/json", (long)n, NULL);
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    evbuffer_add(bufferevent_get_output(c->bev), big, n);
    free(big);
    done_reply(c);
  } else if (!strcmp(modename, "echo")) {
    struct evbuffer *b = evbuffer_new();
    char hv[512];
    evbuffer_add(b, "{\"body\":", 8);
    json_str(b, body ? body : "", blen);
    find_header(head, "authorization", hv, sizeof hv);
    evbuffer_add(b, ",\"authorization\":", 17);
    json_str(b, hv, strlen(hv));
    find_header(head, "accept", hv, sizeof hv);
    evbuffer_add(b, ",\"accept\":", 10);
    json_str(b, hv, strlen(hv));
    evbuffer_add(b, "}", 1);
    send_head(c, 200, "application/json", (long)evbuffer_get_length(b), NULL);
    evbuffer_add_buffer(bufferevent_get_output(c->bev), b);
    evbuffer_free(b);
    done_reply(c);
  } else {
    send_head(c, 200, "application/json", (long)strlen(plain_body), NULL);
    evbuffer_add(bufferevent_get_output(c->bev), plain_body, strlen(plain_body));
    done_reply(c);
  }
}

static void read_cb(struct bufferevent *bev, void *arg) {
  struct tconn *c = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  while (!c->answering) {
    struct evbuffer_ptr e = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (e.pos < 0) return;
    size_t hl = (size_t)e.pos + 4;
    char *head = (char *)evbuffer_pullup(in, (ev_ssize_t)hl);
    char hv[64];
    char *h = strndup(head, hl);
    long cl = atol(find_header(h, "content-length", hv, sizeof hv));
    if (evbuffer_get_length(in) < hl + (size_t)cl) {
      free(h);
      return;
    }
    evbuffer_drain(in, hl);
    char *body = malloc((size_t)cl + 1);
    evbuffer_remove(in, body, (size_t)cl);
    body[cl] = '\0';
    c->close_after = strcasestr(h, "\r\nconnection: close") != NULL;
    answer(c, h, body, (size_t)cl); /* may free c */
    free(h);
    free(body);
    return;
  }
}

static void event_cb(struct bufferevent *bev, short what, void *arg) { tconn_free(arg); }

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg) {
  struct testsrv *s = arg;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct tconn *c = calloc(1, sizeof *c);
  c->s = s;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
  c->timer = evtimer_new(s->base, step_cb, c);
  bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
  bufferevent_enable(c->bev, EV_READ | EV_WRITE);
  stat_add(s, &s->st.connections);
}

static void *run(void *arg) {
  struct testsrv *s = arg;
  event_base_dispatch(s->base);
  return NULL;
}

struct testsrv *testsrv_start(int *port) {
  evthread_use_pthreads();
  struct testsrv *s = calloc(1, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  s->base = event_base_new();
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s->lis = evconnlistener_new_bind(s->base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                   LEV_OPT_THREADSAFE, 128, (struct sockaddr *)&sin, sizeof sin);
  if (!s->lis) {
    event_base_free(s->base);
    free(s);
    return NULL;
  }
  struct sockaddr_in got;
  socklen_t gl = sizeof got;
  getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&got, &gl);
  *port = ntohs(got.sin_port);
  pthread_create(&s->thread, NULL, run, s);
  return s;
}

void testsrv_stats(struct testsrv *s, struct testsrv_stats *out) {
  pthread_mutex_lock(&s->mu);
  *out = s->st;
  pthread_mutex_unlock(&s->mu);
}

void testsrv_stop(struct testsrv *s) {
  if (!s) return;
  event_base_loopbreak(s->base);
  pthread_join(s->thread, NULL);
  while (s->conns) {
    s->conns->answering = 0;
    tconn_free(s->conns);
  }
  evconnlistener_free(s->lis);
  event_base_free(s->base);
  pthread_mutex_destroy(&s->mu);
  free(s);
}
