-- Machine-readable benchmark rows and the results files bench/run.sh keeps per run.
--
-- A bench script describes each figure it prints with rows.emit{...}; when RECUR_BENCH_ROWS
-- names a file (bench/run.sh sets it), the row is appended to it as one JSON line, else
-- nothing happens, so a script run by hand prints only what it always printed. A row:
--   bench   the script ("charrnn")            name    what was measured, unique in a run
--   value   recur's figure                    unit    "ms", "char/s", "ns", ...
--   better  "lower" or "higher" (for value)   ref     the reference's figure (optional)
--   ref_name  what the reference is           ratio   the speed ratio printed (optional)
--   spread  { min =, median =, max = } of the repeated measurements value comes from, or
--           samples = { ... } (each block's figure); without either the noise is unknown
-- rows.collect(rows_file, out) writes { machine = rows.machine(), rows = [...] } to out
-- (a temporary, then renamed); rows.read(path) loads and checks such a file (bench/compare).
-- Machine facts come from /proc, nproc, recur.config() and the environment.
require("recur") -- registers recur.json
local json = require("recur.json")

local rows = {}

-- environment variables that steer OpenBLAS (reported when set)
rows.ENV = { "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OPENBLAS_L2_SIZE",
  "OPENBLAS_VERBOSE", "OMP_NUM_THREADS", "GOTO_NUM_THREADS", "RECUR_GEMM_KERNEL" }

local function first_line(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  if not p then return nil end
  local s = p:read("l")
  p:close()
  return s
end

local function cpu_model()
  local f = io.open("/proc/cpuinfo")
  if not f then return "unknown" end
  local s = f:read("a")
  f:close()
  return s:match("model name%s*:%s*([^\n]-)%s*\n") or "unknown"
end

-- The facts a results file carries and every benchmark prints.
function rows.machine()
  local recur = require("recur")
  local c = recur.config()
  local env = {}
  for _, k in ipairs(rows.ENV) do env[k] = os.getenv(k) end
  local load = nil
  local f = io.open("/proc/loadavg")
  if f then
    load = f:read("l"):match("^(%S+ %S+ %S+)")
    f:close()
  end
  return {
    cpu = cpu_model(),
    cores = math.tointeger(tonumber(first_line("nproc") or "")),
    date = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    load = load,
    commit = first_line("git rev-parse --short HEAD"),
    recur = c.version,
    lua = c.lua,
    blas = { vendor = c.blas.vendor, version = c.blas.version, core = c.blas.core,
      threads = c.blas.threads },
    -- who runs a large product (1600 x 512 x 2048, a cell's input projection): "recur" (its
    -- own AVX-512 kernel, runtime/gemm.c) or "blas"
    gemm = recur._gemm_route(1600, 2048, 512) == "blas" and "blas" or "recur",
    env = env,
  }
end

-- "machine: AMD EPYC, 2 cores; recur 0.1.0, Lua 5.4.4; OpenBLAS 0.3.21, core Haswell, 2 threads;
-- load 1.02 0.98 1.10; env: OPENBLAS_CORETYPE=Haswell"
function rows.describe(m)
  m = m or rows.machine()
  local env = {}
  for _, k in ipairs(rows.ENV) do
    if m.env[k] then env[#env + 1] = k .. "=" .. m.env[k] end
  end
  return string.format("machine: %s, %s cores; %s, %s; %s %s, core %s, %s threads; "
    .. "large products: %s; load %s; env: %s", m.cpu, tostring(m.cores), m.recur, m.lua,
    m.blas.vendor, m.blas.version, m.blas.core, tostring(m.blas.threads),
    m.gemm == "recur" and "recur's AVX-512 kernel" or m.gemm == "blas" and "OpenBLAS" or "?",
    m.load or "?",
    #env > 0 and table.concat(env, " ") or "(none of " .. table.concat(rows.ENV, ", ") .. ")")
end

-- min, median, max of a list of numbers
function rows.spread(samples)
  local s = table.move(samples, 1, #samples, 1, {})
  table.sort(s)
  local n = #s
  local med = n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
  return { min = s[1], median = med, max = s[n] }
end

local function finite(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

-- Appends one row to $RECUR_BENCH_ROWS (when set). NaN / inf fields are left out.
function rows.emit(row)
  local path = os.getenv("RECUR_BENCH_ROWS")
  if not path or path == "" then return end
  local r = {}
  for k, v in pairs(row) do
    if type(v) ~= "number" or finite(v) then r[k] = v end
  end
  if r.samples then
    local ok = {}
    for _, v in ipairs(r.samples) do if finite(v) then ok[#ok + 1] = v end end
    r.samples = #ok > 0 and ok or nil
  end
  local f = assert(io.open(path, "a"))
  f:write(json.encode(r), "\n")
  f:close()
end

local function fail(path, msg) error(string.format("bench results %s: %s", path, msg), 0) end

-- Checks a decoded results table; returns it.
local function check(t, path)
  if type(t) ~= "table" or type(t.rows) ~= "table" or type(t.machine) ~= "table" then
    fail(path, "not a results file (wants an object with \"machine\" and \"rows\")")
  end
  local seen = {}
  for i, r in ipairs(t.rows) do
    if type(r) ~= "table" or type(r.name) ~= "string" or not finite(r.value) then
      fail(path, string.format("row %d has no name or no finite value", i))
    end
    local key = (r.bench or "") .. "\0" .. r.name
    if seen[key] then fail(path, string.format("row %d repeats %q", i, r.name)) end
    seen[key] = true
    local sp = r.spread
    if sp ~= nil and (type(sp) ~= "table" or not (finite(sp.min) and finite(sp.median)
        and finite(sp.max))) then
      fail(path, string.format("row %d (%s): spread wants finite min, median, max", i, r.name))
    end
    if r.samples ~= nil and (type(r.samples) ~= "table" or #r.samples == 0) then
      fail(path, string.format("row %d (%s): samples must be a non-empty list", i, r.name))
    end
  end
  return t
end

-- Loads and checks a results file; errors name the file and what is wrong.
function rows.read(path)
  local f, err = io.open(path, "rb")
  if not f then fail(path, "cannot open (" .. tostring(err) .. ")") end
  local text = f:read("a")
  f:close()
  local ok, t = pcall(json.decode, text)
  if not ok then fail(path, "not JSON (" .. tostring(t) .. ")") end
  return check(t, path)
end

-- Writes machine facts and the rows of rows_file to out, atomically; returns the row count.
function rows.collect(rows_file, out, machine)
  local list = {}
  local f = io.open(rows_file, "rb")
  if f then
    for line in f:lines() do
      if line ~= "" then list[#list + 1] = json.decode(line) end
    end
    f:close()
  end
  local parts = { '{"machine": ', json.encode(machine or rows.machine()), ',\n"rows": [' }
  for i, r in ipairs(list) do parts[#parts + 1] = (i > 1 and ",\n" or "\n") .. json.encode(r) end
  parts[#parts + 1] = "\n]}\n"
  local text = table.concat(parts)
  check(json.decode(text), out)
  local tmp = out .. ".tmp"
  local w = assert(io.open(tmp, "wb"))
  w:write(text)
  assert(w:close())
  local ok, err = os.rename(tmp, out)
  if not ok then
    os.remove(tmp)
    error("bench results: cannot rename " .. tmp .. " to " .. out .. ": " .. tostring(err), 0)
  end
  return #list
end

-- The relative half-range of a row's measurements, (max - min) / (2 median), or nil when it
-- has fewer than two (spread wins over samples).
function rows.noise(r)
  local sp = r.spread
  if not sp and r.samples and #r.samples >= 2 then sp = rows.spread(r.samples) end
  if not sp or sp.median == 0 then return nil end
  return (sp.max - sp.min) / (2 * math.abs(sp.median))
end

-- Rows of results b against results a (tables from rows.read): { both = { {name, a, b,
-- ratio = b.value / a.value, change = ratio - 1, noise = combined half-ranges or nil,
-- beyond = |change| > noise (false when the noise is unknown), verdict} ... },
-- only_a = {names}, only_b = {names} }, in a's order then b's.
function rows.compare(a, b)
  local function key(r) return (r.bench and r.bench .. ": " or "") .. r.name end
  local in_a, in_b = {}, {}
  for _, r in ipairs(a.rows) do in_a[key(r)] = r end
  for _, r in ipairs(b.rows) do in_b[key(r)] = r end
  local out = { both = {}, only_a = {}, only_b = {} }
  for _, ra in ipairs(a.rows) do
    local k = key(ra)
    local rb = in_b[k]
    if not rb then
      out.only_a[#out.only_a + 1] = k
    else
      local ratio = ra.value ~= 0 and rb.value / ra.value or 0 / 0
      local na, nb = rows.noise(ra), rows.noise(rb)
      local noise = na and nb and na + nb or nil
      local change = ratio - 1
      local beyond = noise ~= nil and ratio == ratio and math.abs(change) > noise
      local verdict
      if noise == nil then
        verdict = "noise unknown"
      elseif not beyond then
        verdict = "within noise"
      elseif (rb.better or ra.better) == "lower" then
        verdict = change < 0 and "better" or "worse"
      elseif (rb.better or ra.better) == "higher" then
        verdict = change > 0 and "better" or "worse"
      else
        verdict = "changed"
      end
      out.both[#out.both + 1] = { name = k, a = ra, b = rb, ratio = ratio, change = change,
        noise = noise, beyond = beyond, verdict = verdict }
    end
  end
  for _, rb in ipairs(b.rows) do
    if not in_a[key(rb)] then out.only_b[#out.only_b + 1] = key(rb) end
  end
  return out
end

return rows
