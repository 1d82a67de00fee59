/* rtp.c - RTP (RFC 3550) as a codec, no sockets: parsing a datagram,
 * writing a header, and the receiving side's reorder window (packets in,
 * payloads out in sequence order; losses, reordering, late and repeated
 * packets counted).  media.c owns the sockets; spec/fuzz/fuzz_media.c
 * drives this directly.
 */
#include "audio.h"

#include <string.h>

int rtp_parse(const unsigned char *p, size_t n, rtp_packet *pk) {
  size_t off, pad = 0;
  int cc;
  if (n < RTP_HEADER || (p[0] >> 6) != 2) return -1;
  cc = p[0] & 0x0f;
  off = RTP_HEADER + 4 * (size_t)cc;
  if (off > n) return -1;
  if (p[0] & 0x10) { /* header extension: 4 bytes, then length words */
    size_t words;
    if (off + 4 > n) return -1;
    words = ((size_t)p[off + 2] << 8) | p[off + 3];
    off += 4 + 4 * words;
    if (off > n) return -1;
  }
  if (p[0] & 0x20) { /* padding: the last byte says how much */
    pad = p[n - 1];
    if (pad == 0 || off + pad > n) return -1;
  }
  pk->marker = p[1] >> 7;
  pk->pt = p[1] & 0x7f;
  pk->seq = (uint16_t)((p[2] << 8) | p[3]);
  pk->ts = ((uint32_t)p[4] << 24) | ((uint32_t)p[5] << 16) | ((uint32_t)p[6] << 8) | p[7];
  pk->ssrc = ((uint32_t)p[8] << 24) | ((uint32_t)p[9] << 16) | ((uint32_t)p[10] << 8) | p[11];
  pk->payload = p + off;
  pk->len = n - off - pad;
  return 0;
}

void rtp_header(unsigned char *out, int pt, int marker, uint16_t seq, uint32_t ts, uint32_t ssrc) {
  out[0] = 0x80;
  out[1] = (unsigned char)((marker ? 0x80 : 0) | (pt & 0x7f));
  out[2] = (unsigned char)(seq >> 8); out[3] = (unsigned char)seq;
  out[4] = (unsigned char)(ts >> 24); out[5] = (unsigned char)(ts >> 16);
  out[6] = (unsigned char)(ts >> 8); out[7] = (unsigned char)ts;
  out[8] = (unsigned char)(ssrc >> 24); out[9] = (unsigned char)(ssrc >> 16);
  out[10] = (unsigned char)(ssrc >> 8); out[11] = (unsigned char)ssrc;
}

/* Move on past `next`: delivered (bit set) or skipped. */
static void advance(rtp_rx *rx, int delivered) {
  rx->hist = (rx->hist << 1) | (delivered ? 1u : 0u);
  rx->next++;
}

static rtp_slot *find_slot(rtp_rx *rx, uint16_t seq) {
  int i;
  for (i = 0; i < RTP_WINDOW; i++)
    if (rx->slot[i].used && rx->slot[i].seq == seq) return &rx->slot[i];
  return NULL;
}

/* Deliver held packets from next on while they are there. */
static void deliver_held(rtp_rx *rx, rtp_deliver_fn fn, void *ud) {
  rtp_slot *s;
  while (rx->pending > 0 && (s = find_slot(rx, rx->next)) != NULL) {
    s->used = 0;
    rx->pending--;
    rx->delivered++;
    advance(rx, 1);
    fn(ud, s->data, s->len);
  }
}

/* Skip the gap before the oldest held packet (counted lost), deliver. */
static void give_up_gap(rtp_rx *rx, rtp_deliver_fn fn, void *ud) {
  while (rx->pending > 0 && find_slot(rx, rx->next) == NULL) {
    rx->lost++;
    advance(rx, 0);
  }
  deliver_held(rx, fn, ud);
}

void rtp_rx_drain(rtp_rx *rx, rtp_deliver_fn fn, void *ud) {
  while (rx->pending > 0) give_up_gap(rx, fn, ud);
}

void rtp_rx_push(rtp_rx *rx, uint16_t seq, const unsigned char *p, size_t n, rtp_deliver_fn fn, void *ud) {
  int16_t d;
  int i;
  if (n > RTP_MAX_PAYLOAD) return;
  if (!rx->started) {
    rx->started = 1;
    rx->next = seq;
  }
  d = (int16_t)(uint16_t)(seq - rx->next);
  if (d > RTP_RESYNC || d < -RTP_RESYNC) {
    /* a jump (new source, restart): what is held goes first, then start over */
    rtp_rx_drain(rx, fn, ud);
    rx->next = seq;
    rx->hist = 0;
    d = 0;
  }
  if (d < 0) {
    int back = -d - 1; /* bit index in hist */
    if (back < 64 && ((rx->hist >> back) & 1u)) rx->duplicates++;
    else rx->late++;
    return;
  }
  if (d == 0) {
    if (rx->pending > 0) rx->reordered++;
    rx->delivered++;
    advance(rx, 1);
    fn(ud, p, n);
    deliver_held(rx, fn, ud);
    return;
  }
  /* ahead of a gap: hold it (at most RTP_WINDOW ahead: further means
   * the gap is lost) */
  if (find_slot(rx, seq) != NULL) { rx->duplicates++; return; }
  while ((int16_t)(uint16_t)(seq - rx->next) > RTP_WINDOW) {
    rtp_slot *s = find_slot(rx, rx->next);
    if (s != NULL) {
      s->used = 0;
      rx->pending--;
      rx->delivered++;
      advance(rx, 1);
      fn(ud, s->data, s->len);
    } else {
      rx->lost++;
      advance(rx, 0);
    }
  }
  if (seq == rx->next) { /* the gap was skipped up to it */
    rx->delivered++;
    advance(rx, 1);
    fn(ud, p, n);
    deliver_held(rx, fn, ud);
    return;
  }
  for (i = 0; i < RTP_WINDOW; i++) {
    if (!rx->slot[i].used) {
      rx->slot[i].used = 1;
      rx->slot[i].seq = seq;
      rx->slot[i].len = n;
      memcpy(rx->slot[i].data, p, n);
      rx->pending++;
      break;
    }
  }
  /* the window is full: the gap before the oldest held packet is lost */
  if (rx->pending >= RTP_WINDOW) give_up_gap(rx, fn, ud);
}
