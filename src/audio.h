/* audio.h - sample formats, G.711, energy (audio.c), and the media codecs:
 * RTP (rtp.c) and AudioSocket (audiosocket.c).  No sockets, no Lua here
 * apart from audio_open: spec/fuzz/fuzz_media.c drives the codecs directly.
 */
#ifndef ARI_AUDIO_H
#define ARI_AUDIO_H

#include <stddef.h>
#include <stdint.h>

enum audio_fmt { AUDIO_ULAW = 0, AUDIO_ALAW, AUDIO_SLIN, AUDIO_SLIN16 };

int audio_format(const char *name);          /* -1 if unknown */
const char *audio_format_name(int fmt);
int audio_rate(int fmt);
int audio_bps(int fmt);                      /* bytes a sample: 1 or 2 */
size_t audio_frame_bytes(int fmt, int ms);
int16_t audio_ulaw_decode(uint8_t u);
uint8_t audio_ulaw_encode(int16_t s);
int16_t audio_alaw_decode(uint8_t a);
uint8_t audio_alaw_encode(int16_t s);
double audio_energy(const unsigned char *p, size_t n, int fmt);
void audio_silence_fill(unsigned char *p, size_t n, int fmt);
void audio_swap16(unsigned char *p, size_t n);

/* ---------------------------------------------------------------- RTP */

#define RTP_HEADER 12
#define RTP_MAX_PACKET 1500
#define RTP_MAX_PAYLOAD (RTP_MAX_PACKET - RTP_HEADER)
#define RTP_WINDOW 4          /* frames held to put reordered packets back */
#define RTP_RESYNC 200        /* a jump larger than this restarts the sequence */

typedef struct rtp_packet {
  int pt, marker;
  uint16_t seq;
  uint32_t ts, ssrc;
  const unsigned char *payload;
  size_t len;
} rtp_packet;

/* Parse one datagram: 0, or -1 if it is not RTP version 2 (or its padding,
 * CSRC list or extension run past the end). */
int rtp_parse(const unsigned char *p, size_t n, rtp_packet *pk);
/* Write a 12-byte header into out. */
void rtp_header(unsigned char *out, int pt, int marker, uint16_t seq, uint32_t ts, uint32_t ssrc);

typedef void (*rtp_deliver_fn)(void *ud, const unsigned char *p, size_t n);

typedef struct rtp_slot {
  int used;
  uint16_t seq;
  size_t len;
  unsigned char data[RTP_MAX_PAYLOAD];
} rtp_slot;

/* The receiving side: packets in, payloads out in sequence order. */
typedef struct rtp_rx {
  int started;
  uint16_t next;          /* the next sequence number to deliver */
  uint64_t hist;          /* bit i: next-1-i was delivered */
  int pending;
  rtp_slot slot[RTP_WINDOW];
  uint64_t delivered, lost, reordered, late, duplicates;
} rtp_rx;

void rtp_rx_push(rtp_rx *rx, uint16_t seq, const unsigned char *p, size_t n, rtp_deliver_fn fn, void *ud);
/* Deliver what is held, in order, gaps counted as lost (stream end). */
void rtp_rx_drain(rtp_rx *rx, rtp_deliver_fn fn, void *ud);

/* ---------------------------------------------------------------- AudioSocket */

enum { AS_HANGUP = 0x00, AS_UUID = 0x01, AS_DTMF = 0x03, AS_AUDIO = 0x10, AS_AUDIO_SLIN16 = 0x12,
       AS_AUDIO_LAST = 0x18, AS_ERROR = 0xff };
#define AS_MAX_PAYLOAD 4096

typedef struct as_msg {
  int kind;
  const unsigned char *payload;
  size_t len;
} as_msg;

/* Parse the message at the start of p[0..n): bytes used (> 0), 0 if more
 * input is needed, -1 if the message is larger than max_payload. */
long as_parse(const unsigned char *p, size_t n, size_t max_payload, as_msg *m);
/* Write the 3-byte header of a message. */
void as_header(unsigned char *out, int kind, size_t len);
/* The 16 bytes of a UUID given as text (36 chars with dashes): 0, or -1. */
int as_uuid_bytes(const char *text, unsigned char out[16]);

#endif
