-- Where a char-RNN training step's time goes, from inside the runtime (recur._profile):
-- the step's parts timed from Lua (embedding, recurrent stack, readout, loss, backward,
-- clipping, Adam), backward's nodes timed by the runtime, and, with two threads, the layer
-- wavefront's runs (each thread's waits, when its recurrences and its products after them
-- were done). The bench's model (bench/charrnn.lua): vocabulary 65, embedding 64, 2 layers,
-- batch 32, sequence 50, Adam, clipping at 5. Medians over the steps for the parts; means for
-- the runtime's figures. Run from the project root:
--   build/recur tools/profile_step.lua --cell rnn --hidden 128 --threads 2
local recur = require "recur"
local CharRNN = require "models.charrnn"
local args = require "scripts.args"
local nn = recur.nn

local a = args.parse(arg, {
  name = "recur tools/profile_step.lua",
  about = "Times the parts of a char-RNN training step (bench/charrnn.lua's model) and prints "
    .. "backward's nodes and the layer wavefront's runs as the runtime timed them.",
  { "cell", { "lstm", "gru", "rnn" }, "rnn", "cell type" },
  { "hidden", "int", 128, "units per layer" },
  { "threads", "int", 2, "BLAS threads (1 or more)" },
  { "steps", "int", 300, "steps measured (after 20 of warm-up)" },
})
if a.hidden < 1 or a.threads < 1 or a.steps < 1 then
  io.stderr:write("profile_step: --hidden, --threads and --steps must be at least 1\n")
  os.exit(2)
end

local V, E, L, B, T = 65, 64, 2, 32, 50
recur.seed(0)
recur.threads(a.threads)
local m = CharRNN.new { vocab = V, embed = E, hidden = a.hidden, layers = L, cell = a.cell }
local opt = recur.optim.Adam(m:parameters(), { lr = 2e-3 })
local flat_grad = select(2, m:flat_parameters())
local x = recur.randint(1, V, { T, B })
local y = recur.randint(1, V, { T, B })

local parts = { "embedding", "stack", "readout", "loss", "backward", "clip", "Adam" }
local times = {}
for k = 1, #parts do times[k] = {} end
local function step(keep)
  opt:zero_grad()
  local t = { recur.now() }
  local e = m.embed(x)
  t[2] = recur.now()
  local h = m.rnn(e, { state = m:initial_state(B) })
  t[3] = recur.now()
  local logits = m.out(h:reshape(T * B, a.hidden))
  t[4] = recur.now()
  local loss = nn.cross_entropy(logits, y:reshape(y:numel()))
  t[5] = recur.now()
  loss:backward()
  t[6] = recur.now()
  nn.clip_grad_norm(flat_grad, 5)
  t[7] = recur.now()
  opt:step()
  t[8] = recur.now()
  if keep then
    for k = 1, #parts do times[k][#times[k] + 1] = t[k + 1] - t[k] end
  end
end

for _ = 1, 20 do step(false) end
collectgarbage("collect")
recur._profile(true)
for _ = 1, a.steps do step(true) end
local p = recur._profile(false)

local function median(v)
  table.sort(v)
  local n = #v
  return n % 2 == 1 and v[(n + 1) // 2] or (v[n // 2] + v[n // 2 + 1]) / 2
end
local function ms(s) return string.format("%8.3f", s * 1e3) end

print(string.format("char-RNN step, %s H=%d, %d layers, batch %d, sequence %d, %d thread(s), %d steps",
  a.cell, a.hidden, L, B, T, a.threads, a.steps))
local total = 0
for k = 1, #parts do total = total + median(times[k]) end
print("parts (median ms a step):")
for k = 1, #parts do print(string.format("  %-10s %s", parts[k], ms(median(times[k])))) end
print(string.format("  %-10s %s (sum of the medians)", "step", ms(total)))
print("backward's nodes (mean ms a step, calls a step):")
for _, n in ipairs(p.backward) do
  print(string.format("  %-24s %s  %5.1f", n.name, ms(n.seconds / a.steps), n.calls / a.steps))
end
if p.lost > 0 then print(string.format("  (%d calls of further nodes not kept)", p.lost)) end
for _, dir in ipairs { "forward", "backward" } do
  local w = p.wave[dir]
  if w.runs > 0 then
    local function pair(v) return string.format("%s / %s", ms(v[1] / w.runs), ms(v[2] / w.runs)) end
    print(string.format("wavefront, %s (%d two-thread runs, %d late; mean ms a run, caller / helper):",
      dir, w.runs, w.late_runs))
    print(string.format("  run %s; waits %s; recurrences done at %s", ms(w.seconds / w.runs),
      pair(w.wait), pair(w.done)))
    if w.products then print(string.format("  products after them done at %s", pair(w.products))) end
  end
end
if p.wave.forward.runs == 0 and p.wave.backward.runs == 0 then
  print("wavefront: no two-thread runs (one thread, the batch split between the threads, or "
    .. "the stack ran layer by layer)")
end
if p.split.forward > 0 or p.split.backward > 0 then
  print(string.format("batch split (runtime/rnn_split.c): %d forward runs, %d backward",
    p.split.forward, p.split.backward))
end
