-- recur.load(path [, {model =, optimizer =, rng =, strict =}]): see checkpoint.lua
return require("recur.checkpoint").load
