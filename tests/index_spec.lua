-- Joining, splitting and indexing: cat, stack, split, chunk, gather, index_select,
-- scatter_add, masked_fill, one_hot. Reference values are hand-worked or pasted from
-- PyTorch 1.13 (torch is 0-based: every index below is torch's + 1).
local recur = require("recur")

local function same(a, b, tol)
  tol = tol or 1e-6
  if type(a) == "number" and type(b) == "number" then return math.abs(a - b) <= tol end
  if type(a) ~= "table" or type(b) ~= "table" or #a ~= #b then return false end
  for i = 1, #a do
    if not same(a[i], b[i], tol) then return false end
  end
  return true
end

local function assert_values(t, expected, tol)
  local got = t:totable()
  assert(same(got, expected, tol),
    "values differ:\n got      " .. tostring(t) .. "\n expected " .. tostring(recur.tensor(expected)))
end

local function assert_shape(t, shape)
  assert.are.same(shape, t:size())
end

-- fails unless fn raises an error whose message contains every string given (plain find)
local assert_error = require("tests.helpers").fails_with

-- deterministic pseudo-random nested tables (values in [-2, 2], never near 0)
local seed = 42
local function rnd()
  seed = (seed * 1103515245 + 12345) % 2147483648
  local v = seed / 2147483648 * 3.6 - 1.8
  return v + (v >= 0 and 0.2 or -0.2)
end
local function rtable(shape, d)
  d = d or 1
  local t = {}
  for i = 1, shape[d] do t[i] = d == #shape and rnd() or rtable(shape, d + 1) end
  return t
end
local function param(shape)
  return recur.tensor(rtable(shape)):requires_grad(true)
end

describe("cat", function()
  local a = recur.tensor({ { 1, 2 }, { 3, 4 } })
  it("joins along dim 1 by default and along other dims", function()
    local c = recur.cat({ a, recur.tensor({ { 5, 6 } }) })
    assert_values(c, { { 1, 2 }, { 3, 4 }, { 5, 6 } })
    local b = recur.tensor({ { 7 }, { 8 } })
    assert_values(recur.cat({ a, b }, 2), { { 1, 2, 7 }, { 3, 4, 8 } })
    assert_values(recur.cat({ b, a, b }, -1), { { 7, 1, 2, 7 }, { 8, 3, 4, 8 } })
    assert_shape(recur.cat({ a }, 1), { 2, 2 })
  end)
  it("handles empty pieces and non-contiguous inputs", function()
    local e = recur.zeros(0, 2)
    assert_values(recur.cat({ e, a, e }), { { 1, 2 }, { 3, 4 } })
    local parts = recur.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }):split(1, 2) -- strided views
    assert_values(recur.cat({ parts[3], parts[1] }, 2), { { 3, 1 }, { 6, 4 } })
  end)
  it("does not modify its inputs and copies (no sharing)", function()
    local c = recur.cat({ a, a })
    recur.no_grad(function() c:set(100, 1, 1) end)
    assert_values(a, { { 1, 2 }, { 3, 4 } })
  end)
  it("has the right gradients", function()
    assert(recur.gradcheck(function(x, y, z) return recur.cat({ x, y, z }, 2) end,
      { param({ 2, 3 }), param({ 2, 1 }), param({ 2, 2 }) }))
    assert(recur.gradcheck(function(x, y) return recur.cat({ y, x, y }, -3) end,
      { param({ 1, 2, 3 }), param({ 2, 2, 3 }) }))
  end)
  it("gives gradient slices of g only to inputs that need them", function()
    local x = recur.tensor({ 1, 2 }):requires_grad(true)
    local y = recur.tensor({ 3, 4, 5 })
    local c = recur.cat({ y, x })
    assert.are.equal("CatBackward", c.grad_fn)
    c:backward(recur.tensor({ 10, 20, 30, 40, 50 }))
    assert_values(x.grad, { 40, 50 })
    assert.is_nil(y.grad)
  end)
  it("records nothing without grad", function()
    local x = recur.tensor({ 1 }):requires_grad(true)
    assert.is_nil(recur.cat({ a:detach(), a }).grad_fn)
    recur.no_grad(function() assert.is_nil(recur.cat({ x, x }).grad_fn) end)
  end)
  it("rejects bad input", function()
    assert_error(function() recur.cat({ a, recur.zeros(2, 3) }) end,
      "cat: tensor 2 has shape [2, 3] but tensor 1 has shape [2, 2]", "dimension 1")
    assert_error(function() recur.cat({ a, recur.zeros(2, 2, 1) }, 2) end, "cat: tensor 2",
      "[2, 2, 1]")
    assert_error(function() recur.cat({}) end, "cat: the list of tensors is empty")
    assert_error(function() recur.cat(a) end, "cat: argument #1 must be a list of tensors")
    assert_error(function() recur.cat({ a, 3 }) end, "cat: element 2 of the list must be a tensor",
      "number")
    assert_error(function() recur.cat({ a, "x" }) end, "cat: element 2", "string")
    assert_error(function() recur.cat({ a, a }, 3) end, "cat: dimension 3 is out of range")
    assert_error(function() recur.cat({ a, a }, 0) end, "cat: dimension 0 is out of range")
    assert_error(function() recur.cat({ a, a }, 1.5) end, "cat: argument #2 must be an integer")
    assert_error(function() recur.cat({ recur.tensor(1), recur.tensor(2) }) end, "cat:", "0-d")
    local closed = recur.zeros(2, 2)
    closed:close()
    assert_error(function() recur.cat({ a, closed }) end, "cat: element 2 of the list is a closed tensor")
  end)
end)

describe("stack", function()
  local a, b = recur.tensor({ 1, 2 }), recur.tensor({ 3, 4 })
  it("inserts a new dimension", function()
    assert_values(recur.stack({ a, b }), { { 1, 2 }, { 3, 4 } })
    assert_values(recur.stack({ a, b }, 2), { { 1, 3 }, { 2, 4 } })
    assert_values(recur.stack({ a, b, a }, -1), { { 1, 3, 1 }, { 2, 4, 2 } })
    local m = recur.tensor({ { 1, 2 }, { 3, 4 } })
    local s = recur.stack({ m, m * 10 }, 2)
    assert_shape(s, { 2, 2, 2 })
    assert_values(s, { { { 1, 2 }, { 10, 20 } }, { { 3, 4 }, { 30, 40 } } })
    assert_values(recur.stack({ recur.tensor(5), recur.tensor(6) }), { 5, 6 })
  end)
  it("has the right gradients", function()
    assert(recur.gradcheck(function(x, y) return recur.stack({ x, y, x }, 2) end,
      { param({ 2, 3 }), param({ 2, 3 }) }))
    assert(recur.gradcheck(function(x, y) return recur.stack({ x, y }, -1) end,
      { param({ 3, 2 }), param({ 3, 2 }) }))
  end)
  it("rejects bad input", function()
    assert_error(function() recur.stack({ a, recur.zeros(3) }) end,
      "stack: tensor 2 has shape [3] but tensor 1 has shape [2]")
    assert_error(function() recur.stack({}) end, "stack: the list of tensors is empty")
    assert_error(function() recur.stack({ a, {} }) end, "stack: element 2 of the list must be a tensor")
    assert_error(function() recur.stack({ a, b }, 3) end, "stack: dimension 3 is out of range")
    assert_error(function() recur.stack({ a, b }, -3) end, "stack: dimension -3 is out of range")
    local closed = recur.zeros(2)
    closed:close()
    assert_error(function() recur.stack({ closed, a }) end, "stack: element 1 of the list is a closed tensor")
  end)
end)

describe("split and chunk", function()
  it("split makes pieces of size, the last smaller", function()
    local ps = recur.arange(5):split(2)
    assert.are.equal(3, #ps)
    assert_values(ps[1], { 0, 1 })
    assert_values(ps[2], { 2, 3 })
    assert_values(ps[3], { 4 })
    local m = recur.tensor({ { 1, 2, 3 }, { 4, 5, 6 } })
    local cols = m:split(2, 2)
    assert_values(cols[1], { { 1, 2 }, { 4, 5 } })
    assert_values(cols[2], { { 3 }, { 6 } })
    local rows = recur.split(m, 1, -2)
    assert.are.equal(2, #rows)
    assert_values(rows[2], { { 4, 5, 6 } })
    assert.are.equal(1, #m:split(7))
    assert_shape(recur.zeros(0, 2):split(2)[1], { 0, 2 })
  end)
  it("chunk follows torch.chunk", function()
    local sizes = function(ps, d)
      local r = {}
      for i, p in ipairs(ps) do r[i] = p:size(d) end
      return r
    end
    assert.are.same({ 2, 2, 1 }, sizes(recur.zeros(5, 2):chunk(3), 1))
    assert.are.same({ 2, 2, 1 }, sizes(recur.zeros(5, 2):chunk(4), 1))
    assert.are.same({ 2, 2, 2 }, sizes(recur.zeros(6, 2):chunk(4), 1))
    assert.are.same({ 1, 1 }, sizes(recur.zeros(2, 2):chunk(4), 1))
    assert.are.same({ 0, 0, 0 }, sizes(recur.zeros(0, 2):chunk(3), 1))
    assert.are.same({ 2, 1 }, sizes(recur.zeros(4, 3):chunk(2, -1), 2))
    local ps = recur.arange(6):chunk(3)
    assert_values(ps[3], { 4, 5 })
  end)
  it("pieces are views sharing the input's storage", function()
    local a = recur.tensor({ 1, 2, 3, 4 })
    local ps = a:split(2)
    a:set(10, 3)
    assert.are.equal(10, ps[2]:get(1))
    ps[2]:set(7, 2)
    assert.are.equal(7, a:get(4))
    local m = recur.tensor({ { 1, 2, 3 }, { 4, 5, 6 } })
    local cols = m:chunk(3, 2)
    assert.are.same({ 3, 1 }, cols[2]:stride())
    assert.is_false(cols[2]:is_contiguous())
  end)
  it("has the right gradients", function()
    assert(recur.gradcheck(function(x) return x:split(2, 2) end, { param({ 2, 5 }) }))
    assert(recur.gradcheck(function(x) return x:chunk(3) end, { param({ 4, 2 }) }))
    -- only one piece used: the others get zero gradient
    local x = recur.tensor({ 1, 2, 3, 4, 5 }):requires_grad(true)
    local ps = x:split(2)
    assert.are.equal("SplitBackward", ps[2].grad_fn)
    ps[2]:backward(recur.tensor({ 7, 8 }))
    assert_values(x.grad, { 0, 0, 7, 8, 0 })
    local y = recur.tensor({ { 1, 2 }, { 3, 4 } }):requires_grad(true)
    local cs = y:chunk(2, 2)
    recur.backward({ cs[2], cs[1] }, { recur.tensor({ { 1 }, { 2 } }), recur.tensor({ { 3 }, { 4 } }) })
    assert_values(y.grad, { { 3, 1 }, { 4, 2 } })
  end)
  it("pieces that need grad refuse in-place writes (they are views)", function()
    local x = recur.tensor({ 1, 2, 3 }):requires_grad(true)
    local p = x:split(2)[1]
    assert_error(function() p:mul_(2) end, "in-place operation on a view")
  end)
  it("rejects bad input", function()
    local a = recur.zeros(4, 2)
    assert_error(function() a:split(0) end, "split: argument #2 (size) must be positive, got 0")
    assert_error(function() a:split(-1) end, "split:", "positive")
    assert_error(function() a:split(1.5) end, "split: argument #2 must be an integer")
    assert_error(function() a:split(2, 3) end, "split: dimension 3 is out of range")
    assert_error(function() recur.tensor(3):split(1) end, "split:", "0-d")
    assert_error(function() a:chunk(0) end, "chunk: argument #2 (number of chunks) must be between 1 and")
    assert_error(function() a:chunk(2 ^ 40) end, "chunk: argument #2", "1099511627776")
    assert_error(function() recur.zeros(0):chunk(2000000) end, "chunk: 2000000 pieces is too many")
    assert_error(function() a:chunk(2, -3) end, "chunk: dimension -3 is out of range")
    assert_error(function() recur.split(5, 1) end, "argument #1 must be a tensor")
    local c = recur.zeros(2)
    c:close()
    assert_error(function() c:split(1) end, "argument #1 is a closed tensor")
    assert_error(function() c:chunk(1) end, "argument #1 is a closed tensor")
  end)
end)

describe("gather", function()
  local t = recur.tensor({ { 1, 2 }, { 3, 4 } })
  it("picks values along dim (torch.gather)", function()
    assert_values(t:gather(2, recur.tensor({ { 1, 1 }, { 2, 1 } })), { { 1, 1 }, { 4, 3 } })
    assert_values(t:gather(1, recur.tensor({ { 2, 1 } })), { { 3, 2 } })
    -- t = torch.arange(24.).reshape(2,3,4)
    local x = recur.tensor({ { { 0, 1, 2, 3 }, { 4, 5, 6, 7 }, { 8, 9, 10, 11 } },
      { { 12, 13, 14, 15 }, { 16, 17, 18, 19 }, { 20, 21, 22, 23 } } })
    local i = recur.tensor({ { { 3, 1 }, { 2, 2 }, { 1, 3 } }, { { 2, 2 }, { 3, 1 }, { 1, 1 } } })
    local g = x:gather(-1, i)
    assert_shape(g, { 2, 3, 2 })
    assert_values(g, { { { 2, 0 }, { 5, 5 }, { 8, 10 } }, { { 13, 13 }, { 18, 16 }, { 20, 20 } } })
    local j = recur.tensor({ { { 2, 1, 2, 1 } }, { { 1, 2, 2, 2 } } })
    assert_values(recur.gather(x, 1, j), { { { 12, 1, 14, 3 } }, { { 0, 13, 14, 15 } } })
  end)
  it("never modifies the user's index tensor", function()
    local i = recur.tensor({ { 2, 1 } })
    t:gather(1, i)
    assert_values(i, { { 2, 1 } })
  end)
  it("has the right gradients (repeated indices accumulate)", function()
    local x = recur.tensor({ { 0, 1, 2 }, { 3, 4, 5 } }):requires_grad(true)
    local o = x:gather(2, recur.tensor({ { 3, 3 }, { 1, 2 } }))
    assert.are.equal("GatherBackward", o.grad_fn)
    o:backward(recur.tensor({ { 1, 2 }, { 3, 4 } }))
    assert_values(x.grad, { { 0, 0, 3 }, { 3, 4, 0 } }) -- torch
    local idx = recur.tensor({ { { 1, 3 }, { 2, 2 } }, { { 3, 1 }, { 1, 1 } } })
    assert(recur.gradcheck(function(y) return y:gather(3, idx) end, { param({ 2, 3, 3 }) }))
    local idx1 = recur.tensor({ { 2, 1, 2 } })
    assert(recur.gradcheck(function(y) return y:gather(1, idx1) end, { param({ 2, 4 }) }))
  end)
  it("rejects bad input", function()
    local i = recur.tensor({ { 1, 1 }, { 1, 1 } })
    assert_error(function() t:gather(2, recur.tensor({ { 1, 0 } })) end,
      "gather: index 0 at position [1, 2] is out of range for dimension 2 of size 2 (valid: 1..2)")
    assert_error(function() t:gather(1, recur.tensor({ { 1, 3 } })) end,
      "gather: index 3 at position [1, 2] is out of range for dimension 1 of size 2 (valid: 1..2)")
    assert_error(function() t:gather(1, recur.tensor({ { 1.5, 1 } })) end,
      "gather: index 1.5 at position [1, 1] is not an integer")
    assert_error(function() t:gather(1, recur.tensor({ { 0 / 0, 1 } })) end, "gather:",
      "not an integer")
    assert_error(function() t:gather(3, i) end, "gather: dimension 3 is out of range")
    assert_error(function() t:gather(1, recur.tensor({ 1, 1 })) end,
      "gather: index has 1 dimensions (shape [2]) but the input has 2")
    assert_error(function() t:gather(1, recur.tensor({ { 1, 1, 1 } })) end,
      "gather: index of shape [1, 3] does not fit the input of shape [2, 2] in dimension 2")
    assert_error(function() t:gather(1, "x") end, "gather: argument #3 (index) must be a tensor")
    local c = recur.tensor({ { 1 } })
    c:close()
    assert_error(function() t:gather(1, c) end, "gather: argument #3 is a closed tensor")
    assert_error(function() c:gather(1, i) end, "gather: argument #1 is a closed tensor")
  end)
end)

describe("index_select", function()
  local x = recur.tensor({ { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } })
  it("selects slices by 1-based index (tensor or list)", function()
    assert_values(x:index_select(1, { 3, 1 }), { { 7, 8, 9 }, { 1, 2, 3 } })
    assert_values(x:index_select(2, recur.tensor({ 2, 2 })), { { 2, 2 }, { 5, 5 }, { 8, 8 } })
    assert_values(x:index_select(-1, { 3 }), { { 3 }, { 6 }, { 9 } })
    assert_shape(x:index_select(1, {}), { 0, 3 })
    assert_shape(x:index_select(1, recur.tensor(2)), { 1, 3 }) -- 0-d index, like torch
    -- whole rows of a view that starts inside its storage, and of one that is not contiguous
    assert_values(x:narrow(1, 2, 2):index_select(1, { 2, 1, 2 }), { { 7, 8, 9 }, { 4, 5, 6 }, { 7, 8, 9 } })
    assert_values(x:t():index_select(1, { 3, 1 }), { { 3, 6, 9 }, { 1, 4, 7 } })
    -- torch.index_select(torch.arange(24.).reshape(2,3,4), 1, [2,0,2])
    local y = recur.tensor({ { { 0, 1, 2, 3 }, { 4, 5, 6, 7 }, { 8, 9, 10, 11 } },
      { { 12, 13, 14, 15 }, { 16, 17, 18, 19 }, { 20, 21, 22, 23 } } })
    assert_values(recur.index_select(y, 2, { 3, 1, 3 }),
      { { { 8, 9, 10, 11 }, { 0, 1, 2, 3 }, { 8, 9, 10, 11 } },
        { { 20, 21, 22, 23 }, { 12, 13, 14, 15 }, { 20, 21, 22, 23 } } })
  end)
  it("has the right gradients (index_add into zeros)", function()
    local t = recur.tensor({ { 0, 1, 2, 3 }, { 4, 5, 6, 7 }, { 8, 9, 10, 11 } }):requires_grad(true)
    local o = t:index_select(1, { 3, 1, 3 })
    assert.are.equal("IndexSelectBackward", o.grad_fn)
    o:backward(recur.tensor({ { 1, 2, 3, 4 }, { 5, 6, 7, 8 }, { 9, 10, 11, 12 } }))
    assert_values(t.grad, { { 5, 6, 7, 8 }, { 0, 0, 0, 0 }, { 10, 12, 14, 16 } }) -- torch
    local u = recur.tensor({ { 0, 1 }, { 2, 3 } }):requires_grad(true)
    u:t():index_select(1, { 2, 2 }):backward(recur.tensor({ { 1, 2 }, { 3, 4 } }))
    assert_values(u.grad, { { 0, 4 }, { 0, 6 } }) -- the transposed view's rows are u's columns
    assert(recur.gradcheck(function(y) return y:index_select(2, { 2, 4, 2 }) end, { param({ 3, 4 }) }))
    assert(recur.gradcheck(function(y) return y:index_select(1, recur.tensor({ 1, 1 })) end,
      { param({ 2, 2, 2 }) }))
  end)
  it("rejects bad input", function()
    assert_error(function() x:index_select(1, { 0 }) end,
      "index_select: index 0 at position [1] is out of range for dimension 1 of size 3 (valid: 1..3)")
    assert_error(function() x:index_select(2, { 1, 4 }) end,
      "index_select: index 4 at position [2] is out of range for dimension 2 of size 3")
    assert_error(function() x:index_select(1, { 2.5 }) end,
      "index_select: index 2.5 at position [1] is not an integer")
    assert_error(function() x:index_select(1, { 1, "a" }) end,
      "index_select: entry 2 of the index list (argument #3) must be a number, got string")
    assert_error(function() x:index_select(1, recur.tensor({ { 1 } })) end,
      "index_select: index must be 1-D, got shape [1, 1]")
    assert_error(function() x:index_select(0, { 1 }) end, "index_select: dimension 0 is out of range")
    assert_error(function() x:index_select(nil, { 1 }) end, "index_select: argument #2 must be an integer")
    local c = recur.zeros(3)
    c:close()
    assert_error(function() c:index_select(1, { 1 }) end, "index_select: argument #1 is a closed tensor")
  end)
end)

describe("scatter_add", function()
  local src = recur.tensor({ { 1, 2, 3, 4, 5 }, { 6, 7, 8, 9, 10 } })
  local idx = recur.tensor({ { 1, 2, 3, 1, 1 }, { 3, 1, 1, 2, 3 } })
  it("returns a + src scattered along dim (out of place)", function()
    local a = recur.full({ 3, 5 }, 0.5)
    local r = a:scatter_add(1, idx, src)
    assert_values(r, { { 1.5, 7.5, 8.5, 4.5, 5.5 }, { 0.5, 2.5, 0.5, 9.5, 0.5 },
      { 6.5, 0.5, 3.5, 0.5, 10.5 } }) -- torch
    assert_values(a, { { 0.5, 0.5, 0.5, 0.5, 0.5 }, { 0.5, 0.5, 0.5, 0.5, 0.5 },
      { 0.5, 0.5, 0.5, 0.5, 0.5 } })
    -- index smaller than src: only src's leading part is used
    local s2 = recur.tensor({ { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } })
    local i2 = recur.tensor({ { 4, 1 }, { 2, 2 }, { 5, 3 } })
    assert_values(recur.scatter_add(recur.zeros(3, 5), -1, i2, s2),
      { { 2, 0, 0, 1, 0 }, { 0, 9, 0, 0, 0 }, { 0, 0, 8, 0, 7 } }) -- torch
  end)
  it("has the right gradients: g to a, gather(g) to src (zero outside index)", function()
    local s2 = recur.tensor({ { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } }):requires_grad(true)
    local a = recur.zeros(3, 5):requires_grad(true)
    local i2 = recur.tensor({ { 4, 1 }, { 2, 2 }, { 5, 3 } })
    local o = a:scatter_add(2, i2, s2)
    assert.are.equal("ScatterAddBackward", o.grad_fn)
    local g = recur.tensor({ { 0, 1, 2, 3, 4 }, { 5, 6, 7, 8, 9 }, { 10, 11, 12, 13, 14 } })
    o:backward(g)
    assert_values(a.grad, g:totable())
    assert_values(s2.grad, { { 3, 0, 0 }, { 6, 6, 0 }, { 14, 12, 0 } })
    assert(recur.gradcheck(function(x, s) return x:scatter_add(1, idx, s) end,
      { param({ 3, 5 }), param({ 2, 5 }) }))
    assert(recur.gradcheck(function(x, s) return x:scatter_add(2, i2, s) end,
      { param({ 3, 5 }), param({ 3, 3 }) }))
  end)
  it("rejects bad input", function()
    local a = recur.zeros(3, 5)
    assert_error(function() a:scatter_add(1, recur.tensor({ { 4 } }), src) end,
      "scatter_add: index 4 at position [1, 1] is out of range for dimension 1 of size 3 (valid: 1..3)")
    assert_error(function() a:scatter_add(1, recur.tensor({ { 0 } }), src) end,
      "scatter_add: index 0 at position [1, 1] is out of range")
    assert_error(function() a:scatter_add(1, recur.tensor({ { 1, 1.25 } }), src) end,
      "scatter_add: index 1.25 at position [1, 2] is not an integer")
    assert_error(function() a:scatter_add(1, idx, recur.zeros(2, 4)) end,
      "scatter_add: index of shape [2, 5] does not fit src of shape [2, 4] in dimension 2")
    assert_error(function() a:scatter_add(1, idx, recur.zeros(10)) end,
      "scatter_add: src has 1 dimensions")
    assert_error(function() a:scatter_add(3, idx, src) end, "scatter_add: dimension 3 is out of range")
    assert_error(function() a:scatter_add(1, idx, 5) end, "scatter_add: argument #4 must be a tensor")
  end)
end)

describe("masked_fill", function()
  local a = recur.tensor({ { 1, 2 }, { 3, 4 } })
  it("sets positions where mask ~= 0, broadcasting the mask", function()
    assert_values(a:masked_fill(recur.tensor({ { 1, 0 }, { 0, 1 } }), -1), { { -1, 2 }, { 3, -1 } })
    assert_values(a:masked_fill(recur.tensor({ 1, 0 }), 9), { { 9, 2 }, { 9, 4 } })
    assert_values(a:masked_fill(recur.tensor({ { 0 }, { 2 } }), 0.5), { { 1, 2 }, { 0.5, 0.5 } })
    assert_values(recur.masked_fill(a, recur.tensor(0), 7), { { 1, 2 }, { 3, 4 } })
    local r = a:masked_fill(recur.tensor({ 0, 1 }), -math.huge)
    assert.are.equal(-math.huge, r:get(2, 2))
    assert_values(a, { { 1, 2 }, { 3, 4 } })
  end)
  it("has the right gradients (zero where filled)", function()
    local x = recur.tensor({ { 1, 2 }, { 3, 4 } }):requires_grad(true)
    local o = x:masked_fill(recur.tensor({ 1, 0 }), 5)
    assert.are.equal("MaskedFillBackward", o.grad_fn)
    o:backward(recur.tensor({ { 10, 20 }, { 30, 40 } }))
    assert_values(x.grad, { { 0, 20 }, { 0, 40 } })
    local m = recur.tensor({ { 1, 0, 0 }, { 0, 0, 1 } })
    assert(recur.gradcheck(function(y) return y:masked_fill(m, 3) end, { param({ 2, 3 }) }))
    local mb = recur.tensor({ { 0 }, { 1 }, { 0 } })
    assert(recur.gradcheck(function(y) return y:masked_fill(mb, -2) end, { param({ 2, 3, 4 }) }))
  end)
  it("rejects bad input", function()
    assert_error(function() a:masked_fill(recur.tensor({ 1, 0, 1 }), 1) end, "masked_fill:",
      "[3]", "[2, 2]")
    assert_error(function() a:masked_fill(recur.zeros(1, 2, 2), 1) end,
      "masked_fill: mask of shape [1, 2, 2] cannot be broadcast to the input's shape [2, 2]")
    assert_error(function() a:masked_fill({ 1, 0 }, 1) end, "masked_fill: argument #2 must be a tensor")
    assert_error(function() a:masked_fill(recur.tensor({ 1, 0 })) end, "masked_fill: argument #3 must be a number, got no value")
  end)
end)

describe("one_hot", function()
  it("turns 1-based class ids into one-hot rows", function()
    local i = recur.tensor({ 1, 3, 2 })
    assert_values(recur.one_hot(i, 3), { { 1, 0, 0 }, { 0, 0, 1 }, { 0, 1, 0 } })
    assert_values(i:one_hot(4), { { 1, 0, 0, 0 }, { 0, 0, 1, 0 }, { 0, 1, 0, 0 } })
    assert_values(i:one_hot(), { { 1, 0, 0 }, { 0, 0, 1 }, { 0, 1, 0 } }) -- inferred: 3
    -- torch.nn.functional.one_hot(torch.tensor([[0,2],[1,0]]), 3)
    local o = recur.tensor({ { 1, 3 }, { 2, 1 } }):one_hot(3)
    assert_shape(o, { 2, 2, 3 })
    assert_values(o, { { { 1, 0, 0 }, { 0, 0, 1 } }, { { 0, 1, 0 }, { 1, 0, 0 } } })
    assert_values(recur.one_hot({ 2 }, 2), { { 0, 1 } })
    assert_values(recur.tensor(2):one_hot(3), { 0, 1, 0 })
    assert_values(i, { 1, 3, 2 })
  end)
  it("has no gradient", function()
    local i = recur.tensor({ 1, 2 }):requires_grad(true)
    assert.is_false(i:one_hot(2):requires_grad())
  end)
  it("rejects bad input", function()
    local i = recur.tensor({ 1, 4 })
    assert_error(function() i:one_hot(3) end,
      "one_hot: index 4 at position [2] is out of range for 3 classes (valid: 1..3)")
    assert_error(function() recur.tensor({ 0 }):one_hot(3) end,
      "one_hot: index 0 at position [1] is out of range for 3 classes")
    assert_error(function() recur.tensor({ 0 }):one_hot() end,
      "one_hot: index 0 at position [1] is out of range (must be at least 1)")
    assert_error(function() recur.tensor({ 1.5 }):one_hot(3) end,
      "one_hot: index 1.5 at position [1] is not an integer")
    assert_error(function() i:one_hot(0) end, "one_hot: argument #2 (classes) must be positive, got 0")
    assert_error(function() recur.zeros(0):one_hot() end, "one_hot: cannot infer the number of classes")
    local c = recur.tensor({ 1 })
    c:close()
    assert_error(function() c:one_hot(2) end, "one_hot: argument #1 is a closed tensor")
  end)
end)
