-- Option checks shared by the models (charrnn, word_rnn): the message names the model.
local M = {}

-- o[k] (default when nil) as an integer >= min; a float with an integer value is accepted.
-- The error points at the code that built the model (level 4: this <- init <- new <- caller),
-- so a model's wrapper must call this in a tail call.
function M.int(who, o, k, default, min)
  local v = o[k]
  if v == nil then v = default end
  if math.type(v) ~= "integer" then
    if type(v) == "number" and v == math.floor(v) then
      v = math.tointeger(v)
    else
      error(string.format("%s: %s must be an integer, got %s", who, k, tostring(v)), 4)
    end
  end
  if v < min then error(string.format("%s: %s must be >= %d, got %d", who, k, min, v), 4) end
  return v
end

return M
