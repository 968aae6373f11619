-- recur.optim: each optimizer against steps worked by hand (p = {1, -2}, fixed gradients),
-- inspectable state and its round trip, schedules, clipping, subsets of parameters, errors.
local recur = require "recur"
local nn = recur.nn
local optim = recur.optim
local T = recur.tensor

local H = require "tests.helpers"
local err_of, has = H.err_of, H.has

local function near(expected, t, tol) H.near(expected, t, tol or 2e-6) end

local function param(v) return T(v or { 1, -2 }):requires_grad(true) end

-- runs the optimizer over gradients gs (one per step) and returns p
local function run(kind, opts, gs)
  local p = param()
  local opt = optim[kind]({ p }, opts)
  for _, g in ipairs(gs) do
    p.grad = T(g)
    opt:step()
  end
  return p, opt
end

local G = { 0.5, -1 }

describe("optimizers against hand-computed steps", function()
  it("SGD: plain, momentum, Nesterov, weight decay, dampening", function()
    near({ 0.95, -1.9 }, (run("SGD", { lr = 0.1 }, { G })))
    -- momentum: buf = g, then 0.9 g + g = 1.9 g
    near({ 0.855, -1.71 }, (run("SGD", { lr = 0.1, momentum = 0.9 }, { G, G })))
    -- nesterov: u = g + 0.9 buf: 1.9 g, then g + 0.9 * 1.9 g = 2.71 g
    near({ 0.7695, -1.539 }, (run("SGD", { lr = 0.1, momentum = 0.9, nesterov = true }, { G, G })))
    -- weight decay: d = g + 0.1 p = {0.6, -1.2}
    near({ 0.94, -1.88 }, (run("SGD", { lr = 0.1, weight_decay = 0.1 }, { G })))
    -- dampening 0.5: buf = g, then 0.9 g + 0.5 g
    near({ 0.88, -1.76 }, (run("SGD", { lr = 0.1, momentum = 0.9, dampening = 0.5 }, { G, G })))
  end)

  it("Adagrad: PyTorch's eps, lr_decay, TensorFlow's accumulator", function()
    -- a = g^2, p -= 0.1 g / |g|; then a = 2 g^2: p -= 0.1 / sqrt 2 * sign
    near({ 0.9, -1.9 }, (run("Adagrad", { lr = 0.1 }, { G })))
    near({ 0.9 - 0.1 / math.sqrt(2), -1.9 + 0.1 / math.sqrt(2) }, (run("Adagrad", { lr = 0.1 }, { G, G })))
    near({ 0.9 - 0.1 / 1.5 / math.sqrt(2), -1.9 + 0.1 / 1.5 / math.sqrt(2) },
      (run("Adagrad", { lr = 0.1, lr_decay = 0.5 }, { G, G })))
    -- tf.train.AdagradOptimizer: accumulator starts at 0.1, no eps
    near({ 1 - 0.05 / math.sqrt(0.35), -2 + 0.1 / math.sqrt(1.1) },
      (run("Adagrad", { lr = 0.1, initial_accumulator = 0.1, eps = 0 }, { G })))
  end)

  it("RMSProp: plain, centered, momentum, TensorFlow's eps placement", function()
    -- s = 0.01 g^2, sqrt s = 0.1 |g|: p -= 0.01 * 10 * sign
    near({ 0.9, -1.9 }, (run("RMSProp", { lr = 0.01 }, { G })), 1e-5)
    -- centered: v = s - (0.01 g)^2
    local c1 = 0.01 * 0.5 / math.sqrt(0.0025 - 0.000025)
    local c2 = 0.01 * 1 / math.sqrt(0.01 - 0.0001)
    near({ 1 - c1, -2 + c2 }, (run("RMSProp", { lr = 0.01, centered = true }, { G })), 1e-5)
    -- momentum 0.9: b = 10 sign, then 0.9 b + g / sqrt(0.0199 g^2)
    local b2 = 0.9 * 10 + 1 / math.sqrt(0.0199)
    near({ 0.9 - 0.01 * b2, -1.9 + 0.01 * b2 }, (run("RMSProp", { lr = 0.01, momentum = 0.9 }, { G, G })), 1e-5)
    -- tf.train.RMSPropOptimizer: s starts at 1, decay 0.9, eps inside the sqrt
    near({ 1 - 0.01 * 0.5 / math.sqrt(0.925 + 1e-10), -2 + 0.01 / math.sqrt(1 + 1e-10) },
      (run("RMSProp", { lr = 0.01, alpha = 0.9, eps = 1e-10, eps_in_sqrt = true, initial_square_avg = 1 }, { G })))
  end)

  it("Adam and AdamW", function()
    near({ 0.9, -1.9 }, (run("Adam", { lr = 0.1 }, { G })))
    -- two steps with different gradients: the bias corrections matter
    local g1, g2 = G, { 1, 1 }
    local want = {}
    for i = 1, 2 do
      local m = 0.9 * 0.1 * g1[i] + 0.1 * g2[i]
      local v = 0.999 * 0.001 * g1[i] ^ 2 + 0.001 * g2[i] ^ 2
      local p1 = ({ 0.9, -1.9 })[i]
      want[i] = p1 - 0.1 * (m / 0.19) / (math.sqrt(v / (1 - 0.999 ^ 2)) + 1e-8)
    end
    near(want, (run("Adam", { lr = 0.1 }, { g1, g2 })))
    near({ 0.8034818, want[2] }, (run("Adam", { lr = 0.1 }, { g1, g2 })), 1e-6)
    -- betas as a pair
    near(want, (run("Adam", { lr = 0.1, betas = { 0.9, 0.999 } }, { g1, g2 })))
    -- Adam's weight decay goes into the gradient: d = g + 0.1 p = {0.6, -1.2}: still sign steps
    near({ 0.9, -1.9 }, (run("Adam", { lr = 0.1, weight_decay = 0.1 }, { G })))
    -- AdamW decays the weights first: p (1 - 0.01) - 0.1 sign
    near({ 0.89, -1.88 }, (run("AdamW", { lr = 0.1, weight_decay = 0.1 }, { G })))
    near({ 0.8, -1.8 }, (run("AdamW", { lr = 0.1, weight_decay = 0 }, { G, G })))
  end)

  it("skips parameters without a gradient and keeps their state", function()
    local p, q = param(), param({ 3, 4 })
    local opt = optim.Adam({ p, q }, { lr = 0.1 })
    p.grad = T(G)
    opt:step()
    near({ 3, 4 }, q)
    local st = opt:state()
    assert.equal(1, st.step)
    assert.equal(1, st.params[1].step)
    assert.equal(0, st.params[2].step)
    near({ 0, 0 }, st.params[2].exp_avg)
  end)
end)

describe("optimizers on two threads", function()
  -- the step is shared with the context's helper thread (every float's update is its own,
  -- recur computes it: bit for bit the one-thread result), across parameters of odd sizes,
  -- one of them without a gradient
  it("give the one-thread parameters and state bit for bit", function()
    local saved = recur.threads()
    local function train(threads, kind, opts)
      recur.threads(threads)
      recur.seed(7)
      local ps = { recur.randn(300, 257), recur.randn(1), recur.randn(129, 65), recur.randn(40000) }
      for _, p in ipairs(ps) do p:requires_grad(true) end
      local opt = optim[kind](ps, opts)
      for _ = 1, 3 do
        for i, p in ipairs(ps) do p.grad = i ~= 2 and recur.randn(table.unpack(p:size())) or nil end
        opt:step()
      end
      return ps, opt:state()
    end
    local function same(a, b)
      assert.equal(a:numel(), b:numel())
      local x, y = a:reshape(a:numel()), b:reshape(b:numel())
      assert.equal(0, (x - y):abs():max():item(), "a float differs between 1 and 2 threads")
    end
    for _, case in ipairs({ { "Adam", { lr = 1e-2 } }, { "AdamW", { lr = 1e-2, weight_decay = 0.1 } },
      { "SGD", { lr = 0.1, momentum = 0.9, nesterov = true } }, { "RMSProp", { lr = 1e-2, centered = true } },
      { "Adagrad", { lr = 0.1 } } }) do
      local p1, s1 = train(1, case[1], case[2])
      local p2, s2 = train(2, case[1], case[2])
      for i = 1, #p1 do same(p1[i], p2[i]) end
      for i = 1, #s1.params do
        for k, v in pairs(s1.params[i]) do
          if recur.is_tensor(v) then same(v, s2.params[i][k]) else assert.equal(v, s2.params[i][k]) end
        end
      end
    end
    recur.threads(saved)
  end)
end)

describe("optimizer state", function()
  it("is inspectable: steps, epoch and the moment tensors", function()
    local p, opt = run("Adam", { lr = 0.1 }, { G, { 1, 1 } })
    local st = opt:state()
    assert.equal(2, st.step)
    assert.equal(0, st.epoch)
    near({ 0.9 * 0.05 + 0.1, 0.9 * -0.1 + 0.1 }, st.params[1].exp_avg)
    near({ 0.999 * 0.00025 + 0.001, 0.999 * 0.001 + 0.001 }, st.params[1].exp_avg_sq)
    assert.equal(2, st.params[1].step)
    local s2 = select(2, run("SGD", { lr = 0.1, momentum = 0.9 }, { G })):state()
    near(G, s2.params[1].momentum_buffer)
    assert.is_nil(select(2, run("SGD", { lr = 0.1 }, { G })):state().params[1].momentum_buffer)
    local h = opt:hyper()
    assert.equal("Adam", h.name)
    assert.equal(0.1, h.lr)
    assert.equal(0.999, h.beta2)
  end)

  it("round-trips through load_state: the next steps are identical", function()
    local p, a = run("RMSProp", { lr = 0.01, momentum = 0.5, centered = true }, { G, { 1, 3 } })
    local q = param(p:totable())
    local b = optim.RMSProp({ q }, { lr = 0.01, momentum = 0.5, centered = true })
    local st = a:state()
    -- copies, so that a's own later steps do not change what b loaded
    local copy = { step = st.step, epoch = st.epoch, params = {} }
    for i, ps in ipairs(st.params) do
      copy.params[i] = { step = ps.step }
      for k, v in pairs(ps) do if recur.is_tensor(v) then copy.params[i][k] = v:clone() end end
    end
    b:load_state(copy)
    for _ = 1, 2 do
      p.grad, q.grad = T { -2, 0.5 }, T { -2, 0.5 }
      a:step()
      b:step()
    end
    assert.same(p:totable(), q:totable())
    assert.equal(4, b:steps())
  end)

  it("load_state validates before it changes anything", function()
    local _, opt = run("Adam", { lr = 0.1 }, { G })
    local good = opt:state()
    local e = err_of(function() opt:load_state { step = 1, epoch = 0, params = {} } end)
    has(e, "load_state: the state has 0 parameters, the optimizer 1")
    local bad = { step = 5, epoch = 0, params = { { step = 1, exp_avg = recur.zeros(2), exp_avg_sq = recur.zeros(3) } } }
    e = err_of(function() opt:load_state(bad) end)
    has(e, "load_state: params[1].exp_avg_sq has shape [3], the optimizer's is [2]")
    assert.equal(1, opt:steps())
    near({ 0.05, -0.1 }, good.params[1].exp_avg)
    e = err_of(function() opt:load_state { step = -1, epoch = 0, params = {} } end)
    has(e, "load_state: state.step must be an integer in 0..2^53")
  end)
end)

describe("learning-rate schedules", function()
  it("steps: 0.01 then 0.003 after 2 steps (the First Convergence Bias schedule)", function()
    local p = param({ 0 })
    local opt = optim.SGD({ p }, { lr = optim.schedules.steps { 0.01, { 2, 0.003 } } })
    local lrs = {}
    for k = 1, 4 do
      p.grad = T { 1 }
      opt:step()
      lrs[k] = opt:lr()
    end
    assert.same({ 0.01, 0.01, 0.003, 0.003 }, lrs)
    near({ -(0.01 + 0.01 + 0.003 + 0.003) }, p)
  end)

  it("exponential per epoch (the counter or steps_per_epoch), any function", function()
    local p = param({ 0 })
    local opt = optim.SGD({ p }, { lr = optim.schedules.exponential { lr = 1, decay = 0.5 } })
    p.grad = T { 1 }
    opt:step()
    assert.equal(1, opt:lr())
    assert.equal(1, opt:next_epoch())
    opt:step()
    assert.equal(0.5, opt:lr())
    opt:set_epoch(3)
    opt:step()
    assert.equal(0.125, opt:lr())
    local o2 = optim.SGD({ p }, { lr = optim.schedules.exponential { lr = 1, decay = 0.5, steps_per_epoch = 2 } })
    local lrs = {}
    for k = 1, 5 do o2:step() lrs[k] = o2:lr() end
    assert.same({ 1, 1, 0.5, 0.5, 0.25 }, lrs)
    local o3 = optim.SGD({ p }, { lr = function(step) return 1 / step end })
    for _ = 1, 4 do o3:step() end
    assert.equal(0.25, o3:lr())
    -- an explicit rate replaces the schedule
    o3:set_lr(0.5)
    o3:step()
    assert.equal(0.5, o3:lr())
    has(err_of(function() optim.SGD({ p }, { lr = function() return nil end }) end),
      "SGD: the learning-rate schedule returned nil for step 1")
    has(err_of(function() optim.schedules.steps { 0.1, { 5, 0.01 }, { 3, 0.001 } } end), "must increase")
  end)
end)

describe("gradient clipping", function()
  it("by global norm and element-wise, both returning the norm before clipping", function()
    local p, q = param({ 0 }), param({ 0 })
    p.grad, q.grad = T { 3 }, T { 4 }
    local n = nn.clip_grad_norm({ p, q }, 1)
    assert.equal(5, n)
    near({ 0.6 }, p.grad)
    near({ 0.8 }, q.grad)
    -- below the limit nothing changes
    assert.is_true(math.abs(nn.clip_grad_norm({ p, q }, 10) - 1) < 1e-6)
    near({ 0.6 }, p.grad)
    p.grad, q.grad = T { 3 }, T { -4 }
    assert.equal(5, nn.clip_grad_value({ p, q }, 2))
    near({ 2 }, p.grad)
    near({ -2 }, q.grad)
    -- a module's flat gradient buffer, and the optimizer option
    local m = nn.Linear(2, 1)
    local opt = optim.SGD(m, { lr = 1, clip_norm = 1 })
    local _, g = m:flat_parameters()
    recur.no_grad(function() g:copy_(T { 0, 3, 4 }) end)
    local w0 = m.weight:totable()[1]
    assert.equal(5, opt:step())
    near({ w0[1], w0[2] - 0.6 }, m.weight:reshape(2))
    assert.is_nil(optim.SGD(m, { lr = 1 }):step()) -- no clipping, no norm
    has(err_of(function() nn.clip_grad_norm({ p }, 0) end), "clip_grad_norm: max_norm must be > 0")
  end)
end)

describe("optimizers over subsets and modules", function()
  it("trains only the parameters it was given (First Convergence Bias's layer-wise phase)", function()
    recur.seed(5)
    local m = nn.Sequential { nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2) }
    local first = {}
    for _, p in ipairs(m[1]:parameters()) do first[#first + 1] = p end
    local opt = optim.SGD(first, { lr = 0.5 })
    local before2 = m[3].weight:clone()
    local before1 = m[1].weight:clone()
    m:zero_grad()
    nn.cross_entropy(m(recur.randn(4, 3)), T { 1, 2, 2, 1 }):backward()
    opt:step()
    assert.same(before2:totable(), m[3].weight:totable())
    assert.is_true((m[1].weight - before1):abs():sum():item() > 0)
    assert.equal(2, #opt:params())
    assert.is_true(opt:params()[1] == m[1].weight)
  end)

  it("zero_grad keeps the gradients (in place)", function()
    local m = nn.Linear(2, 2)
    local opt = optim.Adam(m, { lr = 0.1 })
    nn.mse(m(recur.ones(1, 2)), recur.zeros(1, 2)):backward()
    local _, g = m:flat_parameters()
    assert.is_true(g:abs():sum():item() > 0)
    opt:zero_grad()
    assert.equal(0, g:abs():sum():item())
    assert.is_true(m.weight.grad ~= nil)
  end)
end)

describe("optimizer errors", function()
  local p = param()
  it("name the optimizer and the option", function()
    has(err_of(function() optim.Adam({ p }, {}) end), "Adam: option lr is required")
    has(err_of(function() optim.Adam({ p }, { lr = -1 }) end), "Adam: lr must be a finite number >= 0, got -1")
    has(err_of(function() optim.Adam({ p }, { lr = 0.1, beta1 = 1 }) end), "Adam: beta1 must be in [0, 1), got 1")
    has(err_of(function() optim.Adam({ p }, { lr = 0.1, betas = { 0.9 } }) end), "Adam: betas must be a pair")
    has(err_of(function() optim.SGD({ p }, { lr = 0.1, momentom = 0.9 }) end), "SGD: unknown option 'momentom'")
    has(err_of(function() optim.SGD({ p }, { lr = 0.1, beta1 = 0.9 }) end), "SGD: unknown option 'beta1'")
    has(err_of(function() optim.SGD({ p }, { lr = 0.1, nesterov = true }) end), "SGD: nesterov needs momentum > 0")
    has(err_of(function() optim.SGD({ p }, { lr = 0.1, nesterov = 1 }) end), "SGD: option nesterov must be a boolean")
    has(err_of(function() optim.SGD({ p * 2 }, { lr = 0.1 }) end), "SGD: parameter 1 is not a leaf")
    has(err_of(function() optim.SGD({ p, p }, { lr = 0.1 }) end), "SGD: parameter 2 is the same tensor as parameter 1")
    has(err_of(function() optim.SGD({ recur.ones(2, 3):t() }, { lr = 0.1 }) end), "SGD: parameter 1 (shape [3, 2]) is not contiguous")
    has(err_of(function() optim.SGD({ p, "x" }, { lr = 0.1 }) end), "SGD: entry 2 of params (argument #1) must be a tensor, got string")
    has(err_of(function() optim.RMSProp({ p }, { lr = 0.1, eps = 0 }) end), "RMSProp: eps must be > 0")
    has(err_of(function() optim.Adagrad(3, { lr = 0.1 }) end), "Adagrad: argument #1 must be a module or a list of parameters")
    local opt = optim.SGD({ p }, { lr = 0.1, momentum = 0.9 })
    has(err_of(function() opt:set("momentum", 0) end), "set: momentum cannot be switched on or off")
    has(err_of(function() opt:set("dampening", 2) end), "set: dampening must be in [0, 1], got 2")
    has(err_of(function() opt:get("beta1") end), "get: SGD has no option 'beta1'")
    opt:set("momentum", 0.5)
    assert.equal(0.5, opt:get("momentum"))
    -- the state-deciding options of RMSProp, from its descriptor's slot_used
    local r = optim.RMSProp({ p }, { lr = 0.1 })
    has(err_of(function() r:set("centered", true) end), "set: centered cannot be switched on or off")
    has(err_of(function() r:set("momentum", 0.9) end), "set: momentum cannot be switched on or off")
    r:set("alpha", 0.5)
    assert.equal(0.5, r:get("alpha"))
    -- the constructors come from the C table of optimizers (runtime/optim_table.h)
    assert.are.same({ "SGD", "Adagrad", "RMSProp", "Adam", "AdamW" }, recur._optim.names())
    for _, name in ipairs(recur._optim.names()) do assert.is_function(optim[name]) end
    has(err_of(function() opt:set_lr(0 / 0) end), "set_lr: the learning rate must be a finite number >= 0")
    assert.truthy(tostring(opt):find("recur.optim.SGD(1 parameters, lr = 0.1, step 0)", 1, true))
  end)
end)
