-- A caller who talks (a tone) for 2 s and listens; the speech service
-- ends the call (examples/speech-bridge.lua's spec runs a stand-in).
return {
  app = "speech-bridge",
  calls = {
    { from = "1001", to = "700", voice = { tone = 440 },
      script = { { "wait_answer" }, { "sleep", 300 }, { "talk", 2000 }, { "silence", 20000 }, { "hangup" } } },
  },
}
