--[[
  read: one consistent snapshot of a key, changing nothing. For `status`, `wait`, and a quorum's reads.

  KEYS[1] state key (hash)
  KEYS[2] lease key (string with a TTL)
  KEYS[3] fence key (counter)

  Returns
    {0, stateFlat, leasePttl, statePttl, fence}
      stateFlat  flat HGETALL of the state ({} when idle)
      leasePttl  ms the lease has left; -2 when nobody holds it (not read for a done key)
      statePttl  ms a done state has left; -1 when it does not expire, or is not done
      fence      the last token issued ('0' when none, or not read: a done key)
    {-10, which, detail}  a foreign value at KEYS[which]; see own-keys
]]
-- @include own-keys
local stateKey = KEYS[1]
local leaseKey = KEYS[2]
local fenceKey = KEYS[3]

local state, refused = ownState(stateKey)
if not state then return refused end
if state.status == 'done' then return {0, state.fields, -2, redis.call('PTTL', stateKey), '0'} end

local pttl
pttl, refused = leasePttl(leaseKey)
if not pttl then return refused end
local fence
fence, refused = ownFence(fenceKey)
if not fence then return refused end
return {0, state.fields, pttl, -1, fence}
