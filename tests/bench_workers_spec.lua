-- bench/charrnn.lua's workers that compute recur's own figures (issue 15): the per-CPU step
-- (mode=cpu), the 2-thread against 1-thread step and sampling measured in one process
-- (mode=threads, mode=sample_threads),
-- on a tiny model so that they run in a second. Checks that each prints one RESULT line with
-- positive times; nothing is asserted about speed.
require("recur")
local H = require("tests.helpers")
local sh = H.sh

local bin = os.getenv("RECUR_BIN") or "build/recur"

local function result(mode)
  local out = sh(string.format("OPENBLAS_NUM_THREADS=2 %s bench/charrnn.lua --worker mode=%s "
    .. "cell=rnn hidden=8 blocks=2 steps=1 warmup=1 2>&1", bin, mode))
  local line = out:match("RESULT[^\n]*")
  assert.is_truthy(line, out)
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
  return r
end

describe("bench/charrnn.lua workers", function()
  it("mode=threads times 1-thread and 2-thread steps in one process", function()
    local r = result("threads")
    assert.are.equal("threads", r.mode)
    assert.is_true(r.ms_1t > 0 and r.ms_2t > 0)
    -- the CPU each of the 2 one-thread blocks ended on
    assert.is_truthy(tostring(r.cpus_1t):match("^%d+,%d+$"), tostring(r.cpus_1t))
  end)

  it("timing.current_cpu is the CPU the process runs on", function()
    local timing = require("bench.lib.timing")
    local cpu = timing.current_cpu()
    local n = tonumber((H.sh("nproc"):match("%d+")))
    assert.is_true(math.type(cpu) == "integer" and cpu >= 0 and cpu < n, tostring(cpu))
    if os.execute("command -v taskset >/dev/null 2>&1") and n > 1 then
      local out = H.sh(string.format("taskset -c %d %s -e 'package.path = \"./?.lua;\" .. "
        .. "package.path; print(require(\"bench.lib.timing\").current_cpu())'", n - 1, bin))
      assert.are.equal(tostring(n - 1), out:match("%d+"), out)
    end
  end)

  it("mode=sample_threads gives the median 2T / 1T sampling ratio and its range", function()
    local out = sh(string.format("OPENBLAS_NUM_THREADS=2 %s bench/charrnn.lua --worker "
      .. "mode=sample_threads hidden=8 chars=20 blocks=3 2>&1", bin))
    local r = {}
    for k, v in (out:match("RESULT[^\n]*") or ""):gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
    assert.are.equal("sample_threads", r.mode, out)
    assert.is_true(r.lo > 0 and r.lo <= r.ratio and r.ratio <= r.hi)
  end)

  it("mode=cpu times 1-thread steps only", function()
    local r = result("cpu")
    assert.are.equal("cpu", r.mode)
    assert.is_true(r.ms_1t > 0)
    assert.is_truthy(tostring(r.ms_2t):match("nan"))
  end)
end)
