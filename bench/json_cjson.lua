-- recur.json against Debian's lua-cjson 2.1.0: what each keeps of doubles, integers and key
-- order, what each refuses, and the time to decode and encode a results file (ratios within
-- one run). docs/architecture.md ("JSON") quotes its figures.
local opts = require("scripts.args").parse(arg, {
  name = "recur bench/json_cjson.lua",
  about = "Compares recur.json with lua-cjson: round trips of random doubles and int64s, key order\n"
    .. "over processes, what each decoder accepts, and the best CPU time of decodes and encodes of\n"
    .. "a results file.",
  { "n", "int", 100000, "random doubles and random int64s to round-trip" },
  { "file", "file", "docs/results/first_convergence_bias.json", "the JSON file to time" },
  { "reps", "int", 5, "decodes and encodes of the file (the best is kept)" },
})

require "recur"
local json = require "recur.json"
local ok_c, cjson = pcall(require, "cjson")
if not ok_c then
  io.stderr:write("json_cjson: lua-cjson is missing (Debian: apt-get install lua-cjson)\n")
  os.exit(1)
end
cjson = cjson.new() -- its own settings
cjson.encode_number_precision(14) -- the most 2.1.0 allows (it refuses 17)

-- a double from 64 random bits, NaN and infinities skipped; half of them uniform in [0, 1)
local function random_double(k)
  if k % 2 == 0 then return math.random() end
  while true do
    local d = string.unpack("<d", string.pack("<i8", math.random(math.mininteger, math.maxinteger)))
    if d == d and d ~= math.huge and d ~= -math.huge then return d end
  end
end

math.randomseed(42)
local N = opts.n
local lost = { cjson = 0, recur = 0 }
for k = 1, N do
  local d = random_double(k)
  if cjson.decode(cjson.encode({ d }))[1] ~= d then lost.cjson = lost.cjson + 1 end
  if json.decode(json.encode({ d }))[1] ~= d then lost.recur = lost.recur + 1 end
end
print(string.format("doubles (%d, half uniform in [0,1), half from random bits): %d lost by cjson (%%.14g), %d by recur.json (%%.17g)",
  N, lost.cjson, lost.recur))

local ints = { cjson_value = 0, cjson_type = 0, recur = 0 }
for _ = 1, N do
  local v = math.random(math.mininteger, math.maxinteger)
  local c = cjson.decode(string.format("[%d]", v))[1]
  if c ~= v then ints.cjson_value = ints.cjson_value + 1 end
  if math.type(c) ~= "integer" then ints.cjson_type = ints.cjson_type + 1 end
  local r = json.decode(json.encode({ v }))[1]
  if r ~= v or math.type(r) ~= "integer" then ints.recur = ints.recur + 1 end
end
print(string.format("int64s (%d, uniform): cjson.decode gives a float for %d and a different value for %d; recur.json loses %d",
  N, ints.cjson_type, ints.cjson_value, ints.recur))
print(string.format("small integers: cjson.decode('[12]')[1] is a %s (recur.json's: %s); cjson.encode(2^53 + 1) = %s",
  math.type(cjson.decode("[12]")[1]), math.type(json.decode("[12]")[1]), cjson.encode({ (1 << 53) + 1 })))

-- key order: the same table encoded by fresh processes (Lua 5.4 seeds its string hash per state)
local bin = arg[-1] or "lua5.4"
local seen, distinct = {}, 0
for _ = 1, 20 do
  local p = assert(io.popen(string.format(
    "%q -e 'local c = require(\"cjson\") local t = {} for i = 1, 12 do t[\"key\" .. i] = i end io.write(c.encode(t))'", bin)))
  local s = p:read("a")
  p:close()
  if not seen[s] then seen[s], distinct = true, distinct + 1 end
end
print(string.format("key order: 20 processes encoding one 12-key table with cjson: %d distinct outputs; recur.json sorts keys (1)", distinct))

local function refuses(f, s)
  local ok = pcall(f, s)
  return ok and "accepts" or "refuses"
end
for _, case in ipairs({ { "duplicate key", '{"a":1,"a":2}' }, { "invalid UTF-8", '["\255"]' },
  { "NaN", "[NaN]" }, { "hexadecimal", "[0x10]" }, { "1e400 (overflow)", "[1e400]" } }) do
  print(string.format("%-18s cjson %s, recur.json %s", case[1], refuses(cjson.decode, case[2]), refuses(json.decode, case[2])))
end
print(string.format("'/' in a string: cjson writes %s, recur.json %s", cjson.encode({ "a/b" }), json.encode({ "a/b" })))

-- speed: the best of reps, decode of the file's text and encode of the decoded table
local f = assert(io.open(opts.file, "rb"))
local text = f:read("a")
f:close()
local times = {} -- times[fn] = every timing, ms
local function best(fn)
  local b, all = math.huge, {}
  for k = 1, opts.reps do
    local t0 = os.clock()
    fn()
    all[k] = (os.clock() - t0) * 1e3
    b = math.min(b, os.clock() - t0)
  end
  times[fn] = all
  return b
end
local rv = json.decode(text)
local cv = cjson.decode(text)
local f_rd, f_re = function() json.decode(text) end, function() json.encode(rv) end
local rd = best(f_rd)
local cd = best(function() cjson.decode(text) end)
local re = best(f_re)
local ce = best(function() cjson.encode(cv) end)
local rows = require("bench.lib.rows")
rows.emit { bench = "json_cjson", name = "decode " .. opts.file, value = rd * 1e3, unit = "ms",
  better = "lower", ref = cd * 1e3, ref_name = "cjson", ratio = rd / cd, samples = times[f_rd] }
rows.emit { bench = "json_cjson", name = "encode " .. opts.file, value = re * 1e3, unit = "ms",
  better = "lower", ref = ce * 1e3, ref_name = "cjson", ratio = re / ce, samples = times[f_re] }
print(string.format("%s (%d bytes), best of %d, CPU time:", opts.file, #text, opts.reps))
print(string.format("  decode: recur.json %.1f ms, cjson %.1f ms (%.1fx)", rd * 1e3, cd * 1e3, rd / cd))
print(string.format("  encode: recur.json %.1f ms, cjson %.1f ms (%.1fx)", re * 1e3, ce * 1e3, re / ce))
