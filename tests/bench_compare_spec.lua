-- bench/compare and bench/lib/rows.lua: the results files bench/run.sh keeps and the
-- comparison of two of them (change, noise flag, rows in one file only, bad files). Fixture
-- files are written here; nothing is timed.
require("recur")
local rows = require("bench.lib.rows")
local json = require("recur.json")
local H = require("tests.helpers")
local q, sh = H.q, H.sh

local bin = os.getenv("RECUR_BIN") or "build/recur"
local dir

local machine = { cpu = "test CPU", cores = 2, date = "2026-12-07T00:00:00Z", recur = "recur 0.1.0",
  lua = "Lua 5.4", blas = { vendor = "OpenBLAS", version = "0.3.21", core = "Haswell", threads = 2 },
  env = {} }

-- A: a step of 10 ms (half-range 5%), a rate of 1000 char/s (half-range 2%), a row only in A.
-- B: the step 20% slower (12 ms, half-range 5%: beyond the combined 10%), the rate 3% higher
-- (within its combined 4%), a row only in B.
local A = { machine = machine, rows = {
  { bench = "charrnn", name = "train lstm H=128 1T", value = 10, unit = "ms", better = "lower",
    spread = { min = 9.5, median = 10, max = 10.5 } },
  { bench = "charrnn", name = "sample lstm H=128 1T", value = 1000, unit = "char/s",
    better = "higher", samples = { 980, 1000, 1020 } },
  { bench = "small_op", name = "gone", value = 300, unit = "ns", better = "lower" },
} }
local B = { machine = machine, rows = {
  { bench = "charrnn", name = "sample lstm H=128 1T", value = 1030, unit = "char/s",
    better = "higher", samples = { 1010, 1030, 1050 } },
  { bench = "charrnn", name = "train lstm H=128 1T", value = 12, unit = "ms", better = "lower",
    spread = { min = 11.4, median = 12, max = 12.6 } },
  { bench = "small_op", name = "new", value = 5, unit = "ns" },
} }

local function path(name) return dir .. "/" .. name end

setup(function()
  dir = H.tmpdir()
  H.write_file(path("a.json"), json.encode(A))
  H.write_file(path("b.json"), json.encode(B))
end)
teardown(function() H.rm_rf(dir) end)

describe("rows.compare", function()
  local res
  before_each(function() res = rows.compare(rows.read(path("a.json")), rows.read(path("b.json"))) end)

  it("gives B / A and the change for every row in both, in A's order", function()
    assert.equal(2, #res.both)
    local step, rate = res.both[1], res.both[2]
    assert.equal("charrnn: train lstm H=128 1T", step.name)
    assert.near(1.2, step.ratio, 1e-12)
    assert.near(0.2, step.change, 1e-12)
    assert.equal("charrnn: sample lstm H=128 1T", rate.name)
    assert.near(1.03, rate.ratio, 1e-12)
  end)

  it("flags a change beyond both runs' half-ranges, with its direction", function()
    local step = res.both[1]
    assert.near(0.10, step.noise, 1e-12) -- 5% + 5%
    assert.is_true(step.beyond)
    assert.equal("worse", step.verdict) -- lower is better and it went up
  end)

  it("does not flag a change within the noise (half-ranges from the samples)", function()
    local rate = res.both[2]
    assert.near(0.02 + 20 / 1030, rate.noise, 1e-12)
    assert.is_false(rate.beyond)
    assert.equal("within noise", rate.verdict)
  end)

  it("reports a better row, and unknown noise without a spread", function()
    local r = rows.compare({ rows = { { name = "x", value = 10, better = "lower",
      spread = { min = 9.9, median = 10, max = 10.1 } }, { name = "y", value = 1 } } },
      { rows = { { name = "x", value = 8, better = "lower", spread = { min = 7.9, median = 8, max = 8.1 } },
        { name = "y", value = 2 } } })
    assert.equal("better", r.both[1].verdict)
    assert.is_nil(r.both[2].noise)
    assert.is_false(r.both[2].beyond)
    assert.equal("noise unknown", r.both[2].verdict)
  end)

  it("lists the rows present in one file only", function()
    assert.same({ "small_op: gone" }, res.only_a)
    assert.same({ "small_op: new" }, res.only_b)
  end)
end)

describe("rows.read", function()
  local function err(text)
    H.write_file(path("bad.json"), text)
    return H.err_of(rows.read, path("bad.json"))
  end
  it("names the file and what is wrong", function()
    assert.truthy(H.has(err("{not json"), path("bad.json"), "not JSON"))
    assert.truthy(H.has(err("[1, 2]"), "not a results file"))
    assert.truthy(H.has(err('{"machine": {}, "rows": [{"name": "x"}]}'), "row 1 has no name or no finite value"))
    assert.truthy(H.has(err('{"machine": {}, "rows": [{"name": "x", "value": 1, "spread": {"min": 1}}]}'),
      "row 1 (x): spread wants finite min, median, max"))
    assert.truthy(H.has(err('{"machine": {}, "rows": [{"name": "x", "value": 1}, {"name": "x", "value": 2}]}'),
      'row 2 repeats "x"'))
    assert.truthy(H.has(H.err_of(rows.read, path("missing.json")), "missing.json", "cannot open"))
  end)
end)

describe("rows.collect", function()
  it("writes the machine and every emitted row; the file reads back", function()
    local lines = path("rows.jsonl")
    H.write_file(lines, json.encode(A.rows[1]) .. "\n" .. json.encode(A.rows[3]) .. "\n")
    assert.equal(2, rows.collect(lines, path("out.json"), machine))
    local t = rows.read(path("out.json"))
    assert.equal("test CPU", t.machine.cpu)
    assert.equal(2, #t.rows)
    assert.equal("train lstm H=128 1T", t.rows[1].name)
    assert.is_nil(io.open(path("out.json.tmp"))) -- renamed, not left behind
  end)

  it("emit appends a row when RECUR_BENCH_ROWS is set, leaving NaN fields out", function()
    local lines = path("emitted.jsonl")
    local out, code = sh("RECUR_BENCH_ROWS=" .. q(lines) .. " " .. q(bin) .. " -e " .. q(
      'local r = require("bench.lib.rows") r.emit { name = "x", value = 2, ratio = 0 / 0, samples = { 1, 0 / 0, 3 } }'))
    assert.equal(0, code, out)
    local row = json.decode(H.read_file(lines))
    assert.equal(2, row.value)
    assert.is_nil(row.ratio)
    assert.same({ 1, 3 }, row.samples)
  end)

  it("machine facts carry the OpenBLAS core and the variables that steer it", function()
    local m = rows.machine()
    assert.equal("string", type(m.blas.core))
    assert.equal("table", type(m.env))
    assert.truthy(rows.describe(m):find("core " .. m.blas.core, 1, true))
  end)
end)

describe("bench/compare", function()
  it("prints each row's change, its noise and verdict, and the rows in one file only", function()
    local out, code = sh(q(bin) .. " bench/compare " .. q(path("a.json")) .. " " .. q(path("b.json")))
    assert.equal(0, code, out)
    assert.truthy(out:find("charrnn: train lstm H=128 1T%s+10%s+12%s+ms%s+1%.200%s+%+20%.0%%%s+10%.0%%%s+worse"), out)
    assert.truthy(out:find("charrnn: sample lstm H=128 1T.-%+3%.0%%.-within noise"), out)
    assert.truthy(out:find("only in A: small_op: gone", 1, true), out)
    assert.truthy(out:find("only in B: small_op: new", 1, true), out)
  end)

  it("fails with the file's name on a bad file, and on a wrong command line", function()
    H.write_file(path("bad.json"), "{")
    local out, code = sh(q(bin) .. " bench/compare " .. q(path("a.json")) .. " " .. q(path("bad.json")))
    assert.equal(2, code)
    assert.truthy(H.has(out, "compare: bench results " .. path("bad.json") .. ": not JSON"))
    out, code = sh(q(bin) .. " bench/compare " .. q(path("a.json")))
    assert.equal(2, code)
    assert.truthy(out:find("wants two results files", 1, true), out)
    out, code = sh(q(bin) .. " bench/compare --help")
    assert.equal(0, code)
    assert.truthy(out:find("usage: bench/compare", 1, true))
  end)
end)
