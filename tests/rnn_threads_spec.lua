-- The fused cells with more than one BLAS thread (recur.threads): the per-step products are
-- split with a helper thread (runtime/rnn_gemm.c) and the large ones go to OpenBLAS's
-- threads; outputs and every gradient equal the 1-thread run.
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
  for _, case in ipairs(cases) do
    local kind, lengths, after = case[1], case[2], case[3]
    local name = kind .. (after and " (reset_after)" or "") .. (lengths and " with lengths" or "")
    it(name .. ": the same outputs and gradients as with 1 thread", function()
      recur.seed(1)
      -- B * H * G H >= 2^20 multiply-adds per step: the helper thread takes half of each
      -- product; B * H >= 8192 (RN_ROWS_MIN): and half of the rows of the elementwise passes
      local cell = rnn.Cell { cell = kind, input = 48, hidden = 256, reset_after = after }
      local x = recur.randn(4, 32, 48):requires_grad(true)
      local res = {}
      for _, th in ipairs { 1, 2, 1, 2 } do
        recur.threads(th)
        x:zero_grad()
        for _, p in ipairs(cell:parameters()) do p[2]:zero_grad() end
        local y, fin = cell:forward(x, { lengths = lengths })
        local loss = (y * y):sum() + fin[1]:sum()
        loss:backward()
        local r = { y:clone(), x.grad:clone() }
        for _, p in ipairs(cell:parameters()) do r[#r + 1] = p[2].grad:clone() end
        res[#res + 1] = r
      end
      for k = 2, 4 do
        for i = 1, #res[1] do
          assert.are.equal(0, (res[1][i] - res[k][i]):abs():max():item(), "tensor " .. i)
        end
      end
    end)
  end
end)
