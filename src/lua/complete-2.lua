--[[
  complete: the leader records its value, releases its lease and tells every waiter, in one step, so a
  stale leader (its lease expired or taken, or a newer token issued) can change nothing. Idempotent: a
  complete retried after a lost reply finds its own done state and succeeds again.

  KEYS[1] state key (hash)
  KEYS[2] lease key (string with a TTL)

  ARGV[1] lease value: the one the claim stored
  ARGV[2] token: the fencing token of our attempt
  ARGV[3] value: the JSON text of fn's value ('' with ARGV[4] = '0' when fn returned undefined)
  ARGV[4] '1' when ARGV[3] holds a value, '0' when there is none
  ARGV[5] done TTL in ms: the state expires this long after completion; '0' keeps it until reset
  ARGV[6] completion channel (same hash tag as the keys)
  ARGV[7] '1' to publish with SPUBLISH (a Cluster's sharded pub/sub), '0' for PUBLISH
  ARGV[8] the W3C traceparent of the leader's span ('' when nobody traced it), kept as `trace` so a
          follower's span can link to the run it waited for

  Publishes on ARGV[6] the new state, flat, as JSON; a value over 16 KiB is left out of the message
  (and `valueOmitted` put in), so no subscriber's output buffer limit is reached: waiters read it.

  Returns
    {0, finishedAtMs}  done (now, or by this same attempt before)
    {-1}               the lease is not ours
    {-3}               our token is not the running attempt's
    {-10, which, detail}  a foreign value at KEYS[which]; see own-keys
]]
-- @include own-keys
local INLINE_VALUE_LIMIT = 16384
local stateKey = KEYS[1]
local leaseKey = KEYS[2]
local leaseValue = ARGV[1]
local token = ARGV[2]
local value = ARGV[3]
local hasValue = ARGV[4] == '1'
local doneTtlMs = tonumber(ARGV[5])
local channel = ARGV[6]
local sharded = ARGV[7] == '1'
local trace = ARGV[8]

local attempt, refused = ownAttempt(stateKey, leaseKey, leaseValue, token, false)
if not attempt then
  if refused[1] ~= -10 then
    local done = redis.pcall('HMGET', stateKey, 'status', 'token', 'finishedAt')
    if not done.err and done[1] == 'done' and done[2] == token then return {0, done[3]} end
  end
  return refused
end

local finishedAt = serverMs()
local fields = {'status', 'done', 'token', token, 'owner', attempt.owner or '', 'attempts', attempt.attempts,
  'startedAt', attempt.startedAt, 'finishedAt', finishedAt}
if doneTtlMs > 0 then
  -- Kept in the state too, so a follower woken by the message knows how long to remember the value.
  fields[#fields + 1] = 'doneTtlMs'; fields[#fields + 1] = ARGV[5]
end
if trace ~= '' then
  fields[#fields + 1] = 'trace'; fields[#fields + 1] = trace
end
local message = {unpack(fields)}
if hasValue then
  fields[#fields + 1] = 'value'; fields[#fields + 1] = value
  if #value <= INLINE_VALUE_LIMIT then
    message[#message + 1] = 'value'; message[#message + 1] = value
  else
    message[#message + 1] = 'valueOmitted'; message[#message + 1] = '1'
  end
end
redis.call('DEL', stateKey)
redis.call('HSET', stateKey, unpack(fields))
if doneTtlMs > 0 then redis.call('PEXPIRE', stateKey, doneTtlMs) end
redis.call('DEL', leaseKey)
publishState(channel, sharded, message)
return {0, finishedAt}
