-- `luarocks --lua-version 5.4 make` in the checkout builds recur.so (the C runtime, the Lua
-- bindings and the Lua half of lib/, compiled in) with the Makefile and installs it as the
-- module `recur`; a stock `lua5.4 -e 'require "recur"'` then finds it. Needs Debian's
-- liblua5.4-dev, libopenblas-dev, zlib1g-dev and libjansson-dev (`make deps`).
rockspec_format = "3.0"
package = "recur"
version = "scm-1"
source = {
  -- the project has no public remote yet: its main checkout; `luarocks make` does not fetch
  url = "git+file:///work/main",
}
description = {
  summary = "Recurrent neural networks for Lua 5.4: a C11 tensor and autograd runtime with fused RNN cells",
  detailed = [[
recur is a C11 + Lua 5.4 runtime for recurrent neural networks: tensors, autograd, fused
vanilla/GRU/LSTM cells, optimizers, data loaders and checkpoints (safetensors), with the Lua
half of the library compiled into one C module.]],
  labels = { "neural-networks", "rnn", "autograd" },
}
dependencies = {
  "lua >= 5.4, < 5.5",
  -- scripts/args.lua's parser (the scripts and recur.experiment's command line); Debian's
  -- lua-argparse provides it outside any rocks tree (tests/rockspec_spec.lua says so to luarocks)
  "argparse >= 0.7",
}
external_dependencies = {
  OPENBLAS = { library = "openblas" }, -- its header is multiarch: the Makefile knows where
  ZLIB = { header = "zlib.h", library = "z" },
  JANSSON = { header = "jansson.h", library = "jansson" }, -- the safetensors header's JSON
}
build = {
  type = "make",
  -- a build directory of its own: a developer's build/ is left alone
  build_target = "rock",
  install_target = "rock-install",
  build_variables = {
    BUILD = "build-rock",
    LUA_INC = "$(LUA_INCDIR)",
  },
  install_variables = {
    BUILD = "build-rock",
    INST_LIBDIR = "$(LIBDIR)",
  },
}
