-- A small command-line parser for the scripts: declared options with types, defaults and help.
--
--   local args = require("scripts.args").parse(arg, {
--     usage = "recur scripts/x.lua [options]",
--     about = "What the script does.",
--     { "data", "file", nil, "text file to train on" },      -- name, type, default, help
--     { "hidden", "int", 128, "units per layer" },
--     { "lr", "number", 2e-3, "learning rate" },
--     { "cell", { "lstm", "gru" }, "lstm", "cell type" },       -- a list: one of these
--     { "quiet", "flag", false, "print less" },
--   })
-- --name value and --name=value are accepted; flags take no value; --help prints the help and
-- exits. Errors name the option and end the program with a clear message (exit code 2),
-- prefixed with "PROG: " when the spec has prog = "PROG". A type that is none of the above
-- ("file", "dir", "list", "text", ...) is a string, shown upper-cased in the help.
local M = {}

local function die(msg)
  io.stderr:write(msg, "\n")
  os.exit(2)
end

local function type_name(ty)
  if type(ty) == "table" then return table.concat(ty, "|") end
  if ty == "flag" then return "" end
  return ty:upper()
end

function M.help(spec)
  local lines = { "usage: " .. (spec.usage or "recur script.lua [options]") }
  if spec.about then lines[#lines + 1] = "\n" .. spec.about end
  lines[#lines + 1] = "\noptions:"
  for _, o in ipairs(spec) do
    local left = "  --" .. o[1] .. (o[2] == "flag" and "" or (" " .. type_name(o[2])))
    local def = ""
    if o[3] ~= nil and o[2] ~= "flag" then def = " (default " .. tostring(o[3]) .. ")" end
    lines[#lines + 1] = string.format("%-30s %s%s", left, o[4] or "", def)
  end
  lines[#lines + 1] = string.format("%-30s %s", "  --help", "print this help")
  if spec.epilog then lines[#lines + 1] = "\n" .. spec.epilog end
  return table.concat(lines, "\n")
end

local function convert(o, v, fail)
  local name, ty = o[1], o[2]
  if type(ty) == "table" then
    for _, c in ipairs(ty) do
      if c == v then return v end
    end
    fail(string.format("--%s must be one of %s, got '%s'", name, table.concat(ty, ", "), v))
  elseif ty == "int" then
    local n = math.tointeger(tonumber(v))
    if not n then fail(string.format("--%s must be an integer, got '%s'", name, v)) end
    return n
  elseif ty == "number" then
    local n = tonumber(v)
    if not n or n ~= n then fail(string.format("--%s must be a number, got '%s'", name, v)) end
    return n
  end
  return v
end

-- returns a table name -> value (dashes in names become underscores), and .given[name] for
-- the options set on the command line
function M.parse(argv, spec)
  local function fail(msg) die(spec.prog and spec.prog .. ": " .. msg or msg) end
  local by = {}
  local out = { given = {} }
  for _, o in ipairs(spec) do
    by[o[1]] = o
    out[o[1]:gsub("-", "_")] = o[3]
  end
  local i = 1
  while argv[i] ~= nil do
    local a = argv[i]
    if a == "--help" or a == "-h" then
      print(M.help(spec))
      os.exit(0)
    end
    local name, val = a:match("^%-%-([%w%-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w%-]+)$") end
    if not name then fail(string.format("unexpected argument '%s' (try --help)", a)) end
    local o = by[name]
    if not o then fail(string.format("unknown option --%s (try --help)", name)) end
    if o[2] == "flag" then
      if val ~= nil then fail(string.format("--%s takes no value", name)) end
      val = true
    elseif val == nil then
      i = i + 1
      val = argv[i]
      if val == nil then fail(string.format("--%s needs a value", name)) end
      val = convert(o, val, fail)
    else
      val = convert(o, val, fail)
    end
    local key = name:gsub("-", "_")
    out[key] = val
    out.given[key] = true
    i = i + 1
  end
  return out
end

M.die = die

-- "1h02m", "3m05s", "12s"
function M.duration(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.max(0, math.floor(s + 0.5))
  if s >= 3600 then return string.format("%dh%02dm", s // 3600, (s % 3600) // 60) end
  if s >= 60 then return string.format("%dm%02ds", s // 60, s % 60) end
  return string.format("%ds", s)
end

return M
