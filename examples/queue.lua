-- queue.lua: a call queue.  Callers wait in a holding bridge with music on
-- hold; agents are rung one at a time, in turn (the next caller starts with
-- the next agent); the first agent to answer is bridged with the caller.
-- After every agent was tried ROUNDS times, the caller hears goodbye.
--
--   ari-lua --sim=examples/scenarios/queue.lua examples/queue.lua
--   ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret ari-lua examples/queue.lua PJSIP/alice PJSIP/bob
--
-- Knobs: the agents' endpoints: the script's arguments, else $AGENTS
-- (comma-separated), else PJSIP/agent1, PJSIP/agent2, PJSIP/agent3.  How
-- long one agent rings: $RING_SECONDS (default 15); times through the list
-- before giving up: $ROUNDS (default 2); the music on hold class:
-- $MOH_CLASS (default "default").  The app name ("queue"; --app NAME or
-- ARI_APP).  ari-lua's options go before the script.
--
-- On a real Asterisk, send callers to the queue from the dialplan:
--   exten => 500,1,Stasis(queue)
local ari = require "ari"
local callmod = require "ari.call"

local AGENTS = { ... }
if #AGENTS == 0 then
  for a in (os.getenv("AGENTS") or "PJSIP/agent1,PJSIP/agent2,PJSIP/agent3"):gmatch("[^,%s]+") do
    AGENTS[#AGENTS + 1] = a
  end
end
local RING_SECONDS = tonumber(os.getenv("RING_SECONDS") or "") or 15   -- how long one agent rings
local ROUNDS = tonumber(os.getenv("ROUNDS") or "") or 2                -- times through the agent list
local MOH_CLASS = os.getenv("MOH_CLASS") or "default"

local app = ari.app "queue"

-- One holding bridge for everyone waiting, created by the first caller.
local holding, creating
local function holding_bridge()
  while creating do ari.sleep(10) end           -- another caller is creating it
  if holding == nil then
    creating = true
    local ok, b = pcall(app.bridge, app, { type = "holding", name = "queue-hold" })
    creating = false
    if not ok then error(b, 0) end
    holding = b
    holding:moh(MOH_CLASS)
  end
  return holding
end

-- Remove the holding bridge when the app stops (Ctrl-C, end of a simulation).
ari.on_shutdown(function() if holding then pcall(holding.destroy, holding) end end)

local next_agent = 1

app:on_call(function(call)
  call:answer()
  call:play("sound:pls-hold-while-try")          -- "please hold while I try to connect your call"
  local hold = holding_bridge()
  hold:join(call)
  call.log:info("waiting in the queue")
  for _ = 1, #AGENTS * ROUNDS do
    local endpoint = AGENTS[next_agent]
    next_agent = next_agent % #AGENTS + 1
    call.log:info("ringing %s", endpoint)
    local ok, agent = pcall(app.originate, app, { endpoint = endpoint, timeout = RING_SECONDS,
      caller_id = string.format("Queue <%s>", call.channel.caller.number) })
    if ok then
      call.log:info("%s answered", endpoint)
      hold:leave(call)
      call:bridge_with(agent)
      -- whoever hangs up first ends the call for both
      agent:on_hangup(function() if not call.hungup then pcall(call.hangup, call) end end)
      call:on_hangup(function() if not agent.hungup then pcall(agent.hangup, agent) end end)
      call:wait_hangup()
      return
    elseif callmod.is_hangup(agent) or getmetatable(agent) ~= callmod.CallError then
      error(agent, 0)                             -- the caller hung up, or a real failure
    else
      call.log:info("%s: %s", endpoint, agent.reason)   -- busy, no_answer, congestion...
    end
  end
  hold:leave(call)
  call:play("sound:vm-goodbye")
  call:hangup()
end)
