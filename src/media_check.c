/* media_check.c - the media codecs (rtp.c, audiosocket.c) without sockets,
 * as core functions for spec/media_spec.lua:
 *   core.media_rtp_parse(datagram) -> { pt, seq, ts, ssrc, marker, payload } | nil
 *   core.media_rtp_packet(pt, seq, ts, ssrc, payload) -> datagram
 *   core.media_rtp_window({seq, ...}[, drain]) -> {delivered seq, ...}, stats
 *   core.media_as_parse(bytes[, max]) -> { {kind, payload}, ... }, "ok" | "more" | "too_large"
 *   core.media_udp_send(rtp_stream, datagram) -> true | false: a raw datagram
 *     from the stream's socket to its peer (crafted packets for the specs)
 */
#include "media.h"

#include <string.h>

static void setint(lua_State *L, const char *k, lua_Integer v) { lua_pushinteger(L, v); lua_setfield(L, -2, k); }

static int l_rtp_parse(lua_State *L) {
  size_t n;
  const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &n);
  rtp_packet pk;
  if (rtp_parse(p, n, &pk) != 0) return 0;
  lua_createtable(L, 0, 6);
  setint(L, "pt", pk.pt); setint(L, "seq", pk.seq); setint(L, "ts", pk.ts); setint(L, "ssrc", pk.ssrc);
  lua_pushboolean(L, pk.marker); lua_setfield(L, -2, "marker");
  lua_pushlstring(L, (const char *)pk.payload, pk.len); lua_setfield(L, -2, "payload");
  return 1;
}

static int l_rtp_packet(lua_State *L) {
  size_t n;
  const char *pl = luaL_checklstring(L, 5, &n);
  luaL_Buffer b;
  unsigned char *o = (unsigned char *)luaL_buffinitsize(L, &b, RTP_HEADER + n);
  rtp_header(o, (int)luaL_checkinteger(L, 1), 0, (uint16_t)luaL_checkinteger(L, 2),
             (uint32_t)luaL_checkinteger(L, 3), (uint32_t)luaL_checkinteger(L, 4));
  memcpy(o + RTP_HEADER, pl, n);
  luaL_pushresultsize(&b, RTP_HEADER + n);
  return 1;
}

static void window_out(void *ud, const unsigned char *p, size_t n) {
  lua_State *L = (lua_State *)ud;
  (void)n;
  lua_pushinteger(L, (p[0] << 8) | p[1]);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

static int l_rtp_window(lua_State *L) {
  rtp_rx *rx;
  lua_Integer i, n;
  luaL_checktype(L, 1, LUA_TTABLE);
  rx = (rtp_rx *)lua_newuserdatauv(L, sizeof *rx, 0);
  memset(rx, 0, sizeof *rx);
  lua_newtable(L);
  n = (lua_Integer)lua_rawlen(L, 1);
  for (i = 1; i <= n; i++) {
    unsigned char pl[2];
    uint16_t seq;
    lua_rawgeti(L, 1, i);
    seq = (uint16_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    pl[0] = (unsigned char)(seq >> 8); pl[1] = (unsigned char)seq;
    rtp_rx_push(rx, seq, pl, 2, window_out, L);
  }
  if (lua_toboolean(L, 2)) rtp_rx_drain(rx, window_out, L);
  lua_createtable(L, 0, 6);
  setint(L, "delivered", (lua_Integer)rx->delivered); setint(L, "lost", (lua_Integer)rx->lost);
  setint(L, "reordered", (lua_Integer)rx->reordered); setint(L, "late", (lua_Integer)rx->late);
  setint(L, "duplicates", (lua_Integer)rx->duplicates); setint(L, "held", rx->pending);
  return 2;
}

static int l_as_parse(lua_State *L) {
  size_t n, off = 0;
  const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &n);
  size_t max = (size_t)luaL_optinteger(L, 2, AS_MAX_PAYLOAD);
  const char *st = "ok";
  as_msg m;
  lua_newtable(L);
  while (off < n) {
    long used = as_parse(p + off, n - off, max, &m);
    if (used == 0) { st = "more"; break; }
    if (used < 0) { st = "too_large"; break; }
    lua_createtable(L, 0, 2);
    setint(L, "kind", m.kind);
    lua_pushlstring(L, (const char *)m.payload, m.len); lua_setfield(L, -2, "payload");
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    off += (size_t)used;
  }
  lua_pushstring(L, st);
  return 2;
}

static int l_udp_send(lua_State *L) {
  mstream *s = media_check_stream(L, 1);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  lua_pushboolean(L, s->transport == T_RTP && s->udp_open && s->have_peer &&
                       usock_send(&s->udp, p, n, (const struct sockaddr *)&s->peer) == 0);
  return 1;
}

void media_check_open(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"media_rtp_parse", l_rtp_parse}, {"media_rtp_packet", l_rtp_packet},
    {"media_rtp_window", l_rtp_window}, {"media_as_parse", l_as_parse}, {"media_udp_send", l_udp_send}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
