-- Tensor memory is visible to Lua's collector: loops that make big tensors do not grow
-- without bound, and nothing is needed from the user (no collectgarbage calls).
local recur = require "recur"

local function rss_mb()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local kb = s:match("VmRSS:%s*(%d+)")
  return kb and tonumber(kb) / 1024
end

describe("memory", function()
  it("100,000 tensors of 1 MB each stay under a few hundred MB of RSS", function()
    -- Under AddressSanitizer every allocation is quarantined and slower, so the sanitized
    -- run makes fewer tensors; the bound is the same.
    local n = os.getenv("RECUR_SANITIZED") and 5000 or 100000
    local base = rss_mb()
    local peak = base
    for i = 1, n do
      local t = recur.zeros(262144) -- 1 MiB of float32, every page written
      if i % 1000 == 0 then
        local r = rss_mb()
        if r > peak then peak = r end
      end
    end
    local grown = peak - base
    print(string.format("\n  %d x 1 MiB tensors: RSS grew by %.0f MB (base %.0f MB)", n, grown, base))
    assert.truthy(grown < 400, string.format("RSS grew by %.0f MB", grown))
  end)
  it("a training-like loop's garbage stays within 16 MB plus one step over its live tensors", function()
    -- 40 MB kept alive; each step makes about 4.5 MB of activations (with a tape) that are
    -- garbage once it ends. The incremental collector alone frees them too late (about 44 MB
    -- accumulated when a full collection waited for live memory to double); a full one now
    -- runs once live memory grows by max(16 MB, a quarter) over its lowest point
    -- (bindings/bind.c, report_memory)
    collectgarbage()
    local keep = {}
    for i = 1, 10 do keep[i] = recur.zeros(1048576) end -- 40 MiB
    local w = recur.randn(256, 256):requires_grad(true)
    local live0, peak = recur.memory().live, 0
    for _ = 1, 100 do
      local h, outs = recur.randn(512, 256), {}
      for k = 1, 4 do
        h = recur.matmul(h, w):tanh()
        outs[k] = h
      end
      h:sum():backward()
      w.grad = nil
      peak = math.max(peak, recur.memory().live - live0)
    end
    print(string.format("\n  40 MiB kept, ~4.5 MiB per step: live peaked %.1f MB above", peak / 2 ^ 20))
    assert.truthy(peak < 28 * 2 ^ 20, string.format("live peaked %.1f MB above the kept tensors", peak / 2 ^ 20))
    keep = nil
  end)
  it("live bytes return to the start after the tensors are collected", function()
    collectgarbage()
    local live0 = recur.memory().live
    do
      local ts = {}
      for i = 1, 10 do ts[i] = recur.zeros(1000) end
      assert.equal(live0 + 10 * 4000, recur.memory().live)
    end
    collectgarbage()
    collectgarbage()
    assert.equal(live0, recur.memory().live)
  end)
  it("rnn cells and optimizers left to the collector release their memory", function()
    -- their metatables have __gc before the first object gets them (anchors.md §5)
    collectgarbage()
    collectgarbage()
    local m0 = recur.memory()
    do
      local cell = recur.rnn.Cell { cell = "lstm", input = 64, hidden = 64 }
      local p = { recur.ones(100):requires_grad(true) }
      local opt = recur.optim.Adam(p, { lr = 1 })
      p[1].grad = recur.ones(100)
      opt:step()
      -- W_x and W_h [64, 256] and b [256]; the parameter, its gradient and Adam's two moments
      local bytes = 4 * (2 * 64 * 256 + 256) + 4 * 4 * 100
      assert.equal(m0.live + bytes, recur.memory().live)
      assert.truthy(recur.memory().runtime > m0.runtime) -- the cell and optimizer records
      assert.truthy(cell and opt)
    end
    collectgarbage()
    collectgarbage()
    assert.equal(m0.live, recur.memory().live)
    assert.equal(m0.runtime, recur.memory().runtime)
  end)
  it("the autograd tape is released with the tensors that hold it", function()
    collectgarbage()
    local live0 = recur.memory().live
    do
      local x = recur.ones(1000):requires_grad(true)
      local y = x
      for _ = 1, 50 do y = (y * 1.0001):tanh() end
      y:backward(recur.ones(1000))
    end
    collectgarbage()
    collectgarbage()
    assert.equal(live0, recur.memory().live)
  end)

  it("a freed large block reused from the cache holds what its new tensor says", function()
    -- 8 MB blocks are kept for reuse when freed (runtime/tensor.c): a reused one must be
    -- zeroed by zeros, filled by full, and its old values never show
    for _ = 1, 3 do
      local a = recur.full({ 1024, 2048 }, 7)
      a:close()
      local z = recur.zeros(1024, 2048)
      assert.equal(0, z:abs():sum():item())
      z:close()
      local f = recur.full({ 1000, 2048 }, -2)
      assert.equal(-2 * 1000 * 2048, f:sum():item())
      f:close()
    end
    collectgarbage()
    collectgarbage()
  end)
end)
