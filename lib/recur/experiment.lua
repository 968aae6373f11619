-- recur.experiment: the reproduction harness (docs/experiments.md). One table gathering its
-- parts under lib/recur/experiment/:
--
--   experiment.sweep{...}             sweeps over configs x seeds, resumable (sweep.lua)
--   experiment.execute(spec, run_fn)  one run of a sweep, for engines that hand runs out
--   experiment.stats                  mean, std, se, summary, welch, histogram, kde (stats.lua)
--   experiment.report{...}            a post's results file and "recur vs post" tables (report.lua)
--   experiment.cli(arg, spec)         the shared command line (cli.lua)
--   experiment.pick(args, {quick = a, full = b, smoke = c})   the profile's value
--   experiment.seeds(args, n)         {1, ..., --seeds or n} (n may be a per-profile table)
local sweep = require "recur.experiment.sweep"
local report = require "recur.experiment.report"
local cli = require "recur.experiment.cli"

local experiment = {
  stats = require "recur.experiment.stats",
  format = require "recur.experiment.format",
  clock = require "recur.experiment.clock",
  key = sweep.key,
  execute = sweep.execute,
  sweep_duration = sweep.duration, -- 75 -> "1m15s"
}

function experiment.sweep(o) return sweep.new(o) end

function experiment.report(o) return report.new(o) end

function experiment.cli(argv, spec) return cli.parse(argv, spec) end

function experiment.pick(args, by_profile)
  if type(args) ~= "table" or type(by_profile) ~= "table" then
    error("experiment.pick: expected (args, {quick = ..., full = ..., smoke = ...})", 2)
  end
  local v = by_profile[args.profile or "quick"]
  if v == nil then error("experiment.pick: no value for profile " .. tostring(args.profile), 2) end
  return v
end

function experiment.seeds(args, n)
  if type(n) == "table" then n = experiment.pick(args, n) end
  n = args.seeds or n
  if math.type(n) ~= "integer" or n < 1 then error("experiment.seeds: the number of seeds must be a positive integer, got " .. tostring(n), 2) end
  local s = {}
  for i = 1, n do s[i] = i end
  return s
end

return experiment
