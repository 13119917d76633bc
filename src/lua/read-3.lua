--[[
  read: one consistent snapshot of a once-key, for deciding what to do next (return, wait, take over).
  Read-only. It reads only what the decision needs, since every caller that is not answered from
  memory runs it: a done key costs two commands, a key with a live leader two, a free key four.

  KEYS[1] state key (hash)
  KEYS[2] lease key (string with TTL)
  KEYS[3] fence key (counter)

  Returns
    {0, stateFields, leasePttl, fence, timeSeconds, timeMicros, statePttl}
      stateFields  flat HGETALL of the state ({} when idle)
      leasePttl    ms the lease has left; -2 when nobody holds it
      fence        last token issued ('0' when none, or when the read stopped early)
      timeSeconds, timeMicros  the server clock (Redis TIME), to floor new tokens after data loss
                   ('0' when the read stopped early: done, or a leader holds the lease)
      statePttl    ms a done state has left; -1 when it does not expire or is not done
    {-10, which, detail}  a foreign value is stored at KEYS[which]; see includes/own-keys.lua
]]
local stateKey = KEYS[1]
local leaseKey = KEYS[2]
local fenceKey = KEYS[3]

local state, refused = ownState(stateKey)
if not state then return refused end
if state.status == 'done' then
  return {0, state.fields, -2, '0', '0', '0', redis.call('PTTL', stateKey)}
end

-- PTTL alone answers "is someone leading, and until when" (a lease of another type, which only a
-- foreign writer could leave, is waited out like any lease and never overwritten).
local leasePttl = redis.call('PTTL', leaseKey)
if leasePttl == -1 then
  local _, noExpiry = refuse(2, leaseKey, 'a ' .. redis.call('TYPE', leaseKey)['ok'] .. ' without an expiry')
  return noExpiry
end
if leasePttl > 0 then return {0, state.fields, leasePttl, '0', '0', '0', -1} end

-- Nobody leads: the caller may take over, and will need the counter and the clock.
local fence
fence, refused = ownFence(fenceKey)
if not fence then return refused end
local time = redis.call('TIME')
return {0, state.fields, -2, fence, time[1], time[2], -1}
