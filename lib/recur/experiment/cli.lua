-- recur.experiment.cli: the command line every post script shares, on top of scripts/args.lua:
-- the script's own options plus --quick (the default) | --full | --smoke, --seeds N,
-- --out FILE, --figures DIR, --resume / --no-resume. Returns args.lua's table with
-- args.profile = "quick" | "full" | "smoke" and args.resume (true unless --no-resume).
local cli = {}

local SHARED = {
  { "quick", "flag", false, "the quick profile (the default): minutes, what `make reproduce` runs" },
  { "full", "flag", false, "the post's full settings (what the committed report shows)" },
  { "smoke", "flag", false, "seconds, tiny sizes: checks the script works, not that it reproduces" },
  { "seeds", "int", nil, "number of seeds (default: the profile's)" },
  { "out", "file", nil, "results file (default results/<post>.json)" },
  { "figures", "dir", nil, "figure directory (default results/img)" },
  { "resume", "flag", false, "reuse finished runs of an interrupted sweep (the default)" },
  { "no-resume", "flag", false, "run every run again" },
}

function cli.parse(argv, spec)
  if type(argv) ~= "table" then error("experiment.cli: arg must be the script's arg table, got " .. type(argv), 2) end
  if type(spec) ~= "table" then error("experiment.cli: spec must be an args.lua spec table, got " .. type(spec), 2) end
  local args = require "scripts.args"
  local full = {}
  for k, v in pairs(spec) do
    if type(k) ~= "number" then full[k] = v end
  end
  local taken = {}
  for _, o in ipairs(spec) do
    full[#full + 1] = o
    taken[o[1]] = true
  end
  for _, o in ipairs(SHARED) do
    if taken[o[1]] then error("experiment.cli: the script's option --" .. o[1] .. " clashes with the shared one", 2) end
    full[#full + 1] = o
  end
  full.exclusive = { { "quick", "full", "smoke" }, { "resume", "no-resume" } }
  for _, group in ipairs(spec.exclusive or {}) do full.exclusive[#full.exclusive + 1] = group end
  local a = args.parse(argv, full)
  local chosen
  for _, p in ipairs({ "quick", "full", "smoke" }) do
    if a[p] then chosen = p end
  end
  if a.seeds ~= nil and a.seeds < 1 then
    args.die((spec.prog and spec.prog .. ": " or "") .. "--seeds must be at least 1, got " .. a.seeds)
  end
  a.profile = chosen or "quick"
  a.resume = not a.no_resume
  a.quick, a.full, a.smoke = a.profile == "quick", a.profile == "full", a.profile == "smoke"
  local sweep = require "recur.experiment.sweep"
  sweep.defaults.resume, sweep.defaults.profile = a.resume, a.profile
  return a
end

return cli
