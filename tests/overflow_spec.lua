-- Integer arguments at the ends of int64 give the right result or an error that names the
-- function (issue 9, hole 6). The sweep over every function is tests/overflow_sweep.lua, run
-- by the C test test_overflow under a memory limit; these are the cases it found, checked for
-- their results and messages.
local recur = require "recur"
local H = require "tests.helpers"
local err_of, has = H.err_of, H.has

local MAX, MIN = math.maxinteger, math.mininteger

describe("integer arguments at the ends of int64", function()
  it("split by a size larger than the tensor gives the tensor whole", function()
    for _, size in ipairs { MAX, MAX - 1, 1 << 62, 1 << 40, 6 } do
      local parts = recur.tensor { 1, 2, 3, 4, 5 }:split(size)
      assert.equal(1, #parts, tostring(size))
      assert.same({ 1, 2, 3, 4, 5 }, parts[1]:totable())
    end
    assert.equal(1, #recur.zeros(0):split(MAX))
    has(err_of(function() recur.zeros(5):split(MIN) end), "split: argument #2 (size) must be positive")
  end)

  it("diag with a huge offset is refused without a negative size", function()
    for _, k in ipairs { MAX, MIN, 1 << 62, -(1 << 62), 1 << 40, -(1 << 40) } do
      local e = err_of(function() recur.randn(5):diag(k) end)
      has(e, "diag: offset " .. k .. " is too large")
      assert.is_nil(e:find("x %-"), e)
    end
    assert.same({ 5, 5 }, recur.randn(5):diag(0):size())
    assert.same({ 7, 7 }, recur.randn(5):diag(-2):size())
    -- extraction clamps: an offset beyond the matrix is an empty diagonal
    assert.same({ 0 }, recur.ones(3, 4):diag(MAX):size())
    assert.same({ 0 }, recur.ones(3, 4):diag(MIN):size())
  end)

  it("one_hot's out-of-range message with maxinteger classes", function()
    local e = err_of(function() recur.one_hot(recur.tensor { 0 }, MAX) end)
    has(e, "one_hot: index 0 at position [1] is out of range for " .. MAX .. " classes (valid: 1.." .. MAX .. ")")
    has(err_of(function() recur.one_hot(recur.tensor { 1 }, MAX) end), "one_hot: " .. MAX .. " classes is too many")
  end)

  it("optimizer steps and epochs are bounded where they are counted up", function()
    local opt = recur.optim.Adam({ recur.ones(2):requires_grad(true) }, { lr = 0.1 })
    has(err_of(function() opt:set_epoch(MAX) end), "set_epoch: the epoch must be an integer in 0..2^53, got " .. MAX)
    opt:set_epoch(1 << 53)
    assert.equal((1 << 53) + 1, opt:next_epoch())
    local st = opt:state()
    st.step = MAX
    has(err_of(function() opt:load_state(st) end), "load_state: state.step must be an integer in 0..2^53")
    st.step, st.epoch, st.params[1].step = 3, 0, MAX
    has(err_of(function() opt:load_state(st) end), "load_state: params[1].step must be an integer in 0..2^53")
  end)

  it("generate refuses a length whose buffer size would wrap", function()
    local layer = recur.rnn.RNN { cell = "lstm", input = 3, hidden = 4 }
    local embed, W = recur.randn(5, 3), recur.randn(5, 4)
    for _, n in ipairs { 1 << 61, 1 << 62, MAX, (1 << 40) + 1 } do
      has(err_of(function() recur._rnn_generate(layer.cells, embed, W, nil, nil, { 1 }, n) end),
        "generate: length must be at most 2^40, got " .. n)
    end
    for _, id in ipairs { MIN, -1, 0 } do
      has(err_of(function() recur._rnn_generate(layer.cells, embed, W, nil, nil, { 2, id }, 3) end),
        "generate: prime[2] = " .. id .. " is not an id (ids start at 1)")
    end
    has(err_of(function() recur._rnn_generate(layer.cells, embed, W, nil, nil, { MAX }, 3) end), "generate: ")
    assert.equal(3, #recur._rnn_generate(layer.cells, embed, W, nil, nil, { 1 }, 3))
  end)
end)
