/* http.c - HTTP client: libcurl multi-socket API on the shared libuv loop.
 *
 * One curl multi handle per loop.  curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION -> one uv_poll per socket) and when to call it
 * back (CURLMOPT_TIMERFUNCTION -> one uv_timer); libuv reports readiness and
 * we hand it to curl_multi_socket_action, then collect finished transfers
 * with curl_multi_info_read and call their Lua callbacks.
 *
 *   core.http_request(opts, cb) -> request (:cancel())
 *   core.http_config{ max_host_connections, max_total_connections }
 *   core.http_stats() -> { in_flight, active, queued, idle_handles }
 *
 * Request queue: requests beyond the connection limits (per host, keyed by
 * scheme://authority, and in total) wait in our own FIFO per host and are
 * handed to curl only when a request to that host ends.  curl's own pending
 * list is not used: libcurl 7.88 walks it on every curl_multi_remove_handle
 * (O(waiting) per completion) and runs the connect timeout while a transfer
 * waits there.  The total timeout covers the time queued: curl gets what is
 * left of it, and one "queue" timer fails the requests whose deadline passes
 * while they wait.
 *
 * A queued request holds a copy of its options (http_spec) and gets its
 * easy handle when it leaves the queue.
 *
 * Easy handles are kept on a free list (curl_easy_reset on reuse); the
 * connections themselves live in the multi handle's connection cache, so
 * sequential requests to one host reuse a kept-alive connection.
 *
 * Loop liveness: the poll handles and the curl timer are unref'd (idle
 * cached connections must not keep the loop running); a separate "keep"
 * timer is armed while at least one request is in flight.
 *
 * Ownership: a request (http_req) is malloc'd, owned by the in-flight list
 * until it completes or is cancelled, then freed at once.  Its Lua userdata
 * holds a pointer to it, cleared when the request ends; while in flight the
 * userdata is anchored in the registry (self_ref).  The context (http_ctx)
 * is freed by the last close callback of its three timers, closed in the
 * shutdown hook.
 */
#include "core.h"
#include "buf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <curl/curl.h>

#define HTTP_REQ_MT "ari.core.http_request"
#define HTTP_CTX_KEY "ari.core.http"
#define HTTP_DEFAULT_TIMEOUT 30000L
#define HTTP_DEFAULT_CONNECT_TIMEOUT 5000L
#define HTTP_DEFAULT_MAX_BODY (64LL * 1024 * 1024)
#define HTTP_MAX_IDLE_HANDLES 64
#define HTTP_KEEP_MS (3600u * 1000u)

typedef struct http_ctx http_ctx;
typedef struct http_host http_host;

typedef struct http_req {
  http_ctx *h;
  CURL *easy;
  struct curl_slist *hdrs;
  struct http_req **slot; /* the Lua userdata's pointer, or NULL */
  int cb_ref, self_ref;
  long long max_body;
  int too_large;
  int head_done; /* the blank line ending the header block was seen */
  int raw_headers; /* opts.raw_headers: the header block as one string */
  buf body, head;
  char errbuf[CURL_ERROR_SIZE];
  struct http_req *prev, *next; /* in-flight list */
  http_host *host;
  int queued;                     /* waiting in host->qhead..qtail */
  int in_curl;                    /* added to the multi handle */
  long long timeout;              /* ms, 0 = none */
  uint64_t deadline;              /* uv_now() + timeout, when timeout > 0 */
  struct http_req *qprev, *qnext; /* host queue */
  struct http_spec *spec;         /* while queued: what the easy handle is made from */
} http_req;

/* A request's options, enough to make its easy handle.  Filled with
 * pointers into the Lua strings during core.http_request; a request that
 * has to wait in the queue gets a copy (one allocation, strings inline)
 * and its easy handle only when it leaves the queue: ten thousand queued
 * requests then hold ten thousand small blobs, not ten thousand curl
 * handles (several KB each, and the heap they fragment). */
typedef struct http_spec {
  const char *url, *method, *body, *user, *password, *cainfo;
  size_t body_len;
  long long ctimeout;
  int insecure;
} http_spec;

/* One per scheme://authority seen; kept until teardown (a client talks to
 * a handful of hosts). */
struct http_host {
  char *key;
  int active; /* requests handed to curl */
  http_req *qhead, *qtail;
  http_host *next;
};

typedef struct http_sock {
  uv_poll_t poll;
  http_ctx *h;
  curl_socket_t fd;
  struct http_sock *prev, *next;
} http_sock;

typedef struct http_easy {
  CURL *easy;
  struct http_easy *next;
} http_easy;

struct http_ctx {
  core_loop *c;
  CURLM *multi;
  uv_timer_t timer; /* curl's timeout */
  uv_timer_t keep;  /* armed while requests are in flight */
  uv_timer_t qtimer; /* the earliest deadline of a queued request */
  uint64_t qtimer_due; /* 0 when not armed */
  int closing;
  int closing_timers;
  int in_flight; /* queued + active */
  int active;    /* handed to curl */
  int queued;
  long max_host, max_total; /* 0 = no limit */
  int idle;
  http_req *reqs;
  http_host *hosts;
  http_sock *socks;
  http_easy *free_easy;
};

static int http_global_done = 0;

/* ---------------------------------------------------------------- easy pool */

static CURL *http_easy_get(http_ctx *h) {
  http_easy *e = h->free_easy;
  CURL *easy;
  if (e == NULL) return curl_easy_init();
  h->free_easy = e->next;
  h->idle--;
  easy = e->easy;
  free(e);
  curl_easy_reset(easy);
  return easy;
}

/* [hardening] libcurl before 8.3.0 keeps a dangling pointer to the last
 * header of the previous transfer in a reused easy handle (curl issue
 * #11620): a response whose first header line starts with a space or tab
 * (a folded line) then reads freed memory.  Found by spec/fuzz/fuzz_http.c
 * (regression input spec/fuzz/corpus/http/regress-curl-fold-*).  On such
 * versions easy handles are not reused (connections still are). */
static int http_pool_ok(void) {
  static int ok = -1;
  if (ok < 0) ok = curl_version_info(CURLVERSION_NOW)->version_num >= 0x080300;
  return ok;
}

static void http_easy_put(http_ctx *h, CURL *easy) {
  http_easy *e;
  if (h->closing || !http_pool_ok() || h->idle >= HTTP_MAX_IDLE_HANDLES ||
      (e = malloc(sizeof *e)) == NULL) {
    curl_easy_cleanup(easy);
    return;
  }
  e->easy = easy;
  e->next = h->free_easy;
  h->free_easy = e;
  h->idle++;
}

/* ---------------------------------------------------------------- requests */

static void http_keep_cb(uv_timer_t *t) { (void)t; }

static void http_link(http_req *r) {
  http_ctx *h = r->h;
  r->prev = NULL;
  r->next = h->reqs;
  if (h->reqs) h->reqs->prev = r;
  h->reqs = r;
  if (h->in_flight++ == 0 && !h->closing) uv_timer_start(&h->keep, http_keep_cb, HTTP_KEEP_MS, HTTP_KEEP_MS);
}

/* The connection-pool key of a url: scheme://authority, lower-cased. */
static http_host *http_host_get(http_ctx *h, const char *url) {
  const char *p = strstr(url, "://"), *e;
  size_t n;
  http_host *x;
  if (p == NULL) p = url;
  else p += 3;
  e = p + strcspn(p, "/?#");
  n = (size_t)(e - url);
  for (x = h->hosts; x; x = x->next)
    if (strlen(x->key) == n && strncasecmp(x->key, url, n) == 0) return x;
  x = calloc(1, sizeof *x);
  if (x == NULL) return NULL;
  x->key = malloc(n + 1);
  if (x->key == NULL) {
    free(x);
    return NULL;
  }
  memcpy(x->key, url, n);
  x->key[n] = '\0';
  x->next = h->hosts;
  h->hosts = x;
  return x;
}

static int http_can_start(http_ctx *h, http_host *x) {
  return (h->max_total <= 0 || h->active < h->max_total) && (h->max_host <= 0 || x->active < h->max_host);
}

static void http_qtimer_cb(uv_timer_t *t);

static void http_enqueue(http_req *r) {
  http_ctx *h = r->h;
  http_host *x = r->host;
  r->queued = 1;
  r->qnext = NULL;
  r->qprev = x->qtail;
  if (x->qtail) x->qtail->qnext = r;
  else x->qhead = r;
  x->qtail = r;
  h->queued++;
  if (r->timeout > 0 && (h->qtimer_due == 0 || r->deadline < h->qtimer_due)) {
    uint64_t now = uv_now(&h->c->uv);
    h->qtimer_due = r->deadline;
    uv_timer_start(&h->qtimer, http_qtimer_cb, r->deadline > now ? r->deadline - now : 0, 0);
  }
}

static void http_dequeue(http_req *r) {
  http_host *x = r->host;
  if (r->qprev) r->qprev->qnext = r->qnext;
  else x->qhead = r->qnext;
  if (r->qnext) r->qnext->qprev = r->qprev;
  else x->qtail = r->qprev;
  r->qprev = r->qnext = NULL;
  r->queued = 0;
  r->h->queued--;
}

/* Hand the request to curl with what is left of its total timeout; its
 * easy handle is made from sp (a request that never waited) or from the
 * copy kept while it was queued.  Returns CURLE_OK, CURLE_OPERATION_TIMEDOUT (nothing left) or
 * CURLE_OUT_OF_MEMORY (curl refused it; r->errbuf says why). */
static int http_setup(http_req *r, const http_spec *sp);

static CURLcode http_start(http_req *r, const http_spec *sp) {
  http_ctx *h = r->h;
  CURLMcode mrc;
  if (r->easy == NULL) {
    const http_spec *use = sp != NULL ? sp : r->spec;
    int bad = use == NULL || http_setup(r, use) != 0;
    free(r->spec);
    r->spec = NULL;
    if (bad) {
      snprintf(r->errbuf, sizeof r->errbuf, "out of memory");
      return CURLE_OUT_OF_MEMORY;
    }
  }
  if (r->timeout > 0) {
    uint64_t now = uv_now(&h->c->uv);
    if (now >= r->deadline) return CURLE_OPERATION_TIMEDOUT;
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)(r->deadline - now));
  }
  mrc = curl_multi_add_handle(h->multi, r->easy);
  if (mrc != CURLM_OK) {
    snprintf(r->errbuf, sizeof r->errbuf, "%s", curl_multi_strerror(mrc));
    return CURLE_OUT_OF_MEMORY;
  }
  r->in_curl = 1;
  r->host->active++;
  h->active++;
  return CURLE_OK;
}

/* Take the request out of curl and the in-flight list, return its easy
 * handle to the pool, detach the userdata, free everything except the
 * callback reference (returned, the caller owns it). */
static int http_finish(http_req *r) {
  http_ctx *h = r->h;
  core_loop *c = h->c;
  int cb = r->cb_ref;
  if (r->prev) r->prev->next = r->next;
  else h->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  if (--h->in_flight == 0) uv_timer_stop(&h->keep);
  if (r->queued) {
    http_dequeue(r);
  } else if (r->in_curl) {
    r->in_curl = 0;
    curl_multi_remove_handle(h->multi, r->easy);
    r->host->active--;
    h->active--;
  }
  if (r->easy) {
    http_easy_put(h, r->easy);
    r->easy = NULL;
  }
  curl_slist_free_all(r->hdrs);
  free(r->spec);
  buf_free(&r->body);
  buf_free(&r->head);
  if (r->slot) *r->slot = NULL;
  if (!c->closing) core_unref(c, r->self_ref);
  free(r);
  return cb;
}

static size_t http_write_cb(char *ptr, size_t size, size_t n, void *ud) {
  http_req *r = (http_req *)ud;
  size_t len = size * n;
  if ((long long)(r->body.len + len) > r->max_body) {
    r->too_large = 1;
    return 0; /* makes curl fail with CURLE_WRITE_ERROR */
  }
  if (buf_add(&r->body, ptr, len) != 0) return 0;
  return len;
}

static size_t http_header_cb(char *ptr, size_t size, size_t n, void *ud) {
  http_req *r = (http_req *)ud;
  size_t len = size * n;
  /* a new status line (1xx interim or a second response) starts over */
  if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
    r->head.len = 0;
    r->head_done = 0;
  }
  if ((len == 2 && ptr[0] == '\r' && ptr[1] == '\n') || (len == 1 && ptr[0] == '\n')) r->head_done = 1;
  if (r->head.len + len > 1024 * 1024) return 0; /* absurd header block */
  if (buf_add(&r->head, ptr, len) != 0) return 0;
  return len;
}

/* Push the header block as a table { lower-case name = value }; repeated
 * headers are joined with ", ". */
static void http_push_headers(lua_State *L, const char *p, size_t len) {
  const char *end;
  lua_newtable(L);
  if (p == NULL) return;
  end = p + len;
  /* skip the status line */
  while (p < end && *p != '\n') p++;
  while (p < end) {
    const char *line = ++p, *eol, *colon, *v, *ve;
    luaL_Buffer nb;
    if (p >= end) break;
    while (p < end && *p != '\n') p++;
    eol = p;
    colon = memchr(line, ':', (size_t)(eol - line));
    if (colon == NULL || colon == line) continue;
    v = colon + 1;
    ve = eol;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    luaL_buffinit(L, &nb);
    for (const char *q = line; q < colon; q++) luaL_addchar(&nb, (char)tolower((unsigned char)*q));
    luaL_pushresult(&nb);      /* name */
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);         /* existing value */
    if (lua_isstring(L, -1)) {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, (size_t)(ve - v));
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, v, (size_t)(ve - v));
    }
    lua_rawset(L, -3);
  }
}

static const char *http_kind(CURLcode rc, int too_large) {
  switch (rc) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return "connect";
  case CURLE_OPERATION_TIMEDOUT:
    return "timeout";
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_WEIRD_SERVER_REPLY:
    return "reset";
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CLIENTCERT:
  case CURLE_USE_SSL_FAILED:
    return "tls";
  case CURLE_FILESIZE_EXCEEDED:
    return "too_large";
  case CURLE_WRITE_ERROR:
    return too_large ? "too_large" : "other";
  default:
    return "other";
  }
}

/* A transfer ended (http_complete_cf's argument). */
typedef struct http_done {
  http_req *r;
  CURLcode rc;
  int cb;        /* the callback's reference, once the request is finished */
  int finished;
} http_done;

/* Run through core_call, so that running out of memory while building the
 * results is reported like an error of the callback rather than unwinding
 * through libuv: pushes cb(status, body, headers) or cb(nil, err), finishes
 * the request, calls cb. */
static int http_complete_cf(lua_State *L) {
  http_done *d = (http_done *)lua_touserdata(L, 1);
  http_req *r = d->r;
  core_loop *c = r->h->c;
  int nargs;
  lua_settop(L, 0);
  core_push_ref(c, r->cb_ref);
  if (d->rc == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_pushinteger(L, status);
    lua_pushlstring(L, r->body.p ? r->body.p : "", r->body.len);
    if (r->raw_headers) lua_pushlstring(L, r->head.p ? r->head.p : "", r->head.len);
    else http_push_headers(L, r->head.p, r->head.len);
    nargs = 3;
  } else {
    const char *kind = http_kind(d->rc, r->too_large);
    const char *msg = r->errbuf[0] ? r->errbuf : curl_easy_strerror(d->rc);
    lua_pushnil(L);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    if (strcmp(kind, "too_large") == 0 && d->rc == CURLE_WRITE_ERROR)
      lua_pushfstring(L, "response body larger than max_body (%I bytes)", (lua_Integer)r->max_body);
    else
      lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    lua_pushinteger(L, (lua_Integer)d->rc);
    lua_setfield(L, -2, "code");
    nargs = 2;
  }
  d->cb = http_finish(r);
  d->finished = 1;
  lua_call(L, nargs, 0);
  return 0;
}

/* A transfer ended: call its callback with the response or the error. */
static void http_complete(http_ctx *h, http_req *r, CURLcode rc) {
  core_loop *c = h->c;
  http_done d;
  if (c->closing) return;
  if (!lua_checkstack(c->L, 8)) return;
  if (rc == CURLE_OK && !r->head_done) {
    /* curl accepts a connection closed in the middle of the header block
     * as a complete response: it is not one */
    rc = CURLE_RECV_ERROR;
    snprintf(r->errbuf, sizeof r->errbuf, "connection closed before the response headers were complete");
  }
  d.r = r;
  d.rc = rc;
  d.cb = LUA_NOREF;
  d.finished = 0;
  lua_pushcfunction(c->L, http_complete_cf);
  lua_pushlightuserdata(c->L, &d);
  core_call(c, 1, 0);
  if (!d.finished) d.cb = http_finish(r); /* the results could not be built (reported) */
  core_unref(c, d.cb);
}

/* Hand queued requests to curl while the limits allow; a request whose
 * time ran out while queued (or that curl refuses) fails through its
 * callback, which may itself add or cancel requests: the queues are
 * re-read after each one. */
static void http_pump(http_ctx *h) {
  http_host *x = h->hosts; /* hosts live until teardown: x stays valid */
  while (x && h->queued > 0 && !h->closing) {
    if (h->max_total > 0 && h->active >= h->max_total) return;
    if (x->qhead && http_can_start(h, x)) {
      http_req *r = x->qhead;
      CURLcode rc;
      http_dequeue(r);
      rc = http_start(r, NULL);
      if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(r->errbuf, sizeof r->errbuf, "Operation timed out after %lld milliseconds waiting for a connection",
                 r->timeout);
      if (rc != CURLE_OK) http_complete(h, r, rc);
      continue;
    }
    x = x->next;
  }
}

/* A queued request's deadline passed: fail every queued request that is
 * out of time, re-arm for the earliest remaining deadline. */
static void http_qtimer_cb(uv_timer_t *t) {
  http_ctx *h = (http_ctx *)t->data;
  uint64_t due = 0, now = uv_now(&h->c->uv);
  http_host *x;
  http_req *r;
  h->qtimer_due = 0;
  for (x = h->hosts; x && !h->closing; x = x->next) {
    r = x->qhead;
    while (r && !h->closing) {
      if (r->timeout > 0 && r->deadline <= now) {
        http_dequeue(r);
        snprintf(r->errbuf, sizeof r->errbuf, "Operation timed out after %lld milliseconds waiting for a connection",
                 r->timeout);
        http_complete(h, r, CURLE_OPERATION_TIMEDOUT);
        r = x->qhead; /* the callback may have changed the queue */
      } else {
        r = r->qnext;
      }
    }
  }
  if (h->closing) return;
  for (x = h->hosts; x; x = x->next)
    for (r = x->qhead; r; r = r->qnext)
      if (r->timeout > 0 && (due == 0 || r->deadline < due)) due = r->deadline;
  if (due != 0 && (h->qtimer_due == 0 || due < h->qtimer_due)) {
    h->qtimer_due = due;
    uv_timer_start(&h->qtimer, http_qtimer_cb, due > now ? due - now : 0, 0);
  }
}

static void http_check_done(http_ctx *h) {
  CURLMsg *m;
  int left;
  while (!h->closing && (m = curl_multi_info_read(h->multi, &left)) != NULL) {
    http_req *r = NULL;
    if (m->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    if (r == NULL) continue;
    http_complete(h, r, m->data.result);
  }
  if (h->queued > 0) http_pump(h);
}

/* ---------------------------------------------------------------- curl <-> uv */

static void http_sock_free(uv_handle_t *p) { free(p->data); }

static void http_sock_close(http_ctx *h, http_sock *s) {
  if (s->prev) s->prev->next = s->next;
  else h->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, http_sock_free);
}

static void http_poll_cb(uv_poll_t *p, int status, int events) {
  http_sock *s = (http_sock *)p->data;
  http_ctx *h = s->h;
  int flags = 0, running;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(h->multi, s->fd, flags, &running); /* may free s */
  http_check_done(h);
}

static http_sock *http_sock_find(http_ctx *h, curl_socket_t fd) {
  http_sock *s;
  for (s = h->socks; s != NULL; s = s->next)
    if (s->fd == fd) return s;
  return NULL;
}

/* curl closes a socket (CURLOPT_CLOSESOCKETFUNCTION): its poll handle goes
 * with it.  Until then the handle is kept while the connection idles in
 * curl's cache (CURL_POLL_REMOVE only stops it), so a reused connection
 * costs one epoll_ctl per request instead of a uv_poll_init (four syscalls
 * and an allocation) and a uv_close. */
static int http_closesocket_cb(void *clientp, curl_socket_t fd) {
  http_ctx *h = (http_ctx *)clientp;
  http_sock *s = http_sock_find(h, fd);
  if (s) http_sock_close(h, s);
  return close(fd);
}

static int http_socket_cb(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp) {
  http_ctx *h = (http_ctx *)userp;
  http_sock *s = (http_sock *)socketp;
  int events = 0;
  (void)easy;
  if (action == CURL_POLL_REMOVE) {
    if (s == NULL) s = http_sock_find(h, fd);
    if (s) {
      curl_multi_assign(h->multi, fd, NULL);
      uv_poll_stop(&s->poll); /* closed by http_closesocket_cb */
    }
    return 0;
  }
  if (h->closing) return 0;
  if (s == NULL) s = http_sock_find(h, fd);
  if (s != NULL) {
    curl_multi_assign(h->multi, fd, s);
  } else {
    s = calloc(1, sizeof *s);
    if (s == NULL) return -1;
    if (uv_poll_init_socket(&h->c->uv, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->poll.data = s;
    s->h = h;
    s->fd = fd;
    s->next = h->socks;
    if (h->socks) h->socks->prev = s;
    h->socks = s;
    uv_unref((uv_handle_t *)&s->poll);
    curl_multi_assign(h->multi, fd, s);
  }
  if (action & CURL_POLL_IN) events |= UV_READABLE;
  if (action & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&s->poll, events, http_poll_cb);
  return 0;
}

static void http_timeout_cb(uv_timer_t *t) {
  http_ctx *h = (http_ctx *)t->data;
  int running;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  http_check_done(h);
}

static int http_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  http_ctx *h = (http_ctx *)userp;
  (void)multi;
  if (h->closing) return 0;
  if (timeout_ms < 0) uv_timer_stop(&h->timer);
  else uv_timer_start(&h->timer, http_timeout_cb, (uint64_t)timeout_ms, 0);
  return 0;
}

/* ---------------------------------------------------------------- teardown */

/* The three timers close together; the last close callback frees the ctx. */
static void http_timer_closed(uv_handle_t *t) {
  http_ctx *h = (http_ctx *)t->data;
  if (--h->closing_timers == 0) free(h);
}

static void http_shutdown(core_loop *c, void *ud) {
  http_ctx *h = (http_ctx *)ud;
  http_easy *e;
  (void)c;
  h->closing = 1;
  while (h->reqs) {
    http_req *r = h->reqs;
    r->self_ref = LUA_NOREF; /* the registry goes away with the state */
    r->cb_ref = LUA_NOREF;
    http_finish(r); /* easy handles are cleaned up while closing */
  }
  while (h->hosts) {
    http_host *x = h->hosts;
    h->hosts = x->next;
    free(x->key);
    free(x);
  }
  while ((e = h->free_easy) != NULL) {
    h->free_easy = e->next;
    curl_easy_cleanup(e->easy);
    free(e);
  }
  h->idle = 0;
  curl_multi_cleanup(h->multi); /* may still report sockets to remove */
  h->multi = NULL;
  while (h->socks) http_sock_close(h, h->socks);
  uv_timer_stop(&h->timer);
  uv_timer_stop(&h->keep);
  uv_timer_stop(&h->qtimer);
  h->closing_timers = 3;
  uv_close((uv_handle_t *)&h->keep, http_timer_closed);
  uv_close((uv_handle_t *)&h->qtimer, http_timer_closed);
  uv_close((uv_handle_t *)&h->timer, http_timer_closed);
}

static http_ctx *http_ctx_get(lua_State *L) {
  http_ctx *h;
  lua_getfield(L, LUA_REGISTRYINDEX, HTTP_CTX_KEY);
  h = (http_ctx *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (h == NULL || h->closing) luaL_error(L, "ari.core.http: not available");
  return h;
}

/* ---------------------------------------------------------------- Lua API */

static int http_opt_int(lua_State *L, int t, const char *name, long long def, long long *out) {
  int ty = lua_getfield(L, t, name);
  if (ty == LUA_TNIL) {
    *out = def;
  } else if (lua_isinteger(L, -1)) {
    *out = (long long)lua_tointeger(L, -1);
  } else if (ty == LUA_TNUMBER) {
    *out = (long long)lua_tonumber(L, -1);
  } else {
    lua_pop(L, 1);
    return luaL_error(L, "http_request: opts.%s must be a number", name);
  }
  lua_pop(L, 1);
  if (*out < 0) return luaL_error(L, "http_request: opts.%s must not be negative", name);
  return 0;
}

static const char *http_opt_str(lua_State *L, int t, const char *name, size_t *len) {
  const char *s;
  int ty = lua_getfield(L, t, name);
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (ty != LUA_TSTRING && ty != LUA_TNUMBER) {
    luaL_error(L, "http_request: opts.%s must be a string", name);
    return NULL;
  }
  /* left on the stack: a number converted here is referenced only there */
  s = lua_tolstring(L, -1, len);
  return s;
}

static int http_is_token(const char *s) {
  if (*s == '\0') return 0;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch <= 32 || ch >= 127 || strchr("()<>@,;:\\\"/[]?={}", ch)) return 0;
  }
  return 1;
}

static int http_has_crlf(const char *s, size_t n) {
  return memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL || memchr(s, '\0', n) != NULL;
}

/* Build the header list (and collect whether Content-Type was given). */
static struct curl_slist *http_headers(lua_State *L, int t, int *has_ctype, const char **err) {
  struct curl_slist *list = NULL, *nl;
  *has_ctype = 0;
  *err = NULL;
  if (lua_getfield(L, t, "headers") == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    *err = "opts.headers must be a table";
    return NULL;
  }
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    const char *name, *val;
    size_t vlen;
    if (lua_type(L, -2) != LUA_TSTRING || !(lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
      *err = "opts.headers must map names to string values";
    } else {
      name = lua_tostring(L, -2);
      lua_pushvalue(L, -1); /* tostring on a copy, not on the key iteration value */
      val = lua_tolstring(L, -1, &vlen);
      if (!http_is_token(name)) *err = "invalid header name";
      else if (http_has_crlf(val, vlen)) *err = "header value contains CR, LF or NUL";
      else {
        lua_pushfstring(L, vlen ? "%s: %s" : "%s;", name, val);
        nl = curl_slist_append(list, lua_tostring(L, -1));
        lua_pop(L, 1);
        if (nl == NULL) *err = "out of memory";
        else list = nl;
        if (strcasecmp(name, "Content-Type") == 0) *has_ctype = 1;
      }
      lua_pop(L, 1);
    }
    if (*err) {
      lua_pop(L, 3);
      curl_slist_free_all(list);
      return NULL;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return list;
}

/* A copy of sp in one allocation (strings inline), or NULL. */
static http_spec *http_spec_copy(const http_spec *sp) {
  const char *strs[5] = {sp->url, sp->method, sp->user, sp->password, sp->cainfo};
  size_t lens[5], total = sizeof(http_spec) + sp->body_len + 1;
  http_spec *cp;
  char *w;
  int i;
  for (i = 0; i < 5; i++) {
    lens[i] = strs[i] ? strlen(strs[i]) + 1 : 0;
    total += lens[i];
  }
  cp = malloc(total);
  if (cp == NULL) return NULL;
  *cp = *sp;
  w = (char *)(cp + 1);
  if (sp->body) {
    memcpy(w, sp->body, sp->body_len);
    w[sp->body_len] = '\0';
    cp->body = w;
    w += sp->body_len + 1;
  }
  for (i = 0; i < 5; i++) {
    const char *v = NULL;
    if (strs[i]) {
      memcpy(w, strs[i], lens[i]);
      v = w;
      w += lens[i];
    }
    switch (i) {
    case 0: cp->url = v; break;
    case 1: cp->method = v; break;
    case 2: cp->user = v; break;
    case 3: cp->password = v; break;
    default: cp->cainfo = v; break;
    }
  }
  return cp;
}

/* Make r's easy handle from sp (curl copies every string).  0 or -1. */
static int http_setup(http_req *r, const http_spec *sp) {
  CURL *easy = http_easy_get(r->h);
  if (easy == NULL) return -1;
  r->easy = easy;
  curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)r);
  curl_easy_setopt(easy, CURLOPT_URL, sp->url);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L); /* the caller's path, byte for byte */
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, http_closesocket_cb);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, r->h);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, http_write_cb);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, http_header_cb);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, r->hdrs);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)r->timeout);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)sp->ctimeout);
  curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
  if (sp->user) curl_easy_setopt(easy, CURLOPT_USERNAME, sp->user);
  if (sp->password) curl_easy_setopt(easy, CURLOPT_PASSWORD, sp->password);
  if (sp->user || sp->password) curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
  if (sp->insecure) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (sp->cainfo) curl_easy_setopt(easy, CURLOPT_CAINFO, sp->cainfo);

  if (strcmp(sp->method, "GET") == 0 && sp->body == NULL) {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(sp->method, "HEAD") == 0 && sp->body == NULL) {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else {
    /* every other verb (and GET/HEAD with a body) sends a body, possibly
     * empty, so that Content-Length: 0 goes out for a bodiless POST */
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)sp->body_len);
    if (curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, sp->body ? sp->body : "") != CURLE_OK) return -1;
    if (strcmp(sp->method, "POST") != 0) curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, sp->method);
  }
  return 0;
}

static int http_request(lua_State *L) {
  http_ctx *h = http_ctx_get(L);
  http_spec sp;
  size_t url_len;
  long long timeout, max_body;
  int has_ctype, raw_headers;
  const char *err;
  struct curl_slist *hdrs, *nl;
  http_req *r, **slot;

  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  memset(&sp, 0, sizeof sp);
  sp.url = http_opt_str(L, 1, "url", &url_len);
  if (sp.url == NULL) return luaL_error(L, "http_request: opts.url is required");
  if (http_has_crlf(sp.url, url_len)) return luaL_error(L, "http_request: opts.url contains CR, LF or NUL");
  sp.method = http_opt_str(L, 1, "method", NULL);
  if (sp.method == NULL) sp.method = "GET";
  if (!http_is_token(sp.method)) return luaL_error(L, "http_request: invalid method '%s'", sp.method);
  sp.body = http_opt_str(L, 1, "body", &sp.body_len);
  sp.user = http_opt_str(L, 1, "user", NULL);
  sp.password = http_opt_str(L, 1, "password", NULL);
  sp.cainfo = http_opt_str(L, 1, "cainfo", NULL);
  http_opt_int(L, 1, "timeout", HTTP_DEFAULT_TIMEOUT, &timeout);
  http_opt_int(L, 1, "connect_timeout", HTTP_DEFAULT_CONNECT_TIMEOUT, &sp.ctimeout);
  http_opt_int(L, 1, "max_body", HTTP_DEFAULT_MAX_BODY, &max_body);
  lua_getfield(L, 1, "insecure");
  sp.insecure = lua_toboolean(L, -1);
  lua_getfield(L, 1, "raw_headers");
  raw_headers = lua_toboolean(L, -1);
  lua_pop(L, 2);

  /* the userdata first: nothing is allocated yet if this raises */
  slot = (http_req **)lua_newuserdatauv(L, sizeof *slot, 0);
  *slot = NULL;
  luaL_setmetatable(L, HTTP_REQ_MT);

  hdrs = http_headers(L, 1, &has_ctype, &err);
  if (err) return luaL_error(L, "http_request: %s", err);
  /* no "Expect: 100-continue" round trip for request bodies */
  nl = curl_slist_append(hdrs, "Expect:");
  if (nl) hdrs = nl;
  if (!has_ctype && (sp.body == NULL || sp.body_len == 0)) {
    nl = curl_slist_append(hdrs, "Content-Type:");
    if (nl) hdrs = nl;
  }

  r = calloc(1, sizeof *r);
  if (r == NULL) {
    curl_slist_free_all(hdrs);
    return luaL_error(L, "http_request: out of memory");
  }
  r->h = h;
  r->hdrs = hdrs;
  r->raw_headers = raw_headers;
  r->max_body = max_body;
  r->cb_ref = LUA_NOREF;
  r->self_ref = LUA_NOREF;
  r->timeout = timeout;
  if (timeout > 0) r->deadline = uv_now(&h->c->uv) + (uint64_t)timeout;
  r->host = http_host_get(h, sp.url);
  if (r->host == NULL) {
    curl_slist_free_all(hdrs);
    free(r);
    return luaL_error(L, "http_request: out of memory");
  }
  if (r->host->qhead == NULL && http_can_start(h, r->host)) {
    if (http_start(r, &sp) != CURLE_OK) {
      char why[CURL_ERROR_SIZE];
      snprintf(why, sizeof why, "%s", r->errbuf);
      curl_slist_free_all(hdrs);
      if (r->easy) http_easy_put(h, r->easy);
      free(r);
      return luaL_error(L, "http_request: %s", why);
    }
  } else {
    r->spec = http_spec_copy(&sp);
    if (r->spec == NULL) {
      curl_slist_free_all(hdrs);
      free(r);
      return luaL_error(L, "http_request: out of memory");
    }
    http_enqueue(r);
  }
  *slot = r;
  r->slot = slot;
  r->cb_ref = core_ref(L, 2);
  r->self_ref = core_ref(L, -1);
  http_link(r);
  return 1;
}

/* core.http_parse_headers(block) -> { lower-case name = value }: a header
   block returned with opts.raw_headers, as a table. */
static int http_parse_headers(lua_State *L) {
  size_t len;
  const char *p = luaL_checklstring(L, 1, &len);
  http_push_headers(L, p, len);
  return 1;
}

static int http_req_cancel(lua_State *L) {
  http_req **slot = (http_req **)luaL_checkudata(L, 1, HTTP_REQ_MT);
  http_req *r = *slot;
  if (r != NULL) {
    core_loop *c = r->h->c;
    http_ctx *h = r->h;
    int cb = http_finish(r); /* clears *slot */
    core_unref(c, cb);
    if (h->queued > 0) http_pump(h);
    lua_pushboolean(L, 1);
  } else {
    lua_pushboolean(L, 0);
  }
  return 1;
}

static int http_req_active(lua_State *L) {
  http_req **slot = (http_req **)luaL_checkudata(L, 1, HTTP_REQ_MT);
  lua_pushboolean(L, *slot != NULL);
  return 1;
}

static int http_req_gc(lua_State *L) {
  http_req **slot = (http_req **)luaL_checkudata(L, 1, HTTP_REQ_MT);
  /* only reached while in flight at lua_close: detach, the shutdown hook
   * frees the request */
  if (*slot != NULL) {
    (*slot)->slot = NULL;
    *slot = NULL;
  }
  return 0;
}

static int http_config(lua_State *L) {
  http_ctx *h = http_ctx_get(L);
  long long v;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "max_host_connections");
  if (!lua_isnil(L, -1)) {
    v = (long long)luaL_checkinteger(L, -1);
    if (v < 0) return luaL_error(L, "http_config: max_host_connections must not be negative");
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)v);
    h->max_host = (long)v;
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "max_total_connections");
  if (!lua_isnil(L, -1)) {
    v = (long long)luaL_checkinteger(L, -1);
    if (v < 0) return luaL_error(L, "http_config: max_total_connections must not be negative");
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)v);
    h->max_total = (long)v;
  }
  lua_pop(L, 1);
  http_pump(h); /* a raised limit lets queued requests go */
  return 0;
}

static int http_stats(lua_State *L) {
  http_ctx *h = http_ctx_get(L);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, h->in_flight);
  lua_setfield(L, -2, "in_flight");
  lua_pushinteger(L, h->active);
  lua_setfield(L, -2, "active");
  lua_pushinteger(L, h->queued);
  lua_setfield(L, -2, "queued");
  lua_pushinteger(L, h->idle);
  lua_setfield(L, -2, "idle_handles");
  lua_pushboolean(L, http_pool_ok()); /* [hardening] see http_pool_ok */
  lua_setfield(L, -2, "pooling");
  return 1;
}

void http_open(lua_State *L) {
  static const luaL_Reg req_m[] = {
    {"cancel", http_req_cancel}, {"active", http_req_active}, {"__gc", http_req_gc}, {NULL, NULL}};
  static const luaL_Reg fns[] = {
    {"http_request", http_request}, {"http_config", http_config}, {"http_stats", http_stats},
    {"http_parse_headers", http_parse_headers},
    {NULL, NULL}};
  core_loop *c = core_get(L);

  if (luaL_newmetatable(L, HTTP_REQ_MT)) {
    luaL_setfuncs(L, req_m, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);

  lua_getfield(L, LUA_REGISTRYINDEX, HTTP_CTX_KEY);
  if (lua_isnil(L, -1)) {
    http_ctx *h;
    if (!http_global_done) {
      if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) luaL_error(L, "ari.core.http: curl_global_init failed");
      http_global_done = 1;
    }
    h = calloc(1, sizeof *h);
    if (h == NULL) luaL_error(L, "ari.core.http: out of memory");
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
      free(h);
      luaL_error(L, "ari.core.http: curl_multi_init failed");
    }
    h->c = c;
    uv_timer_init(&c->uv, &h->timer);
    uv_timer_init(&c->uv, &h->keep);
    uv_timer_init(&c->uv, &h->qtimer);
    h->timer.data = h;
    h->keep.data = h;
    h->qtimer.data = h;
    uv_unref((uv_handle_t *)&h->timer);
    uv_unref((uv_handle_t *)&h->qtimer);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, http_socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 32L);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 256L);
    h->max_host = 32;
    h->max_total = 256;
    lua_pushlightuserdata(L, h);
    lua_setfield(L, LUA_REGISTRYINDEX, HTTP_CTX_KEY);
    core_on_shutdown(c, http_shutdown, h);
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
