-- Batch iterators: minibatches of a labelled set, PTB-style language-model windows, and padded
-- or bucketed batches of variable-length sequences. All randomness comes from the runtime RNG
-- (recur.seed makes runs repeatable).
--
-- Small sets: a set (or token stream) too small for one batch is an ERROR that names both
-- sizes; nothing shrinks the batch silently. Choose a smaller batch yourself.
--
-- Each iterator is an object that is also a Lua iterator: `for ... in it do` runs it, and
-- it:reset() starts it over. Every one yields an `info` table last, with
--   epoch, step (within the epoch), steps (per epoch, when known), epoch_start, epoch_end
-- so a caller sees the epoch boundary (e.g. to reset a carried recurrent state).
local recur = require "recur"
local C = recur._data

local U = require "recur.data.util"
local fail, check_opts = U.fail, U.check_opts

local M = {}

local function pos_int(fn, name, v, default)
  if v == nil then
    if default == nil then fail("%s: option %s is required (a positive integer)", fn, name) end
    return default
  end
  if v == math.huge and name == "epochs" then return v end
  if math.type(v) ~= "integer" and U.is_integral(v) then v = math.tointeger(v) end
  if math.type(v) ~= "integer" or v < 1 then
    fail("%s: option %s must be a positive integer, got %s", fn, name, tostring(v))
  end
  return v
end

local function set_size(fn, set)
  if type(set) ~= "table" then fail("%s: the set must be a table {x = , y = }, got %s", fn, type(set)) end
  if not recur.is_tensor(set.x) then fail("%s: set.x must be a tensor, got %s", fn, type(set.x)) end
  if set.x:dim() == 0 then fail("%s: set.x must have at least one dimension", fn) end
  local n = set.x:size()[1]
  if set.y ~= nil then
    if not recur.is_tensor(set.y) then fail("%s: set.y must be a tensor, got %s", fn, type(set.y)) end
    if set.y:dim() == 0 or set.y:size()[1] ~= n then
      fail("%s: set.x has %d examples but set.y has %s", fn, n,
        set.y:dim() == 0 and "none (0-d)" or tostring(set.y:size()[1]))
    end
  end
  return n
end

local function too_small(fn, what, n, b)
  fail("%s: the %s has %d examples, fewer than one batch of %d; use a batch of at most %d",
    fn, what, n, b, n)
end

local Iter = {}
Iter.__index = Iter
Iter.__call = function(self) return self:next() end
function Iter:reset()
  self:_reset()
  return self
end

-- For iterators of steps_per_epoch steps in each of `epochs` epochs: moves to the next step,
-- first into the next epoch (running self:_new_epoch(), when there is one) when the current
-- one is over. Returns the step's info, or nil after the last epoch.
function Iter:_step()
  if self.step >= self.steps_per_epoch then
    if self.epoch >= self.epochs then return nil end
    self.epoch, self.step = self.epoch + 1, 0
    if self._new_epoch then self:_new_epoch() end
  end
  self.step = self.step + 1
  return { epoch = self.epoch, step = self.step, steps = self.steps_per_epoch,
    epoch_start = self.step == 1, epoch_end = self.step == self.steps_per_epoch }
end

-- Checked methods (recur._methods): it.next() says so at the caller's line. The iterators'
-- own methods (next, _reset...) are fields of each iterator, checked as it is made.
local methods = require "recur._methods"
local function is_iter(v) return getmetatable(v) == Iter end
methods.wrap_all(Iter, "iterator", is_iter, "a batch iterator", "it", Iter)

local function new_iter(fields)
  -- an iterator's own methods take that iterator only
  methods.wrap_all(fields, "iterator", function(v) return rawequal(v, fields) end, "this iterator", "it")
  local it = setmetatable(fields, Iter)
  it:_reset()
  return it
end

-- ---------------------------------------------------------------------------------------
-- batches(set, {batch = B, shuffle = true, epochs = 1, steps = nil, drop_last = false,
--               start = 1, order = nil})
-- Yields x, y, index, info: the rows `index` (a 1-D tensor of 1-based example numbers) of
-- set.x and set.y.
--  * shuffle = true: a fresh permutation (recur.randperm) every epoch.
--  * shuffle = false: the examples in `order` (a tensor or list of 1-based indices; default
--    1..N), beginning at position `start` of it.
--  * epochs = E (default 1, math.huge = forever): each epoch is one pass over the N examples,
--    cut into batches; the last one is smaller unless drop_last.
--  * steps = S instead: exactly S full batches taken from the endless stream of epochs,
--    batches running across epoch boundaries. With shuffle = false, batch = 50, steps = 1000
--    on a 1,000-example set this is First Convergence Bias's start = (50*i) % 1000.
function M.batches(set, opts)
  local fn = "batches"
  opts = check_opts(fn, opts or {}, { batch = true, shuffle = true, epochs = true, steps = true,
    drop_last = true, start = true, order = true })
  local n = set_size(fn, set)
  local b = pos_int(fn, "batch", opts.batch)
  if n < b then too_small(fn, "set", n, b) end
  local shuffle = opts.shuffle
  if shuffle == nil then shuffle = true end
  if (opts.start ~= nil or opts.order ~= nil) and shuffle then
    fail("%s: start and order set a fixed order: pass shuffle = false with them", fn)
  end
  local order
  if opts.order ~= nil then
    order = opts.order
    if type(order) == "table" and not recur.is_tensor(order) then order = recur.tensor(order) end
    if not recur.is_tensor(order) or order:dim() ~= 1 then
      fail("%s: order must be a 1-D tensor or a list of indices", fn)
    end
    local m = order:numel()
    if m < b then too_small(fn, "order", m, b) end
    if m > 0 and (order:min():item() < 1 or order:max():item() > n or order:eq(order:floor()):min():item() ~= 1) then
      fail("%s: order must hold integer indices in 1..%d", fn, n)
    end
  else
    order = recur.arange(1, n + 1)
  end
  local len = order:numel()
  local start = pos_int(fn, "start", opts.start, 1)
  if start > len then fail("%s: start %d is past the end of the order (%d examples)", fn, start, len) end
  local steps = opts.steps ~= nil and pos_int(fn, "steps", opts.steps) or nil
  if steps and opts.epochs ~= nil then fail("%s: give epochs or steps, not both", fn) end
  local epochs = pos_int(fn, "epochs", opts.epochs, 1)
  local per_epoch = opts.drop_last and len // b or (len + b - 1) // b
  return new_iter {
    set = set, b = b, n = len, shuffle = shuffle, order = order, start = start, steps = steps,
    epochs = epochs, drop_last = opts.drop_last and true or false, steps_per_epoch = not steps and per_epoch or nil,
    _reset = function(self)
      self.epoch, self.step, self.total = 0, 0, 0
      self.cur, self.pos = nil, nil -- current ordering and the next position in it
    end,
    _ordering = function(self)
      if self.shuffle then return recur.randperm(self.n) end
      return self.order
    end,
    next = function(self)
      local b = self.b
      local idx, info
      if self.steps then
        if self.total >= self.steps then return nil end
        local first = false
        if not self.cur then
          self.cur, self.pos, self.epoch, first = self:_ordering(), self.start, 1, true
        elseif self.pos > self.n then
          self.cur, self.pos, self.epoch, first = self:_ordering(), 1, self.epoch + 1, true
        end
        local parts, need = {}, b
        local ended = false
        while need > 0 do
          if self.pos > self.n then
            self.cur, self.pos, self.epoch = self:_ordering(), 1, self.epoch + 1
          end
          local take = math.min(need, self.n - self.pos + 1)
          parts[#parts + 1] = self.cur:narrow(1, self.pos, take)
          self.pos = self.pos + take
          need = need - take
          if self.pos > self.n then ended = true end
        end
        idx = #parts == 1 and parts[1] or recur.cat(parts)
        self.total = self.total + 1
        self.step = self.step + 1
        info = { epoch = self.epoch, step = self.total, epoch_start = first, epoch_end = ended }
      else
        if not self.cur or self.pos > self.n or (self.drop_last and self.n - self.pos + 1 < b) then
          if self.epoch >= self.epochs then return nil end
          self.cur, self.pos, self.epoch, self.step = self:_ordering(), 1, self.epoch + 1, 0
          if self.epoch == 1 and self.start > 1 then -- rotate: begin at `start`
            self.cur = recur.cat({ self.cur:narrow(1, self.start, self.n - self.start + 1),
              self.cur:narrow(1, 1, self.start - 1) })
          end
        end
        local take = math.min(b, self.n - self.pos + 1)
        idx = self.cur:narrow(1, self.pos, take)
        self.pos = self.pos + take
        self.step = self.step + 1
        self.total = self.total + 1
        local ended = self.pos > self.n or (self.drop_last and self.n - self.pos + 1 < b)
        info = { epoch = self.epoch, step = self.step, steps = self.steps_per_epoch,
          epoch_start = self.step == 1, epoch_end = ended }
      end
      local set = self.set
      local x = set.x:index_select(1, idx)
      local y = set.y and set.y:index_select(1, idx) or nil
      return x, y, idx, info
    end,
  }
end

-- ---------------------------------------------------------------------------------------
-- lm_batches(ids, {batch = B, steps = T, epochs = 1, start = 1})
-- The PTB reader: ids (a 1-D tensor) is cut into B contiguous rows of L = #ids // B tokens;
-- window i gives x = rows[:, (i-1)T+1 .. iT] and y = the same shifted by one, both as [T, B]
-- (time first, as the recurrent cells take them). Windows come in order, so the state can be
-- carried from one to the next; there are (L - 1) // T windows per epoch. Yields x, y, info;
-- info.epoch_start marks the first window of an epoch (reset the carried state before it)
-- and info.epoch_end the last.
-- start: the first window to serve (to resume a run), either its number k counted from 1
-- across epochs, or {epoch = e, step = s}, window s of epoch e; s may run past the epoch's
-- windows ({epoch = e, step = steps_per_epoch + 1} is epoch e + 1's first), so a run saved
-- after window s of epoch e resumes with {epoch = e, step = s + 1}. One past the last window
-- gives an empty iterator; reset() goes back to start.
function M.lm_batches(ids, opts)
  local fn = "lm_batches"
  opts = check_opts(fn, opts or {}, { batch = true, steps = true, epochs = true, start = true })
  if not recur.is_tensor(ids) or ids:dim() ~= 1 then
    fail("%s: ids must be a 1-D tensor of token ids, got %s", fn,
      recur.is_tensor(ids) and (ids:dim() .. "-D tensor") or type(ids))
  end
  local b = pos_int(fn, "batch", opts.batch)
  local t = pos_int(fn, "steps", opts.steps)
  local epochs = pos_int(fn, "epochs", opts.epochs, 1)
  local n = ids:numel()
  if n == 0 then fail("%s: the token stream is empty", fn) end
  local row = n // b
  local per_epoch = (row - 1) // t
  if per_epoch < 1 then
    fail("%s: the token stream has %d tokens, too short for batch %d x steps %d (it needs at "
      .. "least batch * (steps + 1) = %d tokens); use a smaller batch or fewer steps",
      fn, n, b, t, b * (t + 1))
  end
  local first = 1
  if type(opts.start) == "table" then
    check_opts(fn .. " start", opts.start, { epoch = true, step = true })
    local e = pos_int(fn, "start.epoch", opts.start.epoch)
    local s = pos_int(fn, "start.step", opts.start.step)
    first = (e - 1) * per_epoch + s
  elseif opts.start ~= nil then
    first = pos_int(fn, "start", opts.start)
  end
  if first > per_epoch * epochs + 1 then
    fail("%s: start is window %d, past the end: %d epochs of %d windows", fn, first, epochs, per_epoch)
  end
  local rows = ids:narrow(1, 1, b * row):view(b, row)
  return new_iter {
    rows = rows, t = t, epochs = epochs, steps_per_epoch = per_epoch, batch = b,
    tokens_per_epoch = per_epoch * t * b, start = first,
    -- as if windows 1 .. start - 1 had been served
    _reset = function(self)
      local done = self.start - 1
      self.epoch = math.max(1, (done + per_epoch - 1) // per_epoch)
      self.step = done - (self.epoch - 1) * per_epoch
    end,
    next = function(self)
      local info = self:_step()
      if not info then return nil end
      local i, t = self.step - 1, self.t
      local x = self.rows:narrow(2, i * t + 1, t):t():contiguous()
      local y = self.rows:narrow(2, i * t + 2, t):t():contiguous()
      return x, y, info
    end,
  }
end

-- ---------------------------------------------------------------------------------------
-- Variable-length sets ("ragged"): {tokens = 1-D tensor of every sequence's ids end to end,
-- starts = [N] (1-based position of each sequence in tokens), lengths = [N], y = [N] labels
-- (optional)}. data.ragged(seqs, labels) builds one from a list of sequences.

function M.ragged(seqs, labels)
  local fn = "ragged"
  if type(seqs) ~= "table" then fail("%s: seqs must be a list of sequences, got %s", fn, type(seqs)) end
  local flat, starts, lengths, k = {}, {}, {}, 0
  for i, s in ipairs(seqs) do
    local v = s
    if recur.is_tensor(s) then
      if s:dim() ~= 1 then fail("%s: sequence %d must be 1-D, got %d-D", fn, i, s:dim()) end
      v = s:numel() > 0 and s:totable() or {}
    elseif type(s) ~= "table" then
      fail("%s: sequence %d must be a tensor or a list of ids, got %s", fn, i, type(s))
    end
    starts[i] = k + 1
    lengths[i] = #v
    table.move(v, 1, #v, k + 1, flat)
    k = k + #v
  end
  local n = #starts
  if n == 0 then fail("%s: the set has no sequences", fn) end
  local set = {
    tokens = k > 0 and recur.tensor(flat) or recur.zeros(0),
    starts = recur.tensor(starts), lengths = recur.tensor(lengths), n = n,
  }
  if labels ~= nil then
    if recur.is_tensor(labels) then
      set.y = labels
    elseif type(labels) == "table" then
      set.y = recur.tensor(labels)
    else
      fail("%s: labels must be a tensor or a list, got %s", fn, type(labels))
    end
    if set.y:dim() ~= 1 or set.y:numel() ~= n then
      fail("%s: %d sequences but %d labels", fn, n, set.y:numel())
    end
  end
  return set
end

local function ragged_size(fn, set)
  if type(set) ~= "table" or not recur.is_tensor(set.tokens) or not recur.is_tensor(set.starts)
    or not recur.is_tensor(set.lengths) then
    fail("%s: the set must be a ragged set {tokens =, starts =, lengths =, y =} (see data.ragged)", fn)
  end
  local n = set.lengths:numel()
  if set.starts:numel() ~= n then fail("%s: set.starts has %d entries, set.lengths %d", fn, set.starts:numel(), n) end
  if set.y ~= nil and (not recur.is_tensor(set.y) or set.y:size()[1] ~= n) then
    fail("%s: set.y must be a tensor with one label per sequence (%d)", fn, n)
  end
  return n
end

local VAR_OPTS = { batch = true, shuffle = true, epochs = true, drop_last = true, pad = true,
  batch_first = true, num_buckets = true }

-- One batch of a ragged set: x, y, lengths, info (padding, index).
local function make_batch(self, idx, info)
  local set = self.set
  local x, padding = C.pad_batch(set.tokens, set.starts, set.lengths, idx, self.pad, self.batch_first)
  info.padding = padding
  info.index = idx
  local y = set.y and set.y:index_select(1, idx) or nil
  return x, y, set.lengths:index_select(1, idx), info
end

local function var_common(fn, set, opts, extra)
  local allowed = {}
  for k in pairs(VAR_OPTS) do allowed[k] = true end
  if not extra then allowed.num_buckets = nil end
  opts = check_opts(fn, opts or {}, allowed)
  local n = ragged_size(fn, set)
  local b = pos_int(fn, "batch", opts.batch)
  if n < b then too_small(fn, "set", n, b) end
  local pad = opts.pad == nil and 1 or opts.pad
  if type(pad) ~= "number" then fail("%s: pad must be a number, got %s", fn, type(pad)) end
  return opts, n, b, pad
end

-- padded_batches(set, {batch = B, shuffle = true, epochs = 1, drop_last = false, pad = 1,
--                      batch_first = false})
-- Batches of consecutive examples (shuffled each epoch), each padded to its longest sequence.
-- Yields x [T, B] (or [B, T] with batch_first) of ids, y [B], lengths [B], info with
-- info.padding = the number of padding positions in the batch and info.index. Padding holds
-- `pad` (default 1: a real id, so an embedding lookup works; lengths say what is real).
function M.padded_batches(set, opts)
  local fn = "padded_batches"
  local o, n, b, pad = var_common(fn, set, opts, false)
  local shuffle = o.shuffle
  if shuffle == nil then shuffle = true end
  local per_epoch = o.drop_last and n // b or (n + b - 1) // b
  return new_iter {
    set = set, n = n, b = b, pad = pad, batch_first = o.batch_first and true or false,
    shuffle = shuffle, epochs = pos_int(fn, "epochs", o.epochs, 1), steps_per_epoch = per_epoch,
    _reset = function(self) self.epoch, self.step, self.cur = 0, per_epoch, nil end,
    _new_epoch = function(self)
      self.cur = self.shuffle and recur.randperm(self.n) or recur.arange(1, self.n + 1)
    end,
    next = function(self)
      local info = self:_step()
      if not info then return nil end
      local s = (self.step - 1) * self.b
      return make_batch(self, self.cur:narrow(1, s + 1, math.min(self.b, self.n - s)), info)
    end,
  }
end

-- bucketed_batches(set, {batch = B, num_buckets = 10, epochs = 1, drop_last = false, pad = 1,
--                        batch_first = false})
-- Sorts the examples by length (stable) into num_buckets buckets of equal size (within one),
-- shuffles each bucket every epoch, cuts the buckets into batches and serves those batches
-- in a random order, i.e. picks a random bucket for each batch (in proportion to the batches
-- it has left), so every example comes once per epoch. Yields like padded_batches.
function M.bucketed_batches(set, opts)
  local fn = "bucketed_batches"
  local o, n, b, pad = var_common(fn, set, opts, true)
  if o.shuffle ~= nil and o.shuffle ~= true then fail("%s: buckets are always shuffled (shuffle = true)", fn) end
  local nb = pos_int(fn, "num_buckets", o.num_buckets, 10)
  if nb > n then fail("%s: num_buckets %d is more than the %d examples", fn, nb, n) end
  -- counting sort of the example numbers by length (stable)
  local lens = set.lengths:totable()
  local by_len, maxlen = {}, 0
  for i = 1, n do
    local l = math.tointeger(lens[i]) or fail("%s: set.lengths[%d] is not an integer", fn, i)
    if l > maxlen then maxlen = l end
    local bucket = by_len[l]
    if not bucket then bucket = {}; by_len[l] = bucket end
    bucket[#bucket + 1] = i
  end
  local sorted = {}
  for l = 0, maxlen do
    local bucket = by_len[l]
    if bucket then table.move(bucket, 1, #bucket, #sorted + 1, sorted) end
  end
  local buckets, pos = {}, 1
  for k = 1, nb do
    local size = n // nb + (k <= n % nb and 1 or 0)
    buckets[k] = recur.tensor(table.move(sorted, pos, pos + size - 1, 1, {}))
    pos = pos + size
  end
  local per_epoch = 0
  for k = 1, nb do
    local m = buckets[k]:numel()
    per_epoch = per_epoch + (o.drop_last and m // b or (m + b - 1) // b)
  end
  if per_epoch == 0 then
    fail("%s: with drop_last every bucket (%d examples) is smaller than one batch of %d", fn, n // nb, b)
  end
  return new_iter {
    set = set, n = n, b = b, pad = pad, batch_first = o.batch_first and true or false,
    buckets = buckets, epochs = pos_int(fn, "epochs", o.epochs, 1), steps_per_epoch = per_epoch,
    drop_last = o.drop_last and true or false, num_buckets = nb,
    _reset = function(self) self.epoch, self.step, self.plan = 0, per_epoch, nil end,
    _new_epoch = function(self)
      local list = {}
      for _, bucket in ipairs(self.buckets) do
        local m = bucket:numel()
        local shuffled = bucket:index_select(1, recur.randperm(m))
        local s = 0
        while s < m and not (self.drop_last and m - s < self.b) do
          list[#list + 1] = shuffled:narrow(1, s + 1, math.min(self.b, m - s))
          s = s + self.b
        end
      end
      local perm = recur.randperm(#list):totable()
      self.plan = {}
      for i, p in ipairs(perm) do self.plan[i] = list[math.tointeger(p)] end
    end,
    next = function(self)
      local info = self:_step()
      if not info then return nil end
      return make_batch(self, self.plan[self.step], info)
    end,
  }
end

return M
