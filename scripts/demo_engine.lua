-- A first look at the engine: fits y = sin(3x) with a two-layer tanh network written from
-- primitive ops (matmul, tanh, mean), trained by plain gradient descent through autograd.
-- usage: recur scripts/demo_engine.lua [--steps N] [--hidden H] [--lr LR] [--seed S]
local recur = require "recur"

local opts = { steps = 2000, hidden = 32, lr = 0.1, seed = 1 }
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == "--help" or a == "-h" then
    print("usage: recur scripts/demo_engine.lua [--steps N] [--hidden H] [--lr LR] [--seed S]")
    print("Fits y = sin(3x) on [-1, 1] with a 1-H-1 tanh network and prints the loss.")
    os.exit(0)
  end
  local k = a:match("^%-%-(%w+)$")
  if not k or opts[k] == nil or not tonumber(arg[i + 1]) then
    io.stderr:write("demo_engine: unknown or incomplete option '" .. a .. "' (see --help)\n")
    os.exit(1)
  end
  opts[k] = tonumber(arg[i + 1])
  i = i + 2
end

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
  if step == 1 or step % (opts.steps // 10) == 0 then
    local dt = os.clock() - t0
    print(string.format("step %5d/%d  loss %.5f  %.0f steps/s", step, opts.steps, loss:item(),
      step / math.max(dt, 1e-9)))
  end
end
print(string.format("final mse %.5f (a good fit is below 0.01)", loss:item()))
