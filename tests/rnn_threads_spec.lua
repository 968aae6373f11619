-- The fused cells with more than one BLAS thread (recur.threads): the per-step products are
-- split with a helper thread (runtime/rnn_gemm.c) and the large ones go to OpenBLAS's threads.
-- recur's own split is exact: at one thread count, runs are bitwise equal (a race in the helper
-- would show), and so are the helper on and off (recur.rnn_helper). OpenBLAS's threaded GEMMs
-- sum in another order than its 1-thread ones (on Haswell and Zen kernels the edge tiles split
-- K into partial sums), so 1 against 2 threads is compared within a tolerance scaled to the
-- values.
local recur = require("recur")
local rnn = require("recur.rnn")

describe("fused cells with 2 threads", function()
  local before
  setup(function() before = recur.threads() end)
  teardown(function() recur.threads(before) end)
  -- with lengths: finished rows in both halves of the batch whose row passes the helper shares
  local cases = {
    { "lstm" }, { "lstm_peephole" }, { "gru" }, { "gru", nil, true }, { "rnn" }, { "pseudo_lstm" },
    { "ln_lstm" },
    { "lstm", { 4, 1, 3, 0, 2, 4, 4, 1, 3, 2, 4, 4, 4, 4, 4, 4, 4, 2, 1, 3, 4, 0, 4, 4, 4, 4, 3, 4,
      4, 4, 1, 4 } },
    { "gru", { 4, 4, 4, 0, 2, 4, 4, 1, 3, 2, 4, 4, 4, 4, 4, 4, 4, 2, 1, 3, 4, 0, 4, 4, 4, 4, 3, 4,
      4, 4, 1, 4 } },
  }
  -- outputs and every gradient of one forward and backward
  local function run(cell, x, lengths)
    x:zero_grad()
    for _, p in ipairs(cell:parameters()) do p[2]:zero_grad() end
    local y, fin = cell:forward(x, { lengths = lengths })
    local loss = (y * y):sum() + fin[1]:sum()
    loss:backward()
    local r = { y:clone(), x.grad:clone() }
    for _, p in ipairs(cell:parameters()) do r[#r + 1] = p[2].grad:clone() end
    return r
  end
  local function max_abs(t) return t:abs():max():item() end
  local function same_bits(a, b, what)
    for i = 1, #a do
      assert.are.equal(0, max_abs(a[i] - b[i]), what .. ": tensor " .. i)
    end
  end
  for _, case in ipairs(cases) do
    local kind, lengths, after = case[1], case[2], case[3]
    local name = kind .. (after and " (reset_after)" or "") .. (lengths and " with lengths" or "")
    it(name .. ": the same results with 1 and 2 threads, bitwise at one thread count", function()
      recur.seed(1)
      -- B * H * G H >= 2^20 multiply-adds per step: the helper thread takes half of each
      -- product; B * H >= 8192 (RN_ROWS_MIN): and half of the rows of the elementwise passes
      local cell = rnn.Cell { cell = kind, input = 48, hidden = 256, reset_after = after }
      local x = recur.randn(4, 32, 48):requires_grad(true)
      local res = {}
      for _, th in ipairs { 1, 2, 1, 2 } do
        recur.threads(th)
        res[#res + 1] = run(cell, x, lengths)
      end
      same_bits(res[1], res[3], "1 thread, twice")
      same_bits(res[2], res[4], "2 threads, twice")
      for i = 1, #res[1] do
        local scale = max_abs(res[1][i])
        local diff = max_abs(res[1][i] - res[2][i])
        assert.is_true(diff <= 1e-5 * scale,
          string.format("1 vs 2 threads: tensor %d differs by %g (max |value| %g)", i, diff, scale))
      end
      -- the helper's share alone: off and on at 2 threads, so OpenBLAS does the same sums
      local old = recur.rnn_helper(false)
      local off = run(cell, x, lengths)
      recur.rnn_helper(old)
      same_bits(res[2], off, "2 threads, helper on vs off")
    end)
  end
end)

-- Generation at batch 1 (recur._rnn_generate): with 2 threads a helper thread computes the
-- recurrent products (runtime/rnn_generate.c) with the same kernel as the caller, and OpenBLAS
-- (the readout) runs on one thread: the same seed gives the same characters and, bitwise, the
-- same state with 1 and 2 threads, at every size, and the thread count is restored after the
-- call. tests/rnn_generate_spec.lua checks every cell kind.
describe("generation with 2 threads", function()
  local CharRNN = require("models.charrnn")
  local before
  setup(function() before = recur.threads() end)
  teardown(function() recur.threads(before) end)
  for _, case in ipairs { { "lstm", 32 }, { "lstm", 128 }, { "gru", 256 }, { "lstm", 512 } } do
    local cell, H = case[1], case[2]
    it(string.format("%s H=%d: the same characters with 1 and 2 threads", cell, H), function()
      recur.seed(3)
      local m = CharRNN.new { vocab = 65, embed = 64, hidden = H, layers = 2, cell = cell }
      local ids = {}
      for _, th in ipairs { 1, 2, 1, 2 } do
        recur.threads(th)
        recur.seed(11)
        ids[#ids + 1] = m:sample { length = 600, prime = { 5, 9 } }
        assert.equal(th, recur.threads())
      end
      assert.equal(600, #ids[1])
      assert.same(ids[1], ids[3])
      assert.same(ids[1], ids[2])
      assert.same(ids[2], ids[4])
      -- and the same state, bitwise (the C loop's own: the readout's draws above, the cells here)
      local st = {}
      for _, th in ipairs { 1, 2 } do
        recur.threads(th)
        recur.seed(11)
        st[th] = select(2, recur._rnn_generate(m.rnn.cells, m.embed.weight, m.out.weight,
          m.out.bias, nil, { 5, 9 }, 200, 1, 0))
      end
      for l = 1, #st[1] do
        for k = 1, #st[1][l] do
          assert.equal(0, (st[1][l][k] - st[2][l][k]):abs():max():item(),
            string.format("layer %d state %d", l, k))
        end
      end
    end)
  end
end)
