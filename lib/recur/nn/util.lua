-- Helpers shared by the parts of recur.nn (not exported by it).
local U = {}

function U.fail(msg, level) error(msg, (level or 1) + 1) end

function U.shape_str(s)
  local t = {}
  for i, v in ipairs(s) do t[i] = tostring(v) end
  return "[" .. table.concat(t, ", ") .. "]"
end

function U.check_int(v, who, what)
  local i = type(v) == "number" and math.tointeger(v)
  if not i or i < 0 then U.fail(who .. ": " .. what .. " must be an integer >= 0, got " .. tostring(v), 3) end
  return i
end

function U.check_opts(o, who, allowed)
  if o == nil then return {} end
  if type(o) ~= "table" then U.fail(who .. ": options must be a table, got " .. type(o), 3) end
  for k in pairs(o) do
    if not allowed[k] then U.fail(who .. ": unknown option '" .. tostring(k) .. "'", 3) end
  end
  return o
end

return U
