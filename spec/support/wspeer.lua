-- A scripted raw WebSocket server for spec/wsclient_conformance_spec.lua: plain
-- Lua 5.4 (no ari), run by socat for each connection with the TCP stream on
-- stdin/stdout:
--   socat TCP-LISTEN:PORT,... EXEC:"lua5.4 spec/support/wspeer.lua SCENARIO LOG"
-- It answers the opening handshake, then plays SCENARIO: writes hand-made
-- frames and reads what the client sends, appending one line per client
-- frame to LOG ("<opcode> <masked 0/1> <mask hex> <payload>"; a close frame:
-- "close <code> <reason>"), plus "request <header line>" lines, then "end".
local scenario, logpath = arg[1], arg[2]
local inp, out = io.stdin, io.stdout

local function log(line)
  local f = assert(io.open(logpath, "a"))
  f:write(line, "\n")
  f:close()
end

local sha1 = require "spec.support.sha1"

local function base64(s)
  local t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return (s:gsub("..?.?", function(c)
    local n = #c
    local v = (c:byte(1) << 16) | ((c:byte(2) or 0) << 8) | (c:byte(3) or 0)
    local r = {}
    for i = 1, 4 do
      local idx = (v >> (6 * (4 - i))) & 63
      r[i] = i <= n + 1 and t:sub(idx + 1, idx + 1) or "="
    end
    return table.concat(r)
  end))
end

local function frame(op, payload, fin, mask)
  local b0 = (fin == false and 0 or 0x80) | op
  local n, hdr = #payload, nil
  local m = mask and 0x80 or 0
  if n < 126 then hdr = string.char(b0, m | n)
  elseif n < 65536 then hdr = string.char(b0, m | 126) .. string.pack(">I2", n)
  else hdr = string.char(b0, m | 127) .. string.pack(">I8", n) end
  if mask then
    local bytes = {}
    for i = 1, n do bytes[i] = string.char(payload:byte(i) ~ mask:byte((i - 1) % 4 + 1)) end
    return hdr .. mask .. table.concat(bytes)
  end
  return hdr .. payload
end

local function send(s)
  out:write(s)
  out:flush()
end

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

-- One client frame: op, payload; logged.  nil at the end of the stream.
local function read_frame()
  local h = inp:read(2)
  if not h or #h < 2 then return nil end
  local b0, b1 = h:byte(1, 2)
  local op, masked, n = b0 & 0x0f, b1 & 0x80 ~= 0, b1 & 0x7f
  if n == 126 then n = string.unpack(">I2", inp:read(2))
  elseif n == 127 then n = string.unpack(">I8", inp:read(8)) end
  local mask = masked and inp:read(4) or ""
  local p = n > 0 and inp:read(n) or ""
  if masked then
    local bytes = {}
    for i = 1, #p do bytes[i] = string.char(p:byte(i) ~ mask:byte((i - 1) % 4 + 1)) end
    p = table.concat(bytes)
  end
  if op == 8 then
    local code = #p >= 2 and string.unpack(">I2", p) or 1005
    log(string.format("close %d %s masked=%d", code, p:sub(3), masked and 1 or 0))
  else
    log(string.format("%d %d %s %s", op, masked and 1 or 0, hex(mask), p))
  end
  return op, p
end

-- the opening handshake
local key
while true do
  local line = inp:read("l")
  if not line then return end
  line = line:gsub("\r$", "")
  if line == "" then break end
  log("request " .. line)
  local v = line:match("^[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey:%s*(.-)%s*$")
  if v then key = v end
end
send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " ..
  base64(sha1(key .. "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) .. "\r\n\r\n")

local function until_close()
  while true do
    local op = read_frame()
    if op == nil or op == 8 then return op end
  end
end

if scenario == "ping" then
  -- a ping with a payload; the client's pong must carry it back
  send(frame(9, "ping-payload"))
  local op = read_frame()
  while op ~= nil and op ~= 10 do op = read_frame() end
  send(frame(8, string.pack(">I2", 1000) .. "done"))
  until_close()
elseif scenario == "peer_close" then
  -- the server closes; the client echoes the code and the reason
  send(frame(1, "before close") .. frame(8, string.pack(">I2", 4001) .. "peer says bye"))
  until_close()
elseif scenario == "peer_close_empty" then
  send(frame(8, ""))
  until_close()
elseif scenario == "echo" then
  -- logs what the client sends until its close, answers the close
  local op, p = until_close()
  if op == 8 then send(frame(8, string.pack(">I2", 1000))) end
  _ = p
elseif scenario == "masked" then
  send(frame(1, "masked by the server", true, "\1\2\3\4"))
  until_close()
elseif scenario == "bad_utf8" then
  send(frame(1, "ok") .. frame(1, "bad \xff\xfe text"))
  until_close()
elseif scenario == "bad_utf8_split" then
  -- a 3-byte sequence cut between fragments is fine; a truncated one at the end is not
  send(frame(1, "caf\xc3", false) .. frame(0, "\xa9!", true) .. frame(1, "trunc\xe2\x82", true))
  until_close()
elseif scenario == "reserved_bits" then
  send(string.char(0x80 | 0x40 | 1, 2) .. "hi")
  until_close()
elseif scenario == "bad_continuation" then
  send(frame(0, "no message open", true))
  until_close()
elseif scenario == "big_ping" then
  send(string.char(0x89, 126) .. string.pack(">I2", 200) .. string.rep("p", 200))
  until_close()
end
log("end")
