-- What the bench workers measure with (bench/charrnn.lua, bench/word_lm.lua): the process's
-- peak RSS, a median, and timed blocks of repeated calls.
local recur = require("recur")

local timing = {}

-- VmHWM of this process in MB (NaN where /proc is missing)
function timing.peak_rss_mb()
  local f = io.open("/proc/self/status")
  if not f then return 0 / 0 end
  local s = f:read("a")
  f:close()
  local kb = tonumber(s:match("VmHWM:%s*(%d+)"))
  return kb and kb / 1024 or 0 / 0
end

-- the CPU this process's main thread last ran on (field 39 of /proc/self/stat, counted after
-- the command name's closing parenthesis, which may itself hold spaces); nil without /proc
function timing.current_cpu()
  local f = io.open("/proc/self/stat")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local rest = s:match(".*%)%s+(.*)")
  if not rest then return nil end
  local i = 2 -- the field after the name is field 3
  for field in rest:gmatch("%S+") do
    i = i + 1
    if i == 39 then return math.tointeger(tonumber(field)) end
  end
  return nil
end

function timing.median(t)
  local s = table.move(t, 1, #t, 1, {})
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

-- the best (least) seconds of n calls of fn()
function timing.best(fn, n)
  local b = math.huge
  for _ = 1, n do
    local t0 = recur.now()
    fn()
    b = math.min(b, recur.now() - t0)
  end
  return b
end

-- fn() `warmup` times, then `nblocks` blocks of `per_block` calls: the median, best and worst
-- seconds per call over the blocks
function timing.blocks(fn, warmup, nblocks, per_block)
  for _ = 1, warmup do fn() end
  local times = {}
  for b = 1, nblocks do
    local t0 = recur.now()
    for _ = 1, per_block do fn() end
    times[b] = (recur.now() - t0) / per_block
  end
  local best, worst = math.huge, 0
  for _, v in ipairs(times) do best, worst = math.min(best, v), math.max(worst, v) end
  return timing.median(times), best, worst
end

return timing
