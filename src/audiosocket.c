/* audiosocket.c - the AudioSocket protocol as a codec: every message is a
 * kind (1 byte), a payload length (2 bytes, big-endian) and the payload.
 * Kinds: 0x00 hang-up, 0x01 UUID (16 bytes), 0x03 DTMF, 0x10 audio (slin
 * 8 kHz), 0x11..0x18 audio at other rates, 0xff error.  media.c owns the
 * sockets; spec/fuzz/fuzz_media.c drives this directly.
 */
#include "audio.h"

#include <ctype.h>
#include <string.h>

long as_parse(const unsigned char *p, size_t n, size_t max_payload, as_msg *m) {
  size_t len;
  if (n < 3) return 0;
  len = ((size_t)p[1] << 8) | p[2];
  if (len > max_payload) return -1;
  if (n < 3 + len) return 0;
  m->kind = p[0];
  m->payload = p + 3;
  m->len = len;
  return (long)(3 + len);
}

void as_header(unsigned char *out, int kind, size_t len) {
  out[0] = (unsigned char)kind;
  out[1] = (unsigned char)(len >> 8);
  out[2] = (unsigned char)len;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int as_uuid_bytes(const char *text, unsigned char out[16]) {
  int i = 0;
  if (strlen(text) != 36) return -1;
  while (*text && i < 16) {
    int hi, lo;
    if (*text == '-') { text++; continue; }
    hi = hexval((unsigned char)text[0]);
    lo = text[1] ? hexval((unsigned char)text[1]) : -1;
    if (hi < 0 || lo < 0) return -1;
    out[i++] = (unsigned char)(hi << 4 | lo);
    text += 2;
  }
  return (i == 16 && *text == '\0') ? 0 : -1;
}
