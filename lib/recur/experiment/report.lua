-- recur.experiment.report: one post's results file, its "recur vs post" tables, figures and
-- notes (the contract is in docs/experiments.md).
--
--   local rep = report.new{post, title, section, profile, out = "results/<post>.json",
--                          figures = "results/img", resume = true, command = nil (from arg)}
--   rep:table{title, rows = {{what, recur, sd, n, post, tag, target, note, digits}, ...}}
--   rep:figure{name, kind = "lines" | "histograms" | "images", ...}   -> ok, message
--   rep:note(text), rep:set(key, value), rep:save() -> path
--   rep:sweep{name, configs, seeds, run}   an experiment.sweep whose file sits beside `out`
local json = require "recur.json"
local format = require "recur.experiment.format"
local clock = require "recur.experiment.clock"
local sweep = require "recur.experiment.sweep"
local plot = require "recur.plot"

local report = {}
local Report = {}
Report.__index = Report

local TAGS = { ["V-mirror"] = true, ["V-code"] = true, ["V-copy"] = true, ["3P"] = true, ["MEM?"] = true }
report.tags = TAGS

local function fail(level, fmt, ...) error(string.format(fmt, ...), level + 1) end

local function dirname(path) return path:match("^(.*)/[^/]*$") end

local function mkdir_p(dir)
  if dir and dir ~= "" then os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'") end
end
report.mkdir_p = mkdir_p

local function read_cmd(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  if not p then return nil end
  local s = p:read("a")
  p:close()
  s = s and s:gsub("%s+$", "")
  if s == "" then return nil end
  return s
end

-- The command line the script was started with (the global arg of lua and recur).
local function command_line()
  local a = rawget(_G, "arg")
  if type(a) ~= "table" then return nil end
  local lo = 0
  while a[lo - 1] ~= nil do lo = lo - 1 end
  local parts = {}
  for i = lo, #a do
    local s = tostring(a[i])
    if s:find("[^%w%-%./_=,:+]") or s == "" then s = "'" .. s:gsub("'", "'\\''") .. "'" end
    parts[#parts + 1] = s
  end
  return table.concat(parts, " ")
end

-- CPU model, cores and the OpenBLAS kernel choice, as a results file records them.
function report.machine()
  local m = { cores = 0 }
  local f = io.open("/proc/cpuinfo")
  if f then
    for l in f:lines() do
      if l:find("^processor%s*:") then m.cores = m.cores + 1 end
      m.cpu = m.cpu or l:match("^model name%s*:%s*(.-)%s*$")
    end
    f:close()
  end
  m.cpu = m.cpu or read_cmd("uname -m") or "unknown"
  if m.cores == 0 then m.cores = tonumber(read_cmd("nproc")) or 0 end
  m.openblas_coretype = os.getenv("OPENBLAS_CORETYPE") or "auto"
  local threads = os.getenv("OPENBLAS_NUM_THREADS")
  if threads then m.openblas_threads = threads end
  return m
end

-- The checked-out commit, "-dirty" when tracked files differ from it; nil outside git.
function report.commit()
  local c = read_cmd("git rev-parse --short=12 HEAD")
  if not c then return nil end
  if read_cmd("git status --porcelain --untracked-files=no") then c = c .. "-dirty" end
  return c
end

function report.new(o)
  if type(o) ~= "table" then fail(2, "experiment.report: expected a table of options, got %s", type(o)) end
  if type(o.post) ~= "string" or not o.post:match("^[%w_%-]+$") then
    fail(2, "experiment.report: post must be a file stem (letters, digits, _ and -), got %s", tostring(o.post))
  end
  if type(o.title) ~= "string" then fail(2, "experiment.report: title must be a string, got %s", type(o.title)) end
  if o.section ~= nil and type(o.section) ~= "number" then
    fail(2, "experiment.report: section must be a number, got %s", type(o.section))
  end
  local self = setmetatable({
    post = o.post, title = o.title, section = o.section, profile = o.profile or sweep.defaults.profile or "quick",
    out = o.out or ("results/" .. o.post .. ".json"), figdir = o.figures or "results/img",
    resume = o.resume ~= false, command = o.command or command_line(), t0 = clock.now(), sweeps = {},
    tables = {}, figures = {}, notes = {}, data = {}, quiet = o.quiet,
    -- under mpirun every rank runs the script; rank 0 alone prints, draws and writes
    follower = sweep.follower(),
  }, Report)
  return self
end

local ROW_FIELDS = { what = 1, recur = 1, sd = 1, n = 1, post = 1, tag = 1, target = 1, note = 1, digits = 1, values = 1 }

local function finite(x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

-- A row as stored: recur may be given as a list of per-seed values (mean, sd, n are derived).
local function normalize_row(r, i, ti)
  local where = string.format("rep:table %q: rows[%d]", ti, i)
  if type(r) ~= "table" then fail(4, "%s is a %s, not a table", where, type(r)) end
  for k in pairs(r) do
    if not ROW_FIELDS[k] then fail(4, "%s has an unknown field %s (fields: what, recur, sd, n, post, tag, target, note, digits)", where, tostring(k)) end
  end
  if type(r.what) ~= "string" then fail(4, "%s: what must be a string, got %s", where, type(r.what)) end
  local row = {}
  for k, v in pairs(r) do row[k] = v end
  if type(r.recur) == "table" then
    local stats = require "recur.experiment.stats"
    if #r.recur == 0 then fail(4, "%s: recur is an empty list", where) end
    local s = stats.summary(r.recur)
    row.values, row.recur, row.n = r.recur, s.mean, s.n
    row.sd = row.sd or s.std
  end
  if row.recur ~= nil and type(row.recur) ~= "number" and type(row.recur) ~= "string" then
    fail(4, "%s: recur must be a number, a list of numbers or a string, got %s", where, type(row.recur))
  end
  if type(row.recur) == "number" and not finite(row.recur) then
    -- JSON holds no NaN/inf: keep the fact as text
    row.recur = format.number(row.recur)
  end
  for _, k in ipairs({ "sd", "post" }) do
    if row[k] ~= nil and not finite(row[k]) then fail(4, "%s: %s must be a finite number, got %s", where, k, tostring(row[k])) end
  end
  if row.n ~= nil and math.type(row.n) ~= "integer" then fail(4, "%s: n must be an integer", where) end
  if row.digits ~= nil and (math.type(row.digits) ~= "integer" or row.digits < 1 or row.digits > 17) then
    fail(4, "%s: digits must be an integer in 1..17", where)
  end
  if row.tag ~= nil and not TAGS[row.tag] then
    fail(4, "%s: tag must be one of V-mirror, V-code, V-copy, 3P, MEM? (r2rt-reference.md), got %s", where, tostring(row.tag))
  end
  local terr = format.check_target(row.target)
  if terr then fail(4, "%s: %s", where, terr) end
  row.holds = format.holds(row.target, row.recur)
  return row
end

function Report:table(t)
  if type(t) ~= "table" or type(t.rows) ~= "table" then fail(2, "rep:table: expected {title = ..., rows = {...}}") end
  local title = t.title or ("table " .. (#self.tables + 1))
  local rows = {}
  for i, r in ipairs(t.rows) do rows[i] = normalize_row(r, i, title) end
  local tab = { title = title, rows = rows }
  self.tables[#self.tables + 1] = tab
  if not self.quiet and not self.follower then
    io.stdout:write(format.text_table(tab), "\n\n")
    io.stdout:flush()
  end
  return tab
end

-- Figure data is kept with 6 significant digits (plenty for a plot, and a smaller file).
local function rounded(x, digits)
  if type(x) == "number" and math.type(x) == "float" and finite(x) then
    return tonumber(string.format("%." .. digits .. "g", x))
  elseif type(x) == "table" and getmetatable(x) == nil then
    local c = {}
    for k, v in pairs(x) do c[k] = rounded(v, digits) end
    return c
  end
  return x
end

local KINDS = { lines = true, histograms = true, images = true }

-- The figure's spec with its data as plain tables (tensors of an image grid become pixels).
local function figure_spec(f)
  if type(f) ~= "table" then fail(3, "rep:figure: expected a table, got %s", type(f)) end
  if type(f.name) ~= "string" or not f.name:match("^[%w_%-]+$") then
    fail(3, "rep:figure: name must be a file-name part (letters, digits, _ and -), got %s", tostring(f.name))
  end
  if not KINDS[f.kind] then fail(3, "rep:figure %s: kind must be lines, histograms or images, got %s", f.name, tostring(f.kind)) end
  local spec = {}
  for k, v in pairs(f) do spec[k] = v end
  spec.file = nil
  if f.kind == "images" then
    local imgs = {}
    local list = f.images
    if type(list) == "userdata" then list = { list } end
    if type(list) ~= "table" then fail(3, "rep:figure %s: images must be a list", f.name) end
    for i, img in ipairs(list) do
      if type(img) == "userdata" then
        local size = img:size()
        local function add(t2)
          local rows, px = t2:totable(), {}
          for r = 1, #rows do table.move(rows[r], 1, #rows[r], #px + 1, px) end
          imgs[#imgs + 1] = { h = #rows, w = #rows[1], pixels = px }
        end
        if #size == 3 then
          for k = 1, size[1] do add(img[k]) end
        elseif #size == 2 then
          add(img)
        else
          fail(3, "rep:figure %s: images[%d] is a tensor of %d dimensions (2 or 3 expected)", f.name, i, #size)
        end
      else
        imgs[#imgs + 1] = img
      end
    end
    spec.images = rounded(imgs, 4)
  else
    spec.series = rounded(f.series, 6)
  end
  local ok, err = pcall(json.encode, spec)
  if not ok then fail(3, "rep:figure %s: the figure is not plain JSON-able data: %s", f.name, err) end
  return spec
end

-- Renders a stored figure spec into file; returns ok, message (gnuplot missing: false).
function report.render(spec, file)
  local o = {}
  for k, v in pairs(spec) do o[k] = v end
  o.file = file
  return plot[spec.kind](o)
end

function Report:figure(f)
  local spec = figure_spec(f)
  for i, g in ipairs(self.figures) do
    if g.name == spec.name then table.remove(self.figures, i) break end
  end
  self.figures[#self.figures + 1] = spec
  local file = self.figdir .. "/" .. self.post .. "-" .. spec.name .. ".png"
  if self.follower then return true end
  mkdir_p(self.figdir)
  local ok, msg = report.render(spec, file)
  if not self.quiet and not self.follower then
    if ok then
      io.stderr:write("figure: " .. file .. "\n")
    else
      io.stderr:write("figure " .. spec.name .. " not drawn: " .. tostring(msg) .. "\n")
    end
  end
  return ok, msg
end

function Report:note(text)
  if type(text) ~= "string" then fail(2, "rep:note: expected a string, got %s", type(text)) end
  self.notes[#self.notes + 1] = text
  if not self.quiet and not self.follower then io.stdout:write("note: ", text, "\n") end
end

function Report:set(key, value)
  if type(key) ~= "string" then fail(2, "rep:set: key must be a string, got %s", type(key)) end
  local ok, err = pcall(json.encode, value)
  if not ok then fail(2, "rep:set %s: value is not plain JSON-able data: %s", key, err) end
  self.data[key] = value
end

-- A sweep whose runs file sits beside the results file, named after the post, the sweep and
-- the profile (a quick sweep never resumes into a full one), resuming unless --no-resume.
function Report:sweep(o)
  if type(o) ~= "table" or type(o.name) ~= "string" then fail(2, "rep:sweep: expected {name = ..., configs, seeds, run}") end
  local s = {}
  for k, v in pairs(o) do s[k] = v end
  local dir = dirname(self.out) or "."
  s.file = s.file or string.format("%s/%s.%s.%s.runs.json", dir, self.post, o.name, self.profile)
  if s.resume == nil and self.resume == false then s.resume = false end
  s.meta = s.meta or { profile = self.profile }
  local sw = sweep.new(s)
  self.sweeps[#self.sweeps + 1] = sw
  return sw
end

-- The seconds the finished runs of this report's sweeps took, summed over their records: a
-- sweep resumed over several invocations keeps each run's own time, where wall_seconds is only
-- this invocation's.
function Report:runs_seconds()
  if #self.sweeps == 0 then return nil end
  local total = 0
  for _, sw in ipairs(self.sweeps) do
    for _, r in ipairs(sw:records()) do total = total + (tonumber(r.seconds) or 0) end
  end
  return math.floor(total * 100 + 0.5) / 100
end

-- The commits this report's runs ran at (their records'), sorted, or nil when no record has
-- one (runs recorded before records kept their commit).
function Report:runs_commits()
  local seen, list = {}, {}
  for _, sw in ipairs(self.sweeps) do
    for _, r in ipairs(sw:records()) do
      if type(r.commit) == "string" and not seen[r.commit] then
        seen[r.commit] = true
        list[#list + 1] = r.commit
      end
    end
  end
  table.sort(list)
  return #list > 0 and list or nil
end

-- Everything the results file holds, as a table.
function Report:results()
  return {
    format = "recur-results 1",
    post = self.post, title = self.title, section = self.section, profile = self.profile,
    machine = report.machine(), date = os.date("!%Y-%m-%dT%H:%M:%SZ"), commit = report.commit(),
    wall_seconds = math.floor((clock.now() - self.t0) * 100 + 0.5) / 100, command = self.command,
    runs_seconds = self:runs_seconds(), runs_commits = self:runs_commits(),
    tables = self.tables, figures = self.figures, notes = self.notes, data = self.data,
  }
end

function Report:save()
  if self.follower then return self.out end
  mkdir_p(dirname(self.out))
  sweep.write_atomic(self.out, format.json(self:results()) .. "\n")
  if not self.quiet then io.stderr:write("results: " .. self.out .. "\n") end
  return self.out
end

return report
