-- A caller who talks (a 440 Hz tone) for 2 s, then listens to the echo
-- for 2 s and hangs up.
return {
  app = "echo-bot",
  calls = {
    { from = "1001", to = "500", voice = { tone = 440 },
      script = { { "wait_answer" }, { "sleep", 300 }, { "talk", 2000 }, { "silence", 2000 }, { "hangup" } } },
  },
}
