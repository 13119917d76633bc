--[[
  complete: the leader records its value, releases its lease and tells every waiter, in one step, so a
  stale leader (lease expired, or a newer token issued) can change nothing.

  KEYS[1] state key (hash)
  KEYS[2] lease key (string with TTL)

  ARGV[1] lease value: the random value our redlock lease holds
  ARGV[2] token: the fencing token our attempt began with
  ARGV[3] value: the JSON text of fn's value ('' with ARGV[4] = '0' when fn returned undefined)
  ARGV[4] '1' when ARGV[3] holds a value, '0' when there is none
  ARGV[5] done TTL in ms: the state expires this long after completion; '0' keeps it until reset
  ARGV[6] completion channel
  ARGV[7] publish command: 'PUBLISH', or 'SPUBLISH' on a Cluster (sharded pub/sub)

  Publishes on ARGV[6] the JSON array of the new state's HGETALL.

  Returns
    {0, finishedAtMs}  done
    {-1}               the lease is not ours
    {-3}               our token is no longer the current attempt's
    {-10, which, detail}  a foreign value is stored at KEYS[which]; see includes/own-keys.lua
]]
local stateKey = KEYS[1]
local leaseKey = KEYS[2]
local leaseValue = ARGV[1]
local token = ARGV[2]
local value = ARGV[3]
local hasValue = ARGV[4] == '1'
local doneTtlMs = tonumber(ARGV[5])
local channel = ARGV[6]
local publish = ARGV[7]

local lease, refused = ownAttempt(stateKey, leaseKey, leaseValue, token, false)
if not lease then return refused end

local finishedAt = serverMs()
-- One HSET; begin started this hash afresh, so no error or outcome of an older attempt is left in it.
local update = {'status', 'done', 'finishedAt', finishedAt}
if hasValue then table.insert(update, 'value'); table.insert(update, value) end
if doneTtlMs > 0 then
  -- Kept in the hash too, so a follower woken by the message knows how long to remember the value.
  table.insert(update, 'doneTtlMs'); table.insert(update, ARGV[5])
end
redis.call('HSET', stateKey, unpack(update))
if doneTtlMs > 0 then redis.call('PEXPIRE', stateKey, doneTtlMs) end
redis.call('DEL', leaseKey)

redis.call(publish, channel, cjson.encode(redis.call('HGETALL', stateKey)))
return {0, finishedAt}
