--[[
  own-keys: included by every script (`-- @include own-keys`). Each function reads one of our keys with
  one command and refuses a value redis-once did not write there (a foreign value); TYPE is asked only
  on that path. A refusal is returned as {-10, which, detail}: which is 1 (state), 2 (lease), 3 (fence).

  ownState(stateKey)  → {fields (flat HGETALL), status, token, attempts, owner} | nil, refusal
      the state: a hash whose `status` is running, done or failed (absent: idle)
  ownLease(leaseKey)  → {holder (false when free), pttl (-2 when free)} | nil, refusal
      the lease: a string with a TTL (a lease without one would block the key forever)
  leasePttl(leaseKey) → ms the lease has left (-2 when free) | nil, refusal: PTTL alone, for readers;
      a key of another type with a TTL is waited out like a lease, never overwritten
  ownFence(fenceKey)  → the counter ('0' when none) | nil, refusal
      the fence: a string holding a non-negative integer
  ownAttempt(stateKey, leaseKey, leaseValue, token, leaseMayBeFree)
      → {holder, status, token, owner, attempts, startedAt} | nil, refusal
      checks that `token` is the running attempt and that its lease holds `leaseValue` (or, when
      leaseMayBeFree, has expired): else {-1} (someone else holds the lease) or {-3} (not the running
      attempt: reset, taken over, or already finished). token '' (unknown: a claim whose reply never
      came) accepts the running attempt whose lease holds `leaseValue`, and only while it does
  withoutFields(flat, drop) → flat with the fields named in the set `drop` left out
  encodePrev(flat) → the JSON kept in a running state's `prev`: the replaced state, whose own `prev`
      is nested as JSON structure, not as an escaped string (so a chain of takeovers grows linearly)
  decodePrev(json) → the flat fields to put back, each a string (a nested `prev` encoded again)
  publishState(channel, sharded, flat) → publishes cjson(flat) with SPUBLISH (sharded) or PUBLISH
  serverMs() → the server clock (TIME) in epoch milliseconds, as a string
]]
local function refuse(which, key, detail)
  return nil, {-10, which, detail or ('a ' .. redis.call('TYPE', key)['ok'])}
end

local function ownState(stateKey)
  local fields = redis.pcall('HGETALL', stateKey)
  if fields.err then return refuse(1, stateKey) end
  local s = {fields = fields}
  for i = 1, #fields, 2 do
    local name = fields[i]
    if name == 'status' then s.status = fields[i + 1]
    elseif name == 'token' then s.token = fields[i + 1]
    elseif name == 'attempts' then s.attempts = fields[i + 1]
    elseif name == 'owner' then s.owner = fields[i + 1] end
  end
  if #fields > 0 and s.status ~= 'running' and s.status ~= 'done' and s.status ~= 'failed' then
    return refuse(1, stateKey, 'a hash without a redis-once status')
  end
  return s
end

local function ownLease(leaseKey)
  local holder = redis.pcall('GET', leaseKey)
  if type(holder) == 'table' then return refuse(2, leaseKey) end
  if not holder then return {holder = false, pttl = -2} end
  local pttl = redis.call('PTTL', leaseKey)
  if pttl < 0 then return refuse(2, leaseKey, 'a string without an expiry') end
  return {holder = holder, pttl = pttl}
end

local function leasePttl(leaseKey)
  local pttl = redis.call('PTTL', leaseKey)
  if pttl == -1 then
    return refuse(2, leaseKey, 'a ' .. redis.call('TYPE', leaseKey)['ok'] .. ' without an expiry')
  end
  return pttl
end

local function ownFence(fenceKey)
  local fence = redis.pcall('GET', fenceKey)
  if type(fence) == 'table' then return refuse(3, fenceKey) end
  if not fence then return '0' end
  if not string.match(fence, '^%d+$') then return refuse(3, fenceKey, 'a string that is not a counter') end
  return fence
end

local function ownAttempt(stateKey, leaseKey, leaseValue, token, leaseMayBeFree)
  -- GET alone when the lease is ours: our claim wrote it, with its TTL. Another's is checked for one.
  local holder = redis.pcall('GET', leaseKey)
  if type(holder) == 'table' then return refuse(2, leaseKey) end
  if holder and holder ~= leaseValue and redis.call('PTTL', leaseKey) < 0 then
    return refuse(2, leaseKey, 'a string without an expiry')
  end
  local lease = {holder = holder or false}
  if lease.holder ~= leaseValue and (lease.holder or not leaseMayBeFree or token == '') then
    return nil, {-1}
  end
  local current = redis.pcall('HMGET', stateKey, 'status', 'token', 'owner', 'attempts', 'startedAt')
  if current.err then return refuse(1, stateKey) end
  if current[1] ~= 'running' or (current[2] ~= token and token ~= '') then return nil, {-3} end
  return {holder = lease.holder, status = current[1], token = current[2], owner = current[3],
    attempts = current[4], startedAt = current[5]}
end

local function withoutFields(flat, drop)
  local kept = {}
  for i = 1, #flat, 2 do
    if not drop[flat[i]] then
      kept[#kept + 1] = flat[i]
      kept[#kept + 1] = flat[i + 1]
    end
  end
  return kept
end

local function encodePrev(flat)
  local copy = {}
  for i = 1, #flat, 2 do
    copy[i] = flat[i]
    copy[i + 1] = flat[i] == 'prev' and cjson.decode(flat[i + 1]) or flat[i + 1]
  end
  return cjson.encode(copy)
end

local function decodePrev(json)
  local flat = cjson.decode(json or '{}')
  for i = 2, #flat, 2 do
    if type(flat[i]) == 'table' then flat[i] = cjson.encode(flat[i]) end
  end
  return flat
end

local function publishState(channel, sharded, flat)
  -- Both command names are literals: nothing a caller passes becomes a command.
  if sharded then redis.call('SPUBLISH', channel, cjson.encode(flat))
  else redis.call('PUBLISH', channel, cjson.encode(flat)) end
end

local function serverMs()
  local time = redis.call('TIME')
  return tostring(tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
end
