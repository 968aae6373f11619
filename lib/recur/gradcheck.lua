-- recur.gradcheck(fn, inputs, opts): compares the gradients that backward computes with
-- central finite differences, for every element of every input that requires grad.
--
-- fn(...) receives the inputs and returns a tensor or a list of tensors. The scalar that
-- is differentiated is sum_k <w_k, out_k> with fixed pseudo-random weights w_k, so every
-- output element matters. Computation is float32, so the defaults are loose enough for
-- float32 rounding and tight enough to catch a wrong formula:
--   eps  = 1e-2   step of the central difference (x + eps, x - eps)
--   atol = 1e-2   absolute tolerance
--   rtol = 1e-2   relative tolerance: |analytic - numeric| <= atol + rtol * |numeric|
-- opts.raise = false returns false, message instead of raising an error.
-- Keep inputs away from kinks (relu at 0, abs at 0, ties in max) where no derivative exists.
local recur = require("recur")

local function flatten(t, out)
  out = out or {}
  if type(t) == "number" then
    out[#out + 1] = t
  else
    for i = 1, #t do flatten(t[i], out) end
  end
  return out
end

local function as_list(r)
  if recur.is_tensor(r) then return { r } end
  if type(r) ~= "table" then error("gradcheck: fn must return a tensor or a list of tensors", 3) end
  return r
end

-- deterministic weights in [-1, 1], never zero
local function weights_for(outs)
  local ws, seed = {}, 12345
  for k, o in ipairs(outs) do
    local n = o:numel()
    local vals = {}
    for i = 1, n do
      seed = (seed * 1103515245 + 12345) % 2147483648
      vals[i] = (seed / 2147483648) * 1.6 - 0.8
      vals[i] = vals[i] + (vals[i] >= 0 and 0.2 or -0.2)
    end
    ws[k] = vals
  end
  return ws
end

local function weighted_sum(outs, ws)
  local s = 0.0
  for k, o in ipairs(outs) do
    local v = flatten(o:totable())
    local w = ws[k]
    for i = 1, #v do s = s + v[i] * w[i] end
  end
  return s
end

local function unflatten_index(size, flat)
  local idx = {}
  local rem = flat - 1
  for d = #size, 1, -1 do
    idx[d] = rem % size[d] + 1
    rem = rem // size[d]
  end
  return idx
end

-- builds a tensor of `size` from a flat list (nested tables, so no view op is needed)
local function shaped(vals, size)
  if #size == 0 then return recur.tensor(vals[1]) end
  local pos = 0
  local function build(d)
    local t = {}
    for i = 1, size[d] do
      if d == #size then
        pos = pos + 1
        t[i] = vals[pos]
      else
        t[i] = build(d + 1)
      end
    end
    return t
  end
  if size[1] == 0 then return recur.zeros(size) end
  return recur.tensor(build(1))
end

return function(fn, inputs, opts)
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error("gradcheck: argument #1 must be a function, got " .. type(fn), 2)
  end
  if type(inputs) ~= "table" then
    error("gradcheck: argument #2 must be a list of inputs, got " .. type(inputs), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("gradcheck: argument #3 must be an options table, got " .. type(opts), 2)
  end
  opts = opts or {}
  local eps = opts.eps or 1e-2
  local atol = opts.atol or 1e-2
  local rtol = opts.rtol or 1e-2
  local raise = opts.raise ~= false
  local function fail(msg)
    if raise then error("gradcheck: " .. msg, 2) end
    return false, msg
  end
  local checked = {}
  for i, t in ipairs(inputs) do
    if recur.is_tensor(t) and t:requires_grad() and t.is_leaf then
      t:zero_grad()
      checked[#checked + 1] = i
    end
  end
  if #checked == 0 then return fail("no input requires grad") end

  local outs = as_list(fn(table.unpack(inputs, 1, #inputs)))
  local ws = weights_for(outs)
  local roots, grads = {}, {}
  for k, o in ipairs(outs) do
    if o:requires_grad() then
      roots[#roots + 1] = o
      grads[#grads + 1] = shaped(ws[k], o:size())
    end
  end
  if #roots == 0 then return fail("no output requires grad") end
  recur.backward(roots, grads)

  for _, i in ipairs(checked) do
    local t = inputs[i]
    local g = t.grad
    local analytic = g and flatten(g:totable()) or {}
    local size = t:size()
    local n = t:numel()
    local ok, msg = true, nil
    recur.no_grad(function()
      for k = 1, n do
        local idx = unflatten_index(size, k)
        local v = t:get(table.unpack(idx))
        t:set(v + eps, table.unpack(idx))
        local fp = weighted_sum(as_list(fn(table.unpack(inputs, 1, #inputs))), ws)
        t:set(v - eps, table.unpack(idx))
        local fm = weighted_sum(as_list(fn(table.unpack(inputs, 1, #inputs))), ws)
        t:set(v, table.unpack(idx))
        local numeric = (fp - fm) / (2 * eps)
        local a = analytic[k] or 0.0
        if not (math.abs(a - numeric) <= atol + rtol * math.abs(numeric)) then
          ok = false
          msg = string.format("input %d element %d (index {%s}): analytic %.6g, numeric %.6g",
            i, k, table.concat(idx, ", "), a, numeric)
          return
        end
      end
    end)
    if not ok then return fail(msg) end
  end
  return true
end
