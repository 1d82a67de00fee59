/* fuzz_ws.c - libFuzzer target: the RFC 6455 codec (src/rfc6455.c), driven
 * directly (no sockets, no Lua).
 *
 * Input: byte 0 picks the role (bit 0: client, else server) and where the
 * stream is split for the UTF-8 check; byte 1 the message limit
 * (1 + byte * 64); the rest is the byte stream a peer sent.  Invariants:
 *   - the stream parsed frame by frame gives the same frames, and the same
 *     error, when the bytes arrive one at a time (incomplete input is only
 *     ever "need more" and changes nothing);
 *   - every frame lies inside the input; control frames are final and at
 *     most 125 bytes; a message never exceeds the limit; a completed text
 *     message and a close reason are valid UTF-8; a close code may be sent;
 *   - the frames built again (rfc6455_header, masked as the peer would) and
 *     parsed by a fresh parser come out identical;
 *   - UTF-8 validation in two pieces agrees with validation in one.
 */
#include "../../src/rfc6455.h"

#include "fuzz_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct fw_frame {
  int op, fin, msg_op, last, close_code;
  size_t len, size;
  unsigned char *data; /* copy */
} fw_frame;

typedef struct fw_run {
  fw_frame *f;
  size_t n, cap;
  int error, code;
  const char *reason;
} fw_run;

static void fw_push(fw_run *r, const rfc6455_frame *f) {
  fw_frame *x;
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 16;
    r->f = realloc(r->f, r->cap * sizeof *r->f);
    FUZZ_CHECK(r->f != NULL);
  }
  x = &r->f[r->n++];
  x->op = f->op;
  x->fin = f->fin;
  x->msg_op = f->msg_op;
  x->last = f->last;
  x->close_code = f->close_code;
  x->len = f->len;
  x->size = f->size;
  x->data = malloc(f->len + 1);
  FUZZ_CHECK(x->data != NULL);
  if (f->len) memcpy(x->data, f->data, f->len);
}

static void fw_free(fw_run *r) {
  size_t i;
  for (i = 0; i < r->n; i++) free(r->f[i].data);
  free(r->f);
}

/* Parse p[0..n) (modified in place) with every frame checked. */
static void fw_parse_all(fw_run *r, int role, size_t max, unsigned char *p, size_t n) {
  rfc6455_parser ps;
  size_t off = 0, msg = 0;
  unsigned char *text = NULL;
  size_t text_len = 0;
  rfc6455_init(&ps, role, max);
  memset(r, 0, sizeof *r);
  for (;;) {
    rfc6455_frame f;
    int rc = rfc6455_parse(&ps, p + off, n - off, &f);
    if (rc == 0) break;
    if (rc < 0) {
      r->error = 1;
      r->code = ps.code;
      r->reason = ps.reason;
      FUZZ_CHECK(ps.reason != NULL && ps.code >= 1000);
      break;
    }
    FUZZ_CHECK(rc == 1);
    FUZZ_CHECK(f.size > 0 && f.size <= n - off);
    FUZZ_CHECK(f.data >= p + off && f.data + f.len <= p + off + f.size);
    if (f.op >= 8) {
      FUZZ_CHECK(f.fin && f.len <= RFC6455_MAX_CONTROL);
      if (f.op == RFC6455_CLOSE) {
        FUZZ_CHECK(f.close_code == RFC6455_NO_STATUS ? f.len == 0 : rfc6455_close_code_ok(f.close_code));
        FUZZ_CHECK(rfc6455_utf8_valid((const unsigned char *)f.reason, f.reason_len));
      }
    } else {
      FUZZ_CHECK(f.msg_op == RFC6455_TEXT || f.msg_op == RFC6455_BINARY);
      FUZZ_CHECK(f.last == f.fin);
      msg += f.len;
      FUZZ_CHECK(msg <= max);
      if (f.msg_op == RFC6455_TEXT) {
        text = realloc(text, text_len + f.len + 1);
        FUZZ_CHECK(text != NULL);
        if (f.len) memcpy(text + text_len, f.data, f.len);
        text_len += f.len;
      }
      if (f.last) {
        if (f.msg_op == RFC6455_TEXT) FUZZ_CHECK(rfc6455_utf8_valid(text, text_len));
        msg = 0;
        text_len = 0;
      }
    }
    fw_push(r, &f);
    off += f.size;
  }
  free(text);
}

/* The same stream arriving one byte at a time. */
static void fw_parse_trickle(fw_run *r, int role, size_t max, const unsigned char *in, size_t n) {
  rfc6455_parser ps;
  unsigned char *p = malloc(n + 1);
  size_t start = 0, have = 0;
  FUZZ_CHECK(p != NULL);
  rfc6455_init(&ps, role, max);
  memset(r, 0, sizeof *r);
  while (have < n) {
    rfc6455_frame f;
    int rc;
    p[have] = in[have];
    have++;
    for (;;) {
      rc = rfc6455_parse(&ps, p + start, have - start, &f);
      if (rc != 1) break;
      fw_push(r, &f);
      start += f.size;
    }
    if (rc < 0) {
      r->error = 1;
      r->code = ps.code;
      r->reason = ps.reason;
      break;
    }
    FUZZ_CHECK(memcmp(p + start, in + start, have - start) == 0); /* "need more" left it alone */
  }
  free(p);
}

static void fw_same(const fw_run *a, const fw_run *b) {
  size_t i;
  FUZZ_CHECK(a->n == b->n);
  FUZZ_CHECK(a->error == b->error);
  if (a->error) FUZZ_CHECK(a->code == b->code && strcmp(a->reason, b->reason) == 0);
  for (i = 0; i < a->n; i++) {
    const fw_frame *x = &a->f[i], *y = &b->f[i];
    FUZZ_CHECK(x->op == y->op && x->fin == y->fin && x->msg_op == y->msg_op && x->last == y->last);
    FUZZ_CHECK(x->len == y->len && x->close_code == y->close_code);
    FUZZ_CHECK(x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  char acc[RFC6455_ACCEPT_LEN + 1], key[RFC6455_KEY_LEN + 1];
  static const unsigned char nonce[16] = "the sample nonce";
  (void)argc;
  (void)argv;
  /* RFC 6455 1.3's example */
  rfc6455_key(nonce, key);
  FUZZ_CHECK(strcmp(key, "dGhlIHNhbXBsZSBub25jZQ==") == 0);
  rfc6455_accept(key, strlen(key), acc);
  FUZZ_CHECK(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int role;
  size_t max, n, split, i;
  unsigned char *p;
  fw_run whole, trickle, again;
  buf b = BUF_INIT;
  static const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  if (size < 2) return 0;
  role = (data[0] & 1) ? RFC6455_CLIENT : RFC6455_SERVER;
  max = 1 + (size_t)data[1] * 64;
  data += 2;
  n = size - 2;

  /* UTF-8 in one piece and in two */
  split = n ? (size_t)(data[-2] >> 1) % (n + 1) : 0;
  {
    rfc6455_utf8 u;
    int ok;
    memset(&u, 0, sizeof u);
    ok = rfc6455_utf8_step(&u, data, split) == 0 && rfc6455_utf8_step(&u, data + split, n - split) == 0 &&
         rfc6455_utf8_done(&u);
    FUZZ_CHECK(ok == rfc6455_utf8_valid(data, n));
  }

  p = malloc(n + 1);
  FUZZ_CHECK(p != NULL);
  if (n) memcpy(p, data, n);
  fw_parse_all(&whole, role, max, p, n);
  free(p);
  fw_parse_trickle(&trickle, role, max, data, n);
  fw_same(&whole, &trickle);

  /* build the frames again, as the peer would (a client masks), and parse */
  for (i = 0; i < whole.n; i++) {
    const fw_frame *x = &whole.f[i];
    unsigned char h[RFC6455_MAX_HEADER];
    const unsigned char *m = role == RFC6455_SERVER ? mask : NULL;
    size_t hl = rfc6455_header(h, x->op, x->fin, x->len, m);
    FUZZ_CHECK(buf_add(&b, h, hl) == 0 && buf_add(&b, x->data, x->len) == 0);
    if (m) rfc6455_mask((unsigned char *)b.p + b.len - x->len, x->len, m, 0);
  }
  {
    static unsigned char none[1];
    fw_parse_all(&again, role, max, b.p ? (unsigned char *)b.p : none, b.len);
  }
  FUZZ_CHECK(!again.error && again.n == whole.n);
  whole.error = 0;
  fw_same(&whole, &again);
  buf_free(&b);
  fw_free(&whole);
  fw_free(&trickle);
  fw_free(&again);
  return 0;
}
