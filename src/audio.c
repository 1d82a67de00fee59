/* audio.c - samples in C, so that Lua never loops over them: G.711 (ulaw,
 * alaw), energy (RMS), tones and silence, for the four formats of the media
 * streams (docs/media.md).  Pure functions: audio.h is shared with media.c
 * (byte order, frame sizes) and the fuzz target.
 *
 *   core.audio_energy(data, format) -> rms (0..32767, linear 16-bit scale)
 *   core.audio_tone(freq, ms, format[, amplitude]) -> data
 *   core.audio_silence(ms, format) -> data
 *   core.audio_decode(data, format) -> slin (same rate)
 *   core.audio_encode(slin, format) -> data
 *   core.audio_info(format) -> rate, bytes_per_sample
 */
#include "audio.h"
#include "core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static const struct { const char *name; int fmt, rate, bps; } formats[] = {
  {"ulaw", AUDIO_ULAW, 8000, 1}, {"alaw", AUDIO_ALAW, 8000, 1},
  {"slin", AUDIO_SLIN, 8000, 2}, {"slin16", AUDIO_SLIN16, 16000, 2}};

int audio_format(const char *name) {
  size_t i;
  if (name == NULL) return -1;
  for (i = 0; i < sizeof formats / sizeof formats[0]; i++)
    if (strcmp(formats[i].name, name) == 0) return formats[i].fmt;
  return -1;
}

const char *audio_format_name(int fmt) { return formats[fmt].name; }
int audio_rate(int fmt) { return formats[fmt].rate; }
int audio_bps(int fmt) { return formats[fmt].bps; }
size_t audio_frame_bytes(int fmt, int ms) {
  return (size_t)formats[fmt].rate / 1000 * (size_t)ms * (size_t)formats[fmt].bps;
}

/* ---------------------------------------------------------------- G.711 */

int16_t audio_ulaw_decode(uint8_t u) {
  int t;
  u = (uint8_t)~u;
  t = ((u & 0x0f) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  return (int16_t)((u & 0x80) ? (0x84 - t) : (t - 0x84));
}

uint8_t audio_ulaw_encode(int16_t s) {
  static const int seg_end[8] = {0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff, 0x3fff, 0x7fff};
  int pcm = s >> 2, mask, seg;
  if (pcm < 0) { pcm = -pcm; mask = 0x7f; } else { mask = 0xff; }
  if (pcm > 8159) pcm = 8159;
  pcm += 0x84 >> 2;
  for (seg = 0; seg < 8; seg++) if (pcm <= seg_end[seg] >> 2) break;
  if (seg >= 8) return (uint8_t)(0x7f ^ mask);
  return (uint8_t)(((seg << 4) | ((pcm >> (seg + 1)) & 0x0f)) ^ mask);
}

int16_t audio_alaw_decode(uint8_t a) {
  int t, seg;
  a ^= 0x55;
  t = (a & 0x0f) << 4;
  seg = (a & 0x70) >> 4;
  switch (seg) {
  case 0: t += 8; break;
  case 1: t += 0x108; break;
  default: t += 0x108; t <<= seg - 1;
  }
  return (int16_t)((a & 0x80) ? t : -t);
}

uint8_t audio_alaw_encode(int16_t s) {
  static const int seg_end[8] = {0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff};
  int pcm = s >> 3, mask, seg;
  uint8_t aval;
  if (pcm >= 0) mask = 0xd5; else { mask = 0x55; pcm = -pcm - 1; }
  for (seg = 0; seg < 8; seg++) if (pcm <= seg_end[seg]) break;
  if (seg >= 8) return (uint8_t)(0x7f ^ mask);
  aval = (uint8_t)(seg << 4);
  if (seg < 2) aval |= (pcm >> 1) & 0x0f;
  else aval |= (pcm >> seg) & 0x0f;
  return (uint8_t)(aval ^ mask);
}

/* One sample of data (n bytes of fmt), i-th. */
static int16_t sample_at(const unsigned char *p, int fmt, size_t i) {
  switch (fmt) {
  case AUDIO_ULAW: return audio_ulaw_decode(p[i]);
  case AUDIO_ALAW: return audio_alaw_decode(p[i]);
  default: return (int16_t)(uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
  }
}

double audio_energy(const unsigned char *p, size_t n, int fmt) {
  size_t count = n / (size_t)audio_bps(fmt), i;
  double sum = 0;
  if (count == 0) return 0;
  for (i = 0; i < count; i++) {
    double v = sample_at(p, fmt, i);
    sum += v * v;
  }
  return sqrt(sum / (double)count);
}

void audio_silence_fill(unsigned char *p, size_t n, int fmt) {
  memset(p, fmt == AUDIO_ULAW ? 0xff : fmt == AUDIO_ALAW ? 0xd5 : 0x00, n);
}

void audio_swap16(unsigned char *p, size_t n) {
  size_t i;
  for (i = 0; i + 1 < n; i += 2) {
    unsigned char t = p[i];
    p[i] = p[i + 1];
    p[i + 1] = t;
  }
}

/* ---------------------------------------------------------------- Lua */

static int check_format(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  int fmt = audio_format(name);
  if (fmt < 0)
    return luaL_error(L, "unknown audio format '%s' (ulaw, alaw, slin, slin16)", name);
  return fmt;
}

static const unsigned char *check_data(lua_State *L, int idx, int fmt, size_t *n) {
  const unsigned char *p = (const unsigned char *)luaL_checklstring(L, idx, n);
  if (audio_bps(fmt) == 2 && (*n & 1))
    luaL_error(L, "%s data must be a whole number of 16-bit samples (got %d bytes)",
               audio_format_name(fmt), (int)*n);
  return p;
}

static size_t check_ms_bytes(lua_State *L, int idx, int fmt) {
  lua_Number ms = luaL_checknumber(L, idx);
  size_t samples;
  if (!(ms >= 0) || ms > 600000) luaL_argerror(L, idx, "ms must be between 0 and 600000");
  samples = (size_t)(ms * audio_rate(fmt) / 1000.0 + 0.5);
  return samples * (size_t)audio_bps(fmt);
}

static int l_energy(lua_State *L) {
  int fmt = check_format(L, 2);
  size_t n;
  const unsigned char *p = check_data(L, 1, fmt, &n);
  lua_pushnumber(L, audio_energy(p, n, fmt));
  return 1;
}

static int l_silence(lua_State *L) {
  int fmt = check_format(L, 2);
  size_t n = check_ms_bytes(L, 1, fmt);
  luaL_Buffer b;
  unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, n);
  audio_silence_fill(p, n, fmt);
  luaL_pushresultsize(&b, n);
  return 1;
}

static void put_sample(unsigned char *p, size_t i, int fmt, int16_t s) {
  switch (fmt) {
  case AUDIO_ULAW: p[i] = audio_ulaw_encode(s); break;
  case AUDIO_ALAW: p[i] = audio_alaw_encode(s); break;
  default: p[2 * i] = (unsigned char)(s & 0xff); p[2 * i + 1] = (unsigned char)((uint16_t)s >> 8);
  }
}

static int l_tone(lua_State *L) {
  lua_Number freq = luaL_checknumber(L, 1);
  int fmt = check_format(L, 3);
  size_t n = check_ms_bytes(L, 2, fmt), count = n / (size_t)audio_bps(fmt), i;
  lua_Number amp = luaL_optnumber(L, 4, 8000);
  double rate = audio_rate(fmt);
  luaL_Buffer b;
  unsigned char *p;
  if (!(freq >= 0) || freq > rate / 2) luaL_argerror(L, 1, "frequency must be between 0 and half the sample rate");
  if (!(amp >= 0) || amp > 32767) luaL_argerror(L, 4, "amplitude must be between 0 and 32767");
  p = (unsigned char *)luaL_buffinitsize(L, &b, n);
  for (i = 0; i < count; i++)
    put_sample(p, i, fmt, (int16_t)lrint(amp * sin(2 * M_PI * freq * (double)i / rate)));
  luaL_pushresultsize(&b, n);
  return 1;
}

static int l_decode(lua_State *L) {
  int fmt = check_format(L, 2);
  size_t n, i;
  const unsigned char *p = check_data(L, 1, fmt, &n);
  luaL_Buffer b;
  unsigned char *o;
  if (audio_bps(fmt) == 2) { lua_settop(L, 1); return 1; }
  o = (unsigned char *)luaL_buffinitsize(L, &b, 2 * n);
  for (i = 0; i < n; i++) put_sample(o, i, AUDIO_SLIN, sample_at(p, fmt, i));
  luaL_pushresultsize(&b, 2 * n);
  return 1;
}

static int l_encode(lua_State *L) {
  int fmt = check_format(L, 2);
  size_t n, i;
  const unsigned char *p = check_data(L, 1, AUDIO_SLIN, &n);
  luaL_Buffer b;
  unsigned char *o;
  if (audio_bps(fmt) == 2) { lua_settop(L, 1); return 1; }
  o = (unsigned char *)luaL_buffinitsize(L, &b, n / 2);
  for (i = 0; i < n / 2; i++) put_sample(o, i, fmt, sample_at(p, AUDIO_SLIN, i));
  luaL_pushresultsize(&b, n / 2);
  return 1;
}

static int l_info(lua_State *L) {
  int fmt = check_format(L, 1);
  lua_pushinteger(L, audio_rate(fmt));
  lua_pushinteger(L, audio_bps(fmt));
  return 2;
}

void audio_open(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"audio_energy", l_energy}, {"audio_tone", l_tone}, {"audio_silence", l_silence},
    {"audio_decode", l_decode}, {"audio_encode", l_encode}, {"audio_info", l_info}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
