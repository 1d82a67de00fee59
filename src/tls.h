/* tls.h - TLS for the WebSocket client (ws_uv.c) through OpenSSL with
 * memory BIOs: no sockets here.  The transport feeds what it reads from
 * the socket in (tls_feed), takes plaintext out (tls_read), hands plaintext
 * to send in (tls_write) and writes what tls_take gives to the socket.
 *
 * Certificates are verified by default: the chain against the system CA
 * store (or a CA file, cainfo) and the server's name or IP address against
 * the certificate (SSL_set1_host / X509_VERIFY_PARAM_set1_ip_asc).
 * insecure turns both checks off.
 */
#ifndef ARI_TLS_H
#define ARI_TLS_H

#include "buf.h"

#include <stddef.h>

typedef struct tls_ctx tls_ctx;   /* settings shared by connections */
typedef struct tls_conn tls_conn; /* one connection */

/* A context verifying against cainfo (NULL: the system store), or nothing
 * when insecure.  NULL with err on failure. */
tls_ctx *tls_ctx_new(const char *cainfo, int insecure, char *err, size_t errlen);
void tls_ctx_free(tls_ctx *x);
/* Contexts shared by the connections with the same settings: a list its
 * owner starts as NULL.  tls_cache_get finds or makes one (NULL with err);
 * tls_cache_free frees them all (connections keep what they use alive). */
typedef struct tls_cache tls_cache;
tls_ctx *tls_cache_get(tls_cache **list, const char *cainfo, int insecure, char *err, size_t errlen);
void tls_cache_free(tls_cache **list);

/* A client connection to host (a name or an IP address: SNI and the name
 * check use it).  NULL with err on failure. */
tls_conn *tls_new(tls_ctx *x, const char *host, char *err, size_t errlen);
void tls_free(tls_conn *t);

/* Bytes read from the socket.  0, or -1 out of memory. */
int tls_feed(tls_conn *t, const void *p, size_t n);
/* Drive the handshake: 1 done, 0 more bytes needed, -1 failed (err says
 * why, with the verification error when that is what failed). */
int tls_handshake(tls_conn *t, char *err, size_t errlen);
/* Decrypt what was fed into out: 0 (maybe nothing new), 1 the peer closed
 * TLS (close_notify), -1 error (err). */
int tls_read(tls_conn *t, buf *out, char *err, size_t errlen);
/* Encrypt plaintext (the ciphertext is then waiting for tls_take).  0 or
 * -1 (err). */
int tls_write(tls_conn *t, const void *p, size_t n, char *err, size_t errlen);
/* Append the ciphertext waiting to be sent to out.  0 or -1 (memory). */
int tls_take(tls_conn *t, buf *out);

#endif
