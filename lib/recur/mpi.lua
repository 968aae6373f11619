-- recur.mpi: collectives over Open MPI (docs/distributed.md). Ranks are MPI's, 0 .. size() - 1;
-- a gathered list holds rank r's value at index r + 1.
--
--   mpi.rank(), mpi.size(), mpi.is_distributed()
--   mpi.barrier()
--   mpi.allreduce(t, op)      in place on a contiguous float tensor; op "sum" (default), "mean",
--                             "max", "min"
--   mpi.broadcast(t, root)    in place, root's values to every rank (root defaults to 0)
--   mpi.broadcast_value(v, root) -> root's v on every rank (a Lua value, serialised)
--   mpi.gather(v, root)       -> {v of rank 0, v of rank 1, ...} on root, nil elsewhere
--   mpi.allgather(v)          -> the same list on every rank
--   mpi.finalize()            ends MPI (at exit it happens by itself); later calls raise
--   mpi.abort(message)        prints the message and ends every rank of the job
--
-- Values are booleans, numbers (integers stay integers), strings and tables of them.
-- Outside mpirun (no OMPI_COMM_WORLD_SIZE / PMI_SIZE / PMIX_RANK in the environment) MPI is
-- neither loaded nor started: a world of size 1 where every call works and checks its
-- arguments the same way. Under mpirun the MPI half, build/recur_mpi.so (bindings/mpi.c), is
-- found on package.cpath (as recur_mpi), beside the interpreter, or at $RECUR_MPI_LIB.
--
-- A collective never hangs on bad input: each rank checks its own arguments, then the ranks
-- exchange a small description (shape, op, root, or the local error) before any data moves, and
-- every rank raises when any rank's arguments are wrong or disagree. An error that is not caught
-- ends the whole job: the `recur` program calls mpi._on_fatal_error after printing it
-- (MPI_Abort), so the other ranks never wait for a dead one.
local recur = require "recur"

local mpi = {}

local function under_mpirun()
  return (os.getenv("OMPI_COMM_WORLD_SIZE") or os.getenv("PMIX_RANK") or os.getenv("PMI_SIZE")) ~= nil
end

local function find_core()
  local tried = {}
  local from_env = os.getenv("RECUR_MPI_LIB")
  if from_env and from_env ~= "" then return from_env end
  local p, err = package.searchpath("recur_mpi", package.cpath)
  if p then return p end
  tried[#tried + 1] = err
  -- beside the interpreter (build/recur -> build/recur_mpi.so)
  local lo = 0
  while arg and arg[lo - 1] do lo = lo - 1 end
  local prog = arg and arg[lo]
  if prog then
    local dir = prog:match("^(.*)/[^/]*$") or "."
    local cand = dir .. "/recur_mpi.so"
    local f = io.open(cand, "rb")
    if f then
      f:close()
      return cand
    end
    tried[#tried + 1] = "\n\tno file '" .. cand .. "' (beside the interpreter)"
  end
  error("recur.mpi: running under mpirun but the MPI half (recur_mpi.so) was not found: build it with `make all` " ..
    "(needs Open MPI: make deps) and put its directory on LUA_CPATH, or set RECUR_MPI_LIB:\n\t" .. table.concat(tried), 0)
end

local core, rank, size
local finalized = false
if under_mpirun() then
  local path = find_core()
  if not package.loadlib then error("recur.mpi: package.loadlib is not available here (a sandboxed runtime?)", 0) end
  local open, err = package.loadlib(path, "luaopen_recur_mpi_core")
  if not open then error("recur.mpi: cannot load " .. path .. ": " .. tostring(err), 0) end
  core = open()
  rank, size = core.init()
  -- MPI_Finalize when the state closes after a script that ended normally; after an error the
  -- `recur` program aborts the job first (mpi._on_fatal_error), so this finds MPI gone
  mpi._sentinel = setmetatable({}, { __gc = function()
    if not finalized then
      finalized = true
      core.finalize()
    end
  end })
else
  rank, size = 0, 1
end

function mpi.rank() return rank end
function mpi.size() return size end
function mpi.is_distributed() return core ~= nil end

local function live(fn)
  if finalized then error("mpi." .. fn .. ": called after mpi.finalize()", 3) end
end

-- ---- serialisation of Lua values (string.pack; integers and floats kept apart) ----

local function encode(v, out, fn, path, seen)
  local ty = type(v)
  if ty == "boolean" then
    out[#out + 1] = v and "T" or "F"
  elseif ty == "number" then
    if math.type(v) == "integer" then out[#out + 1] = string.pack("<c1j", "i", v)
    else out[#out + 1] = string.pack("<c1n", "d", v) end
  elseif ty == "string" then
    out[#out + 1] = string.pack("<c1s4", "s", v)
  elseif ty == "table" then
    if seen[v] then error(string.format("mpi.%s: argument #1 holds a cycle at %s", fn, path), 0) end
    seen[v] = true
    local keys = {}
    for k in pairs(v) do
      if type(k) ~= "string" and math.type(k) ~= "integer" then
        error(string.format("mpi.%s: argument #1 has a key of type %s at %s (only strings and integers)", fn, type(k), path), 0)
      end
      keys[#keys + 1] = k
    end
    out[#out + 1] = string.pack("<c1j", "t", #keys)
    for _, k in ipairs(keys) do
      encode(k, out, fn, path, seen)
      encode(v[k], out, fn, path .. "[" .. string.format("%q", k) .. "]", seen)
    end
    seen[v] = nil
  else
    error(string.format("mpi.%s: argument #1 holds a %s at %s (only booleans, numbers, strings and tables of them)", fn, ty, path), 0)
  end
end

local function decode(s, pos)
  local tag = s:sub(pos, pos)
  if tag == "T" then return true, pos + 1 end
  if tag == "F" then return false, pos + 1 end
  if tag == "i" then return string.unpack("<j", s, pos + 1) end
  if tag == "d" then return string.unpack("<n", s, pos + 1) end
  if tag == "s" then return string.unpack("<s4", s, pos + 1) end
  if tag == "t" then
    local n
    n, pos = string.unpack("<j", s, pos + 1)
    local t = {}
    for _ = 1, n do
      local k, v
      k, pos = decode(s, pos)
      v, pos = decode(s, pos)
      t[k] = v
    end
    return t, pos
  end
  error("recur.mpi: corrupt message (tag " .. string.format("%q", tag) .. ")", 0)
end

local function serialise(v, fn)
  if v == nil then error("mpi." .. fn .. ": argument #1 is nil (expected a boolean, number, string or table)", 3) end
  local out = {}
  local ok, err = pcall(encode, v, out, fn, "the value", {})
  if not ok then error(err, 3) end
  return table.concat(out)
end
local function deserialise(s) return (decode(s, 1)) end
mpi._serialise, mpi._deserialise = serialise, deserialise

-- ---- argument agreement: every rank learns every rank's check before data moves ----

-- Each rank passes its local error (or nil) and a description that must be equal on every rank
-- (shape, op, root); raises on every rank if any has an error or the descriptions differ.
local function agree(fn, err, desc)
  if not core then
    if err then error(err, 3) end
    return
  end
  local all = core.gather_strings((err and "E" or "D") .. (err or desc), -1)
  for r = 1, size do
    if all[r]:sub(1, 1) == "E" then
      if r - 1 == rank then error(err, 3) end
      error(string.format("mpi.%s: rank %d passed bad arguments: %s", fn, r - 1, all[r]:sub(2)), 3)
    end
  end
  for r = 2, size do
    if all[r] ~= all[1] then
      error(string.format("mpi.%s: the ranks disagree: rank 0 passed %s but rank %d passed %s", fn,
        all[1]:sub(2), r - 1, all[r]:sub(2)), 3)
    end
  end
end

local function shape_text(t)
  local d = {}
  for i = 1, t:dim() do d[i] = tostring(t:size(i)) end
  return "[" .. table.concat(d, ", ") .. "]"
end

-- The local check of a tensor argument: nil, or the error message.
local function check_tensor(fn, t)
  if not recur.is_tensor(t) then
    return string.format("mpi.%s: argument #1 must be a tensor, got %s", fn, type(t))
  end
  if t:is_closed() then return string.format("mpi.%s: argument #1 is a closed tensor", fn) end
  if not t:is_contiguous() then
    return string.format("mpi.%s: argument #1 (shape %s) is not contiguous (use t:contiguous())", fn, shape_text(t))
  end
  return nil
end

local function check_root(fn, root, argn)
  if root == nil then return 0 end
  if math.type(root) ~= "integer" then
    return nil, string.format("mpi.%s: argument #%d (root) must be an integer rank, got %s", fn, argn,
      type(root) == "number" and tostring(root) or type(root))
  end
  if root < 0 or root >= size then
    return nil, string.format("mpi.%s: argument #%d (root) is %d, not a rank in 0..%d", fn, argn, root, size - 1)
  end
  return root
end

local OPS = { sum = true, mean = true, max = true, min = true }

function mpi.barrier()
  live("barrier")
  if core then core.barrier() end
end

function mpi.allreduce(t, op)
  live("allreduce")
  op = op == nil and "sum" or op
  local err = check_tensor("allreduce", t)
  if not err and (type(op) ~= "string" or not OPS[op]) then
    err = string.format("mpi.allreduce: argument #2 (op) must be \"sum\", \"mean\", \"max\" or \"min\", got %s",
      type(op) == "string" and string.format("%q", op) or type(op))
  end
  agree("allreduce", err, not err and ("a tensor of shape " .. shape_text(t) .. " with op " .. op) or nil)
  if core then
    local p, n = recur._mpi_buffer(t, true)
    core.allreduce(p, n, op)
  end
  return t
end

function mpi.broadcast(t, root)
  live("broadcast")
  local err = check_tensor("broadcast", t)
  local r, rerr = check_root("broadcast", root, 2)
  err = err or rerr
  agree("broadcast", err, not err and ("a tensor of shape " .. shape_text(t) .. " from root " .. r) or nil)
  if core then
    local p, n = recur._mpi_buffer(t, rank ~= r)
    core.broadcast(p, n, r)
  end
  return t
end

function mpi.broadcast_value(v, root)
  live("broadcast_value")
  local r, err = check_root("broadcast_value", root, 2)
  local s
  if not err and rank == r then
    local ok, e = pcall(serialise, v, "broadcast_value")
    if ok then s = e else err = e end
  end
  agree("broadcast_value", err, not err and ("root " .. r) or nil)
  if not core then return deserialise(s) end
  return deserialise(core.broadcast_string(s or "", r))
end

function mpi.gather(v, root)
  live("gather")
  local r, err = check_root("gather", root, 2)
  local ok, s = pcall(serialise, v, "gather")
  if not ok then err = err or s end
  agree("gather", err, not err and ("root " .. r) or nil)
  if not core then return { deserialise(s) } end
  local all = core.gather_strings(s, r)
  if not all then return nil end
  for i = 1, #all do all[i] = deserialise(all[i]) end
  return all
end

function mpi.allgather(v)
  live("allgather")
  local ok, s = pcall(serialise, v, "allgather")
  agree("allgather", not ok and s or nil, "allgather")
  if not core then return { deserialise(s) } end
  local all = core.gather_strings(s, -1)
  for i = 1, #all do all[i] = deserialise(all[i]) end
  return all
end

function mpi.finalize()
  live("finalize")
  finalized = true
  if core then core.finalize() end
end

function mpi.abort(message)
  io.stderr:write(string.format("recur.mpi: rank %d of %d aborts the job: %s\n", rank, size, tostring(message)))
  io.stderr:flush()
  if core then core.abort(1) end
  os.exit(1)
end

-- Called by the `recur` program after it printed an uncaught error: ends every rank.
function mpi._on_fatal_error()
  if core and not finalized then
    io.stderr:write(string.format("recur.mpi: rank %d of %d failed (message above); ending the job\n", rank, size))
    io.stderr:flush()
    finalized = true
    core.abort(1)
  end
end

return mpi
