-- A TCP peer that stops reading, for spec/media_slowpeer_spec.lua: plain
-- Lua 5.4 run by socat with the connection itself on stdin/stdout
-- (EXEC:...,nofork, so no socat buffer sits in between):
--   socat TCP:HOST:PORT,rcvbuf=4096 EXEC:"lua5.4 spec/support/slowpeer.lua MODE ARG",nofork
-- MODE "audiosocket" (ARG the stream's UUID): Asterisk's side of AudioSocket:
--   the UUID message (kind 0x01), one audio message (0x10);
-- MODE "wsclient" (ARG the channel id): chan_websocket's connection_type
--   client: the opening handshake, then MEDIA_START (a masked text frame)
--   and one masked binary frame;
-- MODE "wsserver": Asterisk's /media/<id> server (connection_type server):
--   reads the opening handshake, answers 101, sends MEDIA_START;
-- then it never reads, and exits after 120 s (the spec kills it before).
local mode, id = arg[1], arg[2]
local out = io.stdout

local function masked(op, payload)
  local mask = "\1\2\3\4"
  local n = #payload
  local hdr
  if n < 126 then hdr = string.char(0x80 | op, 0x80 | n)
  else hdr = string.char(0x80 | op, 0x80 | 126) .. string.pack(">I2", n) end
  local b = {}
  for i = 1, n do b[i] = string.char(payload:byte(i) ~ mask:byte((i - 1) % 4 + 1)) end
  return hdr .. mask .. table.concat(b)
end

if mode == "audiosocket" then
  local raw = id:gsub("%-", ""):gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)
  out:write("\1\0\16" .. raw .. "\16" .. string.pack(">I2", 320) .. ("\0"):rep(320))
elseif mode == "wsclient" then
  out:write("GET /media HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: media\r\n\r\n")
  out:write(masked(1, "MEDIA_START connection_id:slow channel:WebSocket/slow channel_id:" .. id ..
    " format:slin16 optimal_frame_size:640 ptime:20"))
  out:write(masked(2, ("\0"):rep(640)))
elseif mode == "wsserver" then
  local sha1 = dofile("spec/support/sha1.lua")
  local key
  while true do
    local line = io.stdin:read("l")
    if not line then os.exit(1) end
    line = line:gsub("\r$", "")
    if line == "" then break end
    key = line:match("^[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey:%s*(.-)%s*$") or key
  end
  local t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local acc = (sha1(key .. "258EAFA5-E914-47DA-95CA-C5AB0DC85B11") .. "\0"):gsub("(.)(.)(.)", function(a, b, c)
    local v = (a:byte() << 16) | (b:byte() << 8) | c:byte()
    local r = {}
    for i = 1, 4 do local x = (v >> (6 * (4 - i))) & 63; r[i] = t:sub(x + 1, x + 1) end
    return table.concat(r)
  end):sub(1, 27) .. "="
  out:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " ..
    acc .. "\r\nSec-WebSocket-Protocol: media\r\n\r\n")
  local start = "MEDIA_START connection_id:slow channel:WebSocket/slow channel_id:slow format:slin16 optimal_frame_size:640 ptime:20"
  out:write(string.char(0x81, #start) .. start)
end
out:flush()
for _ = 1, 600 do os.execute("sleep 0.2") end
