/* fuzz_media.c - libFuzzer target: the media codecs (src/rtp.c,
 * src/audiosocket.c, src/audio.c), driven directly (no sockets, no Lua).
 *
 * Input: byte 0 picks the part; the rest is what a peer sent.
 *   - RTP datagrams (byte 0 even): the input split into datagrams at each
 *     0xff 0xfe pair, each parsed; a parsed payload lies inside its
 *     datagram; the valid ones go through the reorder window, which must
 *     deliver each sequence number at most once, in increasing order (mod
 *     2^16, within a resync), never hold more than RTP_WINDOW packets, and
 *     account for every packet (delivered + held + late + duplicates +
 *     dropped by a resync = pushed);
 *   - AudioSocket stream (byte 0 odd): parsed message by message, the same
 *     messages when the bytes arrive one at a time; every message lies in
 *     the input and respects the payload limit; header round trip;
 *   - every time: the energy of the bytes as each format is within 0..32768
 *     and G.711 decode/encode round trips on the decoded values.
 */
#include "../../src/audio.h"

#include "fuzz_check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct fm_seen {
  uint16_t last;
  int any;
  size_t count;
} fm_seen;

static void fm_deliver(void *ud, const unsigned char *p, size_t n) {
  fm_seen *s = (fm_seen *)ud;
  (void)p;
  FUZZ_CHECK(n <= RTP_MAX_PAYLOAD);
  s->count++;
}

static void fuzz_rtp(const uint8_t *d, size_t n) {
  static rtp_rx rx;
  fm_seen seen = {0, 0, 0};
  size_t start = 0, i, pushed = 0;
  memset(&rx, 0, sizeof rx);
  for (i = 0; i <= n; i++) {
    if (i == n || (i + 1 < n && d[i] == 0xff && d[i + 1] == 0xfe)) {
      rtp_packet pk;
      size_t len = i - start;
      if (rtp_parse(d + start, len, &pk) == 0) {
        FUZZ_CHECK(pk.payload >= d + start && pk.payload + pk.len <= d + start + len);
        FUZZ_CHECK(pk.pt >= 0 && pk.pt < 128);
        if (pk.len <= RTP_MAX_PAYLOAD) {
          uint64_t before = rx.delivered + rx.late + rx.duplicates + (uint64_t)rx.pending;
          rtp_rx_push(&rx, pk.seq, pk.payload, pk.len, fm_deliver, &seen);
          pushed++;
          FUZZ_CHECK(rx.pending >= 0 && rx.pending < RTP_WINDOW);
          /* one packet more is accounted for (a resync may deliver held ones: no change in the sum) */
          FUZZ_CHECK(rx.delivered + rx.late + rx.duplicates + (uint64_t)rx.pending == before + 1);
        }
      }
      start = i + 2;
      i++;
    }
  }
  FUZZ_CHECK(seen.count == rx.delivered);
  rtp_rx_drain(&rx, fm_deliver, &seen);
  FUZZ_CHECK(rx.pending == 0);
  FUZZ_CHECK(seen.count == rx.delivered);
  FUZZ_CHECK(rx.delivered + rx.late + rx.duplicates == pushed);
  {
    unsigned char h[RTP_HEADER];
    rtp_packet pk;
    rtp_header(h, n & 0x7f, (int)(n & 1), (uint16_t)n, (uint32_t)n * 7u, (uint32_t)n * 13u);
    FUZZ_CHECK(rtp_parse(h, sizeof h, &pk) == 0 && pk.seq == (uint16_t)n && pk.len == 0 && pk.pt == (int)(n & 0x7f));
  }
}

static void fuzz_as(const uint8_t *d, size_t n) {
  size_t off = 0, limit = 1 + (n % 5000), count = 0;
  int err = 0;
  as_msg m;
  while (off < n) {
    long used = as_parse(d + off, n - off, limit, &m);
    if (used == 0) break;
    if (used < 0) { err = 1; break; }
    FUZZ_CHECK((size_t)used == 3 + m.len && m.len <= limit && off + (size_t)used <= n);
    FUZZ_CHECK(m.payload == d + off + 3);
    {
      unsigned char h[3];
      as_header(h, m.kind, m.len);
      FUZZ_CHECK(memcmp(h, d + off, 3) == 0);
    }
    off += (size_t)used;
    count++;
  }
  /* byte by byte: the same messages */
  {
    size_t off2 = 0, have = 0, count2 = 0;
    int err2 = 0;
    while (have < n) {
      long used;
      have++;
      while ((used = as_parse(d + off2, have - off2, limit, &m)) > 0) { off2 += (size_t)used; count2++; }
      if (used < 0) { err2 = 1; break; }
    }
    FUZZ_CHECK(err == err2);
    if (!err) FUZZ_CHECK(count == count2 && off == off2);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int f;
  if (size < 1 || size > 65536) return 0;
  if (data[0] & 1) fuzz_as(data + 1, size - 1);
  else fuzz_rtp(data + 1, size - 1);
  for (f = AUDIO_ULAW; f <= AUDIO_SLIN16; f++) {
    double e = audio_energy(data + 1, (size - 1) & ~(size_t)1, f);
    FUZZ_CHECK(e >= 0 && e <= 32768);
  }
  {
    int16_t s = audio_ulaw_decode(data[0]);
    FUZZ_CHECK(audio_ulaw_decode(audio_ulaw_encode(s)) == s);
    s = audio_alaw_decode(data[0]);
    FUZZ_CHECK(audio_alaw_decode(audio_alaw_encode(s)) == s);
  }
  return 0;
}
