--[[
  renew: the leader extends its lease, if it is still its own.

  KEYS[1] lease key (string with a TTL)

  ARGV[1] lease value: the one the claim stored
  ARGV[2] lease TTL in ms, from now

  Returns
    {0}    renewed
    {-1}   the lease is not ours: expired, taken over, or deleted by a forced reset
    {-10, which, detail}  a foreign value at the lease key (which is 2, as in own-keys)
]]
local leaseKey = KEYS[1]
local leaseValue = ARGV[1]
local leaseMs = ARGV[2]

local holder = redis.pcall('GET', leaseKey)
if type(holder) == 'table' then return {-10, 2, 'a ' .. redis.call('TYPE', leaseKey)['ok']} end
if holder ~= leaseValue then return {-1} end
redis.call('PEXPIRE', leaseKey, leaseMs)
return {0}
