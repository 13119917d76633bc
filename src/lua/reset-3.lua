--[[
  reset: forget a key's state so the next run starts over. Refuses while a leader holds the lease,
  unless forced. The fence counter is kept, so tokens keep rising across resets.

  KEYS[1] state key (hash)
  KEYS[2] lease key (string with TTL)
  KEYS[3] fence key (counter; only checked for a foreign value)

  ARGV[1] '1' to reset even while a leader holds the lease (it will lose it), else '0'
  ARGV[2] completion channel: waiters re-read the state
  ARGV[3] publish command for ARGV[2]: 'PUBLISH', or 'SPUBLISH' on a Cluster
  ARGV[4] control channel of the namespace: every process drops its memo of the key
  ARGV[5] the once-key, published on ARGV[4]

  Publishes '[]' (the empty state) on ARGV[2] and the once-key on ARGV[4].

  Returns
    {0, existed}        reset; existed is 1 when there was a state to forget
    {-5, owner}         refused: a leader holds the lease (owner from the state, '' if unknown)
    {-10, which, detail}  a foreign value is stored at KEYS[which]; nothing was deleted
]]
local stateKey = KEYS[1]
local leaseKey = KEYS[2]
local fenceKey = KEYS[3]
local force = ARGV[1] == '1'
local doneChannel = ARGV[2]
local publish = ARGV[3]
local controlChannel = ARGV[4]
local onceKey = ARGV[5]

local own, refused = ownKeys(stateKey, leaseKey, fenceKey)
if not own then return refused end

if own.lease.holder then
  if not force then return {-5, own.state.owner or ''} end
  redis.call('DEL', leaseKey)
end
local existed = 0
if own.state.status then existed = redis.call('DEL', stateKey) end

redis.call(publish, doneChannel, '[]')
redis.call('PUBLISH', controlChannel, onceKey)
return {0, existed}
