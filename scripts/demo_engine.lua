-- A first look at the engine: fits y = sin(3x) with a two-layer tanh network written from
-- primitive ops (matmul, tanh, mean), trained by plain gradient descent through autograd.
local recur = require "recur"

local opts = require("scripts.args").parse(arg, {
  name = "recur scripts/demo_engine.lua",
  about = "Fits y = sin(3x) on [-1, 1] with a 1-H-1 tanh network and prints the loss.",
  { "steps", "int", 2000, "gradient descent steps" },
  { "hidden", "int", 32, "hidden units (H)" },
  { "lr", "number", 0.1, "learning rate" },
  { "seed", "int", 1, "random seed" },
})
if opts.steps < 1 or opts.hidden < 1 then require("scripts.args").die("demo_engine: --steps and --hidden must be at least 1") end

recur.seed(opts.seed)
local n, h = 256, opts.hidden
local x = recur.arange(-1, 1, 2 / n):view(n, 1)
local y = (x * 3):sin()
local w1 = (recur.randn(1, h) * 1.0):requires_grad(true)
local b1 = recur.zeros(h):requires_grad(true)
local w2 = (recur.randn(h, 1) * (1 / math.sqrt(h))):requires_grad(true)
local b2 = recur.zeros(1):requires_grad(true)
local params = { w1, b1, w2, b2 }

local t0 = os.clock()
local loss
for step = 1, opts.steps do
  local hid = (x:matmul(w1) + b1):tanh()
  local pred = hid:matmul(w2) + b2
  loss = ((pred - y) ^ 2):mean()
  loss:backward()
  recur.no_grad(function()
    for _, p in ipairs(params) do
      p:add_(p.grad, -opts.lr)
      p:zero_grad()
    end
  end)
  if step == 1 or step % math.max(1, opts.steps // 10) == 0 then
    local dt = os.clock() - t0
    print(string.format("step %5d/%d  loss %.5f  %.0f steps/s", step, opts.steps, loss:item(),
      step / math.max(dt, 1e-9)))
  end
end
print(string.format("final mse %.5f (a good fit is below 0.01)", loss:item()))
