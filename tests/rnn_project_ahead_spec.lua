-- A fused cell run layer by layer projects x W_x + b a few steps ahead of the steps that read
-- it when the whole sequence's would not stay in the cache (runtime/rnn_common.c,
-- rn_project_ahead); recur._rnn_project_ahead("off") projects all of it before the first step.
-- Both give the same numbers: each row of the projection is the same sum whichever product
-- it is in, so on recur's own kernel they are compared bit for bit, and with a tolerance scaled
-- to the values where OpenBLAS computes the products (its kernels may sum a row differently in
-- products of other shapes).
local recur = require("recur")
local rnn = require("recur.rnn")

local T, B, I, H = 80, 32, 24, 64 -- every cell's pre (T B x gates H floats) is over 512 KB

-- the first layer's projection products of one forward (n = gates H, k = I) and every output,
-- final state and gradient of a forward and backward of a fresh stack of c.L layers (1 by
-- default; c.wave: as the layer wavefront on two threads)
local function run(c, mode)
  recur.seed(11)
  local L = c.L or 1
  local m = rnn.RNN { cell = c.kind, input = I, hidden = H, layers = L,
    reset_after = c.reset_after }
  local x = recur.randn(T, B, I):requires_grad(true)
  local before = recur._rnn_project_ahead(mode)
  local wave = recur._rnn_wave(c.wave and "on" or "off")
  recur._gemm_trace(true)
  local y, fin = m(x, { lengths = c.lengths })
  local calls = recur._gemm_trace(false)
  recur._rnn_project_ahead(before)
  recur._rnn_wave(wave)
  local loss = (y * recur.randn(T, B, H)):sum()
  for l = 1, L do
    for k = 1, #fin[l] do loss = loss + (fin[l][k] * recur.randn(B, H)):sum() end
  end
  loss:backward()
  local proj = {}
  for _, call in ipairs(calls) do
    if call.op == "gemm" and call.k == I and call.n % H == 0 and call.n >= H then
      proj[#proj + 1] = { m = call.m, n = call.n }
    end
  end
  local vals = { y, x.grad }
  for l = 1, L do
    for k = 1, #fin[l] do vals[#vals + 1] = fin[l][k] end
  end
  for _, p in ipairs(m:parameters()) do vals[#vals + 1] = p.grad end
  return proj, vals
end

local function lengths()
  local l = {}
  for b = 1, B do l[b] = T - (b * 7) % 31 end
  return l
end

describe("the input projection ahead of the steps", function()
  local cases = {
    { kind = "lstm" }, { kind = "lstm", lengths = lengths() }, { kind = "lstm_peephole" },
    { kind = "gru" }, { kind = "gru", reset_after = true }, { kind = "rnn" },
    { kind = "rnn", lengths = lengths() }, { kind = "pseudo_lstm" },
    { kind = "normalized_prototype" }, { kind = "ln_lstm" },
    -- the wavefront's first layer (its second projects each step as the first hands it over;
    -- the first projects ahead on the caller in pieces of two steps, whatever the cell)
    { kind = "lstm", L = 2, wave = true }, { kind = "lstm", L = 2, wave = true,
      lengths = lengths() }, { kind = "gru", L = 2, wave = true },
    { kind = "rnn", L = 2, wave = true },
  }
  for _, c in ipairs(cases) do
    local name = c.kind .. (c.reset_after and " (reset after)" or "")
      .. (c.lengths and ", with lengths" or "") .. (c.wave and ", 2 layers as a wavefront" or "")
    it(name .. ": in several products, the same numbers as in one", function()
      local whole, a = run(c, "off")
      local ahead, b = run(c, "auto")
      local rows = 0
      for _, p in ipairs(whole) do rows = rows + p.m end
      assert.are.equal(T * B, rows)
      -- one product, or the wavefront's two halves on its two threads
      assert.are.equal(c.wave and 2 or 1, #whole)
      assert.is_true(#ahead > #whole, #ahead .. " projection products")
      local own = recur._gemm_route(whole[1].m, whole[1].n, I) ~= "blas"
      rows = 0
      for _, p in ipairs(ahead) do
        rows = rows + p.m
        own = own and recur._gemm_route(p.m, p.n, I) ~= "blas"
        if c.wave then assert.are.equal(2 * B, p.m, "a piece of the wavefront's projection") end
      end
      assert.are.equal(T * B, rows)
      for i = 1, #a do
        local d = (a[i] - b[i]):abs():max():item()
        if own then
          assert.are.equal(0, d, "value " .. i .. " differs by " .. d)
        else
          local scale = math.max(1, a[i]:abs():max():item())
          assert.is_true(d <= 1e-5 * scale, "value " .. i .. " differs by " .. d)
        end
      end
    end)
  end

  it("_rnn_project_ahead names its argument when it is not a mode", function()
    assert.has_error(function() recur._rnn_project_ahead("sometimes") end,
      "_rnn_project_ahead: argument #1 must be \"auto\" or \"off\", got sometimes")
    assert.has_error(function() recur._rnn_project_ahead(3) end,
      "_rnn_project_ahead: argument #1 must be \"auto\" or \"off\", got number")
    assert.are.equal("auto", recur._rnn_project_ahead())
  end)
end)
