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
