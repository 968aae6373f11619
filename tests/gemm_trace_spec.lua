-- The runtime's matrix products seen from Lua: large recur.matmul products in all four
-- transpose layouts against a double-precision sum (whichever kernel rc_sgemm picks: recur's
-- AVX-512 one or OpenBLAS), and the internal trace and replay that bench/charrnn.lua's GEMM
-- floor uses (recur._gemm_trace, recur._gemm_replay, recur._gemm_route): what they record and
-- how they check their arguments.
local recur = require("recur")

-- the [m, n] product op(a) op(b) of two plain Lua matrices, in double precision, and the sum
-- of |terms| of each element (the scale of its rounding error)
local function ref_product(a, b, ta, tb, m, n, k)
  local c, mag = {}, {}
  for i = 1, m do
    c[i], mag[i] = {}, {}
    for j = 1, n do
      local s, g = 0.0, 0.0
      for p = 1, k do
        local x = ta and a[p][i] or a[i][p]
        local y = tb and b[j][p] or b[p][j]
        s, g = s + x * y, g + math.abs(x * y)
      end
      c[i][j], mag[i][j] = s, g
    end
  end
  return c, mag
end

local function rand_matrix(r, c, seed)
  local s, t = seed, {}
  for i = 1, r do
    t[i] = {}
    for j = 1, c do
      s = (s * 1103515245 + 12345) % 2147483648
      t[i][j] = (s % 2001) / 1000 - 1
    end
  end
  return t
end

describe("large products through rc_sgemm", function()
  -- 75 x 70 x 90: past the 2^15 multiply-adds from which recur's kernel may run, odd sizes
  local m, n, k = 75, 70, 90
  for _, ta in ipairs { false, true } do
    for _, tb in ipairs { false, true } do
      it(string.format("matmul with ta=%s tb=%s is within float rounding of the exact sum",
        tostring(ta), tostring(tb)), function()
        local a = rand_matrix(ta and k or m, ta and m or k, 3)
        local b = rand_matrix(tb and n or k, tb and k or n, 7)
        local A, B = recur.tensor(a), recur.tensor(b)
        if ta then A = A:t() end -- a transposed view: BLAS and recur's kernel read it in place
        if tb then B = B:t() end
        local c = recur.matmul(A, B):totable()
        local want, mag = ref_product(a, b, ta, tb, m, n, k)
        local eps = 2 ^ -23
        for i = 1, m do
          for j = 1, n do
            local tol = 2 * (k + 2) * eps * mag[i][j]
            assert(math.abs(c[i][j] - want[i][j]) <= tol, string.format(
              "[%d][%d]: got %.9g, want %.9g (tolerance %.3g)", i, j, c[i][j], want[i][j], tol))
          end
        end
      end)
    end
  end
end)

describe("recur._gemm_trace", function()
  it("records each product with its sizes, layout, kernel and threads", function()
    local a, b = recur.randn(64, 80), recur.randn(96, 80)
    recur._gemm_trace(true)
    local c = recur.matmul(a, b:t())
    local calls = recur._gemm_trace(false)
    assert.are.equal(1, #calls)
    local r = calls[1]
    assert.are.equal("gemm", r.op)
    assert.are.same({ 64, 96, 80 }, { r.m, r.n, r.k })
    assert.is_false(r.ta)
    assert.is_true(r.tb)
    assert.are.equal(recur._gemm_route(64, 96, 80) ~= "blas" and 1 or 0, r.kernel)
    assert.is_true(r.threads >= 1)
    assert.are.same({ 64, 96 }, c:size())
  end)

  it("records nothing once stopped, and a fresh start drops the old calls", function()
    local a = recur.randn(40, 40)
    recur._gemm_trace(true)
    local _ = recur.matmul(a, a)
    recur._gemm_trace(true)
    local _ = recur.matmul(a, a)
    assert.are.equal(1, #recur._gemm_trace(false))
    local _ = recur.matmul(a, a)
    assert.are.equal(0, #recur._gemm_trace(false))
  end)

  it("records a fused cell's whole-sequence and per-step products", function()
    local cell = require("recur.rnn").Cell { cell = "lstm", input = 8, hidden = 16 }
    local x = recur.randn(5, 4, 8)
    recur._gemm_trace(true)
    local y = cell:forward(x)
    y:sum():backward()
    local calls = recur._gemm_trace(false)
    local ops = {}
    for _, r in ipairs(calls) do ops[r.op] = (ops[r.op] or 0) + 1 end
    -- the input projection, dW_x and dW_h (x needs no gradient: no dx), and the recurrent
    -- product of every step but the first (zero state) forward and backward, packed or not
    assert.is_true((ops.gemm or 0) >= 3, "only " .. (ops.gemm or 0) .. " plain products")
    assert.is_true((ops.gemm or 0) + (ops.packed or 0) >= 3 + 2 * 4,
      string.format("%d plain and %d packed products", ops.gemm or 0, ops.packed or 0))
  end)

  it("checks its argument", function()
    assert.has_error(function() recur._gemm_trace() end,
      "_gemm_trace: argument #1 must be a boolean (got no value)")
    assert.has_error(function() recur._gemm_trace(1) end,
      "_gemm_trace: argument #1 must be a boolean (got number)")
  end)
end)

describe("recur._gemm_replay", function()
  it("replays a trace and returns the best pass's seconds", function()
    local a = recur.randn(100, 120)
    recur._gemm_trace(true)
    local _ = recur.matmul(a, a:t())
    local calls = recur._gemm_trace(false)
    local t = recur._gemm_replay(calls, 3)
    assert.is_true(type(t) == "number" and t >= 0)
    assert.is_true(recur._gemm_replay({}) >= 0)
  end)

  it("checks the calls it is given", function()
    local ok = { op = "gemm", m = 4, n = 5, k = 6, ta = false, tb = true, threads = 1, kernel = 0 }
    local function with(k, v)
      local c = {}
      for kk, vv in pairs(ok) do c[kk] = vv end
      c[k] = v
      return { c }
    end
    assert.has_error(function() recur._gemm_replay(1) end)
    assert.has_error(function() recur._gemm_replay({ 1 }) end, "_gemm_replay: calls[1] must be a table")
    assert.has_error(function() recur._gemm_replay(with("op", "axpy")) end,
      "_gemm_replay: calls[1].op must be \"gemm\", \"packed\" or \"pack\"")
    assert.has_error(function() recur._gemm_replay(with("m", 0)) end,
      "_gemm_replay: calls[1].m must be an integer in 1 .. 1048576")
    assert.has_error(function() recur._gemm_replay(with("k", 1.5)) end,
      "_gemm_replay: calls[1].k must be an integer in 0 .. 1048576")
    assert.has_error(function() recur._gemm_replay(with("ta", 1)) end,
      "_gemm_replay: calls[1].ta must be a boolean")
    local big = with("m", 1048576)
    big[1].k = 1048576
    assert.has_error(function() recur._gemm_replay(big) end,
      "_gemm_replay: calls[1] is too large (1048576 x 5 x 1048576)")
    assert.has_error(function() recur._gemm_replay({ ok }, 0) end,
      "_gemm_replay: argument #2 (reps) must be an integer in 1 .. 1000")
  end)

  it("_gemm_route names a kernel and checks its sizes", function()
    local r = recur._gemm_route(1600, 2048, 512)
    assert.is_true(r == "blas" or r == "recur" or r == "recur2")
    assert.are.equal("blas", recur._gemm_route(1, 2048, 512)) -- one row: BLAS's sgemv
    assert.has_error(function() recur._gemm_route(-1, 2, 3) end,
      "_gemm_route: argument #1 must be a non-negative integer")
  end)
end)
