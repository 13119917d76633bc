--[[
  repair: on a quorum, copy a done state to a master that is behind it (restarted empty, or missed the
  write), so that a majority holds it. Only a done state of known fields is written. Refused when the
  master holds a newer attempt or this done state already, or was reset after seeing this attempt.

  KEYS[1] state key (hash)
  KEYS[2] fence key (counter)

  ARGV[1] token of the done state
  ARGV[2] TTL in ms the done state has left; '-1' when it does not expire
  ARGV[3] owner
  ARGV[4] attempts
  ARGV[5] startedAt (epoch ms)
  ARGV[6] finishedAt (epoch ms)
  ARGV[7] '1' when ARGV[8] holds a value, '0' when there is none
  ARGV[8] the value's JSON text
  ARGV[9] doneTtlMs as recorded ('' when none)
  ARGV[10] the leader's traceparent as recorded ('' when none)

  Returns
    {0}    copied; the counter is raised to the token if it was below
    {-3}   left as it is: a newer or equal done state, or a reset after this attempt (its counter is
           at the token while its state is older)
    {-10, which, detail}  a foreign value at KEYS[which] (which: 1 state, 3 fence, as in own-keys)
]]
-- @include own-keys
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
-- An older state (or none) with the counter at the token: this master saw that attempt, and was reset
-- (or its done state expired) since. That is not lagging; a reset is never undone.
if stored < token and tonumber(fence) >= token then return {-3} end

local fields = {'status', 'done', 'token', ARGV[1], 'owner', ARGV[3], 'attempts', ARGV[4],
  'startedAt', ARGV[5], 'finishedAt', ARGV[6]}
if ARGV[7] == '1' then fields[#fields + 1] = 'value'; fields[#fields + 1] = ARGV[8] end
if ARGV[9] ~= '' then fields[#fields + 1] = 'doneTtlMs'; fields[#fields + 1] = ARGV[9] end
if ARGV[10] ~= '' then fields[#fields + 1] = 'trace'; fields[#fields + 1] = ARGV[10] end
redis.call('DEL', stateKey)
redis.call('HSET', stateKey, unpack(fields))
if ttlMs > 0 then redis.call('PEXPIRE', stateKey, ttlMs) end
if tonumber(fence) < token then redis.call('SET', fenceKey, ARGV[1]) end
return {0}
