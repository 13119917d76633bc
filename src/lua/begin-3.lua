--[[
  begin: the lease holder starts an attempt. Atomically checks that it still holds the lease and that
  the state is still the one it decided on, issues the new fencing token, and marks the key running.

  KEYS[1] state key (hash)
  KEYS[2] lease key (string with TTL)
  KEYS[3] fence key (counter)

  ARGV[1] lease value: the random value our redlock lease holds
  ARGV[2] expected token: the state's token when we decided to take over ('' when there was no state);
          a master whose stored token is lower is behind, and is brought forward
  ARGV[3] new token: the fencing token to issue; must exceed the stored counter
  ARGV[4] attempt number to record (cluster-wide attempts so far + 1)
  ARGV[5] owner: the node id of the caller

  Returns
    {0, startedAtMs}   begun
    {-1}               the lease is not ours (expired, or someone else's)
    {-2}               the key is already done (by the attempt we read, or a later one)
    {-3}               a later attempt began since we read the state
    {-4, fence}        the counter is already at or past the new token
    {-10, which, detail}  a foreign value is stored at KEYS[which]
]]
local stateKey = KEYS[1]
local leaseKey = KEYS[2]
local fenceKey = KEYS[3]
local leaseValue = ARGV[1]
local expectedToken = ARGV[2]
local newToken = ARGV[3]
local attempt = ARGV[4]
local owner = ARGV[5]

local own, refused = ownKeys(stateKey, leaseKey, fenceKey)
if not own then return refused end

if own.lease.holder ~= leaseValue then return {-1} end
-- A master may lag behind the one we read (a quorum, after a restart or a missed write): a lower
-- stored token is behind, not newer, and is overwritten; an equal or higher one decides.
local stored = tonumber(own.state.token or '0')
local expected = tonumber(expectedToken == '' and '0' or expectedToken)
if own.state.status == 'done' and stored >= expected then return {-2} end
if stored > expected then return {-3} end
-- Tokens are compared as numbers: they are below 2^53, which Lua's doubles represent exactly.
if tonumber(own.fence) >= tonumber(newToken) then return {-4, own.fence} end
redis.call('SET', fenceKey, newToken)

local startedAt = serverMs()
redis.call('DEL', stateKey)
redis.call('HSET', stateKey, 'status', 'running', 'token', newToken, 'owner', owner,
  'attempts', attempt, 'startedAt', startedAt)
return {0, startedAt}
