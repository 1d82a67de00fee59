-- ari.media: a call's audio as a stream (docs/media.md).
--
-- call:media(opts) creates an external media channel (POST
-- /channels/externalMedia), opens the transport in the C core (RTP over
-- UDP, AudioSocket over TCP, chan_websocket), bridges the media channel
-- with the call and returns a Stream.  The core owns the socket, the
-- framing and the pacing (src/media.c); this module turns its events into
-- waits of the call's coroutine: a read waits as one of the call's waiters,
-- so the call's hang-up ends it with the Hangup error like every other wait.
local core = require "ari.core"
local sched = require "ari.sched"
local arm, wake_lean = sched.arm, sched.wake_lean
local errors = require "ari.errors"
local uuid = require "ari.uuid"
local base64 = require "ari.base64"

local M = {}

-- Errors ------------------------------------------------------------------

local MediaError = errors.class { __name = "ari.media_error", kind = "media" }
MediaError.__tostring = function(e) return "media: " .. tostring(e.message or e.reason) end
M.MediaError = MediaError

local function media_error(reason, message)
  return setmetatable({ kind = "media", reason = reason, message = message }, MediaError)
end

local function usage(msg, level) return errors.usage(msg, (level or 1) + 1) end

-- ari.audio -------------------------------------------------------------------

-- The first major whose AudioSocket carries 16 kHz (message kind 0x12)
local AS_SLIN16_SINCE = 20

local FORMATS = { ulaw = true, alaw = true, slin = true, slin16 = true }
local TRANSPORTS = { rtp = true, audiosocket = true, websocket = true }

local audio = {}
M.audio = audio

-- Call core.audio_<name>, turning its argument errors into usage errors
-- that point at the caller.
local function wrap(fn, two)
  return function(...)
    local ok, a, b = pcall(fn, ...)
    if not ok then error(usage((tostring(a):gsub("^[^:]*:%d+: ", "")), 2), 0) end
    if two then return a, b end
    return a
  end
end
audio.energy = wrap(core.audio_energy)
audio.tone = wrap(core.audio_tone)
audio.silence = wrap(core.audio_silence)
audio.decode = wrap(core.audio_decode)
audio.encode = wrap(core.audio_encode)
local info = wrap(core.audio_info, true)
function audio.rate(format) return (info(format)) end
function audio.bytes(ms, format)
  local rate, bps = info(format)
  return math.floor(ms * rate / 1000 + 0.5) * bps
end
function audio.ms(nbytes, format)
  local rate, bps = info(format)
  return nbytes / bps * 1000 / rate
end
function audio.dbfs(data, format)
  local e = audio.energy(data, format)
  if e <= 0 then return -math.huge end
  return 20 * math.log(e / 32768, 10)
end

-- The stream --------------------------------------------------------------

local Stream = {}
Stream.__index = Stream
M.Stream = Stream

function Stream.__tostring(self) return "MediaStream(" .. tostring(self.channel_id) .. ")" end

local function never() return false end

-- The core's events for this stream: wake whoever waits for them.
local function on_event(self, kind)
  if kind == "data" or kind == "timeout" then
    local co = self._rco
    if co then -- the lean read (read_wait); "timeout" is only ever its
      self._rco = nil
      wake_lean(co, self._rtok, kind)
    end
    if kind == "timeout" then return end
  elseif kind == "text" then
    local s = self._s
    local t = s:text()
    while t do
      self:_control(t)
      t = s:text()
    end
    return
  end
  if kind == "closed" then
    -- the peer or an error ended the transport: the media channel and the
    -- bridge go too, and a waiting read/drain returns "closed"
    local _, why = self._s:state()
    self:_gone(why or "peer")
    return
  end
  local w = self._waiting
  if w and (kind == w.want or kind == "closed" or (kind == "open" and w.want == "open")) then
    self._waiting = nil
    w.wake(kind)
  end
end

M._on_event = on_event -- for the specs (a Stream over a bare core stream)

-- A WebSocket text (control) message from Asterisk.
function Stream:_control(t)
  local ev = t:match('^{.-"event"%s*:%s*"([%w_]+)"') or t:match("^([%w_]+)")
  if ev == "MEDIA_START" then
    self.media_start = t
    self.optimal_frame_size = tonumber(t:match("optimal_frame_size[\":%s]+(%d+)"))
  end
  self.last_control = t
end

-- [perf] a read/drain waits many times a second (every 20 ms frame): the
-- stream keeps one wait record and one re-armable timer (timer:again) for
-- all its waits rather than a table, a closure and a uv timer per wait.  A
-- stream has one reader at a time (its call's coroutine); a second
-- coroutine waiting on the same stream gets a record of its own.
-- A wait record: in the call's waiters while its wait lasts (the call's
-- hang-up wakes it with (mark, Hangup error)); its wake outlives the waits
-- and wakes only the current one (sched.wake's token check).
local function new_record()
  local w = { match = never }
  w.wake = function(...) return sched.wake(w.co, w.tok, ...) end
  return w
end

local function on_timeout(self)
  local w = self._w -- the shared timer is the shared record's
  if w and w.timed then w.wake("timeout") end
end

local function wait_start(tok, self, w)
  w.tok = tok
  self._waiting = w
  local ws = self.call.waiters
  ws[#ws + 1] = w
  local want = w.want
  if want == "data" then self._s:want(true)
  elseif want == "drained" then self._s:want_drain(true) end
  local timeout = w.timeout
  if timeout and timeout >= 0 then
    if w ~= self._w then
      -- a second waiter on the stream: a timer of its own
      w.timer = core.timer(timeout, function() w.wake("timeout") end)
      return
    end
    local t = self._timer
    if not t then
      t = core.timer(timeout, function() on_timeout(self) end)
      self._timer = t
    end
    t:again(timeout)
    w.timed = true
  end
end

-- why: what woke the wait (nil after a cancel).  The shared timer is left
-- armed (the next wait re-arms it; should it fire between waits it finds no
-- timed wait and does nothing): a C call less per frame.  A "data" or
-- "drained" event has already cleared the core's want flag.
local function wait_end(self, w, why)
  if w.timer then w.timer:stop(); w.timer = nil end
  w.timed = false
  if self._waiting == w then self._waiting = nil end
  local want = w.want
  if why ~= want then
    if want == "data" then self._s:want(false)
    elseif want == "drained" then self._s:want_drain(false) end
  end
  local ws = self.call.waiters
  for i = #ws, 1, -1 do
    if ws[i] == w then table.remove(ws, i); break end
  end
  if self._w_busy == w then self._w_busy = nil end
end

-- Wait for the core event `want` ("data", "drained", "open"): returns the
-- event's kind ("timeout" after timeout ms, "closed"); raises the call's
-- Hangup error when the call ends meanwhile.
function Stream:_wait(want, timeout)
  local co = coroutine.running()
  local w = self._w
  if self._w_busy or not w or self._rco then
    -- the shared record (and timer) busy, or the lean read's timer armed
    w = new_record()
    if not self._w_busy and not self._rco then self._w = w end
  end
  w.co, w.want, w.timeout, w.timed = co, want, timeout, false
  if w == self._w then self._w_busy = w end
  local a, b = sched.suspend_token(wait_start, self, w, wait_end)
  wait_end(self, w, a)
  if type(a) ~= "string" then
    -- woken by the call's hang-up: (mark, Hangup error)
    error(b or self.call:_hangup_error(), 0)
  end
  return a
end

local function check_call(self)
  local call = self.call
  if call.hungup then error(call:_hangup_error(), 0) end
end

-- [perf] The lean read wait: the call's own coroutine, the only reader,
-- waiting for "data".  Every 20 ms frame of every stream goes through it,
-- so it keeps no record, no Lua timer and no entry in the call's waiters:
-- the stream remembers the coroutine and its token (self._rco,
-- self._rtok), the core times the wait (want(true, timeout) -> a
-- "timeout" event) and on_event / _gone wake it by token
-- (sched.wake_lean).  A hang-up cancels the call's coroutine
-- (Call:_mark_hungup: it waits in no call-waiter), which raises the call's
-- Hangup error here.  Returns the wake's reason ("data", "timeout",
-- "closed"), or false when this read cannot wait lean (another coroutine,
-- or another waiter on the stream): then Stream:_wait does.
local yield, CANCEL = coroutine.yield, sched.CANCEL
local function read_wait(self, s, timeout)
  local co, tok = arm()
  if co ~= self.call.co or self._rco ~= nil or self._w_busy ~= nil then return false end
  self._rco, self._rtok = co, tok
  s:want(true, timeout)
  local why, err = yield()
  if why ~= "data" then
    if self._rco == co then self._rco = nil end
    if why ~= "timeout" then s:want(false) end
    if why == CANCEL then error(err, 0) end
  end
  return why
end

--- m:read([timeout_ms]) -> data, ms | nil, "timeout" | nil, "closed"
function Stream:read(timeout)
  local s = self._s
  local data, ms = s:read()
  if data then return data, ms end
  if timeout ~= nil and timeout ~= self._timeout_ok then
    if type(timeout) ~= "number" then error(usage("media:read: timeout must be a number (ms)", 2), 0) end
    self._timeout_ok = timeout
  end
  if self.closed then return nil, "closed" end
  local call = self.call
  if call.hungup then error(call:_hangup_error(), 0) end
  while true do
    local why = read_wait(self, s, timeout) or self:_wait("data", timeout)
    data, ms = s:read()
    if data then return data, ms end
    if why == "timeout" then return nil, "timeout" end
    if why == "closed" or self.closed or s:state() == "closed" then
      self:_gone(self.closed_reason or "peer")
      return nil, "closed"
    end
  end
end

--- m:write(data) -> true | nil, err
function Stream:write(data)
  if type(data) ~= "string" then error(usage("media:write: data must be a string", 2), 0) end
  if self._wide and #data % 2 == 1 then
    error(usage(string.format("media:write: %s data must be whole 16-bit samples (got %d bytes)", self.format, #data), 2), 0)
  end
  if self.closed then return nil, media_error("closed", "the stream is closed") end
  if self.call.hungup then error(self.call:_hangup_error(), 0) end
  if self._rtp16 then
    -- chan_rtp maps only static payload types on receive (up to 34): a
    -- dynamic one (slin16's) is dropped by Asterisk
    return nil, media_error("unsupported", "Asterisk's RTP channel drops slin16 it receives (no dynamic payload "
      .. "types): write ulaw, alaw or slin over RTP, or use the audiosocket or websocket transport")
  end
  local ok, why = self._s:write(data)
  if ok then return true end
  if why == "overflow" then
    return nil, media_error("overflow", string.format("output queue full (%d ms queued, limit %d ms)",
      math.floor(self._s:queued()), self.queue_ms))
  end
  self:_gone(self.closed_reason or "peer")
  return nil, media_error("closed", "the stream is closed")
end

--- m:drain([timeout_ms]) -> true | nil, "timeout" | nil, "closed"
function Stream:drain(timeout)
  if self.closed then return nil, "closed" end
  if self._s:queued() == 0 then return true end
  check_call(self)
  local why = self:_wait("drained", timeout)
  if why == "drained" then return true end
  if why == "timeout" then return nil, "timeout" end
  return nil, "closed"
end

--- m:flush() -> ms of audio dropped
function Stream:flush()
  if self.closed then return 0 end
  local ms = self._s:flush()
  if self.transport == "websocket" then self._s:send_text("FLUSH_MEDIA") end
  return ms
end

function Stream:stats() return self._s:stats() end

-- The transport ended (peer, error) or the stream was closed: tear down.
function Stream:_gone(reason)
  if self.closed then return end
  self.closed = true
  if self.listener and self.listener._l then self.listener._l:forget(self.channel_id) end
  self.closed_reason = self.closed_reason or reason
  self._s:close(reason)
  if self._timer then self._timer:stop(); self._timer = nil end
  local w = self._waiting
  if w then self._waiting = nil; w.wake("closed") end
  local co = self._rco
  if co then self._rco = nil; wake_lean(co, self._rtok, "closed") end
  local ext, bridge = self.ext, self.bridge
  -- the bridge is the call's (call:bridge_with destroys it when the call
  -- hangs up): destroyed here only when the stream ends before the call
  local own_bridge = bridge and not (self.call and self.call.hungup) and not bridge._destroyed
  if own_bridge then bridge._destroyed = true end
  sched.spawn(function()
    if ext and not ext.hungup then pcall(ext.hangup, ext) end
    if own_bridge then pcall(bridge.destroy, bridge) end
  end)
end

--- m:close(): idempotent; the call stays up.
function Stream:close() self:_gone("closed") end

-- call:media ----------------------------------------------------------------

local function server_addr(client)
  local base = client._base or ""
  local scheme, host, port = base:match("^(%a+)://%[?([^%]/]-)%]?:(%d+)")
  if not host then
    scheme, host = base:match("^(%a+)://([^/:]+)")
    port = scheme == "https" and 443 or 80
  end
  if host == "localhost" then host = "127.0.0.1" end
  return host, tonumber(port), scheme
end

local function check_opts(opts)
  if opts ~= nil and type(opts) ~= "table" then error(usage("call:media: opts must be a table", 3), 0) end
  opts = opts or {}
  local fmt = opts.format or "slin16"
  if not FORMATS[fmt] then
    error(usage(string.format("call:media: unknown format '%s' (ulaw, alaw, slin, slin16)", tostring(fmt)), 3), 0)
  end
  local tr = opts.transport or "rtp"
  if not TRANSPORTS[tr] then
    error(usage(string.format("call:media: unknown transport '%s' (rtp, audiosocket, websocket)", tostring(tr)), 3), 0)
  end
  if tr == "audiosocket" and fmt ~= "slin" and fmt ~= "slin16" then
    error(usage(string.format("call:media: the audiosocket transport carries slin or slin16, not %s", fmt), 3), 0)
  end
  local ct = opts.connection_type
  if ct ~= nil and tr ~= "websocket" then error(usage("call:media: connection_type is for the websocket transport", 3), 0) end
  ct = ct or (tr == "websocket" and "server" or nil)
  if ct ~= nil and ct ~= "server" and ct ~= "client" then
    error(usage(string.format("call:media: unknown connection_type '%s' (server, client)", tostring(ct)), 3), 0)
  end
  if ct == "client" and (opts.connection == nil or opts.listener == nil) then
    error(usage("call:media: connection_type = \"client\" needs connection (its websocket_client.conf name) and listener", 3), 0)
  end
  if ct == "client" and getmetatable(opts.listener) ~= M.Listener then
    error(usage("call:media: listener must be an ari.media.listen{} listener", 3), 0)
  end
  for _, k in ipairs { "queue_ms", "in_queue_ms", "timeout" } do
    local v = opts[k]
    if v ~= nil and (math.type(v) ~= "integer" or v < 20) then
      error(usage("call:media: " .. k .. " must be an integer of at least 20 (ms)", 3), 0)
    end
  end
  local st = opts.stall_timeout
  if st ~= nil and (math.type(st) ~= "integer" or st < 0 or st > 86400000) then
    error(usage("call:media: stall_timeout must be an integer number of ms (0: never)", 3), 0)
  end
  return opts, fmt, tr, ct
end

local function fail(reason, message, extra)
  local callmod = require "ari.call"
  return callmod.call_error("media", reason, message, extra)
end

--- call:media(opts) -> Stream (docs/media.md)
function M.open(call, opts)
  local fmt, tr, ct
  opts, fmt, tr, ct = check_opts(opts)
  if call.hungup then error(call:_hangup_error(), 0) end
  local app, client = call.app, call.client
  local major = client.server and client.server.major
  if tr == "audiosocket" and fmt == "slin16" and major and major < AS_SLIN16_SINCE then
    error(errors.new { kind = "unsupported", operation = "call:media", since = AS_SLIN16_SINCE,
      message = "slin16 over AudioSocket needs Asterisk " .. AS_SLIN16_SINCE .. " or later (this is " .. tostring(major) .. ")" }, 0)
  end
  if tr == "websocket" and major and major < 20 then
    error(errors.new { kind = "unsupported", operation = "call:media", since = 20,
      message = "the websocket media transport needs Asterisk 20 or later (this is " .. tostring(major) .. ")" }, 0)
  end
  app:wait_registered("media")
  local host = opts.host or "127.0.0.1"
  local id = uuid.new()
  local self = setmetatable({
    call = call, format = fmt, transport = tr, connection_type = ct, frame_ms = 20,
    queue_ms = opts.queue_ms or 2000, channel_id = id,
  }, Stream)
  self.rate, self.frame_bytes = audio.rate(fmt), audio.bytes(20, fmt)
  self._wide = fmt == "slin" or fmt == "slin16" -- 16-bit samples: whole ones only
  self._rtp16 = tr == "rtp" and fmt == "slin16" -- m:write refuses it (see there)
  local s, err = core.media_new({ transport = tr, format = fmt, queue_ms = opts.queue_ms, in_queue_ms = opts.in_queue_ms,
    stall_ms = opts.stall_timeout, bind = opts.bind or host, uuid = id }, function(kind) on_event(self, kind) end)
  if not s then error(fail("bind", err), 0) end
  self._s = s
  local ext = app:expect(id)
  self.ext = ext
  local params = { channelId = id, app = app.name, format = fmt, variables = opts.variables }
  if tr == "rtp" then
    params.external_host = host .. ":" .. s:port()
    params.encapsulation, params.transport = "rtp", "udp"
  elseif tr == "audiosocket" then
    params.external_host = host .. ":" .. s:port()
    params.encapsulation, params.transport, params.data = "audiosocket", "tcp", id
  else
    params.encapsulation, params.transport, params.connection_type = "none", "websocket", ct
    if ct == "client" then
      params.external_host = opts.connection
      -- Asterisk connects while the channel is being set up: expected before the request
      local lis = opts.listener
      lis._l:expect(id, s)
      self.listener = lis
    end
  end
  self.external_host = params.external_host
  local ok, ch = pcall(client.channels.externalMedia, params)
  if not ok then
    if self.listener then self.listener._l:forget(id) end
    s:close("error"); self.closed = true
    app:forget(ext)
    if errors.is(ch, "hangup") then error(ch, 0) end
    error(fail("failed", "externalMedia failed: " .. tostring(ch), { status = type(ch) == "table" and ch.status or nil, error = ch }), 0)
  end
  self.channel = ch
  local vars = type(ch) == "table" and ch.channelvars or {}
  local function abort(e)
    self:_gone("error")
    app:forget(ext)
    error(e, 0)
  end
  if tr == "rtp" then
    local addr, port = vars.UNICASTRTP_LOCAL_ADDRESS, tonumber(vars.UNICASTRTP_LOCAL_PORT)
    if not addr or not port then abort(fail("failed", "the RTP channel did not say where it listens (UNICASTRTP_LOCAL_ADDRESS/PORT)")) end
    s:set_peer(addr, port)
  elseif tr == "websocket" and ct == "server" then
    local cid = vars.MEDIA_WEBSOCKET_CONNECTION_ID
    local ahost, aport = server_addr(client)
    if not cid or not ahost then abort(fail("failed", "the websocket channel has no MEDIA_WEBSOCKET_CONNECTION_ID")) end
    local auth = ""
    if client._user then auth = "Authorization: Basic " .. base64.encode(client._user .. ":" .. (client._password or "")) .. "\r\n" end
    local cok, cerr = pcall(s.ws_connect, s, ahost, aport, "/media/" .. cid, auth)
    if not cok then abort(fail("failed", tostring(cerr))) end
  end
  -- the media channel enters the app
  local sok, ev = pcall(ext._wait, ext, function(e) return e.type == "StasisStart" end, opts.timeout or 5000)
  if not sok or ev == nil then
    abort(sok and fail("timeout", "the media channel did not enter the app") or ev)
  end
  ext.started = true
  app.counters.started = app.counters.started + 1
  ext:_set_channel(ev.channel)
  self.channel = ext.channel
  ext:on_hangup(function() self:_gone("peer") end)
  call:on_hangup(function() self:_gone("hangup") end)
  -- the transport comes up (AudioSocket: Asterisk connects; websocket: the handshake)
  if s:state() == "opening" then
    local why = self:_wait("open", opts.timeout or 5000)
    if why ~= "open" then
      local _, reason = s:state()
      abort(fail("timeout", "the " .. tr .. " transport did not come up: " .. tostring(reason or why)))
    end
  end
  local bok, bridge = pcall(call.bridge_with, call, ext)
  if not bok then abort(bridge) end
  self.bridge = bridge
  return self
end

-- ari.media.listen ----------------------------------------------------------

local Listener = {}
Listener.__index = Listener
M.Listener = Listener

--- ari.media.listen{ host = "127.0.0.1", port = 0 } -> listener: where
-- Asterisk's websocket_client.conf connections (connection_type "client")
-- point.  listener:port(), listener:url([path]), listener:stats(),
-- listener:close().
function M.listen(opts)
  if opts ~= nil and type(opts) ~= "table" then error(usage("ari.media.listen: opts must be a table", 2), 0) end
  opts = opts or {}
  local host = opts.host or "127.0.0.1"
  local port = opts.port or 0
  if math.type(port) ~= "integer" or port < 0 or port > 65535 then error(usage("ari.media.listen: bad port", 2), 0) end
  local l, err = core.media_listen(host, port)
  if not l then error(errors.new { kind = "listen", operation = "ari.media.listen", host = host, port = port, message = err }, 0) end
  local lis = setmetatable({ _l = l, host = host }, Listener)
  M.open_listeners[lis] = true
  return lis
end

-- [one-shot] open listeners keep a one-shot host running (lua/ari/cli.lua)
M.open_listeners = setmetatable({}, { __mode = "k" })
function M.listening()
  local n = 0
  for lis in pairs(M.open_listeners) do n = n + 1 end
  return n
end

function Listener:port() return self._l:port() end
function Listener:url(path)
  local h = self.host:find(":", 1, true) and ("[" .. self.host .. "]") or self.host
  return "ws://" .. h .. ":" .. tostring(self._l:port()) .. (path or "/media")
end
function Listener:stats() return self._l:stats() end
function Listener:close()
  M.open_listeners[self] = nil
  self._l:close()
end

return M
