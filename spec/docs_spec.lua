-- The generated docs and editor types match the schema they come from.
local schema = require "ari.schema"
local util = require "spec.support.util"

local read = util.read_all

local function regenerate(tool)
  local tmp = os.tmpname()
  local p = io.popen("lua5.4 " .. tool .. " " .. tmp .. " 2>&1; echo rc=$?")
  local out = p:read("a")
  p:close()
  assert(out:match("rc=0%s*$"), out)
  local s = read(tmp)
  os.remove(tmp)
  return s
end

local function count_keys(t) local n = 0; for _ in pairs(t) do n = n + 1 end; return n end

describe("docs/api-reference.md", function()
  local doc = read("docs/api-reference.md")

  it("is what tools/gen-docs.lua makes from the schema now (run it after changing lua/ari/schema.lua)", function()
    assert.is_true(regenerate("tools/gen-docs.lua") == doc, "docs/api-reference.md is stale: lua5.4 tools/gen-docs.lua")
  end)

  it("has a section with the Lua call, the method and path, and the error codes for every operation", function()
    assert.equals(109, #schema.operations)
    for _, op in ipairs(schema.operations) do
      local head = "\n### " .. op.resource .. "." .. op.nickname .. "\n"
      local a = doc:find(head, 1, true)
      assert.is_truthy(a, "no section for " .. op.resource .. "." .. op.nickname)
      local b = doc:find("\n### ", a + 1, true) or #doc
      local sec = doc:sub(a, b)
      assert.is_truthy(sec:find("client." .. op.resource .. "." .. op.nickname, 1, true))
      assert.is_truthy(sec:find("`" .. op.method .. " " .. op.path .. "`", 1, true))
      assert.is_truthy(sec:find("Returns: ", 1, true))
      for code in pairs(op.errors or {}) do
        assert.is_truthy(sec:find("`" .. code .. "`", 1, true), op.nickname .. " lacks error " .. code)
      end
      for _, p in ipairs(op.params) do
        assert.is_truthy(sec:find("| `" .. p.name .. "` |", 1, true), op.nickname .. " lacks parameter " .. p.name)
      end
    end
  end)

  it("has a section listing the fields of every model and event", function()
    assert.equals(85, count_keys(schema.models))
    for name, m in pairs(schema.models) do
      local a = doc:find("\n### " .. name .. "\n", 1, true)
      assert.is_truthy(a, "no section for model " .. name)
      local b = doc:find("\n### ", a + 1, true) or #doc
      local sec = doc:sub(a, b)
      for field in pairs(m.properties) do
        assert.is_truthy(sec:find("| `" .. field .. "` |", 1, true), name .. " lacks field " .. field)
      end
    end
  end)
end)

describe("types/ari.d.lua", function()
  local types = read("types/ari.d.lua")

  it("is what tools/gen-types.lua makes from the schema now", function()
    assert.is_true(regenerate("tools/gen-types.lua") == types, "types/ari.d.lua is stale: lua5.4 tools/gen-types.lua")
  end)

  it("is valid Lua with a class per model and a params class per operation", function()
    assert.is_truthy(load(types, "ari.d.lua", "t", {}))
    for name, m in pairs(schema.models) do
      local cls = types:match("\n%-%-%-@class ari%." .. name .. ":[^\n]*\n(.-)\nlocal ")
        or types:match("\n%-%-%-@class ari%." .. name .. "\n(.-)\nlocal ")
      assert.is_truthy(cls, "no class for " .. name)
      for field, p in pairs(m.properties) do
        if not p.from then
          assert.is_truthy(cls:find("---@field " .. field .. "%??%s"), name .. " lacks field " .. field)
        end
      end
    end
    for _, op in ipairs(schema.operations) do
      assert.is_truthy(types:find("---@class ari.params." .. op.resource .. "." .. op.nickname .. "\n", 1, true))
      assert.is_truthy(types:find("---@field " .. op.nickname .. " fun(", 1, true))
    end
  end)
end)
