-- Callers for examples/recorder.lua: 3001 talks 4 s, presses '#', keeps
-- the message (1); 3002 records, asks to record again (3), is cut off by
-- 3 s of silence, keeps it; 3003 hangs up while recording (nothing kept).
return {
  app = "recorder",
  timeout = 120000,
  sounds = { ["vm-intro"] = 2000, ["vm-review"] = 3000, ["vm-msgsaved"] = 1000, ["vm-goodbye"] = 1000, seconds = 600 },
  calls = {
    { from = "3001", script = { { "wait_answer" }, { "wait_playback" }, { "sleep", 300 }, { "talk", 4000 },
      { "dtmf", "#" }, { "wait_playback" }, { "wait_playback_start" }, { "dtmf", "1" },
      { "wait_hangup", timeout = 60000 } } },
    { from = "3002", at = 100, script = { { "wait_answer" }, { "wait_playback" }, { "sleep", 300 }, { "talk", 2000 },
      { "dtmf", "#" }, { "wait_playback" }, { "wait_playback_start" }, { "dtmf", "3" },
      { "wait_playback" }, { "sleep", 300 }, { "talk", 1000 }, { "wait_recording" },
      { "wait_playback" }, { "wait_playback_start" }, { "dtmf", "1" }, { "wait_hangup", timeout = 60000 } } },
    { from = "3003", at = 200, script = { { "wait_answer" }, { "wait_playback" }, { "sleep", 300 }, { "talk", 1500 },
      { "hangup" } } },
  },
}
