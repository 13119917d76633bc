--[[
  read: one consistent snapshot of a once-key, for deciding what to do next (return, wait, take over).
  Read-only.

  KEYS[1] state key (hash)
  KEYS[2] lease key (string with TTL)
  KEYS[3] fence key (counter)

  Returns
    {0, stateFields, leasePttl, fence, timeSeconds, timeMicros, statePttl}
      stateFields  flat HGETALL of the state ({} when idle)
      leasePttl    ms the lease has left; -2 when nobody holds it
      fence        last token issued, '0' when none
      timeSeconds, timeMicros  the server clock (Redis TIME), to floor new tokens after data loss
      statePttl    ms the state has left; -1 when it does not expire, -2 when absent
    {-10, which, detail}  a foreign value is stored at KEYS[which]; see includes/foreign.lua
]]
local stateKey = KEYS[1]
local leaseKey = KEYS[2]
local fenceKey = KEYS[3]

local foreign = foreignValue(stateKey, leaseKey, fenceKey)
if foreign then return {-10, foreign[1], foreign[2]} end

local time = redis.call('TIME')
return {
  0,
  redis.call('HGETALL', stateKey),
  redis.call('PTTL', leaseKey),
  redis.call('GET', fenceKey) or '0',
  time[1],
  time[2],
  redis.call('PTTL', stateKey),
}
