-- Data benchmarks: time to load the full MNIST into tensors (target < 0.5 s), to build a
-- vocabulary for and encode 5 MB of text (target well under 1 s), and the padding per batch
-- of 256 Brown sentences with plain padding vs bucketing (target >= 4x less).
-- usage: lua5.4 bench/data.lua [--help]   (recur.so on LUA_CPATH; datasets from data/fetch,
-- under $RECUR_DATA or data/; a missing dataset is skipped with the command that fetches it)
if arg and (arg[1] == "--help" or arg[1] == "-h") then
  print("usage: lua5.4 bench/data.lua   (times MNIST loading, 5 MB text encoding, Brown padding)")
  return
end
local recur = require "recur"
local data = recur.data
local root = data.root()

-- wall-clock seconds (date's nanoseconds; os.clock is CPU time only)
local function wall()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

local function present(name, file)
  local f = io.open(root .. "/" .. name .. "/" .. file, "rb")
  if f then f:close() return true end
  return false
end

-- the best of n timings, and all of them
local function best_of(n, f)
  local best, all = math.huge, {}
  for k = 1, n do
    collectgarbage()
    local t0 = wall()
    f()
    local dt = wall() - t0
    all[k] = dt
    if dt < best then best = dt end
  end
  return best, all
end
local rows = require("bench.lib.rows")
local function row(name, best, all)
  rows.emit { bench = "data", name = name, value = best, unit = "s", better = "lower", samples = all }
end

-- MNIST
if present("mnist", "train-images-idx3-ubyte") then
  local train_only, all_train = best_of(3, function()
    local x = data.load_idx(root .. "/mnist/train-images-idx3-ubyte")
    local y = data.load_idx(root .. "/mnist/train-labels-idx1-ubyte")
    assert(x:size()[1] == 60000 and y:size()[1] == 60000)
  end)
  local all, all_all = best_of(3, function()
    local m = data.mnist { split = "55k" }
    assert(m.train.x:size()[1] == 55000)
  end)
  row("mnist load 60k", train_only, all_train)
  row("mnist{} 70k", all, all_all)
  print(string.format("mnist: load 60,000 training images + labels into tensors: %.3f s (target < 0.5 s: %s)",
    train_only, train_only < 0.5 and "met" or "MISSED"))
  print(string.format("mnist: recur.data.mnist{} (train, val, test, 70,000 images): %.3f s", all))
else
  print("mnist: not installed - skipped (run: data/fetch mnist)")
end
if present("fashion-mnist", "train-images-idx3-ubyte.gz") then
  local t = best_of(1, function() data.fashion_mnist { split = "60k" } end)
  print(string.format("fashion-mnist: load 70,000 gzipped images + labels: %.3f s", t))
end

-- 5 MB of text: the Shakespeare works if fetched, else a synthetic UTF-8 text
local text, source
if present("shakespeare", "shakespeare.txt") then
  text = data.read_text(root .. "/shakespeare/shakespeare.txt"):sub(1, 5 * 1024 * 1024)
  source = "shakespeare.txt"
else
  local words, parts = { "the", "caf\xc3\xa9", "na\xc3\xafve", "\xe2\x82\xac5", "river", "Stra\xc3\x9fe", "--", "\n" }, {}
  local n, i = 0, 0
  while n < 5 * 1024 * 1024 do
    i = i + 1
    local w = words[(i * 7919) % #words + 1] .. " "
    parts[i] = w
    n = n + #w
  end
  text = table.concat(parts):sub(1, 5 * 1024 * 1024)
  while utf8.len(text) == nil do text = text:sub(1, -2) end
  source = "synthetic UTF-8 (data/fetch shakespeare for real text)"
end
for _, mode in ipairs({ "byte", "utf8" }) do
  local v
  local tb, ab = best_of(3, function() v = data.Vocab.build(text, { mode = mode }) end)
  local ids
  local te, ae = best_of(3, function() ids = v:encode(text) end)
  local td, ad = best_of(3, function() assert(#v:decode(ids) == #text) end)
  local what = source == "shakespeare.txt" and "shakespeare" or "synthetic"
  row(string.format("text %s %s: build vocab", what, mode), tb, ab)
  row(string.format("text %s %s: encode", what, mode), te, ae)
  row(string.format("text %s %s: decode", what, mode), td, ad)
  print(string.format("text (%s, %.1f MB, %s): build vocab %.3f s, encode %.3f s (%.0f MB/s), decode %.3f s; %d symbols",
    mode, #text / 2 ^ 20, source, tb, te, #text / 2 ^ 20 / te, td, v:size()))
end

-- Brown: padding per batch of 256, padded vs bucketed
if present("brown", "cats.txt") then
  local t0 = wall()
  local g = data.brown_genres {}
  print(string.format("brown: brown_genres{} parsed %d sentences in %.2f s", g.train.n + g.val.n + g.test.n, wall() - t0))
  local function avg(it)
    local s, k = 0, 0
    local tt = wall()
    for _, _, _, info in it do s = s + info.padding; k = k + 1 end
    return s / k, k, wall() - tt
  end
  recur.seed(1)
  local p, kp, tp = avg(data.padded_batches(g.train, { batch = 256, epochs = 3 }))
  print(string.format("brown: padded batches of 256: %.0f padding tokens per batch (%d batches, %.3f s)", p, kp, tp))
  for _, nb in ipairs({ 5, 10, 20 }) do
    local b, kb, tb = avg(data.bucketed_batches(g.train, { batch = 256, num_buckets = nb, epochs = 3 }))
    print(string.format("brown: bucketed, %2d buckets%s: %.0f padding tokens per batch (%d batches, %.3f s): %.1fx less (target >= 4x%s)",
      nb, nb == 10 and " (default)" or "", b, kb, tb, p / b, nb == 10 and (p / b >= 4 and ": met" or ": MISSED") or ""))
  end
else
  print("brown: not installed - skipped (run: data/fetch brown)")
end
