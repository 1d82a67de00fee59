-- ari.metrics: Prometheus metrics and health checks, served from the loop.
--
--   local metrics = require "ari.metrics"
--   local srv = assert(metrics.start("127.0.0.1:9464"))  -- or { host = , port = }; `ari-lua --metrics ADDR`
--   GET /metrics  Prometheus text format (0.0.4)
--   GET /healthz  200 "ok" while the process runs
--   GET /readyz   200 when every ARI client's events socket is open, 503 otherwise
--   metrics.render() -> text      metrics.ready() -> bool, text      metrics.stop()
--   metrics.url("/metrics") -> the server's URL (nil when not serving)
--
-- Counting is plain integer increments in preallocated tables:
--   * events: a router on every client (client:add_router) counts by type;
--   * REST: ari.client's observer hook (client.observer) times each
--     request and counts it by operation and status;
--   * calls: read from each app's counters at scrape time;
--   * events socket: the client's websocket opener is wrapped to note when
--     the socket opened; reconnects come from the connection's stats.
-- Clients are found as they are created (ari.models.add_client is wrapped
-- while metrics run) and among existing apps when metrics start.
local core = require "ari.core"
local sched = require "ari.sched"
local log = require "ari.log"
local models = require "ari.models"
local config = require "ari.config"
local errors = require "ari.errors"

local type, pairs, ipairs, tostring, format, concat = type, pairs, ipairs, tostring, string.format, table.concat
local hrtime = core.hrtime

local M = {}

-- Histogram buckets (seconds) for REST latency.
local BUCKETS = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
M.BUCKETS = BUCKETS
local NB = #BUCKETS

local events = {}                                -- type -> count
local rest = {}                                  -- operation -> { statuses = {status -> n}, b = {...}, sum, count }
local clients = setmetatable({}, { __mode = "k" }) -- client -> { opened = ns | nil }
local started_at = os.time()
M.events, M.rest = events, rest

local function count_event(ev)
  local t = ev.type
  if t then events[t] = (events[t] or 0) + 1 end
end

local function new_op()
  local b = {}
  for i = 1, NB do b[i] = 0 end
  return { statuses = {}, b = b, sum = 0.0, count = 0 }
end

-- The REST observer (see ari.client: M.observer).
local observer = {
  start = hrtime,
  done = function(_, opname, t0, ok, status)
    local dt = (hrtime() - t0) / 1e9
    local o = rest[opname]
    if o == nil then o = new_op(); rest[opname] = o end
    local key
    if ok then key = status
    elseif type(status) == "table" and status.hangup then key = "cancelled"
    elseif type(status) == "table" and type(status.kind) == "string" then key = status.kind
    else key = "error" end
    if key == nil then key = "none" end
    local st = o.statuses
    st[key] = (st[key] or 0) + 1
    o.count = o.count + 1
    o.sum = o.sum + dt
    local b = o.b
    for i = 1, NB do
      if dt <= BUCKETS[i] then b[i] = b[i] + 1; break end
    end
  end,
}

--- Start counting for client c (done automatically for new clients while
-- metrics run, and for the clients of existing apps at start).
function M.attach(c)
  if clients[c] then return end
  local info = { opened = nil }
  clients[c] = info
  c:add_router(count_event)
  local open = c._websocket
  if type(open) == "function" then
    c._websocket = function(o)
      local on_open = o.on_open
      o.on_open = function(...)
        info.opened = hrtime()
        if on_open then return on_open(...) end
      end
      return open(o)
    end
  end
  -- a socket that is already open: count from now
  for _, s in ipairs(c._sockets or {}) do
    local ok, st = pcall(s.state, s)
    if ok and st == "open" then info.opened = hrtime() end
  end
end

local orig_add_client
local function install()
  if orig_add_client then return end
  orig_add_client = models.add_client
  models.add_client = function(c)
    orig_add_client(c)
    M.attach(c)
  end
  require("ari.client").observer = observer
  local appmod = package.loaded["ari.app"]
  if appmod then for _, a in ipairs(appmod.apps) do M.attach(a.client) end end
end

local function uninstall()
  if not orig_add_client then return end
  models.add_client = orig_add_client
  orig_add_client = nil
  require("ari.client").observer = nil
end

-- Rendering ---------------------------------------------------------------

local function esc(v)
  return (tostring(v):gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function num(v)
  if math.type(v) == "integer" then return format("%d", v) end
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" elseif v == -math.huge then return "-Inf" end
  return format("%.9g", v)
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

local function header(out, name, typ, help)
  out[#out + 1] = "# HELP " .. name .. " " .. help
  out[#out + 1] = "# TYPE " .. name .. " " .. typ
end

local function sample(out, name, labels, v)
  out[#out + 1] = name .. (labels or "") .. " " .. num(v)
end

local function live_clients()
  local list = {}
  for c, info in pairs(clients) do
    if not c._closed then list[#list + 1] = { c = c, info = info } end
  end
  table.sort(list, function(a, b) return tostring(a.c._base) .. tostring(a.c.app) < tostring(b.c._base) .. tostring(b.c.app) end)
  return list
end

local function socket_state(c)
  local socks = c._sockets or {}
  if #socks == 0 then return nil end
  local open, reconnects = true, 0
  for _, s in ipairs(socks) do
    local ok, st = pcall(s.state, s)
    if not ok or st ~= "open" then open = false end
    local sok, stats = pcall(s.stats, s)
    if sok and type(stats) == "table" then reconnects = reconnects + (stats.reconnects or 0) end
  end
  return open, reconnects
end

local function queue_depth()
  local handlers, calls = 0, 0
  for c in pairs(clients) do
    for _, reg in pairs(c._objs or {}) do
      for _, e in pairs(reg) do
        if e.tail and e.head then handlers = handlers + (e.tail - e.head + 1) end
      end
    end
  end
  local appmod = package.loaded["ari.app"]
  if appmod then
    for _, a in ipairs(appmod.apps) do
      for _, call in pairs(a.calls) do
        if type(call.queue) == "table" then calls = calls + #call.queue end
      end
    end
  end
  return handlers, calls
end

--- The metrics in Prometheus text format.
function M.render()
  local out = {}
  header(out, "ari_lua_info", "gauge", "ari-lua build information (always 1).")
  sample(out, "ari_lua_info", format('{version="%s",lua="%s"}', esc(core.version), esc(_VERSION)), 1)
  header(out, "ari_lua_start_time_seconds", "gauge", "Unix time the process started (metrics module loaded).")
  sample(out, "ari_lua_start_time_seconds", nil, started_at)

  -- calls
  local appmod = package.loaded["ari.app"]
  local apps = appmod and appmod.apps or {}
  local cnt = {}
  for i, a in ipairs(apps) do cnt[i] = a.counters or a.stats or {} end
  header(out, "ari_lua_calls_active", "gauge", "Calls in progress (incoming and originated).")
  for _, a in ipairs(apps) do sample(out, "ari_lua_calls_active", format('{app="%s"}', esc(a.name)), a.ncalls or 0) end
  header(out, "ari_lua_calls_started_total", "counter", "Incoming calls whose on_call handler was started.")
  for i, a in ipairs(apps) do sample(out, "ari_lua_calls_started_total", format('{app="%s"}', esc(a.name)), cnt[i].started or 0) end
  header(out, "ari_lua_calls_ended_total", "counter",
    "Incoming calls ended, by outcome: normal (handler returned), hangup (the caller hung up), error (handler raised).")
  for i, a in ipairs(apps) do
    for _, o in ipairs { "normal", "hangup", "error" } do
      sample(out, "ari_lua_calls_ended_total", format('{app="%s",outcome="%s"}', esc(a.name), o), cnt[i][o] or 0)
    end
  end
  header(out, "ari_lua_calls_refused_total", "counter", "Calls hung up at once: no on_call handler, or shutting down.")
  for i, a in ipairs(apps) do sample(out, "ari_lua_calls_refused_total", format('{app="%s"}', esc(a.name)), cnt[i].refused or 0) end
  header(out, "ari_lua_originates_total", "counter", "Channels originated by the app, by result.")
  for i, a in ipairs(apps) do
    sample(out, "ari_lua_originates_total", format('{app="%s",result="answered"}', esc(a.name)), cnt[i].originated or 0)
    sample(out, "ari_lua_originates_total", format('{app="%s",result="failed"}', esc(a.name)), cnt[i].failed or 0)
  end

  -- events
  header(out, "ari_lua_events_received_total", "counter", "ARI events received, by type.")
  for _, t in ipairs(sorted_keys(events)) do
    sample(out, "ari_lua_events_received_total", format('{type="%s"}', esc(t)), events[t])
  end

  -- REST
  local ops = sorted_keys(rest)
  header(out, "ari_lua_rest_requests_total", "counter",
    "ARI REST requests, by operation and HTTP status (or transport failure kind, or cancelled).")
  for _, op in ipairs(ops) do
    local st = rest[op].statuses
    for _, s in ipairs(sorted_keys(st)) do
      sample(out, "ari_lua_rest_requests_total", format('{operation="%s",status="%s"}', esc(op), esc(s)), st[s])
    end
  end
  header(out, "ari_lua_rest_request_duration_seconds", "histogram", "ARI REST request latency, by operation.")
  for _, op in ipairs(ops) do
    local o = rest[op]
    local acc = 0
    local l = esc(op)
    for i = 1, NB do
      acc = acc + o.b[i]
      sample(out, "ari_lua_rest_request_duration_seconds_bucket", format('{operation="%s",le="%g"}', l, BUCKETS[i]), acc)
    end
    sample(out, "ari_lua_rest_request_duration_seconds_bucket", format('{operation="%s",le="+Inf"}', l), o.count)
    sample(out, "ari_lua_rest_request_duration_seconds_sum", format('{operation="%s"}', l), o.sum)
    sample(out, "ari_lua_rest_request_duration_seconds_count", format('{operation="%s"}', l), o.count)
  end

  -- events socket
  local list = live_clients()
  local now = hrtime()
  local ws = {}
  for i, e in ipairs(list) do
    local open, reconnects = socket_state(e.c)
    if open == false then e.info.opened = nil end
    ws[i] = { labels = format('{url="%s",app="%s"}', esc(e.c._base), esc(e.c.app or "")), open = open,
      reconnects = reconnects, since = open and e.info.opened, connects = e.c.stats and e.c.stats.connects or 0 }
  end
  header(out, "ari_lua_ws_connected", "gauge", "1 while the client's events socket is open, else 0.")
  for _, w in ipairs(ws) do if w.open ~= nil then sample(out, "ari_lua_ws_connected", w.labels, w.open and 1 or 0) end end
  header(out, "ari_lua_ws_connected_seconds", "gauge", "How long the events socket has been open (0 while down).")
  for _, w in ipairs(ws) do
    if w.open ~= nil then sample(out, "ari_lua_ws_connected_seconds", w.labels, w.since and (now - w.since) / 1e9 or 0.0) end
  end
  header(out, "ari_lua_ws_connects_total", "counter", "Times the events socket opened (the first connection included).")
  for _, w in ipairs(ws) do if w.open ~= nil then sample(out, "ari_lua_ws_connects_total", w.labels, w.connects) end end
  header(out, "ari_lua_ws_reconnects_total", "counter", "Reconnection attempts of the events socket.")
  for _, w in ipairs(ws) do if w.open ~= nil then sample(out, "ari_lua_ws_reconnects_total", w.labels, w.reconnects) end end

  -- runtime
  local hq, cq = queue_depth()
  header(out, "ari_lua_event_queue_depth", "gauge",
    "Events received but not yet consumed: queued for obj:on handlers (queue=\"handlers\") or buffered in calls (queue=\"calls\").")
  sample(out, "ari_lua_event_queue_depth", '{queue="handlers"}', hq)
  sample(out, "ari_lua_event_queue_depth", '{queue="calls"}', cq)
  header(out, "ari_lua_coroutines", "gauge", "Coroutines alive (calls, handlers, timers in progress).")
  sample(out, "ari_lua_coroutines", nil, sched.live())
  header(out, "ari_lua_lua_memory_bytes", "gauge", "Memory in use by the Lua state.")
  sample(out, "ari_lua_lua_memory_bytes", nil, math.floor(collectgarbage("count") * 1024))
  local mem = core.memory()
  if mem then -- the C allocator's view, where it can tell (glibc)
    header(out, "ari_lua_c_heap_bytes", "gauge",
      "C heap (malloc): in use, and freed but kept by the allocator (part of the RSS).")
    sample(out, "ari_lua_c_heap_bytes", '{state="in_use"}', mem.heap_in_use)
    sample(out, "ari_lua_c_heap_bytes", '{state="free"}', mem.heap_free)
  end
  local rl = package.loaded["ari.reload"]
  if rl and rl.script then
    header(out, "ari_lua_reloads_total", "counter", "Reloads of the app script, by result.")
    sample(out, "ari_lua_reloads_total", '{result="ok"}', rl.stats.ok)
    sample(out, "ari_lua_reloads_total", '{result="failed"}', rl.stats.failed)
    header(out, "ari_lua_reload_generation", "gauge", "Generation of the app script running new calls (1 = as started).")
    sample(out, "ari_lua_reload_generation", nil, rl.generation)
  end
  out[#out + 1] = ""
  return concat(out, "\n")
end

--- Ready when there is at least one client with an events socket and
-- every such socket is open.  Returns ready, text (one line per client).
function M.ready()
  local lines, ready, any = {}, true, false
  for _, e in ipairs(live_clients()) do
    local open = socket_state(e.c)
    if open ~= nil then
      any = true
      if not open then ready = false end
      lines[#lines + 1] = format("%s %s app=%s", open and "up" or "down", tostring(e.c._base), tostring(e.c.app))
    end
  end
  if not any then ready = false; lines[#lines + 1] = "no ARI events socket" end
  return ready, concat(lines, "\n") .. "\n"
end

-- Serving --------------------------------------------------------------------

local TEXT = { ["Content-Type"] = "text/plain; charset=utf-8" }
local PROM = { ["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8" }

local function handler(req)
  if req.method ~= "GET" and req.method ~= "HEAD" then return 405, TEXT, "method not allowed\n" end
  local p = req.path
  if p == "/metrics" then return 200, PROM, M.render()
  elseif p == "/healthz" then return 200, TEXT, "ok\n"
  elseif p == "/readyz" then
    local ok, text = M.ready()
    return ok and 200 or 503, TEXT, text
  end
  return 404, TEXT, "not found (try /metrics, /healthz, /readyz)\n"
end

--- Parse "HOST:PORT", "[v6]:PORT", ":PORT", "PORT" or { host, port } ->
-- host, port, or nil and the error (ari.config.parse_address).
function M.parse_address(addr) return config.parse_address(addr, "metrics") end

local server

--- Start counting and serving.  addr: see parse_address, or { host, port }.
-- Returns the server (srv:port(), srv:url()), or nil, err.
function M.start(addr)
  local host, port = M.parse_address(addr)
  if not host then return nil, port end
  if server then return nil, errors.new { kind = "param", operation = "metrics", message = "metrics already running" } end
  local srv, err = require("ari.server").listen { host = host, port = port, max_body = 4096, handler = handler,
    keep_alive = false } -- the host's own: a one-shot script still exits
  if not srv then
    return nil, errors.new { kind = "listen", operation = "metrics", host = host, port = port,
      message = "cannot listen on " .. host .. ":" .. tostring(port) .. ": " .. tostring(err) }
  end
  server = srv
  install()
  log.info("metrics on http://%s:%d/metrics", host:find(":", 1, true) and ("[" .. host .. "]") or host, srv:port())
  return srv
end

--- Stop serving (counts are kept; new clients are no longer attached).
function M.stop()
  if server then server:close(); server = nil end
  uninstall()
end

--- URL of the running metrics server (path appended), or nil.
function M.url(path)
  if server then return server:url(path) end
end

--- Start counting without serving (tests, custom exporters).
M.install = install

return M
