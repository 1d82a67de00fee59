-- Busted output handler: busted's plain terminal output, then one machine-
-- readable line "ARI-COUNTS <passed> <failed> <errors> <pending>" that
-- tools/run-tests.lua adds up across spec files, and one line
-- "ARI-FAILED <full name>" per failure or error, which it lists again at the
-- end (a long log's failures are then readable from its last lines).
return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.plainTerminal"(options)
  busted.subscribe({ "suite", "end" }, function()
    for _, list in ipairs({ handler.failures, handler.errors }) do
      for _, f in ipairs(list) do
        local name = tostring(f.name or "")
        if name == "" then -- the file itself (it did not load): its message's first line
          name = "(file) " .. (tostring(f.message or "?"):match("^[^\n]*"))
        end
        io.write("ARI-FAILED ", (name:gsub("\n", " ")), "\n")
      end
    end
    io.write(string.format("ARI-COUNTS %d %d %d %d\n", handler.successesCount,
      handler.failuresCount, handler.errorsCount, handler.pendingsCount))
    io.flush()
    return nil, true
  end)
  return handler
end
