-- The layering rules of docs/architecture.md that a compiler does not check: runtime/ never
-- includes lua.h (a C host and the C tests use it without Lua), its files stand on floors and
-- include only down (and never in a loop), and the library has no mutable C globals (several
-- runtimes in one process share no state). Reads the sources and the built library (objdump,
-- from binutils).
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

-- The floors of runtime/ from the ground up (docs/architecture.md, "Layers"). A file belongs to
-- the floor of its name without .c / .h; the top floor holds the families named by prefix.
local floors = {
  {name = "kernels", files = {kernels = true, kernels_math = true, team = true}},
  {name = "tensor", files = {tensor = true, context = true, rng = true}},
  {name = "autograd", files = {autograd = true, profile = true}},
  {name = "ops / nn / rnn / optim / io",
   prefixes = {"ops", "nn", "rnn", "optim", "safetensors", "data", "sample", "gemm"}},
}


local function module_of(path)
  return (path:match("([^/]+)%.[ch]$"))
end

local function floor_of(mod)
  for i, f in ipairs(floors) do
    if f.files and f.files[mod] then return i end
    for _, p in ipairs(f.prefixes or {}) do
      if mod == p or mod:sub(1, #p + 1) == p .. "_" then return i end
    end
  end
end

-- every quoted include of runtime/: {from = "runtime/x.c", to = "y.h"}
local function runtime_includes()
  local edges = {}
  for _, f in ipairs(lines("ls runtime/*.c runtime/*.h")) do
    local h = assert(io.open(f))
    for l in h:lines() do
      local inc = l:match('^%s*#%s*include%s*"([^"]+)"')
      if inc then edges[#edges + 1] = {from = f, to = inc} end
    end
    h:close()
  end
  return edges
end

describe("runtime floors", function()
  it("every file of runtime/ stands on a floor", function()
    local lost = {}
    for _, f in ipairs(lines("ls runtime/*.c runtime/*.h")) do
      if not floor_of(module_of(f)) then lost[#lost + 1] = f end
    end
    assert.same({}, lost)
  end)

  it("no include in runtime/ runs up a floor", function()
    local bad = {}
    for _, e in ipairs(runtime_includes()) do
      local key = e.from .. " -> " .. e.to
      local a, b = floor_of(module_of(e.from)), floor_of(module_of(e.to))
      assert.truthy(io.open("runtime/" .. e.to), key .. ": not a header of runtime/")
      if a and b and b > a then
        bad[#bad + 1] = key .. " (floor " .. floors[b].name .. " above " .. floors[a].name .. ")"
      end
    end
    assert.same({}, bad)
  end)

  it("runtime/ has no loop of includes (a .c file counts with its .h)", function()
    local out = {}
    for _, e in ipairs(runtime_includes()) do
      local a, b = module_of(e.from), module_of(e.to)
      if a ~= b then
        out[a] = out[a] or {}
        out[a][b] = true
      end
    end
    -- depth-first search; a module met again while still on the path closes a loop
    local state, path, loops = {}, {}, {}
    local function visit(m)
      state[m] = "open"
      path[#path + 1] = m
      local next_ = {}
      for n in pairs(out[m] or {}) do next_[#next_ + 1] = n end
      table.sort(next_)
      for _, n in ipairs(next_) do
        if state[n] == "open" then
          local i = #path
          while path[i] ~= n do i = i - 1 end
          loops[#loops + 1] = table.concat(path, " -> ", i) .. " -> " .. n
        elseif not state[n] then
          visit(n)
        end
      end
      path[#path] = nil
      state[m] = "done"
    end
    local mods = {}
    for m in pairs(out) do mods[#mods + 1] = m end
    table.sort(mods)
    for _, m in ipairs(mods) do
      if not state[m] then visit(m) end
    end
    assert.same({}, loops)
  end)
end)

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

  -- One exp, tanh and sigmoid (runtime/kernels_math.h), so that x:tanh(), nn.Tanh and a fused
  -- cell's gates agree bit for bit: no other runtime file calls libm's expf, tanhf or exp/tanh.
  -- The sampler (sample.c) is the one exception: it turns logits into a distribution in double.
  it("runtime/ computes exp and tanh in one place (kernels_math.h)", function()
    local bad = {}
    for _, f in ipairs(lines("ls runtime/*.c runtime/*.h")) do
      if not f:match("kernels_math%.h$") and not f:match("/sample%.c$") then
        local h = assert(io.open(f))
        local n = 0
        for l in h:lines() do
          n = n + 1
          local code = l:gsub("/%*.*%*/", ""):gsub("//.*", "")
          if code:match("^%s*/?%*") then code = "" end -- a comment's line
          if code:match("[^%w_]expf?%s*%(") or code:match("[^%w_]tanhf?%s*%(") or
              code:match("^expf?%s*%(") or code:match("^tanhf?%s*%(") then
            bad[#bad + 1] = f .. ":" .. n .. ": " .. l
          end
        end
        h:close()
      end
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
