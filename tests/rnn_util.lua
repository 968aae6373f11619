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

-- Every output, final state and gradient of one forward and backward of a fresh
-- recur.rnn.RNN stack (the wavefront and batch split specs): o.kind, o.L (2), o.T (6), o.B
-- (4), o.I (5), o.H (16), o.seed (7), o.lengths, o.reset_after, o.dropout, o.connection;
-- o.set() runs before the forward and returns what restores the settings after it;
-- o.before_backward(x). Returns { node = the output's grad_fn, names = {...}, vals = {...} }.
function U.stack_results(o)
  recur.seed(o.seed or 7)
  local m = require("recur.rnn").RNN { cell = o.kind, input = o.I or 5, hidden = o.H or 16,
    layers = o.L or 2,
    reset_after = o.reset_after, dropout = o.dropout, connection = o.connection }
  local T, B, H = o.T or 6, o.B or 4, o.H or 16
  local x = recur.randn(T, B, o.I or 5):requires_grad(true)
  local st = m:zero_state(B)
  for l = 1, #st do
    for k = 1, #st[l] do st[l][k] = (recur.randn(B, H) * 0.5):requires_grad(true) end
  end
  local restore = o.set and o.set()
  local y, fin = m(x, { state = st, lengths = o.lengths })
  if restore then restore() end
  local loss = (y * recur.randn(T, B, H)):sum()
  for l = 1, #fin do
    for k = 1, #fin[l] do loss = loss + (fin[l][k] * recur.randn(B, H)):sum() end
  end
  if o.before_backward then o.before_backward(x) end
  loss:backward()
  local r = { node = tostring(y.grad_fn), names = { "y", "dx" }, vals = { y, x.grad } }
  local function add(name, t)
    r.names[#r.names + 1] = name
    r.vals[#r.vals + 1] = t
  end
  for l = 1, #fin do
    for k = 1, #fin[l] do
      add("final state " .. l .. "." .. k, fin[l][k])
      add("gradient of initial state " .. l .. "." .. k, st[l][k].grad)
    end
  end
  for _, np in ipairs(m:named_parameters()) do add("gradient of " .. np[1], np[2].grad) end
  return r
end

local function max_abs(t) return t:abs():max():item() end

-- Asserts every value of a (stack_results) within tol of b's, scaled to b's largest.
function U.stack_close(a, b, tol)
  assert(#a.vals == #b.vals, string.format("%d values against %d", #a.vals, #b.vals))
  for i = 1, #b.vals do
    assert(a.vals[i] ~= nil, b.names[i] .. ": missing")
    local scale = math.max(max_abs(b.vals[i]), 1e-6)
    local diff = max_abs(a.vals[i] - b.vals[i])
    assert(diff <= tol * scale, string.format("%s: differs by %.3g (scale %.3g)", b.names[i], diff,
      scale))
  end
end

-- One forward and backward of a fresh stack of `layers` layers of `kind` (input 24, H = 64,
-- T = 40, B = 32) with the runtime's helper as it is (off false) or sent off first (off true;
-- call it with 2 BLAS threads): the output's grad_fn and every value, for comparing bits.
function U.stack_bits(kind, layers, off)
  recur.seed(9)
  local m = require("recur.rnn").RNN { cell = kind, input = 24, hidden = 64, layers = layers }
  local x = recur.randn(40, 32, 24):requires_grad(true)
  if off then
    recur._helper_back_off()
    assert(not recur._helper_usable(), "the helper still takes jobs after _helper_back_off")
  end
  local y = m(x)
  ;(y * recur.randn(40, 32, 64)):sum():backward()
  local vals = { y, x.grad }
  for _, p in ipairs(m:parameters()) do vals[#vals + 1] = p.grad end
  return tostring(y.grad_fn), vals
end

return U
