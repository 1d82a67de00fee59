-- Callers for examples/pin.lua (PIN 4321 via the channel variable PIN):
-- 2001 gets it wrong once then right; 2002 types it ahead before the
-- prompt; 2003 fails three times (wrong PIN, too short, wrong PIN).
return {
  app = "pin",
  timeout = 120000,
  sounds = { ["agent-pass"] = 3000, ["auth-incorrect"] = 1500, ["auth-thankyou"] = 1000, ["vm-goodbye"] = 1000 },
  calls = {
    { from = "2001", variables = { PIN = "4321" }, script = { { "wait_answer" }, { "wait_playback_start" },
      { "dtmf", "1111" }, { "wait_playback" }, { "wait_playback_start" }, { "dtmf", "4321" },
      { "wait_hangup", timeout = 60000 } } },
    { from = "2002", at = 100, variables = { PIN = "4321" }, script = { { "wait_answer" }, { "dtmf", "4321" },
      { "wait_hangup", timeout = 60000 } } },
    { from = "2003", at = 200, variables = { PIN = "4321" }, script = { { "wait_answer" },
      { "wait_playback_start" }, { "dtmf", "0000" }, { "wait_playback" },
      { "wait_playback_start" }, { "dtmf", "9#" }, { "wait_playback" },
      { "wait_playback_start" }, { "dtmf", "1234" }, { "wait_hangup", timeout = 60000 } } },
  },
}
