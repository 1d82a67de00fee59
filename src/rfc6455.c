/* rfc6455.c - the WebSocket protocol codec (rfc6455.h). */
#include "rfc6455.h"

#include <stdio.h>
#include <string.h>

#define RFC6455_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---------------------------------------------------------------- UTF-8 */

int rfc6455_utf8_step(rfc6455_utf8 *u, const unsigned char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char c;
    if (u->need == 0) {
      /* ASCII runs (most of a JSON text) 8 bytes at a time */
      while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull) break;
        i += 8;
      }
      if (i == n) break;
    }
    c = s[i];
    if (u->need > 0) {
      if (c < u->lo || c > u->hi) return -1;
      u->need--;
      u->lo = 0x80;
      u->hi = 0xBF;
      continue;
    }
    if (c < 0x80) continue;
    u->lo = 0x80;
    u->hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) u->need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
      u->need = 2;
      if (c == 0xE0) u->lo = 0xA0;      /* overlong */
      else if (c == 0xED) u->hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
      u->need = 3;
      if (c == 0xF0) u->lo = 0x90;      /* overlong */
      else if (c == 0xF4) u->hi = 0x8F; /* past U+10FFFF */
    } else {
      return -1;
    }
  }
  return 0;
}

int rfc6455_utf8_done(const rfc6455_utf8 *u) { return u->need == 0; }

int rfc6455_utf8_valid(const unsigned char *s, size_t n) {
  rfc6455_utf8 u = {0, 0x80, 0xBF};
  return rfc6455_utf8_step(&u, s, n) == 0 && rfc6455_utf8_done(&u);
}

/* ---------------------------------------------------------------- frames: parsing */

void rfc6455_init(rfc6455_parser *ps, int role, size_t max_message) {
  memset(ps, 0, sizeof *ps);
  ps->role = role;
  ps->max_message = max_message;
}

static int rfc6455_fail(rfc6455_parser *ps, int code, const char *reason) {
  ps->code = code;
  ps->reason = reason;
  return -1;
}

int rfc6455_close_code_ok(int code) {
  if (code >= 3000 && code <= 4999) return 1;
  return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

int rfc6455_parse(rfc6455_parser *ps, unsigned char *p, size_t n, rfc6455_frame *f) {
  size_t hl = 2, plen, room;
  uint64_t len;
  int fin, op, masked;
  if (n < 2) return 0;
  fin = (p[0] & 0x80) != 0;
  op = p[0] & 0x0f;
  masked = (p[1] & 0x80) != 0;
  if (p[0] & 0x70) return rfc6455_fail(ps, RFC6455_PROTOCOL_ERROR, "reserved bits set");
  if (ps->role == RFC6455_SERVER && !masked)
    return rfc6455_fail(ps, RFC6455_PROTOCOL_ERROR, "unmasked client frame");
  if (ps->role == RFC6455_CLIENT && masked)
    return rfc6455_fail(ps, RFC6455_PROTOCOL_ERROR, "masked server frame");
  len = p[1] & 0x7f;
  if (len == 126) {
    if (n < 4) return 0;
    len = (uint64_t)p[2] << 8 | p[3];
    hl = 4;
  } else if (len == 127) {
    int i;
    if (n < 10) return 0;
    len = 0;
    for (i = 0; i < 8; i++) len = len << 8 | p[2 + i];
    if (len >> 63) return rfc6455_fail(ps, RFC6455_PROTOCOL_ERROR, "invalid frame length");
    if (len > (uint64_t)ps->max_message) return rfc6455_fail(ps, RFC6455_TOO_BIG, "message too big");
    hl = 10;
  }
  if (op >= 8) {
    if (!fin || len > RFC6455_MAX_CONTROL) return rfc6455_fail(ps, RFC6455_PROTOCOL_ERROR, "invalid control frame");
    if (op > RFC6455_PONG) return rfc6455_fail(ps, RFC6455_PROTOCOL_ERROR, "unknown opcode");
  } else if (op == RFC6455_CONT) {
    if (!ps->frag_op) return rfc6455_fail(ps, RFC6455_PROTOCOL_ERROR, "unexpected continuation frame");
  } else if (op == RFC6455_TEXT || op == RFC6455_BINARY) {
    if (ps->frag_op) return rfc6455_fail(ps, RFC6455_PROTOCOL_ERROR, "expected continuation frame");
  } else {
    return rfc6455_fail(ps, RFC6455_PROTOCOL_ERROR, "unknown opcode");
  }
  if (op < 8) {
    room = ps->max_message - (op == RFC6455_CONT ? ps->frag_len : 0);
    if (len > (uint64_t)room) return rfc6455_fail(ps, RFC6455_TOO_BIG, "message too big");
  }
  plen = (size_t)len;
  if (masked) hl += 4;
  if (n < hl || n - hl < plen) return 0;

  memset(f, 0, sizeof *f);
  f->op = op;
  f->fin = fin;
  f->data = p + hl;
  f->len = plen;
  f->size = hl + plen;
  if (masked) rfc6455_mask(f->data, plen, p + hl - 4, 0);

  if (op == RFC6455_CLOSE) {
    f->close_code = RFC6455_NO_STATUS;
    if (plen == 1) return rfc6455_fail(ps, RFC6455_PROTOCOL_ERROR, "invalid close frame");
    if (plen >= 2) {
      f->close_code = f->data[0] << 8 | f->data[1];
      if (!rfc6455_close_code_ok(f->close_code)) return rfc6455_fail(ps, RFC6455_PROTOCOL_ERROR, "invalid close code");
      if (!rfc6455_utf8_valid(f->data + 2, plen - 2))
        return rfc6455_fail(ps, RFC6455_INVALID_DATA, "invalid close reason");
      f->reason = (const char *)f->data + 2;
      f->reason_len = plen - 2;
    } else {
      f->reason = "";
    }
    return 1;
  }
  if (op >= 8) return 1;

  /* data: a message of one or more frames */
  if (op != RFC6455_CONT) {
    ps->frag_op = op;
    ps->frag_len = 0;
    memset(&ps->utf8, 0, sizeof ps->utf8);
  }
  f->msg_op = ps->frag_op;
  f->last = fin;
  ps->frag_len += plen;
  if (f->msg_op == RFC6455_TEXT &&
      (rfc6455_utf8_step(&ps->utf8, f->data, plen) != 0 || (fin && !rfc6455_utf8_done(&ps->utf8))))
    return rfc6455_fail(ps, RFC6455_INVALID_DATA, "invalid UTF-8 in text message");
  if (fin) {
    ps->frag_op = 0;
    ps->frag_len = 0;
  }
  return 1;
}

/* ---------------------------------------------------------------- frames: building */

size_t rfc6455_header(unsigned char *out, int op, int fin, uint64_t len, const unsigned char *mask) {
  size_t hl;
  out[0] = (unsigned char)((fin ? 0x80 : 0) | (op & 0x0f));
  if (len < 126) {
    out[1] = (unsigned char)len;
    hl = 2;
  } else if (len < 65536) {
    out[1] = 126;
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)len;
    hl = 4;
  } else {
    int i;
    out[1] = 127;
    for (i = 0; i < 8; i++) out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    hl = 10;
  }
  if (mask != NULL) {
    out[1] |= 0x80;
    memcpy(out + hl, mask, 4);
    hl += 4;
  }
  return hl;
}

void rfc6455_mask(unsigned char *p, size_t n, const unsigned char mask[4], size_t offset) {
  size_t i;
  for (i = 0; i < n; i++) p[i] ^= mask[(i + offset) & 3];
}

int rfc6455_frame_add(buf *b, int op, const void *data, size_t n, const unsigned char *mask) {
  unsigned char h[RFC6455_MAX_HEADER];
  size_t hl = rfc6455_header(h, op, 1, n, mask);
  if (buf_reserve(b, hl + n) != 0) return -1;
  memcpy(b->p + b->len, h, hl);
  if (n > 0) memcpy(b->p + b->len + hl, data, n);
  if (mask != NULL) rfc6455_mask((unsigned char *)b->p + b->len + hl, n, mask, 0);
  b->len += hl + n;
  b->p[b->len] = '\0';
  return 0;
}

int rfc6455_close_add(buf *b, int code, const char *reason, size_t rl, const unsigned char *mask) {
  unsigned char p[RFC6455_MAX_CONTROL];
  if (code == RFC6455_NO_STATUS) return rfc6455_frame_add(b, RFC6455_CLOSE, "", 0, mask);
  if (rl > RFC6455_MAX_REASON) rl = RFC6455_MAX_REASON;
  p[0] = (unsigned char)(code >> 8);
  p[1] = (unsigned char)code;
  if (rl > 0) memcpy(p + 2, reason, rl);
  return rfc6455_frame_add(b, RFC6455_CLOSE, p, rl + 2, mask);
}

/* ---------------------------------------------------------------- handshake: SHA-1, base64 */

typedef struct rfc6455_sha1_ctx {
  uint32_t h[5];
  uint64_t n;
  unsigned char blk[64];
  size_t used;
} rfc6455_sha1_ctx;

static uint32_t rfc6455_rol(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static void rfc6455_sha1_block(rfc6455_sha1_ctx *s, const unsigned char *p) {
  uint32_t w[80], a, b, c, d, e, t;
  int i;
  for (i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           (uint32_t)p[4 * i + 3];
  for (i = 16; i < 80; i++) w[i] = rfc6455_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3]; e = s->h[4];
  for (i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
    else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
    else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
    else { f = b ^ c ^ d; k = 0xCA62C1D6; }
    t = rfc6455_rol(a, 5) + f + e + k + w[i];
    e = d; d = c; c = rfc6455_rol(b, 30); b = a; a = t;
  }
  s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d; s->h[4] += e;
}

static void rfc6455_sha1_add(rfc6455_sha1_ctx *s, const void *data, size_t n) {
  const unsigned char *p = (const unsigned char *)data;
  s->n += n;
  while (n > 0) {
    size_t take = 64 - s->used;
    if (take > n) take = n;
    memcpy(s->blk + s->used, p, take);
    s->used += take;
    p += take;
    n -= take;
    if (s->used == 64) {
      rfc6455_sha1_block(s, s->blk);
      s->used = 0;
    }
  }
}

static void rfc6455_sha1_init(rfc6455_sha1_ctx *s) {
  s->h[0] = 0x67452301; s->h[1] = 0xEFCDAB89; s->h[2] = 0x98BADCFE;
  s->h[3] = 0x10325476; s->h[4] = 0xC3D2E1F0;
  s->n = 0;
  s->used = 0;
}

static void rfc6455_sha1_done(rfc6455_sha1_ctx *s, unsigned char out[20]) {
  uint64_t bits = s->n * 8;
  unsigned char pad = 0x80, len[8];
  int i;
  rfc6455_sha1_add(s, &pad, 1);
  pad = 0;
  while (s->used != 56) rfc6455_sha1_add(s, &pad, 1);
  for (i = 0; i < 8; i++) len[i] = (unsigned char)(bits >> (56 - 8 * i));
  rfc6455_sha1_add(s, len, 8);
  for (i = 0; i < 20; i++) out[i] = (unsigned char)(s->h[i / 4] >> (24 - 8 * (i % 4)));
}

void rfc6455_sha1(const void *d, size_t n, unsigned char out[20]) {
  rfc6455_sha1_ctx s;
  rfc6455_sha1_init(&s);
  rfc6455_sha1_add(&s, d, n);
  rfc6455_sha1_done(&s, out);
}

size_t rfc6455_base64(const unsigned char *in, size_t n, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i, o = 0;
  for (i = 0; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = tab[v >> 18]; out[o++] = tab[(v >> 12) & 63];
    out[o++] = tab[(v >> 6) & 63]; out[o++] = tab[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = tab[v >> 18]; out[o++] = tab[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
  return o;
}

void rfc6455_key(const unsigned char nonce[16], char *out) { rfc6455_base64(nonce, 16, out); }

void rfc6455_accept(const char *key, size_t keylen, char *out) {
  rfc6455_sha1_ctx s;
  unsigned char dig[20];
  rfc6455_sha1_init(&s);
  rfc6455_sha1_add(&s, key, keylen);
  rfc6455_sha1_add(&s, RFC6455_GUID, sizeof RFC6455_GUID - 1);
  rfc6455_sha1_done(&s, dig);
  rfc6455_base64(dig, 20, out);
}

/* ---------------------------------------------------------------- handshake: the client's side */

static int rfc6455_lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Does the comma-separated list v[0..n) hold token (case-insensitive)? */
static int rfc6455_has_token(const char *v, size_t n, const char *token) {
  size_t tl = strlen(token), i = 0;
  while (i < n) {
    size_t s, e, j;
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    s = i;
    while (i < n && v[i] != ',') i++;
    e = i;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    if (e - s == tl) {
      for (j = 0; j < tl && rfc6455_lower((unsigned char)v[s + j]) == token[j]; j++) {}
      if (j == tl) return 1;
    }
  }
  return 0;
}

static int rfc6455_name_is(const char *p, size_t n, const char *name) {
  size_t i;
  if (strlen(name) != n) return 0;
  for (i = 0; i < n; i++)
    if (rfc6455_lower((unsigned char)p[i]) != name[i]) return 0;
  return 1;
}

/* The status line, printable and short, for an error message. */
static void rfc6455_status_text(const char *p, size_t n, char *out, size_t outlen) {
  size_t i, o = 0;
  for (i = 0; i < n && o + 1 < outlen && o < 100; i++)
    out[o++] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
  out[o] = '\0';
}

long rfc6455_response(const char *p, size_t n, const char *accept, const char *protocol, int *status, char *err,
                      size_t errlen) {
  size_t end = 0, i, line_end, ln;
  int have_upgrade = 0, have_conn = 0, have_accept = 0, have_proto = 0, code;
  char sl[128];
  *status = 0;
  for (i = 0; i + 3 < n; i++)
    if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
      end = i + 4;
      break;
    }
  if (end == 0) {
    if (n > RFC6455_MAX_RESPONSE) {
      snprintf(err, errlen, "HS: response headers too long");
      return -1;
    }
    if (n >= 5 && memcmp(p, "HTTP/", 5) != 0) {
      char sl[128];
      size_t e = 0;
      while (e < n && p[e] != '\r' && p[e] != '\n') e++;
      rfc6455_status_text(p, e, sl, sizeof sl);
      snprintf(err, errlen, "HS: bad status line (%s)", sl);
      return -1;
    }
    return 0;
  }
  line_end = 0;
  while (p[line_end] != '\r') line_end++;
  rfc6455_status_text(p, line_end, sl, sizeof sl);
  if (line_end < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] < '1' || p[9] > '5' ||
      p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' || (line_end > 12 && p[12] != ' ')) {
    snprintf(err, errlen, "HS: bad status line (%s)", sl);
    return -1;
  }
  code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
  *status = code;
  if (code == 401) {
    snprintf(err, errlen, "HS: ws upgrade unauthorized (%s)", sl);
    return -1;
  }
  if (code != 101) {
    snprintf(err, errlen, "HS: ws upgrade response not 101 (%s)", sl);
    return -1;
  }
  for (i = line_end + 2; i < end - 2; i = ln + 2) {
    size_t colon, vs, ve;
    for (ln = i; p[ln] != '\r'; ln++) {}
    if (p[ln + 1] != '\n') {
      snprintf(err, errlen, "HS: malformed header line");
      return -1;
    }
    for (colon = i; colon < ln && p[colon] != ':'; colon++) {}
    if (colon == ln || colon == i) {
      snprintf(err, errlen, "HS: malformed header line");
      return -1;
    }
    vs = colon + 1;
    while (vs < ln && (p[vs] == ' ' || p[vs] == '\t')) vs++;
    ve = ln;
    while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t')) ve--;
    if (rfc6455_name_is(p + i, colon - i, "upgrade")) {
      if (!rfc6455_has_token(p + vs, ve - vs, "websocket")) {
        snprintf(err, errlen, "HS: Upgrade is not websocket");
        return -1;
      }
      have_upgrade = 1;
    } else if (rfc6455_name_is(p + i, colon - i, "connection")) {
      if (rfc6455_has_token(p + vs, ve - vs, "upgrade")) have_conn = 1;
    } else if (rfc6455_name_is(p + i, colon - i, "sec-websocket-accept")) {
      if (have_accept || ve - vs != strlen(accept) || memcmp(p + vs, accept, ve - vs) != 0) {
        snprintf(err, errlen, "HS: Accept hash wrong");
        return -1;
      }
      have_accept = 1;
    } else if (rfc6455_name_is(p + i, colon - i, "sec-websocket-protocol")) {
      if (protocol == NULL || have_proto || ve - vs != strlen(protocol) || memcmp(p + vs, protocol, ve - vs) != 0) {
        snprintf(err, errlen, "HS: subprotocol not the one asked for");
        return -1;
      }
      have_proto = 1;
    } else if (rfc6455_name_is(p + i, colon - i, "sec-websocket-extensions")) {
      snprintf(err, errlen, "HS: extension not asked for");
      return -1;
    }
  }
  if (!have_upgrade) snprintf(err, errlen, "HS: UPGRADE missing");
  else if (!have_conn) snprintf(err, errlen, "HS: CONNECTION missing");
  else if (!have_accept) snprintf(err, errlen, "HS: ACCEPT missing");
  else if (protocol != NULL && !have_proto) snprintf(err, errlen, "HS: PROTOCOL missing");
  else return (long)end;
  return -1;
}
