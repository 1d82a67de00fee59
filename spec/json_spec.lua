-- JSON <-> Lua in C (core.json_decode / json_encode / json_schema) and ari.json.
local core = require "ari.core"
local json = require "ari.json"
local util = require "spec.support.util"

local FIX = "spec/fixtures/json/"

local read = util.read_all

local function lines_of(path)
  local t = {}
  for l in io.lines(path) do t[#t + 1] = l end
  return t
end

local function listdir(dir, pattern)
  local t = {}
  local p = io.popen("ls -1 " .. dir)
  for f in p:lines() do
    if f:match(pattern) then t[#t + 1] = f end
  end
  p:close()
  return t
end

-- structural equality; integers and floats must match in kind when strict
local function deep_equal(a, b, strict, path)
  path = path or "$"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) == "number" then
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    if strict and math.type(a) ~= math.type(b) then
      return false, path .. ": " .. math.type(a) .. " vs " .. math.type(b)
    end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  for k, v in next, a do
    local ok, why = deep_equal(v, rawget(b, k), strict, path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in next, b do
    if rawget(a, k) == nil then return false, path .. "." .. tostring(k) .. " missing" end
  end
  return true
end

local function assert_same(a, b, strict)
  local ok, why = deep_equal(a, b, strict)
  assert(ok, why)
end

-- schema(nil) after each typed test, so other tests decode untyped
local function untyped() core.json_schema(nil) end

describe("json_decode", function()
  before_each(untyped)

  it("decodes scalars", function()
    assert.equals("abc", core.json_decode('"abc"'))
    assert.equals(true, core.json_decode("true"))
    assert.equals(false, core.json_decode("false"))
    assert.equals(core.json_null, core.json_decode("null"))
    assert.equals(json.null, core.json_decode(" null "))
    assert.equals(42, core.json_decode("42"))
  end)

  it("gives integers for integral numbers that fit 64 bits, floats otherwise", function()
    local v = core.json_decode("[0,-0,7,-7,9223372036854775807,-9223372036854775808,9223372036854775808,1.5,2e3,1E-2,3.0]")
    for i = 1, 6 do assert.equals("integer", math.type(v[i]), "item " .. i) end
    assert.equals(math.maxinteger, v[5])
    assert.equals(math.mininteger, v[6])
    assert.equals("float", math.type(v[7]))
    assert.equals(9223372036854775808.0, v[7])
    assert.equals(1.5, v[8])
    assert.equals("float", math.type(v[9]))
    assert.equals(2000, v[9])
    assert.equals(0.01, v[10])
    assert.equals("float", math.type(v[11]))
  end)

  it("decodes a long number text and a huge integer as floats", function()
    local digits = string.rep("1234567890", 10)
    local v = core.json_decode(digits)
    assert.equals("float", math.type(v))
    assert.equals(tonumber(digits .. ".0"), v)
    assert.equals(0.5, core.json_decode("0." .. "5" .. string.rep("0", 200)))
  end)

  it("marks empty arrays with json_array_mt, and only them", function()
    local v = core.json_decode('{"a":[],"o":{},"x":[1]}')
    assert.equals(core.json_array_mt, getmetatable(v.a))
    assert.equals(json.array_mt, getmetatable(v.a))
    assert.is_nil(getmetatable(v.o))
    assert.is_nil(getmetatable(v.x))
    assert.is_nil(getmetatable(v))
  end)

  it("decodes escapes, \\u escapes and surrogate pairs to UTF-8", function()
    local v = core.json_decode('["\\"\\\\\\/\\b\\f\\n\\r\\t","\\u0041\\u00e9\\u4e2d","\\ud83d\\ude00","\\u0000"]')
    assert.equals('"\\/\b\f\n\r\t', v[1])
    assert.equals("A\xc3\xa9\xe4\xb8\xad", v[2])
    assert.equals("\xf0\x9f\x98\x80", v[3])
    assert.equals("\0", v[4])
  end)

  it("keeps raw UTF-8 and decodes long escaped strings", function()
    assert.equals("h\xc3\xa9llo \xf0\x9f\x98\x80", core.json_decode('"h\xc3\xa9llo \xf0\x9f\x98\x80"'))
    local long = string.rep("ab\\n", 5000)
    local v = core.json_decode('["' .. long .. '","' .. long .. 'x"]')
    assert.equals(string.rep("ab\n", 5000), v[1])
    assert.equals(string.rep("ab\n", 5000) .. "x", v[2])
  end)

  it("keeps the last value of a repeated key", function()
    assert.equals(2, core.json_decode('{"a":1,"a":2}').a)
  end)

  it("decodes containers bigger than the stack chunk", function()
    local parts, obj = {}, {}
    for i = 1, 10000 do
      parts[i] = tostring(i)
      obj[i] = string.format('"k%d":%d', i, i)
    end
    local a = core.json_decode("[" .. table.concat(parts, ",") .. "]")
    assert.equals(10000, #a)
    for i = 1, 10000 do assert(a[i] == i, "item " .. i) end
    local o = core.json_decode("{" .. table.concat(obj, ",") .. ',"k1":0}')
    assert.equals(0, o.k1)
    assert.equals(9999, o.k9999)
    local n = 0
    for _ in pairs(o) do n = n + 1 end
    assert.equals(10000, n)
  end)

  it("allows 256 levels of nesting and refuses 257", function()
    local ok = core.json_decode(string.rep("[", 256) .. string.rep("]", 256))
    assert.is_table(ok)
    local v, err, at = core.json_decode(string.rep("[", 257) .. string.rep("]", 257))
    assert.is_nil(v)
    assert.matches("nesting too deep at byte 257", err)
    assert.equals(257, at)
  end)

  it("decodes every valid fixture and round-trips it through the encoder", function()
    local files = listdir(FIX .. "good", "%.json$")
    assert.is_true(#files >= 8)
    for _, f in ipairs(files) do
      local text = read(FIX .. "good/" .. f)
      local v, err = core.json_decode(text)
      assert(err == nil, f .. ": " .. tostring(err))
      local again = core.json_decode(core.json_encode(v))
      local same, why = deep_equal(v, again, true)
      assert(same, f .. ": " .. tostring(why))
    end
  end)

  it("returns nil and 'message at byte N' for every malformed fixture, never raising", function()
    local expected, listed = {}, 0
    for _, l in ipairs(lines_of(FIX .. "bad/expected.txt")) do
      local name, at = l:match("^(%S+)%s+(%d+)$")
      expected[name] = tonumber(at)
      listed = listed + 1
    end
    local files = listdir(FIX .. "bad", "%.json$")
    assert.equals(listed, #files)
    assert.is_true(#files >= 50)
    for _, f in ipairs(files) do
      local text = read(FIX .. "bad/" .. f)
      local ok, v, err, at = pcall(core.json_decode, text)
      assert(ok, f .. " raised: " .. tostring(v))
      assert(v == nil, f .. " decoded")
      assert(type(err) == "string", f)
      assert(expected[f], f .. " not in expected.txt")
      assert(err:match(" at byte " .. expected[f] .. "$"), f .. ": " .. err .. " (want byte " .. expected[f] .. ")")
      assert.equals(expected[f], at)
    end
  end)

  it("reports what went wrong", function()
    local cases = {
      { "[1,2", "unexpected end of input" }, { "[01]", "leading zero" },
      { '"\\ud800"', "lone surrogate" }, { '"\xff"', "invalid UTF%-8" },
      { '"a\tb"', "control character" }, { "[1] x", "trailing garbage" },
      { "@", "unexpected character '@'" }, { '"\\q"', "invalid escape" },
    }
    for _, c in ipairs(cases) do
      local v, err = core.json_decode(c[1])
      assert.is_nil(v)
      assert.matches(c[2], err)
    end
  end)

  it("never raises on truncated or mutated input", function()
    local text = read(FIX .. "good/event.json") .. read(FIX .. "good/unicode.json")
    for i = 0, #text do
      local ok = pcall(core.json_decode, text:sub(1, i))
      assert(ok, "prefix " .. i)
    end
    local seed = 12345
    local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
    local bytes = { "\0", "\"", "\\", "{", "}", "[", "]", ",", ":", "\xff", "\xc3", "u", "0", "-", "e", " " }
    for _ = 1, 3000 do
      local pos = rnd(#text) + 1
      local m = text:sub(1, pos - 1) .. bytes[rnd(#bytes) + 1] .. text:sub(pos + 1)
      local ok, v, err = pcall(core.json_decode, m)
      assert(ok, "mutation raised: " .. tostring(v))
      assert(v ~= nil or err:match("at byte %d+$"))
    end
  end)

  it("raises for a non-string argument", function()
    assert.has_error(function() core.json_decode(nil) end)
    assert.has_error(function() core.json_decode({}) end)
  end)
end)

describe("json_encode", function()
  it("encodes scalars", function()
    assert.equals("true", core.json_encode(true))
    assert.equals("false", core.json_encode(false))
    assert.equals("null", core.json_encode(core.json_null))
    assert.equals("null", core.json_encode(nil))
    assert.equals('"x"', core.json_encode("x"))
  end)

  it("prints integers exactly", function()
    assert.equals("9223372036854775807", core.json_encode(math.maxinteger))
    assert.equals("-9223372036854775808", core.json_encode(math.mininteger))
    assert.equals("[0,-5,1234567890123]", core.json_encode({ 0, -5, 1234567890123 }))
  end)

  it("prints floats so that they round-trip and stay floats", function()
    for _, x in ipairs({ 0.1, 1 / 3, math.pi, 1e300, -2.5e-10, 3.0, -0.5, 2 ^ 53, 123456.789 }) do
      local s = core.json_encode(x)
      local back = core.json_decode(s)
      assert(back == x, s)
      assert.equals("float", math.type(back))
    end
    assert.equals("0.1", core.json_encode(0.1))
    assert.equals("3.0", core.json_encode(3.0))
  end)

  it("escapes quotes, backslashes and control characters, not '/'", function()
    assert.equals('"a\\"b\\\\c/d"', core.json_encode('a"b\\c/d'))
    assert.equals('"\\n\\r\\t\\b\\f\\u0001\\u001f\\u0000"', core.json_encode("\n\r\t\b\f\1\31\0"))
    assert.equals('"\xc3\xa9\xf0\x9f\x98\x80"', core.json_encode("\xc3\xa9\xf0\x9f\x98\x80"))
  end)

  it("encodes sequences as arrays and string-keyed tables as objects", function()
    assert.equals("[1,2,3]", core.json_encode({ 1, 2, 3 }))
    assert.equals('{"a":1}', core.json_encode({ a = 1 }))
    assert.equals("{}", core.json_encode({}))
    assert.equals("[]", core.json_encode(json.array()))
    assert.equals("[]", core.json_encode(json.array({})))
    assert.equals('[null,"x"]', core.json_encode({ json.null, "x" }))
    local v = core.json_decode(core.json_encode({ a = { b = { 1, { c = "d" } } }, e = json.array() }))
    assert.equals("d", v.a.b[2].c)
    assert.equals(json.array_mt, getmetatable(v.e))
    assert.is_true(json.is_array(v.e))
  end)

  it("encodes model objects (tables with metatables) by raw access", function()
    local mt = {
      __index = function() return "from index" end,
      __newindex = function() error("read only") end,
      __pairs = function() error("no pairs") end,
      __len = function() return 99 end,
    }
    local obj = setmetatable({ id = "c1", caller = setmetatable({ number = "100" }, mt) }, mt)
    local v = core.json_decode(core.json_encode(obj))
    assert_same({ id = "c1", caller = { number = "100" } }, v)
    assert.equals("[1,2]", core.json_encode(setmetatable({ 1, 2 }, mt)))
  end)

  it("raises on tables JSON cannot carry", function()
    local cyc = {}
    cyc.self = cyc
    local deep = {}
    local cur = deep
    for _ = 1, 300 do cur.x = {}; cur = cur.x end
    local cases = {
      { { [1] = "a", [3] = "c" }, "sparse" },
      { { 1, 2, x = 3 }, "mixed table %(array items and string key 'x'%)" },
      { { a = 1, [5] = 2 }, "mixed table" },
      { { [5] = 2 }, "non%-string key 5 %(sparse array" },
      { { 1, 2, [2.5] = 3 }, "non%-string key 2.5" },
      { { [true] = 1 }, "boolean key" },
      { { f = print }, "cannot encode a function" },
      { 0 / 0, "NaN" }, { math.huge, "infinity" }, { -math.huge, "infinity" },
      { cyc, "cycle" }, { deep, "nesting deeper than 256" },
      { "\xff", "invalid UTF%-8" }, { { io.stdout }, "cannot encode a userdata" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(core.json_encode, c[1])
      assert(not ok, "no error for " .. c[2])
      assert(tostring(err):match(c[2]), tostring(err) .. " (want " .. c[2] .. ")")
    end
  end)

  it("json.encode raises a structured error with a readable message", function()
    local ok, err = pcall(json.encode, { f = print })
    assert.is_false(ok)
    assert.is_table(err)
    assert.equals("json", err.kind)
    assert.matches("cannot encode a function", err.message)
    assert.matches("json.encode: cannot encode a function", tostring(err))
    assert.equals('{"a":[1]}', json.encode({ a = { 1 } }))
  end)

  it("encodes long strings of plain, escaped and multibyte characters", function()
    for _, n in ipairs({ 4095, 4096, 4097, 20000 }) do
      for _, ch in ipairs({ "a", "\1", "\xc3\xa9", '"', "\xf0\x9f\x98\x80" }) do
        local s = string.rep(ch, n)
        assert(core.json_decode(core.json_encode({ s })) [1] == s, n .. " x " .. ch:byte())
      end
    end
    assert.equals('"' .. string.rep("\\u0001", 5000) .. '"', core.json_encode(string.rep("\1", 5000)))
  end)

  it("round-trips nested values with unicode, escapes, big integers and floats", function()
    local v = {
      s = "tab\there \"q\" \\ \xe2\x82\xac \xf0\x9f\x98\x80 \1",
      big = math.maxinteger, small = math.mininteger, f = 1e-300, g = -123.456,
      list = { 1, "two", { three = 3 }, json.array(), false, json.null },
      empty = {},
    }
    local back = core.json_decode(core.json_encode(v))
    assert_same(v, back, true)
  end)
end)

describe("typed decoding", function()
  local M = {}
  local names = { "Event", "StasisStart", "ChannelVarset", "Channel", "CallerID", "DialplanCEP",
    "Stats", "Item", "Message", "Envelope" }
  for _, n in ipairs(names) do M[n] = { __name = n } end
  local schema = {
    Event = { mt = M.Event, fields = { type = "string", timestamp = "Date", application = "string" } },
    StasisStart = { mt = M.StasisStart, fields = { type = "string", args = "List[string]",
      channel = "Channel", replace_channel = "Channel" } },
    ChannelVarset = { mt = M.ChannelVarset, fields = { variable = "string", value = "string",
      channel = "Channel" } },
    Channel = { mt = M.Channel, fields = { id = "string", caller = "CallerID", dialplan = "DialplanCEP",
      channelvars = "object", creationtime = "Date" } },
    CallerID = { mt = M.CallerID, fields = { name = "string", number = "string" } },
    DialplanCEP = { mt = M.DialplanCEP, fields = { context = "string", exten = "string", priority = "long" } },
    Stats = { mt = M.Stats, fields = { count = "int", ratio = "double", ok = "boolean",
      items = "List[Item]", ints = "List[int]", dbls = "List[double]", any = "object", nested = "Stats" } },
    Item = { mt = M.Item, fields = { n = "int" } },
    Message = { mt = M.Message, fields = { type = "string" } },
    Envelope = { mt = M.Envelope, fields = { msg = "Message", missing = "NoSuchModel" } },
  }
  before_each(function() core.json_schema(schema) end)
  after_each(untyped)

  it("types an object whose first key names a model, and its model-typed fields", function()
    local v = core.json_decode('{"type":"StasisStart","args":[],"channel":{"id":"c1",' ..
      '"caller":{"name":"A","number":"100"},"dialplan":{"context":"x","exten":"s","priority":1.0}}}')
    assert.equals(M.StasisStart, getmetatable(v))
    assert.equals(M.Channel, getmetatable(v.channel))
    assert.equals(M.CallerID, getmetatable(v.channel.caller))
    assert.equals(M.DialplanCEP, getmetatable(v.channel.dialplan))
    assert.equals("integer", math.type(v.channel.dialplan.priority))
    assert.equals(json.array_mt, getmetatable(v.args))
  end)

  it("types an object whose 'type' key comes after other members", function()
    local v = core.json_decode('{"variable":"X","channel":{"id":"c","dialplan":{"priority":2.0},' ..
      '"caller":{"number":"1"}},"value":"1","type":"ChannelVarset","extra":{"k":1}}')
    assert.equals(M.ChannelVarset, getmetatable(v))
    assert.equals(M.Channel, getmetatable(v.channel))
    assert.equals(M.CallerID, getmetatable(v.channel.caller))
    assert.equals(M.DialplanCEP, getmetatable(v.channel.dialplan))
    assert.equals("integer", math.type(v.channel.dialplan.priority))
    assert.is_nil(getmetatable(v.extra))
  end)

  it("converts int/long to integers and double to floats, keeps other values", function()
    local v = core.json_decode('{"type":"Stats","count":3.0,"ratio":2,"ok":true,"nested":' ..
      '{"count":3.5,"ratio":"x","ok":1,"nested":{"count":"7"}}}')
    assert.equals(M.Stats, getmetatable(v))
    assert.equals("integer", math.type(v.count))
    assert.equals(3, v.count)
    assert.equals("float", math.type(v.ratio))
    assert.equals(2.0, v.ratio)
    assert.is_true(v.ok)
    assert.equals(M.Stats, getmetatable(v.nested))
    assert.equals(3.5, v.nested.count)
    assert.equals("x", v.nested.ratio)
    assert.equals(1, v.nested.ok)
    assert.equals("7", v.nested.nested.count)
  end)

  it("types List[Model], List[int] and List[double] elements", function()
    local v = core.json_decode('{"type":"Stats","items":[{"n":1.0},{"n":2},{"n":2.5},"s"],' ..
      '"ints":[1.0,2,2.5],"dbls":[1,2.5,null]}')
    for i = 1, 3 do assert.equals(M.Item, getmetatable(v.items[i])) end
    assert.equals("integer", math.type(v.items[1].n))
    assert.equals(2.5, v.items[3].n)
    assert.equals("s", v.items[4])
    assert.equals("integer", math.type(v.ints[1]))
    assert.equals("float", math.type(v.ints[3]))
    assert.equals("float", math.type(v.dbls[1]))
    assert.equals(json.null, v.dbls[3])
  end)

  it("keeps unknown fields, 'object' fields and unknown types untyped", function()
    local v = core.json_decode('{"type":"Stats","unknown":{"type":"Item","n":1.0},' ..
      '"any":{"type":"Item","n":1.0},"count":1}')
    assert.equals(M.Stats, getmetatable(v))
    assert.is_nil(getmetatable(v.unknown))
    assert.equals("float", math.type(v.unknown.n))
    assert.is_nil(getmetatable(v.any))
    assert.equals("float", math.type(v.any.n))
    local u = core.json_decode('{"type":"FutureEvent","channel":{"id":"c"},"n":1.0}')
    assert.is_nil(getmetatable(u))
    assert.is_nil(getmetatable(u.channel))
    assert.equals("FutureEvent", u.type)
    local plain = core.json_decode('{"id":"c","caller":{"number":"1"}}')
    assert.is_nil(getmetatable(plain))
  end)

  it("lets a 'type' naming a registered model win in a model-typed field", function()
    local v = core.json_decode('{"type":"Envelope","msg":{"type":"StasisStart","channel":{"id":"c"}},' ..
      '"missing":{"type":"Nope"}}')
    assert.equals(M.Envelope, getmetatable(v))
    assert.equals(M.StasisStart, getmetatable(v.msg))
    assert.equals(M.Channel, getmetatable(v.msg.channel))
    assert.is_nil(getmetatable(v.missing))
    local w = core.json_decode('{"type":"Envelope","msg":{"type":"Unknown"}}')
    assert.equals(M.Message, getmetatable(w.msg))
  end)

  it("types the root with an explicit type and types top-level array elements", function()
    local c = core.json_decode('{"id":"c","dialplan":{"priority":1.0}}', "Channel")
    assert.equals(M.Channel, getmetatable(c))
    assert.equals("integer", math.type(c.dialplan.priority))
    local l = core.json_decode('[{"id":"a"},{"id":"b"}]', "List[Channel]")
    assert.equals(M.Channel, getmetatable(l[1]))
    assert.equals(M.Channel, getmetatable(l[2]))
    local evs = core.json_decode('[{"type":"ChannelVarset"},{"type":"Item","n":4.0}]')
    assert.equals(M.ChannelVarset, getmetatable(evs[1]))
    assert.equals(M.Item, getmetatable(evs[2]))
    assert.equals("integer", math.type(evs[2].n))
  end)

  it("still reports malformed input with a byte offset", function()
    local v, err, at = core.json_decode('{"type":"StasisStart","channel":{"id":"c",}}')
    assert.is_nil(v)
    assert.matches("object key expected at byte 43$", err)
    assert.equals(43, at)
  end)

  it("json_schema(nil) turns typing off; bad schemas raise", function()
    core.json_schema(nil)
    assert.is_nil(getmetatable(core.json_decode('{"type":"Item","n":1}')))
    assert.has_error(function() core.json_schema({ X = 1 }) end)
    assert.has_error(function() core.json_schema({ X = { mt = 1 } }) end)
    assert.has_error(function() core.json_schema({ X = { fields = { a = 1 } } }) end)
    assert.has_error(function() core.json_schema({ [1] = {} }) end)
  end)

  -- every line decodes like cjson (when installed), and typed like the plain
  -- decoding, with the event's model and Channel/Bridge metatables
  local function check_corpus(corpus, count)
    local ari_schema = require "ari.schema"
    local reg, mts = {}, {}
    for name, m in pairs(ari_schema.models) do
      local fields = {}
      for k, p in pairs(m.properties or {}) do fields[k] = p.type end
      mts[name] = { __name = name }
      reg[name] = { mt = mts[name], fields = fields }
    end
    local lines = lines_of(corpus)
    assert.equals(count, #lines)
    local has_cjson, cjson = pcall(require, "cjson")
    local typed_count = 0
    for i, l in ipairs(lines) do
      core.json_schema(nil)
      local plain, err = core.json_decode(l)
      assert(plain, "line " .. i .. ": " .. tostring(err))
      core.json_schema(reg)
      local v = core.json_decode(l)
      assert_same(plain, v)
      if has_cjson then
        local c = cjson.decode(l)
        local ok, why = deep_equal(c, plain)
        assert(ok, "line " .. i .. " differs from cjson: " .. tostring(why))
      end
      if mts[v.type] then
        assert.equals(mts[v.type], getmetatable(v), "line " .. i)
        typed_count = typed_count + 1
        if type(v.channel) == "table" then assert.equals(mts.Channel, getmetatable(v.channel)) end
        if type(v.bridge) == "table" then assert.equals(mts.Bridge, getmetatable(v.bridge)) end
      end
    end
    assert.equals(count, typed_count)
  end

  it("decodes the shipped sample of real Asterisk 22 events, typed with the ARI schema", function()
    check_corpus("bench/events.jsonl", 96)
  end)

  it("decodes every real Asterisk 22 event of the shared corpus, typed", function()
    local corpus = require("spec.support.shared").dir .. "/ari-samples/all-events.jsonl"
    local f = io.open(corpus)
    if not f then
      pending("real ARI samples not available (" .. corpus .. ")")
      return
    end
    f:close()
    check_corpus(corpus, 682)
  end)
end)
