-- recur.experiment.stats: the statistics a reproduction reports, in plain Lua on tables of
-- numbers (no tensors: results come back from runs as numbers).
--
--   mean(xs), std(xs) (sample, n - 1), se(xs) (std / sqrt(n)), summary(xs) ->
--   {n, mean, std, se, min, max}, quantile(xs, q) (linear, as R's type 7), median(xs),
--   welch(xs, ys) -> {t, df, p} (two-sided), t_sf2(t, df) (two-sided p of Student's t),
--   histogram(xs, {bins = 20, min, max}) -> {edges, counts, outside},
--   kde(xs, {points = 100, bandwidth = nil (Silverman), min, max}) -> {x, y, bandwidth}.
local stats = {}

local function check(fname, xs, least)
  if type(xs) ~= "table" then
    error(string.format("stats.%s: expected a table of numbers, got %s", fname, type(xs)), 3)
  end
  for i = 1, #xs do
    if type(xs[i]) ~= "number" then
      error(string.format("stats.%s: element %d is a %s, not a number", fname, i, type(xs[i])), 3)
    end
  end
  if #xs < (least or 1) then
    error(string.format("stats.%s: needs at least %d value%s, got %d", fname, least or 1,
      (least or 1) == 1 and "" or "s", #xs), 3)
  end
end

local function mean(xs)
  local s = 0
  for i = 1, #xs do s = s + xs[i] end
  return s / #xs
end

local function var(xs)
  local m, s = mean(xs), 0
  for i = 1, #xs do s = s + (xs[i] - m) ^ 2 end
  return s / (#xs - 1)
end

function stats.mean(xs)
  check("mean", xs)
  return mean(xs)
end

-- The sample standard deviation (divides by n - 1); 0 for a single value would claim a
-- certainty the data does not have, so it needs two.
function stats.std(xs)
  check("std", xs, 2)
  return math.sqrt(var(xs))
end

function stats.se(xs)
  check("se", xs, 2)
  return math.sqrt(var(xs) / #xs)
end

-- n, mean, min, max of any non-empty list; std and se only from two values on (nil for one).
function stats.summary(xs)
  check("summary", xs)
  local lo, hi = math.huge, -math.huge
  for i = 1, #xs do
    lo, hi = math.min(lo, xs[i]), math.max(hi, xs[i])
  end
  local s = { n = #xs, mean = mean(xs), min = lo, max = hi }
  if #xs >= 2 then
    s.std = math.sqrt(var(xs))
    s.se = s.std / math.sqrt(#xs)
  end
  return s
end

local function sorted(xs)
  local c = table.move(xs, 1, #xs, 1, {})
  table.sort(c)
  return c
end

local function quantile_sorted(c, q)
  local h = (#c - 1) * q + 1
  local lo = math.floor(h)
  if lo >= #c then return c[#c] end
  return c[lo] + (h - lo) * (c[lo + 1] - c[lo])
end

function stats.quantile(xs, q)
  check("quantile", xs)
  if type(q) ~= "number" or q < 0 or q > 1 then
    error("stats.quantile: q must be a number in [0, 1], got " .. tostring(q), 2)
  end
  return quantile_sorted(sorted(xs), q)
end

function stats.median(xs)
  check("median", xs)
  return quantile_sorted(sorted(xs), 0.5)
end

-- log Gamma(x) for x > 0 (Lanczos, as Numerical Recipes' gammln: about 1e-10 relative).
local lanczos = { 76.18009172947146, -86.50532032941677, 24.01409824083091, -1.231739572450155,
  0.1208650973866179e-2, -0.5395239384953e-5 }
local function lgamma(x)
  local y, tmp = x, x + 5.5
  tmp = tmp - (x + 0.5) * math.log(tmp)
  local ser = 1.000000000190015
  for j = 1, 6 do
    y = y + 1
    ser = ser + lanczos[j] / y
  end
  return -tmp + math.log(2.5066282746310005 * ser / x)
end

-- The continued fraction of the incomplete beta function (Numerical Recipes' betacf,
-- modified Lentz).
local function betacf(a, b, x)
  local tiny, eps = 1e-300, 3e-16
  local qab, qap, qam = a + b, a + 1, a - 1
  local c, d = 1, 1 - qab * x / qap
  if math.abs(d) < tiny then d = tiny end
  d = 1 / d
  local h = d
  for m = 1, 10000 do
    local m2 = 2 * m
    local aa = m * (b - m) * x / ((qam + m2) * (a + m2))
    d = 1 + aa * d
    if math.abs(d) < tiny then d = tiny end
    c = 1 + aa / c
    if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    h = h * d * c
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
    d = 1 + aa * d
    if math.abs(d) < tiny then d = tiny end
    c = 1 + aa / c
    if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    local del = d * c
    h = h * del
    if math.abs(del - 1) < eps then return h end
  end
  return h
end

-- The regularized incomplete beta function I_x(a, b).
function stats.betainc(x, a, b)
  if x <= 0 then return 0 end
  if x >= 1 then return 1 end
  local bt = math.exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * math.log(x) + b * math.log(1 - x))
  -- the fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise
  if x < (a + 1) / (a + b + 2) then return bt * betacf(a, b, x) / a end
  return 1 - bt * betacf(b, a, 1 - x) / b
end

-- Two-sided p-value of Student's t with df degrees of freedom: P(|T| >= |t|)
-- = I_{df / (df + t^2)}(df / 2, 1 / 2).
function stats.t_sf2(t, df)
  if t ~= t or df ~= df or df <= 0 then return 0 / 0 end
  if t == math.huge or t == -math.huge then return 0 end
  return stats.betainc(df / (df + t * t), df / 2, 0.5)
end

-- Welch's unequal-variances t-test: t = (mean x - mean y) / sqrt(vx/nx + vy/ny), the
-- Welch-Satterthwaite df, and the two-sided p. Both samples constant: t = 0, p = 1 when the
-- means are equal, t = +-inf, p = 0 when they differ.
function stats.welch(xs, ys)
  check("welch", xs, 2)
  check("welch", ys, 2)
  local mx, my = mean(xs), mean(ys)
  local ax, ay = var(xs) / #xs, var(ys) / #ys
  local se2 = ax + ay
  if se2 == 0 then
    if mx == my then return { t = 0, df = #xs + #ys - 2, p = 1 } end
    return { t = mx > my and math.huge or -math.huge, df = #xs + #ys - 2, p = 0 }
  end
  local t = (mx - my) / math.sqrt(se2)
  local df = se2 * se2 / (ax * ax / (#xs - 1) + ay * ay / (#ys - 1))
  return { t = t, df = df, p = stats.t_sf2(t, df) }
end

local function range_of(fname, xs, o)
  local lo, hi = o.min, o.max
  if lo == nil or hi == nil then
    local dlo, dhi = math.huge, -math.huge
    for i = 1, #xs do dlo, dhi = math.min(dlo, xs[i]), math.max(dhi, xs[i]) end
    lo, hi = lo or dlo, hi or dhi
  end
  if not (hi >= lo) then
    error(string.format("stats.%s: max (%g) is below min (%g)", fname, hi, lo), 3)
  end
  if hi == lo then lo, hi = lo - 0.5, hi + 0.5 end -- one value: a unit-wide range around it
  return lo, hi
end

-- Counts of xs in `bins` equal bins over [min, max] (default: the data's range); the last bin
-- includes max; values outside are counted in `outside`.
function stats.histogram(xs, opts)
  check("histogram", xs)
  opts = opts or {}
  local bins = opts.bins or 20
  if math.type(bins) ~= "integer" or bins < 1 then
    error("stats.histogram: bins must be a positive integer, got " .. tostring(bins), 2)
  end
  local lo, hi = range_of("histogram", xs, opts)
  local edges, counts = {}, {}
  for i = 0, bins do edges[i + 1] = lo + (hi - lo) * i / bins end
  for i = 1, bins do counts[i] = 0 end
  local outside = 0
  for i = 1, #xs do
    local x = xs[i]
    if x < lo or x > hi or x ~= x then
      outside = outside + 1
    else
      local b = math.min(bins, math.floor((x - lo) / (hi - lo) * bins) + 1)
      counts[b] = counts[b] + 1
    end
  end
  return { edges = edges, counts = counts, outside = outside }
end

-- Silverman's rule of thumb: 0.9 min(sd, IQR / 1.34) n^(-1/5) (falls back to whichever of
-- the two is positive, and to 1 for constant data).
function stats.silverman(xs)
  check("silverman", xs)
  local sd = #xs >= 2 and math.sqrt(var(xs)) or 0
  local c = sorted(xs)
  local iqr = (quantile_sorted(c, 0.75) - quantile_sorted(c, 0.25)) / 1.34
  local s = math.min(sd, iqr)
  if s <= 0 then s = math.max(sd, iqr) end
  if s <= 0 then s = 1 end
  return 0.9 * s * (#xs) ^ (-0.2)
end

-- A Gaussian kernel density estimate on `points` equally spaced x from min - 3h to max + 3h
-- (or the given min, max); integrates to 1 over the real line.
function stats.kde(xs, opts)
  check("kde", xs)
  opts = opts or {}
  local points = opts.points or 100
  if math.type(points) ~= "integer" or points < 2 then
    error("stats.kde: points must be an integer >= 2, got " .. tostring(points), 2)
  end
  local h = opts.bandwidth or stats.silverman(xs)
  if type(h) ~= "number" or not (h > 0) then
    error("stats.kde: bandwidth must be a positive number, got " .. tostring(h), 2)
  end
  local dlo, dhi = math.huge, -math.huge
  for i = 1, #xs do dlo, dhi = math.min(dlo, xs[i]), math.max(dhi, xs[i]) end
  local lo, hi = opts.min or dlo - 3 * h, opts.max or dhi + 3 * h
  local x, y = {}, {}
  local norm = 1 / (#xs * h * math.sqrt(2 * math.pi))
  for i = 1, points do
    local xi = lo + (hi - lo) * (i - 1) / (points - 1)
    local s = 0
    for j = 1, #xs do
      local u = (xi - xs[j]) / h
      s = s + math.exp(-0.5 * u * u)
    end
    x[i], y[i] = xi, s * norm
  end
  return { x = x, y = y, bandwidth = h }
end

return stats
