-- Callers for examples/ivr-menu.lua: 1001 presses 1 during the menu (hears
-- their number), 1002 presses 2 before the menu starts (type-ahead) and
-- talks to the operator, 1003 presses 7, 8 and 9 (invalid three times: the
-- app says goodbye and hangs up), 1004 (whose operator, the Stasis argument,
-- is busy) presses 2, hears 'nobody available' and the menu, hangs up.
return {
  app = "ivr-menu",
  timeout = 120000,
  sounds = { ["demo-instruct"] = 4000, ["pm-invalid-option"] = 1500, ["vm-goodbye"] = 1000, ["vm-from"] = 800,
    transfer = 1200, ["vm-nobodyavail"] = 2000, ["vm-unknown-caller"] = 1000 },
  calls = {
    { from = "1001", script = { { "wait_answer" }, { "wait_playback" }, { "wait_playback_start" }, { "sleep", 500 },
      { "dtmf", "1" }, { "wait_playback" }, { "wait_playback" }, { "wait_playback" }, { "hangup" } } },
    { from = "1002", at = 100, script = { { "wait_answer" }, { "dtmf", "2" }, { "wait_bridge", timeout = 30000 },
      { "sleep", 3000 }, { "hangup" } } },
    { from = "1003", at = 200, script = { { "wait_answer" }, { "wait_playback" },
      { "wait_playback_start" }, { "dtmf", "7" }, { "wait_playback" },
      { "wait_playback_start" }, { "dtmf", "8" }, { "wait_playback" },
      { "wait_playback_start" }, { "dtmf", "9" }, { "wait_hangup", timeout = 30000 } } },
    { from = "1004", at = 300, args = "PJSIP/busy-op", script = { { "wait_answer" }, { "wait_playback" }, { "wait_playback_start" },
      { "dtmf", "2" }, { "wait_playback" }, { "wait_playback" }, { "wait_playback" }, { "hangup" } } },
  },
  endpoints = {
    ["PJSIP/operator"] = { answer_after = 2000 },
    ["PJSIP/busy-op"] = { busy = true },
  },
}
