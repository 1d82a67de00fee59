-- Callers for examples/dial-bridge.lua: 1001 calls 2001 (answers after 3 s,
-- talks, hangs up), 1002 calls 2002 (busy), 1003 calls 2003 (never
-- answers: the app gives up after 20 s), 1004 calls 2004 and hangs up
-- while it is still ringing.
return {
  app = "dial-bridge",
  timeout = 120000,
  sounds = { ["vm-isonphone"] = 1500, ["vm-isunavail"] = 1500, ["all-circuits-busy-now"] = 1500,
    ["cannot-complete-as-dialed"] = 3000 },
  calls = {
    { from = "1001", to = "2001", script = { { "wait_bridge", timeout = 30000 }, { "wait_hangup", timeout = 30000 } } },
    { from = "1002", to = "2002", at = 100, script = { { "wait_hangup", timeout = 30000 } } },
    { from = "1003", to = "2003", at = 200, script = { { "wait_hangup", timeout = 60000 } } },
    { from = "1004", to = "2004", at = 300, script = { { "sleep", 1500 }, { "hangup" } } },
  },
  endpoints = {
    ["PJSIP/2001"] = { answer_after = 3000, script = { { "sleep", 5000 }, { "hangup" } } },
    ["PJSIP/2002"] = { busy = true, ring_after = 500 },
    ["PJSIP/2003"] = { no_answer = true },
    ["PJSIP/2004"] = { answer_after = 10000 },
  },
}
