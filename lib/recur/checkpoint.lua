-- Checkpoints: recur.save / recur.load in the safetensors format (runtime/safetensors.c).
--
--   recur.save(path, {model = m, optimizer = opt, meta = {...}, tensors = {name = t}, rng = true})
--   local ck = recur.load(path)                              -- read and validate only
--   local ck = recur.load(path, {model = m, optimizer = opt}) -- and restore into them
--   local ck = recur.load(path, {optimizer = false})  -- without reading the optimizer's state
--
-- The file holds:
--   model.<name>            every parameter and buffer of the model (named_state order)
--   optimizer.<i>.<slot>    the optimizer's state tensors, i the 1-based parameter position
--   extra.<name>            user tensors (opts.tensors), e.g. a data permutation
-- and string metadata (the safetensors "__metadata__"):
--   format = "recur-checkpoint-1", recur.version
--   recur.meta       the user's meta table as JSON
--   recur.rng_state  recur.rng_state() in hex (unless rng = false)
--   recur.optimizer  JSON: name, hyperparameters, step, epoch, per-parameter steps, slots
--   recur.model      JSON: class name and parameter count
--   recur.step       the optimizer's step count
--   recur.crc32.<name>, recur.header_crc32   checksums, written and verified by the C layer
--                    (runtime/safetensors.h) and left out of ck.metadata
-- A file with recur's metadata (format starting "recur", or recur.version) must be of FORMAT
-- and hold F32 tensors only: recur.load refuses another format (a newer recur's, or a
-- corrupted one) and another dtype (recur writes none: a corrupted header), naming the tensor.
-- Other writers' safetensors files are read whatever their format and dtypes.
-- PyTorch and numpy read it with the safetensors library or a few lines of Python (see
-- tests/fixtures/read_safetensors.py).
--
-- recur.load(path, targets) validates the file (the C reader) and then everything it is
-- asked to restore -- names, shapes, the optimizer kind and parameter count -- before it
-- changes anything: on an error the model, the optimizer and the RNG are untouched. With
-- targets it also restores the RNG state (targets.rng = false keeps the current one); the
-- optimizer's hyperparameters are not changed (the script that builds it decides them; the
-- saved ones are in ck.optimizer.hyper). targets.optimizer = false leaves the optimizer's
-- tensors unread (a program that only runs the model, e.g. a sampler: with Adam they are
-- twice the model's size): the file is still validated whole, ck.optimizer is nil, ck.step
-- and ck.names are as usual. It returns
--   {model = {name -> tensor}, optimizer = state (opt:load_state's format, plus name and
--    hyper), meta = table, tensors = {name -> tensor} (extras and unprefixed tensors),
--    rng_state = string, step = integer, metadata = raw string metadata, names = all names
--    in file order}
local recur = require "recur"
local json = require "recur.json"
local ST = recur._safetensors

local M = {}

local FORMAT = "recur-checkpoint-1"

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
local function unhex(h)
  if #h % 2 ~= 0 or h:find("[^0-9a-fA-F]") then return nil end
  return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

-- calls a C function; its error is raised again at the caller's level, without the position
-- inside this file
local function call(level, f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then error((tostring(r[2]):gsub("^[^\n]-%.lua:%d+: ", "")), level + 1) end
  return table.unpack(r, 2, r.n)
end

local function check_keys(t, allowed, who)
  for k in pairs(t) do
    if not allowed[k] then error(who .. ": unknown option '" .. tostring(k) .. "'", 3) end
  end
end

local function slot_names(pstate)
  local s = {}
  for k, v in pairs(pstate) do
    if k ~= "step" and recur.is_tensor(v) then s[#s + 1] = k end
  end
  table.sort(s)
  return s
end

function M.save(path, spec)
  if type(path) ~= "string" then error("save: argument #1 must be a path, got " .. type(path), 2) end
  if type(spec) ~= "table" then error("save: argument #2 must be a table {model =, optimizer =, meta =}", 2) end
  check_keys(spec, { model = true, optimizer = true, meta = true, tensors = true, rng = true }, "save")
  local names, tensors, meta = {}, {}, { format = FORMAT, ["recur.version"] = recur._VERSION }
  local function add(n, t)
    names[#names + 1] = n
    tensors[#tensors + 1] = t
  end
  local m = spec.model
  if m ~= nil then
    if type(m) ~= "table" or not rawget(m, "_is_module") then error("save: model must be a module, got " .. type(m), 2) end
    for _, nt in ipairs(m:named_state()) do add("model." .. nt[1], nt[2]) end
    meta["recur.model"] = json.encode { class = m._class_name, parameters = m:num_parameters() }
  end
  local opt = spec.optimizer
  if opt ~= nil then
    if not recur.optim.is_optimizer(opt) then error("save: optimizer must be a recur.optim optimizer, got " .. type(opt), 2) end
    local st = opt:state()
    local steps, slots = {}, nil
    for i, ps in ipairs(st.params) do
      steps[i] = ps.step
      slots = slots or slot_names(ps)
      for _, s in ipairs(slot_names(ps)) do add("optimizer." .. i .. "." .. s, ps[s]) end
    end
    local hyper = opt:hyper()
    meta["recur.optimizer"] = json.encode {
      name = hyper.name, hyper = hyper, step = st.step, epoch = st.epoch,
      params = #st.params, steps = steps, slots = slots or {},
    }
    meta["recur.step"] = tostring(st.step)
  end
  if spec.tensors ~= nil then
    if type(spec.tensors) ~= "table" then error("save: tensors must be a table name -> tensor", 2) end
    local keys = {}
    for k, v in pairs(spec.tensors) do
      if type(k) ~= "string" or k == "" then error("save: the keys of tensors must be non-empty strings", 2) end
      if not recur.is_tensor(v) then error("save: tensors." .. k .. " is not a tensor", 2) end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    for _, k in ipairs(keys) do add("extra." .. k, spec.tensors[k]) end
  end
  if spec.meta ~= nil then
    local ok, s = pcall(json.encode, spec.meta)
    if not ok then error("save: meta cannot be stored: " .. s, 2) end
    meta["recur.meta"] = s
  end
  if spec.rng ~= false then meta["recur.rng_state"] = hex(recur.rng_state()) end
  call(2, ST.write, path, names, tensors, meta)
end

local function decode_meta(path, metadata, key)
  local s = metadata[key]
  if s == nil then return nil end
  local ok, v = pcall(json.decode, s)
  if not ok then error("load: " .. path .. ": metadata " .. key .. " is not valid JSON (" .. v .. ")", 3) end
  return v
end

-- A recur checkpoint (its format line, or recur's metadata) must be of the format this
-- version writes and hold F32 tensors only (recur writes nothing else: another dtype is a
-- corrupted header); other writers' safetensors files are read as they are.
local function check_format(path, metadata, names, dtypes)
  local f = metadata.format
  local ours = (type(f) == "string" and f:find("^recur")) or metadata["recur.version"] ~= nil
  if not ours then return end
  if f == nil then
    error("load: " .. path .. ": the file has recur metadata but no format (recur writes format = \""
      .. FORMAT .. "\"): the file is corrupted", 3)
  end
  if f ~= FORMAT then
    error(string.format("load: %s: format %q is not one this recur reads (%s): a newer recur wrote it, or the file is corrupted",
      path, f, FORMAT), 3)
  end
  for _, n in ipairs(names) do
    if dtypes[n] ~= "F32" then
      error(string.format("load: %s: tensor %q has dtype %s: a recur checkpoint holds F32 tensors only",
        path, n, tostring(dtypes[n])), 3)
    end
  end
end

-- Validates an optimizer state read from a file against opt (nil when it fits).
local function check_optimizer(opt, ost)
  local h = opt:hyper()
  if ost.name ~= h.name then
    return "load: the checkpoint holds a " .. tostring(ost.name) .. " optimizer state, not " .. h.name
  end
  local cur = opt:state()
  if #ost.params ~= #cur.params then
    return string.format("load: the checkpoint's optimizer has %d parameters, this one %d", #ost.params, #cur.params)
  end
  for i, ps in ipairs(cur.params) do
    for _, s in ipairs(slot_names(ps)) do
      local t = ost.params[i][s]
      if not recur.is_tensor(t) then
        return string.format("load: optimizer state optimizer.%d.%s is missing", i, s)
      end
      local a, b = table.concat(t:size(), ", "), table.concat(ps[s]:size(), ", ")
      if a ~= b then
        return string.format("load: optimizer state optimizer.%d.%s has shape [%s], the optimizer's is [%s]", i, s, a, b)
      end
    end
  end
  return nil
end

function M.load(path, targets)
  if type(path) ~= "string" then error("load: argument #1 must be a path, got " .. type(path), 2) end
  if targets ~= nil and type(targets) ~= "table" then error("load: argument #2 must be a table {model =, optimizer =}", 2) end
  targets = targets or {}
  check_keys(targets, { model = true, optimizer = true, rng = true, strict = true }, "load")
  local skip_optimizer = targets.optimizer == false
  local names, all, metadata, dtypes = call(2, ST.read, path, skip_optimizer and { "optimizer." } or nil)
  check_format(path, metadata, names, dtypes)
  local ck = { model = {}, tensors = {}, metadata = metadata, names = names, dtypes = dtypes }
  local opt_tensors = {}
  for _, n in ipairs(names) do
    local t = all[n]
    local rest = n:match("^model%.(.+)$")
    if rest then
      ck.model[rest] = t
    else
      local i, slot = n:match("^optimizer%.(%d+)%.(.+)$")
      if i then
        opt_tensors[#opt_tensors + 1] = { tonumber(i), slot, t }
      else
        ck.tensors[n:match("^extra%.(.+)$") or n] = t
      end
    end
  end
  ck.meta = decode_meta(path, metadata, "recur.meta")
  local oinfo = decode_meta(path, metadata, "recur.optimizer")
  if oinfo ~= nil then
    if type(oinfo) ~= "table" or math.type(oinfo.params) ~= "integer" or type(oinfo.steps) ~= "table" then
      error("load: " .. path .. ": metadata recur.optimizer is malformed", 2)
    end
    local ost = { name = oinfo.name, hyper = oinfo.hyper, step = oinfo.step, epoch = oinfo.epoch, params = {} }
    for i = 1, oinfo.params do ost.params[i] = { step = oinfo.steps[i] } end
    for _, e in ipairs(opt_tensors) do
      local ps = ost.params[e[1]]
      if not ps then error(string.format("load: %s: optimizer.%d.%s is beyond the optimizer's %d parameters", path, e[1], e[2], oinfo.params), 2) end
      ps[e[2]] = e[3]
    end
    if not skip_optimizer then ck.optimizer = ost end
    ck.step = oinfo.step
  elseif #opt_tensors > 0 then
    error("load: " .. path .. ": optimizer tensors without recur.optimizer metadata", 2)
  end
  local rng_hex = metadata["recur.rng_state"]
  if rng_hex ~= nil then
    ck.rng_state = unhex(rng_hex)
    if not ck.rng_state then error("load: " .. path .. ": metadata recur.rng_state is not hexadecimal", 2) end
  end
  -- validate everything that will be restored, then restore
  local m, opt = targets.model, targets.optimizer
  if skip_optimizer then opt = nil end
  if m ~= nil then
    if type(m) ~= "table" or not rawget(m, "_is_module") then error("load: model must be a module, got " .. type(m), 2) end
    local err = m:check_state_dict(ck.model, targets.strict ~= false)
    if err then error("load: " .. path .. ": " .. err:gsub("^load_state_dict: ", ""), 2) end
  end
  if opt ~= nil then
    if not recur.optim.is_optimizer(opt) then error("load: optimizer must be a recur.optim optimizer", 2) end
    if not ck.optimizer then error("load: " .. path .. " holds no optimizer state", 2) end
    local err = check_optimizer(opt, ck.optimizer)
    if err then error(err:gsub("^load: ", "load: " .. path .. ": "), 2) end
  end
  local restore_rng = targets.rng ~= false and (m ~= nil or opt ~= nil or targets.rng == true)
  if restore_rng and ck.rng_state then
    -- set_rng_state validates before it changes anything; check it first (it is the only
    -- restore step that can still fail)
    local cur = recur.rng_state()
    local ok, err = pcall(recur.set_rng_state, ck.rng_state)
    if not ok then error("load: " .. path .. ": " .. tostring(err), 2) end
    recur.set_rng_state(cur)
  end
  if m ~= nil then m:load_state_dict(ck.model, { strict = targets.strict ~= false }) end
  if opt ~= nil then opt:load_state(ck.optimizer) end
  if restore_rng and ck.rng_state then recur.set_rng_state(ck.rng_state) end
  return ck
end

return M
