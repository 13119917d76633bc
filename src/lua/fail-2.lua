--[[
  fail: the leader records that its attempt ended without a value (fn threw, its value could not be
  serialized, or it lost its lease), releases its lease at once, and tells every waiter, so one of
  them can take over without waiting for the lease to expire.

  KEYS[1] state key (hash)
  KEYS[2] lease key (string with TTL)

  ARGV[1] lease value: the random value our redlock lease held
  ARGV[2] token: the fencing token our attempt began with
  ARGV[3] error: JSON {"name": …, "message": …}
  ARGV[4] outcome: 'failed' (fn threw or its value was refused) or 'lease-lost'
  ARGV[5] completion channel
  ARGV[6] publish command: 'PUBLISH', or 'SPUBLISH' on a Cluster

  The lease may have expired already (a lost lease is recorded after the fact); the record is refused
  only when someone else holds it, or when a newer attempt has begun.
  Publishes on ARGV[5] the JSON array of the new state's HGETALL.

  Returns
    {0}    recorded
    {-1}   someone else holds the lease
    {-3}   our token is no longer the current attempt's
    {-10, which, detail}  a foreign value is stored at KEYS[which]; see includes/own-keys.lua
]]
local stateKey = KEYS[1]
local leaseKey = KEYS[2]
local leaseValue = ARGV[1]
local token = ARGV[2]
local errorJson = ARGV[3]
local outcome = ARGV[4]
local channel = ARGV[5]
local publish = ARGV[6]

local lease, refused = ownAttempt(stateKey, leaseKey, leaseValue, token, true)
if not lease then return refused end

redis.call('HSET', stateKey, 'status', 'failed', 'finishedAt', serverMs(), 'error', errorJson, 'outcome', outcome)
if lease.holder then redis.call('DEL', leaseKey) end

redis.call(publish, channel, cjson.encode(redis.call('HGETALL', stateKey)))
return {0}
