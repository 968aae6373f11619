-- The scripts' command line: a table of options turned into a lua-argparse parser, so that
-- usage, --help and errors have argparse's familiar form.
--
--   local args = require("scripts.args").parse(arg, {
--     name = "recur scripts/x.lua",                       -- the program, as usage shows it
--     about = "What the script does.",
--     { "data", "file", nil, "text file to train on" },    -- name, type, default, help
--     { "hidden", "int", 128, "units per layer" },
--     { "lr", "number", 2e-3, "learning rate" },
--     { "cell", { "lstm", "gru" }, "lstm", "cell type" },  -- a list: one of these
--     { "quiet", "flag", false, "print less" },
--     { "verbose", "flag", false, "print more" },
--     exclusive = { { "quiet", "verbose" } },               -- at most one of these
--   })
-- --name value and --name=value are accepted (the value may begin with "-": --lr -1e-3);
-- flags take no value; -h and --help print the help and exit 0. A wrong command line prints the usage and
-- "Error: ..." naming the option and exits 2. A type that is none of the above ("file", "dir",
-- "list", "text", ...) is a string, shown as <file> and so on in the help. An older spec's
-- usage = "recur scripts/x.lua [options]" still works: the program is its part up to ".lua".
-- Returns a table name -> value (dashes in names become underscores; an option not given has
-- its default), and .given[name] = true for the options set on the command line.
local argparse = require "argparse"

local M = {}

local function die(msg)
  io.stderr:write(msg, "\n")
  os.exit(2)
end

local function program(spec)
  if spec.name then return spec.name end
  local u = spec.usage
  if not u then return "recur script.lua" end
  return u:match("^(.-%.lua)%f[%s%z]") or (u:gsub("%s*%[options%]%s*$", ""))
end

local function to_int(name)
  return function(v)
    local n = math.tointeger(tonumber(v))
    if not n then return nil, string.format("--%s must be an integer, got '%s'", name, v) end
    return n
  end
end

local function to_number(name)
  return function(v)
    local n = tonumber(v)
    if not n or n ~= n then return nil, string.format("--%s must be a number, got '%s'", name, v) end
    return n
  end
end

-- argparse reads a word after an option that begins with "-" as an option of its own; the
-- scripts took it as the value ("--lr -1e-3", "--prime '-- so'") unless it names an option
local function join_values(argv, spec)
  local takes_value, known = {}, { ["-h"] = true, ["--help"] = true }
  for _, o in ipairs(spec) do
    known["--" .. o[1]] = true
    if o[2] ~= "flag" then takes_value["--" .. o[1]] = true end
  end
  local out, i = {}, 1
  while argv[i] ~= nil do
    local a, nxt = argv[i], argv[i + 1]
    if takes_value[a] and type(nxt) == "string" and nxt:sub(1, 1) == "-" and not known[nxt:match("^[^=]*")] then
      out[#out + 1] = a .. "=" .. nxt
      i = i + 2
    else
      out[#out + 1] = a
      i = i + 1
    end
  end
  return out
end

-- the argparse parser of a spec; its errors print the usage and exit 2
function M.parser(spec)
  local p = argparse(program(spec), spec.about, spec.epilog)
  local made = {}
  for _, o in ipairs(spec) do
    local name, ty, default, help = o[1], o[2], o[3], o[4] or ""
    if default ~= nil and ty ~= "flag" then
      -- written here, not given to argparse: argparse would run a default through the
      -- option's action, and .given must see only the command line
      help = help .. " (default: " .. tostring(default) .. ")"
    end
    if ty == "flag" then
      made[name] = p:flag("--" .. name, help)
    else
      local opt = p:option("--" .. name, help)
      made[name] = opt
      if type(ty) == "table" then
        opt:choices(ty)
      elseif ty == "int" then
        opt:argname("<int>"):convert(to_int(name))
      elseif ty == "number" then
        opt:argname("<number>"):convert(to_number(name))
      else
        opt:argname("<" .. ty .. ">")
      end
    end
  end
  for _, group in ipairs(spec.exclusive or {}) do
    local opts = {}
    for i, name in ipairs(group) do
      opts[i] = made[name] or error("args: exclusive names --" .. name .. ", which is not an option", 2)
    end
    p:mutex(table.unpack(opts))
  end
  p.error = function(self, msg)
    io.stderr:write(self:get_usage(), "\n\nError: ", msg, "\n")
    os.exit(2)
  end
  return p
end

function M.help(spec)
  return M.parser(spec):get_help()
end

function M.parse(argv, spec)
  local parsed = M.parser(spec):parse(join_values(argv, spec))
  local out = { given = {} }
  for _, o in ipairs(spec) do
    local key = o[1]:gsub("-", "_")
    local v = parsed[key]
    if v ~= nil then
      out[key] = v
      out.given[key] = true
    else
      out[key] = o[3]
    end
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
