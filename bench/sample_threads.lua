-- Batch-1 sampling (the char model's C loop, recur._rnn_generate) with 1 and 2 BLAS threads,
-- in one process, interleaved: each round times every hidden size at every thread count, so
-- that load from other processes falls on both sides. Prints each configuration's median
-- char/s with its range and the median (range) over rounds of 2-thread / 1-thread.
-- The model is bench/charrnn.lua's by default: vocabulary 65, embedding 64, 2 LSTM layers;
-- --vocab 10000 --embed 50 --layers 1 --cell rnn --hidden 100 is the word model of the
-- truncated-backprop post (its draw over 10,000 classes: runtime/sample.c).
-- With 2 threads the loop's recurrent products run on the helper thread (runtime/rnn_generate.c).
-- Options: --help (scripts/args.lua).
local recur = require("recur")
local Args = require("scripts.args")
local rows = require("bench.lib.rows")

local opts = Args.parse(arg, {
  name = "lua5.4 bench/sample_threads.lua",
  about = "Batch-1 sampling speed with 1 and 2 BLAS threads, interleaved rounds in one process.",
  { "hidden", "list", "128,512", "hidden sizes, comma separated" },
  { "rounds", "int", 5, "interleaved rounds" },
  { "chars", "int", 0, "characters per timing (0: 3000 at H <= 256, 600 above)" },
  { "cell", { "lstm", "gru", "rnn" }, "lstm", "cell type" },
  { "vocab", "int", 65, "vocabulary (the readout's classes)" },
  { "embed", "int", 64, "embedding size" },
  { "layers", "int", 2, "layers" },
})
if opts.rounds < 1 then Args.die("sample_threads: --rounds must be at least 1, got " .. opts.rounds) end
if opts.chars < 0 then Args.die("sample_threads: --chars must be >= 0, got " .. opts.chars) end
for _, k in ipairs { "vocab", "embed", "layers" } do
  if opts[k] < 1 then Args.die("sample_threads: --" .. k .. " must be at least 1, got " .. opts[k]) end
end
local CharRNN = require("models.charrnn")
local hiddens = {}
for h in tostring(opts.hidden):gmatch("[^,]+") do
  local n = math.tointeger(tonumber(h))
  if not n or n < 1 then Args.die("sample_threads: --hidden wants positive integers, got " .. h) end
  hiddens[#hiddens + 1] = n
end

local before = recur.threads()
local models, chars = {}, {}
for _, H in ipairs(hiddens) do
  recur.seed(0)
  models[H] = CharRNN.new { vocab = opts.vocab, embed = opts.embed, hidden = H,
    layers = opts.layers, cell = opts.cell }
  chars[H] = opts.chars > 0 and opts.chars or (H <= 256 and 3000 or 600)
  models[H]:sample { length = 50 } -- warm-up: workspaces, OpenBLAS's threads
end

local rate = {} -- rate[H][threads] = { char/s per round }
for _, H in ipairs(hiddens) do rate[H] = { {}, {} } end
for round = 1, opts.rounds do
  for _, H in ipairs(hiddens) do
    -- alternate which thread count goes first
    local order = round % 2 == 1 and { 1, 2 } or { 2, 1 }
    for _, th in ipairs(order) do
      recur.threads(th)
      local t0 = recur.now()
      models[H]:sample { length = chars[H] }
      rate[H][th][round] = chars[H] / (recur.now() - t0)
    end
  end
end
recur.threads(before)

print(rows.describe())
print(string.format("sampling %s, %d layer(s), vocabulary %d, embedding %d, batch 1, %d "
  .. "interleaved rounds (char/s: median, min-max)", opts.cell, opts.layers, opts.vocab,
  opts.embed, opts.rounds))
-- rows of a model other than the default carry its shape in their names
local tag = (opts.vocab ~= 65 or opts.embed ~= 64 or opts.layers ~= 2)
  and string.format(" V=%d E=%d L=%d", opts.vocab, opts.embed, opts.layers) or ""
for _, H in ipairs(hiddens) do
  local s1, s2 = rows.spread(rate[H][1]), rows.spread(rate[H][2])
  local r = {}
  for k = 1, opts.rounds do r[k] = rate[H][2][k] / rate[H][1][k] end
  local sr = rows.spread(r)
  print(string.format("  H=%-4d 1 thread %9.0f (%.0f-%.0f)   2 threads %9.0f (%.0f-%.0f)   "
    .. "2T / 1T %.2f (%.2f-%.2f)", H, s1.median, s1.min, s1.max, s2.median, s2.min, s2.max,
    sr.median, sr.min, sr.max))
  for th = 1, 2 do
    rows.emit { bench = "sample_threads", name = string.format("sample %s H=%d%s %dT", opts.cell, H, tag, th),
      value = rows.spread(rate[H][th]).median, unit = "char/s", better = "higher",
      samples = rate[H][th] }
  end
  rows.emit { bench = "sample_threads", name = string.format("sample %s H=%d%s 2T/1T", opts.cell, H, tag),
    value = sr.median, unit = "ratio", better = "higher", samples = r }
end
