-- recur against PyTorch's golden files (tests/fixtures/make_fixtures.py, committed): Linear +
-- cross_entropy forward and backward, and three optimizer steps of SGD (momentum, Nesterov +
-- weight decay), Adagrad, RMSProp (plain, centered + momentum), Adam (plain, L2) and AdamW,
-- all within 1e-5 relative.
local recur = require "recur"
local nn = recur.nn
local json = require "recur.json"

local DIR = "tests/fixtures/"
local RTOL = 1e-5

local flat = require("tests.helpers").flat

-- every element within RTOL relative of the reference (absolute 1e-7 for values below 1e-2 of
-- the tensor's largest, where float32 rounding of a sum dominates)
local function close(got, want, what)
  assert.same(want:size(), got:size(), what .. ": shape")
  local a, b = flat(got), flat(want)
  local scale = 0
  for _, v in ipairs(b) do scale = math.max(scale, math.abs(v)) end
  for i = 1, #b do
    local tol = RTOL * math.max(math.abs(b[i]), 1e-2 * scale)
    if not (math.abs(a[i] - b[i]) <= tol) then
      error(string.format("%s: element %d is %.9g, PyTorch %.9g (relative error %.3g)", what, i,
        a[i], b[i], math.abs(a[i] - b[i]) / math.abs(b[i])), 2)
    end
  end
end

describe("fixtures from PyTorch", function()
  it("Linear + cross_entropy: forward and backward", function()
    local f = recur.load(DIR .. "linear_ce.safetensors").tensors
    local lin = nn.Linear(5, 4)
    lin:load_state_dict { weight = f.weight, bias = f.bias }
    local x = f.x:clone():requires_grad(true)
    local logits = lin(x)
    local loss = nn.cross_entropy(logits, f.target)
    close(loss, f.loss_mean, "mean loss")
    loss:backward()
    close(x.grad, f.grad_x, "dloss/dx")
    close(lin.weight.grad, f.grad_weight, "dloss/dweight")
    close(lin.bias.grad, f.grad_bias, "dloss/dbias")
    close(nn.cross_entropy(lin(x), f.target, { reduction = "sum" }), f.loss_sum, "sum loss")
    close(nn.cross_entropy(lin(x), f.target, { reduction = "none" }), f.loss_none, "per-example loss")
    -- masked mean
    lin:zero_grad()
    x.grad = nil
    local ml = nn.cross_entropy(lin(x), f.target, { mask = f.mask })
    close(ml, f.loss_masked, "masked loss")
    ml:backward()
    close(x.grad, f.grad_x_masked, "masked dloss/dx")
    close(lin.weight.grad, f.grad_weight_masked, "masked dloss/dweight")
    close(lin.bias.grad, f.grad_bias_masked, "masked dloss/dbias")
  end)

  for _, name in ipairs { "sgd_momentum", "sgd_nesterov_wd", "adagrad", "rmsprop",
    "rmsprop_centered_momentum", "adam", "adam_wd", "adamw" } do
    it("three steps of " .. name, function()
      local ck = recur.load(DIR .. "optim_" .. name .. ".safetensors")
      local f = ck.tensors
      local hyper = json.decode(ck.metadata.hyper)
      local kind = hyper.name
      hyper.name = nil
      local lin = nn.Linear(5, 4)
      lin:load_state_dict { weight = f.weight_0, bias = f.bias_0 }
      local opt = recur.optim[kind](lin, hyper)
      for k = 1, 3 do
        opt:zero_grad()
        local loss = nn.cross_entropy(lin(f.x), f.target)
        close(loss, f["loss_" .. k], name .. " loss before step " .. k)
        loss:backward()
        opt:step()
        close(lin.weight, f["weight_" .. k], name .. " weight after step " .. k)
        close(lin.bias, f["bias_" .. k], name .. " bias after step " .. k)
      end
    end)
  end
end)
