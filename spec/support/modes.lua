-- Helpers for the real-server specs of the connection modes
-- (spec/asterisk/modes_*_spec.lua, resync_spec.lua, claim_spec.lua).
local ast = require "spec.support.asterisk"

local M = {}

local function sh(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local out = p:read("a")
  p:close()
  return out
end

--- Kill (RST) every TCP connection from this machine to 127.0.0.1:port
-- (ss -K).  Returns how many were killed.  Blocks the loop while it runs,
-- so nothing reconnects before it returns.
function M.kill_tcp(port)
  local out = sh("ss -K -tn state established dst 127.0.0.1 dport = :" .. tonumber(port))
  local n = 0
  for line in out:gmatch("[^\n]+") do
    if line:find(":" .. port .. "%s*$") or line:find(":" .. port .. "%s") then n = n + 1 end
  end
  return n
end

local can
--- Can this machine kill a TCP connection (ss -K: root, and a kernel with
-- CONFIG_INET_DIAG_DESTROY)?  Tried once, on a connection of our own to a
-- listener of our own.
function M.can_kill_tcp()
  if can ~= nil then return can end
  can = false
  if sh("command -v ss") == "" or sh("command -v bash") == "" then return can end
  local server = require "ari.server"
  local ok, srv = pcall(server.listen, { host = "127.0.0.1", port = 0, handler = function() return 404 end })
  if not ok or not srv then return can end
  local port = srv:port()
  -- the kernel completes the handshake without accept(): no loop needed
  local script = ("exec 3<>/dev/tcp/127.0.0.1/%d || exit 1; for i in $(seq 100); do "
    .. "ss -tn state established dst 127.0.0.1 dport = :%d | grep -q ':%d' && break; sleep 0.05; done; "
    .. "ss -K -tn state established dst 127.0.0.1 dport = :%d"):format(port, port, port, port)
  local out = sh("bash -c " .. ast.sh_quote(script))
  srv:close()
  can = out:find(":" .. port) ~= nil
  return can
end

--- Crash the instance (kill -9, as a power cut would) and start it again
-- with the same port, version and config.  blocking = false: both run in
-- the background (the loop keeps running; poll inst:up()).
function M.crash_restart(inst, blocking)
  local pidf = inst.dir .. "/var/run/asterisk/asterisk.pid"
  local cmd = ("f=%s; p=$(cat \"$f\"); kill -9 \"$p\"; while kill -0 \"$p\" 2>/dev/null; do sleep 0.05; done; rm -f \"$f\"; "
    .. "bash tools/asterisk.sh restart %s"):format(ast.sh_quote(pidf), ast.sh_quote(inst.dir))
  if blocking == false then
    os.execute("(" .. cmd .. ") >/dev/null 2>&1 &")
  else
    assert(os.execute(cmd .. " >/dev/null 2>&1"), "could not restart Asterisk in " .. inst.dir)
  end
end

--- A free loopback TCP port, below the kernel's range of ephemeral ports:
-- a port that a test closes and opens again (ari-lua restarting) must not
-- be taken meanwhile by some outgoing connection's local port.
local seeded
function M.free_port()
  local server = require "ari.server"
  local low = 32768
  local f = io.open("/proc/sys/net/ipv4/ip_local_port_range")
  if f then
    low = tonumber((f:read("l") or ""):match("^%s*(%d+)")) or low
    f:close()
  end
  if not seeded then math.randomseed(os.time() ~ (tonumber(tostring({}):match("0x(%x+)"), 16) or 0)); seeded = true end
  for _ = 1, 100 do
    local port = math.random(10000, math.max(10001, low - 1))
    local ok, srv = pcall(server.listen, { host = "127.0.0.1", port = port, handler = function() return 404 end })
    if ok and srv then
      srv:close()
      return port
    end
  end
  error("no free loopback port below " .. low)
end

--- A directory of NAME.conf files for ast.start{ conf = }: files is
-- { ["ari.conf"] = text, ... }.  Removed by M.cleanup(dir).
function M.conf_dir(files)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. ast.sh_quote(dir)))
  for name, text in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(text)
    f:close()
  end
  return dir
end

function M.cleanup(dir) if dir then os.execute("rm -rf " .. ast.sh_quote(dir)) end end

--- ari.conf keeping the test user asterisk/asterisk, plus outbound
-- connections: list of { name, client, apps, subscribe_all }.
function M.ari_conf(conns)
  local t = { "[general]", "enabled = yes", "pretty = no", "allowed_origins = *", "",
    "[asterisk]", "type = user", "read_only = no", "password = asterisk", "password_format = plain", "" }
  for _, c in ipairs(conns or {}) do
    t[#t + 1] = "[" .. c.name .. "]"
    t[#t + 1] = "type = outbound_websocket"
    t[#t + 1] = "websocket_client_id = " .. c.client
    t[#t + 1] = "apps = " .. c.apps
    t[#t + 1] = "subscribe_all = " .. (c.subscribe_all and "yes" or "no")
    t[#t + 1] = "local_ari_user = asterisk"
    t[#t + 1] = ""
  end
  return table.concat(t, "\n")
end

--- websocket_client.conf: list of { name, port, type = "persistent" |
-- "per_call_config", username, password, reconnect_attempts }.
function M.ws_client_conf(clients)
  local t = {}
  for _, c in ipairs(clients) do
    t[#t + 1] = "[" .. c.name .. "]"
    t[#t + 1] = "type = websocket_client"
    t[#t + 1] = "uri = ws://127.0.0.1:" .. c.port .. "/"
    t[#t + 1] = "protocols = ari"
    if c.username then t[#t + 1] = "username = " .. c.username end
    if c.password then t[#t + 1] = "password = " .. c.password end
    t[#t + 1] = "connection_type = " .. c.type
    t[#t + 1] = "connection_timeout = 500"
    t[#t + 1] = "reconnect_interval = " .. (c.reconnect_interval or 250)
    t[#t + 1] = "reconnect_attempts = " .. (c.reconnect_attempts or 5)
    t[#t + 1] = "tls_enabled = no"
    t[#t + 1] = ""
  end
  return table.concat(t, "\n")
end

--- HTTP request to the instance with curl (outside the loop: it blocks).
function M.curl(inst, method, path)
  return sh(("curl -s -u %s:%s -X %s %s"):format(inst.user, inst.password, method,
    ast.sh_quote(inst.url .. "/ari" .. path)))
end

return M
