-- One full MNIST epoch (55,000 images, shuffled, batch 100) of the 784-256-256-10 ReLU MLP with
-- Adam (lr 1e-3): batching, forward, loss, backward, step. Prints "recur mnist epoch: X s".
-- usage: recur bench/nn/mnist_epoch.lua [threads] [data dir]
local recur = require "recur"
local nn = recur.nn
local threads = tonumber(arg and arg[1]) or 1
local dir = arg and arg[2] or "data/mnist"
recur.threads(threads)
recur.seed(1)

-- the images as a float tensor in [0, 1] and 1-based labels: recur.data when it is built in,
-- else the IDX files read through the safetensors reader (a U8 tensor over the bytes)
local function load()
  local ok, d = pcall(function() return recur.data end)
  if ok and type(d) == "table" and d.mnist then
    local s = d.mnist { dir = dir, split = "55k" }
    return s.train.x, s.train.y
  end
  local function idx(path, hl, shape)
    local f = assert(io.open(path, "rb"), path .. " is missing: run data/fetch mnist")
    local s = f:read("a")
    f:close()
    local n = #s - hl
    local h = string.format('{"x":{"dtype":"U8","shape":[%s],"data_offsets":[0,%d]}}', shape, n)
    h = h .. string.rep(" ", (8 - #h % 8) % 8)
    local tmp = os.tmpname()
    local o = assert(io.open(tmp, "wb"))
    o:write(string.pack("<I8", #h), h, s:sub(hl + 1))
    o:close()
    local t = recur.load(tmp).tensors.x
    os.remove(tmp)
    return t
  end
  local x = idx(dir .. "/train-images-idx3-ubyte", 16, "60000,784") / 255
  local y = idx(dir .. "/train-labels-idx1-ubyte", 8, "60000") + 1
  return x:narrow(1, 5001, 55000):contiguous(), y:narrow(1, 5001, 55000):contiguous()
end

local X, Y = load()
local m = nn.Sequential { nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10) }
local opt = recur.optim.Adam(m, { lr = 1e-3 })
local function epoch(limit)
  local perm = recur.randperm(X:size(1))
  local steps = 0
  for i = 1, X:size(1), 100 do
    local idx = perm:narrow(1, i, math.min(100, X:size(1) - i + 1))
    opt:zero_grad()
    nn.cross_entropy(m(X:index_select(1, idx)), Y:index_select(1, idx)):backward()
    opt:step()
    steps = steps + 1
    if limit and steps >= limit then return end
  end
end
epoch(50) -- warm-up
local best = math.huge
for _ = 1, 2 do
  local t = recur.now()
  epoch()
  best = math.min(best, recur.now() - t)
end
print(string.format("recur mnist epoch: %.3f s (%d thread%s)", best, threads, threads > 1 and "s" or ""))
