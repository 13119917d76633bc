--[[
  repair: on a quorum, copy a done state to a master that lags behind it (restarted empty, or missed
  the write), so that a majority holds it. Refuses when the master holds a newer token, or this done
  state already.

  KEYS[1] state key (hash)
  KEYS[2] fence key (counter)

  ARGV[1] token: the fencing token of the done state being copied
  ARGV[2] TTL in ms the done state has left; '-1' when it does not expire
  ARGV[3..] the done state's fields, flat (field, value, field, value, …)

  Returns
    {0}    copied; the fence is raised to the token if it was below
    {-3}   this master holds a higher token, this done state already, or was reset after seeing
           this attempt (its counter is at the token): left as it is
    {-10, which, detail}  a foreign value is stored at KEYS[which]; see includes/own-keys.lua
]]
local stateKey = KEYS[1]
local fenceKey = KEYS[2]
local token = tonumber(ARGV[1])
local ttlMs = tonumber(ARGV[2])

local state, refused = ownState(stateKey)
if not state then return refused end
local fence
fence, refused = ownFence(fenceKey)
if not fence then return refused end
local stored = tonumber(state.token or '0')
if stored > token or (stored == token and state.status == 'done') then return {-3} end
-- An older state (or none) with the counter already at the token: this master saw that attempt, and
-- its state was reset (or expired) since. That is not lagging; a reset must not be undone.
if stored < token and tonumber(fence) >= token then return {-3} end

redis.call('DEL', stateKey)
redis.call('HSET', stateKey, unpack(ARGV, 3))
if ttlMs > 0 then redis.call('PEXPIRE', stateKey, ttlMs) end
if tonumber(fence) < token then redis.call('SET', fenceKey, ARGV[1]) end
return {0}
