-- A cell written in Lua against the fused one, and against the same cell written in Python
-- for PyTorch: the LSTM of scripts/posts/rnn2.lua's static unroll (z = x W_x + h W_h + b,
-- four gate blocks narrowed out of z, sigmoid and tanh, c' = f c + i g, h' = o tanh(c')),
-- forward and backward over one window of T steps, batch B. recur's Lua cell (rnn.LuaCell,
-- stepped by rnn.unroll) and its fused "lstm" cell alternate in one process (the median of
-- best-of-3 windows over the rounds, and of their ratio); bench/lua_cell_torch.py times the
-- Python cell and nn.LSTM in its own process. What a researcher pays for scripting a cell
-- instead of using a fused one, here and in PyTorch.
-- Options: --help (scripts/args.lua).
local recur = require("recur")
local rnn = recur.rnn
local Args = require("scripts.args")
local rows = require("bench.lib.rows")

local opts = Args.parse(arg, {
  name = "lua5.4 bench/lua_cell.lua",
  about = "An LSTM cell written in Lua against the fused cell and against PyTorch's Python cell.",
  { "rounds", "int", 5, "alternated rounds, best of 3 windows each" },
  { "steps", "int", 50, "steps a window (T)" },
  { "batch", "int", 32, "batch (B)" },
  { "hidden", "int", 100, "units, also the input size" },
  { "threads", "int", 1, "BLAS threads" },
  { "no-torch", "flag", false, "skip PyTorch (bench/lua_cell_torch.py)" },
})
for _, k in ipairs { "rounds", "steps", "batch", "hidden", "threads" } do
  if opts[k] < 1 then Args.die("lua_cell: --" .. k .. " must be at least 1, got " .. opts[k]) end
end
local T, B, H = opts.steps, opts.batch, opts.hidden
recur.threads(opts.threads)

-- the post's cell in Lua (the static unroll of scripts/posts/rnn2.lua), the fused cell's
-- parameter names
local lua_lstm = require "examples.cells.lstm"

recur.seed(1)
local fused = rnn.Cell { cell = "lstm", input = H, hidden = H }
local fp = {}
for _, np in ipairs(fused:parameters()) do fp[np[1]] = np[2] end
local scripted = rnn.LuaCell(lua_lstm, { input = H, hidden = H, params = fp }) -- the same weights
local x = recur.randn(T, B, H)

local function window(cell)
  return function()
    for _, t in pairs(fp) do t.grad = nil end
    cell:forward(x):sum():backward()
  end
end
local runs = { lua = window(scripted), fused = window(fused) }
local function best(f) return require("bench.lib.timing").best(f, 3) end
-- warm-up: workspaces, the collector's first cycles over the graphs
for _ = 1, 2 do
  best(runs.lua)
  best(runs.fused)
end
local tl, tf, r = {}, {}, {}
for k = 1, opts.rounds do
  if k % 2 == 1 then
    tl[k], tf[k] = best(runs.lua), best(runs.fused)
  else
    tf[k], tl[k] = best(runs.fused), best(runs.lua)
  end
  r[k] = tl[k] / tf[k]
end
local sl, sf, sr = rows.spread(tl), rows.spread(tf), rows.spread(r)
print(rows.describe())
print(string.format("LSTM cell written in Lua vs fused: input = hidden = %d, batch %d, %d steps, "
  .. "forward + backward, %d thread(s), %d rounds", H, B, T, opts.threads, opts.rounds))
print(string.format("  recur Lua cell %.2f ms, fused %.2f ms a window; Lua / fused %.2f (%.2f-%.2f)",
  sl.median * 1e3, sf.median * 1e3, sr.median, sr.min, sr.max))
local function ms(t)
  local o = {}
  for k, v in ipairs(t) do o[k] = v * 1e3 end
  return o
end
local tag = string.format("lstm H=%d B=%d T=%d %dT", H, B, T, opts.threads)
rows.emit { bench = "lua_cell", name = "fused " .. tag, value = sf.median * 1e3, unit = "ms",
  better = "lower", samples = ms(tf) }
rows.emit { bench = "lua_cell", name = "Lua cell " .. tag, value = sl.median * 1e3, unit = "ms",
  better = "lower", ref = sf.median * 1e3, ref_name = "fused", ratio = sr.median, samples = ms(tl) }
if not opts.no_torch then
  local p = io.popen(string.format("/usr/bin/python3 bench/lua_cell_torch.py %d %d %d %d %d 2>&1",
    opts.rounds, T, B, H, opts.threads))
  local out = p and p:read("a") or ""
  if p then p:close() end
  local py, lstm = tonumber(out:match("python cell ([%d%.]+) ms")), tonumber(out:match("nn.LSTM ([%d%.]+) ms"))
  if py and lstm then
    print(string.format("  pytorch Python cell %.2f ms, nn.LSTM %.2f ms a window (its own process); "
      .. "Python / nn.LSTM %.2f", py, lstm, py / lstm))
    print(string.format("  recur's Lua cell runs at %.2fx the speed of PyTorch's Python cell",
      py / (sl.median * 1e3)))
    rows.emit { bench = "lua_cell", name = "pytorch Python cell " .. tag, value = py, unit = "ms",
      better = "lower" }
    rows.emit { bench = "lua_cell", name = "pytorch nn.LSTM " .. tag, value = lstm, unit = "ms",
      better = "lower" }
  else
    print("  pytorch: not available (" .. out:gsub("\n", " ") .. ")")
  end
end
