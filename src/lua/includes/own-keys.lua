--[[
  Included at the top of scripts that read our keys: each function reads one key with one command and
  refuses a value redis-once did not write there (a foreign value). TYPE is asked only on that path.
  A refusal is returned as {-10, which, detail}: which is 1 (state), 2 (lease) or 3 (fence).

  ownState(stateKey)   → {fields (flat HGETALL), status, token, owner} | nil, refusal
      state: a hash whose `status` is running, done or failed
  ownLease(leaseKey)   → {holder (false when free), pttl (-2 when free)} | nil, refusal
      lease: a string with a TTL (a lease without one would block the key forever)
  ownFence(fenceKey)   → fence ('0' when none) | nil, refusal
      fence: a string holding a non-negative integer
  ownFields(stateKey, field…) → the fields' values (HMGET) | nil, refusal
  ownKeys(stateKey, leaseKey, fenceKey) → {state, lease, fence} as above | nil, refusal
  ownAttempt(stateKey, leaseKey, leaseValue, token, leaseMayBeFree) → lease | nil, refusal
      the running attempt is `token`'s and its lease holds `leaseValue` (or, when leaseMayBeFree, has
      expired): else {-1} (someone else holds the lease) or {-3} (token is not the running attempt's)
  serverMs() → the server clock (TIME) in epoch milliseconds, as a string
]]
local function refuse(which, key, detail)
  return nil, {-10, which, detail or ('a ' .. redis.call('TYPE', key)['ok'])}
end

local function ownState(stateKey)
  local fields = redis.pcall('HGETALL', stateKey)
  if fields.err then return refuse(1, stateKey) end
  local status, token, owner
  for i = 1, #fields, 2 do
    local name = fields[i]
    if name == 'status' then status = fields[i + 1]
    elseif name == 'token' then token = fields[i + 1]
    elseif name == 'owner' then owner = fields[i + 1] end
  end
  if #fields > 0 and status ~= 'running' and status ~= 'done' and status ~= 'failed' then
    return refuse(1, stateKey, 'a hash without a redis-once status')
  end
  return {fields = fields, status = status, token = token, owner = owner}
end

local function ownLease(leaseKey)
  local holder = redis.pcall('GET', leaseKey)
  if type(holder) == 'table' then return refuse(2, leaseKey) end
  if not holder then return {holder = false, pttl = -2} end
  local pttl = redis.call('PTTL', leaseKey)
  if pttl < 0 then return refuse(2, leaseKey, 'a string without an expiry') end
  return {holder = holder, pttl = pttl}
end

local function ownFence(fenceKey)
  local fence = redis.pcall('GET', fenceKey)
  if type(fence) == 'table' then return refuse(3, fenceKey) end
  if not fence then return '0' end
  if not string.match(fence, '^%d+$') then return refuse(3, fenceKey, 'a string that is not a counter') end
  return fence
end

local function ownFields(stateKey, ...)
  local values = redis.pcall('HMGET', stateKey, ...)
  if values.err then return refuse(1, stateKey) end
  return values
end

local function ownKeys(stateKey, leaseKey, fenceKey)
  local state, lease, fence, refused
  state, refused = ownState(stateKey)
  if not state then return nil, refused end
  lease, refused = ownLease(leaseKey)
  if not lease then return nil, refused end
  fence, refused = ownFence(fenceKey)
  if not fence then return nil, refused end
  return {state = state, lease = lease, fence = fence}
end

local function ownAttempt(stateKey, leaseKey, leaseValue, token, leaseMayBeFree)
  local lease, refused = ownLease(leaseKey)
  if not lease then return nil, refused end
  if lease.holder ~= leaseValue and (lease.holder or not leaseMayBeFree) then return nil, {-1} end
  local current
  current, refused = ownFields(stateKey, 'status', 'token')
  if not current then return nil, refused end
  if current[1] ~= 'running' or current[2] ~= token then return nil, {-3} end
  return lease
end

local function serverMs()
  local time = redis.call('TIME')
  return tostring(tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
end
