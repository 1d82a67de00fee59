-- Callers for examples/conference.lua: three callers join room "main" one
-- after the other; the second mutes and unmutes with '*'; they leave in
-- turn (the last one alone hears music, then leaves and the room closes).
return {
  app = "conference",
  timeout = 120000,
  sounds = { ["conf-enteringno"] = 1500 },
  calls = {
    { from = "6001", args = "main", at = 0, script = { { "wait_bridge" }, { "sleep", 15000 }, { "hangup" } } },
    { from = "6002", args = "main", at = 2000, script = { { "wait_bridge" }, { "sleep", 2000 }, { "dtmf", "*" },
      { "sleep", 2000 }, { "dtmf", "*" }, { "sleep", 2000 }, { "hangup" } } },
    { from = "6003", args = "main", at = 4000, script = { { "wait_bridge" }, { "sleep", 3000 }, { "hangup" } } },
  },
}
