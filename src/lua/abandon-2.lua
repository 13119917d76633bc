--[[
  abandon: give back a key this caller claimed but whose fn never started (every caller left, the
  instance closed, or a quorum claim reached only a minority): the state it replaced is put back, so
  no attempt is spent, and the lease is released. The counter keeps the token, so tokens still rise.

  KEYS[1] state key (hash)
  KEYS[2] lease key (string with a TTL)

  ARGV[1] lease value: the one the claim stored
  ARGV[2] token: the fencing token the claim issued; '' when its reply never came (a timeout): then
          the running attempt is ours only while its lease holds ARGV[1]
  ARGV[3] completion channel (same hash tag as the keys)
  ARGV[4] '1' to publish with SPUBLISH (a Cluster's sharded pub/sub), '0' for PUBLISH

  Publishes on ARGV[3] the restored state, flat, as JSON ({} when idle): waiters decide again.

  Returns
    {0}    given back
    {-1}   someone else holds the lease
    {-3}   our claim is not the running attempt (already given back, or finished)
    {-10, which, detail}  a foreign value at KEYS[which]; see own-keys
]]
-- @include own-keys
local stateKey = KEYS[1]
local leaseKey = KEYS[2]
local leaseValue = ARGV[1]
local token = ARGV[2]
local channel = ARGV[3]
local sharded = ARGV[4] == '1'

local attempt, refused = ownAttempt(stateKey, leaseKey, leaseValue, token, true)
if not attempt then return refused end

local previous = decodePrev(redis.call('HGET', stateKey, 'prev'))
redis.call('DEL', stateKey)
if #previous > 0 then redis.call('HSET', stateKey, unpack(previous)) end
if attempt.holder then redis.call('DEL', leaseKey) end
publishState(channel, sharded, previous)
return {0}
