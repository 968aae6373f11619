-- recur.mpi (docs/distributed.md): collectives on 1, 2 and 3 ranks under mpirun as CI runs it
-- (root, one machine, oversubscribed), bad input on every rank, and a failing rank ending the
-- job. Every mpirun has a time limit (timeout(1)): a hang fails the test instead of blocking it.
local recur = require "recur"
local H = require "tests.helpers"

local BIN = os.getenv("RECUR_BIN") or "build/recur"
local LIMIT = 60 -- seconds; a healthy run of any script here takes about one
-- CI's mpirun as root on one small machine; under `make asan`, Open MPI's components stay loaded
-- and leak stacks are unwound fully, so that tools/lsan.supp's library names match them
local MPI_ENV = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
  .. "OMPI_MCA_mca_base_component_disable_dlclose=1 ASAN_OPTIONS=\"$ASAN_OPTIONS:fast_unwind_on_malloc=0\""

-- Runs `mpirun -np n recur script` with the environment CI uses; returns output, exit code.
local function mpirun(n, source, extra_env)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(source)
  f:close()
  local cmd = string.format("%s %s timeout -k 5 %d mpirun -np %d %s %s 2>&1; echo \"exit=$?\"",
    MPI_ENV, extra_env or "", LIMIT, n, BIN, script)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  os.remove(script)
  local code = tonumber(out:match("exit=(%d+)%s*$"))
  return out, code
end

-- Lines "rank R: text" printed by the ranks, keyed by rank.
local function by_rank(out)
  local t = {}
  for r, text in out:gmatch("rank (%d+): ([^\n]*)") do t[tonumber(r)] = text end
  return t
end

local COLLECTIVES = [[
local recur = require "recur"
local mpi = require "recur.mpi"
local r, n = mpi.rank(), mpi.size()
local function say(fmt, ...) io.write(string.format("rank %d: " .. fmt .. "\n", r, ...)) io.flush() end
local t = recur.tensor({ { r + 1, -r }, { 2 * r, 0.5 } })
local s = t:clone(); mpi.allreduce(s, "sum")
local m = t:clone(); mpi.allreduce(m, "mean")
local mx = t:clone(); mpi.allreduce(mx, "max")
local mn = t:clone(); mpi.allreduce(mn, "min")
local b = recur.full({ 3 }, r + 10); mpi.broadcast(b, n - 1)
local g = mpi.gather({ r, "r" .. r, { x = r / 2, ok = r % 2 == 0 } }, 0)
local ag = mpi.allgather(r * 3)
local bv = mpi.broadcast_value({ seed = 42, name = "x" }, 0)
mpi.barrier()
say("size=%d dist=%s sum=%s mean=%s max=%s min=%s bcast=%s ag=%s bv=%s,%s g=%s", n,
  tostring(mpi.is_distributed()),
  table.concat(s:view(-1):totable(), ","), table.concat(m:view(-1):totable(), ","),
  table.concat(mx:view(-1):totable(), ","), table.concat(mn:view(-1):totable(), ","),
  table.concat(b:totable(), ","), table.concat(ag, ","), bv.seed, bv.name,
  g and (function()
    local parts = {}
    for i, v in ipairs(g) do
      parts[i] = string.format("%s|%s|%s|%s|%s", math.type(v[1]), v[1], v[2], v[3].x, tostring(v[3].ok))
    end
    return table.concat(parts, ";")
  end)() or "nil")
]]

local function expected(n, r, distributed)
  local sum, mx, mn = { 0, 0, 0, 0 }, { -math.huge, -math.huge, -math.huge, -math.huge },
    { math.huge, math.huge, math.huge, math.huge }
  for k = 0, n - 1 do
    local v = { k + 1, -k, 2 * k, 0.5 }
    for i = 1, 4 do
      sum[i] = sum[i] + v[i]
      mx[i] = math.max(mx[i], v[i])
      mn[i] = math.min(mn[i], v[i])
    end
  end
  local mean = {}
  for i = 1, 4 do mean[i] = sum[i] * (1 / n) end
  local function f32(t)
    local o = {}
    for i, x in ipairs(t) do o[i] = string.format("%s", recur.tensor({ x }):totable()[1]) end
    return table.concat(o, ",")
  end
  local ag, g = {}, {}
  for k = 0, n - 1 do
    ag[#ag + 1] = tostring(k * 3)
    g[#g + 1] = string.format("integer|%d|r%d|%s|%s", k, k, tostring(k / 2), tostring(k % 2 == 0))
  end
  local b = string.format("%s,%s,%s", recur.tensor({ n + 9 }):totable()[1], recur.tensor({ n + 9 }):totable()[1],
    recur.tensor({ n + 9 }):totable()[1])
  return string.format("size=%d dist=%s sum=%s mean=%s max=%s min=%s bcast=%s ag=%s bv=42,x g=%s", n,
    tostring(distributed), f32(sum), f32(mean), f32(mx), f32(mn), b, table.concat(ag, ","),
    r == 0 and table.concat(g, ";") or "nil")
end

describe("recur.mpi", function()
  it("is a world of size 1 outside mpirun, where every call works", function()
    local out = assert(io.popen(string.format("env -u OMPI_COMM_WORLD_SIZE -u PMIX_RANK -u PMI_SIZE %s -e %q 2>&1",
      BIN, COLLECTIVES:gsub("\n", " ")))):read("a")
    local want = expected(1, 0, false)
    assert.are.equal(want, by_rank(out)[0], out)
  end)

  for _, n in ipairs({ 1, 2, 3 }) do
    it("allreduce, broadcast, gather and allgather agree on " .. n .. " rank(s) under mpirun", function()
      local out, code = mpirun(n, COLLECTIVES)
      assert.are.equal(0, code, out)
      local got = by_rank(out)
      for r = 0, n - 1 do
        local want = expected(n, r, true)
        assert.are.equal(want, got[r], out)
      end
    end)
  end

  it("a rank raising an error ends the whole job with its message, no hang", function()
    local out, code = mpirun(3, [[
local recur = require "recur"
local mpi = require "recur.mpi"
if mpi.rank() == 1 then error("rank one gives up") end
mpi.allreduce(recur.ones(3)) -- ranks 0 and 2 wait here for rank 1
print("rank " .. mpi.rank() .. ": not reached")
]])
    assert.are_not.equal(0, code, out)
    assert.are_not.equal(124, code, "timed out (hang):\n" .. out) -- timeout(1)'s status
    H.has(out, "rank one gives up", "rank 1 of 3 failed")
    assert.falsy(out:find("not reached", 1, true), out)
  end)

  it("a rank that exits without finalising ends the job, no hang", function()
    local out, code = mpirun(2, [[
local recur = require "recur"
local mpi = require "recur.mpi"
if mpi.rank() == 1 then os.exit(3) end
mpi.allreduce(recur.ones(3)) -- rank 0 waits here for rank 1
print("rank 0: not reached")
]])
    assert.are_not.equal(0, code, out)
    assert.are_not.equal(124, code, "timed out (hang):\n" .. out)
    assert.falsy(out:find("not reached", 1, true), out)
  end)

  it("bad input raises the same clear error on every rank, never a hang or a crash", function()
    local out, code = mpirun(2, [[
local recur = require "recur"
local mpi = require "recur.mpi"
local r = mpi.rank()
local function try(name, f, ...)
  local ok, err = pcall(f, ...)
  io.write(string.format("rank %d: %s %s %s\n", r, name, tostring(ok), tostring(err):gsub("\n", " ")))
  io.flush()
end
local closed = recur.ones(2); closed:close()
try("shape", mpi.allreduce, recur.ones(r + 2))
try("op", mpi.allreduce, recur.ones(2), r == 0 and "sum" or "max")
try("type", mpi.allreduce, r == 1 and "x" or recur.ones(2))
try("closed", mpi.allreduce, r == 0 and closed or recur.ones(2))
try("strided", mpi.broadcast, r == 1 and recur.ones(3, 2):t() or recur.ones(2, 3))
try("badop", mpi.allreduce, recur.ones(2), "prod")
try("root", mpi.broadcast, recur.ones(2), 5)
try("fn", mpi.gather, r == 1 and print or 1)
try("nil", mpi.allgather, nil)
local ok = recur.ones(4); mpi.allreduce(ok) -- the world still works after all of these
try("after", function() assert(ok:sum():item() == 8) end)
mpi.finalize()
try("finalized", mpi.barrier)
try("finalized2", mpi.allreduce, recur.ones(2))
]])
    assert.are.equal(0, code, out)
    local function check(rank, name, ...)
      local line = out:match("rank " .. rank .. ": " .. name .. " ([^\n]*)")
      assert(line, "no line for rank " .. rank .. " " .. name .. ":\n" .. out)
      H.has(line, ...)
    end
    for r = 0, 1 do
      check(r, "shape", "false", "mpi.allreduce", "[2]", "[3]", "disagree")
      check(r, "op", "false", "mpi.allreduce", "op sum", "op max")
      check(r, "badop", "false", "mpi.allreduce: argument #2 (op)", "\"prod\"")
      check(r, "root", "false", "mpi.broadcast: argument #2 (root) is 5")
      check(r, "nil", "false", "mpi.allgather: argument #1 is nil")
      check(r, "after", "true")
      check(r, "finalized", "false", "mpi.barrier: called after mpi.finalize()")
      check(r, "finalized2", "false", "mpi.allreduce: called after mpi.finalize()")
    end
    check(1, "type", "false", "mpi.allreduce: argument #1 must be a tensor, got string")
    check(0, "type", "false", "rank 1 passed bad arguments", "must be a tensor")
    check(0, "closed", "false", "mpi.allreduce: argument #1 is a closed tensor")
    check(1, "closed", "false", "rank 0 passed bad arguments", "closed tensor")
    check(1, "strided", "false", "mpi.broadcast: argument #1 (shape [2, 3]) is not contiguous")
    check(0, "strided", "false", "rank 1 passed bad arguments")
    check(1, "fn", "false", "mpi.gather: argument #1 holds a function")
    check(0, "fn", "false", "rank 1 passed bad arguments")
  end)

  it("checks arguments the same way in a world of size 1", function()
    -- this busted process is not under mpirun: recur.mpi runs without MPI here
    local mpi = require "recur.mpi"
    assert.is_false(mpi.is_distributed())
    assert.are.equal(0, mpi.rank())
    assert.are.equal(1, mpi.size())
    local t = recur.tensor({ 1, 2 })
    assert.are.equal(t, mpi.allreduce(t, "mean"))
    assert.are.same({ 1, 2 }, t:totable())
    H.fails_with(function() mpi.allreduce("x") end, "mpi.allreduce: argument #1 must be a tensor, got string")
    local c = recur.ones(2); c:close()
    H.fails_with(function() mpi.allreduce(c) end, "mpi.allreduce: argument #1 is a closed tensor")
    H.fails_with(function() mpi.broadcast(recur.ones(2, 3):t()) end, "mpi.broadcast: argument #1 (shape [3, 2]) is not contiguous")
    H.fails_with(function() mpi.allreduce(t, "avg") end, "mpi.allreduce: argument #2 (op)")
    H.fails_with(function() mpi.broadcast(t, 1) end, "mpi.broadcast: argument #2 (root) is 1, not a rank in 0..0")
    H.fails_with(function() mpi.broadcast(t, 0.5) end, "mpi.broadcast: argument #2 (root) must be an integer rank")
    H.fails_with(function() mpi.gather({ f = print }) end, "mpi.gather: argument #1 holds a function at the value[\"f\"]")
    local cyc = {}; cyc.self = cyc
    H.fails_with(function() mpi.allgather(cyc) end, "mpi.allgather: argument #1 holds a cycle")
    H.fails_with(function() mpi.gather({ [true] = 1 }) end, "mpi.gather: argument #1 has a key of type boolean")
    local v = { 1, 2.5, "s", { a = true, b = { -3 } }, [10] = math.maxinteger, nan = 0 / 0 }
    local got = mpi.allgather(v)[1]
    assert.are.equal(math.maxinteger, got[10])
    assert.are.equal("integer", math.type(got[1]))
    assert.are.equal("float", math.type(got[2]))
    assert.is_true(got.nan ~= got.nan)
    got.nan = nil; v.nan = nil
    assert.are.same(v, got)
    assert.are.same({ 7 }, mpi.gather(7, 0))
    assert.are.same({ k = "v" }, mpi.broadcast_value({ k = "v" }))
  end)
end)

-- A small sweep (3 configs x 3 seeds) whose runs draw numbers and train a little, writing its
-- runs file to arg[1]; with arg[2] the run of that key raises (an interrupted sweep).
local SWEEP = [[
local recur = require "recur"
local experiment = require "recur.experiment"
local file, fail_at = arg[1], arg[2]
local sw = experiment.sweep{
  name = "tiny", file = file, quiet = false,
  configs = { { h = 3 }, { h = 5 }, { h = 8 } }, seeds = { 1, 2, 3 },
  run = function(cfg, seed, run)
    if run.key == fail_at then error("run " .. run.key .. " fails on purpose") end
    local w = recur.randn(cfg.h, cfg.h)
    local x = recur.rand(4, cfg.h)
    for _ = 1, 5 do x = (x:matmul(w)):tanh() end
    return { seed = seed, value = x:sum():item(), first = recur.rand(3):totable() }
  end,
}
local records = sw:run()
local mpi = require "recur.mpi"
io.write(string.format("rank %d: %d records, first %s\n", mpi.rank(), #records, records[1].key))
]]

local function read_records(path)
  local f = assert(io.open(path, "rb"))
  local t = require("recur.json").decode(f:read("a"))
  f:close()
  for _, r in ipairs(t.records) do r.seconds = nil end -- the only field that may differ
  return t.records
end

describe("distributed sweeps", function()
  local function run_script(n, file, fail_at)
    local dir = os.tmpname()
    local src = SWEEP
    local args = file .. (fail_at and (" '" .. fail_at .. "'") or "")
    if n == 0 then -- one process, no mpirun
      local script = dir .. ".lua"
      local f = assert(io.open(script, "w")); f:write(src); f:close()
      local p = assert(io.popen(string.format("env -u OMPI_COMM_WORLD_SIZE -u PMIX_RANK -u PMI_SIZE %s %s %s 2>&1; echo \"exit=$?\"", BIN, script, args)))
      local out = p:read("a"); p:close()
      os.remove(script); os.remove(dir)
      return out, tonumber(out:match("exit=(%d+)%s*$"))
    end
    os.remove(dir)
    -- mpirun() writes the script itself; pass the arguments through a wrapper
    return mpirun(n, string.format("arg[1], arg[2] = %q, %s\n", file, fail_at and string.format("%q", fail_at) or "nil") .. src)
  end

  it("a sweep under 2 ranks writes the same records as in one process, and resumes", function()
    local one, two, three = os.tmpname(), os.tmpname(), os.tmpname()
    os.remove(one); os.remove(two); os.remove(three)
    local out, code = run_script(0, one)
    assert.are.equal(0, code, out)
    out, code = run_script(2, two)
    assert.are.equal(0, code, out)
    H.has(out, "rank 0: 9 records, first h=3 seed=1", "rank 1: 9 records, first h=3 seed=1")
    local r1, r2 = read_records(one), read_records(two)
    assert.are.equal(9, #r1)
    assert.are.same(r1, r2)
    -- interrupted: the run h=5 seed=3 (the 6th, so round 3 on 2 ranks) fails and ends the job
    out, code = run_script(2, three, "h=5 seed=3")
    assert.are_not.equal(0, code, out)
    assert.are_not.equal(124, code, "timed out (hang):\n" .. out)
    H.has(out, "run h=5 seed=3 fails on purpose")
    local partial = read_records(three)
    assert.is_true(#partial >= 4 and #partial < 9, "records kept: " .. #partial)
    out, code = run_script(2, three)
    assert.are.equal(0, code, out)
    H.has(out, "resuming: " .. #partial .. " of 9 runs")
    assert.are.same(r1, read_records(three))
    os.remove(one); os.remove(two); os.remove(three)
  end)
end)

describe("data-parallel training (recur.data_parallel)", function()
  local function params(path)
    local t = {}
    for line in io.lines(path) do t[#t + 1] = tonumber(line) end
    os.remove(path)
    return t
  end
  -- ||a - b|| / ||a||
  local function rel(a, b)
    assert.are.equal(#a, #b)
    local d, n = 0, 0
    for i = 1, #a do
      d = d + (a[i] - b[i]) ^ 2
      n = n + a[i] ^ 2
    end
    return math.sqrt(d / n)
  end
  for _, kind in ipairs({ "mlp", "lstm" }) do
    it(kind .. ": 2 and 3 ranks sharing a global batch of 32 end 10 Adam steps where 1 process does", function()
      local one = os.tmpname()
      local p = assert(io.popen(string.format("env -u OMPI_COMM_WORLD_SIZE -u PMIX_RANK -u PMI_SIZE %s tests/fixtures/data_parallel_steps.lua %s %s 2>&1; echo \"exit=$?\"",
        BIN, kind, one)))
      local out = p:read("a"); p:close()
      assert.truthy(out:find("exit=0", 1, true), out)
      local a = params(one)
      assert.is_true(#a > 900)
      for _, n in ipairs({ 2, 3 }) do -- 3 ranks: rows 11, 11, 10 (weighted)
        local many = os.tmpname()
        local src = string.format("arg[1], arg[2] = %q, %q\n", kind, many)
          .. io.open("tests/fixtures/data_parallel_steps.lua"):read("a")
        local o, code = mpirun(n, src)
        assert.are.equal(0, code, o)
        local r = rel(a, params(many))
        assert.is_true(r < 1e-5, string.format("%s on %d ranks: relative difference %g", kind, n, r))
      end
    end)
  end
end)

describe("scripts/train_charrnn.lua under mpirun", function()
  -- a small text (no dataset needed): words drawn from a fixed list by a fixed LCG
  local text = os.tmpname()
  do
    local words, out, s = { "the ", "cat ", "sat ", "on ", "a ", "mat, ", "and ", "then\n", "slept. " }, {}, 7
    for i = 1, 3000 do
      s = (s * 1103515245 + 12345) % 2147483648
      out[i] = words[s % #words + 1]
    end
    local f = assert(io.open(text, "w")); f:write(table.concat(out)); f:close()
  end
  local common = string.format("scripts/train_charrnn.lua --data %s --hidden 24 --embed 8 --layers 2 --batch 16 --seq 12 --print-every 100", text)

  local function one(args)
    local p = assert(io.popen(string.format("env -u OMPI_COMM_WORLD_SIZE -u PMIX_RANK -u PMI_SIZE %s %s %s 2>&1; echo \"exit=$?\"", BIN, common, args)))
    local out = p:read("a"); p:close()
    assert.truthy(out:find("exit=0", 1, true), out)
    return out
  end
  local function two(args)
    local cmd = string.format("%s timeout -k 5 %d mpirun -np 2 %s %s %s 2>&1; echo \"exit=$?\"", MPI_ENV, LIMIT, BIN,
      common, args)
    local p = assert(io.popen(cmd))
    local out = p:read("a"); p:close()
    assert.truthy(out:find("exit=0", 1, true), out)
    return out
  end
  -- worst ||a - b|| / ||a|| over the checkpoints' tensors (weights, optimizer state, carried state)
  local function differ(pa, pb)
    local a, b = recur.load(pa), recur.load(pb)
    local worst, n = 0, 0
    local function walk(x, y, path)
      if recur.is_tensor(x) then
        assert(recur.is_tensor(y), path)
        local d = math.sqrt((x - y):pow(2):sum():item() / math.max(x:pow(2):sum():item(), 1e-30))
        worst, n = math.max(worst, d), n + 1
      elseif type(x) == "table" then
        for k, v in pairs(x) do walk(v, assert(y[k], path .. "." .. tostring(k)), path .. "." .. tostring(k)) end
      end
    end
    walk(a.model, b.model, "model")
    walk(a.tensors, b.tensors, "tensors")
    walk(a.optimizer, b.optimizer, "optimizer")
    assert.is_true(n > 25, "tensors compared: " .. n) -- 9 weights, 18 Adam moments, 4 states
    return worst
  end

  it("2 ranks train as 1 process does, and a checkpoint of either resumes in the other", function()
    local d = os.tmpname()
    os.remove(d)
    os.execute("mkdir -p " .. d)
    one("--max-steps 12 --checkpoint " .. d .. "/one.ckpt")
    local out = two("--max-steps 12 --checkpoint " .. d .. "/two.ckpt")
    local _, lines = out:gsub("checkpoint: ", "")
    assert.are.equal(1, lines, "rank 0 alone writes and prints:\n" .. out)
    assert.is_true(differ(d .. "/one.ckpt", d .. "/two.ckpt") < 1e-5)
    -- 2 ranks for 6 steps, then 1 process to 12; and the other way round
    two("--max-steps 6 --checkpoint " .. d .. "/a.ckpt")
    one("--max-steps 12 --resume " .. d .. "/a.ckpt --checkpoint " .. d .. "/a.ckpt")
    assert.is_true(differ(d .. "/one.ckpt", d .. "/a.ckpt") < 1e-5)
    one("--max-steps 6 --checkpoint " .. d .. "/b.ckpt")
    two("--max-steps 12 --resume " .. d .. "/b.ckpt --checkpoint " .. d .. "/b.ckpt")
    assert.is_true(differ(d .. "/one.ckpt", d .. "/b.ckpt") < 1e-5)
    os.execute("rm -rf " .. d)
    os.remove(text)
  end)
end)
