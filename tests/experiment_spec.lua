-- The reproduction harness (recur.experiment, recur.plot): sweeps that resume after an
-- interruption and write their file atomically, the statistics against values worked out
-- independently, the "recur vs post" table's verdicts, the shared command line, the results
-- file and the figures (with and without gnuplot on PATH).
local H = require "tests.helpers"
local recur = require "recur"
local json = require "recur.json"
local experiment = require "recur.experiment"
local plot = require "recur.plot"
local stats = experiment.stats
local q, sh = H.q, H.sh

local BIN = os.getenv("RECUR_BIN") or "build/recur"
local ROOT = sh("pwd"):match("[^\n]+")
if not BIN:find("^/") then BIN = ROOT .. "/" .. BIN end

local dirs = {}
local function tmpdir()
  local d = H.tmpdir("recur_exp_")
  dirs[#dirs + 1] = d
  return d
end
teardown(function()
  for _, d in ipairs(dirs) do H.rm_rf(d) end
end)

local function ls(dir)
  local out = {}
  local p = assert(io.popen("ls -A " .. q(dir)))
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

local PNG_MAGIC = "\137PNG\r\n\26\n"

describe("experiment.stats", function()
  it("mean, sample std, se and summary of a hand-worked sample", function()
    local xs = { 2, 4, 4, 4, 5, 5, 7, 9 } -- mean 5, squares about it sum to 32
    assert.equal(5, stats.mean(xs))
    H.near(math.sqrt(32 / 7), stats.std(xs), 1e-14)
    H.near(math.sqrt(32 / 7) / math.sqrt(8), stats.se(xs), 1e-14)
    local s = stats.summary(xs)
    assert.same({ 8, 5, 2, 9 }, { s.n, s.mean, s.min, s.max })
    H.near(math.sqrt(32 / 7), s.std, 1e-14)
    assert.is_nil(stats.summary({ 3 }).std) -- one value: no spread to claim
    assert.equal(4.5, stats.median(xs))
    assert.equal(4, stats.quantile(xs, 0.25)) -- R type 7: h = 1 + 7/4 -> between 4 and 4
    H.fails_with(function() stats.std({ 1 }) end, "stats.std", "at least 2")
    H.fails_with(function() stats.mean({ 1, "x" }) end, "stats.mean", "element 2")
  end)

  it("Student's t two-sided p against closed forms and the t table", function()
    -- df = 1 (Cauchy): p = 1 - 2 atan(t) / pi; df = 2: p = 1 - t / sqrt(2 + t^2)
    for _, t in ipairs({ 0.3, 1, 2.5, 10 }) do
      H.near(1 - 2 * math.atan(t) / math.pi, stats.t_sf2(t, 1), 1e-10)
      H.near(1 - t / math.sqrt(2 + t * t), stats.t_sf2(t, 2), 1e-10)
      H.near(stats.t_sf2(t, 7), stats.t_sf2(-t, 7), 1e-15)
    end
    -- the t table's two-sided 5% and 1% points
    H.near(0.05, stats.t_sf2(2.228, 10), 2e-4)
    H.near(0.05, stats.t_sf2(12.706, 1), 2e-4)
    H.near(0.01, stats.t_sf2(2.861, 19), 2e-4)
    H.near(0.05, stats.t_sf2(1.959964, 1e7), 1e-5) -- the normal limit
    assert.equal(1, stats.t_sf2(0, 5))
    assert.equal(0, stats.t_sf2(math.huge, 5))
  end)

  it("Welch's t-test of a hand-worked pair", function()
    -- x: mean 3, var 2.5; y: mean 7, var 14: t = -4 / sqrt(0.5 + 14/6),
    -- df = (0.5 + 7/3)^2 / (0.5^2/4 + (7/3)^2/5)
    local w = stats.welch({ 1, 2, 3, 4, 5 }, { 2, 4, 6, 8, 10, 12 })
    local se2 = 0.5 + 7 / 3
    H.near(-4 / math.sqrt(se2), w.t, 1e-13)
    H.near(se2 ^ 2 / (0.25 / 4 + (7 / 3) ^ 2 / 5), w.df, 1e-13)
    H.near(stats.t_sf2(w.t, w.df), w.p, 1e-15)
    assert.is_true(w.p > 0.04 and w.p < 0.06)
    local same = stats.welch({ 1, 1 }, { 1, 1 })
    assert.same({ 0, 1 }, { same.t, same.p })
    assert.equal(0, stats.welch({ 1, 1 }, { 2, 2 }).p)
    H.fails_with(function() stats.welch({ 1 }, { 1, 2 }) end, "stats.welch", "at least 2")
  end)

  it("histogram bins with the maximum in the last bin", function()
    local h = stats.histogram({ 0, 0.1, 0.5, 0.99, 1, 2, -1 }, { bins = 4, min = 0, max = 1 })
    assert.same({ 0, 0.25, 0.5, 0.75, 1 }, h.edges)
    assert.same({ 2, 0, 1, 2 }, h.counts)
    assert.equal(2, h.outside)
    local d = stats.histogram({ 1, 2, 3 }, { bins = 2 })
    assert.same({ 1, 2, 3 }, d.edges)
    assert.same({ 1, 2 }, d.counts)
  end)

  it("Gaussian KDE with Silverman's bandwidth integrates to 1", function()
    local xs = { 2, 4, 4, 4, 5, 5, 7, 9 }
    -- sd = sqrt(32/7) = 2.138; IQR/1.34 = (5.5 - 4)/1.34 = 1.119 is smaller
    local h = 0.9 * (1.5 / 1.34) * 8 ^ -0.2
    H.near(h, stats.silverman(xs), 1e-14)
    local k = stats.kde(xs, { points = 401 })
    assert.equal(h, k.bandwidth)
    local area = 0
    for i = 2, #k.x do area = area + (k.x[i] - k.x[i - 1]) * (k.y[i] + k.y[i - 1]) / 2 end
    H.near(1, area, 2e-3) -- the grid spans min - 3h .. max + 3h: 99.7% of each kernel
    -- at a point the density is the mean of the kernels
    local one = stats.kde({ 0 }, { points = 3, bandwidth = 2, min = -2, max = 2 })
    H.near(math.exp(-0.5) / (2 * math.sqrt(2 * math.pi)), one.y[1], 1e-14)
    H.near(1 / (2 * math.sqrt(2 * math.pi)), one.y[2], 1e-14)
  end)
end)

describe("experiment.sweep", function()
  it("resumes after an interruption, running only the missing runs", function()
    local dir = tmpdir()
    local file = dir .. "/s.runs.json"
    local calls, fail_on = {}, "b=2 seed=2"
    local function run(cfg, seed, r)
      calls[#calls + 1] = r.key
      if r.key == fail_on then error("simulated crash") end
      -- the file already holds every run finished before this one, and is valid JSON
      local s = io.open(file) and H.read_file(file)
      local n = s and #json.decode(s).records or 0
      r:progress(1, 2)
      return { v = cfg.b * 10 + seed, draw = recur.rand(1):item(), before = n }
    end
    local spec = { name = "t", file = file, configs = { { b = 1 }, { b = 2 } }, seeds = { 1, 2 }, run = run, quiet = true }
    local sw = experiment.sweep(spec)
    assert.equal(4, #sw:pending())
    H.fails_with(function() sw:run() end, "simulated crash")
    assert.same({ "b=1 seed=1", "b=1 seed=2", "b=2 seed=1", "b=2 seed=2" }, calls)
    assert.same({ "s.runs.json" }, ls(dir)) -- no temporary left behind
    local saved = json.decode(H.read_file(file)).records
    assert.equal(3, #saved)
    for i, r in ipairs(saved) do assert.equal(i - 1, r.result.before) end

    calls, fail_on = {}, nil
    local again = experiment.sweep(spec)
    assert.same({ "b=2 seed=2" }, { again:pending()[1].key })
    local records = again:run()
    assert.same({ "b=2 seed=2" }, calls)
    assert.equal(4, #records)
    assert.same({ 11, 12, 21, 22 }, again:values(records, "v"))
    assert.same({ 21, 22 }, again:values(again:select(function(c) return c.b == 2 end), "v"))
    for _, r in ipairs(records) do assert.is_number(r.seconds) end
    -- one generator per run: a run's draw depends on its seed only
    recur.seed(2)
    assert.equal(recur.rand(1):item(), records[4].result.draw)
    assert.equal(records[2].result.draw, records[4].result.draw)
    assert.are_not.equal(records[1].result.draw, records[2].result.draw)

    -- a sweep with another budget (meta) does not reuse the file; resume = false neither
    local other = experiment.sweep({ name = "t", file = file, configs = spec.configs, seeds = spec.seeds,
      meta = { epochs = 5 }, quiet = true })
    assert.equal(4, #other:pending())
    spec.resume = false
    assert.equal(4, #experiment.sweep(spec):pending())
  end)

  it("hands runs out through pending / execute / record", function()
    local dir = tmpdir()
    local spec = { name = "m", file = dir .. "/m.json", configs = { { x = 1 }, { x = 2 } }, seeds = { 5 }, quiet = true }
    local a = experiment.sweep(spec)
    local b = experiment.sweep(spec) -- a second worker on the same file
    local todo = a:pending()
    assert.equal(2, #todo)
    local fn = function(cfg, seed) return { y = cfg.x + seed } end
    a:record(experiment.execute(todo[1], fn))
    b:record(experiment.execute(todo[2], fn))
    local merged = experiment.sweep(spec)
    assert.equal(0, #merged:pending())
    assert.same({ 6, 7 }, merged:values("y"))
  end)

  it("rejects what JSON cannot hold, naming the run", function()
    H.fails_with(function() experiment.sweep({ name = "x", configs = { { f = print } }, seeds = { 1 } }) end,
      "experiment.sweep", "configs[1]")
    local sw = experiment.sweep({ name = "x", configs = { { a = 1 } }, seeds = { 1 }, quiet = true,
      run = function() return { bad = 0 / 0 } end })
    H.fails_with(function() sw:run() end, "a=1 seed=1", "JSON")
    H.fails_with(function() experiment.sweep({ name = "x", configs = { {} }, seeds = { 1.5 } }) end, "seeds[1]")
  end)
end)

describe("experiment.report", function()
  local function rep_in(dir)
    return experiment.report({ post = "demo", title = "Demo", section = 2, profile = "smoke",
      out = dir .. "/r/demo.json", figures = dir .. "/img", quiet = true, command = "recur demo.lua" })
  end

  it("judges each target form and keeps the verdict", function()
    local rep = rep_in(tmpdir())
    local t = rep:table({ title = "T", rows = {
      { what = "near in", recur = 0.52, target = { near = 0.519, tol = 0.015 } },
      { what = "near out", recur = 0.54, target = { near = 0.519, tol = 0.015 } },
      { what = "rel", recur = 105, target = { near = 100, rel = 0.05 } },
      { what = "max", recur = 0.49, target = { max = 0.48 } },
      { what = "min", recur = 0.63, target = { min = 0.63 } },
      { what = "range", recur = 4.3, target = { range = { 2, 5 } } },
      { what = "no target", recur = 1 },
      { what = "seeds", recur = { 1, 2, 3 }, target = { max = 2 } },
      { what = "no number", recur = "n/a", target = { max = 1 } },
    } })
    local h = {}
    for i, r in ipairs(t.rows) do h[i] = tostring(r.holds) end
    assert.same({ "true", "false", "true", "false", "true", "true", "nil", "true", "nil" }, h)
    local s = t.rows[8]
    assert.same({ 2, 1, 3 }, { s.recur, s.sd, s.n })
    H.fails_with(function() rep:table({ rows = { { what = "x", recur = 1, target = { near = 1 } } } }) end,
      "rows[1]", "tol")
    H.fails_with(function() rep:table({ rows = { { what = "x", recur = 1, tag = "exact" } } }) end, "tag", "V-mirror")
    H.fails_with(function() rep:table({ rows = { { what = "x", recur = 1, pots = 1 } } }) end, "unknown field pots")
  end)

  it("prints numbers with 6 significant digits, or the row's digits", function()
    local f = experiment.format
    assert.equal("0.661563", f.number(0.6615634))
    assert.equal("2.16", f.number(173 / 80.2, 3))
    assert.equal("3291", f.number(3291))
    assert.equal("0.521 ± 0.0042 (n=3)", f.recur({ recur = 0.521, sd = 0.00421, n = 3 }))
    local text = f.text_table({ title = "T", rows = { { what = "a", recur = 0.5, post = 0.519, tag = "3P",
      target = { near = 0.519, tol = 0.015 }, holds = false, note = "stand-in" } } })
    H.has(text, "== T ==", "what", "holds", "0.519 ± 0.015", "NO", "stand-in")
  end)

  it("saves the results file atomically with the run's context", function()
    local dir = tmpdir()
    local rep = rep_in(dir)
    rep:table({ title = "T", rows = { { what = "a", recur = 1.5, post = 1.25, tag = "V-mirror" } } })
    rep:note("a note")
    rep:set("extra", { 1, 2 })
    rep:figure({ name = "c", kind = "lines", series = { { name = "s", x = { 1, 2 }, y = { 0.1, 1 / 3 } } } })
    local path = rep:save()
    assert.equal(dir .. "/r/demo.json", path)
    assert.same({ "demo.json" }, ls(dir .. "/r"))
    local r = json.decode(H.read_file(path))
    assert.equal("recur-results 1", r.format)
    assert.same({ "demo", "Demo", 2, "smoke", "recur demo.lua" }, { r.post, r.title, r.section, r.profile, r.command })
    assert.is_true(r.machine.cores >= 1)
    assert.is_string(r.machine.cpu)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", r.date)
    assert.is_number(r.wall_seconds)
    assert.matches("^%x+", r.commit) -- the tests run in a git checkout
    assert.same({ "a note" }, r.notes)
    assert.same({ 1, 2 }, r.data.extra)
    assert.equal(1.5, r.tables[1].rows[1].recur)
    assert.equal(0.333333, r.figures[1].series[1].y[2]) -- figure data: 6 significant digits
    -- readable: one key per line, number lists on one line, floats in their shortest form
    H.has(H.read_file(path), '\n  "post": "demo",\n', '[0.1, 0.333333]')
  end)

  it("records the time of the sweeps' runs over every invocation that ran them", function()
    local dir = tmpdir()
    local function invocation(configs)
      local rep = rep_in(dir)
      local sw = rep:sweep({ name = "s", configs = configs, seeds = { 1 }, quiet = true,
        run = function(cfg) local x = 0; for i = 1, 20000 do x = x + i end; return { v = cfg.a + x * 0 } end })
      sw:run()
      return json.decode(H.read_file(rep:save())), sw
    end
    local first = invocation({ { a = 1 } })
    local second, sw = invocation({ { a = 1 }, { a = 2 } }) -- resumes a = 1, runs a = 2
    local sum = 0
    for _, r in ipairs(sw:records()) do sum = sum + r.seconds end
    assert.equal(2, #sw:records())
    assert.is_true(math.abs(second.runs_seconds - sum) <= 0.01)
    assert.is_true(second.runs_seconds >= first.runs_seconds)
    assert.is_nil(json.decode(H.read_file(rep_in(tmpdir()):save())).runs_seconds) -- no sweep, no figure
  end)

  it("keeps the commit each run ran at, so a re-rendered results file still names it", function()
    local dir = tmpdir()
    local rep = rep_in(dir)
    local sw = rep:sweep({ name = "s", configs = { { a = 1 } }, seeds = { 1, 2 }, quiet = true,
      run = function(cfg) return { v = cfg.a } end })
    sw:run()
    local recs = sw:records()
    assert.matches("^%x+", recs[1].commit) -- the tests run in a git checkout
    assert.equal(recs[1].commit, recs[2].commit)
    assert.same({ recs[1].commit }, json.decode(H.read_file(rep:save())).runs_commits)
    -- a run recorded at another commit (as when an earlier invocation ran it) is listed too
    local older = {}
    for k, v in pairs(recs[2]) do older[k] = v end
    older.commit = "0123456789ab"
    sw:record(older)
    local want = { "0123456789ab", recs[1].commit }
    table.sort(want)
    assert.same(want, json.decode(H.read_file(rep:save())).runs_commits)
  end)

  it("keeps an image grid given as tensors as pixels and draws it", function()
    local dir = tmpdir()
    local rep = rep_in(dir)
    local ok, msg = rep:figure({ name = "digits", kind = "images", cols = 3,
      images = { recur.full({ 2, 3 }, 0.25), recur.zeros(2, 2, 3) } })
    assert(ok, msg)
    local f = rep.figures[1]
    assert.equal(3, #f.images)
    assert.same({ 2, 3 }, { f.images[1].h, f.images[1].w })
    assert.same({ 0.25, 0.25, 0.25, 0.25, 0.25, 0.25 }, f.images[1].pixels)
    assert.equal(PNG_MAGIC, H.read_file(dir .. "/img/demo-digits.png"):sub(1, 8))
    H.fails_with(function() rep:figure({ name = "bad name", kind = "lines", series = {} }) end, "name")
    H.fails_with(function() rep:figure({ name = "x", kind = "pie" }) end, "kind must be lines, histograms or images")
  end)

  it("rep:sweep keeps its runs beside the results file, per profile", function()
    local dir = tmpdir()
    local rep = rep_in(dir)
    local sw = rep:sweep({ name = "s", configs = { { a = 1 } }, seeds = { 1 }, quiet = true,
      run = function() return { ok = true } end })
    sw:run()
    assert.equal(dir .. "/r/demo.s.smoke.runs.json", sw.file)
    assert.is_true(json.decode(H.read_file(sw.file)).records[1].result.ok)
  end)
end)

describe("experiment.cli", function()
  local dir = tmpdir()
  local script = dir .. "/s.lua"
  H.write_file(script, [[
local experiment = require "recur.experiment"
local a = experiment.cli(arg, { name = "recur s.lua", { "steps", "int", 7, "steps" } })
print(a.profile, a.steps, a.seeds, a.out, a.figures, a.resume, table.concat(experiment.seeds(a, { quick = 2, full = 5, smoke = 1 }), ","))
]])
  local function run(args) return sh(q(BIN) .. " " .. q(script) .. " " .. args) end

  it("defaults to the quick profile", function()
    local out, code = run("")
    assert.equal(0, code, out)
    assert.equal("quick\t7\tnil\tnil\tnil\ttrue\t1,2\n", out)
  end)

  it("takes --full, --smoke, --seeds, --out, --figures, --no-resume and the script's options", function()
    local out, code = run("--full --seeds 3 --out x.json --figures img --no-resume --steps 2")
    assert.equal(0, code, out)
    assert.equal("full\t2\t3\tx.json\timg\tfalse\t1,2,3\n", out)
    out = run("--smoke")
    assert.equal("smoke\t7\tnil\tnil\tnil\ttrue\t1\n", out)
  end)

  it("refuses two profiles and shows the shared options in --help", function()
    local out, code = run("--full --smoke")
    assert.equal(2, code)
    H.has(out, "Error: option '--smoke' can not be used together with option '--full'")
    out, code = run("--help")
    assert.equal(0, code)
    H.has(out, "Usage: recur s.lua", "--steps", "--quick", "--full", "--smoke", "--seeds", "--out", "--figures", "--no-resume")
  end)

  it("--no-resume and the profile reach a sweep given its own file", function()
    local sweep_script = dir .. "/sw.lua"
    H.write_file(sweep_script, string.format([[
local experiment = require "recur.experiment"
local a = experiment.cli(arg, { name = "recur sw.lua" })
local n = 0
experiment.sweep{ name = "s", file = %q, configs = { { x = 1 } }, seeds = { 1 }, quiet = true,
  run = function() n = n + 1 return { x = 1 } end }:run()
print(n)
]], dir .. "/sw.runs.json"))
    local function ran(flags)
      local out, code = sh(q(BIN) .. " " .. q(sweep_script) .. " " .. flags)
      assert.equal(0, code, out)
      return out
    end
    assert.equal("1\n", ran("--quick"))
    assert.equal("0\n", ran("--quick")) -- resumed
    assert.equal("1\n", ran("--quick --no-resume"))
    assert.equal("1\n", ran("--smoke")) -- a smoke run does not take the quick run's records
    assert.equal("1\n", ran("--quick"))
  end)

  it("is reachable from stock lua5.4 with recur.so, without require 'recur' first", function()
    local build = os.getenv("RECUR_BUILD") or "build"
    if os.getenv("RECUR_SANITIZED") == "1" then return end -- stock lua5.4 cannot load a sanitized module
    local out, code = sh("LUA_CPATH=" .. q(ROOT .. "/" .. build .. "/?.so;;") .. " lua5.4 -e " ..
      q("local e = require 'recur.experiment'; local p = require 'recur.plot'; print(e.stats.mean({1, 2}), type(p.lines))"))
    assert.equal(0, code, out)
    assert.equal("1.5\tfunction\n", out)
  end)
end)

describe("recur.plot", function()
  it("draws lines, histograms and image grids as PNG", function()
    assert.is_true(plot.available())
    local dir = tmpdir()
    local ok, msg = plot.lines({ file = dir .. "/l.png", title = "a_b's", xlabel = "step", logy = true,
      series = { { name = "n=5", x = { 1, 2, 3 }, y = { 1, 0.5, 0 } }, { name = "b", x = { 1 }, y = { 2 } } } })
    assert(ok, msg)
    ok, msg = plot.histograms({ file = dir .. "/h.png", bins = 5, density = true, kde = true,
      series = { { name = "zero", values = { 1, 2, 2, 3 } }, { name = "trained", values = { 2, 3, 3, 4 } } } })
    assert(ok, msg)
    ok, msg = plot.images({ file = dir .. "/i.png", cols = 2, images = { recur.rand(4, 3), { h = 2, w = 2, pixels = { 0, 1, 1, 0 } }, recur.rand(2, 3, 3) } })
    assert(ok, msg)
    for _, f in ipairs({ "l.png", "h.png", "i.png" }) do
      assert.equal(PNG_MAGIC, H.read_file(dir .. "/" .. f):sub(1, 8))
    end
    assert.same({ "h.png", "i.png", "l.png" }, ls(dir))
    H.fails_with(function() plot.lines({ file = dir .. "/x.png", series = { { x = { 1 }, y = { 1, 2 } } } }) end,
      "plot.lines", "series[1]", "1 x and 2 y")
    H.fails_with(function() plot.images({ file = dir .. "/x.png", images = { { h = 2, w = 2, pixels = { 1 } } } }) end,
      "plot.images", "images[1]", "1 pixels")
  end)

  it("returns false and says why when gnuplot is not on PATH; the numbers still print", function()
    local dir = tmpdir()
    local empty = dir .. "/empty"
    os.execute("mkdir " .. q(empty))
    local script = dir .. "/p.lua"
    H.write_file(script, string.format([[
local experiment = require "recur.experiment"
local plot = require "recur.plot"
print(plot.available())
print(plot.lines{file = %q, series = {{name = "a", x = {1}, y = {1}}}})
local rep = experiment.report{post = "p", title = "P", out = %q, figures = %q}
rep:table{title = "T", rows = {{what = "x", recur = 0.25}}}
print(rep:figure{name = "f", kind = "histograms", series = {{name = "a", values = {1, 2}}}})
rep:save()
]], dir .. "/x.png", dir .. "/p.json", dir .. "/img"))
    local out, code = sh("PATH=" .. q(empty) .. " " .. q(BIN) .. " " .. q(script))
    assert.equal(0, code, out)
    H.has(out, "false\tgnuplot is not on PATH", "0.25", "figure f not drawn: gnuplot is not on PATH")
    assert.is_nil(io.open(dir .. "/x.png"))
    local r = json.decode(H.read_file(dir .. "/p.json"))
    assert.equal("histograms", r.figures[1].kind) -- kept, to be drawn by make report later
  end)
end)

describe("tools/report.lua", function()
  -- a results file as a post script saves it
  local function fixture(post, section, title, profile, recur_value)
    return json.encode({
      format = "recur-results 1", post = post, title = title, section = section, profile = profile,
      machine = { cpu = "Test CPU", cores = 2, openblas_coretype = "Haswell" },
      date = "2026-01-02T03:04:05Z", commit = "abc123def456", wall_seconds = 3725.5,
      command = "build/recur scripts/posts/" .. post .. ".lua --" .. profile,
      tables = { { title = "Losses", rows = {
        { what = "final loss", recur = recur_value, sd = 0.004, n = 3, post = 0.519, tag = "V-mirror",
          target = { near = 0.519, tol = 0.015 }, holds = math.abs(recur_value - 0.519) <= 0.015, note = "a | b" },
        { what = "no target", recur = 2, post = 173 / 80.2, tag = "V-copy", digits = 3 },
      } } },
      figures = { { name = "curves", kind = "lines", title = "Curves", series = { { name = "a", x = { 1, 2 }, y = { 2, 1 } } } } },
      notes = { "Brown stand-in for PTB." },
      data = {},
    })
  end

  it("writes the posts in section order, local results first, the same text every time", function()
    local dir = tmpdir()
    for _, d in ipairs({ "results", "committed", "scripts" }) do os.execute("mkdir " .. q(dir .. "/" .. d)) end
    H.write_file(dir .. "/committed/rnn1.json", fixture("rnn1", 1, "RNN I", "full", 0.9))
    H.write_file(dir .. "/results/rnn1.json", fixture("rnn1", 1, "RNN I", "quick", 0.52))
    H.write_file(dir .. "/committed/tbptt.json", fixture("tbptt", 3, "Styles of Truncated Backprop", "full", 0.6))
    H.write_file(dir .. "/results/rnn1.curves.quick.runs.json", "{}") -- a sweep's runs: not a post
    H.write_file(dir .. "/scripts/tbptt.lua", "")
    H.write_file(dir .. "/scripts/later.lua", "")
    local cmd = q(BIN) .. " tools/report.lua --results " .. q(dir .. "/results") .. " --committed " .. q(dir .. "/committed")
      .. " --scripts " .. q(dir .. "/scripts") .. " --out " .. q(dir .. "/docs/rep.md") .. " --img " .. q(dir .. "/docs/img")
    local out, code = sh(cmd)
    assert.equal(0, code, out)
    local md = H.read_file(dir .. "/docs/rep.md")
    local a = assert(md:find("## 1. RNN I", 1, true))
    local b = assert(md:find("## 3. Styles of Truncated Backprop", 1, true))
    assert.is_true(a < b)
    H.has(md, "results/rnn1.json` (local run)", "quick (a reduced budget", "committed/tbptt.json` (committed)",
      "full (the post's settings)", "Test CPU, 2 cores, OPENBLAS_CORETYPE Haswell", "2026-01-02T03:04:05Z",
      "`abc123def456`", "wall time: 1h02m", "`build/recur scripts/posts/rnn1.lua --quick`",
      "| final loss | 0.52 ± 0.004 (n=3) | 0.519 | V-mirror | 0.519 ± 0.015 | yes | a \\| b |",
      "| final loss | 0.6 ± 0.004 (n=3) | 0.519 | V-mirror | 0.519 ± 0.015 | **NO** | a \\| b |",
      "| no target | 2 | 2.16 | V-copy |  |  |  |", "Brown stand-in for PTB.",
      "![Curves](img/rnn1-curves.png)", "![Curves](img/tbptt-curves.png)", "## Not run yet", "`later`")
    assert.is_nil(md:find("0.9 ±", 1, true)) -- the committed rnn1 lost to the local one
    assert.equal(PNG_MAGIC, H.read_file(dir .. "/docs/img/rnn1-curves.png"):sub(1, 8))
    sh(cmd)
    assert.equal(md, H.read_file(dir .. "/docs/rep.md"))
  end)

  it("says when a full run changed settings on its command line", function()
    local dir = tmpdir()
    for _, d in ipairs({ "results", "committed", "scripts" }) do os.execute("mkdir " .. q(dir .. "/" .. d)) end
    local changed = json.decode(fixture("rnn1", 1, "RNN I", "full", 0.52))
    changed.command = "build/recur scripts/posts/rnn1.lua --full --epochs 10 --out=results/x.json --threads 2 --lr 1e-4"
    changed.runs_commits = { "0123456789ab", "abc123def456" } -- re-rendered: runs from two commits
    H.write_file(dir .. "/committed/rnn1.json", json.encode(changed))
    local plain = json.decode(fixture("tbptt", 3, "Styles", "full", 0.6))
    plain.command = "build/recur scripts/posts/tbptt.lua --full --out results/t.json --figures img --no-resume"
    plain.runs_commits = { "abc123def456" } -- ran and rendered at one commit: nothing to add
    H.write_file(dir .. "/committed/tbptt.json", json.encode(plain))
    local cmd = q(BIN) .. " tools/report.lua --results " .. q(dir .. "/results") .. " --committed " .. q(dir .. "/committed")
      .. " --scripts " .. q(dir .. "/scripts") .. " --out " .. q(dir .. "/rep.md") .. " --no-figures"
    local out, code = sh(cmd)
    assert.equal(0, code, out)
    local md = H.read_file(dir .. "/rep.md")
    H.has(md, "- profile: full, with settings changed on the command line (`--epochs 10 --lr 1e-4`)")
    local styles = assert(md:find("## 3. Styles", 1, true))
    assert.truthy(md:find("- profile: full (the post's settings)", styles, true))
    H.has(md, "commit: `abc123def456`; its runs ran at `0123456789ab`, `abc123def456`")
    assert.is_nil(md:find("its runs ran at", styles, true))
  end)

  it("puts <post>.<variant>.json after its post as a subsection, the local one first", function()
    local dir = tmpdir()
    for _, d in ipairs({ "results", "committed", "scripts" }) do os.execute("mkdir " .. q(dir .. "/" .. d)) end
    H.write_file(dir .. "/committed/rnn1.json", fixture("rnn1", 1, "RNN I", "full", 0.52))
    H.write_file(dir .. "/committed/rnn1.lr1e-4.json", fixture("rnn1", 1, "RNN I", "full", 0.7))
    H.write_file(dir .. "/results/rnn1.lr1e-4.json", fixture("rnn1", 1, "RNN I", "quick", 0.8))
    H.write_file(dir .. "/committed/rnn1.big.json", fixture("rnn1", 1, "RNN I", "full", 0.6))
    H.write_file(dir .. "/committed/tbptt.json", fixture("tbptt", 3, "Styles", "full", 0.6))
    H.write_file(dir .. "/results/rnn1.runs.json", "{}") -- not a variant
    local cmd = q(BIN) .. " tools/report.lua --results " .. q(dir .. "/results") .. " --committed " .. q(dir .. "/committed")
      .. " --scripts " .. q(dir .. "/scripts") .. " --out " .. q(dir .. "/rep.md") .. " --img " .. q(dir .. "/img")
    local out, code = sh(cmd)
    assert.equal(0, code, out)
    local md = H.read_file(dir .. "/rep.md")
    local main = assert(md:find("## 1. RNN I", 1, true))
    local big = assert(md:find("### RNN I, variant `big`", 1, true))
    local lr = assert(md:find("### RNN I, variant `lr1e-4`", 1, true))
    local styles = assert(md:find("## 3. Styles", 1, true))
    assert.is_true(main < big and big < lr and lr < styles)
    H.has(md, "results/rnn1.lr1e-4.json` (local run)", "#### Losses", "![Curves](img/rnn1.big-curves.png)")
    assert.is_nil(md:find("0.7 ±", 1, true)) -- the committed variant lost to the local one
    assert.is_nil(md:find("variant `runs`", 1, true))
    assert.equal(PNG_MAGIC, H.read_file(dir .. "/img/rnn1.lr1e-4-curves.png"):sub(1, 8))
  end)
end)
