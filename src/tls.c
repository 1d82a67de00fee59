/* tls.c - OpenSSL with memory BIOs for the WebSocket client (tls.h). */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_ctx {
  SSL_CTX *ctx;
  char *cainfo;
  int insecure;
};

struct tls_conn {
  SSL *ssl;
  BIO *rbio; /* ciphertext from the socket, read by OpenSSL */
  BIO *wbio; /* ciphertext from OpenSSL, for the socket */
};

/* The first error of OpenSSL's queue (which is then emptied). */
static void tls_errstr(const char *what, char *err, size_t errlen) {
  unsigned long e = ERR_get_error();
  char s[200];
  if (e != 0) ERR_error_string_n(e, s, sizeof s);
  else snprintf(s, sizeof s, "unknown error");
  ERR_clear_error();
  snprintf(err, errlen, "%s: %s", what, s);
}

tls_ctx *tls_ctx_new(const char *cainfo, int insecure, char *err, size_t errlen) {
  tls_ctx *x = calloc(1, sizeof *x);
  if (x == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  x->insecure = insecure;
  if (cainfo != NULL && (x->cainfo = strdup(cainfo)) == NULL) {
    free(x);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  ERR_clear_error();
  x->ctx = SSL_CTX_new(TLS_client_method());
  if (x->ctx == NULL) {
    tls_errstr("TLS", err, errlen);
    tls_ctx_free(x);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(x->ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(x->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (insecure) {
    SSL_CTX_set_verify(x->ctx, SSL_VERIFY_NONE, NULL);
  } else {
    SSL_CTX_set_verify(x->ctx, SSL_VERIFY_PEER, NULL);
    if (cainfo != NULL ? SSL_CTX_load_verify_locations(x->ctx, cainfo, NULL) != 1
                       : SSL_CTX_set_default_verify_paths(x->ctx) != 1) {
      char what[300];
      if (cainfo != NULL) snprintf(what, sizeof what, "cannot load CA file %s", cainfo);
      else snprintf(what, sizeof what, "cannot load the system CA store");
      tls_errstr(what, err, errlen);
      tls_ctx_free(x);
      return NULL;
    }
  }
  return x;
}

void tls_ctx_free(tls_ctx *x) {
  if (x == NULL) return;
  SSL_CTX_free(x->ctx);
  free(x->cainfo);
  free(x);
}

static int tls_ctx_matches(const tls_ctx *x, const char *cainfo, int insecure) {
  if (x->insecure != insecure) return 0;
  if (x->cainfo == NULL || cainfo == NULL) return x->cainfo == cainfo;
  return strcmp(x->cainfo, cainfo) == 0;
}

struct tls_cache {
  tls_ctx *x;
  tls_cache *next;
};

tls_ctx *tls_cache_get(tls_cache **list, const char *cainfo, int insecure, char *err, size_t errlen) {
  tls_cache *t;
  for (t = *list; t != NULL; t = t->next)
    if (tls_ctx_matches(t->x, cainfo, insecure)) return t->x;
  t = calloc(1, sizeof *t);
  if (t == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  t->x = tls_ctx_new(cainfo, insecure, err, errlen);
  if (t->x == NULL) {
    free(t);
    return NULL;
  }
  t->next = *list;
  *list = t;
  return t->x;
}

void tls_cache_free(tls_cache **list) {
  tls_cache *t;
  while ((t = *list) != NULL) {
    *list = t->next;
    tls_ctx_free(t->x);
    free(t);
  }
}

static int tls_is_ip(const char *host) {
  unsigned char a[16];
  return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

tls_conn *tls_new(tls_ctx *x, const char *host, char *err, size_t errlen) {
  tls_conn *t = calloc(1, sizeof *t);
  int ip = tls_is_ip(host);
  if (t == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  ERR_clear_error();
  t->ssl = SSL_new(x->ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    t->rbio = t->wbio = NULL;
    tls_errstr("TLS", err, errlen);
    tls_free(t);
    return NULL;
  }
  BIO_set_mem_eof_return(t->rbio, -1);
  SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns them now */
  SSL_set_connect_state(t->ssl);
  if (!ip && SSL_set_tlsext_host_name(t->ssl, host) != 1) {
    tls_errstr("TLS: server name", err, errlen);
    tls_free(t);
    return NULL;
  }
  if (!x->insecure) {
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host)
                : SSL_set1_host(t->ssl, host);
    if (ok != 1) {
      tls_errstr("TLS: host check", err, errlen);
      tls_free(t);
      return NULL;
    }
  }
  return t;
}

void tls_free(tls_conn *t) {
  if (t == NULL) return;
  SSL_free(t->ssl); /* the SSL_CTX is reference-counted: it lives while this does */
  free(t);
}

int tls_feed(tls_conn *t, const void *p, size_t n) {
  while (n > 0) {
    int chunk = n > 1u << 30 ? 1 << 30 : (int)n;
    int w = BIO_write(t->rbio, p, chunk);
    if (w <= 0) return -1;
    p = (const char *)p + w;
    n -= (size_t)w;
  }
  return 0;
}

/* After an SSL call returned r <= 0: 0 when it only needs more input (or
 * room), else -1 with err. */
static int tls_failed(tls_conn *t, int r, const char *what, char *err, size_t errlen) {
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  if (e == SSL_ERROR_SSL && SSL_get_verify_result(t->ssl) != X509_V_OK) {
    ERR_clear_error();
    snprintf(err, errlen, "%s: certificate verify failed: %s", what,
             X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
    return -1;
  }
  if (e == SSL_ERROR_SSL) tls_errstr(what, err, errlen);
  else {
    ERR_clear_error();
    snprintf(err, errlen, "%s: error %d", what, e);
  }
  return -1;
}

int tls_handshake(tls_conn *t, char *err, size_t errlen) {
  int r;
  if (SSL_is_init_finished(t->ssl)) return 1;
  ERR_clear_error();
  r = SSL_do_handshake(t->ssl);
  if (r == 1) return 1;
  return tls_failed(t, r, "TLS handshake", err, errlen);
}

int tls_read(tls_conn *t, buf *out, char *err, size_t errlen) {
  for (;;) {
    size_t got = 0;
    int r;
    if (buf_reserve(out, 16384) != 0) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    ERR_clear_error();
    r = SSL_read_ex(t->ssl, out->p + out->len, out->cap - out->len - 1, &got);
    if (r == 1) {
      out->len += got;
      continue;
    }
    if (SSL_get_error(t->ssl, r) == SSL_ERROR_ZERO_RETURN) return 1;
    return tls_failed(t, r, "TLS", err, errlen);
  }
}

int tls_write(tls_conn *t, const void *p, size_t n, char *err, size_t errlen) {
  while (n > 0) {
    size_t done = 0;
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, p, n, &done) != 1) {
      if (tls_failed(t, 0, "TLS", err, errlen) == 0) snprintf(err, errlen, "TLS: write would block");
      return -1;
    }
    p = (const char *)p + done;
    n -= done;
  }
  return 0;
}

int tls_take(tls_conn *t, buf *out) {
  size_t pending;
  while ((pending = BIO_ctrl_pending(t->wbio)) > 0) {
    int r;
    if (buf_reserve(out, pending) != 0) return -1;
    r = BIO_read(t->wbio, out->p + out->len, (int)(pending > 1u << 30 ? 1u << 30 : pending));
    if (r <= 0) break;
    out->len += (size_t)r;
  }
  return 0;
}
