-- recur.experiment.sweep: a function run over configurations x seeds, one generator per run,
-- finished runs kept in a results file so that an interrupted sweep resumes where it stopped.
--
--   local sw = sweep.new{name, file (nil: nothing kept), configs, seeds, run, resume = true,
--                        meta = nil (anything JSON-able that must match to resume: a run's
--                        budget, the profile), quiet = false}
--   sw:run()            runs what `file` lacks, returns every record (config order, then seed)
--   sw:pending()        specs {key, config, seed, index, total} not yet recorded
--   sweep.execute(spec, run_fn, opts) -> record {key, config, seed, result, seconds}
--   sw:record(record)   adds it and rewrites `file` (temporary + rename: never half-written)
--   sw:records()        the recorded runs in order; sw:select(pred), sw:values(records, field)
--
-- The loop is pending -> execute -> record, so another engine (MPI) can hand specs out and
-- record what comes back. record() merges with what the file holds at that moment, so two
-- processes running disjoint runs of one sweep keep each other's records (up to the window
-- between reading and renaming).
local json = require "recur.json"
local clock = require "recur.experiment.clock"
local format = require "recur.experiment.format"

local sweep = {}
local Sweep = {}
Sweep.__index = Sweep

-- "num_steps=5 state=4 seed=2": the config's keys sorted, values as JSON (strings quoted,
-- floats in their shortest exact form).
function sweep.key(config, seed)
  local keys = {}
  for k in pairs(config) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = k .. "=" .. (type(config[k]) == "table" and json.encode(config[k]) or format.scalar(config[k])) end
  parts[#parts + 1] = "seed=" .. format.scalar(seed)
  return table.concat(parts, " ")
end

local function fail(fmt, ...) error("experiment.sweep: " .. string.format(fmt, ...), 3) end

function sweep.new(o)
  if type(o) ~= "table" then fail("expected a table of options, got %s", type(o)) end
  if type(o.name) ~= "string" then fail("name must be a string, got %s", type(o.name)) end
  if o.file ~= nil and type(o.file) ~= "string" then fail("file must be a path string or nil, got %s", type(o.file)) end
  if type(o.configs) ~= "table" or #o.configs == 0 then fail("configs must be a non-empty list of tables") end
  if type(o.seeds) ~= "table" or #o.seeds == 0 then fail("seeds must be a non-empty list of integers") end
  if o.run ~= nil and type(o.run) ~= "function" then fail("run must be a function, got %s", type(o.run)) end
  for i, s in ipairs(o.seeds) do
    if math.type(s) ~= "integer" then fail("seeds[%d] must be an integer, got %s", i, tostring(s)) end
  end
  local self = setmetatable({
    name = o.name, file = o.file, configs = o.configs, seeds = o.seeds, fn = o.run,
    meta = o.meta, quiet = o.quiet, done = {}, order = {}, by_key = {},
  }, Sweep)
  for i, c in ipairs(o.configs) do
    if type(c) ~= "table" then fail("configs[%d] is a %s, not a table", i, type(c)) end
    local ok, err = pcall(json.encode, c)
    if not ok then fail("configs[%d] is not plain JSON-able data: %s", i, err) end
    for _, s in ipairs(o.seeds) do
      local key = sweep.key(c, s)
      if self.by_key[key] then fail("configs[%d] repeats run %s", i, key) end
      self.by_key[key] = { key = key, config = c, seed = s }
      self.order[#self.order + 1] = key
    end
  end
  if self.file and o.resume ~= false then self:load() end
  return self
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- What the file holds: {key -> record}, or nil when it holds another sweep or budget.
function Sweep:read()
  local s = self.file and read_file(self.file)
  if not s or s == "" then return {} end
  local ok, t = pcall(json.decode, s)
  if not ok or type(t) ~= "table" or type(t.records) ~= "table" then
    error(string.format("experiment.sweep %s: %s is not a sweep file (%s); move it away or run with --no-resume",
      self.name, self.file, ok and "no records" or tostring(t)), 0)
  end
  if json.encode(t.meta or {}) ~= json.encode(self.meta or {}) then
    return nil, string.format("%s was written with meta %s, this sweep has %s", self.file,
      json.encode(t.meta or {}), json.encode(self.meta or {}))
  end
  local out = {}
  for _, r in ipairs(t.records) do
    if type(r) == "table" and type(r.key) == "string" then out[r.key] = r end
  end
  return out
end

function Sweep:load()
  local got, why = self:read()
  if not got then
    if not self.quiet then io.stderr:write(string.format("[%s] not resuming: %s\n", self.name, why)) end
    self.stale = true
    return
  end
  for key, r in pairs(got) do
    if self.by_key[key] then self.done[key] = r end
  end
end

function Sweep:pending()
  local out = {}
  for i, key in ipairs(self.order) do
    if not self.done[key] then
      local s = self.by_key[key]
      out[#out + 1] = { key = key, config = s.config, seed = s.seed, index = i, total = #self.order }
    end
  end
  return out
end

-- Records in config order then seed order, finished runs only.
function Sweep:records()
  local out = {}
  for _, key in ipairs(self.order) do
    if self.done[key] then out[#out + 1] = self.done[key] end
  end
  return out
end

local function write_atomic(path, text)
  -- a name no other process picks: the table's address differs between processes only by
  -- chance, so add the time and a random number
  local tmp = string.format("%s.tmp.%d.%s.%d", path, os.time(), tostring({}):match("0x(%x+)") or "0",
    math.random(1, 1 << 30))
  local f, err = io.open(tmp, "wb")
  if not f then error("experiment: cannot write " .. tmp .. ": " .. tostring(err), 0) end
  local ok, werr = f:write(text)
  f:close()
  if not ok then
    os.remove(tmp)
    error("experiment: cannot write " .. tmp .. ": " .. tostring(werr), 0)
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then
    os.remove(tmp)
    error("experiment: cannot rename " .. tmp .. " to " .. path .. ": " .. tostring(rerr), 0)
  end
end
sweep.write_atomic = write_atomic

function Sweep:save()
  if not self.file then return end
  -- merge what another process recorded meanwhile (unless the file is of another budget)
  if not self.stale then
    local got = self:read() or {}
    for key, r in pairs(got) do
      if self.by_key[key] and not self.done[key] then self.done[key] = r end
    end
  end
  local records = self:records()
  local dir = self.file:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'") end
  write_atomic(self.file, json.encode({ sweep = self.name, meta = self.meta, records = records }) .. "\n")
  self.stale = false
end

function Sweep:record(r)
  if type(r) ~= "table" or type(r.key) ~= "string" or not self.by_key[r.key] then
    error(string.format("experiment.sweep %s: record: not a record of this sweep (key %s)", self.name,
      type(r) == "table" and tostring(r.key) or type(r)), 2)
  end
  local ok, err = pcall(json.encode, r)
  if not ok then
    error(string.format("experiment.sweep %s: run %s returned a result that is not plain JSON-able data: %s",
      self.name, r.key, err), 2)
  end
  self.done[r.key] = r
  self:save()
  return r
end

-- The run context handed to run_fn: progress inside a run and log lines.
local Run = {}
Run.__index = Run
function Run:progress(done, total)
  if type(done) ~= "number" or type(total) ~= "number" or total <= 0 then
    error("run:progress: expected (done, total) numbers with total > 0", 2)
  end
  self.fraction = math.max(0, math.min(1, done / total))
  if self.on_progress then self.on_progress(self) end
end
function Run:log(fmt, ...)
  io.stderr:write("[" .. self.key .. "] " .. string.format(fmt, ...) .. "\n")
end

-- Runs one spec: recur.seed(seed), then run_fn(config, seed, run). Returns the record.
function sweep.execute(spec, run_fn, opts)
  if type(spec) ~= "table" or type(spec.key) ~= "string" or type(spec.config) ~= "table" then
    error("experiment.execute: spec must be a table {key, config, seed} (from sweep:pending())", 2)
  end
  if type(run_fn) ~= "function" then error("experiment.execute: run_fn must be a function, got " .. type(run_fn), 2) end
  local recur = require "recur"
  recur.seed(spec.seed)
  local run = setmetatable({ key = spec.key, fraction = 0, on_progress = opts and opts.on_progress }, Run)
  local t0 = clock.now()
  local result = run_fn(spec.config, spec.seed, run)
  if type(result) ~= "table" then
    error(string.format("experiment: run %s returned %s, expected a table of results", spec.key, type(result)), 2)
  end
  return { key = spec.key, config = spec.config, seed = spec.seed, result = result, seconds = clock.now() - t0 }
end

local function duration(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.max(0, math.floor(s + 0.5))
  if s >= 3600 then return string.format("%dh%02dm", s // 3600, (s % 3600) // 60) end
  if s >= 60 then return string.format("%dm%02ds", s // 60, s % 60) end
  return string.format("%ds", s)
end
sweep.duration = duration

function Sweep:run()
  if not self.fn then error("experiment.sweep " .. self.name .. ": run() needs the run function (run = ...)", 2) end
  local todo = self:pending()
  local total, already = #self.order, #self.order - #todo
  if already > 0 and not self.quiet then
    io.stderr:write(string.format("[%s] resuming: %d of %d runs already in %s\n", self.name, already, total, self.file))
  end
  local t0, finished, last = clock.now(), 0, -math.huge
  local function line(spec, frac, force)
    if self.quiet then return end
    local now = clock.now()
    if not force and now - last < 10 then return end
    last = now
    local units = finished + frac -- runs of this session, the current one in part
    local elapsed = now - t0
    local rate = units > 0 and elapsed > 0 and units / elapsed or nil
    local eta = rate and (#todo - units) / rate or 0 / 0
    io.stderr:write(string.format("[%s] run %d/%d (%s) %d%% of sweep, %s, ETA %s\n", self.name, spec.index, total,
      spec.key, math.floor(100 * (already + units) / total), rate and string.format("%.1f runs/min", 60 * rate) or "? runs/min",
      duration(eta)))
  end
  for _, spec in ipairs(todo) do
    line(spec, 0, true)
    local r = sweep.execute(spec, self.fn, { on_progress = function(run) line(spec, run.fraction, false) end })
    finished = finished + 1
    self:record(r)
  end
  if #todo > 0 and not self.quiet then
    io.stderr:write(string.format("[%s] %d runs done in %s\n", self.name, #todo, duration(clock.now() - t0)))
  end
  return self:records()
end

function Sweep:select(pred, records)
  local out = {}
  for _, r in ipairs(records or self:records()) do
    if pred(r.config, r.seed, r) then out[#out + 1] = r end
  end
  return out
end

-- r.result[field] of each record; field may be a function(result, record).
function Sweep:values(records, field)
  if field == nil then records, field = self:records(), records end
  local out = {}
  for i, r in ipairs(records) do
    local v
    if type(field) == "function" then v = field(r.result, r) else v = r.result[field] end
    if v == nil then
      error(string.format("sweep:values: run %s has no result field %s", r.key, tostring(field)), 2)
    end
    out[i] = v
  end
  return out
end

return sweep
