-- recur.experiment.sweep: a function run over configurations x seeds, one generator per run,
-- finished runs kept in a results file so that an interrupted sweep resumes where it stopped.
--
--   local sw = sweep.new{name, file (nil: nothing kept), configs, seeds, run, resume = true,
--                        meta = nil (anything JSON-able that must match to resume: a run's
--                        budget, the profile), quiet = false}
--   sw:run()            runs what `file` lacks, returns every record (config order, then seed)
--   sw:pending()        specs {key, config, seed, index, total} not yet recorded
--   sweep.execute(spec, run_fn, opts) -> record {key, config, seed, result, seconds, commit}
--   sw:record(record)   adds it and rewrites `file` (temporary + rename: never half-written)
--   sw:records()        the recorded runs in order; sw:select(pred), sw:values(records, field)
--
-- The loop is pending -> execute -> record, so another engine can hand specs out and record
-- what comes back. Under mpirun (sweep.world()) run() is distributed: rank 0's pending list is
-- handed out round-robin, every rank runs its share with the same seeds as one process would,
-- and after each round every rank learns every record; rank 0 alone writes the file (so an
-- interrupted distributed sweep loses at most the round under way and resumes like any other). record() merges with what the file holds at that moment, so two
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

-- The MPI world when the script runs under mpirun with more than one rank, else nil: outside
-- mpirun recur.mpi is never loaded (the environment says whether mpirun started us).
function sweep.world()
  if not (os.getenv("OMPI_COMM_WORLD_SIZE") or os.getenv("PMIX_RANK") or os.getenv("PMI_SIZE")) then return nil end
  local mpi = require "recur.mpi"
  if mpi.size() < 2 then return nil end
  return mpi
end

-- True on ranks other than 0 of a distributed run: they neither print nor write files.
function sweep.follower()
  local w = sweep.world()
  return w ~= nil and w.rank() ~= 0
end

local function fail(fmt, ...) error("experiment.sweep: " .. string.format(fmt, ...), 3) end

-- What the command line chose (experiment.cli sets them): --no-resume and the profile reach
-- every sweep of the script, also those given an explicit file.
sweep.defaults = {}

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
  -- the profile joins the meta, so a smoke or quick sweep never resumes into a full one
  local meta = o.meta
  if sweep.defaults.profile and (meta == nil or (type(meta) == "table" and meta.profile == nil)) then
    meta = {}
    for k, v in pairs(o.meta or {}) do meta[k] = v end
    meta.profile = sweep.defaults.profile
  end
  local self = setmetatable({
    name = o.name, file = o.file, configs = o.configs, seeds = o.seeds, fn = o.run,
    meta = meta, quiet = o.quiet, done = {}, order = {}, by_key = {},
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
  local resume = o.resume
  if resume == nil then resume = sweep.defaults.resume ~= false end
  if self.file and resume then self:load() end
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

-- The commit the runs of this process run at (report.commit: "-dirty" when tracked files
-- differ), looked up once; nil outside git or where the process cannot run git.
local commit_of_process
local function run_commit()
  if commit_of_process == nil then
    local ok, c = pcall(function() return require("recur.experiment.report").commit() end)
    commit_of_process = ok and c or false
  end
  return commit_of_process or nil
end

-- Runs one spec: recur.seed(seed), then run_fn(config, seed, run). Returns the record, with
-- the commit it ran at (a results file re-rendered later from resumed runs keeps it).
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
  return { key = spec.key, config = spec.config, seed = spec.seed, result = result, seconds = clock.now() - t0,
    commit = run_commit() }
end

local function duration(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.max(0, math.floor(s + 0.5))
  if s >= 3600 then return string.format("%dh%02dm", s // 3600, (s % 3600) // 60) end
  if s >= 60 then return string.format("%dm%02ds", s // 60, s % 60) end
  return string.format("%ds", s)
end
sweep.duration = duration

-- run() under mpirun: rounds of one run per rank (rank r takes runs r + 1, r + 1 + size, ... of
-- rank 0's pending list); after each round the records are allgathered, every rank keeps them
-- and rank 0 writes the file. A failing run raises on its rank, which ends the job (recur.mpi).
function Sweep:run_distributed(mpi)
  local rank, size = mpi.rank(), mpi.size()
  local quiet = self.quiet or rank ~= 0
  local todo = mpi.broadcast_value(self:pending(), 0)
  local total, already = #self.order, #self.order - #todo
  if already > 0 and not quiet then
    io.stderr:write(string.format("[%s] resuming: %d of %d runs already in %s\n", self.name, already, total, self.file))
  end
  local t0 = clock.now()
  for first = 1, #todo, size do
    local spec = todo[first + rank]
    local mine = false
    if spec then
      if not quiet then
        io.stderr:write(string.format("[%s] runs %d-%d/%d on %d ranks (%d%% of sweep)\n", self.name, spec.index,
          todo[math.min(first + size - 1, #todo)].index, total, size, math.floor(100 * (already + first - 1) / total)))
      end
      mine = sweep.execute(spec, self.fn)
    end
    for _, r in ipairs(mpi.allgather(mine)) do
      if r then
        if not self.by_key[r.key] then error("experiment.sweep " .. self.name .. ": a rank returned run " .. r.key .. ", not of this sweep", 0) end
        self.done[r.key] = r
      end
    end
    if rank == 0 then self:save() end
    -- no rank starts the next round (which may fail and abort the job) before the file holds
    -- this one
    mpi.barrier()
  end
  if #todo > 0 and not quiet then
    io.stderr:write(string.format("[%s] %d runs done in %s on %d ranks\n", self.name, #todo, duration(clock.now() - t0), size))
  end
  return self:records()
end

function Sweep:run()
  if not self.fn then error("experiment.sweep " .. self.name .. ": run() needs the run function (run = ...)", 2) end
  local world = sweep.world()
  if world then return self:run_distributed(world) end
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
    local ok, r = pcall(sweep.execute, spec, self.fn, { on_progress = function(run) line(spec, run.fraction, false) end })
    if not ok then
      if not self.quiet then io.stderr:write(string.format("[%s] run %s failed; %d finished runs are kept%s\n", self.name, spec.key,
        #self:records(), self.file and (" in " .. self.file) or "")) end
      error(r, 0)
    end
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
