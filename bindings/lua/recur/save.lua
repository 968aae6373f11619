-- recur.save(path, {model =, optimizer =, meta =, tensors =, rng =}): see checkpoint.lua.
-- A callable table (modules return tables); errors are raised at the caller's line.
local M = require "recur.checkpoint"
return setmetatable({}, {
  __call = function(_, ...)
    local r = table.pack(pcall(M.save, ...))
    if not r[1] then error((tostring(r[2]):gsub("^[^\n]-%.lua:%d+: ", "")), 2) end
    return table.unpack(r, 2, r.n)
  end,
})
