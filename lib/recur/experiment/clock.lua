-- recur.experiment.clock: wall-clock seconds for rates, ETAs and the wall time of a run.
-- os.clock() is CPU time (it runs ahead with BLAS threads) and os.time() whole seconds, so
-- read Linux's /proc/uptime (hundredths of a second, monotonic); elsewhere fall back to
-- os.time().
local clock = {}

function clock.now()
  local f = io.open("/proc/uptime")
  if f then
    local s = f:read("n")
    f:close()
    if s then return s end
  end
  return os.time()
end

return clock
