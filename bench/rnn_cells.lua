-- Forward + backward time of every fused cell over a whole sequence, with GFLOP/s (GEMM
-- FLOPs only) beside the sgemm rate measured in the same run.
-- Options: --help (scripts/args.lua).
local recur = require("recur")
local rows = require("bench.lib.rows")

local opts = require("scripts.args").parse(arg, {
  name = "lua5.4 bench/rnn_cells.lua",
  about = "Forward + backward time of every fused cell over a sequence, with GFLOP/s beside sgemm's.",
  { "hidden", "list", "128,512", "hidden sizes, comma separated" },
  { "T", "int", 50, "sequence length" },
  { "B", "int", 32, "batch size" },
  { "input", "int", nil, "input size (default: the hidden size)" },
  { "threads", "int", 1, "BLAS threads" },
  { "reps", "int", 5, "timed repetitions per case, the best is reported" },
  { "cells", "list", nil, "cells to run, comma separated (default: all, gru in both forms)" },
})
local function posint(v, name)
  local n = tonumber(v)
  if not n or n < 1 or n ~= math.floor(n) then
    io.stderr:write(string.format("rnn_cells: --%s must be a positive integer, got %s\n", name,
      tostring(v)))
    os.exit(2)
  end
  return math.tointeger(n)
end
local T, B = posint(opts.T, "T"), posint(opts.B, "B")
local reps = posint(opts.reps, "reps")
recur.threads(posint(opts.threads, "threads"))
local hiddens = {}
for h in tostring(opts.hidden):gmatch("[^,]+") do hiddens[#hiddens + 1] = posint(h, "hidden") end
local cells = {}
if opts.cells then
  for c in opts.cells:gmatch("[^,]+") do cells[#cells + 1] = c end
else
  cells = { "rnn", "gru", "gru_after", "lstm", "lstm_peephole", "pseudo_lstm",
    "normalized_prototype", "ln_lstm" }
end

local clock = recur.now

-- sgemm peak on a GEMM shaped like the input projection of the largest case
local function sgemm_rate(H)
  local a, b = recur.randn(T * B, H), recur.randn(H, 4 * H)
  local best = math.huge
  for _ = 1, 5 do
    local t0 = clock()
    local c = recur.mm(a, b)
    local dt = clock() - t0
    c = nil
    if dt < best then best = dt end
  end
  return 2 * T * B * H * 4 * H / best / 1e9
end

local c = recur.config()
print(string.format("%s, BLAS %s %s, %d thread(s); T = %d, B = %d; best of %d",
  c.version, c.blas.vendor, c.blas.version, recur.threads(), T, B, reps))
for _, H in ipairs(hiddens) do
  local I = opts.input and posint(opts.input, "input") or H
  print(string.format("hidden %d, input %d: sgemm [%d x %d] x [%d x %d] %.1f GFLOP/s", H, I,
    T * B, H, H, 4 * H, sgemm_rate(H)))
  for _, name in ipairs(cells) do
    local kind = name == "gru_after" and "gru" or name
    local cell = recur.rnn.Cell { cell = kind, input = I, hidden = H,
      reset_after = name == "gru_after" }
    local x = recur.randn(T, B, I):requires_grad(true)
    local gy = recur.randn(T, B, H)
    local function run()
      local y = cell:forward(x)
      y:backward(gy)
    end
    run()
    local fwd, tot, all = math.huge, math.huge, {}
    for k = 1, reps do
      local t0 = clock()
      local y = cell:forward(x)
      local t1 = clock()
      y:backward(gy)
      local t2 = clock()
      if t1 - t0 < fwd then fwd = t1 - t0 end
      if t2 - t0 < tot then tot = t2 - t0 end
      all[k] = (t2 - t0) * 1e3
    end
    local flops = cell:flops(T, B)
    print(string.format("  %-22s forward %8.2f ms   forward+backward %8.2f ms   %6.1f GFLOP/s",
      name, fwd * 1e3, tot * 1e3, flops / tot / 1e9))
    rows.emit { bench = "rnn_cells", name = string.format("%s H=%d I=%d T=%d B=%d %dT fwd+bwd", name,
      H, I, T, B, recur.threads()), value = tot * 1e3, unit = "ms", better = "lower",
      forward_ms = fwd * 1e3, gflops = flops / tot / 1e9, samples = all }
  end
end
