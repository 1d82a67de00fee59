-- Scenario for examples/queue.lua: agent1 never answers, agent2 is busy,
-- agent3 answers after 2 s and hangs up after talking 4 s.  Caller 1001
-- stays until the agent hangs up; caller 1002 gives up 3.5 s after being
-- answered, while an agent is ringing for it.
return {
  timeout = 300000,   -- a safety net: end the run after 5 simulated minutes
  app = "queue",
  sounds = { ["pls-hold-while-try"] = 2000 },
  calls = {
    { from = "1001", to = "500", script = { { "wait_answer" }, { "wait_hangup", timeout = 120000 } } },
    { from = "1002", to = "500", at = 1000, script = { { "wait_answer" }, { "sleep", 3500 }, { "hangup" } } },
  },
  endpoints = {
    ["PJSIP/agent1"] = { no_answer = true },
    ["PJSIP/agent2"] = { busy = true },
    ["PJSIP/agent3"] = { answer_after = 2000, script = { { "sleep", 4000 }, { "hangup" } } },
  },
}
