-- The workload of the valgrind check (tools/valgrind-check.sh): exercises
-- timers, coroutines and every core module that is built.
local ari = require "ari"
local n = 0
for i = 1, 50 do
  ari.spawn(function() ari.sleep(i % 7); n = n + 1 end)
end
local t = ari.core.timer(1, function() end, 1)
ari.sleep(30)
t:stop()
assert(n == 50, "all coroutines ran")
