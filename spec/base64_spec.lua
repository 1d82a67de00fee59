-- ari.base64: the one Base64 of ari-lua (Basic auth in ari.ws, ari.outbound
-- and the simulator's transport), against RFC 4648.
local base64 = require "ari.base64"

-- RFC 4648 section 10
local VECTORS = {
  { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
  { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
}

describe("ari.base64", function()
  it("encodes and decodes the RFC 4648 test vectors", function()
    for _, v in ipairs(VECTORS) do
      assert.equals(v[2], base64.encode(v[1]))
      assert.equals(v[2], base64(v[1])) -- the module is still callable as the encoder
      assert.equals(v[1], base64.decode(v[2]))
    end
  end)

  it("round-trips every byte value and every length up to 3 blocks", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    local s = table.concat(all)
    assert.equals(s, base64.decode(base64.encode(s)))
    for n = 0, 9 do
      local t = s:sub(200, 199 + n)
      assert.equals(t, base64.decode(base64.encode(t)))
    end
    assert.equals("+/+/", base64.encode("\251\255\191"))
  end)

  it("decodes a Basic credential with a colon and non-ASCII bytes", function()
    local up = "alice:p\195\164ss:w0rd"
    assert.equals(up, base64.decode(base64.encode(up)))
  end)

  local bad = {
    { "Zg", "length 2 is not a multiple of 4" },          -- padding left out
    { "Zm9vY", "length 5" },
    { "Zg=", "length 3" },
    { "Zm9v!A==", "invalid character \"!\" at 5" },        -- outside the alphabet
    { "Zm9 vYg=", "invalid character \" \" at 4" },        -- no white space inside
    { "Zm9-", "invalid character \"-\" at 4" },            -- base64url is another alphabet
    { "Zm9_", "invalid character \"_\"" },
    { "Z===", "invalid character \"=\" at 2" },            -- too much padding
    { "====", "invalid character \"=\" at 1" },
    { "Zg==Zg==", "invalid character \"=\" at 3" },        -- padding in the middle
    { "Zm=v", "invalid character \"=\" at 3" },
    { "Zh==", "non-zero bits before the padding" },        -- "Zg==" is the one text for "f"
    { "Zm9=", "non-zero bits before the padding" },
    { "Zm9v\0Yg=", "invalid character" },
  }
  for _, case in ipairs(bad) do
    it("refuses " .. string.format("%q", case[1]) .. " (" .. case[2] .. ")", function()
      local v, err = base64.decode(case[1])
      assert.is_nil(v)
      assert.is_string(err)
      assert.truthy(err:find(case[2], 1, true), err)
      assert.matches("^base64: ", err)
    end)
  end

  it("refuses a value that is not a string", function()
    local v, err = base64.decode(nil)
    assert.is_nil(v)
    assert.matches("expected a string, got nil", err)
  end)

  it("is what the simulator's transport uses to check Basic credentials", function()
    local transport = require "ari.sim.transport"
    local sim = { user = "u", password = "p:w" }
    assert.is_true(transport.authorized(sim, { authorization = "Basic " .. base64("u:p:w") }, ""))
    assert.is_false(transport.authorized(sim, { authorization = "Basic " .. base64("u:p:x") }, ""))
    -- stray characters are no longer skipped over: not Base64, not authorized
    local stray = base64("u:p:w"):gsub("^(..)", "%1!")
    assert.is_false(transport.authorized(sim, { authorization = "Basic " .. stray }, ""))
    assert.equals(base64.decode, transport.b64decode)
  end)
end)
