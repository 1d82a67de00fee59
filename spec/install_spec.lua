-- Installing: `make install DESTDIR=...` and `luarocks make --tree ...`,
-- each from a copy of the repository's files (so the build tree other specs
-- use is never touched), then the installed ari-lua runs examples/hello.lua
-- under --sim from outside the source tree.
local function sh(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  return out, tonumber(out:match("rc=(%d+)%s*$"))
end

-- Nothing from the caller's environment may point at the source tree or
-- change the build (make check runs the suite with LD_PRELOAD and MAKEFLAGS).
local CLEAN_ENV = "env -u LD_PRELOAD -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_INIT"
  .. " -u LUA_INIT_5_4 -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u CFLAGS -u LDFLAGS -u ARI_URL -u ARI_USER"
  .. " -u ARI_PASSWORD -u ARI_APP "

local root = io.popen("pwd"):read("l")

-- A copy of the files git knows (a clean clone's files, with working-tree
-- contents), or of the source directories when this is not a git checkout.
local function copy_repo()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir .. "/src"))
  local list = {}
  local p = io.popen("git ls-files 2>/dev/null")
  for f in p:lines() do
    local h = io.open(f)
    if h then h:close(); list[#list + 1] = f end
  end
  p:close()
  local cmd
  if #list > 0 then
    local lf = dir .. "/files.txt"
    local f = assert(io.open(lf, "w"))
    f:write(table.concat(list, "\n"), "\n")
    f:close()
    cmd = "tar cf - -T " .. lf .. " | tar xf - -C " .. dir .. "/src"
  else
    cmd = "tar cf - Makefile src lua docs rockspec examples | tar xf - -C " .. dir .. "/src"
  end
  local out, rc = sh(cmd)
  assert(rc == 0, out)
  return dir
end

local function hello_from(bin, tmp)
  -- run from the temp dir: nothing under ./lua there
  return sh("cd " .. tmp .. " && " .. CLEAN_ENV .. bin .. " --sim --sim-speed 20 " .. root .. "/examples/hello.lua")
end

local function has(cmd) return (select(2, sh("command -v " .. cmd .. " >/dev/null"))) == 0 end

describe("install", function()
  it("make install DESTDIR=... PREFIX=/usr installs a working ari-lua, modules, C module and man page", function()
    local tmp = copy_repo()
    local dest = tmp .. "/dest"
    local out, rc = sh("cd " .. tmp .. "/src && " .. CLEAN_ENV .. "make -s install DESTDIR=" .. dest .. " PREFIX=/usr")
    assert.equals(0, rc, out)
    for _, f in ipairs { "/usr/bin/ari-lua", "/usr/lib/lua/5.4/ari/core.so", "/usr/share/lua/5.4/ari/init.lua",
      "/usr/share/lua/5.4/ari/sim/init.lua", "/usr/share/lua/5.4/ari/testing.lua", "/usr/share/man/man1/ari-lua.1" } do
      local h = io.open(dest .. f)
      assert.is_truthy(h, "missing " .. f)
      if h then h:close() end
    end
    -- Lua files that happen to lie beside the installed binary are not its modules
    assert(os.execute("mkdir -p " .. dest .. "/usr/bin/lua/ari"))
    local stray = assert(io.open(dest .. "/usr/bin/lua/ari/cli.lua", "w"))
    stray:write("error('stray ari/cli.lua beside the binary was loaded')\n")
    stray:close()
    local hout, hrc = hello_from(dest .. "/usr/bin/ari-lua", tmp)
    assert.equals(0, hrc, hout)
    assert.matches("PlaybackFinished", hout)
    assert.matches("DELETE /ari/channels/[^ ]+ %-> 204", hout)
    assert.not_matches("stray", hout)
    -- the installed C module loads in a plain lua5.4 with the installed modules
    local lout, lrc = sh("cd " .. tmp .. " && " .. CLEAN_ENV .. "lua5.4 -e \"package.path='" .. dest
      .. "/usr/share/lua/5.4/?.lua;" .. dest .. "/usr/share/lua/5.4/?/init.lua' package.cpath='" .. dest
      .. "/usr/lib/lua/5.4/?.so' local ari = require 'ari' print('version', ari.version)\"")
    assert.equals(0, lrc, lout)
    assert.matches("version%s+%d+%.%d+%.%d+", lout)
    sh("rm -rf " .. tmp)
  end)

  it("luarocks make --tree ... installs the rock; the installed ari-lua runs hello under --sim", function()
    if not has("luarocks") then pending("luarocks is not installed"); return end
    local tmp = copy_repo()
    local tree = tmp .. "/tree"
    local out, rc = sh("cd " .. tmp .. "/src && " .. CLEAN_ENV
      .. "luarocks --lua-version=5.4 make --deps-mode=none --tree " .. tree .. " rockspec/ari-lua-scm-1.rockspec")
    assert.equals(0, rc, out)
    assert.matches("is now installed", out)
    -- built with LuaRocks' own variables: its Lua headers, its CFLAGS, no -Werror
    local incdir = sh(CLEAN_ENV .. "luarocks --lua-version=5.4 config variables.LUA_INCDIR"):match("^(%S+)")
    assert.is_truthy(out:find("-I" .. incdir, 1, true), out)
    assert.not_matches("%-Werror", out)
    local hout, hrc = hello_from(tree .. "/bin/ari-lua", tmp)
    assert.equals(0, hrc, hout)
    assert.matches("PlaybackFinished", hout)
    local vout = sh(CLEAN_ENV .. tree .. "/bin/ari-lua --version")
    assert.matches("ari%-lua 0%.1%.0", vout)
    sh("rm -rf " .. tmp)
  end)

  it("the versioned rockspec and the scm one describe the same build", function()
    local function load_spec(path)
      local env = {}
      local chunk = assert(loadfile(path, "t", env))
      chunk()
      return env
    end
    local scm = load_spec("rockspec/ari-lua-scm-1.rockspec")
    local rel = load_spec("rockspec/ari-lua-0.1.0-1.rockspec")
    assert.equals("scm-1", scm.version)
    assert.matches("^0%.1%.0%-%d+$", rel.version)
    local mk = assert(io.open("Makefile")):read("a")
    assert.equals(mk:match("VERSION%s*:=%s*(%S+)"), rel.version:match("^(.-)%-%d+$"))
    assert.same(scm.build, rel.build)
    assert.same(scm.dependencies, rel.dependencies)
    assert.same(scm.external_dependencies, rel.external_dependencies)
    assert.is_truthy(rel.source.tag)
  end)
end)
