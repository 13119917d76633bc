--[[
  Included at the top of scripts that must not touch a value someone else stored at one of our keys.

  foreignValue(stateKey, leaseKey, fenceKey)
    Returns nil when all three keys are absent or hold redis-once data, otherwise
    {which, detail}: which is 1 (state), 2 (lease) or 3 (fence); detail says what is there.
    state: a hash whose `status` is running, done or failed
    lease: a string with a TTL (a lease without one would block the key forever)
    fence: a string holding a non-negative integer
]]
local function foreignValue(stateKey, leaseKey, fenceKey)
  local stateType = redis.call('TYPE', stateKey)['ok']
  if stateType ~= 'none' then
    if stateType ~= 'hash' then return {1, 'a ' .. stateType} end
    local status = redis.call('HGET', stateKey, 'status')
    if status ~= 'running' and status ~= 'done' and status ~= 'failed' then
      return {1, 'a hash without a redis-once status'}
    end
  end
  local leaseType = redis.call('TYPE', leaseKey)['ok']
  if leaseType ~= 'none' then
    if leaseType ~= 'string' then return {2, 'a ' .. leaseType} end
    if redis.call('PTTL', leaseKey) < 0 then return {2, 'a string without an expiry'} end
  end
  local fenceType = redis.call('TYPE', fenceKey)['ok']
  if fenceType ~= 'none' then
    if fenceType ~= 'string' then return {3, 'a ' .. fenceType} end
    if not string.match(redis.call('GET', fenceKey), '^%d+$') then return {3, 'a string that is not a counter'} end
  end
  return nil
end
