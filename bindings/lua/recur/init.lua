-- The Lua half of recur: runs once when the module loads, with the C module table.
local recur = ...
recur._VERSION = "recur 0.1.0"
return recur
