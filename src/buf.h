/* buf.h - the growable byte buffer every C file of ari.core uses.
 *
 * A buf owns p (malloc'd, NULL while empty); len bytes are in use out of
 * cap.  After buf_add/buf_adds p[len] is '\0' (room for it is always
 * reserved), so text can be read as a C string; a caller that writes into
 * the spare room itself (buf_space) and then grows len gets no terminator.
 * Functions return 0, or -1 when memory runs out (the buffer is then
 * unchanged).  No Lua and no libuv here.
 */
#ifndef ARI_BUF_H
#define ARI_BUF_H

#include <stddef.h>

typedef struct buf {
  char *p;
  size_t len, cap;
} buf;

#define BUF_INIT {NULL, 0, 0}

/* Make room for extra more bytes (plus the terminator). */
int buf_reserve(buf *b, size_t extra);
/* Append n bytes / a C string. */
int buf_add(buf *b, const void *d, size_t n);
int buf_adds(buf *b, const char *s);
/* Drop the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(buf *b, size_t n);
/* Free the memory if the buffer holds more than keep bytes of capacity
 * and is empty (len == 0), so that one large message does not pin it. */
void buf_shrink(buf *b, size_t keep);
void buf_free(buf *b);

#endif
