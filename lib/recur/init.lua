-- The Lua half of recur: runs once when the module loads, with the C module table.
-- Everything here is 1-based, like Lua: dimensions, indices and positions.
local recur = ...

recur._VERSION = "recur 0.1.0"

-- recur.Function support: the ctx object handed to forward and backward.
local ctx_methods = {}
function ctx_methods:save_for_backward(...)
  if type(self) ~= "table" then
    error("ctx:save_for_backward: called with " .. (recur.is_tensor(self) and "a tensor" or type(self))
      .. " as self, not the ctx (use ctx:save_for_backward(...), not ctx.save_for_backward(...))", 2)
  end
  self.saved_tensors = table.pack(...)
end
recur._function_ctx_mt = { __index = ctx_methods }
function recur._function_call(apply)
  return function(_, ...) return apply(...) end
end

recur.gradcheck = require("recur.gradcheck")

-- Checkpoints (lib/recur/checkpoint.lua); errors are raised at the caller's line.
local function forward(name)
  return function(...)
    local r = table.pack(pcall(require("recur.checkpoint")[name], ...))
    if not r[1] then error((tostring(r[2]):gsub("^[^\n]-%.lua:%d+: ", "")), 2) end
    return table.unpack(r, 2, r.n)
  end
end
recur.save = forward("save")
recur.load = forward("load")

-- Submodules of the Lua half (lib/recur/NAME.lua, compiled in) load on first use:
-- recur.nn, recur.optim, recur.data, ... A C part may register the same name first.
setmetatable(recur, {
  __index = function(t, k)
    if type(k) ~= "string" then return nil end
    local name = "recur." .. k
    if package and package.preload and package.preload[name] then
      local m = require(name)
      rawset(t, k, m)
      return m
    end
    return nil
  end,
})

return recur
