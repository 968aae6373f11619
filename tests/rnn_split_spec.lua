-- The batch split (runtime/rnn_split.c): a stack of vanilla, LSTM or GRU cells whose batch is
-- split between two threads, each running every layer on its share of the rows in buffers of
-- its own; by itself for one layer with more than one BLAS thread. recur._rnn_split("on")
-- forces it for any number of layers, even with one BLAS thread (the caller then runs both
-- shares), "off" leaves the stack to the wavefront (one layer: layer by layer), and
-- recur._rnn_wave("off") to the layer-by-layer path, the reference here. Each row is the same
-- arithmetic as there; a parameter's gradient is the sum of the two shares' (rounding apart),
-- so results are compared with a tolerance scaled to the values. The split is fixed, so two
-- runs, and a run whose helper backs off, are compared bit for bit.
local recur = require("recur")
local rnn = require("recur.rnn")

local function max_abs(t) return t:abs():max():item() end

local U = require("tests.rnn_util")

-- every output, final state and gradient of one forward and backward of a fresh stack, with
-- the split in o.split ("on") and the wavefront in o.wave ("auto")
local function run(o)
  local t = setmetatable({ seed = o.seed or 3, set = function()
    local split, wave = recur._rnn_split(o.split or "on"), recur._rnn_wave(o.wave or "auto")
    return function()
      recur._rnn_split(split)
      recur._rnn_wave(wave)
    end
  end }, { __index = o })
  return U.stack_results(t)
end

local assert_close = U.stack_close

local function assert_same(a, b, what)
  assert.are.equal(#b.vals, #a.vals)
  for i = 1, #b.vals do
    assert.are.equal(0, max_abs(a.vals[i] - b.vals[i]), what .. ": " .. b.names[i])
  end
end

local LENS = { 6, 2, 0, 5 }

describe("rnn batch split", function()
  local cases = {
    { kind = "lstm" }, { kind = "lstm", lengths = LENS }, { kind = "lstm", L = 1 },
    { kind = "lstm", L = 3, lengths = LENS }, { kind = "gru" }, { kind = "gru", L = 1 },
    { kind = "gru", lengths = LENS }, { kind = "rnn" }, { kind = "rnn", L = 1, lengths = LENS },
    { kind = "rnn", L = 4 },
    -- an odd batch (share 1 a row longer), a batch of 2 (a row each), a share of 16 rows and
    -- one of 8 (B = 24: whole 8-row blocks), and a share whose sequences are all empty
    { kind = "lstm", B = 5, lengths = { 6, 1, 6, 3, 0 } }, { kind = "gru", B = 2, T = 2 },
    { kind = "rnn", B = 24, H = 40, I = 24, T = 5 },
    { kind = "lstm", B = 4, lengths = { 0, 0, 6, 3 } },
  }
  for _, c in ipairs(cases) do
    local name = string.format("%s, %d layer(s), B = %d%s", c.kind, c.L or 2, c.B or 4,
      c.lengths and ", with lengths" or "")
    it(name .. ": the layer-by-layer results, every gradient; the same bits twice", function()
      local o = setmetatable({}, { __index = c })
      local split = run(o)
      local again = run(o)
      o.wave = "off"
      local plain = run(o)
      assert.are.equal("RNNStackBackward", split.node)
      assert.are_not.equal("RNNStackBackward", plain.node)
      assert_close(split, plain, 1e-5)
      assert_same(split, again, "rerun")
    end)
  end

  it("is not taken by the cells whose recurrence sums over rows, nor when \"off\"", function()
    -- a peephole's gradient, GRU reset_after's b_hn: their stacks of two run as a wavefront,
    -- a layer alone layer by layer
    for _, c in ipairs { { kind = "lstm_peephole", L = 1 }, { kind = "gru", reset_after = true,
      L = 1 }, { kind = "ln_lstm", L = 1 }, { kind = "lstm", L = 1, split = "off" } } do
      local r = run(c)
      assert.are_not.equal("RNNStackBackward", r.node, c.kind)
    end
  end)

  it("runs by itself with 2 threads where it pays, one layer too", function()
    local before = recur.threads()
    recur.threads(2)
    local function node(o)
      recur.seed(1)
      local m = rnn.RNN { cell = o.kind, input = 8, hidden = o.H, layers = o.L }
      local x = recur.randn(8, o.B, 8):requires_grad(true)
      return tostring(m(x).grad_fn)
    end
    -- T B H P = 8 * 16 * 64 * 256: 2^21 multiply-adds a layer (RN_WAVE_MIN is 2^19)
    local big = node { kind = "lstm", H = 64, B = 16, L = 1 }
    local small = node { kind = "lstm", H = 8, B = 4, L = 1 }
    recur.threads(1)
    local one = node { kind = "lstm", H = 64, B = 16, L = 1 }
    recur.threads(before)
    assert.are.equal("RNNStackBackward", big)
    assert.are.equal("LSTMBackward", small)
    assert.are.equal("LSTMBackward", one)
  end)

  -- by itself for one layer; two layers or more run as the wavefront unless the split is
  -- forced (recur._profile counts the split's runs, with the helper or without)
  it("runs one layer (W_h up to 2 MB) by itself, two on the wavefront unless forced", function()
    local before = recur.threads()
    recur.threads(2)
    local function split_runs(L, H, split)
      recur.seed(1)
      local m = rnn.RNN { cell = "lstm", input = 8, hidden = H, layers = L }
      local x = recur.randn(4, 16, 8)
      local was = recur._rnn_split(split)
      recur._profile(true)
      local y = m(x)
      local p = recur._profile(false)
      recur._rnn_split(was)
      return tostring(y.grad_fn), p.split.forward
    end
    local node_one, one = split_runs(1, 64, "auto")
    local node_two, two = split_runs(2, 64, "auto")
    local node_forced, forced = split_runs(2, 64, "on")
    -- W_h over 2 MB (LSTM H = 400: 2.4 MB): one layer keeps its column split
    local node_wide, wide = split_runs(1, 400, "auto")
    recur.threads(before)
    assert.are.equal("RNNStackBackward", node_one)
    assert.are.equal(1, one)
    assert.are.equal("RNNStackBackward", node_two)
    assert.are.equal(0, two)
    assert.are.equal("RNNStackBackward", node_forced)
    assert.are.equal(1, forced)
    assert.are.equal("LSTMBackward", node_wide)
    assert.are.equal(0, wide)
  end)

  -- while the helper backs off (another process holds a core) the caller runs both shares the
  -- same way: a 2-thread run's numbers do not depend on the machine's load
  it("gives the same bits when its helper backs off (2 threads)", function()
    local before, split = recur.threads(), recur._rnn_split("on")
    recur.threads(2)
    for _, c in ipairs { { "lstm", 1 }, { "gru", 2 }, { "rnn", 1 } } do
      local node, a = U.stack_bits(c[1], c[2], false)
      local node_off, b = U.stack_bits(c[1], c[2], true)
      assert.are.equal("RNNStackBackward", node)
      assert.are.equal("RNNStackBackward", node_off)
      for i = 1, #a do assert.are.equal(0, max_abs(a[i] - b[i]), c[1] .. ": value " .. i) end
    end
    recur._rnn_split(split)
    recur.threads(before)
  end)

  it("refuses a backward after its input changed in place", function()
    local ok, err = pcall(run, { kind = "lstm",
      before_backward = function(x) recur.no_grad(function() x:add_(1) end) end })
    assert.is_false(ok)
    assert.matches("input of RNNStackBackward was modified", tostring(err), 1, true)
  end)

  it("_rnn_split: a mode, returns the previous one, refuses others", function()
    assert.are.equal("auto", recur._rnn_split("on"))
    assert.are.equal("on", recur._rnn_split("off"))
    assert.are.equal("off", recur._rnn_split("auto"))
    assert.are.equal("auto", recur._rnn_split())
    for _, bad in ipairs { "yes", 1, true } do
      local ok, err = pcall(recur._rnn_split, bad)
      assert.is_false(ok)
      assert.matches("_rnn_split: argument #1 must be \"auto\", \"on\" or \"off\"",
        tostring(err), 1, true)
    end
  end)
end)
