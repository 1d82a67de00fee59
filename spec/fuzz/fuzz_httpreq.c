/* fuzz_httpreq.c - libFuzzer target: the HTTP/1.1 request parser
 * (src/httpreq.c), driven directly (no sockets, no Lua).
 *
 * Input: byte 0 sets max_header (64 + 16 * byte), byte 1 max_body
 * (64 * byte); the rest is what a client sent (leading empty lines skipped
 * as the server does).  Invariants:
 *   - a complete request lies inside the input: method, target and every
 *     header field inside the head, head and body inside the bytes parsed;
 *     its decoded body fits max_body and copies out (httpreq_body) within
 *     bounds; an error has a status the server sends and a reason;
 *   - the bytes arriving one at a time (the scan position kept between
 *     calls, as server.c does) give "need more" until exactly the point
 *     where the whole input gives its answer, and then the same answer.
 */
#include "../../src/httpreq.h"

#include "fuzz_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int fh_inside(const char *p, size_t n, const char *q, size_t len) {
  return q >= p && len <= n && (size_t)(q - p) <= n - len;
}

static void fh_check(const httpreq *r, int rc, const char *p, size_t n, const httpreq_limits *lim) {
  int i;
  if (rc == HTTPREQ_ERROR) {
    FUZZ_CHECK(r->error != NULL);
    FUZZ_CHECK(r->status == 400 || r->status == 413 || r->status == 431 || r->status == 501 || r->status == 505);
    return;
  }
  if (rc == HTTPREQ_MORE) return;
  FUZZ_CHECK(rc == HTTPREQ_DONE);
  FUZZ_CHECK(r->head_len > 0 && r->head_len <= lim->max_header && r->head_len <= n);
  FUZZ_CHECK(r->body_used <= n - r->head_len);
  FUZZ_CHECK(r->body_len <= lim->max_body);
  FUZZ_CHECK(r->chunked || r->body_len == r->body_used);
  FUZZ_CHECK(r->mlen > 0 && fh_inside(p, r->head_len, r->method, r->mlen));
  FUZZ_CHECK(r->tlen > 0 && fh_inside(p, r->head_len, r->target, r->tlen));
  FUZZ_CHECK(r->nh >= 0 && r->nh <= HTTPREQ_MAX_HEADERS);
  for (i = 0; i < r->nh; i++) {
    FUZZ_CHECK(r->hdr[i].nlen > 0 && fh_inside(p, r->head_len, r->hdr[i].name, r->hdr[i].nlen));
    FUZZ_CHECK(fh_inside(p, r->head_len, r->hdr[i].value, r->hdr[i].vlen));
  }
  if (r->websocket) FUZZ_CHECK(r->ws_key != NULL && r->ws_keylen >= 16 && r->ws_keylen < 64);
  {
    char *body = malloc(r->body_len + 1);
    FUZZ_CHECK(body != NULL);
    httpreq_body(r, p, body);
    if (!r->chunked && r->body_len > 0) FUZZ_CHECK(memcmp(body, p + r->head_len, r->body_len) == 0);
    free(body);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static httpreq whole, part; /* large (the header array): not on the stack */
  httpreq_limits lim;
  const char *p;
  size_t n, skip, scan = 0, k;
  int rc;
  if (size < 2) return 0;
  lim.max_header = 64 + (size_t)data[0] * 16;
  lim.max_body = (size_t)data[1] * 64;
  p = (const char *)data + 2;
  n = size - 2;
  skip = httpreq_skip(p, n);
  FUZZ_CHECK(skip <= n);
  p += skip;
  n -= skip;

  rc = httpreq_parse(&whole, p, n, &scan, &lim);
  fh_check(&whole, rc, p, n, &lim);
  if (n > 4096) return 0; /* the byte-at-a-time pass is quadratic */

  scan = 0;
  for (k = 1; k <= n; k++) {
    char *copy = malloc(k); /* exactly k bytes: ASan sees any read past the end */
    int rk;
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, p, k);
    rk = httpreq_parse(&part, copy, k, &scan, &lim);
    fh_check(&part, rk, copy, k, &lim);
    if (rk != HTTPREQ_MORE) {
      FUZZ_CHECK(rk == rc);
      if (rk == HTTPREQ_ERROR) FUZZ_CHECK(part.status == whole.status);
      else FUZZ_CHECK(part.head_len == whole.head_len && part.body_used == whole.body_used &&
                    part.body_len == whole.body_len && k == whole.head_len + whole.body_used);
      free(copy);
      return 0;
    }
    free(copy);
  }
  FUZZ_CHECK(rc == HTTPREQ_MORE);
  return 0;
}
