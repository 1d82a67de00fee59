/* httpreq.h - the HTTP/1.1 request parser of the server (RFC 9112): no
 * sockets, no Lua.
 *
 * httpreq_parse reads one request from the start of a byte buffer: the
 * request line, the header fields (pointers into the buffer), the framing
 * (Content-Length or chunked) and what the server needs to know about the
 * connection (keep-alive, Expect: 100-continue, a WebSocket upgrade).  The
 * body stays in the buffer; httpreq_body copies it out decoded.
 */
#ifndef ARI_HTTPREQ_H
#define ARI_HTTPREQ_H

#include <stddef.h>

#define HTTPREQ_MAX_HEADERS 256

enum { HTTPREQ_ERROR = -1, HTTPREQ_MORE = 0, HTTPREQ_DONE = 1 };

typedef struct httpreq_hdr {
  const char *name, *value; /* as received (name not lower-cased) */
  size_t nlen, vlen;
} httpreq_hdr;

typedef struct httpreq_limits {
  size_t max_header;   /* request line and header fields */
  size_t max_body;     /* decoded body */
} httpreq_limits;

typedef struct httpreq {
  /* request line */
  const char *method, *target;
  size_t mlen, tlen;
  int minor;               /* HTTP/1.minor */
  /* header fields */
  httpreq_hdr hdr[HTTPREQ_MAX_HEADERS];
  int nh;
  size_t head_len;         /* the head, empty line included (0: not complete) */
  /* framing */
  int chunked;
  size_t body_len;         /* decoded body */
  size_t body_used;        /* bytes of the body as sent */
  /* the connection */
  int keepalive;           /* the connection persists after this request */
  int expect_continue;     /* Expect: 100-continue (HTTP/1.1) */
  int head;                /* method HEAD: the response has no body */
  int websocket;           /* a valid RFC 6455 upgrade request */
  const char *ws_key;      /* its Sec-WebSocket-Key */
  size_t ws_keylen;
  /* HTTPREQ_ERROR */
  int status;              /* the response status (400, 413, 431, 501, 505) */
  const char *error;       /* why (static text) */
} httpreq;

/* Leading empty lines (ignored before a request, RFC 9112 2.2): how many
 * bytes of p[0..n) are CR or LF. */
size_t httpreq_skip(const char *p, size_t n);

/* Parse the request at p[0..n).  *scan (0 for a new request) remembers how
 * far the end of the head was searched for, across calls with more data.
 * HTTPREQ_DONE: r describes a whole request of r->head_len + r->body_used
 * bytes.  HTTPREQ_MORE: more bytes are needed (r->head_len is set once the
 * head is complete, r->expect_continue then tells whether the client waits
 * for 100 Continue).  HTTPREQ_ERROR: r->status and r->error. */
int httpreq_parse(httpreq *r, const char *p, size_t n, size_t *scan, const httpreq_limits *lim);

/* Copy the decoded body (r->body_len bytes) of a parsed request from its
 * buffer p into out. */
void httpreq_body(const httpreq *r, const char *p, char *out);

/* The standard reason phrase of a status code (or its class's). */
const char *httpreq_reason(int status);

/* Is c a token character (RFC 9110 tchar)? */
int httpreq_tchar(unsigned char c);

/* Does the comma-separated list v[0..n) contain tok (case-insensitive)? */
int httpreq_has_token(const char *v, size_t n, const char *tok);

#endif
