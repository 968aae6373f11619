-- recur.save(path, {model =, optimizer =, meta =, tensors =, rng =}): see checkpoint.lua
return require("recur.checkpoint").save
