-- Word-level language model training step, recur against PyTorch on this machine, in one run.
--
--   lua5.4 bench/word_lm.lua                 (LUA_CPATH=build/?.so; or build/recur bench/...)
--   lua5.4 bench/word_lm.lua --quick         (fewer repetitions; what BENCH_QUICK=1 runs)
--   options: --threads 1,2 --no-torch --help
--
-- The model of "Styles of Truncated Backpropagation" (models/word_rnn.lua, issue 15):
-- vocabulary 10,000, embedding 50, dropout (keep 0.8), vanilla tanh RNN 100, dropout, softmax
-- over the whole vocabulary; batch 32, 20 steps (TF style: one window, the mean loss over the
-- 640 words), Adam (lr 1e-3, the model's TF-style epsilon). A step is zero_grad, forward from
-- the carried state, loss, backward, Adam: WordRNN:grad_step, as scripts/posts/tbptt_styles.lua
-- trains it. PyTorch (bench/word_lm_torch.py) runs Embedding + Dropout + RNN(tanh) + Dropout
-- + Linear, cross_entropy, Adam.
--
-- Every measurement is its own process (peak RSS per configuration), OPENBLAS_NUM_THREADS = 1
-- or 2 and nothing else multithreaded (PyTorch with torch.set_num_threads(1)); times are the
-- median of 5 blocks of steps after a warm-up (bench/charrnn.lua's conventions). The readout
-- dominates: three [640 x 100] x [100 x 10,000]-sized products (logits, and the gradients of
-- the hidden states and of the softmax weight). "GEMM floor" replays those three products
-- alone (recur.matmul, same shapes, same threads, its own process): step / floor shows what
-- the softmax, the RNN, Adam and the rest add on top. --rounds N alternates the three
-- processes N times and prints medians (a shared machine's load moves single runs by 30%).
-- Run from the project root (require "models.word_rnn" is found through ./?.lua).
local recur = require("recur")
local rows = require("bench.lib.rows")

local workers = require("bench.lib.workers")
local opts, worker = workers.options(arg, {
  name = "lua5.4 bench/word_lm.lua",
  about = "Times a training step of the truncated-backprop post's word model (vocabulary 10,000, "
    .. "embedding 50, tanh RNN 100, batch 32, 20 steps, full softmax, Adam) against PyTorch, "
    .. "each measurement in its own process with its peak RSS. --rounds N alternates the "
    .. "processes N times and reports medians (the ratio: median and range over the rounds). "
    .. "See bench/README.md.",
  { "quick", "flag", false, "fewer repetitions" },
  { "threads", "list", "1,2", "BLAS thread counts, comma separated" },
  { "no-torch", "flag", false, "skip PyTorch" },
  { "rounds", "int", 1, "alternate the processes this many times" },
})
local args
if opts then
  if opts.rounds < 1 then
    io.stderr:write("word_lm: --rounds takes a positive integer, got " .. opts.rounds .. "\n")
    os.exit(2)
  end
  args = { threads = workers.int_list(opts.threads, "threads", "word_lm"), torch = not opts.no_torch,
    quick = opts.quick, rounds = opts.rounds }
end

local V, E, H, B, T = 10000, 50, 100, 32, 20

local timing = require("bench.lib.timing")
local peak_rss_mb, median, blocks = timing.peak_rss_mb, timing.median, timing.blocks

-- ---------------------------------------------------------------------------------------
-- worker: one measurement, one RESULT line

if worker then
  local nb = math.tointeger(tonumber(worker.blocks or "5"))
  local ns = math.tointeger(tonumber(worker.steps or "10"))
  local nw = math.tointeger(tonumber(worker.warmup or "5"))
  recur.seed(0)
  local fn
  if worker.mode == "floor" then
    -- the readout's three products alone: logits, dL/dh and dL/dW
    local R = T * B
    local h, w, g = recur.randn(R, H), recur.randn(V, H), recur.randn(R, V)
    fn = function()
      local z = recur.matmul(h, w:t())
      local gh = recur.matmul(g, w)
      local gw = recur.matmul(g:t(), h)
      return z, gh, gw
    end
  else
    local WordRNN = require("models.word_rnn")
    local m = WordRNN.new { vocab = V, embed = E, hidden = H, keep = 0.8 }
    local adam = WordRNN.adam(m:parameters(), 1e-3)
    local x = recur.randint(1, V, { T, B })
    local y = recur.randint(1, V, { T, B })
    local state
    fn = function()
      adam.zero_grad()
      state = m:grad_step(x, y, state, { style = "tf" }).state
      adam.step()
    end
  end
  local med, best, worst = blocks(fn, nw, nb, ns)
  print(string.format("RESULT impl=recur mode=%s ms=%.3f best_ms=%.3f worst_ms=%.3f rss_mb=%.1f",
    worker.mode, med * 1e3, best * 1e3, worst * 1e3, peak_rss_mb()))
  os.exit(0)
end

-- ---------------------------------------------------------------------------------------
-- orchestrator

local sh, parse = workers.sh, workers.parse
local recur_bin = workers.recur_bin()
local torch_ok = args.torch and workers.torch_available()

local nb, ns, nw = 5, 10, 5
if args.quick then nb, ns, nw = 3, 3, 2 end
local counts = string.format("blocks=%d steps=%d warmup=%d", nb, ns, nw)

local function run_recur(threads, mode)
  local out = sh(string.format("OPENBLAS_NUM_THREADS=%d %s bench/word_lm.lua --worker mode=%s %s",
    threads, recur_bin, mode, counts))
  local r, err = parse(out)
  if not r then io.stderr:write("recur worker failed: " .. err .. "\n") end
  return r
end

local function run_torch(threads)
  if not torch_ok then return nil end
  local out = sh(string.format(
    "OPENBLAS_NUM_THREADS=%d /usr/bin/python3 bench/word_lm_torch.py --blocks %d --steps %d --warmup %d",
    threads, nb, ns, nw))
  local r, err = parse(out)
  if not r then io.stderr:write("pytorch worker failed: " .. err .. "\n") end
  return r
end

print(string.format("word-level LM benchmark, %s", os.date("!%Y-%m-%d %H:%M UTC")))
print(rows.describe())
print(string.format("vocabulary %d, embedding %d, tanh RNN %d, batch %d, %d steps, dropout 0.2, "
  .. "full softmax, Adam%s", V, E, H, B, T, torch_ok and "" or not args.torch
  and "; PyTorch skipped (--no-torch)" or "; PyTorch not available (apt-get install python3-torch)"))
print(string.format("%-8s %9s %9s %8s  %9s %10s  %9s %9s", "threads", "recur ms", "torch ms",
  "ratio", "floor ms", "step/floor", "recur MB", "torch MB"))
local function med_of(list, key)
  local v = {}
  for _, r in ipairs(list) do v[#v + 1] = r[key] end
  return #v > 0 and median(v) or nil
end
local summary = {}
for _, threads in ipairs(args.threads) do
  -- alternate the three processes so that a change of load hits all of them alike
  local rs, ts, fs, ratios = {}, {}, {}, {}
  for _ = 1, args.rounds do
    local r, t, f = run_recur(threads, "step"), run_torch(threads), run_recur(threads, "floor")
    if r then rs[#rs + 1] = r end
    if t then ts[#ts + 1] = t end
    if f then fs[#fs + 1] = f end
    if r and t then ratios[#ratios + 1] = t.ms / r.ms end
  end
  local r = #rs > 0 and { ms = med_of(rs, "ms"), best_ms = med_of(rs, "best_ms"),
    worst_ms = med_of(rs, "worst_ms"), rss_mb = med_of(rs, "rss_mb") } or nil
  local t = #ts > 0 and { ms = med_of(ts, "ms"), best_ms = med_of(ts, "best_ms"),
    worst_ms = med_of(ts, "worst_ms"), rss_mb = med_of(ts, "rss_mb") } or nil
  local f = #fs > 0 and { ms = med_of(fs, "ms"), best_ms = med_of(fs, "best_ms"),
    worst_ms = med_of(fs, "worst_ms") } or nil
  if r then
    local ratio = #ratios > 0 and median(ratios) or 0 / 0
    local lo, hi = math.huge, 0
    for _, v in ipairs(ratios) do lo, hi = math.min(lo, v), math.max(hi, v) end
    print(string.format("%-8d %9.2f %9s %8s  %9s %10s  %9.0f %9s%s", threads, r.ms,
      t and string.format("%.2f", t.ms) or "-", ratio == ratio and string.format("%.2fx", ratio) or "-",
      f and string.format("%.2f", f.ms) or "-", f and string.format("%.2f", r.ms / f.ms) or "-",
      r.rss_mb, t and string.format("%.0f", t.rss_mb) or "-",
      #ratios > 1 and string.format("  (ratio %.2f-%.2f over %d rounds)", lo, hi, #ratios) or ""))
    summary[#summary + 1] = { threads = threads, ratio = ratio, rss = r.rss_mb, trss = t and t.rss_mb }
    rows.emit { bench = "word_lm", name = string.format("train step %dT", threads), value = r.ms,
      unit = "ms", better = "lower", ref = t and t.ms, ref_name = "pytorch", ratio = ratio,
      spread = { min = r.best_ms, median = r.ms, max = r.worst_ms }, rss_mb = r.rss_mb }
    if t then
      rows.emit { bench = "word_lm", name = string.format("train step %dT pytorch", threads),
        value = t.ms, unit = "ms", better = "lower", rss_mb = t.rss_mb,
        spread = { min = t.best_ms, median = t.ms, max = t.worst_ms } }
    end
  end
  if f then
    rows.emit { bench = "word_lm", name = string.format("readout GEMM floor %dT", threads),
      value = f.ms, unit = "ms", better = "lower",
      spread = { min = f.best_ms, median = f.ms, max = f.worst_ms } }
  end
end
if torch_ok then
  print("targets (speed ratio recur / PyTorch at least 2x; peak RSS below half of PyTorch's):")
  for _, s in ipairs(summary) do
    local speed_ok, rss_ok = s.ratio >= 2, s.trss and s.rss < s.trss / 2
    print(string.format("  train step %dT  %6.2fx  RSS %4.0f vs %4.0f MB  speed %s, RSS %s", s.threads,
      s.ratio, s.rss, s.trss or 0, speed_ok and "met" or "MISSED", rss_ok and "met" or "MISSED"))
  end
end
