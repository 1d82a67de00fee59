-- ari.config.parse_address: the one parser of addresses to listen on
-- (--listen: ari.outbound.parse_listen, --metrics: ari.metrics.parse_address).
local config = require "ari.config"
local errors = require "ari.errors"
local outbound = require "ari.outbound"
local metrics = require "ari.metrics"

describe("ari.config.parse_address", function()
  local good = {
    { "127.0.0.1:8090", "127.0.0.1", 8090 },
    { "0.0.0.0:80", "0.0.0.0", 80 },
    { "pbx.example.com:9464", "pbx.example.com", 9464 },
    { "localhost:1", "localhost", 1 },
    { "[::1]:9", "::1", 9 },
    { "[::]:8090", "::", 8090 },
    { "[2001:db8::1]:65535", "2001:db8::1", 65535 },
    { ":9464", "127.0.0.1", 9464 },
    { "9464", "127.0.0.1", 9464 },
    { "127.0.0.1:0", "127.0.0.1", 0 },          -- 0: the system picks a free port
    { 8090, "127.0.0.1", 8090 },
    { { host = "::1", port = 7 }, "::1", 7 },
    { { port = "8090" }, "127.0.0.1", 8090 },
    { {}, "127.0.0.1", 0 },
  }
  for _, case in ipairs(good) do
    it("reads " .. (type(case[1]) == "table" and "a table" or tostring(case[1])), function()
      assert.same({ case[2], case[3] }, { config.parse_address(case[1]) })
      -- both listeners read it the same way
      assert.same({ case[2], case[3] }, { outbound.parse_listen(case[1]) })
      assert.same({ case[2], case[3] }, { metrics.parse_address(case[1]) })
    end)
  end

  local bad = {
    { "localhost", "listen: 'localhost' is not HOST:PORT, [IPv6]:PORT or PORT" },
    { "", "listen: '' is not HOST:PORT, [IPv6]:PORT or PORT" },
    { "host:", "listen: 'host:' is not HOST:PORT, [IPv6]:PORT or PORT" },
    { "host:http", "listen: 'host:http' is not HOST:PORT, [IPv6]:PORT or PORT" },
    { "1.2.3.4:99999", "listen: '1.2.3.4:99999': port 99999 is out of range (0-65535)" },
    { "1.2.3.4:65536", "listen: '1.2.3.4:65536': port 65536 is out of range (0-65535)" },
    { "99999999999999999999999", "listen: '99999999999999999999999': port 99999999999999999999999 is out of range (0-65535)" },
    { "::1:8090", "listen: '::1:8090': put an IPv6 address in brackets, as in [::1]:8090" },
    { "[pbx]:8090", "listen: '[pbx]:8090': [pbx] is not an IPv6 address" },
    { "[]:8090", "listen: '[]:8090': [] is not an IPv6 address" },
    { "a b:80", "listen: 'a b:80': 'a b' is not a host name or address" },
    { 70000, "listen: port 70000 is out of range (0-65535)" },
    { -1, "listen: port -1 is out of range (0-65535)" },
    { 80.5, "listen: expected HOST:PORT (a string), a port number or { host =, port = }, got number" },
    { { port = 1.5 }, "listen: port must be a whole number, got 1.5" },
    { { host = 1, port = 2 }, "listen: host must be a string, got number" },
    { { port = 65536 }, "listen: port 65536 is out of range (0-65535)" },
    { true, "listen: expected HOST:PORT (a string), a port number or { host =, port = }, got boolean" },
  }
  for _, case in ipairs(bad) do
    it("refuses " .. tostring(case[1]) .. " with a clear error", function()
      local host, err = config.parse_address(case[1], "listen")
      assert.is_nil(host)
      assert.is_true(errors.is(err, "param"))
      assert.equals("listen", err.parameter)
      assert.is_nil(err.status)
      assert.equals(case[2], tostring(err))
      -- the outbound listener raises it; the metrics server returns it
      local ok, raised = pcall(outbound.parse_listen, case[1])
      assert.is_false(ok)
      assert.equals(case[2], tostring(raised))
      local mh, merr = metrics.parse_address(case[1])
      assert.is_nil(mh)
      assert.equals((case[2]:gsub("^listen", "metrics")), tostring(merr))
    end)
  end

  it("names the setting it parses (default 'address')", function()
    local _, err = config.parse_address("x")
    assert.equals("address: 'x' is not HOST:PORT, [IPv6]:PORT or PORT", tostring(err))
  end)
end)
