-- How bench/charrnn.lua and bench/word_lm.lua run their measurements, each in its own process:
-- their command line (the user's options or one worker's), a shell command's output, the
-- worker's `RESULT key=value ...` line, the recur program to start, and whether Debian's
-- PyTorch is there.
local workers = {}

-- The command line of an orchestrator: `--worker key=value ...` (one measurement, as the
-- orchestrator starts it) gives nil and the worker's table; anything else is the user's options,
-- parsed by scripts/args.lua from spec (usage, --help, errors naming the option).
function workers.options(argv, spec)
  if argv[1] == "--worker" then
    local w = {}
    for j = 2, #argv do
      local k, v = argv[j]:match("^(%w+)=(.*)$")
      if k then w[k] = v end
    end
    return nil, w
  end
  return require("scripts.args").parse(argv, spec), nil
end

-- a comma-separated list of positive integers (--hidden 128,512), or exits 2 naming the option
function workers.int_list(s, name, program)
  local out = {}
  for v in tostring(s):gmatch("[^,]+") do
    local n = math.tointeger(tonumber(v))
    if not n or n < 1 then
      io.stderr:write(string.format("%s: --%s takes positive integers separated by commas, got "
        .. "'%s'\n", program, name, v))
      os.exit(2)
    end
    out[#out + 1] = n
  end
  return out
end

-- stdout and stderr of cmd
function workers.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("a")
  p:close()
  return out
end

-- the RESULT line's fields (numbers where they read as numbers), or nil and the whole output
function workers.parse(out)
  local line = out:match("RESULT ([^\n]*)")
  if not line then return nil, out end
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
  return r
end

-- the recur program when running inside it (RECUR_BIN), else recur next to the module
-- LUA_CPATH finds, else build/recur
function workers.recur_bin()
  local bin = os.getenv("RECUR_BIN")
  if bin then return bin end
  local dir = (os.getenv("LUA_CPATH") or ""):match("([^;]*)/%?%.so")
  return (dir and dir ~= "" and dir or "build") .. "/recur"
end

-- whether /usr/bin/python3 imports torch (python3-torch)
function workers.torch_available()
  return workers.sh("/usr/bin/python3 -c 'import torch; print(\"ok\")'"):find("ok") ~= nil
end

return workers
