-- ari.sim.channels: simulated channels, their far ends, and /channels.
--
-- An ordinary module: its Sim methods, route handlers (named
-- <resource>_<nickname> after the ARI operation) and helpers are top-level
-- local functions; the table it returns (methods, routes, helpers) is
-- installed by ari.sim (init.lua).
local json = require "ari.sim.json"
local util = require "ari.sim.util"
local dialplan = require "ari.sim.dialplan"
local obj, arr = json.obj, json.arr
local err_body = util.err_body

local CAUSE_TXT = {
  [0] = "Unknown", [1] = "Unallocated (unassigned) number", [3] = "No route to destination",
  [16] = "Normal Clearing", [17] = "User busy", [18] = "No user responding",
  [19] = "User alerting, no answer", [21] = "Call Rejected", [26] = "Answered elsewhere",
  [27] = "Destination out of order", [28] = "Invalid number format", [31] = "Normal, unspecified",
  [34] = "Circuit/channel congestion", [38] = "Network out of order", [41] = "Temporary failure",
  [42] = "Switching equipment congestion", [58] = "Bearer capability not available",
  [127] = "Interworking, unspecified",
}
local REASONS = {
  normal = 16, busy = 17, congestion = 34, no_answer = 19, timeout = 18, rejected = 21,
  unallocated = 1, normal_unspecified = 31, number_incomplete = 28, codec_mismatch = 58,
  interworking = 127, failure = 38, answered_elsewhere = 26,
}

-- Caller id "Name" <number> | number | name
local function parse_callerid(s)
  if s == nil or s == "" then return { name = "", number = "" } end
  local name, num = s:match('^%s*"(.-)"%s*<(.-)>%s*$')
  if not name then name, num = s:match("^%s*(.-)%s*<(.-)>%s*$") end
  if name then return { name = name, number = num } end
  if s:match("^[%d%+%*#]+$") then return { name = "", number = s } end
  return { name = s, number = "" }
end

local function cid(c) return obj { "name", c.name or "", "number", c.number or "" } end

local function snapshot(self, ch)
  local vars
  if next(ch.report) then
    vars = {}
    for k in pairs(ch.report) do vars[k] = ch.vars[k] or "" end
  end
  return obj {
    "id", ch.id, "name", ch.name, "state", ch.state, "protocol_id", ch.protocol_id,
    "caller", cid(ch.caller), "connected", cid(ch.connected), "accountcode", "",
    "dialplan", obj { "context", ch.dialplan.context, "exten", ch.dialplan.exten,
      "priority", ch.dialplan.priority, "app_name", ch.dialplan.app_name,
      "app_data", ch.dialplan.app_data },
    "creationtime", ch.creationtime, "language", ch.language, "channelvars", vars,
  }
end

--- Check a client-assigned id: nil if usable, else (409, body).
local function id_conflict(self, id)
  if id == nil or id == "" then return nil end
  for other in pairs(self.channels) do
    if other == id or other:sub(1, #id) == id or id:sub(1, #other) == other then
      return 409, err_body("Channel with given unique ID already exists")
    end
  end
  for other in pairs(self.bridges) do
    if other == id then return 409, err_body("Channel with given unique ID already exists") end
  end
  return nil
end

local function new_call(self, label)
  self.call_seq = self.call_seq + 1
  local c = { id = "call-" .. self.call_seq, label = label, channels = {} }
  if not self.keep then return c.id end
  self.calls[#self.calls + 1] = c
  self.calls[c.id] = c
  return c.id
end

--- Create a channel.  o = { id, name | tech+resource, state, caller, connected,
-- context, exten, priority, app_name, app_data, call, far }
local function new_channel(self, o)
  local id = (o.id and o.id ~= "") and o.id or self:uniqueid()
  local name = o.name
  if name == nil then
    local n = self:seq("chan")
    name = string.format("%s/%s-%08x", o.tech or "PJSIP", o.resource or "sim", n)
    if o.tech == "Local" then name = name .. ";1" end
  end
  local ch = {
    id = id, name = name, state = o.state or "Down", protocol_id = o.protocol_id or "",
    caller = o.caller or { name = "", number = "" }, connected = o.connected or { name = "", number = "" },
    dialplan = { context = o.context or "default", exten = o.exten or "s", priority = o.priority or 1,
      app_name = o.app_name or "", app_data = o.app_data or "" },
    creationtime = self:timestamp(), language = o.language or "en",
    vars = {}, report = {}, subs = {}, app = nil, bridge = nil, tech = o.tech or "PJSIP",
    far = o.far or {}, call = o.call or self:new_call(name), playq = {}, alive = true,
    dtmf_log = "", received_dtmf = "", created_ms = self:elapsed(),
  }
  self.channels[id] = ch
  if self.keep then self.chan_call[id] = ch.call end
  self.channel_order[#self.channel_order + 1] = id
  local call = self.calls[ch.call]
  if call then call.channels[#call.channels + 1] = id end
  -- ChannelCreated reaches only subscribeAll apps: an app is subscribed
  -- to a channel after it exists
  self:chan_event(ch, "ChannelCreated", { "channel", self:snapshot(ch) })
  if o.subscribe then ch.subs[o.subscribe] = true end
  return ch
end

local function find_channel(self, id) return self.channels[id] end

local function set_state(self, ch, state)
  if ch.state == state then return end
  ch.state = state
  self:chan_event(ch, "ChannelStateChange", { "channel", self:snapshot(ch) })
  self:local_devstate(ch)
  if ch.far_waiters then self:wake_far(ch, "state") end
end

--- Asterisk re-reads the device state of a channel's device on each state
-- change and when the channel goes; for Local/exten@context it is INUSE
-- while the pair's ;2 runs its dialplan, NOT_INUSE once the call is being
-- torn down.  DeviceStateChanged reaches subscribeAll apps (and apps
-- subscribed to deviceState:Local/...).  Only Local devices are simulated.
local function local_devstate(self, ch)
  if ch.tech ~= "Local" then return end
  local name = ch.name:match("^(.*)%-[^%-]*$")
  if not name then return end
  local other = ch.peer
  local up = ch.alive and not ch.hanging and other ~= nil and other.alive and not other.hanging
  local d = self.device_states[name]
  local subs = d and d.subs or {}
  self:deliver("DeviceStateChanged", { "device_state", obj { "name", name, "state", up and "INUSE" or "NOT_INUSE" } },
    self:targets(subs), ch.call)
end

local function set_var(self, ch, name, value, quiet)
  ch.vars[name] = value
  if not quiet then
    self:chan_event(ch, "ChannelVarset", { "variable", name, "value", value, "channel", self:snapshot(ch) })
  end
end

local function split_args(s)
  local t = arr {}
  if s == nil or s == "" then return t end
  for a in (s .. ","):gmatch("([^,]*),") do t[#t + 1] = a end
  return t
end

--- Put a channel into a Stasis app (StasisStart).
-- opts.direct: entered without the Stasis() dialplan application (snoop,
-- move): no STASISSTATUS, and the app's subscription ends with StasisEnd
-- unless the app was subscribed before.
local function stasis_start(self, ch, appname, args, extra, opts)
  if not self:app_active(appname) then
    -- Stasis() fails for an unregistered application: the channel goes on
    -- in the dialplan, which the simulator ends with a hang-up.
    self:log("warn", "stasis app '%s' is not registered; hanging up %s", appname, ch.id)
    self:set_var(ch, "STASISSTATUS", "FAILED", true)
    self:after(0, function() self:hangup(ch, 16) end)
    return false
  end
  local direct = opts and opts.direct
  ch.app = appname
  ch.stasis_direct = direct
  if not ch.subs[appname] then ch.subs[appname] = direct and "stasis" or true end
  ch.dialplan.app_name = "Stasis"
  ch.dialplan.app_data = appname .. ((args and args ~= "") and ("," .. args) or "")
  if not direct then self:set_var(ch, "STASISSTATUS", "") end
  local fields = { "args", split_args(args), "channel", self:snapshot(ch) }
  if extra then for _, v in ipairs(extra) do fields[#fields + 1] = v end end
  self:deliver("StasisStart", fields, { appname }, ch.call)
  self:wake_far(ch, "stasis")
  return true
end

--- StasisEnd.  defer_status: the STASISSTATUS of a channel that goes on
-- in the dialplan is set when that ends (continueInDialplan of an
-- originated channel: Asterisk's Stasis() returns only then).
local function stasis_end(self, ch, defer_status)
  if not ch.app then return end
  local app = ch.app
  ch.app = nil
  self:deliver("StasisEnd", { "channel", self:snapshot(ch) }, { app }, ch.call)
  if ch.subs[app] == "stasis" then ch.subs[app] = nil end
  if ch.stasis_direct then
    ch.stasis_direct = nil
  elseif defer_status then
    ch.pending_stasis_status = true
  else
    self:set_var(ch, "STASISSTATUS", "SUCCESS")
  end
  self:wake_far(ch, "stasis_end")
end

--- Hang up a channel.  by_app: hung up through ARI (soft hangup request).
-- opts.propagated: the other half of a Local pair going down with it (its
-- first ChannelHangupRequest was sent already, before the other half's
-- ChannelDestroyed, as Asterisk does); opts.quiet: no ChannelHangupRequest
-- (an originate that timed out, a far end that said busy, a call that
-- could not be placed); opts.peer_quiet: nor for the other half;
-- opts.explicit: the channel's own dialplan hung up (Hangup()).
-- A channel that runs a dialplan (the ;2 half of a Local pair) sends a
-- second, soft ChannelHangupRequest (cause 16) before ChannelDestroyed:
-- the PBX thread's own hang-up, as Asterisk does.
local function hangup(self, ch, cause, by_app, opts)
  if not ch.alive or ch.hanging then return end
  if type(opts) ~= "table" then opts = { propagated = opts and true or nil } end
  ch.hanging = true
  cause = cause or 16
  if by_app then
    self:chan_event(ch, "ChannelHangupRequest", { "cause", 32, "soft", true, "channel", self:snapshot(ch) })
  elseif not (opts.propagated or opts.quiet or opts.explicit) and (ch.app or ch.state == "Up") then
    -- tech_cause: a channel driver's own cause (chan_websocket's close code)
    local f = { "cause", cause }
    if opts.tech_cause then f[3] = "tech_cause"; f[4] = opts.tech_cause end
    f[#f + 1] = "channel"; f[#f + 1] = self:snapshot(ch)
    self:chan_event(ch, "ChannelHangupRequest", f)
  end
  -- an originate still dialling ends with Dial NOANSWER (as in the run log)
  local pending = ch.dial_pending
  if pending then ch.dial_pending = nil; if not opts.quiet then pending("NOANSWER") end end
  self:stop_channel_media(ch, by_app)
  if ch.bridge then self:bridge_remove(self.bridges[ch.bridge], ch, true) end
  self:stasis_end(ch)
  local peer = ch.peer
  if peer and peer.alive and not peer.hanging then
    if not opts.peer_quiet then
      self:chan_event(peer, "ChannelHangupRequest", { "cause", cause, "channel", self:snapshot(peer) })
    end
  else
    peer = nil
  end
  if ch.pending_stasis_status then
    ch.pending_stasis_status = nil
    self:set_var(ch, "STASISSTATUS", "SUCCESS")
  end
  if ch.runs_dialplan == true and not opts.peer_quiet_self then
    self:chan_event(ch, "ChannelHangupRequest", { "cause", 16, "soft", true, "channel", self:snapshot(ch) })
  end
  ch.alive = false
  self.channels[ch.id] = nil
  for i, id in ipairs(self.channel_order) do
    if id == ch.id then table.remove(self.channel_order, i) break end
  end
  local dcause = ch.dp_cause or opts.destroyed_cause or cause
  local df = { "cause", dcause, "cause_txt", CAUSE_TXT[dcause] or "Unknown" }
  if opts.tech_cause then df[5] = "tech_cause"; df[6] = opts.tech_cause end
  df[#df + 1] = "channel"; df[#df + 1] = self:snapshot(ch)
  self:chan_event(ch, "ChannelDestroyed", df)
  self:local_devstate(ch)
  if ch.pending_cid then self:apply_deferred(ch) end
  if ch.dial_timer then ch.dial_timer.stop() end
  if ch.far_timers then for _, t in ipairs(ch.far_timers) do t.stop() end end
  ch.hangup_cause = dcause
  self:wake_far(ch, "hangup")
  if ch.on_destroyed then ch.on_destroyed(ch) end
  if self.on_channel_gone then self.on_channel_gone(ch) end
  if peer then
    self:hangup(peer, cause, false, { propagated = true, peer_quiet_self = opts.peer_quiet })
  end
end

local function answer(self, ch)
  if ch.state ~= "Up" then
    self:set_state(ch, "Up")
    ch.answered_ms = self:elapsed()
  end
  local f = ch.on_local_answer
  if f then ch.on_local_answer = nil; f() end
end

--- A Local/ endpoint: the ;2 half of the pair for ;1 `ch` (Ring, runs the
-- dialplan of exten@context, i.e. the scenario's far end).  `subscribe`:
-- the originating app, which Asterisk subscribes to both halves.
local function local_peer(self, ch, other_id, subscribe)
  local peer = self:new_channel {
    id = other_id, name = (ch.name:gsub(";1$", ";2")), tech = "Local", state = "Ring",
    caller = { name = ch.caller.name, number = ch.caller.number },
    connected = { name = ch.connected.name, number = ch.connected.number },
    context = ch.dialplan.context, exten = ch.dialplan.exten, call = ch.call, subscribe = subscribe,
  }
  peer.far = ch.far
  -- ;2 runs the dialplan (its hang-up ends with the PBX's soft request)
  peer.runs_dialplan = true
  ch.peer, peer.peer = peer, ch
  return peer
end

-- A wait of a scenario script on its channel (see ari.sim.scenario).
local function wake_far(self, ch, what)
  local ws = ch.far_waiters
  if not ws then return end
  ch.far_waiters = nil
  for _, w in ipairs(ws) do w(what) end
end

--- DTMF pressed by the simulated far end: ChannelDtmfReceived.
local function far_dtmf(self, ch, digit, duration)
  if not ch.alive then return end
  self:chan_event(ch, "ChannelDtmfReceived", { "digit", digit, "duration_ms", duration or 100,
    "channel", self:snapshot(ch) })
  if self.on_dtmf then self.on_dtmf(ch, digit) end
end

-- Outbound calls: the far end's behaviour ----------------------------------

-- Technologies a simulated Asterisk has channel drivers for; dialling any
-- other is 500 "Allocation failed", as Asterisk answers for a technology
-- with no channel driver.  (The scenario's `technologies` replaces it.)
local TECHS = { PJSIP = true, SIP = true, IAX2 = true, DAHDI = true, Local = true, Motif = true,
  UnicastRTP = true, AudioSocket = true, WebSocket = true, Console = true, Multicast = true,
  Snoop = true, Announcer = true, Recorder = true, MulticastRTP = true, ALSA = true, OSS = true,
  USTM = true, Skinny = true, MGCP = true, unistim = true, SCCP = true, H323 = true, OOH323 = true }

--- Is there a channel driver for endpoint technology `tech`?
local function tech_known(self, tech)
  local list = self.scenario and self.scenario.technologies
  if list then
    for _, t in ipairs(list) do if t:lower() == tech:lower() then return true end end
    return false
  end
  for t in pairs(TECHS) do if t:lower() == tech:lower() then return true end end
  return false
end

--- The endpoint behaviour for `endpoint`: a scenario pattern, else for
-- Local/exten@context the scenario's dialplan (or "does not exist" when
-- the scenario has a dialplan without that extension), else answer.
local function far_behaviour(self, endpoint)
  local scn = self.scenario
  local eps = scn and scn.endpoints
  if eps then
    for _, e in ipairs(eps) do
      if endpoint:match(e.pattern) then return e end
    end
  end
  local dp = scn and scn.dialplan
  if dp then
    local exten, context = endpoint:match("^Local/([^@/]+)@([^/]+)")
    if not exten then exten, context = endpoint:match("^Local/([^@/]+)$"), "default" end
    if exten then
      context = context:gsub("/.*$", "")
      local steps = dialplan.dialplan_lookup(dp, context, exten)
      if steps then return { dialplan = steps } end
      return { nonexistent = true }
    end
  end
  return { answer_after = 0 }
end

-- A dial in progress (see dial_far): d = { sim, ch, peer, b (the far end's
-- behaviour), dialstring, timeout_s, on_answer, caller, originating,
-- ring_ms, timers (ch.far_timers) }.

-- The Dial event for status ("" when the dial starts).
local function dial_event(d, status)
  local sim, ch, caller = d.sim, d.ch, d.caller
  local fields = { "dialstatus", status, "forward", "",
    "dialstring", (status == "" or d.originating) and d.dialstring or "" }
  if caller then fields[#fields + 1] = "caller"; fields[#fields + 1] = sim:snapshot(caller) end
  fields[#fields + 1] = "peer"; fields[#fields + 1] = sim:snapshot(ch)
  local subs = {}
  for k in pairs(ch.subs) do subs[k] = true end
  if caller then for k in pairs(caller.subs) do subs[k] = true end end
  sim:deliver("Dial", fields, sim:targets(subs), ch.call)
end

-- busy / congestion / unavailable: the Dial status, then the channel
-- goes without a hang-up request (a Local ;1 with cause 0, its ;2
-- keeps the cause its dialplan set)
local function dial_fail(d, status, cause)
  local ch = d.ch
  if not ch.alive then return end
  ch.dial_pending = nil
  dial_event(d, status)
  d.sim:hangup(ch, d.peer and 0 or cause, false, { quiet = true })
end

-- the originate's timeout: the dial gives up; no Dial status, no request
local function dial_timed_out(d)
  local ch = d.ch
  if not ch.alive or ch.state == "Up" then return end
  ch.dial_pending = nil
  d.sim:hangup(ch, 19, false, { quiet = true })
end

local function dial_answered(d)
  local sim, ch = d.sim, d.ch
  if not ch.alive or ch.state == "Up" then return end
  ch.dial_pending = nil
  if ch.peer then sim:answer(ch.peer) end
  sim:answer(ch)
  dial_event(d, "ANSWER")
  if d.on_answer then d.on_answer() end
  sim:start_far_script(ch)
end

local function dial_ringing(d)
  local ch = d.ch
  if not ch.alive or ch.state ~= "Down" then return end
  d.sim:set_state(ch, "Ringing")
  dial_event(d, "RINGING")
end

-- A far end with no dialplan of its own, after its ring_after: busy,
-- congestion, unavailable, or ringing then answering after answer_after
-- (unless no_answer, or the originate's timeout comes first).
local function dial_scripted(d)
  local ch, peer, b, timeout_s = d.ch, d.peer, d.b, d.timeout_s
  if not ch.alive then return end
  if b.busy then return dial_fail(d, "BUSY", 17) end
  if b.congestion then return dial_fail(d, "CONGESTION", 34) end
  if b.unavailable then return dial_fail(d, "CHANUNAVAIL", 3) end
  -- a Local channel's dialplan that answers at once never rings
  if not (peer and (b.answer_after or 0) == 0 and not b.ring_after and not b.no_answer) then
    dial_ringing(d)
  end
  local answer_after = b.answer_after or 0
  if b.no_answer then answer_after = nil end
  if answer_after == nil then return end
  if timeout_s and timeout_s > 0 and answer_after >= timeout_s * 1000 then return end
  d.timers[#d.timers + 1] = d.sim:after(math.max(0, answer_after - d.ring_ms),
    function() dial_answered(d) end)
end

-- Drive a dialled channel per its far end: ring, answer/busy/... then fn(result).
-- originating: an originate (Asterisk's dial API) puts the dialstring in
-- every Dial event; /dial only in the first one (run log: demo-A1 vs demo-C1).
local function dial_far(self, ch, dialstring, timeout_s, on_answer, caller, originating)
  local b = ch.behaviour or {}
  local peer = ch.peer
  if peer and b.nonexistent then
    -- the Local channel cannot call exten@context: both halves go, with
    -- no Dial event and no hang-up request (cause 0)
    self:hangup(ch, 0, false, { quiet = true, peer_quiet = true })
    return
  end
  local d = { sim = self, ch = ch, peer = peer, b = b, dialstring = dialstring, timeout_s = timeout_s,
    on_answer = on_answer, caller = caller, originating = originating, ring_ms = b.ring_after or 0 }
  dial_event(d, "")
  if originating then ch.dial_pending = function(status) dial_event(d, status) end end
  ch.far_timers = ch.far_timers or {}
  d.timers = ch.far_timers
  local function answered() dial_answered(d) end
  local function ringing() dial_ringing(d) end
  if timeout_s and timeout_s > 0 then
    d.timers[#d.timers + 1] = self:after(timeout_s * 1000, function() dial_timed_out(d) end)
  end
  if peer then peer.on_ring = ringing end
  if peer and b.dialplan then
    self:run_dialplan(ch, peer, b.dialplan, { answered = answered, ringing = ringing,
      busy = function(status) dial_fail(d, status, status == "BUSY" and 17 or 34) end })
    return
  end
  if peer and b.stasis then
    -- the Local channel's dialplan runs Stasis(app): ;2 enters the app
    -- ringing; ;1 is answered when the app answers ;2
    peer.on_local_answer = answered
    self:stasis_start(peer, b.stasis, b.args)
    return
  end
  d.timers[#d.timers + 1] = self:after(d.ring_ms, function() dial_scripted(d) end)
end

--- After an outbound channel answers: its scripted far end (dtmf,
-- hangup_after, script).
local function start_far_script(self, ch)
  local b = ch.behaviour or {}
  if b.hangup_after then
    ch.far_timers[#ch.far_timers + 1] = self:after(b.hangup_after, function()
      if ch.alive then self:hangup(ch, 16) end
    end)
  end
  if b.dtmf or b.script then
    require("ari.sim.scenario").run_far(self, ch, b)
  end
end

-- Helpers for handlers --------------------------------------------------------

local function get_chan(sim, id)
  local ch = sim.channels[id]
  if not ch then return nil, 404, err_body("Channel not found") end
  return ch
end
local function stasis_chan(sim, id)
  local ch = sim.channels[id]
  if not ch then return nil, 404, err_body("Channel not found") end
  if not ch.app then return nil, 409, err_body("Channel not in Stasis application") end
  return ch
end

-- Asterisk refuses to change the state of, play to or move in the dialplan
-- a channel that is Down (created, not dialled) or Ringing (dialled, not
-- answered) with 412; inbound channels (Ring) and Up ones are fine.
local INVALID_STATE = { Down = true, Ringing = true, Reserved = true }
local function state_invalid(ch)
  if ch.hanging or INVALID_STATE[ch.state] then return 412, err_body("Channel in invalid state") end
  return nil
end

-- A channel in Stasis and in a valid state, or nil, status, body.
local function ready_chan(sim, id)
  local ch, s, b = stasis_chan(sim, id)
  if not ch then return nil, s, b end
  s, b = state_invalid(ch)
  if s then return nil, s, b end
  return ch
end

local function parse_endpoint(ep)
  local tech, res = ep:match("^([^/]+)/(.+)$")
  return tech, res
end

local function body_vars(ctx)
  local b = ctx.body
  local v = type(b) == "table" and b.variables
  if type(v) ~= "table" then return {} end
  local out = {}
  for k, x in pairs(v) do
    if type(x) == "table" then out[k] = { value = tostring(x.value or ""), report = x.report_events == true }
    else out[k] = { value = tostring(x) } end
  end
  return out
end

local function apply_vars(sim, ch, vars)
  local names = {}
  for k in pairs(vars) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    ch.vars[k] = vars[k].value
    if vars[k].report then ch.report[k] = true end
  end
end

local function channels_list(sim)
  local out = arr {}
  for _, id in ipairs(sim.channel_order) do out[#out + 1] = sim:snapshot(sim.channels[id]) end
  return 200, out
end

local function channels_get(sim, p)
  local ch, s, b = get_chan(sim, p.channelId)
  if not ch then return s, b end
  return 200, sim:snapshot(ch)
end

-- Asterisk's body for a failed allocation (ast_ari_response_alloc_failed)
local function alloc_failed() return 500, obj { "error", "Allocation failed" } end

local FORMAT_NAMES = { ulaw = true, alaw = true, gsm = true, g722 = true, g729 = true, slin = true,
  slin16 = true, slin48 = true, slin192 = true, opus = true, g726 = true, ilbc = true, speex = true,
  h264 = true, vp8 = true, wav = true, siren7 = true, siren14 = true, testlaw = true }

-- The checks of Asterisk's originate / create, in its order.
local function check_formats(formats)
  if formats == nil or formats == "" then return nil end
  for f in (formats .. ","):gmatch("([^,]*),") do
    f = f:match("^%s*(.-)%s*$")
    if not FORMAT_NAMES[f] then return 400, err_body("Provided format (" .. f .. ") was not found") end
  end
  return nil
end

-- The last checks of originate / create: formats, the ids, the technology.
local function check_new_channel(sim, p, id, tech)
  local s, b = check_formats(p.formats)
  if s then return s, b end
  s, b = sim:id_conflict(id)
  if s then return s, b end
  s, b = sim:id_conflict(p.otherChannelId)
  if s then return s, b end
  if not sim:tech_known(tech) then return alloc_failed() end
  return nil
end

-- Where a new channel starts in the dialplan: exten@context of a Local
-- endpoint, else s@default.
local function new_channel_location(tech, res)
  local ctxname, exten = "default", "s"
  if tech == "Local" then exten, ctxname = res:match("^([^@]+)@?(.*)$"); if ctxname == "" then ctxname = "default" end end
  return ctxname, exten
end

-- originate's checks, in Asterisk's order: nil, or status, body.
local function check_originate(sim, p, id)
  if p.endpoint == nil or p.endpoint == "" then return 400, err_body("Endpoint must be specified") end
  if p.originator and p.originator ~= "" and p.formats and p.formats ~= "" then
    return 400, err_body("Originator and formats can't both be specified")
  end
  local tech, res = parse_endpoint(p.endpoint)
  if not tech or tech == "" or res == "" then return 400, err_body("Invalid endpoint specified") end
  -- app wins over extension/context when both are given (as in Asterisk)
  if (p.app == nil or p.app == "") and (p.extension == nil or p.extension == "") then
    return 400, err_body("Application or extension must be specified")
  end
  if p.originator and p.originator ~= "" and not sim.channels[p.originator] then
    return 400, err_body("Provided originator channel was not found")
  end
  return check_new_channel(sim, p, id, tech)
end

-- The caller id events of a new outgoing channel.
local function cid_events(sim, c)
  sim:chan_event(c, "ChannelCallerId", { "caller_presentation", 0,
    "caller_presentation_txt", "Presentation Allowed, Not Screened", "channel", sim:snapshot(c) })
  sim:chan_event(c, "ChannelConnectedLine", { "channel", sim:snapshot(c) })
end

-- An originated channel answered: into the app, or to exten@context.
local function originate_answered(sim, ch, p)
  if p.app and p.app ~= "" then
    sim:stasis_start(ch, p.app, p.appArgs)
  else
    ch.dialplan = { context = p.context or "default", exten = p.extension, priority = p.priority or 1,
      app_name = "", app_data = "" }
    sim:chan_event(ch, "ChannelDialplan", { "dialplan_app", "", "dialplan_app_data", "", "channel", sim:snapshot(ch) })
  end
end

-- Dial an originated channel (after the 200 is sent).
local function originate_dial(sim, ch, p, res, origin)
  if not ch.alive then return end
  -- timeout: seconds; 0 (or none) is Asterisk's 30, -1 is none
  local t = p.timeout
  if t == nil or t == 0 then t = 30 end
  sim:dial_far(ch, res, t, function() originate_answered(sim, ch, p) end, origin, true)
end

local function originate(sim, p, ctx, id)
  local s, b = check_originate(sim, p, id)
  if s then return s, b end
  local tech, res = parse_endpoint(p.endpoint)
  local caller = parse_callerid(p.callerId)
  local ctxname, exten = new_channel_location(tech, res)
  local origin = p.originator and sim.channels[p.originator]
  local app = (p.app ~= nil and p.app ~= "") and p.app or nil
  local ch = sim:new_channel {
    id = id, tech = tech, resource = res, state = "Down", caller = caller,
    connected = { name = caller.name, number = caller.number },
    context = ctxname, exten = exten, app_name = "AppDial2", app_data = "(Outgoing Line)",
    call = origin and origin.call or (sim.current_call_for_new or nil),
  }
  ch.originated = true
  local peer
  if tech == "Local" then peer = sim:local_peer(ch, p.otherChannelId, nil) end
  -- before the app is subscribed (so for subscribeAll apps only): the
  -- dial API's ChannelDialplan AppDial2 and, with a caller id, the
  -- outgoing channel's ChannelCallerId and ChannelConnectedLine
  sim:chan_event(ch, "ChannelDialplan", { "dialplan_app", "AppDial2", "dialplan_app_data", "(Outgoing Line)",
    "channel", sim:snapshot(ch) })
  local has_cid = caller.name ~= "" or caller.number ~= ""
  if has_cid then cid_events(sim, ch) end
  if app then
    ch.subs[app] = true
    if peer then peer.subs[app] = true end
  end
  -- the ;2 half takes the caller id too (its events reach the app)
  if has_cid and peer then cid_events(sim, peer) end
  ch.behaviour = sim:far_behaviour(p.endpoint)
  ch.endpoint = p.endpoint
  ch.audio, ch.voice = ch.behaviour.audio, ch.behaviour.voice
  apply_vars(sim, ch, body_vars(ctx))
  local snap = sim:snapshot(ch)
  sim:note(ch.call, "originate %s -> %s", p.endpoint, ch.id)
  sim:after(0, function() originate_dial(sim, ch, p, res, origin) end)
  return 200, snap
end

local function channels_originate(sim, p, ctx) return originate(sim, p, ctx, p.channelId) end
local function channels_originateWithId(sim, p, ctx) return originate(sim, p, ctx, p.channelId) end

local function channels_create(sim, p, ctx)
  if p.originator and p.originator ~= "" and p.formats and p.formats ~= "" then
    return 400, err_body("Originator and formats can't both be specified")
  end
  if p.endpoint == nil or p.endpoint == "" then return 400, err_body("Endpoint must be specified") end
  if p.app == nil or p.app == "" then return 400, err_body("Application must be specified") end
  local tech, res = parse_endpoint(p.endpoint)
  if not tech or tech == "" or res == "" then return 400, err_body("Invalid endpoint specified") end
  local s, b = check_new_channel(sim, p, p.channelId, tech)
  if s then return s, b end
  local ctxname, exten = new_channel_location(tech, res)
  local ch = sim:new_channel { id = p.channelId, tech = tech, resource = res, state = "Down",
    context = ctxname, exten = exten, subscribe = p.app }
  if tech == "Local" then sim:local_peer(ch, p.otherChannelId, nil) end
  ch.behaviour = sim:far_behaviour(p.endpoint)
  ch.endpoint, ch.dialstring = p.endpoint, res
  apply_vars(sim, ch, body_vars(ctx))
  sim:chan_event(ch, "ChannelDialplan", { "dialplan_app", "Stasis", "dialplan_app_data", p.app, "channel", sim:snapshot(ch) })
  sim:stasis_start(ch, p.app, p.appArgs)
  return 200, sim:snapshot(ch)
end

local function channels_dial(sim, p)
  local ch, s, b = stasis_chan(sim, p.channelId)
  if not ch then return s, b end
  if ch.state ~= "Down" or ch.dialed then return 409, err_body("Channel is not in the 'Down' state") end
  local caller
  if p.caller and p.caller ~= "" then
    caller = sim.channels[p.caller]
    if not caller then return 404, err_body("Caller channel not found") end
  end
  ch.dialed = true
  sim:after(0, function()
    if ch.alive then sim:dial_far(ch, ch.dialstring or "", p.timeout, nil, caller) end
  end)
  return 204
end

local function channels_hangup(sim, p)
  local ch, s, b = get_chan(sim, p.channelId)
  if not ch then return s, b end
  local cause = 16
  if p.reason_code and p.reason then return 400, err_body("The reason and reason_code can't both be specified") end
  if p.reason_code then
    cause = tonumber(p.reason_code)
    if not cause then return 400, err_body("Invalid reason for hangup specified") end
  elseif p.reason then
    cause = REASONS[p.reason]
    if not cause then return 400, err_body("Invalid reason for hangup specified") end
  end
  sim:hangup(ch, math.tointeger(cause) or 16, true)
  return 204
end

local function channels_continueInDialplan(sim, p)
  local ch, s, b = ready_chan(sim, p.channelId)
  if not ch then return s, b end
  if p.context then ch.dialplan.context = p.context end
  if p.extension then ch.dialplan.exten = p.extension end
  ch.dialplan.priority = p.priority or (ch.dialplan.priority + 1)
  local dp = sim.scenario and sim.scenario.dialplan
  local steps = dp and dialplan.dialplan_lookup(dp, ch.dialplan.context, ch.dialplan.exten)
  if steps then
    -- the scenario's dialplan runs on the channel from that priority
    local originated = ch.originated
    if ch.bridge then sim:bridge_remove(sim.bridges[ch.bridge], ch) end
    sim:stasis_end(ch, originated)
    local rest = {}
    for i = math.max(1, ch.dialplan.priority), #steps do rest[#rest + 1] = steps[i] end
    sim:run_dialplan(ch.peer or ch, ch, rest, { first_priority = math.max(1, ch.dialplan.priority),
      continued = true })
    return 204
  end
  sim:stasis_end(ch)
  if ch.bridge then sim:bridge_remove(sim.bridges[ch.bridge], ch) end
  ch.dialplan.app_name, ch.dialplan.app_data = "", ""
  sim:chan_event(ch, "ChannelDialplan", { "dialplan_app", "", "dialplan_app_data", "", "channel", sim:snapshot(ch) })
  -- the simulated dialplan runs out: the channel hangs up shortly after
  sim:after(100, function() if ch.alive and not ch.app then sim:hangup(ch, 16) end end)
  return 204
end

local function channels_move(sim, p)
  local ch, s, b = stasis_chan(sim, p.channelId)
  if not ch then return s, b end
  if p.app == nil or p.app == "" then return 400, err_body("Missing parameter app") end
  local from = ch.app
  if not sim:app_active(p.app) then
    sim:deliver("ApplicationMoveFailed", { "channel", sim:snapshot(ch), "destination", p.app,
      "args", split_args(p.appArgs) }, { from }, ch.call)
    return 204
  end
  -- the destination app is subscribed while the channel is in it
  if not ch.subs[p.app] then ch.subs[p.app] = "stasis" end
  ch.app = p.app
  ch.dialplan.app_data = p.app .. ((p.appArgs and p.appArgs ~= "") and ("," .. p.appArgs) or "")
  sim:deliver("StasisStart", { "args", split_args(p.appArgs), "channel", sim:snapshot(ch) }, { p.app }, ch.call)
  sim:deliver("StasisEnd", { "channel", sim:snapshot(ch) }, { from }, ch.call)
  if ch.subs[from] == "stasis" then ch.subs[from] = nil end
  return 204
end

local function channels_redirect(sim, p)
  local ch, s, b = ready_chan(sim, p.channelId)
  if not ch then return s, b end
  if p.endpoint == nil or p.endpoint == "" then return 400, err_body("Required parameter 'endpoint' not provided.") end
  local tech = parse_endpoint(p.endpoint)
  if not tech then return 400, err_body("Endpoint parameter is malformed") end
  if tech:lower() ~= tostring(ch.tech):lower() then
    return 422, err_body("Endpoint technology '" .. tech .. "' does not match channel technology")
  end
  sim:note(ch.call, "redirect %s -> %s", ch.id, p.endpoint)
  sim:after(0, function() if ch.alive then sim:hangup(ch, 16) end end)
  return 204
end

-- Run fn(ch) on the channel p.channelId when it is in Stasis and in a valid
-- state: 204, or the status and body fn returns.
local function ready_op(sim, p, fn)
  local ch, s, b = ready_chan(sim, p.channelId)
  if not ch then return s, b end
  s, b = fn(ch)
  if s then return s, b end
  return 204
end

local function dir_ok(d) return d == nil or d == "in" or d == "out" or d == "both" end

local function channels_answer(sim, p) return ready_op(sim, p, function(ch) sim:answer(ch) end) end
local function channels_ring(sim, p)
  return ready_op(sim, p, function(ch)
    ch.ringing = true
    -- a Local ;2 indicating ringing: its ;1, being dialled, rings
    if ch.on_ring then ch.on_ring() end
  end)
end
local function channels_ringStop(sim, p) return ready_op(sim, p, function(ch) ch.ringing = false end) end
local function channels_progress(sim, p) return ready_op(sim, p, function(ch) ch.progress = true end) end
local function channels_mute(sim, p)
  return ready_op(sim, p, function(ch)
    if not dir_ok(p.direction) then return 400, err_body("Invalid direction specified") end
    ch.muted = p.direction or "both"
  end)
end
local function channels_unmute(sim, p)
  return ready_op(sim, p, function(ch)
    if not dir_ok(p.direction) then return 400, err_body("Invalid direction specified") end
    ch.muted = nil
  end)
end
local function channels_hold(sim, p) return ready_op(sim, p, function(ch) ch.held = true end) end
local function channels_unhold(sim, p) return ready_op(sim, p, function(ch) ch.held = false end) end
local function channels_startMoh(sim, p) return ready_op(sim, p, function(ch) ch.moh = p.mohClass or "default" end) end
local function channels_stopMoh(sim, p) return ready_op(sim, p, function(ch) ch.moh = nil end) end
local function channels_startSilence(sim, p) return ready_op(sim, p, function(ch) ch.silence = true end) end
local function channels_stopSilence(sim, p) return ready_op(sim, p, function(ch) ch.silence = false end) end

local function channels_sendDTMF(sim, p)
  local ch, s, b = ready_chan(sim, p.channelId)
  if not ch then return s, b end
  if p.dtmf == nil or p.dtmf == "" then return 400, err_body("DTMF is required") end
  if not p.dtmf:match("^[0-9A-Da-d%*#wW,]+$") then return 400, err_body("Invalid DTMF digits") end
  local t = p.before or 0
  local between = p.between or 100
  local duration = p.duration or 100
  for digit in p.dtmf:gmatch(".") do
    if digit == "," or digit == "w" or digit == "W" then
      t = t + 500
    else
      local at = t
      sim:after(at + duration, function()
        if not ch.alive then return end
        ch.received_dtmf = ch.received_dtmf .. digit
        sim:wake_far(ch, "dtmf")
        if sim.on_far_dtmf then sim.on_far_dtmf(ch, digit) end
      end)
      t = t + duration + between
    end
  end
  return 204
end

local function read_var(sim, ch, name)
  local fn, arg = name:match("^([%u_]+)%((.-)%)$")
  if fn == "CALLERID" then
    if arg == "name" then return ch.caller.name end
    if arg == "num" or arg == "number" then return ch.caller.number end
    if arg == "all" then return string.format('"%s" <%s>', ch.caller.name, ch.caller.number) end
  elseif fn == "CONNECTEDLINE" then
    if arg == "name" then return ch.connected.name end
    if arg == "num" or arg == "number" then return ch.connected.number end
    if arg == "all" then return string.format('"%s" <%s>', ch.connected.name, ch.connected.number) end
  elseif fn == "CHANNEL" then
    if arg == "name" then return ch.name end
    if arg == "state" then return ch.state end
    if arg == "language" then return ch.language end
    if arg == "uniqueid" then return ch.id end
  end
  if name == "UNIQUEID" then return ch.id end
  if name == "CHANNEL" then return ch.name end
  if name == "EXTEN" then return ch.dialplan.exten end
  if name == "CONTEXT" then return ch.dialplan.context end
  local v = ch.vars[name]
  if v == nil then v = sim.global_vars[name] end
  return v
end

-- CALLERID(arg) / CONNECTEDLINE(arg) = value: nil, or status, body.
local function write_id_func(sim, ch, fn, arg, value)
  local target = fn == "CALLERID" and ch.caller or ch.connected
  if arg == "all" then
    local c = parse_callerid(value)
    target.name, target.number = c.name, c.number
  elseif arg == "name" then target.name = value
  elseif arg == "num" or arg == "number" then target.number = value
  else return 400, err_body("Unable to set channel variable") end
  if fn == "CALLERID" then
    sim:chan_event(ch, "ChannelCallerId", { "caller_presentation", 0,
      "caller_presentation_txt", "Presentation Allowed, Not Screened", "channel", sim:snapshot(ch) })
  else
    sim:chan_event(ch, "ChannelConnectedLine", { "channel", sim:snapshot(ch) })
    sim:local_connected(ch)
  end
  return nil
end

local function write_talk_detect(sim, ch, arg, value)
  ch.talk_detect = arg ~= "remove"
  ch.talk_silence_ms = tonumber((value or ""):match("^%s*(%d+)")) or 2500
  if not ch.talk_detect then
    ch.dp_talking = nil
    if ch.dp_talk_timer then ch.dp_talk_timer.stop(); ch.dp_talk_timer = nil end
  elseif ch.talking and ch.peer and ch.peer.dialplan_driven and not ch.dp_talking then
    -- audio is already flowing from a simulated dialplan: talking now
    ch.dp_talking = true
    ch.dp_talk_start = sim:elapsed()
    sim:chan_event(ch, "ChannelTalkingStarted", { "channel", sim:snapshot(ch) })
  end
end

-- TONE_DETECT(freq[,duration[,options]]): freq 0 or option x stops it
local function write_tone_detect(ch, arg)
  local freq, _, opts = arg:match("^([^,]*),?([^,]*),?(.*)$")
  if tonumber(freq) == 0 or (opts or ""):find("x", 1, true) then ch.tone_detect = nil
  else ch.tone_detect = tonumber(freq) or true end
end

-- The audio functions the simulator keeps (by their full name with argument).
local AUDIO_FUNCS = { TALK_DETECT = true, TONE_DETECT = true, VOLUME = true, PITCH_SHIFT = true, DENOISE = true,
  AGC = true, JITTERBUFFER = true }

-- Set a channel variable or function: nil, or status, body.
local function write_var(sim, ch, name, value, report)
  local fn, arg = name:match("^([%u_]+)%((.-)%)$")
  if fn == "CALLERID" or fn == "CONNECTEDLINE" then
    return write_id_func(sim, ch, fn, arg, value)
  elseif AUDIO_FUNCS[fn] then
    ch.funcs = ch.funcs or {}
    ch.funcs[fn .. "(" .. arg .. ")"] = value
    if fn == "TALK_DETECT" then write_talk_detect(sim, ch, arg, value) end
    if fn == "TONE_DETECT" then write_tone_detect(ch, arg) end
    return nil
  elseif fn then
    ch.funcs = ch.funcs or {}
    ch.funcs[name] = value
    return nil
  end
  if report then ch.report[name] = true end
  if value == nil then
    -- no value: the variable is unset (ChannelVarset with "")
    sim:set_var(ch, name, "")
    ch.vars[name] = nil
    return nil
  end
  sim:set_var(ch, name, value)
end

local function channels_getChannelVar(sim, p)
  local ch, s, b = get_chan(sim, p.channelId)
  if not ch then return s, b end
  if p.variable == nil or p.variable == "" then return 400, err_body("Variable name is required") end
  -- reading needs no Stasis control (Asterisk looks the channel up by name)
  local v = read_var(sim, ch, p.variable)
  if v == nil then return 404, err_body("Provided variable was not found") end
  return 200, obj { "value", v }
end

local function channels_setChannelVar(sim, p)
  local ch, s, b = get_chan(sim, p.channelId)
  if not ch then return s, b end
  if p.variable == nil or p.variable == "" then return 400, err_body("Variable name is required") end
  if not ch.app then return 409, err_body("Channel not in Stasis application") end
  s, b = write_var(sim, ch, p.variable, p.value, p.report_events)
  if s then return s, b end
  return 204
end

local function channels_getChannelVars(sim, p)
  local ch, s, b = get_chan(sim, p.channelId)
  if not ch then return s, b end
  if p.variables == nil or p.variables == "" then return 400, err_body("Variable names are required") end
  local kv = {}
  for name in p.variables:gmatch("[^,]+") do
    local v = read_var(sim, ch, name)
    if v == nil then return 404, err_body("Provided variable was not found") end
    kv[#kv + 1] = name; kv[#kv + 1] = v
  end
  return 200, obj { "variables", obj(kv) }
end

local function channels_setChannelVars(sim, p, ctx)
  local ch, s, b = get_chan(sim, p.channelId)
  if not ch then return s, b end
  if type(p.variables) ~= "table" then return 400, err_body("Variables are required") end
  if not ch.app then return 409, err_body("Channel not in Stasis application") end
  local vars = body_vars(ctx)
  local names = {}
  for k in pairs(vars) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    s, b = write_var(sim, ch, k, vars[k].value, vars[k].report)
    if s then return s, b end
  end
  return 204
end

local SPY = { none = true, both = true, out = true, ["in"] = true }
local function snoop(sim, p, id)
  -- Asterisk's checks, in its order
  if p.spy and not SPY[p.spy] then return 400, err_body("Invalid direction specified for spy") end
  if p.whisper and not SPY[p.whisper] then return 400, err_body("Invalid direction specified for whisper") end
  if (p.spy or "none") == "none" and (p.whisper or "none") == "none" then
    return 400, err_body("Direction must be specified for at least spy or whisper")
  end
  if p.app == nil or p.app == "" then return 400, err_body("Application name is required") end
  local ch = sim.channels[p.channelId]
  if not ch then return 404, err_body("Provided channel was not found") end
  local s, b = sim:id_conflict(id)
  if s then return s, b end
  local n = sim:seq("snoop")
  local sn = sim:new_channel { id = id, name = string.format("Snoop/%s-%08x", ch.id, n), tech = "Snoop",
    state = "Up", context = "default", exten = "s", call = ch.call }
  sn.snooped = ch.id
  sim:chan_event(sn, "ChannelDialplan", { "dialplan_app", "Stasis", "dialplan_app_data",
    p.app .. (p.appArgs and ("," .. p.appArgs) or ""), "channel", sim:snapshot(sn) })
  -- a snoop channel enters Stasis directly, not through the Stasis()
  -- dialplan application: no STASISSTATUS, and its app is subscribed only
  -- while it is in Stasis (no ChannelDestroyed after StasisEnd)
  sim:stasis_start(sn, p.app, p.appArgs, nil, { direct = true })
  return 200, sim:snapshot(sn)
end
local function channels_snoopChannel(sim, p) return snoop(sim, p, p.snoopId) end
local function channels_snoopChannelWithId(sim, p) return snoop(sim, p, p.snoopId) end

local function channels_rtpstatistics(sim, p)
  local ch, s, b = get_chan(sim, p.channelId)
  if not ch then return s, b end
  if ch.tech == "Local" or ch.tech == "Snoop" then return 404, err_body("Channel RTP statistics not found") end
  local secs = math.max(1, math.floor((sim:elapsed() - ch.created_ms) / 1000))
  local pk = secs * 50
  return 200, obj {
    "txcount", pk, "rxcount", pk, "txjitter", 0.0, "rxjitter", 0.001, "remote_maxjitter", 0.0,
    "remote_minjitter", 0.0, "remote_normdevjitter", 0.0, "remote_stdevjitter", 0.0,
    "local_maxjitter", 0.002, "local_minjitter", 0.0, "local_normdevjitter", 0.0005,
    "local_stdevjitter", 0.0004, "txploss", 0, "rxploss", 0, "remote_maxrxploss", 0.0,
    "remote_minrxploss", 0.0, "remote_normdevrxploss", 0.0, "remote_stdevrxploss", 0.0,
    "local_maxrxploss", 0.0, "local_minrxploss", 0.0, "local_normdevrxploss", 0.0,
    "local_stdevrxploss", 0.0, "rtt", 0.0, "maxrtt", 0.0, "minrtt", 0.0, "normdevrtt", 0.0,
    "stdevrtt", 0.0, "local_ssrc", 1234567, "remote_ssrc", 7654321, "txoctetcount", pk * 160,
    "rxoctetcount", pk * 160, "channel_uniqueid", ch.id,
  }
end

local function channels_transfer_progress(sim, p)
  local ch, s, b = ready_chan(sim, p.channelId)
  if not ch then return s, b end
  if p.states == nil or p.states == "" then return 400, err_body("states is required") end
  return 204
end

return util.module {
  -- methods of the Sim class
  methods = {
    snapshot = snapshot, id_conflict = id_conflict, new_call = new_call, new_channel = new_channel,
    find_channel = find_channel, set_state = set_state, local_devstate = local_devstate, set_var = set_var,
    stasis_start = stasis_start, stasis_end = stasis_end, hangup = hangup, answer = answer,
    local_peer = local_peer, wake_far = wake_far, far_dtmf = far_dtmf, tech_known = tech_known,
    far_behaviour = far_behaviour, dial_far = dial_far, start_far_script = start_far_script,
  },
  -- route handlers by resource and operation nickname
  routes = {
    channels = {
      list = channels_list, get = channels_get, originate = channels_originate,
      originateWithId = channels_originateWithId, create = channels_create, dial = channels_dial,
      hangup = channels_hangup, continueInDialplan = channels_continueInDialplan, move = channels_move,
      redirect = channels_redirect, answer = channels_answer, ring = channels_ring,
      ringStop = channels_ringStop, progress = channels_progress, mute = channels_mute,
      unmute = channels_unmute, hold = channels_hold, unhold = channels_unhold,
      startMoh = channels_startMoh, stopMoh = channels_stopMoh, startSilence = channels_startSilence,
      stopSilence = channels_stopSilence, sendDTMF = channels_sendDTMF,
      getChannelVar = channels_getChannelVar, setChannelVar = channels_setChannelVar,
      getChannelVars = channels_getChannelVars, setChannelVars = channels_setChannelVars,
      snoopChannel = channels_snoopChannel, snoopChannelWithId = channels_snoopChannelWithId,
      rtpstatistics = channels_rtpstatistics,
      transfer_progress = channels_transfer_progress,
    },
  },
  -- for the other resources (and ari.sim's exports)
  CAUSE_TXT = CAUSE_TXT, REASONS = REASONS, TECHS = TECHS, parse_callerid = parse_callerid,
  split_args = split_args, get_chan = get_chan, stasis_chan = stasis_chan, state_invalid = state_invalid,
  ready_chan = ready_chan, alloc_failed = alloc_failed,
}
