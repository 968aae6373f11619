-- The layer wavefront (runtime/rnn_stack.c): a stack of fused cells (of any kind) whose
-- layers run on two threads, layer l's step t beside layer l+1's step t-1, forward and
-- backward, as one autograd node. recur._rnn_wave("on") forces it even with one BLAS thread (it still runs on
-- two threads: the helper), "off" forces the layer-by-layer path. Both give the same
-- numbers within float rounding (layers 2..'s input projections and the gradients they hand
-- down run per step on recur's packed kernel instead of one BLAS product: the same terms
-- summed in another order), so they are compared with a tolerance scaled to the values. At
-- one setting the wavefront is deterministic (each element is computed by one thread, in
-- one order), so two runs are compared bit for bit.
local recur = require("recur")
local rnn = require("recur.rnn")

local function max_abs(t) return t:abs():max():item() end

local U = require("tests.rnn_util")

-- every output, final state and gradient of one forward and backward of a fresh stack, with
-- the wavefront in o.mode and o.rows hand-over rows on the caller
local function run(o)
  local t = setmetatable({ set = function()
    local before, rows_before = recur._rnn_wave(o.mode), recur._rnn_wave_rows(o.rows or "auto")
    return function()
      recur._rnn_wave(before)
      recur._rnn_wave_rows(rows_before)
    end
  end }, { __index = o })
  return U.stack_results(t)
end

local assert_close = U.stack_close

local LENS = { 6, 2, 0, 5 }

describe("rnn wavefront", function()
  local cases = {
    { kind = "lstm" }, { kind = "lstm", lengths = LENS }, { kind = "lstm", L = 3 },
    { kind = "lstm", L = 3, lengths = LENS }, { kind = "lstm_peephole" },
    { kind = "lstm_peephole", lengths = LENS }, { kind = "gru" }, { kind = "gru", lengths = LENS },
    { kind = "gru", reset_after = true }, { kind = "gru", reset_after = true, lengths = LENS },
    { kind = "rnn" }, { kind = "rnn", lengths = LENS }, { kind = "rnn", L = 4 },
    { kind = "pseudo_lstm" }, { kind = "pseudo_lstm", lengths = LENS },
    { kind = "normalized_prototype" }, { kind = "normalized_prototype", lengths = LENS },
    { kind = "ln_lstm" }, { kind = "ln_lstm", L = 3, lengths = LENS },
    -- an odd batch (the producer's half is one row short) and a batch of 2 (one row each)
    { kind = "lstm", B = 5, lengths = { 6, 1, 6, 3, 0 } }, { kind = "gru", B = 2, T = 2 },
    -- large enough for the cells' own helper split outside the wavefront
    { kind = "lstm", H = 160, B = 32, I = 24, T = 4 },
  }
  for _, c in ipairs(cases) do
    local name = string.format("%s%s, %d layers, B = %d%s", c.kind,
      c.reset_after and " (reset_after)" or "", c.L or 2, c.B or 4,
      c.lengths and ", with lengths" or "")
    it(name .. ": the layer-by-layer results, every gradient", function()
      local o = setmetatable({ mode = "on" }, { __index = c })
      local wave = run(o)
      o.mode = "off"
      local plain = run(o)
      assert.are.equal("RNNStackBackward", wave.node)
      assert.are_not.equal("RNNStackBackward", plain.node)
      assert_close(wave, plain, 1e-5)
      o.mode = "on"
      local again = run(o)
      for i = 1, #wave.vals do
        assert.are.equal(0, max_abs(wave.vals[i] - again.vals[i]), wave.names[i] .. " (rerun)")
      end
    end)
  end

  it("by itself: with 2 threads at a size where it pays, not with 1, nor when small", function()
    local before = recur.threads()
    local function at(th, o)
      recur.threads(th)
      o.mode = "auto"
      local r = run(o)
      recur.threads(before)
      return r
    end
    -- T B H 4H = 8 * 16 * 64 * 256: 2^21 multiply-adds per layer (RN_WAVE_MIN is 2^19)
    local big = { kind = "lstm", T = 8, B = 16, H = 64, I = 8, lengths = { 8, 3, 0, 8, 8, 8, 1, 8,
      8, 8, 8, 5, 8, 8, 8, 8 } }
    local split = recur._rnn_split("off") -- the LSTM's batch split otherwise (rnn_split_spec)
    local one, two = at(1, big), at(2, big)
    recur._rnn_split(split)
    assert.are.equal("LSTMBackward", one.node)
    -- with 2 threads the wavefront (on the caller alone while the helper backs off)
    assert.are.equal("RNNStackBackward", two.node)
    assert_close(two, one, 1e-5)
    assert.are.equal("LSTMBackward", at(2, { kind = "lstm", T = 4, B = 4, H = 8 }).node)
  end)

  -- the rows of each handed-over step that the caller's thread computes (the rest: the
  -- helper's) follow the threads' speeds from one sequence to the next; each row is the same
  -- arithmetic on either thread, so no split may change a bit, backward included
  it("gives the same bits whichever thread computes which rows of a hand-over", function()
    local cases = { { kind = "lstm", B = 8 }, { kind = "gru", B = 5, lengths = { 6, 1, 6, 3, 0 } },
      { kind = "rnn", L = 3, B = 6 }, { kind = "ln_lstm", B = 4, lengths = LENS } }
    for _, c in ipairs(cases) do
      local base = run(setmetatable({ mode = "on", rows = c.B // 2 }, { __index = c }))
      assert.are.equal("RNNStackBackward", base.node)
      for _, rows in ipairs { 0, 1, c.B - 1, c.B, c.B + 3 } do
        local r = run(setmetatable({ mode = "on", rows = rows }, { __index = c }))
        for i = 1, #base.vals do
          assert.are.equal(0, max_abs(r.vals[i] - base.vals[i]),
            string.format("%s B = %d, %d rows on the caller: %s", c.kind, c.B, rows, base.names[i]))
        end
      end
    end
  end)

  -- while the helper backs off (another process holds a core) the layers run through the same
  -- hooks and products on the caller alone: a 2-thread run's numbers do not depend on the
  -- machine's load
  it("gives the same bits when its helper backs off, forward and backward (2 threads)", function()
    local before = recur.threads()
    recur.threads(2)
    local split = recur._rnn_split("off") -- the wavefront, not the batch split (rnn_split_spec)
    for _, kind in ipairs { "lstm", "gru", "rnn" } do
      local node, a = U.stack_bits(kind, 2, false)
      local node_off, b = U.stack_bits(kind, 2, true)
      assert.are.equal("RNNStackBackward", node)
      assert.are.equal("RNNStackBackward", node_off)
      for i = 1, #a do assert.are.equal(0, max_abs(a[i] - b[i]), kind .. ": value " .. i) end
    end
    recur._rnn_split(split)
    recur.threads(before)
  end)

  -- a backward whose helper backs off (another process holds a core; recur.rnn_helper(false)
  -- here) runs the same products on the caller alone, at one BLAS thread as with the helper:
  -- OpenBLAS's 2-thread result for the stack input's gradient ([1280 x 256] x [256 x 24],
  -- 24 columns: not recur's kernel) differs from its 1-thread one
  it("gives the same bits when the helper backs off in backward", function()
    local before = recur.threads()
    recur.threads(2)
    local function go(helper)
      recur.seed(5)
      local m = rnn.RNN { cell = "lstm", input = 24, hidden = 64, layers = 2 }
      local x = recur.randn(80, 32, 24):requires_grad(true)
      local wave = recur._rnn_wave("on")
      local y = m(x)
      recur._rnn_wave(wave)
      local loss = (y * recur.randn(80, 32, 64)):sum()
      local was = recur.rnn_helper(helper)
      loss:backward()
      recur.rnn_helper(was)
      local vals = { x.grad }
      for _, p in ipairs(m:parameters()) do vals[#vals + 1] = p.grad end
      return tostring(y.grad_fn), vals
    end
    local node, a = go(true)
    local _, b = go(false)
    recur.threads(before)
    assert.are.equal("RNNStackBackward", node)
    for i = 1, #a do assert.are.equal(0, max_abs(a[i] - b[i]), "gradient " .. i) end
  end)

  it("_rnn_wave_rows: a count or \"auto\", returns the previous setting, refuses others", function()
    local before = recur._rnn_wave_rows(3)
    assert.are.equal("auto", before)
    assert.are.equal(3, recur._rnn_wave_rows("auto"))
    assert.are.equal("auto", recur._rnn_wave_rows())
    for _, bad in ipairs { -1, 2.5, "half", true } do
      local ok, err = pcall(recur._rnn_wave_rows, bad)
      assert.is_false(ok)
      assert.matches("_rnn_wave_rows: argument #1 must be \"auto\" or an integer >= 0, got", err)
    end
    assert.are.equal("auto", recur._rnn_wave_rows())
  end)

  it("_helper_usable and _helper_back_off take no arguments; usable says no on one thread", function()
    local before = recur.threads()
    recur.threads(1)
    assert.is_false(recur._helper_usable())
    recur.threads(before)
    for _, name in ipairs { "_helper_usable", "_helper_back_off" } do
      local ok, err = pcall(recur[name], 1)
      assert.is_false(ok)
      assert.matches(name .. ": takes no arguments, got number as argument #1", err)
    end
  end)

  it("leaves the thread count as it found it (products inside run on one thread each)", function()
    local before = recur.threads()
    recur.threads(2)
    local r = run({ kind = "gru", T = 8, B = 16, H = 64, I = 8, mode = "on" })
    local after = recur.threads()
    recur.threads(before)
    assert.are.equal("RNNStackBackward", r.node)
    assert.are.equal(2, after)
  end)

  it("falls back to the layers one by one where it does not apply", function()
    local function node(o)
      o.mode = "on"
      return run(o).node
    end
    assert.are.equal("LSTMBackward", node { kind = "lstm", L = 1 })
    assert.are.equal("LSTMBackward", node { kind = "lstm", B = 1 })    -- products not packed
    assert.are.equal("LSTMBackward", node { kind = "lstm", T = 1 })
    assert.is_not_nil(node { kind = "lstm", connection = "residual" }:find("Add"))
    assert.are_not.equal("RNNStackBackward", node { kind = "lstm", dropout = 0.5 })
    assert.are.equal("RNNStackBackward", run { kind = "lstm", mode = "on" }.node)
  end)

  it("dropout in eval mode runs the wavefront", function()
    recur.seed(3)
    local m = rnn.RNN { cell = "gru", input = 3, hidden = 8, layers = 2, dropout = 0.3 }
    m:eval()
    local x = recur.randn(4, 3, 3)
    local before = recur._rnn_wave("on")
    local y = m(x)
    recur._rnn_wave("off")
    local y2 = m(x)
    recur._rnn_wave(before)
    assert.is_true(max_abs(y - y2) <= 1e-5 * max_abs(y2))
  end)

  it("passes gradcheck (inputs, states and parameters of both layers)", function()
    for _, kind in ipairs { "lstm", "gru", "rnn" } do
      recur.seed(21)
      local m = rnn.RNN { cell = kind, input = 2, hidden = 3, layers = 2 }
      local x = recur.randn(3, 2, 2):requires_grad(true)
      local ns = m.n_states
      local inputs = { x }
      for _ = 1, 2 * ns do inputs[#inputs + 1] = (recur.randn(2, 3) * 0.5):requires_grad(true) end
      for _, np in ipairs(m:named_parameters()) do inputs[#inputs + 1] = np[2] end
      local before = recur._rnn_wave("on")
      local y0 = m(x, { state = { { inputs[2] }, { inputs[2 + ns] } } })
      assert.are.equal("RNNStackBackward", tostring(y0.grad_fn))
      local ok, err = pcall(recur.gradcheck, function(xx, ...)
        local a = { ... }
        local st = { {}, {} }
        for k = 1, ns do st[1][k], st[2][k] = a[k], a[ns + k] end
        local y, fin = m(xx, { state = st, lengths = { 3, 2 } })
        local outs = { y }
        for l = 1, 2 do for k = 1, ns do outs[#outs + 1] = fin[l][k] end end
        return outs
      end, inputs)
      recur._rnn_wave(before)
      assert.is_true(ok, kind .. ": " .. tostring(err))
      assert.is_true(err, kind)
    end
  end)

  it("refuses bad input with the function, the argument and the shapes", function()
    local m = rnn.RNN { cell = "lstm", input = 5, hidden = 4, layers = 2 }
    local before = recur._rnn_wave("on")
    local ok, err = pcall(recur._rnn_stack_forward, m.cells, recur.randn(3, 2, 6))
    assert.is_false(ok)
    assert.matches("rnn stack forward: x must have shape %[T, B, 5%], got %[3, 2, 6%]", err)
    ok, err = pcall(recur._rnn_stack_forward, m.cells, recur.randn(3, 2, 5),
      { nil, { recur.randn(3, 4) } })
    assert.is_false(ok)
    assert.matches("initial state 1 %(h%) of layer 2 must have shape %[2, 4%], got %[3, 4%]", err)
    ok, err = pcall(recur._rnn_stack_forward, m.cells, recur.randn(3, 2))
    assert.is_false(ok)
    assert.matches("RNN forward: x must have shape %[T, B, 5%], got %[3, 2%]", err)
    ok, err = pcall(recur._rnn_stack_forward, { m.cells[1], 7 }, recur.randn(3, 2, 5))
    assert.is_false(ok)
    assert.matches("RNN forward: cells%[2%] must be an open rnn cell, got number", err)
    ok, err = pcall(recur._rnn_stack_forward, m.cells, recur.randn(3, 2, 5), nil, { 1, 9 })
    assert.is_false(ok)
    assert.matches("lengths%[2%] = 9 is outside %[0, 3%]", err)
    ok, err = pcall(recur._rnn_wave, "sometimes")
    assert.is_false(ok)
    assert.matches('_rnn_wave: argument #1 must be "auto", "on" or "off", got sometimes', err)
    -- the same cell twice cannot be a stack (one cell's workspaces serve one layer)
    assert.is_false(recur._rnn_stack_forward({ m.cells[2], m.cells[2] }, recur.randn(3, 2, 4)))
    recur._rnn_wave(before)
  end)

  it("says so when backward runs twice, and when a parameter changed in place", function()
    local m = rnn.RNN { cell = "rnn", input = 3, hidden = 4, layers = 2 }
    local before = recur._rnn_wave("on")
    local y = m(recur.randn(3, 2, 3))
    recur._rnn_wave(before)
    y:sum():backward()
    local ok, err = pcall(function() y:sum():backward() end)
    assert.is_false(ok)
    assert.matches("RNNStackBackward was already run", err)
    recur._rnn_wave("on")
    y = m(recur.randn(3, 2, 3))
    recur._rnn_wave(before)
    recur.no_grad(function() m.layer2.W_h:add_(1) end)
    ok, err = pcall(function() y:sum():backward() end)
    assert.is_false(ok)
    assert.matches("parameter W_h of layer 2 of RNNStackBackward was modified in place", err)
  end)
end)
