-- Lua-to-C overhead of a small op: `a + b` on 4-element tensors, in ns per call.
-- usage: lua5.4 bench/small_op.lua [iterations]   (with recur.so on LUA_CPATH)
if arg and (arg[1] == "--help" or arg[1] == "-h") then
  print("usage: lua5.4 bench/small_op.lua [iterations]   (recur.so on LUA_CPATH; or recur bench/small_op.lua)")
  print("Times `a + b` on 4-element tensors: the best of 5 loops of `iterations` calls (default 1e6).")
  return
end
local recur = require "recur"
local n = tonumber(arg and arg[1]) or 1000000
local a = recur.tensor{1, 2, 3, 4}
local b = recur.tensor{5, 6, 7, 8}
local best, ns = math.huge, {}
for k = 1, 5 do
  local t0 = os.clock()
  for _ = 1, n do local c = a + b end
  local dt = os.clock() - t0
  ns[k] = dt / n * 1e9
  if dt < best then best = dt end
end
print(string.format("recur small op (a + b, 4 floats): %.0f ns per call", best / n * 1e9))
require("bench.lib.rows").emit { bench = "small_op", name = "a + b, 4 floats", value = best / n * 1e9,
  unit = "ns", better = "lower", samples = ns }
