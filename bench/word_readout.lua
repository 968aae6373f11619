-- The word model's readout loss (truncated-backprop post: vocabulary 10,000, RNN 100, batch 32
-- x 20 steps = 640 rows): forward + backward of cross_entropy(linear(h)) against the fused
-- nn.linear_cross_entropy, interleaved in one process; prints each one's median and the
-- ratio's median and range. With --torch, also runs bench/word_readout_torch.py (PyTorch's
-- F.cross_entropy(F.linear(h)), the same sizes) and prints recur fused / PyTorch.
-- Options: --help (scripts/args.lua).
local recur = require("recur")
local nn = require("recur.nn")

local opts = require("scripts.args").parse(arg, {
  name = "lua5.4 bench/word_readout.lua",
  about = "The word model's readout: cross_entropy(linear(h)) against nn.linear_cross_entropy.",
  { "rounds", "int", 9, "interleaved rounds, best of 3 calls each" },
  { "threads", "int", 1, "BLAS threads" },
  { "torch", "flag", false, "also time PyTorch's unfused readout (/usr/bin/python3)" },
})
for _, k in ipairs({ "rounds", "threads" }) do
  if opts[k] < 1 then require("scripts.args").die("word_readout: --" .. k .. " must be at least 1, got " .. opts[k]) end
end
local rounds, threads, torch = opts.rounds, opts.threads, opts.torch
recur.threads(threads)

local R, D, V = 640, 100, 10000
recur.seed(1)
local h = recur.randn(R, D):requires_grad(true)
local lin = nn.Linear(D, V)
local y = recur.floor(recur.rand(R) * V) + 1

local function unfused() nn.cross_entropy(lin(h), y):backward() end
local function fused() nn.linear_cross_entropy(h, lin.weight, lin.bias, y):backward() end
local function best(f)
  local b = math.huge
  for _ = 1, 3 do
    h.grad, lin.weight.grad, lin.bias.grad = nil, nil, nil
    local t0 = recur.now()
    f()
    b = math.min(b, recur.now() - t0)
  end
  return b
end
best(unfused)
best(fused)
local tu, tf, r = {}, {}, {}
for k = 1, rounds do
  tu[k], tf[k] = best(unfused), best(fused)
  r[k] = tf[k] / tu[k]
end
local function median(t)
  local s = { table.unpack(t) }
  table.sort(s)
  return s[(#s + 1) // 2], s[1], s[#s]
end
local mu, mf = median(tu), median(tf)
local mr, lo, hi = median(r)
print(string.format("word readout [%d x %d] -> %d classes, fwd+bwd, %d thread(s), %d rounds:", R, D,
  V, threads, rounds))
print(string.format("  recur unfused %.2f ms, fused %.2f ms; fused / unfused %.2f (%.2f-%.2f)",
  mu * 1e3, mf * 1e3, mr, lo, hi))
local rows = require("bench.lib.rows")
local function ms(t)
  local o = {}
  for k, v in ipairs(t) do o[k] = v * 1e3 end
  return o
end
rows.emit { bench = "word_readout", name = string.format("unfused %dT", threads), value = mu * 1e3,
  unit = "ms", better = "lower", samples = ms(tu) }
rows.emit { bench = "word_readout", name = string.format("fused %dT", threads), value = mf * 1e3,
  unit = "ms", better = "lower", ref = mu * 1e3, ref_name = "unfused", ratio = mr, samples = ms(tf) }
if torch then
  local p = io.popen(string.format("/usr/bin/python3 bench/word_readout_torch.py %d %d", rounds, threads))
  local out = p and p:read("a") or ""
  if p then p:close() end
  local ms = tonumber(out:match("([%d%.]+) ms"))
  if ms then
    print(string.format("  pytorch unfused %.2f ms (median, its own process); recur fused speed %.2fx PyTorch's",
      ms, ms / (mf * 1e3)))
  else
    print("  pytorch: not available (" .. out:gsub("\n", " ") .. ")")
  end
end
