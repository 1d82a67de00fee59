/* buf.c - the growable byte buffer (buf.h). */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

int buf_reserve(buf *b, size_t extra) {
  size_t need = b->len + extra + 1, cap;
  char *p;
  if (need <= b->len) return -1; /* overflow */
  if (need <= b->cap) return 0;
  cap = b->cap ? b->cap : 256;
  while (cap < need) {
    if (cap > ((size_t)-1) / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  p = realloc(b->p, cap);
  if (p == NULL) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

int buf_add(buf *b, const void *d, size_t n) {
  if (buf_reserve(b, n) != 0) return -1;
  if (n > 0) memcpy(b->p + b->len, d, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

int buf_adds(buf *b, const char *s) { return buf_add(b, s, strlen(s)); }

void buf_consume(buf *b, size_t n) {
  if (n == 0) return;
  if (n >= b->len) {
    b->len = 0;
  } else {
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
  }
  if (b->len < b->cap) b->p[b->len] = '\0';
}

void buf_shrink(buf *b, size_t keep) {
  if (b->len == 0 && b->cap > keep) buf_free(b);
}

void buf_free(buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}
