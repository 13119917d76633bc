--[[
  fail: the leader records that its attempt ended without a value (fn threw, its value was refused, it
  lost its lease, or its instance closed), releases its lease at once and tells every waiter, so one of
  them takes over without waiting for the lease to expire.

  KEYS[1] state key (hash)
  KEYS[2] lease key (string with a TTL)

  ARGV[1] lease value: the one the claim stored
  ARGV[2] token: the fencing token of our attempt
  ARGV[3] error: JSON {"name": …, "message": …}, at most a few KiB (the caller truncates it)
  ARGV[4] outcome: 'failed' or 'lease-lost'
  ARGV[5] completion channel (same hash tag as the keys)
  ARGV[6] '1' to publish with SPUBLISH (a Cluster's sharded pub/sub), '0' for PUBLISH

  The lease may have expired already (a lost lease is recorded after the fact); the record is refused
  only when someone else holds it, or when our attempt is no longer the running one.
  Publishes on ARGV[5] the new state, flat, as JSON.

  Returns
    {0}    recorded
    {-1}   someone else holds the lease
    {-3}   our token is not the running attempt's
    {-10, which, detail}  a foreign value at KEYS[which]; see own-keys
]]
-- @include own-keys
local stateKey = KEYS[1]
local leaseKey = KEYS[2]
local leaseValue = ARGV[1]
local token = ARGV[2]
local errorJson = ARGV[3]
local outcome = ARGV[4] == 'lease-lost' and 'lease-lost' or 'failed'
local channel = ARGV[5]
local sharded = ARGV[6] == '1'

local attempt, refused = ownAttempt(stateKey, leaseKey, leaseValue, token, true)
if not attempt then return refused end

local fields = {'status', 'failed', 'token', token, 'owner', attempt.owner or '', 'attempts', attempt.attempts,
  'startedAt', attempt.startedAt, 'finishedAt', serverMs(), 'error', errorJson, 'outcome', outcome}
redis.call('DEL', stateKey)
redis.call('HSET', stateKey, unpack(fields))
if attempt.holder then redis.call('DEL', leaseKey) end
publishState(channel, sharded, fields)
return {0}
