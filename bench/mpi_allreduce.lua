-- Times recur.mpi.allreduce (sum, in place) of n floats: the median of --reps calls per size,
-- after a warm-up, as rank 0 sees it. docs/distributed.md's measurements.
--   mpirun -np 2 build/recur bench/mpi_allreduce.lua [--sizes 1000,100000,...] [--reps 30]
local recur = require "recur"
local Args = require "scripts.args"
local opts = Args.parse(arg or {}, {
  name = "mpirun -np N recur bench/mpi_allreduce.lua",
  prog = "mpi_allreduce",
  about = "Times recur.mpi.allreduce of float tensors of several sizes (median of --reps calls).",
  { "sizes", "list", "1000,100000,1000000,3000000", "element counts, comma separated" },
  { "reps", "int", 30, "timed calls per size" },
})
local mpi = require "recur.mpi"
for s in tostring(opts.sizes):gmatch("[^,]+") do
  local n = math.tointeger(tonumber(s))
  local t = recur.ones(n)
  for _ = 1, 3 do mpi.allreduce(t) end
  local times = {}
  for i = 1, opts.reps do
    mpi.barrier()
    local t0 = recur.now()
    mpi.allreduce(t)
    times[i] = recur.now() - t0
  end
  table.sort(times)
  if mpi.rank() == 0 then
    local med = times[(#times + 1) // 2]
    print(string.format("ranks %d  floats %9d  bytes %10d  median %8.3f ms  min %8.3f ms  %7.1f MB/s (bytes / median)",
      mpi.size(), n, 4 * n, med * 1e3, times[1] * 1e3, 4 * n / med / 1e6))
    require("bench.lib.rows").emit { bench = "mpi_allreduce", name = string.format(
      "allreduce %d ranks %d floats", mpi.size(), n), value = med * 1e3, unit = "ms",
      better = "lower", spread = { min = times[1] * 1e3, median = med * 1e3, max = times[#times] * 1e3 } }
  end
end
