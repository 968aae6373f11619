-- Helpers for the recurrent specs (not a spec itself).
local recur = require("recur")

local U = {}

U.flat = require("tests.helpers").flat

-- the numbers of a tensor, a nested table or a number, in order
local values = U.flat

-- Relative error of a against b: max |a - b| / max |b| (b's scale; 1e-6 floor).
function U.relerr(a, b)
  local va, vb = values(a), values(b)
  assert(#va == #vb, string.format("sizes differ: %d vs %d", #va, #vb))
  local d, m = 0, 0
  for i = 1, #va do
    d = math.max(d, math.abs(va[i] - vb[i]))
    m = math.max(m, math.abs(vb[i]))
  end
  return d / math.max(m, 1e-6)
end

-- Asserts a matches b within tol relative (default 1e-4).
function U.close(a, b, tol, what)
  tol = tol or 1e-4
  local e = U.relerr(a, b)
  assert(e <= tol, string.format("%s: relative error %.3g > %.3g", what or "value", e, tol))
end

-- Parameters of a cell (or layer) as name -> tensor.
function U.params(obj)
  local p = {}
  for _, np in ipairs(obj:parameters()) do p[np[1]] = np[2] end
  return p
end

-- Deterministic pseudo-random tensor (independent of recur's generator).
function U.det(seed, ...)
  local shape = { ... }
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local s, vals = seed, {}
  for i = 1, n do
    s = (s * 1103515245 + 12345) % 2147483648
    vals[i] = s / 2147483648 * 2 - 1
  end
  return recur.tensor(vals):view(table.unpack(shape))
end

return U
