-- http_check.lua: the Lua side of fuzz_http.c.  One ari.core server
-- (src/server.c) on loopback with small limits; its handler echoes bodies,
-- upgrades WebSocket requests (echoing messages) and, for the response
-- mode, writes the fuzzed bytes as the raw response to core.http_request
-- (src/http.c over libcurl).
local core = require "ari.core"

local M = { response = nil, done = true }
local server = assert(core.server_listen({ host = "127.0.0.1", port = 0, max_body = 4096,
  max_message = 4096, max_header = 2048 }, {
  on_request = function(req, res)
    if req.path == "/__fuzz_response" and M.response then
      res:raw(M.response)
      res:drop()
      return
    end
    if req.websocket then
      res:upgrade(nil, {
        on_message = function(ws, msg, binary) if not binary then ws:send(msg) end end,
        on_close = function() end,
      })
      return
    end
    local n = 0
    for _ in pairs(req.headers) do n = n + 1 end
    res:send(200, { ["content-type"] = "text/plain", ["x-headers"] = tostring(n) },
      (req.method or "") .. " " .. (req.path or "") .. " " .. (req.query or "") .. "\n" .. (req.body or ""))
  end,
}))
M.port = server:port()

-- Response mode: start one request; done is set when its callback ran.
function M.start(bytes)
  M.response, M.done, M.result = bytes, false, nil
  M.req = core.http_request({ url = "http://127.0.0.1:" .. M.port .. "/__fuzz_response",
    timeout = 2000, max_body = 4096 }, function(status, body, headers)
    M.done = true
    if status ~= nil then
      assert(math.type(status) == "integer", "status not an integer")
      assert(type(body) == "string" and #body <= 4096, "body over max_body")
      assert(type(headers) == "table", "no headers table")
      for k, v in pairs(headers) do
        assert(type(k) == "string" and k == k:lower() and type(v) == "string", "bad header " .. tostring(k))
      end
    else
      assert(type(body) == "table" and type(body.kind) == "string", "error without kind")
    end
  end)
end

function M.finish()
  if not M.done and M.req then M.req:cancel() end
  M.req, M.response, M.done = nil, nil, true
end

return M
