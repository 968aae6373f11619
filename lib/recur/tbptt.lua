-- recur.tbptt: truncated backpropagation through time in the two styles of R2RT's "Styles of
-- Truncated Backpropagation" (docs/tbptt.md). Also reachable as recur.rnn.tbptt_tf and
-- recur.rnn.tbptt_true.
--
--   tbptt.tf{forward =, loss =, x =, y =, n =, state =, on_window =}
--       TF style, BPTT(n, n): the sequence is cut into consecutive windows of n steps (the last
--       one shorter when n does not divide T); each window runs from the final state of the
--       previous one, detached (no gradient crosses a window boundary), and its loss is
--       backpropagated at once. on_window(info) runs after each window's backward (step an
--       optimizer there); without it the gradients of all windows accumulate.
--   tbptt.true_bptt{forward =, loss =, x =, y =, n =, state =}
--       true truncated BPTT, BPTT(n) = BPTT(n, 1): the error of every step t is backpropagated
--       through exactly the n steps t-n+1 .. t (fewer only at the start of the sequence, where
--       it reaches the initial state, which then gets its gradient). It is computed in one
--       batched call: the T windows (each ending at one step) run side by side as a batch of
--       T*B sequences of length n, each starting from the detached state of the step before
--       its window (from a forward pass without gradient), and only each window's last output
--       goes into the loss. Cost: about n forward+backward passes over the sequence.
--
-- Arguments (both):
--   forward(x, state, lengths) -> outputs, final_state   the recurrent model; x [t, b, ...]
--       (time first), outputs [t, b, F]; lengths (nil or a list of b integers) as in
--       recur.rnn: past its length a sequence's state stays and its outputs are zero. A
--       recur.rnn.RNN layer or a cell can be passed directly instead of a function.
--   loss(outputs [T, B, F], y) -> scalar tensor          the loss of every step's output
--   x [T, B, ...]   inputs (any trailing shape: ids [T, B] or features [T, B, I])
--   y               targets handed to loss (windows of it for tf: y:narrow(1, start, len));
--                   may be nil
--   n               the truncation length (1 <= n; n > T means n = T)
--   state           the initial state (nested as forward takes it; nil = forward's default)
--   backward        false to only compute the loss (default true)
-- Both return {loss = number, state = final state (detached), windows = count}. tf's loss is
-- the length-weighted mean of the window losses; true_bptt's is loss(...) of all steps. With
-- n = T the two run the same computation and give the same gradients.
local recur = require("recur")

local M = {}

-- nested state helpers (nil, a tensor, or lists of them)
local function map_state(st, f)
  if type(f) ~= "function" then
    error("tbptt.map_state: argument #2 must be a function, got " .. type(f), 2)
  end
  if st == nil then return nil end
  if recur.is_tensor(st) then return f(st) end
  if type(st) ~= "table" then
    error("tbptt: a state must be a tensor or a (nested) list of tensors, got " .. type(st), 3)
  end
  local out = {}
  for k, v in pairs(st) do out[k] = map_state(v, f) end
  return out
end
M.map_state = map_state

-- st in the nesting of like, the state a forward returned: forward also accepts a single
-- tensor where it returns a one-entry list ({h} for {{h}}), so wrap such leaves
local function conform(st, like)
  if recur.is_tensor(st) then
    if type(like) == "table" and not recur.is_tensor(like) and #like == 1 then
      return { conform(st, like[1]) }
    end
    return st
  end
  if type(st) ~= "table" or type(like) ~= "table" then return st end
  local out = {}
  for k, v in pairs(st) do out[k] = conform(v, like[k]) end
  return out
end

-- zips lists of states with the same structure: f({leaf1, leaf2, ...}) -> leaf
local function zip_state(list, f)
  local first = list[1]
  if recur.is_tensor(first) then return f(list) end
  local out = {}
  for k in pairs(first) do
    local sub = {}
    for i, s in ipairs(list) do sub[i] = s[k] end
    out[k] = zip_state(sub, f)
  end
  return out
end

function M.detach_state(st)
  return map_state(st, function(t) return t:detach() end)
end

local function as_forward(f)
  if type(f) == "function" then return f end
  if f ~= nil and (type(f) == "table" or type(f) == "userdata") then
    return function(x, state, lengths)
      return f:forward(x, { state = state, lengths = lengths })
    end
  end
  error("tbptt: forward must be a function (x, state, lengths) -> outputs, state, or a layer",
    3)
end

local function check(o, who)
  if type(o) ~= "table" then error(who .. ": expected an options table", 3) end
  local fwd = as_forward(o.forward)
  if type(o.loss) ~= "function" then
    error(who .. ": loss must be a function (outputs, y) -> scalar tensor", 3)
  end
  if not recur.is_tensor(o.x) or o.x:dim() < 2 then
    error(who .. ": x must be a tensor [T, B, ...] (time first)", 3)
  end
  local n = o.n
  if math.type(n) ~= "integer" or n < 1 then
    error(who .. ": n (the truncation length) must be an integer >= 1, got " .. tostring(n), 3)
  end
  local T = o.x:size(1)
  if T < 1 then error(who .. ": x has no time steps", 3) end
  if o.y ~= nil and recur.is_tensor(o.y) and o.y:size(1) ~= T then
    error(string.format("%s: y has %d time steps, x has %d", who, o.y:size(1), T), 3)
  end
  return fwd, math.min(n, T), T
end

local function scalar(l, who)
  if not recur.is_tensor(l) or l:numel() ~= 1 then
    error(who .. ": loss must return a scalar tensor", 3)
  end
  return l
end

function M.tf(o)
  local fwd, n, T = check(o, "tbptt.tf")
  if o.on_window ~= nil and type(o.on_window) ~= "function" then
    error("tbptt.tf: on_window must be a function", 2)
  end
  local state = o.state
  local total, windows = 0, 0
  local start = 1
  while start <= T do
    local len = math.min(n, T - start + 1)
    local xw = o.x:narrow(1, start, len)
    local yw = recur.is_tensor(o.y) and o.y:narrow(1, start, len) or o.y
    local out, fin = fwd(xw, state, nil)
    local l = scalar(o.loss(out, yw), "tbptt.tf")
    if o.backward ~= false then l:backward() end
    local lv = l:item()
    total = total + lv * len
    windows = windows + 1
    state = M.detach_state(fin)
    if o.on_window then
      o.on_window { index = windows, start = start, length = len, loss = lv, state = state }
    end
    start = start + len
  end
  return { loss = total / T, state = state, windows = windows }
end

function M.true_bptt(o)
  local fwd, n, T = check(o, "tbptt.true_bptt")
  local x = o.x
  local B = x:size(2)
  local s0 = o.state
  -- detached states after steps 1 .. T - n (the starts of the windows that begin after step 1)
  local hist = {}
  local final
  recur.no_grad(function()
    local st = M.detach_state(s0)
    for t = 1, T do
      local _, fin = fwd(x:narrow(1, t, 1), st, nil)
      st = M.detach_state(fin)
      if t <= T - n then hist[t] = st end
    end
    final = st
  end)
  -- the window ending at step i (1-based) starts at j = max(1, i - n + 1) with length i - j + 1
  local idx, lengths = {}, {}
  for t = 1, n do
    for i = 1, T do
      local j = math.max(1, i - n + 1)
      idx[#idx + 1] = math.min(j + t - 1, T)
    end
  end
  for i = 1, T do
    local len = math.min(i, n)
    for _ = 1, B do lengths[#lengths + 1] = len end
  end
  local rest = x:size()
  local shape = { n, T * B }
  for k = 3, #rest do shape[#shape + 1] = rest[k] end
  local xw = x:index_select(1, idx):reshape(shape)
  -- initial states: the first n windows start from s0, window i > n from hist[i - n]
  local init
  if T > n then
    local s0full = s0
    if s0full == nil then
      s0full = map_state(hist[1], function(t) return recur.zeros(t:size()) end)
    else
      s0full = conform(s0full, hist[1])
    end
    local blocks = {}
    for _ = 1, n do blocks[#blocks + 1] = s0full end
    for i = n + 1, T do blocks[#blocks + 1] = hist[i - n] end
    init = zip_state(blocks, function(leaves) return recur.cat(leaves, 1) end)
  elseif s0 ~= nil then
    init = map_state(s0, function(t)
      local sz = t:size()
      local rep = { T }
      for k = 1, #sz do rep[#rep + 1] = sz[k] end
      local flat = { T * sz[1] }
      for k = 2, #sz do flat[#flat + 1] = sz[k] end
      return t:unsqueeze(1):expand(rep):reshape(flat)
    end)
  end
  local out = fwd(xw, init, lengths)
  if not recur.is_tensor(out) or out:dim() ~= 3 then
    error("tbptt.true_bptt: forward must return outputs [t, b, F]", 2)
  end
  local last = recur.rnn.last(out, lengths)
  local F = last:size(2)
  local l = scalar(o.loss(last:view(T, B, F), o.y), "tbptt.true_bptt")
  if o.backward ~= false then l:backward() end
  return { loss = l:item(), state = final, windows = T }
end

return M
