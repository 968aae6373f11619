-- Elementwise math: values, broadcasting, gradients, in-place forms and their rules.
local recur = require "recur"
local T = recur.tensor

local err_of = require("tests.helpers").err_of

local near = require("tests.helpers").near

describe("binary ops", function()
  local a = T{{1, 2, 3}, {4, 5, 6}}
  local b = T{10, 20, 30}
  it("compute with operators and methods", function()
    near({{11, 22, 33}, {14, 25, 36}}, a + b)
    near({{-9, -18, -27}, {-6, -15, -24}}, a - b)
    near({{10, 40, 90}, {40, 100, 180}}, a * b)
    near({{0.1, 0.1, 0.1}, {0.4, 0.25, 0.2}}, a / b)
    near({{1, 4, 9}, {16, 25, 36}}, a ^ 2)
    near({{2, 4, 8}, {16, 32, 64}}, 2 ^ a)
    near({{0, 1, 2}, {3, 4, 5}}, a - 1)
    near({{9, 8, 7}, {6, 5, 4}}, 10 - a)
    near({{-1, -2, -3}, {-4, -5, -6}}, -a)
    near({{21, 42, 63}, {24, 45, 66}}, a:add(b, 2))
  end)
  it("broadcast like NumPy", function()
    local col = T{{1}, {2}}
    assert.same({2, 3}, (col + T{10, 20, 30}):size())
    near({{11, 21, 31}, {12, 22, 32}}, col + T{10, 20, 30})
    assert.same({4, 2, 3}, (recur.zeros(4, 1, 3) + recur.zeros(2, 1)):size())
    assert.same({}, (T(2) * T(3)):size())
  end)
  it("rejects shapes that cannot broadcast, naming both", function()
    local e = err_of(function() return recur.zeros(2, 3) + recur.zeros(4) end)
    assert.truthy(e:find("add: shapes %[2, 3%] and %[4%] cannot be broadcast"), e)
    assert.truthy(err_of(function() return recur.zeros(2) * "x" end):find("mul: operands must be tensors or numbers"))
  end)
  it("compares to 0/1 tensors and selects with where", function()
    near({0, 1, 0}, T{1, 2, 3}:eq(2))
    near({1, 0, 1}, T{1, 2, 3}:ne(2))
    near({1, 0, 0}, T{1, 2, 3}:lt(2))
    near({1, 1, 0}, T{1, 2, 3}:le(2))
    near({0, 0, 1}, T{1, 2, 3}:gt(2))
    near({0, 1, 1}, T{1, 2, 3}:ge(2))
    near({10, 2, 30}, recur.where(T{1, 0, 1}, T{10, 20, 30}, 2))
    near({{1, 0}, {1, 0}}, recur.where(T{1, 0}, 1, T{{0}, {0}}))
  end)
  it("maximum and minimum", function()
    near({3, 2, 5}, recur.maximum(T{1, 2, 5}, T{3, 1, 4}) )
    near({1, 1, 4}, recur.minimum(T{1, 2, 5}, T{3, 1, 4}))
  end)
end)

describe("unary ops", function()
  local x = T{-1.5, -0.5, 0.25, 2}
  it("compute the standard functions", function()
    near({math.exp(-1.5), math.exp(-0.5), math.exp(0.25), math.exp(2)}, x:exp())
    near({1.5, 0.5, 0.25, 2}, x:abs())
    near({0, 0, 0.25, 2}, x:relu())
    near({-1, -1, 1, 1}, x:sign())
    near({-2, -1, 0, 2}, x:floor())
    near({-2, -0, 0, 2}, x:round()) -- half to even, as PyTorch
    near({-1, -0, 1, 2}, x:ceil())
    near({math.log(0.25), math.log(2)}, T{0.25, 2}:log())
    near({0.5, 2}, T{0.25, 4}:sqrt())
    local th = {}
    for i, v in ipairs({-1.5, -0.5, 0.25, 2}) do th[i] = (math.exp(2 * v) - 1) / (math.exp(2 * v) + 1) end
    near(th, x:tanh())
    near({1 / (1 + math.exp(1.5)), 1 / (1 + math.exp(0.5)), 1 / (1 + math.exp(-0.25)), 1 / (1 + math.exp(-2))}, x:sigmoid())
    near({math.log(1 + math.exp(-1.5)), math.log(1 + math.exp(2))}, T{-1.5, 2}:softplus())
    near({1, 0}, T{-100, 100}:sigmoid():lt(0.5)) -- stable at extremes
  end)
  it("clamp with either bound", function()
    near({-1, -0.5, 0.25, 1}, x:clamp(-1, 1))
    near({0, 0, 0.25, 2}, x:clamp(0))
    near({-1.5, -0.5, 0.25, 1}, x:clamp(nil, 1))
    near({-1.5, -0.5, 0.25, 1}, x:clamp{max = 1})
    assert.truthy(err_of(x.clamp, x, 2, 1):find("clamp: min 2 is greater than max 1"))
  end)
  it("functions are also in the module", function()
    near({1, 2}, recur.abs(T{-1, 2}))
    assert.truthy(err_of(recur.exp, 3):find("exp: argument #1 must be a tensor"))
  end)
end)

describe("gradients", function()
  local a = T{{0.3, -0.7, 1.1}, {0.9, 0.4, -0.2}}:requires_grad(true)
  local b = T{0.5, 1.5, -1.2}:requires_grad(true)
  local pos = T{{0.3, 0.7, 1.1}, {0.9, 0.4, 0.2}}:requires_grad(true)
  local ok = recur.gradcheck
  it("binary ops with broadcasting", function()
    assert.is_true(ok(function(x, y) return x + y end, {a, b}))
    assert.is_true(ok(function(x, y) return x - y end, {a, b}))
    assert.is_true(ok(function(x, y) return x * y end, {a, b}))
    assert.is_true(ok(function(x, y) return x / y end, {a, b}))
    assert.is_true(ok(function(x, y) return x ^ y end, {pos, b}))
    assert.is_true(ok(function(x) return x ^ 3 end, {a}))
    assert.is_true(ok(function(x) return 2 ^ x end, {a}))
    assert.is_true(ok(function(x, y) return recur.maximum(x, y) end, {a, b}))
    assert.is_true(ok(function(x, y) return recur.minimum(x, y) end, {a, b}))
    assert.is_true(ok(function(x, y) return recur.where(x:gt(0), x, y) end, {a, b}))
    assert.is_true(ok(function(x) return x:add(x, 3) end, {a}))
  end)
  it("unary ops", function()
    for _, name in ipairs{"neg", "exp", "tanh", "sigmoid", "abs", "relu", "sin", "cos", "square",
                          "softplus", "expm1"} do
      assert.is_true(ok(function(x) return x[name](x) end, {a}), name)
    end
    for _, name in ipairs{"log", "sqrt", "rsqrt", "reciprocal", "log1p"} do
      assert.is_true(ok(function(x) return x[name](x) end, {pos}), name)
    end
    assert.is_true(ok(function(x) return x:clamp(-0.5, 0.5) end, {a}))
  end)
  it("round, floor, sign have zero gradient", function()
    local x = T{0.3, 1.7}:requires_grad(true)
    x:round():backward(recur.ones(2))
    near({0, 0}, x.grad)
  end)
  it("catches a wrong gradient", function()
    local bad = recur.Function{
      forward = function(ctx, x) return x * 2 end,
      backward = function(ctx, g) return g * 3 end }
    local okk, msg = ok(function(x) return bad(x) end, {a}, {raise = false})
    assert.is_false(okk)
    local an, nu = msg:match("analytic ([%-%d%.e]+), numeric ([%-%d%.e]+)")
    assert.is_near(1.5, tonumber(an) / tonumber(nu), 1e-3)
  end)
end)

describe("in-place ops", function()
  it("modify the tensor and return it", function()
    local t = T{1, 2, 3}
    assert.is_true(t:add_(1) == t)
    near({2, 3, 4}, t)
    t:mul_(T{2, 2, 2}); near({4, 6, 8}, t)
    t:sub_(1); near({3, 5, 7}, t)
    t:div_(2); near({1.5, 2.5, 3.5}, t)
    t:add_(T{1, 1, 1}, 2); near({3.5, 4.5, 5.5}, t)
    t:clamp_(4, 5); near({4, 4.5, 5}, t)
    t:fill_(7); near({7, 7, 7}, t)
    t:zero_(); near({0, 0, 0}, t)
    t:copy_(T{9, 8, 7}); near({9, 8, 7}, t)
    t:copy_(1); near({1, 1, 1}, t)
    t:exp_(); near({math.exp(1), math.exp(1), math.exp(1)}, t)
  end)
  it("broadcast the operand but never the target", function()
    local t = recur.zeros(2, 3)
    t:add_(T{1, 2, 3})
    near({{1, 2, 3}, {1, 2, 3}}, t)
    assert.truthy(err_of(function() return recur.zeros(3):add_(recur.zeros(2, 3)) end)
      :find("add: in%-place result would have shape %[2, 3%], not the target's %[3%]"))
  end)
  it("refuse leaves that require grad, except under no_grad", function()
    local w = T{1, 2}:requires_grad(true)
    assert.truthy(err_of(w.add_, w, 1):find("in%-place operation on a leaf tensor that requires grad"))
    recur.no_grad(function() w:add_(1) end)
    near({2, 3}, w)
  end)
  it("continue the history of a non-leaf", function()
    local w = T{1, 2}:requires_grad(true)
    local y = w * 3
    y:add_(w)        -- y = 3w + w
    y:backward(recur.ones(2))
    near({4, 4}, w.grad)
  end)
  it("detect a saved tensor modified in place before backward", function()
    local w = T{1, 2}:requires_grad(true)
    local h = w * 1
    local y = h:exp()   -- saves its output
    y:mul_(2)           -- modifies what exp's backward needs
    local e = err_of(function() y:backward(recur.ones(2)) end)
    assert.truthy(e:find("modified by an in%-place operation"), e)
  end)
end)

describe("in-place ops and views under autograd", function()
  it("refuse to write a base whose views have history (the views would go stale)", function()
    local w = recur.tensor{{1, 2}, {3, 4}}:requires_grad(true)
    local x = w * 1
    local v = x:view(4)
    local ok, e = pcall(function() x:mul_(3) end)
    assert.is_false(ok)
    assert.truthy(tostring(e):find("mul: in%-place operation on a tensor whose views take part in autograd"))
    assert.same({1, 2, 3, 4}, v:totable())
  end)
end)

-- The rows of an X-macro list (`#define MACRO(X)` in FILE, one row `X(...)` per op) as tables of
-- their columns: the lists every unary and binary op is generated from.
local function list_rows(file, macro, x)
  local h = assert(io.open(file))
  local src = h:read("a")
  h:close()
  local from = assert(src:find("#define " .. macro .. "(" .. x .. ")", 1, true), macro)
  local body = {}
  for line in src:sub(from):gmatch("[^\n]*") do
    body[#body + 1] = line
    if line:sub(-1) ~= "\\" then break end
  end
  body = table.concat(body, " "):gsub("\\", " "):gsub("/%*.-%*/", " ")
  body = body:sub(#("#define " .. macro .. "(" .. x .. ")") + 1)
  local rows, pos = {}, 1
  while true do
    local s = body:find("%f[%w_]" .. x .. "%(", pos)
    if not s then break end
    local args, depth, start, i = {}, 0, s + 2, s + 2
    while true do
      local c = body:sub(i, i)
      assert(c ~= "", "unbalanced row in " .. file)
      if c == "(" then depth = depth + 1
      elseif c == ")" and depth > 0 then depth = depth - 1
      elseif (c == "," or c == ")") and depth == 0 then
        args[#args + 1] = body:sub(start, i - 1):match("^%s*(.-)%s*$")
        start = i + 1
        if c == ")" then break end
      end
      i = i + 1
    end
    rows[#rows + 1] = args
    pos = i + 1
  end
  return rows
end

local function reads(expr, v) return expr:find("%f[%w_]" .. v .. "%f[^%w_]") ~= nil end

describe("the unary op list (runtime/ops_unary.h)", function()
  local rows = list_rows("runtime/ops_unary.h", "RC_UNARY_OPS", "X")
  it("has the ops, 8 columns each", function()
    assert.is_true(#rows >= 20)
    for _, r in ipairs(rows) do assert.equal(8, #r, table.concat(r, ", ")) end
  end)

  it("saves what each derivative reads, and nothing else", function()
    for _, r in ipairs(rows) do
      local d, saves = r[5], r[6]
      assert.is_false(reads(d, "x") and reads(d, "y"), r[2] .. ": reads both x and y")
      local want = reads(d, "x") and "SAVES_X" or reads(d, "y") and "SAVES_Y" or "SAVES_NONE"
      assert.equal(want, saves, r[2] .. ": derivative " .. d)
    end
  end)

  -- views: rows contiguous along the last dimension (a narrowed gate block) go through the
  -- contiguous loop row by row, other strides element by element; the same bits as the op on
  -- a contiguous copy either way, and an in-place op on a view leaves the rest alone
  it("give a view the bits of its contiguous copy, out of place and in place", function()
    recur.seed(3)
    local base = recur.rand(5, 4, 37) * 1.5 + 0.1 -- positive: log, sqrt, rsqrt are defined
    local views = {
      base:narrow(3, 5, 29),           -- rows of 29 contiguous floats, row stride 37
      base:narrow(2, 2, 2),            -- 3-D, a middle dimension narrowed
      base:select(3, 4),               -- last stride 37
      base:narrow(3, 1, 8):transpose(2, 3),
    }
    for _, r in ipairs(rows) do
      local name = r[2]
      for i, v in ipairs(views) do
        local want = recur[name](v:contiguous())
        local got = recur[name](v)
        assert.equal(0, (got - want):abs():max():item(), name .. " view " .. i)
        local b = base:clone()
        local bv = ({ b:narrow(3, 5, 29), b:narrow(2, 2, 2), b:select(3, 4),
          b:narrow(3, 1, 8):transpose(2, 3) })[i]
        bv[name .. "_"](bv)
        assert.equal(0, (bv - want):abs():max():item(), name .. "_ view " .. i)
        bv:copy_(v) -- the rest of b must still be base
        assert.equal(0, (b - base):abs():max():item(), name .. "_ view " .. i .. " outside")
      end
    end
  end)

  it("gives each row its function, methods, node name and argument check", function()
    for _, r in ipairs(rows) do
      local name, node = r[2], r[3] .. "Backward"
      local x = T{0.25, 0.5}:requires_grad(true)
      assert.equal(node, recur[name](x).grad_fn, name)
      assert.equal(node, x[name](x).grad_fn, name)
      local y = T{0.25, 0.5}
      assert.equal(y, y[name .. "_"](y), name .. "_")
      local e = err_of(function() recur[name](3) end)
      assert.truthy(e:find(name .. ": argument #1 must be a tensor, got number", 1, true), e)
    end
  end)
end)

describe("the binary op list (runtime/ops_binary.h)", function()
  local rows = list_rows("runtime/ops_binary.h", "RC_BINARY_OPS", "X")
  local cmps = list_rows("runtime/ops_binary.h", "RC_COMPARISON_OPS", "C")
  it("has the ops, 9 columns each, and the comparisons, 3 columns each", function()
    assert.is_true(#rows >= 7)
    for _, r in ipairs(rows) do assert.equal(9, #r, table.concat(r, ", ")) end
    assert.is_true(#cmps >= 6)
    for _, r in ipairs(cmps) do assert.equal(3, #r, table.concat(r, ", ")) end
  end)

  it("saves what each gradient reads, and nothing else", function()
    for _, r in ipairs(rows) do
      local gx, gy, saves = r[5], r[6], r[7]
      local both = gx .. " " .. gy
      local want = reads(both, "z") and "SAVES_XYZ" or (reads(both, "x") or reads(both, "y"))
        and "SAVES_XY" or "SAVES_NONE"
      assert.equal(want, saves, r[2] .. ": gradients " .. both)
      assert.truthy(r[9] == "OPERATOR" or r[9] == "FUNCTION", r[2] .. ": forms " .. r[9])
    end
  end)

  -- positive, and no ties between a and b: every row's gradient is smooth there
  local a = T{{0.3, 0.7, 1.1}, {0.9, 0.4, 0.2}}
  local b = T{0.5, 1.5, 1.2}
  it("gives each row its function, method, node name, gradient and operand check", function()
    for _, r in ipairs(rows) do
      local name, node = r[2], r[3] .. "Backward"
      local x, y = a:clone():requires_grad(true), b:clone():requires_grad(true)
      local z = recur[name](x, y)
      assert.equal(node, z.grad_fn, name)
      assert.equal(node, x[name](x, y).grad_fn, name)
      assert.same(z:totable(), x[name](x, y):totable(), name)
      assert.is_true(recur.gradcheck(function(p, q) return recur[name](p, q) end, {x, y}), name)
      local e = err_of(function() recur[name](recur.zeros(2), "s") end)
      assert.truthy(e:find(name .. ": operands must be tensors or numbers, got userdata and string",
        1, true), e)
    end
  end)

  it("gives the OPERATOR rows x:<name>_() and a Lua operator, the others neither", function()
    local meta = debug.getmetatable(a)
    for _, r in ipairs(rows) do
      local name, want = r[2], recur[r[2]](a, b):totable()
      if r[9] == "OPERATOR" then
        local t = a:clone()
        assert.equal(t, t[name .. "_"](t, b), name .. "_")
        assert.same(want, t:totable(), name .. "_")
        assert.same(want, meta["__" .. name](a, b):totable(), "__" .. name)
      else
        assert.is_nil(a[name .. "_"], name .. "_")
        assert.is_nil(meta["__" .. name], "__" .. name)
      end
    end
  end)

  it("gives each comparison its function and method, 0/1 results and no node", function()
    for _, r in ipairs(cmps) do
      local name = r[2]
      local x = a:clone():requires_grad(true)
      local z = recur[name](x, 0.7)
      assert.is_nil(z.grad_fn, name)
      assert.same(z:totable(), x[name](x, 0.7):totable(), name)
      for _, row in ipairs(z:totable()) do
        for _, v in ipairs(row) do assert.truthy(v == 0 or v == 1, name) end
      end
      assert.is_nil(a[name .. "_"], name .. "_")
      local e = err_of(function() recur[name](recur.zeros(2), "s") end)
      assert.truthy(e:find(name .. ": operands must be tensors or numbers, got userdata and string",
        1, true), e)
    end
  end)
end)
