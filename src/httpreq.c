/* httpreq.c - the HTTP/1.1 request parser (httpreq.h). */
#include "httpreq.h"

#include <string.h>
#include <strings.h>

const char *httpreq_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: break;
  }
  if (status < 200) return "Informational";
  if (status < 300) return "Success";
  if (status < 400) return "Redirection";
  if (status < 500) return "Client Error";
  return "Server Error";
}

int httpreq_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return 1;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int httpreq_has_token(const char *v, size_t n, const char *tok) {
  size_t tl = strlen(tok), i = 0;
  while (i < n) {
    size_t a, b;
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    a = i;
    while (i < n && v[i] != ',') i++;
    b = i;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
    if (b - a == tl && strncasecmp(v + a, tok, tl) == 0) return 1;
  }
  return 0;
}

size_t httpreq_skip(const char *p, size_t n) {
  size_t i = 0;
  while (i < n && (p[i] == '\r' || p[i] == '\n')) i++;
  return i;
}

static int httpreq_fail(httpreq *r, int status, const char *why) {
  r->status = status;
  r->error = why;
  return HTTPREQ_ERROR;
}

/* Chunked body at p[0..n).  Returns 1 complete (sets *body_len, *used),
 * 0 incomplete, -1 malformed, -2 too large.  With out, copies the data. */
static int httpreq_chunked(const char *p, size_t n, size_t max, char *out, size_t *body_len, size_t *used) {
  size_t i = 0, total = 0;
  for (;;) {
    size_t size = 0, digits = 0;
    while (i < n) {
      char ch = p[i];
      int v;
      if (ch >= '0' && ch <= '9') v = ch - '0';
      else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f') v = (ch | 0x20) - 'a' + 10;
      else break;
      if (size > (((size_t)-1) >> 4)) return -2;
      size = size * 16 + (size_t)v;
      digits++;
      i++;
    }
    if (i >= n) return 0;
    if (digits == 0) return -1;
    /* chunk extensions: skip to CRLF */
    while (i < n && p[i] != '\r' && p[i] != '\n') {
      if (p[i] != ';' && p[i] != ' ' && p[i] != '\t' && p[i] != '=' && p[i] != '"' &&
          !httpreq_tchar((unsigned char)p[i]))
        return -1;
      i++;
    }
    if (i + 2 > n) return 0;
    if (p[i] != '\r' || p[i + 1] != '\n') return -1;
    i += 2;
    if (size == 0) break;
    if (size > max || total + size > max) return -2;
    if (n - i < size + 2) return 0;
    if (p[i + size] != '\r' || p[i + size + 1] != '\n') return -1;
    if (out) memcpy(out + total, p + i, size);
    total += size;
    i += size + 2;
  }
  /* trailer fields up to an empty line */
  for (;;) {
    size_t j = i;
    while (j < n && p[j] != '\n') j++;
    if (j >= n) return 0;
    if (j == i || p[j - 1] != '\r') return -1;
    if (j == i + 1) {
      i = j + 1;
      break;
    }
    i = j + 1;
  }
  *body_len = total;
  *used = i;
  return 1;
}

/* The end of the head (after CRLF CRLF) in p[0..n), or NULL; *scan as in httpreq_parse. */
static const char *httpreq_head_end(const char *p, size_t n, size_t *scan) {
  size_t i = *scan > 3 ? *scan - 3 : 0;
  while (i < n) {
    const char *nl = memchr(p + i, '\n', n - i);
    if (nl == NULL) break;
    i = (size_t)(nl - p);
    if (i >= 3 && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r') return p + i + 1;
    i++;
  }
  *scan = n;
  return NULL;
}

/* Request line and header fields of the head p[0..r->head_len). */
static int httpreq_head(httpreq *r, const char *p) {
  const char *end = p + r->head_len, *line, *v;
  size_t ml, tl;
  r->method = p;
  for (ml = 0; ml < r->head_len && httpreq_tchar((unsigned char)p[ml]); ml++) {}
  if (ml == 0 || p[ml] != ' ') return httpreq_fail(r, 400, "malformed request line");
  r->mlen = ml;
  r->target = p + ml + 1;
  for (tl = 0; r->target + tl < end && (unsigned char)r->target[tl] > 0x20 && r->target[tl] != 0x7f; tl++) {}
  if (tl == 0 || r->target[tl] != ' ') return httpreq_fail(r, 400, "malformed request target");
  r->tlen = tl;
  v = r->target + tl + 1;
  if ((size_t)(end - v) < 10 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[8] != '\r' || v[9] != '\n' ||
      v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
    return httpreq_fail(r, 400, "malformed request line");
  if (v[5] != '1') return httpreq_fail(r, 505, "only HTTP/1.x is supported");
  r->minor = v[7] != '0';

  line = v + 10;
  while (line < end - 2) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    const char *colon, *vs, *ve;
    size_t j;
    if (eol == NULL || eol == line || eol[-1] != '\r') return httpreq_fail(r, 400, "malformed header line");
    if (line[0] == ' ' || line[0] == '\t') return httpreq_fail(r, 400, "obsolete line folding");
    colon = memchr(line, ':', (size_t)(eol - line));
    if (colon == NULL || colon == line) return httpreq_fail(r, 400, "malformed header field");
    for (j = 0; line + j < colon; j++)
      if (!httpreq_tchar((unsigned char)line[j])) return httpreq_fail(r, 400, "invalid header name");
    vs = colon + 1;
    ve = eol - 1;
    while (vs < ve && (*vs == ' ' || *vs == '\t')) vs++;
    while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    for (j = 0; vs + j < ve; j++) {
      unsigned char ch = (unsigned char)vs[j];
      if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return httpreq_fail(r, 400, "invalid header value");
    }
    if (r->nh == HTTPREQ_MAX_HEADERS) return httpreq_fail(r, 431, "too many header fields");
    r->hdr[r->nh].name = line;
    r->hdr[r->nh].nlen = (size_t)(colon - line);
    r->hdr[r->nh].value = vs;
    r->hdr[r->nh].vlen = (size_t)(ve - vs);
    r->nh++;
    line = eol + 1;
  }
  return HTTPREQ_DONE;
}

/* The fields that matter to the framing and the connection. */
static int httpreq_fields(httpreq *r, const httpreq_limits *lim, int *have_cl, size_t *cl) {
  int conn_close = 0, conn_upgrade = 0, upgrade_ws = 0, ws_version = 0, i;
  for (i = 0; i < r->nh; i++) {
    const char *hn = r->hdr[i].name, *hv = r->hdr[i].value;
    size_t hl = r->hdr[i].nlen, vl = r->hdr[i].vlen;
#define HTTPREQ_IS(lit) (hl == sizeof(lit) - 1 && strncasecmp(hn, lit, hl) == 0)
    if (HTTPREQ_IS("content-length")) {
      size_t val = 0, j;
      if (vl == 0) return httpreq_fail(r, 400, "invalid Content-Length");
      for (j = 0; j < vl; j++) {
        if (hv[j] < '0' || hv[j] > '9') return httpreq_fail(r, 400, "invalid Content-Length");
        if (val > (((size_t)-1) - 9) / 10) return httpreq_fail(r, 413, "request body too large");
        val = val * 10 + (size_t)(hv[j] - '0');
      }
      if (*have_cl && val != *cl) return httpreq_fail(r, 400, "conflicting Content-Length");
      *have_cl = 1;
      *cl = val;
    } else if (HTTPREQ_IS("transfer-encoding")) {
      if (vl == 7 && strncasecmp(hv, "chunked", 7) == 0 && !r->chunked) r->chunked = 1;
      else return httpreq_fail(r, 501, "unsupported Transfer-Encoding (only chunked)");
    } else if (HTTPREQ_IS("connection")) {
      if (httpreq_has_token(hv, vl, "close")) conn_close = 1;
      if (httpreq_has_token(hv, vl, "keep-alive")) conn_close = conn_close ? 1 : 2;
      if (httpreq_has_token(hv, vl, "upgrade")) conn_upgrade = 1;
    } else if (HTTPREQ_IS("expect")) {
      if (vl == 12 && strncasecmp(hv, "100-continue", 12) == 0) r->expect_continue = r->minor;
    } else if (HTTPREQ_IS("upgrade")) {
      if (httpreq_has_token(hv, vl, "websocket")) upgrade_ws = 1;
    } else if (HTTPREQ_IS("sec-websocket-key")) {
      r->ws_key = hv;
      r->ws_keylen = vl;
    } else if (HTTPREQ_IS("sec-websocket-version")) {
      ws_version = vl == 2 && memcmp(hv, "13", 2) == 0;
    }
#undef HTTPREQ_IS
  }
  if (r->chunked && *have_cl) return httpreq_fail(r, 400, "both Content-Length and Transfer-Encoding");
  if (*have_cl && *cl > lim->max_body) return httpreq_fail(r, 413, "request body too large");
  r->keepalive = r->minor ? conn_close != 1 : conn_close == 2;
  r->head = r->mlen == 4 && memcmp(r->method, "HEAD", 4) == 0;
  r->websocket = r->minor && r->mlen == 3 && memcmp(r->method, "GET", 3) == 0 && upgrade_ws && conn_upgrade &&
                 ws_version && r->ws_key != NULL && r->ws_keylen >= 16 && r->ws_keylen < 64;
  return HTTPREQ_DONE;
}

int httpreq_parse(httpreq *r, const char *p, size_t n, size_t *scan, const httpreq_limits *lim) {
  const char *end;
  size_t cl = 0;
  int have_cl = 0;
  r->nh = 0;
  r->head_len = r->body_len = r->body_used = 0;
  r->chunked = r->keepalive = r->expect_continue = r->head = r->websocket = 0;
  r->ws_key = NULL;
  r->ws_keylen = 0;
  r->status = 0;
  r->error = NULL;
  if (n == 0) return HTTPREQ_MORE;
  end = httpreq_head_end(p, n, scan);
  if (end == NULL) {
    if (n > lim->max_header) return httpreq_fail(r, 431, "request header too large");
    return HTTPREQ_MORE;
  }
  r->head_len = (size_t)(end - p);
  if (r->head_len > lim->max_header) return httpreq_fail(r, 431, "request header too large");
  if (httpreq_head(r, p) != HTTPREQ_DONE) return HTTPREQ_ERROR;
  if (httpreq_fields(r, lim, &have_cl, &cl) != HTTPREQ_DONE) return HTTPREQ_ERROR;

  if (r->chunked) {
    int rc = httpreq_chunked(p + r->head_len, n - r->head_len, lim->max_body, NULL, &r->body_len, &r->body_used);
    if (rc == -1) return httpreq_fail(r, 400, "malformed chunked body");
    if (rc == -2) return httpreq_fail(r, 413, "request body too large");
    if (rc == 0) {
      if (n - r->head_len > lim->max_body + 64 * 1024 + lim->max_header)
        return httpreq_fail(r, 413, "request body too large");
      *scan = 0;
      return HTTPREQ_MORE;
    }
  } else if (have_cl) {
    if (n - r->head_len < cl) {
      *scan = 0;
      return HTTPREQ_MORE;
    }
    r->body_len = r->body_used = cl;
  }
  *scan = 0;
  return HTTPREQ_DONE;
}

void httpreq_body(const httpreq *r, const char *p, char *out) {
  size_t len, used;
  if (r->body_len == 0) return;
  if (r->chunked) httpreq_chunked(p + r->head_len, r->body_used, (size_t)-1, out, &len, &used);
  else memcpy(out, p + r->head_len, r->body_len);
}
