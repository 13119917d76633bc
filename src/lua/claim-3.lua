--[[
  claim: read a key and, when nobody leads it and attempts remain, take it — the lease, a new fencing
  token and the running state — in one atomic step. The first request of every `run`: a leader of a
  free key makes two round trips in all (claim, complete), and a process that finds the key done, one.
  It takes the key exactly when decide() (src/decide.ts) says `lead`; a test holds the two together.

  KEYS[1] state key (hash)
  KEYS[2] lease key (string with a TTL)
  KEYS[3] fence key (counter)

  ARGV[1] lease value: unique to this attempt; renew, complete, fail and abandon check it. A claim
          sent again (a client resends it after a dropped connection) finds its own lease and answers
          as the first one did
  ARGV[2] lease TTL in ms
  ARGV[3] owner: the caller's node id, recorded in the state
  ARGV[4] maxAttempts: a key that ended without a value this many times is not taken
  ARGV[5] token to issue: '' on one master (the script issues max(counter + 1, server clock in µs)), or
          the quorum's proposal, which every master must accept as it is
  ARGV[6] completion channel (same hash tag as the keys)
  ARGV[7] '1' to publish with SPUBLISH (a Cluster's sharded pub/sub), '0' for PUBLISH

  Writes, when it takes the key: the counter := token; the lease := ARGV[1] with ARGV[2] ms; the state
  := {status running, token, owner, attempts (+1), startedAt, prev}, where `prev` keeps the state it
  replaced, whole (its own `prev` included: cjson, flat), so `abandon` can put it back exactly if fn
  never starts — also after a takeover of this attempt was itself given back.

  Publishes on ARGV[6] the new running state (without `prev`) when it takes the key: a process that only
  waits (`wait`) and found nobody leading learns of the attempt, and so of its lease deadline, which
  is how it hears of a leader that crashes on the last attempt.

  Returns
    {1, token, attempt, startedAtMs, previousFlat, previousFence}
                                                     taken; previousFlat is the replaced state ({} if idle),
                                                     without its `prev`; previousFence the counter before
    {0, stateFlat, leasePttl, statePttl, fence}      not taken: the snapshot says why (done, a lease held,
                                                     attempts spent); leasePttl -2 when free, statePttl -1
                                                     when the state does not expire, fence '0' when not read
    {-4, fence}                                      the proposed token is not above the counter (quorum)
    {-10, which, detail}                             a foreign value at KEYS[which]; see own-keys
]]
-- @include own-keys
local stateKey = KEYS[1]
local leaseKey = KEYS[2]
local fenceKey = KEYS[3]
local leaseValue = ARGV[1]
local leaseMs = ARGV[2]
local owner = ARGV[3]
local maxAttempts = tonumber(ARGV[4])
local proposed = ARGV[5]
local channel = ARGV[6]
local sharded = ARGV[7] == '1'

local state, refused = ownState(stateKey)
if not state then return refused end
if state.status == 'done' then return {0, state.fields, -2, redis.call('PTTL', stateKey), '0'} end

local pttl
pttl, refused = leasePttl(leaseKey)
if not pttl then return refused end
if pttl > 0 then
  if state.status == 'running' and redis.pcall('GET', leaseKey) == leaseValue then
    -- Our own claim, sent again: the same answer.
    local replaced = decodePrev(redis.call('HGET', stateKey, 'prev'))
    local rf = {}
    for i = 1, #state.fields, 2 do rf[state.fields[i]] = state.fields[i + 1] end
    return {1, rf.token, rf.attempts, rf.startedAt, withoutFields(replaced, {prev = true}), '0'}
  end
  return {0, state.fields, pttl, -1, '0'}
end

local fence
fence, refused = ownFence(fenceKey)
if not fence then return refused end
local attempts = tonumber(state.attempts or '0')
if state.status and attempts >= maxAttempts then return {0, state.fields, -2, -1, fence} end

-- Tokens are compared as numbers: they stay below 2^53, which Lua's doubles hold exactly.
local time = redis.call('TIME')
local token
if proposed == '' then
  -- Flooring at the server clock keeps tokens rising even when a restart without persistence lost
  -- the counter.
  token = math.max(tonumber(fence) + 1, tonumber(time[1]) * 1000000 + tonumber(time[2]))
  token = string.format('%.0f', token)
else
  if tonumber(fence) >= tonumber(proposed) then return {-4, fence} end
  token = proposed
end

local startedAt = tostring(tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
local attempt = tostring(attempts + 1)
redis.call('SET', fenceKey, token)
redis.call('SET', leaseKey, leaseValue, 'PX', leaseMs)
redis.call('DEL', stateKey)
local running = {'status', 'running', 'token', token, 'owner', owner, 'attempts', attempt,
  'startedAt', startedAt}
redis.call('HSET', stateKey, 'prev', encodePrev(state.fields), unpack(running))
publishState(channel, sharded, running)
return {1, token, attempt, startedAt, withoutFields(state.fields, {prev = true}), fence}
