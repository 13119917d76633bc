--[[
  reset: forget a key's state, so the next run starts over at attempt 1. Refused while a leader holds
  the lease, unless forced (the leader then loses it). The counter is kept, and raised to the server
  clock (µs), so tokens keep rising and a straggling claim from before the reset is refused.

  KEYS[1] state key (hash)
  KEYS[2] lease key (string with a TTL)
  KEYS[3] fence key (counter)

  ARGV[1] '1' to reset even while a leader holds the lease, else '0'
  ARGV[2] completion channel (same hash tag as the keys): waiters decide again
  ARGV[3] '1' to publish ARGV[2] with SPUBLISH (a Cluster's sharded pub/sub), '0' for PUBLISH
  ARGV[4] control channel of the namespace: every process forgets the key, and a leader of an attempt
          with a token up to the ended counter checks its lease at once (a forced reset took it)
  ARGV[5] the once-key, named in the control message

  Publishes {} (the idle state) on ARGV[2], and ["reset", once-key, ended] on ARGV[4].

  Returns
    {0, existed, ended}  reset; existed is 1 when there was a state to forget; ended is the counter as the
                         reset found it, before raising it: the highest token whose attempt it ended (an
                         attempt that begins after the reset has a higher one, even on a master that
                         applies the reset late)
    {-5, owner}          refused: a leader holds the lease (owner from the state, '' if unknown)
    {-10, which, detail} a foreign value at KEYS[which]; nothing was deleted
]]
-- @include own-keys
local stateKey = KEYS[1]
local leaseKey = KEYS[2]
local fenceKey = KEYS[3]
local force = ARGV[1] == '1'
local doneChannel = ARGV[2]
local sharded = ARGV[3] == '1'
local controlChannel = ARGV[4]
local onceKey = ARGV[5]

local state, refused = ownState(stateKey)
if not state then return refused end
local lease
lease, refused = ownLease(leaseKey)
if not lease then return refused end
local fence
fence, refused = ownFence(fenceKey)
if not fence then return refused end

if lease.holder then
  if not force then return {-5, state.owner or ''} end
  redis.call('DEL', leaseKey)
end
local existed = 0
if state.status then existed = redis.call('DEL', stateKey) end
local ended = fence
-- The counter goes up to the server clock: a claim of an attempt from before the reset that is still on
-- its way (to a slow master of a quorum, which may not even have seen that attempt yet) carries a
-- lower token, and is refused when it lands.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
if tonumber(fence) < now then
  fence = string.format('%.0f', now)
  redis.call('SET', fenceKey, fence)
end

publishState(doneChannel, sharded, {})
-- The control channel is namespace-wide, not in the key's slot: plain PUBLISH reaches every node.
redis.call('PUBLISH', controlChannel, cjson.encode({'reset', onceKey, ended}))
return {0, existed, ended}
