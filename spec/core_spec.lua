-- The loop, timers and coroutine plumbing (ari.core + ari.sched).
local ari = require "ari"
local core = require "ari.core"
local sched = require "ari.sched"

describe("loop and timers", function()
  it("sleeps for roughly the requested time", function()
    local elapsed = ari.run(function()
      local t0 = core.now()
      ari.sleep(50)
      return core.now() - t0
    end)
    assert.is_true(elapsed >= 49 and elapsed < 1000, "elapsed " .. elapsed)
  end)

  it("runs many coroutines concurrently on one loop", function()
    local order = {}
    ari.run(function()
      local done = 0
      for i = 1, 200 do
        ari.spawn(function()
          ari.sleep(200 - i)
          order[#order + 1] = i
          done = done + 1
        end)
      end
      while done < 200 do ari.sleep(5) end
    end)
    assert.equals(200, #order)
    assert.equals(200, order[1])
    assert.equals(1, order[200])
  end)

  it("repeating timers fire until stopped", function()
    local n = 0
    ari.run(function()
      local t
      t = core.timer(1, function() n = n + 1; if n == 5 then t:stop() end end, 1)
      ari.sleep(100)
    end)
    assert.equals(5, n)
  end)

  it("a stopped timer never fires", function()
    local fired = false
    ari.run(function()
      local t = core.timer(10, function() fired = true end)
      t:stop()
      assert.is_false(t:active())
      ari.sleep(30)
    end)
    assert.is_false(fired)
  end)

  it("a timer re-armed with again() fires once per arming; pause() disarms it", function()
    local fired = 0
    ari.run(function()
      local t = core.timer(1, function() fired = fired + 1 end)
      t:pause()
      assert.is_false(t:active())
      t:again(1)
      assert.is_true(t:active())
      local t0 = core.now()
      while fired < 1 and core.now() - t0 < 2000 do ari.sleep(1) end
      assert.equals(1, fired)
      assert.is_false(t:active())
      t:again(1) -- still usable after firing
      t0 = core.now()
      while fired < 2 and core.now() - t0 < 2000 do ari.sleep(1) end
      assert.equals(2, fired)
      t:again(5)
      t:pause()
      ari.sleep(20)
      assert.equals(2, fired)
      t:stop()
      assert.has_error(function() t:again(1) end)
    end)
    assert.equals(2, fired)
  end)

  it("a one-shot timer that fired without again/pause cannot be re-armed", function()
    ari.run(function()
      local fired = false
      local t = core.timer(1, function() fired = true end)
      local t0 = core.now()
      while not fired and core.now() - t0 < 2000 do ari.sleep(1) end
      assert.is_true(fired)
      assert.has_error(function() t:again(1) end)
    end)
  end)

  it("an error in a timer callback is reported and the loop goes on", function()
    local reported
    core.set_error_handler(function(msg) reported = msg end)
    local after = false
    ari.run(function()
      core.timer(1, function() error("boom in timer") end)
      ari.sleep(20)
      after = true
    end)
    core.set_error_handler(function(msg) ari.log.error("%s", msg) end)
    assert.is_true(after)
    assert.matches("boom in timer", reported)
    assert.matches("traceback", reported)
  end)

  it("refuses to run the loop from inside a coroutine", function()
    ari.run(function()
      assert.has_error(function() core.run() end)
    end)
  end)

  it("reports a deadlock instead of hanging", function()
    assert.has_error(function()
      ari.run(function() sched.suspend(function() end) end)
    end)
  end)
end)

describe("sched", function()
  it("delivers a wake that happens before the yield", function()
    local v = ari.run(function()
      return sched.suspend(function(wake) wake(42, "x") end)
    end)
    assert.equals(42, v)
  end)

  it("cancel raises the given error in the waiting coroutine and ignores later wakes", function()
    local caught, wake_result
    ari.run(function()
      local w
      local co = ari.spawn(function()
        local ok, err = pcall(sched.suspend, function(wake) w = wake end)
        caught = not ok and err
      end)
      assert.is_true(sched.waiting(co))
      assert.is_true(sched.cancel(co, { hangup = true }))
      wake_result = w("late")
    end)
    assert.same({ hangup = true }, caught)
    assert.is_false(wake_result)
  end)

  it("suspend's cleanup runs on a cancel (with what start returned), not on a wake", function()
    local cleaned, result = {}, nil
    ari.run(function()
      local w
      local function start(wake, a) w = wake; return "handle-" .. a end
      local function cleanup(a, b, h) cleaned[#cleaned + 1] = { a, b, h } end
      local co = ari.spawn(function()
        local ok, err = pcall(sched.suspend, start, "x", "y", cleanup)
        result = ok and "woken" or err
      end)
      assert.is_true(sched.cancel(co, "stop"))
      assert.equals("stop", result)
      assert.same({ { "x", "y", "handle-x" } }, cleaned)
      -- a normal wake: no cleanup
      ari.spawn(function() result = sched.suspend(start, "z", nil, cleanup) end)
      w("value")
      assert.equals("value", result)
      assert.equals(1, #cleaned)
      -- start raising: cleanup with h = nil, then the error
      local ok, err = pcall(sched.suspend, function() error("no start", 0) end, "s", nil, cleanup)
      assert.is_false(ok)
      assert.equals("no start", err)
      assert.same({ "s", nil, nil }, cleaned[2])
    end)
  end)

  it("start runs a coroutine on fn itself; finished() ends it, an error goes to its guard", function()
    local live0 = sched.live()
    local seen, died = nil, {}
    local guard = { _died = function(g, co, err)
      died[#died + 1] = { g = g, co = co, err = err, tb = debug.traceback(co, "tb") }
    end }
    ari.run(function()
      local co = sched.start(function(a, b)
        seen = { a, b, coroutine.running() }
        ari.sleep(5)
        sched.finished(coroutine.running())
      end, guard, 1, 2)
      assert.equals(co, seen[3])
      assert.same({ 1, 2 }, { seen[1], seen[2] })
      assert.equals(live0 + 2, sched.live()) -- this coroutine (ari.run's) and co
      ari.sleep(20)
      assert.equals(live0 + 1, sched.live())
      assert.equals(0, #died)
      -- an error after a wait: the guard gets it, with the dead coroutine's stack
      local function failing_step() ari.sleep(2); error({ code = 7 }) end
      local co2 = sched.start(function() failing_step() end, guard)
      ari.sleep(20)
      assert.equals(1, #died)
      assert.equals(guard, died[1].g)
      assert.equals(co2, died[1].co)
      assert.same({ code = 7 }, died[1].err)
      assert.matches("failing_step", died[1].tb)
      assert.equals(live0 + 1, sched.live())
    end)
  end)

  it("an error in one coroutine does not touch another", function()
    local other_done, errs = false, {}
    local prev = sched.on_error
    sched.on_error = function(m) errs[#errs + 1] = m end
    ari.run(function()
      ari.spawn(function() ari.sleep(5); error("call 1 failed") end)
      ari.spawn(function() ari.sleep(20); other_done = true end)
      ari.sleep(40)
    end)
    sched.on_error = prev
    assert.is_true(other_done)
    assert.equals(1, #errs)
    assert.matches("call 1 failed", errs[1])
  end)

  it("sleep is cancellable", function()
    local err
    ari.run(function()
      local co = ari.spawn(function()
        local ok, e = pcall(ari.sleep, 10000)
        err = e
      end)
      ari.sleep(5)
      sched.cancel(co, "hangup")
    end)
    assert.equals("hangup", err)
  end)
end)

describe("C allocator", function()
  it("memory() reports the heap in use and free, and grows with a C allocation", function()
    collectgarbage("collect")
    collectgarbage("stop") -- no garbage freed while measuring
    local m0 = core.memory()
    if m0 == nil then collectgarbage("restart"); pending("this C library cannot report its heap") return end
    assert.is_true(m0.heap_in_use > 0)
    assert.is_true(m0.heap_free >= 0 and m0.mmapped >= 0)
    local keep = {}
    for i = 1, 200 do keep[i] = string.rep("x", 1000 + i) end -- Lua strings are malloc'd
    local m1 = core.memory()
    collectgarbage("restart")
    assert.is_true(m1.heap_in_use - m0.heap_in_use >= 200 * 1000, "in use grew by " .. (m1.heap_in_use - m0.heap_in_use))
    assert.is_boolean(core.trim())
  end)
end)

describe("SIGPIPE", function()
  -- Sockets are written through libuv (no MSG_NOSIGNAL): a peer gone away
  -- must give EPIPE, not kill the process.  Checked in a separate lua5.4
  -- that loads ari.core as a plain module (no ari-lua host), which then
  -- receives SIGPIPE: it must still be alive to print.
  it("is ignored once ari.core is loaded, so a write to a closed socket cannot kill the process", function()
    local script = [[package.cpath = "./build/?.so;" .. package.cpath
require "ari.core"
os.execute("kill -PIPE $PPID")
io.write("alive")]]
    local p = io.popen("lua5.4 -e '" .. script:gsub("'", "'\\''") .. "'; echo \" rc=$?\"")
    local out = p:read("a")
    p:close()
    assert.equals("alive rc=0", out:gsub("%s+$", ""))
  end)
end)
