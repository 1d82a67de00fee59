-- Scenario for examples/dashboard.lua: three endpoints; two callers enter
-- the "dashboard" app, stay a while and hang up.
return {
  timeout = 300000,   -- a safety net: end the run after 5 simulated minutes
  app = "dashboard",
  endpoint_list = { "PJSIP/alice", "PJSIP/bob", "PJSIP/carol" },
  calls = {
    { from = "1001", to = "100", caller_name = "Alice", script = { { "sleep", 8000 }, { "hangup" } } },
    { from = "1002", to = "100", caller_name = "Bob", at = 1000, script = { { "sleep", 6000 }, { "hangup" } } },
  },
}
