-- Views and shape ops: values, shapes, strides, storage sharing, autograd, errors.
-- Reference values marked "torch" were computed with PyTorch (python3-torch).
local recur = require "recur"

local H = require "tests.helpers"
local err_of, assert_err = H.err_of, H.fails_with

local function arange(n, ...)
  local t = recur.arange(n)
  if select("#", ...) > 0 then t = t:view(...) end
  return t
end

local function leaf(tbl) return recur.tensor(tbl):requires_grad(true) end

describe("view and reshape", function()
  it("gives the same elements in a new shape with contiguous strides", function()
    local v = arange(12):view(3, 4)
    assert.same({3, 4}, v:size())
    assert.same({4, 1}, v:stride())
    assert.is_true(v:is_contiguous())
    assert.same({{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}}, v:totable())
    assert.same({2, 2, 3}, arange(12):view{2, -1, 3}:size())
    assert.same({12}, v:view(-1):size())
    assert.same({1, 12, 1}, v:reshape(1, -1, 1):size())
    assert.same({{0, 1, 2, 3, 4, 5}, {6, 7, 8, 9, 10, 11}}, v:reshape{2, 6}:totable())
  end)

  it("views one element as a 0-d tensor and back", function()
    local s = recur.tensor{5}:view()
    assert.equal(0, s:dim())
    assert.equal(5, s:item())
    assert.same({1, 1}, s:view(1, 1):size())
    assert.same({}, recur.tensor{{7}}:view{}:size())
  end)

  it("shares storage with its base in both directions", function()
    local x = arange(12)
    local v = x:view(3, 4)
    v:set(100, 2, 3)
    assert.equal(100, x:get(7))
    x:set(-1, 1)
    assert.equal(-1, v:get(1, 1))
    local r = x:reshape(2, 6) -- contiguous: reshape is a view too
    r:set(42, 2, 6)
    assert.equal(42, x:get(12))
  end)

  it("views a non-contiguous tensor when the layout allows it", function()
    local x = arange(24, 2, 3, 4):transpose(1, 2)
    assert.same({3, 2, 4}, x:size())
    assert.same({4, 12, 1}, x:stride()) -- torch
    local v = x:view(3, 2, 2, 2)
    assert.same({4, 12, 2, 1}, v:stride()) -- torch
    assert.same({0, 1, 2, 3, 12, 13, 14, 15, 4, 5, 6, 7, 16, 17, 18, 19, 8, 9, 10, 11,
                 20, 21, 22, 23}, v:reshape(-1):totable()) -- torch
    v:set(-5, 1, 2, 1, 1)
    assert.equal(-5, x:get(1, 2, 1))
  end)

  it("reshape copies when no view is possible, and the copy is independent", function()
    local x = arange(12, 3, 4)
    local y = x:t():reshape(12)
    assert.is_true(y:is_contiguous())
    assert.same({0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}, y:totable())
    y:set(99, 1)
    assert.equal(0, x:get(1, 1))
    local e = recur.tensor{1, 2, 3}:expand(2, 3)
    assert.same({1, 2, 3, 1, 2, 3}, e:reshape(6):totable())
  end)

  it("infers -1 and reports impossible or ambiguous shapes", function()
    assert.same({0, 3}, recur.zeros(0, 3):view(-1, 3):size())
    assert.same({4, 3}, arange(12):view(-1, 3):size())
    local x = arange(12)
    assert_err(function() local _ = x:view(-1, -1) end, "view: only one dimension can be inferred",
      "[-1, -1]")
    assert_err(function() local _ = x:view(5, -1) end, "view: shape [5, -1] is invalid",
      "shape [12] with 12 elements")
    assert_err(function() local _ = x:reshape(0, -1) end, "reshape: shape [0, -1] is invalid")
    assert_err(function() local _ = recur.zeros(0, 3):view(0, -1) end, "view: cannot infer",
      "ambiguous")
  end)

  it("rejects a wrong element count, naming both shapes and counts", function()
    local x = arange(12, 3, 4)
    assert_err(function() local _ = x:view(5) end,
      "view: shape [5] (5 elements) is invalid for a tensor of shape [3, 4] with 12 elements")
    assert_err(function() local _ = x:reshape{2, 7} end, "reshape: shape [2, 7] (14 elements)",
      "[3, 4] with 12 elements")
    assert_err(function() local _ = x:view(-2, -6) end, "view: size -2 of dimension 1 is negative")
    assert_err(function() local _ = x:view(2.5, 2) end, "view: argument #2 must be an integer")
    assert_err(function() local _ = x:view{2, "a"} end, "view: shape entry 2 must be an integer")
    assert_err(function() local _ = x:view({3, 4}, 1) end, "view: give the shape either")
    assert_err(function() local _ = x:view(1, 1, 1, 1, 1, 1, 1, 1, 12) end, "view:", "at most 8")
  end)

  it("refuses to view an incompatible layout and suggests reshape or contiguous", function()
    local x = arange(6, 2, 3):t()
    assert_err(function() local _ = x:view(6) end,
      "view: cannot view a tensor of shape [3, 2] with strides [1, 3] as shape [6]", "reshape()",
      "contiguous()")
    local y = arange(24, 2, 3, 4):transpose(1, 2)
    assert_err(function() local _ = y:view(3, 8) end, "view: cannot view")
    assert_err(function() local _ = y:view(6, 4) end, "view: cannot view")
    local e = recur.tensor{1, 2, 3}:expand(2, 3)
    assert_err(function() local _ = e:view(6) end, "view: cannot view", "strides [0, 1]")
  end)

  it("view_as takes another tensor's shape", function()
    assert.same({{0, 1}, {2, 3}, {4, 5}}, arange(6):view_as(recur.zeros(3, 2)):totable())
    assert_err(function() local _ = arange(6):view_as(recur.zeros(4)) end, "view: shape [4]")
  end)
end)

describe("transpose, t and permute", function()
  it("swap sizes and strides without copying", function()
    local x = arange(6, 2, 3)
    local y = x:t()
    assert.same({3, 2}, y:size())
    assert.same({1, 3}, y:stride())
    assert.is_false(y:is_contiguous())
    assert.same({{0, 3}, {1, 4}, {2, 5}}, y:totable())
    y:set(50, 3, 2)
    assert.equal(50, x:get(2, 3))
    x:set(60, 1, 2)
    assert.equal(60, y:get(2, 1))
    assert.same({{0, 3}, {60, 4}, {2, 50}}, recur.transpose(x, 1, -1):totable())
  end)

  it("transposes any two dimensions of an N-d tensor", function()
    local x = arange(24, 2, 3, 4)
    local y = x:transpose(1, 3)
    assert.same({4, 3, 2}, y:size())
    assert.same({1, 4, 12}, y:stride())
    assert.equal(x:get(2, 1, 3), y:get(3, 1, 2))
    assert.same({2, 3, 4}, x:transpose(2, 2):size())
    assert.same({4, 3, 2}, recur.transpose(x, -1, 1):size())
  end)

  it("t returns 0-d and 1-D tensors themselves and rejects more than 2 dims", function()
    local v = arange(4)
    assert.is_true(v:t() == v)
    local s = recur.tensor(3)
    assert.is_true(s:t() == s)
    assert.same({{0, 2}, {1, 3}}, recur.t(arange(4, 2, 2)):totable())
    assert_err(function() local _ = arange(8, 2, 2, 2):t() end,
      "t: expects a tensor with at most 2 dimensions, got 3")
  end)

  it("permutes dimensions given as varargs or a table", function()
    local x = arange(24, 2, 3, 4)
    local p = x:permute(3, 1, 2)
    assert.same({4, 2, 3}, p:size())
    assert.same({1, 12, 4}, p:stride()) -- torch
    assert.same({{1, 5, 9}, {13, 17, 21}}, p:select(1, 2):totable()) -- torch
    assert.same({4, 2, 3}, x:permute{-1, 1, 2}:size())
    assert.same({4, 2, 3}, recur.permute(x, {3, 1, 2}):size())
    p:set(-7, 1, 2, 3)
    assert.equal(-7, x:get(2, 3, 1))
    assert.same({}, recur.tensor(1):permute():size())
  end)

  it("rejects bad dimensions and non-permutations", function()
    local x = arange(24, 2, 3, 4)
    assert_err(function() local _ = x:permute(1, 2, 2) end,
      "permute: dimension 2 appears more than once", "(1, 2, 2)")
    assert_err(function() local _ = x:permute{1, -2, 2} end, "permute: dimension 2 appears")
    assert_err(function() local _ = x:permute(1, 2) end,
      "permute: 2 dimensions given for a tensor with 3 dimensions")
    assert_err(function() local _ = x:permute{1, 2, 3, 4} end, "permute: 4 dimensions given")
    assert_err(function() local _ = x:permute(1, 2, 4) end,
      "permute: dimension 4 is out of range for a tensor with 3 dimensions")
    assert_err(function() local _ = x:permute{1, 2, "x"} end, "permute: entry 3")
    assert_err(function() local _ = x:transpose(1, 4) end, "transpose: dimension 4 is out of range")
    assert_err(function() local _ = x:transpose(0, 1) end, "transpose: dimension 0 is out of range")
  end)
end)

describe("narrow and select", function()
  it("narrow keeps the dimension and shares storage", function()
    local x = arange(12, 3, 4)
    local n = x:narrow(2, 2, 2)
    assert.same({3, 2}, n:size())
    assert.same({4, 1}, n:stride())
    assert.is_false(n:is_contiguous())
    assert.same({{1, 2}, {5, 6}, {9, 10}}, n:totable())
    n:set(-1, 3, 2)
    assert.equal(-1, x:get(3, 3))
    x:set(-2, 1, 2)
    assert.equal(-2, n:get(1, 1))
    assert.same({{8, 9, -1, 11}}, x:narrow(1, -1, 1):totable())
    assert.same({3, 0}, x:narrow(2, 5, 0):size())
    assert.same({{4, 5, 6, 7}}, recur.narrow(arange(12, 3, 4), 1, 2, 1):totable())
  end)

  it("select removes the dimension; negative indices count from the end", function()
    local x = arange(12, 3, 4)
    assert.same({4, 5, 6, 7}, x:select(1, 2):totable())
    assert.same({3, 7, 11}, x:select(2, -1):totable())
    assert.same({4}, x:select(2, 1):stride())
    local s = x:select(1, 3):select(1, 2)
    assert.equal(0, s:dim())
    assert.equal(9, s:item())
    s:fill_(90)
    assert.equal(90, x:get(3, 2))
    assert.same({0, 4, 8}, recur.select(x, 2, 1):totable())
  end)

  it("reject out-of-range starts, lengths and indices with 1-based messages", function()
    local x = arange(12, 3, 4)
    assert_err(function() local _ = x:narrow(2, 3, 3) end,
      "narrow: start 3 and length 3 are out of range for dimension 2 of size 4")
    assert_err(function() local _ = x:narrow(1, 0, 1) end, "narrow: start 0 and length 1")
    assert_err(function() local _ = x:narrow(1, 1, -1) end, "narrow: start 1 and length -1")
    assert_err(function() local _ = x:narrow(1, 5, 0) end, "narrow: start 5")
    assert_err(function() local _ = x:narrow(3, 1, 1) end, "narrow: dimension 3 is out of range")
    assert_err(function() local _ = recur.tensor(1):narrow(1, 1, 1) end, "narrow: cannot narrow a 0-d")
    assert_err(function() local _ = x:select(1, 0) end,
      "select: index 0 is out of range for dimension 1 of size 3")
    assert_err(function() local _ = x:select(2, 5) end,
      "select: index 5 is out of range for dimension 2 of size 4")
    assert_err(function() local _ = x:select(2, -5) end, "select: index -5 is out of range")
    assert_err(function() local _ = recur.tensor(1):select(1, 1) end, "select: cannot select")
    assert_err(function() local _ = x:select(1, 1.5) end, "select: argument #3 must be an integer")
  end)
end)

describe("expand", function()
  it("repeats size-1 dimensions with stride 0 and adds leading dimensions", function()
    local c = recur.tensor{{1}, {2}}
    local e = c:expand(2, 3)
    assert.same({{1, 1, 1}, {2, 2, 2}}, e:totable())
    assert.same({1, 0}, e:stride())
    local e3 = c:expand{4, -1, 2}
    assert.same({4, 2, 2}, e3:size())
    assert.same({0, 1, 0}, e3:stride())
    assert.same({{1, 1}, {2, 2}}, e3:select(1, 4):totable())
    c:set(7, 2, 1)
    assert.same({7, 7, 7}, e:select(1, 2):totable())
    assert.same({{1, 1, 1}, {7, 7, 7}}, c:expand_as(recur.zeros(2, 3)):totable())
    assert.same({2, 0}, recur.tensor{{1}, {2}}:expand(2, 0):size())
  end)

  it("rejects non-1 dimensions, -1 on new dimensions and fewer dimensions", function()
    local x = recur.zeros(2, 3)
    assert_err(function() local _ = x:expand(4, 3) end,
      "expand: cannot expand shape [2, 3] to [4, 3]", "dimension 1 has size 2")
    assert_err(function() local _ = x:expand(-1, 2, 3) end, "expand: size -1 is not allowed")
    assert_err(function() local _ = x:expand(3) end, "expand: the target shape [3] has fewer")
    assert_err(function() local _ = x:expand(2, -3) end, "expand: size -3 of dimension 2 is negative")
    assert_err(function() local _ = x:expand_as(recur.zeros(3, 3)) end, "expand: cannot expand")
  end)
end)

describe("squeeze, unsqueeze and flatten", function()
  it("squeeze drops all size-1 dimensions or one given dimension", function()
    local x = recur.zeros(1, 3, 1, 2)
    assert.same({3, 2}, x:squeeze():size())
    assert.same({3, 1, 2}, x:squeeze(1):size())
    assert.same({1, 3, 2}, x:squeeze(-2):size())
    assert.same({1, 3, 1, 2}, x:squeeze(2):size()) -- not size 1: unchanged, like PyTorch
    assert.same({}, recur.zeros(1, 1):squeeze():size())
    assert.same({3, 2}, recur.squeeze(x):size())
    local y = arange(6, 1, 6)
    y:squeeze():set(33, 4)
    assert.equal(33, y:get(1, 4))
  end)

  it("unsqueeze inserts a size-1 dimension at 1..ndim+1 or from the end", function()
    local x = arange(6, 2, 3)
    assert.same({1, 2, 3}, x:unsqueeze(1):size())
    assert.same({6, 3, 1}, x:unsqueeze(1):stride())
    assert.same({2, 1, 3}, x:unsqueeze(2):size())
    assert.same({2, 3, 1}, x:unsqueeze(3):size())
    assert.same({3, 1, 1}, x:unsqueeze(3):stride())
    assert.same({2, 3, 1}, x:unsqueeze(-1):size())
    assert.same({1, 2, 3}, x:unsqueeze(-3):size())
    assert.same({{{0}, {1}, {2}}, {{3}, {4}, {5}}}, recur.unsqueeze(x, 3):totable())
    assert.same({1}, recur.tensor(4):unsqueeze(1):size())
    x:unsqueeze(2):set(-4, 2, 1, 1)
    assert.equal(-4, x:get(2, 1))
  end)

  it("rejects out-of-range squeeze and unsqueeze dimensions", function()
    local x = recur.zeros(2, 1, 3)
    assert_err(function() local _ = x:squeeze(4) end, "squeeze: dimension 4 is out of range")
    assert_err(function() local _ = x:squeeze(0) end, "squeeze: dimension 0 is out of range")
    assert_err(function() local _ = x:unsqueeze(5) end,
      "unsqueeze: dimension 5 is out of range for a tensor with 3 dimensions (expected 1..4")
    assert_err(function() local _ = x:unsqueeze(0) end, "unsqueeze: dimension 0 is out of range")
    assert_err(function() local _ = x:unsqueeze(-5) end, "unsqueeze: dimension -5 is out of range")
    assert_err(function() local _ = recur.zeros(1, 1, 1, 1, 1, 1, 1, 1):unsqueeze(1) end,
      "unsqueeze: the tensor already has 8 dimensions")
  end)

  it("flatten merges a range of dimensions", function()
    local x = arange(24, 2, 3, 4)
    assert.same({24}, x:flatten():size())
    assert.same({2, 12}, x:flatten(2):size())
    assert.same({6, 4}, x:flatten(1, 2):size())
    assert.same({2, 3, 4}, x:flatten(2, 2):size())
    assert.same({6, 4}, recur.flatten(x, 1, -2):size())
    assert.same({1}, recur.tensor(3):flatten():size())
    local f = x:flatten()
    f:set(-9, 24)
    assert.equal(-9, x:get(2, 3, 4))
    local t = arange(6, 2, 3):t():flatten() -- needs a copy
    assert.same({0, 3, 1, 4, 2, 5}, t:totable())
    assert_err(function() local _ = x:flatten(3, 2) end,
      "flatten: start dimension 3 comes after end dimension 2")
    assert_err(function() local _ = x:flatten(4) end, "flatten: dimension 4 is out of range")
  end)
end)

describe("contiguous and clone", function()
  it("contiguous returns the tensor itself when already contiguous, else a copy", function()
    local x = arange(6, 2, 3)
    assert.is_true(x:contiguous() == x)
    local y = x:t()
    local c = y:contiguous()
    assert.is_false(c == y)
    assert.is_true(c:is_contiguous())
    assert.same({2, 1}, c:stride())
    assert.same({{0, 3}, {1, 4}, {2, 5}}, c:totable())
    c:set(100, 1, 1)
    assert.equal(0, x:get(1, 1))
  end)

  it("clone always copies", function()
    local x = arange(4)
    local c = x:clone()
    assert.is_false(c == x)
    assert.same({0, 1, 2, 3}, c:totable())
    c:set(9, 1)
    assert.equal(0, x:get(1))
    x:set(8, 2)
    assert.equal(1, c:get(2))
    local e = recur.clone(recur.tensor{1, 2}:expand(2, 2))
    assert.same({2, 1}, e:stride())
    assert.same({{1, 2}, {1, 2}}, e:totable())
  end)
end)

describe("views and autograd", function()
  it("gradcheck: view and reshape", function()
    local x = leaf{{0.3, -1.2, 0.5}, {2.0, 0.7, -0.4}}
    local w = leaf{{1.5, -0.5}, {0.25, 2.0}, {-1.0, 0.8}}
    assert.is_true(recur.gradcheck(function(a, b) return a:view(3, 2) * b end, {x, w}))
    assert.is_true(recur.gradcheck(function(a, b) return a:t():reshape(2, 3) * b:view(2, 3) end,
      {x, w}))
    assert.is_true(recur.gradcheck(function(a) return a:reshape(-1) * a:view(6) end, {x}))
    assert.is_true(recur.gradcheck(function(a, b) return a:view_as(b) * b end, {x, w}))
  end)

  it("gradcheck: transpose, t and permute", function()
    local x = leaf{{{0.3, -1.2}, {0.5, 2.0}, {0.7, -0.4}}, {{1.1, 0.2}, {-0.6, 0.9}, {1.3, -2.1}}}
    local w = leaf{{0.5, 1.5, -2.0}, {0.25, -0.75, 1.0}}
    assert.is_true(recur.gradcheck(function(a, b) return a:transpose(2, 3) * b end, {x, w}))
    assert.is_true(recur.gradcheck(function(a, b) return a:permute(3, 1, 2) * b end, {x, w}))
    assert.is_true(recur.gradcheck(function(a, b) return a:select(1, 2):t() * b end, {x, w}))
  end)

  it("gradcheck: narrow, select and expand", function()
    local x = leaf{{0.3, -1.2, 0.5, 0.9}, {2.0, 0.7, -0.4, -1.5}, {0.1, 1.6, -0.8, 0.6}}
    local c = leaf{{1.5}, {-0.5}}
    assert.is_true(recur.gradcheck(function(a, b) return a:narrow(2, 2, 2):narrow(1, 2, 2) * b end,
      {x, c}))
    assert.is_true(recur.gradcheck(function(a) return a:select(2, -1) * a:select(1, 2):narrow(1, 1, 3) end,
      {x}))
    assert.is_true(recur.gradcheck(function(a, b) return b:expand(3, 2, 4) * a:narrow(1, 1, 2) end,
      {x, c}))
    assert.is_true(recur.gradcheck(function(b) return b:expand_as(recur.zeros(2, 5)) * b end, {c}))
  end)

  it("gradcheck: squeeze, unsqueeze, flatten, contiguous and clone", function()
    local x = leaf{{{0.3, -1.2, 0.5}}, {{2.0, 0.7, -0.4}}}
    local w = leaf{0.5, -1.5, 2.0}
    assert.is_true(recur.gradcheck(function(a, b) return a:squeeze() * b end, {x, w}))
    assert.is_true(recur.gradcheck(function(a, b) return a:squeeze(2) * b:unsqueeze(1) end, {x, w}))
    assert.is_true(recur.gradcheck(function(a, b) return a:flatten() * b:expand(2, 3):flatten() end,
      {x, w}))
    assert.is_true(recur.gradcheck(function(a, b) return a:transpose(1, 3):contiguous() * b:unsqueeze(-1):unsqueeze(-1) end,
      {x, w}))
    assert.is_true(recur.gradcheck(function(a) return a:clone() * a end, {x}))
  end)

  it("backpropagates through a chain of views", function()
    local x = recur.arange(24):requires_grad(true)
    local y = x:view(2, 3, 4):transpose(1, 3):narrow(1, 2, 2):select(2, 1):reshape(-1)
      :view(2, 2, 1):expand(2, 2, 3):flatten()
    assert.same({1, 1, 1, 13, 13, 13, 2, 2, 2, 14, 14, 14}, y:totable()) -- torch
    assert.equal("FlattenBackward", y.grad_fn)
    y:backward(recur.arange(1, 13))
    assert.same({0, 6, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 33, 0, 0, 0, 0, 0, 0, 0, 0, 0},
      x.grad:totable()) -- torch
  end)

  it("names the nodes and keeps views attached to their base's history", function()
    local w = recur.tensor{{1, 2}, {3, 4}}:requires_grad(true)
    assert.equal("ViewBackward", w:view(4).grad_fn)
    assert.equal("TransposeBackward", w:t().grad_fn)
    assert.equal("NarrowBackward", w:narrow(1, 1, 1).grad_fn)
    assert.equal("SelectBackward", w:select(1, 1).grad_fn)
    assert.equal("ExpandBackward", w:expand(3, 2, 2).grad_fn)
    assert.equal("CloneBackward", w:clone().grad_fn)
    assert.is_nil(recur.tensor{1, 2}:view(2, 1).grad_fn)
    assert.is_nil(recur.no_grad(function() return w:view(4) end).grad_fn)
  end)

  it("forbids in-place ops on views of tensors that need grad", function()
    local w = recur.tensor{1, 2, 3, 4}:requires_grad(true)
    local x = w * 1
    local v = x:narrow(1, 2, 2)
    assert_err(function() v:add_(1) end, "add: in-place operation on a view")
    assert_err(function() w:view(2, 2):mul_(2) end, "mul: in-place operation on a view")
    assert.same({1, 2, 3, 4}, x:totable())
    -- without recording, writing through a view of a leaf is fine and visible
    recur.no_grad(function() w:narrow(1, 3, 2):fill_(0) end)
    assert.same({1, 2, 0, 0}, w:totable())
  end)

  it("a write through a view invalidates tensors saved for backward", function()
    local a = recur.tensor{1, 2, 3}
    local w = recur.tensor{4, 5, 6}:requires_grad(true)
    local y = w * a
    a:narrow(1, 2, 1):fill_(10)
    assert_err(function() y:backward(recur.ones(3)) end, "modified by an in-place operation")
  end)
end)

describe("lifetime and argument checks", function()
  it("views keep the storage alive after the base is closed", function()
    local x = arange(6, 2, 3)
    local v = x:t()
    x:close()
    assert.same({{0, 3}, {1, 4}, {2, 5}}, v:totable())
  end)

  it("rejects closed tensors and non-tensors, naming the function", function()
    local t = recur.zeros(2, 3)
    t:close()
    assert_err(function() local _ = t:view(6) end, "view: argument #1 is a closed tensor")
    assert_err(function() local _ = t:reshape(6) end, "reshape: argument #1 is a closed tensor")
    assert_err(function() local _ = t:t() end, "t: argument #1 is a closed tensor")
    assert_err(function() local _ = t:transpose(1, 2) end, "transpose: argument #1 is a closed")
    assert_err(function() local _ = t:permute(2, 1) end, "permute: argument #1 is a closed")
    assert_err(function() local _ = t:narrow(1, 1, 1) end, "narrow: argument #1 is a closed")
    assert_err(function() local _ = t:select(1, 1) end, "select: argument #1 is a closed")
    assert_err(function() local _ = t:expand(2, 3) end, "expand: argument #1 is a closed")
    assert_err(function() local _ = t:squeeze() end, "squeeze: argument #1 is a closed")
    assert_err(function() local _ = t:unsqueeze(1) end, "unsqueeze: argument #1 is a closed")
    assert_err(function() local _ = t:flatten() end, "flatten: argument #1 is a closed")
    assert_err(function() local _ = t:contiguous() end, "contiguous: argument #1 is a closed")
    assert_err(function() local _ = t:clone() end, "clone: argument #1 is a closed")
    local live = recur.zeros(6)
    assert_err(function() local _ = live:view_as(t) end, "view_as: argument #2 is a closed")
    assert_err(function() local _ = live:expand_as(t) end, "expand_as: argument #2 is a closed")
    assert_err(function() local _ = recur.reshape({1, 2}, 2) end,
      "reshape: argument #1 must be a tensor, got table")
    assert_err(function() local _ = live:transpose(1, "a") end, "transpose: argument #3")
  end)
end)
