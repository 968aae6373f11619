-- scripts/train_mnist.lua and models/mlp.lua on a small synthetic MNIST written here in IDX
-- format (no download): the flags, the progress line, the results, the learning curve, and
-- an exact resume from a checkpoint.
local recur = require "recur"

local H = require "tests.helpers"
local q, has = H.q, H.has

local BIN = os.getenv("RECUR_BIN") or "build/recur"
local tmpdir

local function run(args) return H.sh(q(BIN) .. " scripts/train_mnist.lua " .. args) end

-- n images of 28x28: class c has rows 2c+3 .. 2c+5 bright, a little deterministic noise elsewhere
local function write_idx(dir, prefix, n, shift)
  local imgs = { string.pack(">I4I4I4I4", 2051, n, 28, 28) }
  local labels = { string.pack(">I4I4", 2049, n) }
  for i = 0, n - 1 do
    local c = (i * 7 + shift) % 10
    local px = {}
    for p = 0, 783 do
      local r = p // 28
      px[p + 1] = string.char((r >= 2 * c + 3 and r < 2 * c + 6) and 220 or (i * 31 + p * 17) % 41)
    end
    imgs[#imgs + 1] = table.concat(px)
    labels[#labels + 1] = string.char(c)
  end
  H.write_file(dir .. "/" .. prefix .. "-images-idx3-ubyte", table.concat(imgs))
  H.write_file(dir .. "/" .. prefix .. "-labels-idx1-ubyte", table.concat(labels))
end

setup(function()
  tmpdir = H.tmpdir("recur_mnist_")
  write_idx(tmpdir, "train", 300, 0)
  write_idx(tmpdir, "t10k", 100, 3)
end)
teardown(function() H.rm_rf(tmpdir) end)

describe("models/mlp.lua", function()
  it("builds input -> hidden (activation, dropout) -> classes", function()
    local MLP = dofile("models/mlp.lua")
    local m = MLP { input = 6, hidden = { 5, 4 }, classes = 3, activation = "tanh", dropout = 0.5 }
    local names = {}
    for i, np in ipairs(m:named_parameters()) do names[i] = np[1] end
    assert.same({ "1.weight", "1.bias", "4.weight", "4.bias", "7.weight", "7.bias" }, names)
    assert.equal(6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3, m:num_parameters())
    assert.same({ 2, 3 }, m(recur.ones(2, 6)):size())
    assert.equal("MLP(6-5-4-3, tanh, dropout 0.5)", m:extra_repr())
    assert.has_error(function() MLP { activation = "swish" } end)
  end)
end)

describe("scripts/train_mnist.lua", function()
  it("--help, and clear errors for bad flags and missing data", function()
    local out, code = run("--help")
    assert.equal(0, code)
    has(out, "Usage: recur scripts/train_mnist.lua [-h]")
    for _, flag in ipairs { "--seed", "--threads", "--epochs", "--lr", "--optim", "--checkpoint", "--resume",
      "--batch", "--hidden", "--activation", "--dropout", "--split", "--data", "--plot", "--quiet", "--help" } do
      has(out, flag)
    end
    out, code = run("--epochs two")
    assert.equal(2, code)
    has(out, "Error: --epochs must be an integer, got 'two'")
    out, code = run("--optim lbfgs")
    assert.equal(2, code)
    has(out, "Error: argument for option '--optim' must be one of")
    out, code = run("--frobnicate")
    assert.equal(2, code)
    has(out, "Error: unknown option '--frobnicate'")
    out, code = run("--data " .. q(tmpdir .. "/nothing") .. " --epochs 1")
    assert.is_true(code ~= 0)
    has(out, "data/fetch mnist")
    -- a learning rate that blows the loss up stops with a message, not NaN epochs
    out, code = run("--data " .. q(tmpdir) .. " --split 60k --batch 20 --hidden 32 --epochs 1 "
      .. "--optim sgd --lr 1e30 --quiet")
    assert.equal(1, code, out)
    assert.truthy(out:find("train_mnist: the loss became %-?[%a]+ at epoch 1, step %d+; try a lower %-%-lr"), out)
  end)

  it("trains, shows progress, reports accuracy and time, draws the curve, resumes exactly", function()
    local png = tmpdir .. "/curve.png"
    local ck = tmpdir .. "/ck.safetensors"
    local common = "--data " .. q(tmpdir) .. " --split 60k --batch 20 --hidden 32 --seed 3 "
    local out, code = run(common .. "--epochs 2 --checkpoint " .. q(ck) .. " --plot " .. q(png))
    assert.equal(0, code, out)
    has(out, "MNIST: 300 train, 100 test images")
    has(out, "total parameters: 25,450") -- 784*32 + 32 + 32*10 + 10
    assert.truthy(out:find("epoch 1/2  step 15/15  loss %d+%.%d+  acc [%d.]+%%  %d+ ex/s  ETA %d+:%d%d"), out)
    assert.truthy(out:find("epoch 2/2  train loss [%d.]+ acc [%d.]+%%  test loss [%d.]+ acc [%d.]+%%"), out)
    local acc = tonumber(out:match("test accuracy ([%d.]+)%%"))
    assert.is_true(acc and acc >= 90, out)
    assert.truthy(out:find("training time [%d.]+ s for 2 epochs %([%d.]+ s per epoch"), out)
    -- gnuplot draws it (gnuplot-nox: make deps)
    local f = assert(io.open(png, "rb"), out)
    assert.equal("\137PNG", f:read(4))
    f:close()
    has(out, "learning curve: " .. png)
    -- 2 epochs + resume to 3 = 3 epochs straight (shuffling restored from the RNG state)
    local resumed = run(common .. "--epochs 3 --plot none --resume " .. q(ck))
    has(resumed, "resumed from " .. ck .. " after epoch 2")
    local straight = run(common .. "--epochs 3 --plot none")
    local a = resumed:match("test accuracy [^\n]*")
    assert.truthy(a, resumed)
    assert.equal(straight:match("test accuracy [^\n]*"), a)
    assert.equal(straight:match("epoch 3/3  train loss [%d.]+ acc [%d.]+%%  test loss [%d.]+"),
      resumed:match("epoch 3/3  train loss [%d.]+ acc [%d.]+%%  test loss [%d.]+"))
    out = run(common .. "--epochs 3 --plot none --resume " .. q(tmpdir .. "/t10k-labels-idx1-ubyte"))
    has(out, "cannot resume")
  end)
end)
