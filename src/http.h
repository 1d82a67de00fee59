/* http.h - what http.c (the Lua face: core.http_request's options, the
 * request class, results and errors into Lua, http_config/http_stats) and
 * http_curl.c (libcurl's multi-socket API on the libuv loop: the easy
 * handle pool, the per-host queue, sockets and timers, teardown) share.
 * Internal to those two files.
 */
#ifndef ARI_HTTP_H
#define ARI_HTTP_H

#include "core.h"
#include "buf.h"

#include <curl/curl.h>

typedef struct http_ctx http_ctx;
typedef struct http_host http_host;

/* One request, from core.http_request until it completes or is cancelled
 * (http_finish frees it). */
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
  struct http_sock *socks;
  struct http_easy *free_easy;
};

/* ---------------------------------------------------------------- http_curl.c */

/* The loop's context: the multi handle, its timers, the shutdown hook that
 * frees it.  NULL with *err set on failure. */
http_ctx *http_ctx_new(core_loop *c, const char **err);

/* Whether easy handles are reused on this libcurl ([hardening], see there). */
int http_pool_ok(void);
void http_easy_put(http_ctx *h, CURL *easy);

/* The host entry of a url (scheme://authority), made at first use; NULL
 * when out of memory. */
http_host *http_host_get(http_ctx *h, const char *url);
/* The connection limits leave room for one more transfer to x. */
int http_can_start(http_ctx *h, http_host *x);

/* Hand r to curl now (its easy handle made from sp, or from r->spec when
 * it waited): CURLE_OK, CURLE_OPERATION_TIMEDOUT (its time ran out) or
 * CURLE_OUT_OF_MEMORY (r->errbuf says why). */
CURLcode http_start(http_req *r, const http_spec *sp);
/* A copy of sp in one allocation (strings inline), or NULL. */
http_spec *http_spec_copy(const http_spec *sp);
/* Put r at the end of its host's queue (r->spec already set). */
void http_enqueue(http_req *r);
/* Add r to the in-flight list (the loop stays alive while it is not empty). */
void http_link(http_req *r);
/* Take r out of curl, its queue and the in-flight list and free it; returns
 * its callback reference, which the caller now owns. */
int http_finish(http_req *r);
/* Start queued requests while the limits allow. */
void http_pump(http_ctx *h);

/* ---------------------------------------------------------------- http.c */

/* A transfer ended (or failed to start): call r's callback through
 * core_call with the response or the error, and finish r. */
void http_complete(http_ctx *h, http_req *r, CURLcode rc);

#endif
