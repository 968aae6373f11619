-- The embedding side seen from outside: the example host (headless, hot reload), building a
-- host with pkg-config against the build tree and against `make install`, and Debian's stock
-- lua5.4 loading recur with require. The C API itself is tested by tests/c/test_embed.c and
-- tests/c/test_sandbox.c.
local build = os.getenv("RECUR_BUILD") or "build"
local sanitized = os.getenv("RECUR_SANITIZED") == "1"
local talker = build .. "/examples/talker"

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

describe("the example host", function()
  it("runs headless for a few frames and speaks characters of its vocabulary", function()
    local out, code = run(talker .. " --headless --frames 12 --fps 200 --script examples/talker.lua")
    assert.equal(0, code, out)
    local frames, text = 0, nil
    for n, line in out:gmatch('frame (%d+): %d+ chars in [%d.]+ ms | line "([^"]*)"') do
      frames = frames + 1
      text = line
      assert.equal(frames, tonumber(n))
    end
    assert.equal(12, frames)
    -- 2 characters a frame by default: 24 characters of a line (or a finished line)
    assert.is_true(#text >= 20, text)
    assert.is_nil(text:find("[^a-z ,.!?'\n]"), text)
    assert.truthy(out:find("talker: %d+ lines, %d+ characters, 0 reloads, 0 errors"))
  end)

  it("keeps within its per-frame time budget", function()
    local out, code = run(talker .. " --headless --frames 3 --fps 200 --chars-per-frame 100000 "
                          .. "--budget-ms 2 --script examples/talker.lua")
    assert.equal(0, code, out)
    for ms in out:gmatch("chars in ([%d.]+) ms") do
      assert.is_true(tonumber(ms) < 2 + 5, ms) -- the budget, plus at most one step
    end
  end)

  it("reloads the script when it changes and survives a broken edit", function()
    local dir = tmpdir()
    local script = dir .. "/talker.lua"
    local src = read("examples/talker.lua")
    write(script, src)
    local log = dir .. "/out.txt"
    os.execute(string.format("%s --headless --frames 100 --fps 50 --script %s > %s 2>&1 &",
                             talker, script, log))
    os.execute("sleep 0.6")
    write(script, src .. "\nthis is not lua\n") -- a broken edit: the old script keeps running
    os.execute("sleep 0.6")
    -- a good edit: this next_char says "!" (before the final `return T`)
    write(script, (src:gsub("\nreturn T\n$", '\nfunction T.next_char() return "!" end\nreturn T\n')))
    local out
    for _ = 1, 100 do
      os.execute("sleep 0.1")
      out = read(log)
      if out:find("talker: %d+ lines") then break end
    end
    os.execute("rm -rf " .. dir)
    assert.truthy(out:find("reload failed, keeping the old script: .*talker.lua:%d+:"), out)
    assert.truthy(out:find("reloaded " .. script, 1, true), out)
    assert.truthy(out:find("!!!!"), out) -- the new next_char speaks
    assert.truthy(out:find("talker: %d+ lines, %d+ characters, 1 reloads, 1 errors"), out)
  end)

  it("prints its usage and refuses unknown options", function()
    local out, code = run(talker .. " --help")
    assert.equal(0, code)
    assert.truthy(out:find("usage: talker", 1, true))
    out, code = run(talker .. " --frames")
    assert.equal(2, code)
    assert.truthy(out:find("unknown or incomplete option '--frames'", 1, true))
    out, code = run(talker .. " --headless --frames 1 --script /nonexistent.lua")
    assert.equal(1, code)
    assert.truthy(out:find("cannot open /nonexistent.lua", 1, true), out)
  end)
end)

describe("a host built with pkg-config", function()
  if sanitized then
    pending("skipped under the sanitizers (an unsanitized host cannot load a sanitized library)")
    return
  end

  it("compiles against the build tree with the shared library", function()
    local dir = tmpdir()
    local out, code = run(string.format(
      "PKG_CONFIG_PATH=%s/pkgconfig cc -std=c11 -Wall -Werror -o %s/host examples/talker.c " ..
      "$(PKG_CONFIG_PATH=%s/pkgconfig pkg-config --cflags --libs recur)", build, dir, build))
    assert.equal(0, code, out)
    out, code = run(dir .. "/host --headless --frames 3 --fps 200")
    assert.equal(0, code, out)
    assert.truthy(out:find("frame 3: 2 chars"), out)
    local ldd = run("ldd " .. dir .. "/host")
    assert.truthy(ldd:find("librecur.so.0", 1, true), ldd)
    os.execute("rm -rf " .. dir)
  end)

  it("compiles against `make install`, shared and static", function()
    local dir = tmpdir()
    local out, code = run(string.format("make -s install BUILD=%s PREFIX=%s/usr", build, dir))
    assert.equal(0, code, out)
    local pc = read(dir .. "/usr/lib/pkgconfig/recur.pc")
    assert.truthy(pc:find("includedir=" .. dir .. "/usr/include", 1, true), pc)
    local env = "PKG_CONFIG_PATH=" .. dir .. "/usr/lib/pkgconfig"
    out, code = run(string.format("%s sh -c 'cc -std=c11 -o %s/dyn examples/talker.c " ..
                                  "$(pkg-config --cflags --libs recur)'", env, dir))
    assert.equal(0, code, out)
    out, code = run(string.format("LD_LIBRARY_PATH=%s/usr/lib %s/dyn --headless --frames 2", dir, dir))
    assert.equal(0, code, out)
    assert.truthy(out:find("frame 2:"), out)
    -- static: the archive plus its private dependencies
    out, code = run(string.format("%s sh -c 'cc -std=c11 -o %s/static examples/talker.c " ..
                                  "$(pkg-config --cflags recur) %s/usr/lib/librecur.a " ..
                                  "$(pkg-config --static --libs-only-l recur | sed s/-lrecur//)'",
                                  env, dir, dir))
    assert.equal(0, code, out)
    out, code = run(dir .. "/static --headless --frames 2")
    assert.equal(0, code, out)
    -- the shared library exports the API only
    local syms = run("nm -D --defined-only " .. dir .. "/usr/lib/librecur.so.0")
    assert.truthy(syms:find(" T recur_new", 1, true), syms)
    assert.is_nil(syms:find(" T rc_", 1, true))
    assert.is_nil(syms:find(" T rb_", 1, true))
    os.execute("rm -rf " .. dir)
  end)
end)

describe("stock Lua", function()
  if sanitized then
    pending("skipped under the sanitizers (lua5.4 cannot load a sanitized module)")
    return
  end
  it("loads recur with require from Debian's lua5.4 (module on LUA_CPATH)", function()
    local out, code = run(string.format(
      "LUA_CPATH='%s/?.so;;' lua5.4 -e 'local r = require \"recur\" " ..
      "print(r._VERSION, r.tensor{1, 2, 3}:sum():item(), package.loaded.recur == r)'", build))
    assert.equal(0, code, out)
    assert.equal("recur 0.1.0\t6.0\ttrue\n", out)
  end)
end)
