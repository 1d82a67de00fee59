/* http_curl.c - libcurl's multi-socket API on the shared libuv loop: the
 * transfers behind core.http_request (http.c is its Lua face).
 *
 * One curl multi handle per loop.  curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION -> one uv_poll per socket) and when to call it
 * back (CURLMOPT_TIMERFUNCTION -> one uv_timer); libuv reports readiness and
 * we hand it to curl_multi_socket_action, then collect finished transfers
 * with curl_multi_info_read and hand them to http_complete (http.c).
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
 * Ownership: a request (http_req) is malloc'd by http.c, owned by the
 * in-flight list until it completes or is cancelled, then freed at once by
 * http_finish.  The context (http_ctx) is made by http_ctx_new and freed by
 * the last close callback of its three timers, closed in the shutdown hook.
 * No Lua values are made here.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HTTP_MAX_IDLE_HANDLES 64
#define HTTP_KEEP_MS (3600u * 1000u)

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

static int http_global_done = 0;

static void http_qtimer_cb(uv_timer_t *t);
static int http_closesocket_cb(void *clientp, curl_socket_t fd);

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
int http_pool_ok(void) {
  static int ok = -1;
  if (ok < 0) ok = curl_version_info(CURLVERSION_NOW)->version_num >= 0x080300;
  return ok;
}

void http_easy_put(http_ctx *h, CURL *easy) {
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

void http_link(http_req *r) {
  http_ctx *h = r->h;
  r->prev = NULL;
  r->next = h->reqs;
  if (h->reqs) h->reqs->prev = r;
  h->reqs = r;
  if (h->in_flight++ == 0 && !h->closing) uv_timer_start(&h->keep, http_keep_cb, HTTP_KEEP_MS, HTTP_KEEP_MS);
}

/* The connection-pool key of a url: scheme://authority, lower-cased. */
http_host *http_host_get(http_ctx *h, const char *url) {
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

int http_can_start(http_ctx *h, http_host *x) {
  return (h->max_total <= 0 || h->active < h->max_total) && (h->max_host <= 0 || x->active < h->max_host);
}

void http_enqueue(http_req *r) {
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

/* ---------------------------------------------------------------- transfers */

/* curl's write and header callbacks: the body and the header block into
 * the request's bufs, bounded by max_body and 1 MB. */
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

http_spec *http_spec_copy(const http_spec *sp) {
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



/* Hand the request to curl with what is left of its total timeout; its
 * easy handle is made from sp (a request that never waited) or from the
 * copy kept while it was queued (see http.h). */
CURLcode http_start(http_req *r, const http_spec *sp) {
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
int http_finish(http_req *r) {
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

/* Hand queued requests to curl while the limits allow; a request whose
 * time ran out while queued (or that curl refuses) fails through its
 * callback, which may itself add or cancel requests: the queues are
 * re-read after each one. */
void http_pump(http_ctx *h) {
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

/* ---------------------------------------------------------------- setup */

http_ctx *http_ctx_new(core_loop *c, const char **err) {
  http_ctx *h;
  if (!http_global_done) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      *err = "curl_global_init failed";
      return NULL;
    }
    http_global_done = 1;
  }
  h = calloc(1, sizeof *h);
  if (h == NULL) {
    *err = "out of memory";
    return NULL;
  }
  h->multi = curl_multi_init();
  if (h->multi == NULL) {
    free(h);
    *err = "curl_multi_init failed";
    return NULL;
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
  core_on_shutdown(c, http_shutdown, h);
  return h;
}
