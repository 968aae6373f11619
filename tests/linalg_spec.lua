-- matmul, mm, bmm, mv, dot, outer: values (reference numbers from PyTorch 1.x / hand-worked),
-- result shapes for every operand rank combination, gradients, zero-size dims and errors.
local recur = require("recur")

local function close_to(got, want, tol, path)
  tol = tol or 1e-5
  path = path or ""
  if type(want) == "number" then
    assert(type(got) == "number", "expected a number at " .. path)
    assert(math.abs(got - want) <= tol * (1 + math.abs(want)),
      string.format("at %s: got %.7g, want %.7g", path, got, want))
    return
  end
  assert(type(got) == "table", "expected a table at " .. path)
  assert.are.equal(#want, #got, "length at " .. path)
  for i = 1, #want do close_to(got[i], want[i], tol, path .. "[" .. i .. "]") end
end

local function values(t)
  if t:dim() == 0 then return t:item() end
  return t:totable()
end

-- deterministic pseudo-random nested table of the given shape, values in [-1, 1]
local function rnd(shape, seed)
  local s = seed or 1
  local function build(d)
    local t = {}
    for i = 1, shape[d] do
      if d == #shape then
        s = (s * 1103515245 + 12345) % 2147483648
        t[i] = s / 2147483648 * 2 - 1
      else
        t[i] = build(d + 1)
      end
    end
    return t
  end
  return build(1)
end

local function leaf(shape, seed)
  return recur.tensor(rnd(shape, seed)):requires_grad(true)
end

local err_of = require("tests.helpers").err_of

local a23 = { { 1, 2, 3 }, { 4, 5, 6 } }
local b32 = { { 7, 8 }, { 9, 10 }, { 11, 12 } }
local A223 = { { { 1, -2, 0.5 }, { 3, 0, -1 } }, { { 2, 1, 1 }, { -1, 4, 0.25 } } }
local B232 = { { { 0.5, 1 }, { -1, 2 }, { 3, 0 } }, { { 1, 1 }, { 2, -2 }, { 0, 1 } } }
local v3 = { 1, -1, 2 }

describe("matmul values and shapes", function()
  it("2-D x 2-D", function()
    local r = recur.matmul(recur.tensor(a23), recur.tensor(b32))
    assert.are.same({ 2, 2 }, r:size())
    close_to(r:totable(), { { 58, 64 }, { 139, 154 } })
    close_to(recur.tensor(a23):matmul(recur.tensor(b32)):totable(), { { 58, 64 }, { 139, 154 } })
  end)

  it("1-D x 1-D is a 0-d dot product", function()
    local r = recur.matmul(recur.tensor(v3), recur.tensor(v3))
    assert.are.equal(0, r:dim())
    close_to(r:item(), 6)
  end)

  it("1-D x 2-D and 2-D x 1-D promote and squeeze the vector", function()
    local r = recur.matmul(recur.tensor(v3), recur.tensor(b32))
    assert.are.same({ 2 }, r:size())
    close_to(r:totable(), { 20, 22 })
    r = recur.matmul(recur.tensor(a23), recur.tensor(v3))
    assert.are.same({ 2 }, r:size())
    close_to(r:totable(), { 5, 11 })
  end)

  it("3-D x 3-D with equal batch", function()
    local r = recur.matmul(recur.tensor(A223), recur.tensor(B232))
    assert.are.same({ 2, 2, 2 }, r:size())
    close_to(r:totable(), { { { 4, -3 }, { -1.5, 3 } }, { { 4, 1 }, { 7, -8.75 } } })
  end)

  it("3-D x 3-D with a batch of 1 broadcast", function()
    local B1 = { B232[1] }
    local r = recur.matmul(recur.tensor(A223), recur.tensor(B1))
    assert.are.same({ 2, 2, 2 }, r:size())
    close_to(r:totable(), { { { 4, -3 }, { -1.5, 3 } }, { { 3, 4 }, { -3.75, 7 } } })
    -- and the other way round: [1, 2, 3] x [2, 3, 2]
    r = recur.matmul(recur.tensor({ A223[2] }), recur.tensor(B232))
    assert.are.same({ 2, 2, 2 }, r:size())
    close_to(r:totable()[2], { { 4, 1 }, { 7, -8.75 } })
  end)

  it("3-D x 2-D and 2-D x 3-D", function()
    local r = recur.matmul(recur.tensor(A223), recur.tensor(b32))
    assert.are.same({ 2, 2, 2 }, r:size())
    close_to(r:totable(), { { { -5.5, -6 }, { 10, 12 } }, { { 34, 38 }, { 31.75, 35 } } })
    r = recur.matmul(recur.tensor(a23), recur.tensor(B232))
    assert.are.same({ 2, 2, 2 }, r:size())
    close_to(r:totable(), { { { 7.5, 5 }, { 15, 14 } }, { { 5, 0 }, { 14, 0 } } })
  end)

  it("1-D x 3-D and 3-D x 1-D", function()
    local r = recur.matmul(recur.tensor(v3), recur.tensor(B232))
    assert.are.same({ 2, 2 }, r:size())
    close_to(r:totable(), { { 7.5, -1 }, { -1, 5 } })
    r = recur.matmul(recur.tensor(A223), recur.tensor(v3))
    assert.are.same({ 2, 2 }, r:size())
    close_to(r:totable(), { { 4, 1 }, { 3, -4.5 } })
  end)

  it("mm, bmm, mv, dot, outer", function()
    close_to(recur.mm(recur.tensor(a23), recur.tensor(b32)):totable(), { { 58, 64 }, { 139, 154 } })
    close_to(recur.tensor(a23):mm(recur.tensor(b32)):totable(), { { 58, 64 }, { 139, 154 } })
    close_to(recur.bmm(recur.tensor(A223), recur.tensor(B232)):totable(),
      { { { 4, -3 }, { -1.5, 3 } }, { { 4, 1 }, { 7, -8.75 } } })
    close_to(recur.tensor(a23):mv(recur.tensor(v3)):totable(), { 5, 11 })
    close_to(recur.mv(recur.tensor(a23), recur.tensor(v3)):totable(), { 5, 11 })
    local d = recur.dot(recur.tensor({ 1, -1, 2 }), recur.tensor({ 0.5, 2, -3 }))
    assert.are.equal(0, d:dim())
    close_to(d:item(), -7.5)
    close_to(recur.tensor(v3):dot(recur.tensor(v3)):item(), 6)
    local o = recur.outer(recur.tensor({ 1, 2 }), recur.tensor({ 3, -1, 0.5 }))
    assert.are.same({ 2, 3 }, o:size())
    close_to(o:totable(), { { 3, -1, 0.5 }, { 6, -2, 1 } })
  end)

  it("a larger product matches a Lua triple loop", function()
    local ta, tb = rnd({ 17, 33 }, 3), rnd({ 33, 9 }, 4)
    local r = recur.matmul(recur.tensor(ta), recur.tensor(tb)):totable()
    for i = 1, 17 do
      for j = 1, 9 do
        local s = 0
        for k = 1, 33 do s = s + ta[i][k] * tb[k][j] end
        close_to(r[i][j], s, 1e-5, "(" .. i .. "," .. j .. ")")
      end
    end
  end)
end)

describe("matmul zero-size dims", function()
  it("[0, 3] x [3, 4] is [0, 4]", function()
    local r = recur.matmul(recur.zeros(0, 3), recur.ones(3, 4))
    assert.are.same({ 0, 4 }, r:size())
  end)

  it("an inner size of 0 gives zeros", function()
    local r = recur.matmul(recur.ones(3, 0), recur.ones(0, 4))
    assert.are.same({ 3, 4 }, r:size())
    close_to(r:totable(), { { 0, 0, 0, 0 }, { 0, 0, 0, 0 }, { 0, 0, 0, 0 } })
    local d = recur.dot(recur.zeros(0), recur.zeros(0))
    assert.are.equal(0, d:dim())
    assert.are.equal(0, d:item())
    r = recur.matmul(recur.ones(2, 1, 0), recur.ones(0, 3))
    assert.are.same({ 2, 1, 3 }, r:size())
    close_to(r:totable(), { { { 0, 0, 0 } }, { { 0, 0, 0 } } })
  end)

  it("[3, 4] x [4, 0], zero batches, and their gradients", function()
    assert.are.same({ 3, 0 }, recur.matmul(recur.ones(3, 4), recur.ones(4, 0)):size())
    assert.are.same({ 0, 2, 5 }, recur.matmul(recur.ones(0, 2, 3), recur.ones(1, 3, 5)):size())
    assert.are.same({ 0, 2, 5 }, recur.matmul(recur.ones(0, 2, 3), recur.ones(3, 5)):size())
    -- zero batches: the broadcast operand's gradient is an empty sum, i.e. zeros
    local a = recur.zeros(0, 2, 3):requires_grad(true)
    local b = recur.ones(3, 5):requires_grad(true)
    recur.matmul(a, b):backward(recur.zeros(0, 2, 5))
    assert.are.same({ 3, 5 }, b.grad:size())
    close_to(b.grad:totable(), { { 0, 0, 0, 0, 0 }, { 0, 0, 0, 0, 0 }, { 0, 0, 0, 0, 0 } })
    assert.are.same({ 0, 2, 3 }, a.grad:size())
    local x = recur.ones(3, 0):requires_grad(true)
    local y = recur.ones(0, 2):requires_grad(true)
    recur.matmul(x, y):backward(recur.ones(3, 2))
    assert.are.same({ 3, 0 }, x.grad:size())
    assert.are.same({ 0, 2 }, y.grad:size())
  end)
end)

describe("matmul gradients", function()
  it("match PyTorch for a broadcast 3-D x 2-D product", function()
    local A = recur.tensor(A223):requires_grad(true)
    local b = recur.tensor(b32):requires_grad(true)
    recur.matmul(A, b):backward(recur.tensor({ { { 1, -1 }, { 0.5, 2 } }, { { 0, 1 }, { -2, 1 } } }))
    close_to(A.grad:totable(),
      { { { -1, -1, -1 }, { 19.5, 24.5, 29.5 } }, { { 8, 10, 12 }, { -6, -8, -10 } } })
    close_to(b.grad:totable(), { { 4.5, 6 }, { -10, 7 }, { -0.5, -1.25 } })
  end)

  it("match PyTorch for a dot product", function()
    local v = recur.tensor({ 1, -1, 2 }):requires_grad(true)
    local w = recur.tensor({ 0.5, 2, -3 }):requires_grad(true)
    recur.matmul(v, w):backward(recur.tensor(2))
    close_to(v.grad:totable(), { 1, 4, -6 })
    close_to(w.grad:totable(), { 2, -2, 4 })
  end)

  it("only the inputs that require grad get one", function()
    local a = recur.tensor(a23)
    local b = recur.tensor(b32):requires_grad(true)
    local r = recur.matmul(a, b)
    assert.is_true(r:requires_grad())
    r:backward(recur.ones(2, 2))
    assert.is_nil(a.grad)
    close_to(b.grad:totable(), { { 5, 5 }, { 7, 7 }, { 9, 9 } })
    local plain = recur.matmul(recur.tensor(a23), recur.tensor(b32))
    assert.is_false(plain:requires_grad())
    local ng = recur.no_grad(function() return recur.matmul(recur.tensor(a23), b) end)
    assert.is_false(ng:requires_grad())
  end)

  it("catches an in-place change of a saved operand", function()
    local a = recur.tensor(a23):requires_grad(true)
    local b = recur.tensor(b32)
    local r = recur.matmul(a, b)
    b:add_(1)
    local e = err_of(function() r:backward(recur.ones(2, 2)) end)
    assert.truthy(e:find("MatmulBackward", 1, true), e)
    assert.truthy(e:find("modified by an in-place operation", 1, true), e)
  end)

  local cases = {
    { "2-D x 2-D", { 3, 4 }, { 4, 5 } },
    { "1-D x 1-D", { 4 }, { 4 } },
    { "1-D x 2-D", { 4 }, { 4, 3 } },
    { "2-D x 1-D", { 3, 4 }, { 4 } },
    { "3-D x 3-D", { 2, 3, 4 }, { 2, 4, 2 } },
    { "3-D x 3-D, left batch 1", { 1, 3, 4 }, { 3, 4, 2 } },
    { "3-D x 3-D, right batch 1", { 3, 2, 4 }, { 1, 4, 3 } },
    { "3-D x 2-D", { 3, 2, 4 }, { 4, 3 } },
    { "2-D x 3-D", { 2, 4 }, { 3, 4, 3 } },
    { "1-D x 3-D", { 4 }, { 2, 4, 3 } },
    { "3-D x 1-D", { 2, 3, 4 }, { 4 } },
    { "single row and column", { 1, 4 }, { 4, 1 } },
  }
  for k, c in ipairs(cases) do
    it("gradcheck " .. c[1], function()
      local a, b = leaf(c[2], 10 + k), leaf(c[3], 40 + k)
      assert.is_true(recur.gradcheck(recur.matmul, { a, b }))
    end)
  end

  it("gradcheck mm, bmm, mv, dot, outer", function()
    assert.is_true(recur.gradcheck(recur.mm, { leaf({ 3, 2 }, 1), leaf({ 2, 4 }, 2) }))
    assert.is_true(recur.gradcheck(recur.bmm, { leaf({ 2, 3, 2 }, 3), leaf({ 2, 2, 3 }, 4) }))
    assert.is_true(recur.gradcheck(recur.mv, { leaf({ 3, 4 }, 5), leaf({ 4 }, 6) }))
    assert.is_true(recur.gradcheck(recur.dot, { leaf({ 5 }, 7), leaf({ 5 }, 8) }))
    assert.is_true(recur.gradcheck(recur.outer, { leaf({ 3 }, 9), leaf({ 4 }, 10) }))
  end)

  it("gradcheck a chain through matmul and elementwise ops", function()
    local f = function(x, w, u)
      return recur.matmul(recur.tanh(recur.matmul(x, w)), u)
    end
    assert.is_true(recur.gradcheck(f, { leaf({ 2, 3, 4 }, 20), leaf({ 4, 5 }, 21), leaf({ 5 }, 22) }))
  end)
end)

describe("matmul errors", function()
  it("names the shapes and the mismatched sizes", function()
    local e = err_of(function() return recur.matmul(recur.zeros(2, 3), recur.zeros(4, 5)) end)
    assert.truthy(e:find("matmul: shapes [2, 3] and [4, 5] do not match (3 vs 4)", 1, true))
    e = err_of(function() return recur.zeros(3):matmul(recur.zeros(4)) end)
    assert.truthy(e:find("matmul: shapes [3] and [4] do not match (3 vs 4)", 1, true))
    e = err_of(function() return recur.matmul(recur.zeros(2, 3, 4), recur.zeros(5, 4, 2)) end)
    assert.truthy(e:find("matmul: batch dimensions of shapes [2, 3, 4] and [5, 4, 2] do not "
      .. "match (2 vs 5)", 1, true))
  end)

  it("rejects 0-d and 4-D operands", function()
    local e = err_of(function() return recur.matmul(recur.tensor(2), recur.zeros(3)) end)
    assert.truthy(e:find("matmul: both arguments must have at least one dimension, got shapes "
      .. "[] and [3]", 1, true))
    e = err_of(function() return recur.matmul(recur.zeros(3), recur.tensor(1)) end)
    assert.truthy(e:find("got shapes [3] and []", 1, true))
    e = err_of(function() return recur.matmul(recur.zeros(1, 2, 3, 4), recur.zeros(4, 2)) end)
    assert.truthy(e:find("matmul: shapes [1, 2, 3, 4] and [4, 2]: only 1-D, 2-D and 3-D", 1, true))
  end)

  it("mm, bmm, mv, dot and outer check ranks strictly", function()
    local e = err_of(function() return recur.mm(recur.zeros(3), recur.zeros(3, 2)) end)
    assert.truthy(e:find("mm: expected a 2-D and a 2-D tensor, got shapes [3] and [3, 2]", 1, true))
    e = err_of(function() return recur.mm(recur.zeros(2, 3), recur.zeros(2, 3)) end)
    assert.truthy(e:find("mm: shapes [2, 3] and [2, 3] do not match (3 vs 2)", 1, true))
    e = err_of(function() return recur.bmm(recur.zeros(2, 3, 4), recur.zeros(4, 2)) end)
    assert.truthy(e:find("bmm: expected a 3-D and a 3-D tensor", 1, true))
    e = err_of(function() return recur.bmm(recur.zeros(2, 3, 4), recur.zeros(1, 4, 2)) end)
    assert.truthy(e:find("bmm: batch sizes of shapes [2, 3, 4] and [1, 4, 2] differ (2 vs 1)", 1,
      true))
    e = err_of(function() return recur.zeros(2, 3):mv(recur.zeros(3, 1)) end)
    assert.truthy(e:find("mv: expected a 2-D and a 1-D tensor", 1, true))
    e = err_of(function() return recur.dot(recur.zeros(3), recur.zeros(4)) end)
    assert.truthy(e:find("dot: shapes [3] and [4] do not match (3 vs 4)", 1, true))
    e = err_of(function() return recur.dot(recur.zeros(1, 3), recur.zeros(3)) end)
    assert.truthy(e:find("dot: expected a 1-D and a 1-D tensor", 1, true))
    e = err_of(function() return recur.outer(recur.zeros(2), recur.zeros(2, 2)) end)
    assert.truthy(e:find("outer: expected a 1-D and a 1-D tensor", 1, true))
  end)

  it("rejects non-tensors and closed tensors, naming the function", function()
    local names = { "matmul", "mm", "bmm", "mv", "dot", "outer" }
    for _, name in ipairs(names) do
      local f = recur[name]
      local e = err_of(function() return f(recur.zeros(2), 3) end)
      assert.truthy(e:find(name .. ": argument #2 must be a tensor, got number", 1, true), e)
      e = err_of(function() return f("x", recur.zeros(2)) end)
      assert.truthy(e:find(name .. ": argument #1 must be a tensor, got string", 1, true), e)
      e = err_of(function() return f(recur.zeros(2)) end)
      assert.truthy(e:find(name .. ": argument #2 must be a tensor, got no value", 1, true), e)
      local t = recur.zeros(2)
      t:close()
      e = err_of(function() return f(recur.zeros(2), t) end)
      assert.truthy(e:find(name .. ": argument #2 is a closed tensor", 1, true), e)
      e = err_of(function() return f(t, recur.zeros(2)) end)
      assert.truthy(e:find(name .. ": argument #1 is a closed tensor", 1, true), e)
    end
    -- called directly through pcall, the message still names the function
    local ok, e = pcall(recur.matmul, recur.zeros(2), {})
    assert.is_false(ok)
    assert.truthy(tostring(e):find("matmul: argument #2 must be a tensor, got table", 1, true))
  end)
end)
