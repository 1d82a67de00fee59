/* server.h - what server.c (HTTP: sockets, connections, requests, the
 * server and res classes) and server_ws.c (upgraded connections: frames,
 * the ws class) share.  Internal to those two files.
 */
#ifndef ARI_SERVER_H
#define ARI_SERVER_H

#include "core.h"
#include "buf.h"
#include "rfc6455.h"

#define SRV_SERVER_MT "ari.core.server"
#define SRV_RES_MT "ari.core.server.res"
#define SRV_WS_MT "ari.core.server.ws"
#define SRV_MOD_KEY "ari.core.server.mod"

#define SRV_READ_CHUNK 65536
#define SRV_BUSY_LIMIT (1u << 20)   /* stop reading a busy connection beyond this */
#define SRV_CLOSE_TIMEOUT_MS 2000   /* wait for the peer's close frame */

typedef struct srv_mod srv_mod;
typedef struct srv_server srv_server;
typedef struct srv_conn srv_conn;

/* res userdata: one per request */
typedef struct srv_res {
  srv_conn *conn;   /* NULL once answered or the connection is gone */
  int done;
  int websocket;    /* a valid upgrade request */
  int keepalive;
  int head;
  char key[64];     /* Sec-WebSocket-Key */
} srv_res;

/* ws userdata: anchored by the connection while it is open */
typedef struct srv_ws {
  srv_conn *conn;
  char remote[64];
} srv_ws;

struct srv_mod {
  core_loop *c;
  srv_server *servers;
  int hook_ran;
};

struct srv_server {
  uv_tcp_t tcp;
  uv_idle_t idle;
  core_loop *c;
  srv_mod *mod;
  srv_server *next;
  srv_server **box;
  int refs;          /* open handles + live conns + box */
  int listening, quiet, idle_on;
  int on_request_ref, self_ref;
  int port;
  char host[64];
  size_t max_body, max_message, max_header;
  srv_conn *conns;
  lua_Integer accepted, requests, nconn, nws;
};

struct srv_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wreq;
  srv_server *s;
  srv_conn *prev, *next;
  int handles;       /* open uv handles */
  int closed;        /* teardown started */
  int reading, writing, shut, busy, kick, eof, ws, expect_sent;
  buf rbuf;
  size_t rpos;       /* consumed bytes of rbuf */
  size_t scan;       /* bytes after rpos already searched for the end of the head */
  buf obuf, wbuf;
  srv_res *res;
  srv_ws *wsud;
  int ws_ref, on_msg_ref, on_close_ref;
  int close_sent, close_recv, close_code;
  char close_reason[128];
  size_t reason_len;
  rfc6455_parser wsp;
  buf msg;
  char remote[64];
};

/* server.c */
void srv_flush(srv_conn *k);          /* write what is queued in obuf */
void srv_shut(srv_conn *k);           /* close once everything queued is written */
void srv_conn_close(srv_conn *k);     /* close now */

/* server_ws.c */
/* The connection k was upgraded: push its ws object (handlers: the index
 * of the table with on_message/on_close, or 0). */
void srv_ws_attach(lua_State *L, srv_conn *k, int handlers);
/* Parse and handle one frame of rbuf: 1 handled, 0 need more, -1 closing. */
int srv_ws_one(srv_conn *k);
/* The connection goes: on_close(ws, code, reason). */
void srv_ws_closed(srv_conn *k);
/* The server closes: a 1001 close frame if it can be written at once. */
void srv_ws_going_away(srv_conn *k);
void srv_ws_open(lua_State *L);

#endif
