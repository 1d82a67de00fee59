-- Busted output handler: busted's plain terminal output, then one machine-
-- readable line "ARI-COUNTS <passed> <failed> <errors> <pending>" that
-- tools/run-tests.lua adds up across spec files.
return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.plainTerminal"(options)
  busted.subscribe({ "suite", "end" }, function()
    io.write(string.format("ARI-COUNTS %d %d %d %d\n", handler.successesCount,
      handler.failuresCount, handler.errorsCount, handler.pendingsCount))
    io.flush()
    return nil, true
  end)
  return handler
end
