-- ari.sim.extmedia: POST /channels/externalMedia and the media it carries,
-- as Asterisk 22 does it (res/ari/resource_channels.c, chan_rtp,
-- chan_audiosocket, chan_websocket):
--
-- - rtp/udp: a UnicastRTP channel; the simulator binds a UDP socket
--   (UNICASTRTP_LOCAL_ADDRESS/PORT), sends RTP to external_host and counts
--   what comes back; answered at once.
-- - audiosocket/tcp: an AudioSocket channel; the simulator connects to
--   external_host (refused: 500, as Asterisk's request fails), sends the
--   UUID message (kind 0x01), then audio (0x10, or 0x11.. for slin12..);
--   a hang-up message (0x00), an unknown kind or the connection closing
--   hang the channel up (no ChannelHangupRequest, cause 0).
-- - websocket/none, connection_type=server: a WebSocket/INCOMING channel
--   that stays Down until a client connects to /media/<connection id> on
--   the simulator's HTTP server (plain-text control messages, binary
--   audio), which answers it; not connected within 30 s: cause 19.
-- - websocket/none, connection_type=client: the scenario's
--   websocket_clients[external_host] (the simulator's
--   websocket_client.conf): the simulator connects to its uri as a
--   WebSocket client, then as above.
--
-- While the media channel is in a bridge with another channel, the
-- simulator sends that channel's audio (ari.sim.audio: silence, a tone, a
-- WAV; a talking caller) every 20 ms, and measures what the app sends
-- (ari.core.farmedia); at hang-up the figures go to the transcript (kind
-- "media").  Media runs in real time whatever the simulator's speed.
local core = require "ari.core"
local json = require "ari.sim.json"
local util = require "ari.sim.util"
local audio = require "ari.sim.audio"
local obj = json.obj
local err_body = util.err_body

-- RTP payload types of Asterisk's static table (main/rtp_engine.c)
local PT = { ulaw = 0, alaw = 8, gsm = 3, g722 = 9, slin = 10, slin16 = 118, slin12 = 122, slin24 = 123,
  slin32 = 124, slin44 = 125, slin48 = 126, slin96 = 127, slin192 = 96, g729 = 18, opus = 107,
  ilbc = 97, speex = 110, speex16 = 117, speex32 = 119, g726 = 111, adpcm = 5, lpc10 = 7, g723 = 4,
  g719 = 116, siren7 = 102, siren14 = 115 }
-- AudioSocket audio kinds (res_audiosocket.h)
local AS_KIND = { slin = 0x10, slin12 = 0x11, slin16 = 0x12, slin24 = 0x13, slin32 = 0x14, slin44 = 0x15,
  slin48 = 0x16, slin96 = 0x17, slin192 = 0x18 }
local INTERNAL = "An internal error prevented this request from being handled"
local DEFAULT_VOICE = { tone = 440, amplitude = 6000 }

-- A real-time timer of a stream (media runs in real time whatever the
-- simulator's speed), anchored in the stream until it fires or the stream goes.
local function em_timer(em, ms, fn)
  local t
  t = core.timer(math.max(0, math.floor(ms)), function()
    em.timers[t] = nil
    if not em.done then fn() end
  end)
  em.timers[t] = true
end

local function frame_bytes(format)
  local rate = audio.rate(format)
  if not rate then return nil end
  if format == "ulaw" or format == "alaw" then return rate // 50 end
  return rate // 50 * 2
end

local function uuid_bytes(s)
  local hex = s:match("^(%x%x%x%x%x%x%x%x)%-(%x%x%x%x)%-(%x%x%x%x)%-(%x%x%x%x)%-(%x%x%x%x%x%x%x%x%x%x%x%x)$")
  if not hex then return nil end
  local h = s:gsub("%-", "")
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

local function random_uuid()
  local b = {}
  for i = 1, 16 do b[i] = math.random(0, 255) end
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  return string.format("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", table.unpack(b))
end

-- "host:port" / "[v6]:port" (ast_sockaddr_split_hostport, port required)
local function split_hostport(s)
  local h, p = s:match("^%[([^%]]+)%]:(%d+)$")
  if not h then h, p = s:match("^([^:]+):(%d+)$") end
  if not h or h == "" then return nil end
  return h, tonumber(p)
end

local function numeric_host(h)
  if h == "localhost" then return "127.0.0.1" end
  if h:match("^%d+%.%d+%.%d+%.%d+$") or h:find(":", 1, true) then return h end
  return nil
end

-- The audio the channel `ch` sends into a bridge now (a spec for ari.sim.audio).
local function voice_of(ch)
  if ch.talking then return ch.voice or DEFAULT_VOICE end
  return ch.audio
end

-- Start or stop a media channel's stream after a change (bridge, answer,
-- connection, the caller starting or stopping to talk).
local function update(sim, em)
  local ch = em.ch
  local peer = em.peer
  if not peer then return end
  local other
  local br = ch.alive and ch.bridge and sim.bridges[ch.bridge]
  if br then
    for _, id in ipairs(br.channels) do
      local c = sim.channels[id]
      if id ~= ch.id and c and c.alive then
        if other == nil or (other.extmedia and not c.extmedia) then other = c end
      end
    end
  end
  local ready = em.open and ch.state == "Up" and other ~= nil
  local spec = ready and not other.extmedia and voice_of(other) or nil
  if spec ~= em.spec then
    em.spec = spec
    local data, loop = audio.render(spec, em.format)
    peer:source(data, loop)
  end
  if other and not other.extmedia and ch.call ~= other.call then
    -- the stream belongs to the caller's call in the transcript
    ch.call = other.call
    if sim.keep then sim.chan_call[ch.id] = other.call end
  end
  peer:flow(ready and true or false)
end

local function record_stats(sim, em)
  if em.recorded or not em.peer then return end
  em.recorded = true
  local s = em.peer:stats()
  local fb = em.frame_bytes
  local ms_per_byte = 20 / fb
  local m = {
    channel = em.ch.id, transport = em.transport, format = em.format,
    -- what the simulated caller sent to the app
    to_app = { frames = s.frames_out, bytes = s.bytes_out, ms = math.floor(s.bytes_out * ms_per_byte + 0.5),
      digest = s.digest_out, late_ticks = s.late_ticks },
    -- what the app sent to the caller
    from_app = { frames = s.frames_in, bytes = s.bytes_in, ms = math.floor(s.bytes_in * ms_per_byte + 0.5),
      dropped = s.dropped_in,
      rms = math.floor(s.rms_in + 0.5), peak_rms = math.floor(s.peak_rms_in + 0.5),
      loud_ms = math.floor(s.loud_frames_in * 20 + 0.5), digest = s.digest_in },
  }
  sim.media_stats[em.ch.id] = m
  sim:record { kind = "media", call = em.ch.call, channel = em.ch.id, media = m,
    summary = string.format("media %s %s %s: to app %d ms, from app %d ms (%d frames, rms %d, peak %d, loud %d ms, digest %s)",
      em.ch.id, em.transport, em.format, m.to_app.ms, m.from_app.ms, m.from_app.frames, m.from_app.rms,
      m.from_app.peak_rms, m.from_app.loud_ms, m.from_app.digest) }
end

local function finish(sim, em, ws_code)
  if em.done then return end
  em.done = true
  if em.timer then em.timer.stop(); em.timer = nil end
  for t in pairs(em.timers) do t:stop() end
  em.timers = {}
  record_stats(sim, em)
  if em.peer then em.peer:close() end
  if em.ws then pcall(em.ws.close, em.ws, ws_code or 1000, "") end
  if em.connid and not em.client then sim.media_ws[em.connid] = nil end
  sim.extmedia[em.ch.id] = nil
end

-- The media channel answers: Dial ANSWER, StasisStart (with `data` as args).
local function answered(sim, em)
  local ch = em.ch
  if not ch.alive then return end
  sim:answer(ch)
  sim:chan_event(ch, "Dial", { "dialstatus", "ANSWER", "forward", "", "dialstring", em.dialstring,
    "peer", sim:snapshot(ch) })
  sim:stasis_start(ch, em.app, em.data)
  update(sim, em)
end

-- The far end of the transport went away: Asterisk hangs the channel up.
local function peer_gone(sim, em, reason)
  if em.done or not em.ch.alive then return end
  sim:note(em.ch.call, "media %s: %s", em.ch.id, reason)
  if em.transport == "audiosocket" then
    -- chan_audiosocket's read returns no frame: no hang-up request, cause 0
    sim:hangup(em.ch, 0, false, { quiet = true })
  end
end

-- WebSocket control messages (chan_websocket, plain-text format).
local function ws_status(em)
  return string.format("STATUS channel_id:%s queue_length:%d xon_level:800 xoff_level:900 queue_full:%s bulk_media:%s media_paused:%s",
    em.ch.id, em.queue_frames(), em.queue_full and "true" or "false", em.bulk and "true" or "false",
    em.paused and "true" or "false")
end

local function ws_command(sim, em, text)
  text = text:match("^%s*(.-)%s*$")
  local cmd, data = text:match("^(%S+)%s+(.*)$")
  if not cmd then cmd = text end
  local ch = em.ch
  if cmd == "ANSWER" then
    if ch.state ~= "Up" then answered(sim, em) end
  elseif cmd == "HANGUP" then
    -- the hang-up request says 16 and the normal close (1000); the
    -- channel then goes with cause 0, as Asterisk 22 reports it
    sim:hangup(ch, 16, false, { tech_cause = 1000, destroyed_cause = 0 })
  elseif cmd == "GET_STATUS" then
    em.ws:send(ws_status(em))
  elseif cmd == "START_MEDIA_BUFFERING" then
    em.bulk = true
  elseif cmd == "STOP_MEDIA_BUFFERING" then
    em.bulk = false
    em.at_queue_end("MEDIA_BUFFERING_COMPLETED" .. (data and (" " .. data) or ""))
  elseif cmd == "MARK_MEDIA" then
    em.at_queue_end("MEDIA_MARK_PROCESSED" .. (data and (" " .. data) or ""))
  elseif cmd == "FLUSH_MEDIA" then
    em.q_until = core.now()
    em.bulk = false
  elseif cmd == "REPORT_QUEUE_DRAINED" then
    em.at_queue_end("QUEUE_DRAINED")
  elseif cmd == "PAUSE_MEDIA" then
    em.paused = true
  elseif cmd == "CONTINUE_MEDIA" then
    em.paused = false
  else
    sim:log("warn", "%s: WebSocket %s command unknown", ch.name, cmd)
  end
end

local function ws_binary(sim, em, data)
  -- Asterisk queues what the app sends and plays it at 20 ms a frame; the
  -- simulator keeps the same clock (queue length, XOFF/XON, marks)
  local now = core.now()
  if em.queue_frames() >= 1000 then return end
  em.peer:feed(data)
  local ms = #data / em.frame_bytes * 20
  if em.q_until < now then em.q_until = now end
  em.q_until = em.q_until + ms
  if not em.queue_full and em.queue_frames() >= 900 then
    em.queue_full = true
    em.ws:send("MEDIA_XOFF")
    local function check()
      if not em.queue_full or not em.ws then return end
      if em.queue_frames() < 800 then
        em.queue_full = false
        em.ws:send("MEDIA_XON")
      else
        em_timer(em, 20, check)
      end
    end
    em_timer(em, 20, check)
  end
end

--- A WebSocket upgrade for /media/<connection id> (ari.sim.transport).
-- Returns a response (status, headers, body) when it does not upgrade.
local function media_websocket(sim, req, connid)
  local em = sim.media_ws[connid]
  if not em then
    return 404, { ["content-type"] = "text/html" },
      "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\r\n<html><head>\r\n<title>404 Not found</title>\r\n</head><body>\r\n<h1>Not found</h1>\r\n<p>WebSocket instance not found</p>\r\n<hr />\r\n</body></html>\r\n"
  end
  if em.ws then
    return 409, { ["content-type"] = "text/html" }, "<html><body><h1>Conflict</h1><p>Another websocket connection exists for this connection id</p></body></html>\r\n"
  end
  local want = (req.headers and req.headers["sec-websocket-protocol"]) or ""
  local proto
  for p in want:gmatch("[^,%s]+") do if p == "media" then proto = "media" end end
  local ws = req:upgrade(proto, {
    on_message = function(_, data, binary)
      if em.done then return end
      if binary then ws_binary(sim, em, data)
      elseif #data > 0 and #data <= 127 then ws_command(sim, em, data) end
    end,
    on_close = function(_, code)
      em.ws = nil
      if em.done or not em.ch.alive then return end
      -- closed by the app: Asterisk hangs up with its own close code, 1001
      sim:hangup(em.ch, 16, false, { tech_cause = 1001 })
    end,
  })
  if not ws then return 500 end
  em.ws = ws
  em.peer:attach(ws)
  if em.timer then em.timer.stop(); em.timer = nil end
  em.open = true
  local ch = em.ch
  ws:send(string.format("MEDIA_START connection_id:%s channel:%s channel_id:%s format:%s optimal_frame_size:%d ptime:20",
    connid, ch.name, ch.id, em.format, em.optimal))
  sim:note(ch.call, "media %s: websocket connected", ch.id)
  answered(sim, em)
end

local function channels_externalMedia(sim, p, ctx)
  -- Asterisk's glue applies no defaults: read what was given
  local q, body = ctx.query or {}, ctx.body
  local function raw(name)
    local v = type(body) == "table" and body[name]
    if v ~= nil and v ~= false and v ~= json.null then return tostring(v) end
    v = q[name]
    if v == "" then return nil end
    return v
  end
  if p.app == nil or p.app == "" then return 400, err_body("app cannot be empty") end
  local transport = raw("transport") or "udp"
  local encap = raw("encapsulation") or "rtp"
  if transport == "websocket" and encap ~= "none" then
    return 400, err_body("encapsulation must be 'none' for websocket transport")
  end
  if encap == "rtp" and transport ~= "udp" then return 400, err_body("transport must be 'udp' for rtp encapsulation") end
  if encap == "audiosocket" and transport ~= "tcp" then
    return 400, err_body("transport must be 'tcp' for audiosocket encapsulation")
  end
  local ctype = raw("connection_type") or "client"
  if transport ~= "websocket" and ctype == "server" then
    return 400, err_body("'server' connection_type can only be used with the websocket transport")
  end
  local ext = raw("external_host")
  if ext == nil then
    if ctype == "client" then return 400, err_body("external_host is required for all but websocket server connections") end
    ext = "INCOMING"
  end
  local host, port
  if transport == "websocket" then
    if ctype == "client" and not (sim.websocket_clients and sim.websocket_clients[ext]) then
      -- (a scenario's websocket_clients are the simulator's websocket_client.conf)
      return 400, err_body("external_host must be a valid websocket_client connection id.")
    end
  else
    host, port = split_hostport(ext)
    if not host then return 400, err_body("external_host must be <host>:<port> for all transports other than websocket") end
  end
  local format = raw("format")
  if format == nil then return 400, err_body("format cannot be empty") end
  local direction = raw("direction")
  if direction and direction ~= "both" and direction ~= "in" and direction ~= "out" then
    return 400, err_body("Invalid direction specified")
  end
  local data = raw("data")
  local kind
  if encap == "rtp" and transport == "udp" then kind = "rtp"
  elseif encap == "audiosocket" and transport == "tcp" then
    if data == nil then return 400, err_body("data can not be empty") end
    kind = "audiosocket"
  elseif encap == "none" and transport == "websocket" then kind = "websocket"
  else return 501, err_body("The encapsulation and/or transport is not supported") end

  -- what makes Asterisk's originate fail: 500 here (the glue overwrites
  -- the originate's own 400/409 with this one)
  if PT[format] == nil and audio.rate(format) == nil then return 500, err_body(INTERNAL) end
  if sim:id_conflict(p.channelId) then return 500, err_body(INTERNAL) end
  local fb = frame_bytes(format)
  local peer_format = (format == "ulaw" or format == "alaw") and format or "slin"
  local em = { app = p.app, data = data, format = format, frame_bytes = fb or 320, transport = kind, q_until = 0, timers = {} }
  local name, dialstring, drivervars
  local hexaddr = string.format("0x%x", 0x7f0000000000 + sim:seq("ext") * 0x100)
  if kind == "rtp" then
    local ip = numeric_host(host)
    if not ip then return 500, err_body(INTERNAL) end
    if fb then
      local bind = (ip:match("^127%.") or ip == "::1") and ip or (ip:find(":", 1, true) and "::" or "0.0.0.0")
      local peer, perr = core.farmedia({ kind = "rtp", format = peer_format, frame_bytes = fb, host = ip, port = port,
        bind = bind, pt = PT[format] })
      if not peer then
        sim:log("warn", "externalMedia: %s", tostring(perr))
        return 500, err_body(INTERNAL)
      end
      em.peer = peer
    end
    local lport, laddr = 0, "127.0.0.1"
    if em.peer then lport, laddr = em.peer:local_port() end
    if laddr == "0.0.0.0" or laddr == "::" then laddr = "127.0.0.1" end
    em.open = true
    name = string.format("UnicastRTP/%s-%s", ext, hexaddr)
    dialstring = ext .. "/c(" .. format .. ")"
    drivervars = { "UNICASTRTP_LOCAL_ADDRESS", laddr, "UNICASTRTP_LOCAL_PORT", tostring(lport) }
  elseif kind == "audiosocket" then
    local uu = uuid_bytes(data)
    local ip = numeric_host(host)
    if not uu or not ip then return 500, err_body(INTERNAL) end
    local peer, perr = core.farmedia({ kind = "audiosocket", format = peer_format, frame_bytes = fb or 320,
      host = ip, port = port, uuid = uu, audio_kind = AS_KIND[format] or 0x10 }, function(ev, detail)
        if ev == "open" then em.open = true; update(sim, em)
        elseif ev == "closed" then peer_gone(sim, em, "audiosocket " .. detail) end
      end)
    if not peer then
      sim:log("warn", "externalMedia: AudioSocket connection to %s failed: %s", ext, tostring(perr))
      return 500, err_body(INTERNAL)
    end
    em.peer = peer
    name = string.format("AudioSocket/%s-%s", ext, data)
    dialstring = ext .. "/" .. data
    drivervars = { "AUDIOSOCKET_UUID", data, "AUDIOSOCKET_SERVICE", ext }
  else
    local td = raw("transport_data")
    em.optimal = fb or 0
    if ctype == "client" then
      -- chan_websocket dials the websocket_client.conf connection (the
      -- scenario's websocket_clients[ext]); its id is the connection's name
      local conf = sim.websocket_clients[ext]
      local uri = type(conf) == "table" and conf.uri or conf
      local whost, wport, wpath = tostring(uri):match("^ws://%[?([^%]/]-)%]?:(%d+)(/?.*)$")
      if not whost then
        whost, wpath = tostring(uri):match("^ws://([^/:]+)(/?.*)$")
        wport = 80
      end
      local ip = whost and numeric_host(whost)
      if not ip then return 500, err_body(INTERNAL) end
      em.connid = ext
      em.client = true
      local nonce = {}
      for i = 1, 16 do nonce[i] = string.char(math.random(0, 255)) end
      local key = require("ari.base64").encode(table.concat(nonce))
      local protocols = type(conf) == "table" and conf.protocols or "media"
      local request = string.format("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        .. "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
        wpath ~= "" and wpath or "/", whost, tonumber(wport), key, protocols)
      local peer, perr = core.farmedia({ kind = "wsclient", format = peer_format, frame_bytes = fb or 320,
        host = ip, port = tonumber(wport), request = request, key = key, protocol = protocols }, function(ev, data)
          if ev == "open" then em.client_open(sim)
          elseif ev == "text" then if #data > 0 and #data <= 127 then ws_command(sim, em, data) end
          elseif ev == "binary" then ws_binary(sim, em, data)
          elseif ev == "closed" then em.client_closed(sim, data) end
        end)
      if not peer then
        -- webchan_call fails: the channel goes (cause 3, no route), after the 200
        em.connect_error = perr
        peer = core.farmedia({ kind = "websocket", format = peer_format, frame_bytes = fb or 320 })
      end
      em.peer = peer
      em.ws = { send = function(_, msg) return peer:send_text(msg) end,
        close = function(_, code) peer:close(code) end }
      em.client_open = function()
        if em.done or not em.ch.alive then return end
        em.open = true
        local ch = em.ch
        -- Asterisk connects inside the dial's call: Dial comes once connected
        sim:chan_event(ch, "Dial", { "dialstatus", "", "forward", "", "dialstring", em.dialstring, "peer", sim:snapshot(ch) })
        em.ws:send(string.format("MEDIA_START connection_id:%s channel:%s channel_id:%s format:%s optimal_frame_size:%d ptime:20",
          em.connid, ch.name, ch.id, em.format, em.optimal))
        sim:note(ch.call, "media %s: websocket client connected to %s", ch.id, tostring(uri))
        answered(sim, em)
      end
      em.client_closed = function(_, why)
        if em.done or not em.ch.alive then return end
        sim:note(em.ch.call, "media %s: websocket %s", em.ch.id, tostring(why))
        if not em.open then
          sim:hangup(em.ch, 3, false, { quiet = true })
        else
          sim:hangup(em.ch, 16, false, { tech_cause = 1001 })
        end
      end
    else
      em.connid = random_uuid()
      em.peer = core.farmedia({ kind = "websocket", format = peer_format, frame_bytes = fb or 320 })
      sim.media_ws[em.connid] = em
    end
    name = string.format("WebSocket/%s/%s", ext, hexaddr)
    dialstring = ext .. (td and ("/" .. td) or "") .. ((not td and direction) and "/" or "")
      .. (direction and ("d(" .. direction .. ")") or "")
    drivervars = { "MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE", tostring(em.optimal), "MEDIA_WEBSOCKET_CONNECTION_ID", em.connid }
    em.queue_frames = function()
      local left = em.q_until - core.now()
      return left > 0 and math.ceil(left / 20) or 0
    end
    em.at_queue_end = function(msg)
      em_timer(em, em.q_until - core.now(), function() if em.ws then em.ws:send(msg) end end)
    end
  end
  em.dialstring = dialstring

  local ch = sim:new_channel { id = p.channelId, tech = name:match("^[^/]+"), name = name, state = "Down",
    app_name = "AppDial2", app_data = "(Outgoing Line)" }
  ch.extmedia = em
  em.ch = ch
  sim.extmedia[ch.id] = em
  -- variables: the app's, then the driver's (the reply lists them newest first)
  local order = {}
  local vars = type(body) == "table" and type(body.variables) == "table" and body.variables or {}
  local names = {}
  for k in pairs(vars) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do ch.vars[k] = tostring(vars[k]); order[#order + 1] = k end
  for i = 1, #drivervars, 2 do ch.vars[drivervars[i]] = drivervars[i + 1]; order[#order + 1] = drivervars[i] end
  sim:chan_event(ch, "ChannelDialplan", { "dialplan_app", "AppDial2", "dialplan_app_data", "(Outgoing Line)",
    "channel", sim:snapshot(ch) })
  ch.subs[p.app] = true
  ch.on_destroyed = function() finish(sim, em, em.close_code) end
  local snap = sim:snapshot(ch)
  local cv = {}
  for i = #order, 1, -1 do cv[#cv + 1] = order[i]; cv[#cv + 1] = ch.vars[order[i]] end
  json.set(snap, "channelvars", obj(cv))
  sim:note(ch.call, "externalMedia %s %s %s -> %s", kind, ext, format, ch.id)
  sim:after(0, function()
    if not ch.alive then return end
    if kind == "websocket" and em.client then
      -- a connection that fails ends the dial before its first Dial event
      -- (as on Asterisk 22: only ChannelDestroyed, cause 3)
      if em.connect_error then
        sim:note(ch.call, "media %s: websocket client connection to %s failed: %s", ch.id, ext, tostring(em.connect_error))
        sim:hangup(ch, 3, false, { quiet = true })
      end
      return
    end
    sim:chan_event(ch, "Dial", { "dialstatus", "", "forward", "", "dialstring", dialstring, "peer", sim:snapshot(ch) })
    if kind == "websocket" then
      -- the dial waits for the connection: the originate's 30 s, then cause 19
      if not em.ws then
        em.timer = sim:after(30000, function()
          em.timer = nil
          if ch.alive and not em.ws then sim:hangup(ch, 19, false, { quiet = true }) end
        end)
      end
    else
      answered(sim, em)
    end
  end)
  return 200, snap
end

-- Sim methods -------------------------------------------------------------------

local function media_bridge_changed(self, br)
  if not br then return end
  for _, id in ipairs(br.channels) do
    local em = self.extmedia[id]
    if em then update(self, em) end
  end
end

local function media_left_bridge(self, ch)
  local em = self.extmedia[ch.id]
  if em then update(self, em) end
end

local function media_voice_changed(self, ch)
  local br = ch.bridge and self.bridges[ch.bridge]
  if br then media_bridge_changed(self, br) end
end

local function media_close_all(self)
  local list = {}
  for _, em in pairs(self.extmedia) do list[#list + 1] = em end
  for _, em in ipairs(list) do finish(self, em) end
end

return util.module {
  methods = {
    media_bridge_changed = media_bridge_changed, media_left_bridge = media_left_bridge,
    media_voice_changed = media_voice_changed, media_close_all = media_close_all,
    media_websocket = media_websocket,
  },
  routes = { channels = { externalMedia = channels_externalMedia } },
  init = function(sim)
    sim.extmedia = {}      -- channel id -> stream
    sim.media_ws = {}      -- connection id -> stream (WebSocket server channels)
    sim.media_stats = {}   -- channel id -> figures, once the channel is gone
  end,
  voice_of = voice_of,
}
