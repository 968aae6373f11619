-- The layering rules of docs/architecture.md that a compiler does not check: runtime/ never
-- includes lua.h (a C host and the C tests use it without Lua), and the library has no mutable
-- C globals (several runtimes in one process share no state). Reads the sources and the built
-- library (objdump, from binutils).
local build = os.getenv("RECUR_BUILD") or "build"

local function read_cmd(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("a")
  p:close()
  return s
end

local function lines(cmd)
  local t = {}
  for l in read_cmd(cmd):gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("layering", function()
  it("runtime/ includes no Lua header", function()
    local files = lines("ls runtime/*.c runtime/*.h")
    assert.truthy(#files > 30, "runtime sources not found (run from the repository root)")
    local bad = {}
    for _, f in ipairs(files) do
      local h = assert(io.open(f))
      for l in h:lines() do
        if l:match("^%s*#%s*include%s*[<\"]l[a-z]*%.h[>\"]") and
            (l:find("lua") or l:find("lauxlib") or l:find("lualib")) then
          bad[#bad + 1] = f .. ": " .. l
        end
      end
      h:close()
    end
    assert.same({}, bad)
  end)

  -- The Lua half lives in lib/ and is compiled into the module (tools/embed_lua.sh); its chunk
  -- names point back at the files, so error positions and tracebacks name a real file.
  it("every module of the Lua half runs under the name of its file in lib/", function()
    require "recur"
    local files = lines("find lib -name '*.lua' | sort")
    assert.truthy(#files > 15, "lib/ sources not found (run from the repository root)")
    local seen, bad = 0, {}
    for _, path in ipairs(files) do
      local name = path:gsub("^lib/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      local m = require(name)
      for _, f in pairs(type(m) == "table" and m or {m}) do
        local src = type(f) == "function" and debug.getinfo(f, "S").source or ""
        if src:match("^@lib/") then
          seen = seen + 1
          local h = io.open(src:sub(2))
          if h then h:close() else bad[#bad + 1] = name .. ": " .. src end
        end
      end
    end
    assert.truthy(seen > 100, "only " .. seen .. " functions of lib/ found")
    assert.same({}, bad)
  end)

  -- AddressSanitizer gives constant tables redzones in writable sections (.data.rel.local,
  -- __odr_asan markers in .bss): only a plain build tells, so `make asan` does not run this
  if os.getenv("RECUR_SANITIZED") then return end
  it("the library has no mutable static data (nothing in .data or .bss)", function()
    local lib = build .. "/librecur.a"
    local f = assert(io.open(lib), "no " .. lib)
    f:close()
    assert(read_cmd("command -v objdump"):find("objdump"), "no objdump (binutils: make deps)")
    local syms, bad = 0, {}
    local file
    for _, l in ipairs(lines("objdump -t " .. lib)) do
      file = l:match("^(%S+%.o):%s+file format") or file
      -- "addr flags section size name": objects (O) in a writable data section; const data
      -- with relocations lives in .data.rel.ro, which is read-only after loading
      local flags, section, name = l:match("^%x+ (.......) (%S+)%s+%x+ (%S+)$")
      if flags then
        syms = syms + 1
        local writable = section == ".data" or section == ".bss" or
            section:match("^%.data%.") and not section:match("^%.data%.rel%.ro") or
            section:match("^%.bss%.") or section:match("^%.tbss") or section:match("^%.tdata")
        if writable and flags:find("O") then bad[#bad + 1] = file .. ": " .. section .. " " .. name end
      end
    end
    assert.truthy(syms > 500, "objdump listed " .. syms .. " symbols")
    assert.same({}, bad)
  end)
end)
