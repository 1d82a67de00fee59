/* rfc6455.h - the WebSocket protocol (RFC 6455) as a codec: no sockets, no
 * Lua, no libuv.
 *
 *   - frames: incremental parsing of a byte buffer (rfc6455_parse), with the
 *     protocol's rules (masking by role, control frames, fragmentation,
 *     close payloads, UTF-8 of text messages, checked as frames arrive) and
 *     a message size limit; building (rfc6455_header, rfc6455_frame_add,
 *     rfc6455_close_add) and masking;
 *   - the opening handshake: Sec-WebSocket-Key from a nonce and the
 *     Sec-WebSocket-Accept value for a key (SHA-1 and base64 included);
 *   - close codes and UTF-8 validation on their own.
 *
 * server.c uses it with RFC6455_SERVER; a client uses RFC6455_CLIENT (it
 * masks what it sends and refuses masked frames).  spec/fuzz/fuzz_ws.c
 * drives the parser directly.
 */
#ifndef ARI_RFC6455_H
#define ARI_RFC6455_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

enum rfc6455_op {
  RFC6455_CONT = 0, RFC6455_TEXT = 1, RFC6455_BINARY = 2,
  RFC6455_CLOSE = 8, RFC6455_PING = 9, RFC6455_PONG = 10
};

enum rfc6455_role { RFC6455_SERVER = 0, RFC6455_CLIENT = 1 };

/* Close codes this code sends itself. */
#define RFC6455_NORMAL 1000
#define RFC6455_GOING_AWAY 1001
#define RFC6455_PROTOCOL_ERROR 1002
#define RFC6455_NO_STATUS 1005   /* never on the wire: an empty close payload */
#define RFC6455_ABNORMAL 1006    /* never on the wire: no close frame at all */
#define RFC6455_INVALID_DATA 1007
#define RFC6455_TOO_BIG 1009
#define RFC6455_INTERNAL_ERROR 1011

#define RFC6455_MAX_CONTROL 125  /* payload of a control frame */
#define RFC6455_MAX_REASON 123   /* close reason: a control payload less the code */
#define RFC6455_MAX_HEADER 14    /* 2 + 8 (length) + 4 (mask) */
#define RFC6455_KEY_LEN 24       /* base64 of a 16-byte nonce */
#define RFC6455_ACCEPT_LEN 28    /* base64 of a SHA-1 digest */

/* Incremental UTF-8 validation across fragments. */
typedef struct rfc6455_utf8 {
  unsigned char need;    /* continuation bytes still expected */
  unsigned char lo, hi;  /* range of the next continuation byte */
} rfc6455_utf8;

typedef struct rfc6455_parser {
  int role;              /* enum rfc6455_role: what this end is */
  size_t max_message;    /* largest message payload (all its fragments) */
  int frag_op;           /* TEXT/BINARY while a fragmented message is open */
  size_t frag_len;       /* payload of that message so far */
  rfc6455_utf8 utf8;     /* of the text message being received */
  int code;              /* after an error: the close code to send */
  const char *reason;    /* after an error: why (static text) */
} rfc6455_parser;

typedef struct rfc6455_frame {
  int op;                /* enum rfc6455_op of this frame */
  int fin;
  int msg_op;            /* data frames: TEXT or BINARY (of the message) */
  int last;              /* data frames: this frame completes the message */
  unsigned char *data;   /* the payload, unmasked in place */
  size_t len;
  size_t size;           /* bytes of the input this frame used */
  int close_code;        /* CLOSE: the code (RFC6455_NO_STATUS if none) */
  const char *reason;    /* CLOSE: the reason (valid UTF-8), in data */
  size_t reason_len;
} rfc6455_frame;

void rfc6455_init(rfc6455_parser *ps, int role, size_t max_message);

/* Parse the frame at the start of p[0..n).  Returns 1 for one frame (f is
 * filled, its payload unmasked in place; the caller consumes f->size
 * bytes), 0 when the frame is not complete yet (p is left as it was; a
 * frame that can never be accepted is refused as soon as its header is
 * there), -1 for a protocol violation: ps->code and ps->reason say how to
 * close, and the stream cannot go on. */
int rfc6455_parse(rfc6455_parser *ps, unsigned char *p, size_t n, rfc6455_frame *f);

/* Write the header of a frame (the last of its message when fin) with a
 * payload of len bytes into out (RFC6455_MAX_HEADER bytes); mask: NULL for an unmasked frame (a
 * server's), else the 4 masking bytes (the caller masks the payload).
 * Returns the header's length. */
size_t rfc6455_header(unsigned char *out, int op, int fin, uint64_t len, const unsigned char *mask);

/* XOR p[0..n) with the mask, as bytes offset.. of a payload. */
void rfc6455_mask(unsigned char *p, size_t n, const unsigned char mask[4], size_t offset);

/* Append one whole frame (FIN set) to b, masked when mask is not NULL.
 * Returns 0, or -1 out of memory (b unchanged). */
int rfc6455_frame_add(buf *b, int op, const void *data, size_t n, const unsigned char *mask);

/* Append a close frame: RFC6455_NO_STATUS gives an empty payload; the
 * reason is cut to RFC6455_MAX_REASON bytes. */
int rfc6455_close_add(buf *b, int code, const char *reason, size_t rl, const unsigned char *mask);

/* May code be sent in a close frame (1000-1003, 1007-1014 but 1004-1006, 3000-4999)? */
int rfc6455_close_code_ok(int code);

/* Sec-WebSocket-Key for a 16-byte random nonce (out: RFC6455_KEY_LEN + 1). */
void rfc6455_key(const unsigned char nonce[16], char *out);

/* Sec-WebSocket-Accept for a key (out: RFC6455_ACCEPT_LEN + 1). */
void rfc6455_accept(const char *key, size_t keylen, char *out);

/* A client's opening handshake: the server's answer.  p[0..n) is what
 * was read so far; accept is the Sec-WebSocket-Accept value expected,
 * protocol the subprotocol asked for (NULL: none).  Returns the length of
 * the header block (its frames follow) when the answer is complete and
 * accepts the upgrade, 0 when it is not complete yet, -1 when it refuses
 * or is malformed: err says why (for a status other than 101 with the
 * status line, "unauthorized" for 401) and *status is the HTTP status
 * (0 when there is none). */
#define RFC6455_MAX_RESPONSE 16384
long rfc6455_response(const char *p, size_t n, const char *accept, const char *protocol, int *status, char *err,
                      size_t errlen);

/* SHA-1 of d[0..n). */
void rfc6455_sha1(const void *d, size_t n, unsigned char out[20]);

/* base64 of in[0..n) into out (4 * ceil(n / 3) + 1 bytes, NUL-terminated);
 * returns the length written. */
size_t rfc6455_base64(const unsigned char *in, size_t n, char *out);

/* Is s[0..n) valid UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF)? */
int rfc6455_utf8_valid(const unsigned char *s, size_t n);

/* The same in pieces: start with a zeroed state; step returns 0, or -1 at
 * the first invalid byte; the text is complete when done returns 1. */
int rfc6455_utf8_step(rfc6455_utf8 *u, const unsigned char *s, size_t n);
int rfc6455_utf8_done(const rfc6455_utf8 *u);

#endif
