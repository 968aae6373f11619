-- recur-scm-1.rockspec: `luarocks make` builds the module and installs it into a tree, and a
-- stock lua5.4 then runs recur from that tree (its paths from `luarocks path`, nothing of
-- the checkout). The rock builds in build-rock/; to keep this fast, build-rock/ is first
-- seeded with the objects of a plain build/ (same flags; make rebuilds whatever is stale).
-- Its one rock dependency, argparse, is Debian's lua-argparse, declared provided.
local H = require "tests.helpers"
local q = H.q

local function luarocks(args)
  return H.sh("luarocks --lua-version 5.4 " .. args)
end

describe("the rockspec", function()
  local tree = H.tmpdir("recur_rock_")
  teardown(function() H.rm_rf(tree) end)

  it("luarocks make installs recur for a stock lua5.4", function()
    local out, code = H.sh("command -v luarocks")
    assert.are.equal(0, code, "no luarocks (Debian: make deps)\n" .. out)
    if H.sh("test -f build/recur.so && test -f build/librecur.a && echo yes"):find("yes") then
      H.sh("mkdir -p build-rock && cp -pR build/runtime build/bindings build/embedded_lua.c " ..
        "build/embedded_lua.o build/librecur.a build/recur.so build-rock/")
    end
    -- the argparse dependency: Debian's lua-argparse is on lua5.4's path but in no rocks tree,
    -- so luarocks is told it is there (as it is told of Lua itself) instead of fetching it
    local version = H.sh("lua5.4 -e 'io.write(require(\"argparse\").version)'")
    assert.truthy(version:match("^%d+%.%d+%.%d+$"), "no argparse for lua5.4 (Debian: make deps)\n" .. version)
    local config = tree .. "/provided.lua"
    H.write_file(config, string.format("rocks_provided = { argparse = %q }\n", version .. "-1"))
    out, code = H.sh("LUAROCKS_CONFIG=" .. q(config) .. " luarocks --lua-version 5.4 --tree " .. q(tree)
      .. " make recur-scm-1.rockspec")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("recur scm%-1 is now installed"), out)
    local so = tree .. "/lib/lua/5.4/recur.so"
    assert.truthy(H.sh("test -f " .. q(so) .. " && echo yes"):find("yes"), "no " .. so)
    -- a clean environment: only the tree's paths, from another directory
    local lua = "cd /tmp && env -u LUA_CPATH -u LUA_PATH -u LUA_CPATH_5_4 -u LUA_PATH_5_4 sh -c " ..
      q("eval \"$(luarocks --lua-version 5.4 --tree " .. q(tree) .. " path)\" && lua5.4 -e " ..
        q([[
local recur = require "recur"
local x = recur.tensor({1, 2, 3})
print(package.searchpath("recur", package.cpath))
print((x * 2):sum():item(), recur.nn.Linear ~= nil)]]))
    out, code = H.sh(lua)
    assert.are.equal(0, code, out)
    assert.truthy(out:find(so, 1, true), out)
    assert.truthy(out:find("12.0\ttrue", 1, true) or out:find("12\ttrue", 1, true), out)
  end)

  it("the versioned rockspec matches the scm one but for its version and tag", function()
    local scm = H.read_file("recur-scm-1.rockspec")
    local v = H.read_file("recur-0.1.0-1.rockspec")
    local norm = v:gsub('version = "0%.1%.0%-1"', 'version = "scm-1"'):gsub('\n  tag = "v0%.1%.0",', "")
    assert.are.equal(scm, norm)
  end)
end)
