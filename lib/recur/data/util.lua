-- recur.data.util: the argument checks shared by recur.data's modules (iter, sets, vocab).
-- Internal: not part of the documented API.
local M = {}

-- Raises string.format(fmt, ...) at level 3: blamed on the caller of the function that
-- called fail.
function M.fail(fmt, ...)
  error(string.format(fmt, ...), 3)
end
local fail = M.fail

-- The options table of fn (nil: an empty one), with every key checked against `allowed`
-- (a set); an unknown one is an error that lists the allowed names.
function M.check_opts(fn, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then fail("%s: options must be a table, got %s", fn, type(opts)) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      fail("%s: unknown option %s (options are %s)", fn, tostring(k), table.concat(names, ", "))
    end
  end
  return opts
end

-- true when v is a number with an integer value: an integer, or a float such as 3.0.
-- true for integers and integral floats that fit an integer (not inf, not NaN)
function M.is_integral(v)
  return math.type(v) == "integer" or (type(v) == "number" and math.tointeger(v) ~= nil)
end

return M
