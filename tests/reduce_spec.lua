-- Reductions, softmax, log_softmax and cumsum: values (reference numbers from PyTorch
-- or worked by hand), shapes, keepdim, negative dims, gradients, empty tensors, errors.
local recur = require "recur"

local H = require "tests.helpers"
local near, err_of = H.near_flat, H.err_of

local function has(msg, pat)
  assert(msg:find(pat), "message '" .. msg .. "' lacks '" .. pat .. "'")
end

local A = {{0.5, -1.25, 2.0, 3.5}, {1.5, 0.25, -0.75, 2.25}, {-2.0, 1.0, 0.125, -0.5}}
-- 2 x 3 x 2
local C = {{{0.3, -1.2}, {2.1, 0.4}, {-0.6, 1.7}}, {{1.1, 0.9}, {-0.2, -1.5}, {0.8, 2.6}}}

describe("sum, mean, prod", function()
  local a = recur.tensor(A)
  it("reduce all elements to a 0-d tensor", function()
    assert.same({}, a:sum():size())
    near(6.625, a:sum())
    near(0.5520833134651184, a:mean())
    near(0.3460693359375, a:prod())
    near(6.625, recur.sum(a))
  end)
  it("reduce one dim, with negative dims and keepdim", function()
    near({0.0, 0.0, 1.375, 5.25}, a:sum(1))
    near({4.75, 3.25, -1.375}, a:sum(2))
    near({4.75, 3.25, -1.375}, a:sum(-1))
    near({0.0, 0.0, 1.375, 5.25}, a:sum(-2))
    near({1.1875, 0.8125, -0.34375}, a:mean(-1))
    near({0.0, 0.0, 0.4583333432674408, 1.75}, a:mean(1))
    near({-1.5, -0.3125, -0.1875, -3.9375}, a:prod(1))
    near({-4.375, -0.6328125, 0.125}, a:prod(2))
    assert.same({3}, a:sum(2):size())
    assert.same({3, 1}, a:sum(2, true):size())
    assert.same({1, 4}, a:mean(1, true):size())
    assert.same({1, 4}, a:sum{dim = 1, keepdim = true}:size())
    near({{4.75}, {3.25}, {-1.375}}, a:sum(2, true))
    assert.same({1, 1}, a:sum(nil, true):size())
  end)
  it("reduce the middle dim of a 3-d tensor", function()
    local c = recur.tensor(C)
    near({{1.8, 0.9}, {1.7, 2.0}}, c:sum(2))
    assert.same({2, 1, 2}, c:sum(2, true):size())
    near({{-0.36, 0.84, -1.02}, {0.99, 0.30, 2.08}}, c:prod(3))
    -- a bigger one, checked against plain Lua loops
    local t, rows = {}, {}
    for i = 1, 3 do
      t[i] = {}
      for j = 1, 5 do
        t[i][j] = {}
        for k = 1, 7 do t[i][j][k] = ((i * 31 + j * 17 + k * 7) % 23) / 4 - 2 end
      end
    end
    for i = 1, 3 do
      rows[i] = {}
      for k = 1, 7 do
        local s = 0
        for j = 1, 5 do s = s + t[i][j][k] end
        rows[i][k] = s / 5
      end
    end
    near(rows, recur.tensor(t):mean(2))
  end)
  it("sum accumulates in double", function()
    local vals = {}
    for i = 1, 200000 do vals[i] = 0.1 end
    -- float32 0.1 is 0.100000001490116; a float accumulator drifts by ~1e-3 relative
    near(20000.0003, recur.tensor(vals):sum(), 1e-7)
  end)
  it("work on 0-d tensors", function()
    local s = recur.tensor(3)
    near(3, s:sum())
    near(3, s:sum(1))
    near(3, s:mean(-1))
    assert.same({}, s:sum(1, true):size())
  end)
  it("handle empty tensors", function()
    near(0, recur.zeros(0):sum())
    near(1, recur.zeros(0):prod())
    assert.is_true(recur.zeros(0):mean():item() ~= recur.zeros(0):mean():item()) -- NaN
    near({0, 0, 0}, recur.zeros(0, 3):sum(1))
    assert.same({0}, recur.zeros(0, 3):sum(2):size())
  end)
end)

describe("max and min", function()
  local a = recur.tensor(A)
  it("over all elements return 0-d tensors", function()
    assert.same({}, a:max():size())
    near(3.5, a:max())
    near(-2.0, a:min())
    near(3.5, recur.max(a))
  end)
  it("along a dim return values and 1-based indices", function()
    local v, i = a:max(2)
    near({3.5, 2.25, 1.0}, v)
    near({4, 4, 2}, i)
    v, i = a:min(1)
    near({-2.0, -1.25, -0.75, -0.5}, v)
    near({3, 1, 2, 3}, i)
    v, i = a:max(-1, true)
    assert.same({3, 1}, v:size())
    assert.same({3, 1}, i:size())
    near({{4}, {4}, {2}}, i)
    local c = recur.tensor(C)
    v, i = c:max(2)
    near({{2.1, 1.7}, {1.1, 2.6}}, v)
    near({{2, 3}, {1, 3}}, i)
  end)
  it("pick the first of tied elements", function()
    local _, i = recur.tensor{{1, 3, 3}, {2, 0, 2}}:max(2)
    near({2, 1}, i)
  end)
  it("with a tensor argument are elementwise", function()
    local b = recur.tensor{{1, 1, 1, 1}}
    near({{1, 1, 2, 3.5}, {1.5, 1, 1, 2.25}, {1, 1, 1, 1}}, a:max(b))
    near({{0.5, -1.25, 1, 1}, {1, 0.25, -0.75, 1}, {-2, 1, 0.125, -0.5}}, recur.min(a, b))
  end)
  it("propagate NaN", function()
    local n = recur.tensor{1, 0 / 0, 3}
    assert.is_true(n:max():item() ~= n:max():item())
    local _, i = n:max(1)
    near(2, i)
  end)
  it("on empty tensors are errors (no identity)", function()
    has(err_of(function() return recur.zeros(0):max() end), "max: cannot reduce an empty tensor")
    has(err_of(function() return recur.zeros(2, 0):min(2) end), "min: cannot reduce dimension 2")
    has(err_of(function() return recur.zeros(0):argmax() end), "argmax: cannot reduce")
    -- reducing a non-empty dim of an empty tensor is fine
    local v, i = recur.zeros(0, 3):max(2)
    assert.same({0}, v:size())
    assert.same({0}, i:size())
  end)
end)

describe("argmax and argmin", function()
  local a = recur.tensor(A)
  it("give 1-based flat indices over all elements", function()
    near(4, a:argmax())
    near(9, a:argmin())
    near(12, recur.argmax(recur.tensor(C)))
  end)
  it("give 1-based indices along a dim", function()
    near({2, 3, 1, 1}, a:argmax(1))
    near({2, 3, 1}, a:argmin(2))
    near({2, 3, 1}, a:argmin(-1))
    assert.same({3, 1}, a:argmin(2, true):size())
    near({{2, 3}, {1, 3}}, recur.tensor(C):argmax(2))
  end)
end)

describe("indices past 2^24", function()
  it("are refused: float32 cannot hold them exactly", function()
    local long = recur.zeros(1, 1):expand(2, 2 ^ 24 + 1) -- a view: nothing is allocated
    local msg = "dimension 2 of shape [2, 16777217] has 16777217 elements, more than 2^24, the "
      .. "largest count whose indices float32 holds exactly"
    H.fails_with(function() return long:argmax(2) end, "argmax: " .. msg)
    H.fails_with(function() return long:argmin(-1) end, "argmin: " .. msg)
    H.fails_with(function() return long:max(2) end, "max: " .. msg)
    H.fails_with(function() return long:min(2, true) end, "min: " .. msg)
    H.fails_with(function() return recur.argmax(long) end,
      "argmax: shape [2, 16777217] has 33554434 elements, more than 2^24")
    H.fails_with(function() return recur.zeros(1):expand(2 ^ 24 + 1):argmin(1) end,
      "argmin: dimension 1 of shape [16777217] has 16777217 elements")
  end)
end)

describe("var and std", function()
  local a = recur.tensor(A)
  it("are unbiased by default", function()
    near(2.509824752807617, a:var())
    near(1.5842427015304565, a:std())
    near({3.25, 1.3125, 1.9739583730697632, 4.1875}, a:var(1))
    near({2.0348525047302246, 1.328768253326416, 1.2639843225479126}, a:std(2))
  end)
  it("take unbiased as an argument or in an options table", function()
    near({3.10546875, 1.32421875, 1.1982421875}, a:var(2, false, false))
    near({3.10546875, 1.32421875, 1.1982421875}, a:var{dim = 2, unbiased = false})
    near({1.471960186958313, 0.9354143738746643, 1.1471583843231201, 1.670828104019165},
      a:std{dim = 1, unbiased = false})
    assert.same({1, 4}, a:std{dim = -2, keepdim = true}:size())
    near({{1.89, 2.11}, {0.46333333, 4.24333333}}, recur.tensor(C):var(2))
  end)
  it("of one element is NaN when unbiased, 0 when biased", function()
    local v = recur.tensor{2}:var()
    assert.is_true(v:item() ~= v:item())
    near(0, recur.tensor{2}:var{unbiased = false})
  end)
end)

describe("logsumexp", function()
  local a = recur.tensor(A)
  it("matches PyTorch", function()
    near(4.139299392700195, a:logsumexp())
    near({1.8350975513458252, 1.4560097455978394, 2.1966211795806885, 3.7660653591156006},
      a:logsumexp(1))
    near({3.7480850219726562, 2.7553036212921143, 1.5245978832244873}, a:logsumexp(-1))
    assert.same({3, 1}, a:logsumexp(2, true):size())
    near({{2.3090481758117676, 1.9833389520645142}, {1.7998000383377075, 2.7817013263702393}},
      recur.tensor(C):logsumexp(2))
  end)
  it("is stable for large inputs and -inf for empty or all -inf", function()
    near({1001.4075927734375, 1000.0},
      recur.tensor{{1000, 1001, 999}, {-1000, 0, 1000}}:logsumexp(2))
    near(-math.huge, recur.zeros(0):logsumexp())
    near(-math.huge, recur.tensor{-math.huge, -math.huge}:logsumexp())
  end)
end)

describe("norm", function()
  local a = recur.tensor(A)
  it("defaults to the 2-norm over all elements", function()
    near(5.591567516326904, a:norm())
    near(5.591567516326904, a:norm("fro"))
  end)
  it("supports p = 1, 3, inf, -inf, 0, 0.5", function()
    near(15.625, a:norm(1))
    near(4.259530544281006, a:norm(3))
    near(3.5, a:norm(math.huge))
    near(12, a:norm(0))
    near({2.5495097637176514, 1.620185136795044, 2.139655351638794, 4.190763473510742},
      a:norm(2, 1))
    near({7.25, 4.75, 3.625}, a:norm(1, 2))
    near({3.5, 2.25, 2.0}, a:norm(math.huge, -1))
    near({0.5, 0.25, 0.125}, a:norm(-math.huge, 2))
    near({11.196151733398438, 6.854101657867432, 6.936861038208008, 16.629554748535156},
      a:norm(0.5, 1), 1e-5)
    assert.same({3, 1}, a:norm(2, 2, true):size())
    assert.same({3, 1}, a:norm{p = 1, dim = 2, keepdim = true}:size())
    near({{1.2369316816329956, 2.1377556324005127, 1.8027757406234741},
      {1.421267032623291, 1.5132745504379272, 2.7202939987182617}}, recur.tensor(C):norm(2, -1))
  end)
  it("of an empty tensor is 0", function()
    near(0, recur.zeros(0):norm())
  end)
end)

describe("softmax and log_softmax", function()
  local a = recur.tensor(A)
  it("match PyTorch along the last and the first dim", function()
    near({{0.038848526775836945, 0.006750861648470163, 0.17410703003406525, 0.7802935242652893},
      {0.28498926758766174, 0.08165079355239868, 0.03003764897584915, 0.6033223271369934},
      {0.029463648796081543, 0.5917932391166687, 0.2466961145401001, 0.1320469230413437}},
      a:softmax(2))
    near({{0.2631325125694275, 0.06680283695459366, 0.8215017318725586, 0.766389012336731},
      {0.7152683138847351, 0.2993895411491394, 0.05251684784889221, 0.21957412362098694},
      {0.02159923128783703, 0.6338076591491699, 0.1259813755750656, 0.014036904089152813}},
      a:softmax(1))
    near({{-3.2480850219726562, -4.998085021972656, -1.7480851411819458, -0.2480851113796234},
      {-1.2553036212921143, -2.5053036212921143, -3.5053036212921143, -0.505303680896759},
      {-3.5245978832244873, -0.5245979428291321, -1.3995978832244873, -2.0245978832244873}},
      a:log_softmax(-1))
    near({{{0.1341162621974945, 0.04144703596830368}, {0.8113560676574707, 0.20528851449489594},
      {0.054527610540390015, 0.7532644867897034}},
      {{0.49668464064598083, 0.15233071148395538}, {0.13536234200000763, 0.013819129206240177},
        {0.36795300245285034, 0.8338502049446106}}}, recur.softmax(recur.tensor(C), 2))
  end)
  it("rows sum to 1", function()
    near({1, 1, 1}, a:softmax(2):sum(2))
    near({1, 1, 1, 1}, a:softmax(1):sum(1))
    near({1, 1, 1}, a:log_softmax(2):exp():sum(2))
  end)
  it("are stable for large inputs", function()
    local b = recur.tensor{{1000, 1001, 999}, {-1000, 0, 1000}}
    near({{-1.4076058864593506, -0.40760594606399536, -2.4076058864593506}, {-2000, -1000, 0}},
      b:log_softmax(2))
    near({{0.2447284758090973, 0.6652409434318542, 0.09003057330846786}, {0, 0, 1}},
      b:softmax(2))
  end)
  it("of a 0-d tensor is 1 (log: 0)", function()
    near(1, recur.tensor(5):softmax(1))
    near(0, recur.tensor(5):log_softmax(-1))
  end)
end)

describe("cumsum", function()
  local a = recur.tensor(A)
  it("matches PyTorch along each dim", function()
    near({{0.5, -1.25, 2.0, 3.5}, {2.0, -1.0, 1.25, 5.75}, {0.0, 0.0, 1.375, 5.25}}, a:cumsum(1))
    near({{0.5, -0.75, 1.25, 4.75}, {1.5, 1.75, 1.0, 3.25}, {-2.0, -1.0, -0.875, -1.375}},
      a:cumsum(-1))
    near({{{0.3, -1.2}, {2.4, -0.8}, {1.8, 0.9}}, {{1.1, 0.9}, {0.9, -0.6}, {1.7, 2.0}}},
      recur.cumsum(recur.tensor(C), 2))
    assert.same({0, 3}, recur.zeros(0, 3):cumsum(1):size())
  end)
end)

describe("gradients", function()
  local function leaf(t)
    return recur.tensor(t):requires_grad(true)
  end
  -- no ties and no element within 0.02 of another in the same slice (for max/min)
  local G2 = {{0.5, -1.25, 2.0, 3.5}, {1.5, 0.25, -0.75, 2.25}, {-2.0, 1.0, 0.125, -0.5}}
  local G3 = {{{0.3, -1.2}, {2.1, 0.4}, {-0.6, 1.7}}, {{1.1, 0.9}, {-0.2, -1.5}, {0.8, 2.6}}}
  local cases = {
    {"sum", function(x) return x:sum() end},
    {"sum(dim)", function(x) return x:sum(2) end},
    {"sum(-1, keepdim)", function(x) return x:sum(-1, true) end},
    {"mean", function(x) return x:mean() end},
    {"mean(dim)", function(x) return x:mean(1) end},
    {"prod", function(x) return x:prod() end},
    {"prod(dim)", function(x) return x:prod(2) end},
    {"max", function(x) return x:max() end},
    {"min", function(x) return x:min() end},
    {"max(dim) values", function(x) return (x:max(2)) end},
    {"min(dim, keepdim) values", function(x) return (x:min(1, true)) end},
    {"var", function(x) return x:var() end},
    {"var(dim, biased)", function(x) return x:var(2, false, false) end},
    {"std", function(x) return x:std() end},
    {"std(dim)", function(x) return x:std(1) end},
    {"logsumexp", function(x) return x:logsumexp() end},
    {"logsumexp(dim)", function(x) return x:logsumexp(2) end},
    {"norm", function(x) return x:norm() end},
    {"norm(1, dim)", function(x) return x:norm(1, 2) end},
    {"norm(3, dim)", function(x) return x:norm(3, 1) end},
    {"norm(inf, dim)", function(x) return x:norm(math.huge, 2) end},
    {"norm(0.5)", function(x) return x:norm(0.5) end},
    {"var{keepdim}", function(x) return x:var{dim = -1, keepdim = true} end},
    {"softmax(last)", function(x) return x:softmax(-1) end},
    {"softmax(first)", function(x) return x:softmax(1) end},
    {"log_softmax(last)", function(x) return x:log_softmax(-1) end},
    {"log_softmax(2)", function(x) return x:log_softmax(2) end},
    {"cumsum(1)", function(x) return x:cumsum(1) end},
    {"cumsum(-1)", function(x) return x:cumsum(-1) end},
  }
  for _, case in ipairs(cases) do
    it(case[1] .. " passes gradcheck on 2-d and 3-d inputs", function()
      assert.is_true(recur.gradcheck(case[2], {leaf(G2)}))
      assert.is_true(recur.gradcheck(case[2], {leaf(G3)}))
    end)
  end
  it("prod handles zeros exactly", function()
    local x = leaf{{2, 0, 3}, {0, 0, 4}, {1, 2, 0.5}}
    x:prod(2):sum():backward()
    near({{0, 6, 0}, {0, 0, 0}, {1, 0.5, 2}}, x.grad)
    assert.is_true(recur.gradcheck(function(t) return t:prod(2) end,
      {leaf{{2, 0, 3}, {0.5, 1.5, 4}}}))
  end)
  it("all-element max splits the gradient evenly between ties", function()
    local x = leaf{{1, 3, 3}, {2, 0, 2}}
    x:max():backward()
    near({{0, 0.5, 0.5}, {0, 0, 0}}, x.grad)
    x = leaf{{1, 3, 3}, {2, 0, 2}}
    x:min():backward()
    near({{0, 0, 0}, {0, 1, 0}}, x.grad)
  end)
  it("max along a dim sends the gradient to the returned index", function()
    local x = leaf{{1, 3, 3}, {2, 0, 2}}
    local v, i = x:max(2)
    i:add_(5) -- the user's index tensor is not the one backward uses
    v:sum():backward()
    near({{0, 1, 0}, {1, 0, 0}}, x.grad)
  end)
  it("softmax gradient is y * (g - sum(g * y))", function()
    local x = leaf{1, 2, 3}
    local y = x:softmax(1)
    local yv = y:totable()
    y:backward(recur.tensor{1, 0, 0})
    local s = yv[1]
    near({yv[1] * (1 - s), -yv[2] * s, -yv[3] * s}, x.grad)
  end)
  it("std of a constant has a zero (not NaN) gradient", function()
    local x = leaf{2, 2, 2}
    x:std():backward()
    near({0, 0, 0}, x.grad)
  end)
  it("argmax and indices carry no gradient", function()
    local x = leaf(G2)
    assert.is_false(x:argmax(2):requires_grad())
    local _, i = x:max(1)
    assert.is_false(i:requires_grad())
  end)
end)

describe("errors", function()
  local a = recur.tensor(A)
  it("name the function for out-of-range dims", function()
    for _, name in ipairs{"sum", "mean", "prod", "max", "min", "argmax", "argmin", "var",
      "std", "logsumexp", "softmax", "log_softmax", "cumsum"} do
      for _, d in ipairs{0, 3, -3} do
        local msg = err_of(function() return a[name](a, d) end)
        local want = name .. ": dimension " .. d .. " is out of range for a tensor with 2 dimensions"
        assert(msg:find(want, 1, true), "message '" .. msg .. "' lacks '" .. want .. "'")
      end
    end
    has(err_of(function() return a:norm(2, 3) end), "norm: dimension 3 is out of range")
    has(err_of(function() return recur.tensor(1):sum(2) end), "sum: dimension 2 is out of range")
    has(err_of(function() return a:var{dim = 5} end), "var: dimension 5 is out of range")
  end)
  it("reject non-integer dims and non-boolean keepdim", function()
    has(err_of(function() return a:sum(1.5) end), "sum: argument #2 %(dim%) must be an integer")
    has(err_of(function() return a:max("x") end), "max: argument #2 %(dim%) must be an integer")
    has(err_of(function() return a:softmax(1.5) end), "softmax: argument #2 %(dim%) must be")
    has(err_of(function() return a:mean(1, 1) end), "mean: argument #3 %(keepdim%) must be a boolean")
    has(err_of(function() return a:var(1, false, "yes") end),
      "var: argument #4 %(unbiased%) must be a boolean")
    has(err_of(function() return a:std{dim = 1.5} end), "std: option 'dim' must be an integer")
    has(err_of(function() return a:norm(2, 1.5) end), "norm: argument #3 %(dim%) must be")
  end)
  it("require a dim for softmax, log_softmax and cumsum", function()
    has(err_of(function() return a:softmax() end), "softmax: argument #2 %(dim%) is required")
    has(err_of(function() return a:log_softmax() end), "log_softmax: argument #2 %(dim%) is required")
    has(err_of(function() return a:cumsum() end), "cumsum: argument #2 %(dim%) is required")
  end)
  it("reject a bad p for norm", function()
    has(err_of(function() return a:norm("nuc") end), "norm: argument #2 %(p%) must be a number")
    has(err_of(function() return a:norm(0 / 0) end), "norm: argument #2 %(p%) must not be NaN")
    has(err_of(function() return a:norm{p = true} end), "norm: option 'p' must be a number")
  end)
  it("reject closed tensors and non-tensors", function()
    local t = recur.zeros(2)
    t:close()
    has(err_of(function() return t:sum() end), "sum: argument #1 is a closed tensor")
    has(err_of(function() return t:softmax(1) end), "softmax: argument #1 is a closed tensor")
    has(err_of(function() return recur.mean(5) end), "mean: argument #1 must be a tensor")
    has(err_of(function() return recur.max(a, t) end), "max: argument #2 is a closed tensor")
  end)
  it("reject elementwise max of mismatched shapes", function()
    has(err_of(function() return a:max(recur.zeros(2)) end), "maximum: shapes %[3, 4%] and %[2%]")
  end)
end)
