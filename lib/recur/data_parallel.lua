-- recur.data_parallel: data-parallel training over recur.mpi (docs/distributed.md). Every rank
-- holds the whole model; each reads its own rows of every global batch; one allreduce per step
-- sums the flat gradient buffer, so every rank takes the same optimizer step.
--
--   local dp = require("recur.data_parallel").new(model, { seed = s })
--   dp.rank, dp.size, dp.root (rank 0: prints, writes checkpoints), dp.distributed
--   dp:start()                 parameters from rank 0 to all; then each rank switches to its
--                              own random stream (dropout), derived from the seed and the rank
--   dp:shared(fn, ...)         fn(...) on the stream every rank shares (shuffles), so that all
--                              ranks draw the same permutation
--   dp:shard(t, dim, global_n) -> this rank's rows of t along dim, weight = rows / global_n
--   dp:scale(loss, weight)     the loss to backward: weighted so that the summed gradients are
--                              those of the global batch's mean, whatever the split
--   dp:reduce_gradients()      allreduce (sum) of the flat gradient buffer
--   dp:gather_rows(t, dim, global_n) -> the global tensor from every rank's rows (for state
--                              written to a checkpoint)
--   dp:sum(numbers)            -> the list of each number summed over the ranks (doubles)
--   dp:print(...)              print on the root only
--
-- Outside mpirun (or on one rank) every call is the identity and no random draw changes, so a
-- script behaves exactly as before.
local recur = require "recur"

local dp = {}
local DP = {}
DP.__index = DP

local function under_mpirun()
  return (os.getenv("OMPI_COMM_WORLD_SIZE") or os.getenv("PMIX_RANK") or os.getenv("PMI_SIZE")) ~= nil
end

function dp.new(model, opts)
  opts = opts or {}
  if type(model) ~= "table" or type(model.flat_parameters) ~= "function" then
    error("data_parallel.new: argument #1 must be a model (an nn.Module), got " .. type(model), 2)
  end
  local mpi = under_mpirun() and require "recur.mpi" or nil
  local self = setmetatable({ model = model, mpi = mpi, rank = mpi and mpi.rank() or 0,
    size = mpi and mpi.size() or 1, seed = opts.seed or 1 }, DP)
  self.distributed = self.size > 1
  self.root = self.rank == 0
  self.values, self.grads = model:flat_parameters()
  if self.distributed and not self.grads then
    error("data_parallel.new: the model has no flat parameter buffer (model:flat_parameters() is nil)", 2)
  end
  return self
end

function DP:start()
  if not self.distributed then return end
  recur.no_grad(function() self.mpi.broadcast(self.values, 0) end)
  self.shared_state = recur.rng_state()
  -- a stream per rank: the seed mixed with the rank (splitmix64's odd constant, kept in 53 bits)
  recur.seed((self.seed * 1000003 + (self.rank + 1) * 0x9E3779B9) % (1 << 53))
end

function DP:shared(fn, ...)
  if not self.distributed then return fn(...) end
  local mine = recur.rng_state()
  recur.set_rng_state(self.shared_state)
  local r = table.pack(fn(...))
  self.shared_state = recur.rng_state()
  recur.set_rng_state(mine)
  return table.unpack(r, 1, r.n)
end

-- rows [lo, hi] of global_n for this rank: as equal as can be, the first ranks one more
function DP:rows(global_n)
  local base, extra = global_n // self.size, global_n % self.size
  local lo = self.rank * base + math.min(self.rank, extra) + 1
  local n = base + (self.rank < extra and 1 or 0)
  return lo, n
end

function DP:shard(t, dim, global_n)
  if not self.distributed then return t, 1 end
  global_n = global_n or t:size(dim)
  if global_n < self.size then
    error(string.format("data_parallel: a batch of %d rows cannot be split over %d ranks", global_n, self.size), 2)
  end
  local lo, n = self:rows(global_n)
  return t:narrow(dim, lo, n), n / global_n
end

function DP:scale(loss, weight)
  if not self.distributed then return loss end
  return loss * weight
end

function DP:reduce_gradients()
  if self.distributed then self.mpi.allreduce(self.grads, "sum") end
end

function DP:gather_rows(t, dim, global_n)
  if not self.distributed then return t end
  local size = t:size()
  local shape = {}
  for i = 1, #size do shape[i] = size[i] end
  shape[dim] = global_n
  local full = recur.zeros(shape)
  local lo, n = self:rows(global_n)
  full:narrow(dim, lo, n):copy_(t)
  self.mpi.allreduce(full, "sum")
  return full
end

function DP:sum(numbers)
  if not self.distributed then return numbers end
  local out = {}
  for _, theirs in ipairs(self.mpi.allgather(numbers)) do
    for i, v in ipairs(theirs) do out[i] = (out[i] or 0) + v end
  end
  return out
end

function DP:print(...)
  if self.root then print(...) end
end

return dp
