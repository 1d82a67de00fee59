-- A caller who waits for the beep, talks (a tone) for 2 s and then stays
-- silent: the recorder stops after 1.5 s of silence and hangs up.
return {
  app = "silence-recorder",
  calls = {
    { from = "1001", to = "600", voice = { tone = 300, amplitude = 5000 },
      script = { { "wait_answer" }, { "sleep", 500 }, { "talk", 2000 }, { "silence", 10000 }, { "hangup" } } },
  },
}
