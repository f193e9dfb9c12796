/**
 * The Lua twins of consume.ts, run atomically by Redis (EVALSHA). Each event touches one
 * customer's keys (same hash tag) and a stream; a call touches one slot on a cluster (see keys.ts).
 * Numbers travel as strings (integers as they are, others with '%.17g', so they stay exact); an
 * answer is stored as one pipe-joined string:
 *   accepted | used (holds included) | limit ('' = none) | remaining ('' = none) | resets_at ms
 *   ('' = none) | period start ms | overage | credit
 */
import { COMMON } from './lua-common.ts';

/**
 * One event's check-and-consume. The answer is computed from what is read, then one SET NX GET both
 * checks the idempotency key and stores the answer; only a first answer goes on to write the
 * counter and the stream. `t` is the parsed terms (`terms_of`). `append(stream, record)` is the
 * script's own.
 *
 * An event's stream record is its head (the ledger columns the API knows, see ledger/lines.ts), a
 * newline and the answer. When the head and the answer do not tell the rest (an aggregation other
 * than `sum`, overage, credit drawn or a threshold crossed), these lines follow: counted, overage,
 * credit draws (id,amount,...), crossed thresholds (csv), used after the event.
 */
const CONSUME_FUNCTION = `
local function consume(now, value, member, head, t, counter, creditKey, idem, stream, holds, members, sketch)
  local limit, agg = t.limit, t.agg
  local ttl = 0
  if t.resets ~= '' then ttl = math.max(86400000, t.resetsMs + t.keep - now) end
  local c = redis.call('HMGET', counter, 'u', 'h')
  local used = num(c[1])
  local held = expire_holds(counter, holds, num(c[2]), now)
  local ids, amounts, gused = t.ids, t.amounts, NONE
  if ids ~= NONE then
    gused = {}
    local got = redis.call('HMGET', creditKey, unpack(ids))
    for i = 1, #ids do gused[i] = num(got[i]) end
  end
  local add, fresh = value, 0
  if agg == 'max' then
    add = math.max(0, value - used)
  elseif agg == 'unique' then
    add = 0
    if redis.call('SISMEMBER', members, member) == 0 then
      add = 1
      local card = redis.call('SCARD', members)
      if card < t.cap then fresh = 1 else fresh = 2 end
      if card == 0 then fresh = 3 end
    end
  end
  local ok, credit, over, draws = plan(used, held, limit, t.deny, add, ids, amounts, gused, false)
  if fresh == 2 then
    -- Past the exact cap a HyperLogLog decides (approximately) whether the member is new; PFADD
    -- writes, so a repeated key must be answered before it.
    local prior = redis.call('GET', idem)
    if prior then return prior end
    if ok and redis.call('PFADD', sketch, member) == 0 then add, over = 0, 0 end
  end
  local after = used
  if ok then after = used + add end
  local ans
  if ok and held == 0 and ids == NONE and over == 0 and t.tail and int(after) then
    -- Most answers: whole numbers, no holds, no credit (the same text answer() makes, cheaper).
    if limit then
      ans = fmt('1|%d|%s|%d|%s', after, t.lim, math.max(0, limit - after), t.tail)
    else
      ans = fmt('1|%d|||%s', after, t.tail)
    end
  elseif ok then
    ans = answer(1, after, held, limit, available(amounts, gused), t.resets, t.ps, over, credit)
  else
    ans = answer(0, used, held, limit, available(amounts, gused), t.resets, t.ps, 0, 0)
  end
  -- Claims the idempotency key and stores the answer in one call; a key already there means this
  -- event was answered before: replay that answer, change nothing.
  local prior = redis.call('SET', idem, ans, 'NX', 'GET', 'PX', t.idemTtl)
  if prior then return prior end
  if not ok then return ans end
  if fresh == 1 or fresh == 3 then
    redis.call('SADD', members, member)
    if fresh == 3 and ttl > 0 then redis.call('PEXPIRE', members, ttl) end
  elseif fresh == 2 and ttl > 0 then
    redis.call('PEXPIRE', sketch, ttl)
  end
  if c[1] then ttl = 0 end
  apply(counter, creditKey, add, over, credit, draws, ttl)
  local cross = ''
  if t.first and after >= t.first then cross = crossed(used, after, limit, t.thresholds) end
  if agg == 'sum' and over == 0 and credit == 0 and cross == '' then
    append(stream, head .. '\\n' .. ans)
  else
    append(stream, head .. '\\n' .. ans .. '\\n' .. s(add) .. '\\n' .. s(over) .. '\\n' ..
      table.concat(draws, ',') .. '\\n' .. cross .. '\\n' .. s(after))
  end
  return ans
end
`;

/**
 * Terms: one string, the same for every event a customer sends under the same terms (the caller
 * memoises it):
 *   aggregation | limit ('' = none) | mode | keep ms after the period ends | idempotency ttl ms |
 *   thresholds csv | resets ms ('' = never) | period start ms | exact member cap | grants (id,amount,...)
 * Read into a table once per script call and terms string (never written afterwards).
 */
const TERMS = `
local function terms_of(str)
  local agg, lim, mode, keep, idemTtl, thresholds, resets, ps, cap, grantList =
    string.match(str, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  local t = { agg = agg, limit = tonumber(lim), deny = mode == 'deny', keep = tonumber(keep),
    idemTtl = idemTtl, thresholds = thresholds, resets = resets, ps = ps, cap = tonumber(cap),
    ids = NONE, amounts = NONE }
  if resets ~= '' then t.resetsMs = tonumber(resets) end
  -- What answers of whole numbers share: the limit's text and everything after the remaining.
  if not t.limit or int(t.limit) then
    t.tail = resets .. '|' .. ps .. '|0|0'
    if t.limit then t.lim = fmt('%d', t.limit) end
  end
  -- No event below the lowest threshold can cross one.
  if t.limit and t.limit > 0 and thresholds ~= '' then
    local lowest
    for p in string.gmatch(thresholds, '[^,]+') do
      local at = t.limit * tonumber(p) / 100
      if not lowest or at < lowest then lowest = at end
    end
    t.first = lowest
  end
  if grantList ~= '' then
    t.ids, t.amounts = {}, {}
    for id, amount in string.gmatch(grantList, '([^,]+),([^,]+)') do
      t.ids[#t.ids + 1] = id
      t.amounts[#t.amounts + 1] = tonumber(amount)
    end
  end
  return t
end
`;

/**
 * Many events (of any customers, or a single one) in one script call, each counted by `consume`, in
 * order; the reply is the list of answers. Standalone Redis only: on a cluster one call may touch
 * one slot, so callers group per slot there.
 * The counted events go to the stream as one entry per call, one `e` field per event in order
 * (rather than an entry per event): that saves Redis about 3 of the 20-25 µs it spends per event, in
 * the script and in the flusher's reads, acknowledgements and deletes. Each event runs under
 * pcall, so one that fails gets its own error in the reply and the entry still holds every event
 * counted before and after it.
 * What the events of a call share is sent once: the stream, and each distinct (now, terms) pair,
 * a context, that events name by number.
 * KEYS: the stream, then per event: counter, credit, idempotency, holds (and members, sketch when
 * its terms' aggregation is `unique`).
 * ARGV: event count, context count, per context: now, terms; per event: context number (from 1),
 * value, member, head.
 */
export const CONSUME_MANY = `${COMMON}${TERMS}
local fields = {}
local function append(_, record)
  fields[#fields + 1] = 'e'
  fields[#fields + 1] = record
end
${CONSUME_FUNCTION}
local n, contexts = tonumber(ARGV[1]), tonumber(ARGV[2])
local nows, terms = {}, {}
for i = 1, contexts do
  nows[i] = tonumber(ARGV[1 + 2 * i])
  terms[i] = terms_of(ARGV[2 + 2 * i])
end
local out, k, a = {}, 1, 2 + 2 * contexts
for e = 1, n do
  local i = tonumber(ARGV[a + 1])
  local t = terms[i]
  local ok, res
  if t == nil then
    ok, res = false, 'no context ' .. tostring(ARGV[a + 1])
  elseif t.agg == 'unique' then
    ok, res = pcall(consume, nows[i], tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4], t,
      KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[1], KEYS[k + 4], KEYS[k + 5], KEYS[k + 6])
    k = k + 6
  else
    ok, res = pcall(consume, nows[i], tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4], t,
      KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[1], KEYS[k + 4])
    k = k + 4
  end
  if ok then out[e] = res
  elseif type(res) == 'table' and res.err then out[e] = res
  else out[e] = redis.error_reply(tostring(res)) end
  a = a + 4
end
if #fields > 0 then redis.call('XADD', KEYS[1], '*', unpack(fields)) end
return out
`;

/**
 * KEYS: counter, credit, holds, reservation state.
 * ARGV: now, limit, mode, amount, expires-at ms, holds member, counter ttl ms, state ttl ms,
 * resets ms, period start ms, grants...
 */
export const HOLD = `${COMMON}
local now, limit, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local c = redis.call('HMGET', KEYS[1], 'u', 'h')
local used = num(c[1])
local held = expire_holds(KEYS[1], KEYS[3], num(c[2]), now)
local ids, amounts, gused = load_grants(KEYS[2], 11)
local avail = available(amounts, gused)
if limit and ARGV[3] == 'deny' then
  if amount > remaining(used, held, limit, avail) then return answer(0, used, held, limit, avail, ARGV[9], ARGV[10], 0, 0) end
end
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
redis.call('HSET', KEYS[1], 'h', s(held + amount))
redis.call('SET', KEYS[4], 'h', 'PX', ARGV[8])
if ARGV[7] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
end
return answer(1, used, held + amount, limit, avail, ARGV[9], ARGV[10], 0, 0)
`;

/**
 * KEYS: counter, credit, idempotency, stream, holds, reservation state.
 * ARGV: now, holds member, held amount, commit amount, limit, mode, counter ttl ms, idempotency
 * ttl ms, thresholds csv, stream head, resets ms, period start ms, state ttl ms, grants...
 * Returns 'a|<answer>' (committed now), 'c|<answer>' (committed before), 's|<state>' (not held).
 */
export const COMMIT = `${COMMON}
local prior = redis.call('GET', KEYS[3])
if prior then return 'c|' .. prior end
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[5])
local score = redis.call('ZSCORE', KEYS[5], ARGV[2])
if not score then return 's|' .. (redis.call('GET', KEYS[6]) or 'x') end
redis.call('ZREM', KEYS[5], ARGV[2])
local c = redis.call('HMGET', KEYS[1], 'u', 'h')
local used = num(c[1])
local held = math.max(0, num(c[2]) - tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], 'h', s(held))
if tonumber(score) <= now then
  redis.call('SET', KEYS[6], 'x', 'PX', ARGV[13])
  return 's|x'
end
held = expire_holds(KEYS[1], KEYS[5], held, now)
local ids, amounts, gused = load_grants(KEYS[2], 14)
local add = tonumber(ARGV[4])
local _, credit, over, draws = plan(used, held, limit, ARGV[6] == 'deny', add, ids, amounts, gused, true)
apply(KEYS[1], KEYS[2], add, over, credit, draws, ARGV[7])
local after = used + add
local ans = answer(1, after, held, limit, available(amounts, gused), ARGV[11], ARGV[12], over, credit)
redis.call('SET', KEYS[6], 'c', 'PX', ARGV[13])
redis.call('SET', KEYS[3], ans, 'PX', ARGV[8])
redis.call('XADD', KEYS[4], '*', 'e', ARGV[10] .. '\\n' .. ans .. '\\n' .. s(add) .. '\\n' .. s(over) .. '\\n' ..
  table.concat(draws, ',') .. '\\n' .. crossed(used, after, limit, ARGV[9]) .. '\\n' .. s(after))
return 'a|' .. ans
`;

/**
 * KEYS: counter, holds, reservation state. ARGV: now, holds member, amount, state ttl ms.
 * Returns 'r' or 'x' when this call released the hold, else 's|<state>' ('c', 'r' or 'x').
 */
export const RELEASE = `${COMMON}
local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not score then return 's|' .. (redis.call('GET', KEYS[3]) or 'x') end
redis.call('ZREM', KEYS[2], ARGV[2])
local held = math.max(0, num(redis.call('HGET', KEYS[1], 'h')) - tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], 'h', s(held))
local state = 'r'
if tonumber(score) <= tonumber(ARGV[1]) then state = 'x' end
redis.call('SET', KEYS[3], state, 'PX', ARGV[4])
return state
`;

/**
 * KEYS: (counter, credit, holds) per feature (then the epoch key when guarded). ARGV: now.
 * Returns per feature: {used, live held, credit drawn this period, {grant, used, ...}}.
 */
export const READ = `${COMMON}
local now, out = tonumber(ARGV[1]), {}
for i = 1, #KEYS - GUARD, 3 do
  local c = redis.call('HMGET', KEYS[i], 'u', 'h', 'cr')
  local held = num(c[2])
  if held > 0 then
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i + 2], '-inf', now)) do
      held = held - tonumber(string.match(m, '|([^|]+)$'))
    end
    if held < 0 then held = 0 end
  end
  out[#out + 1] = { s(num(c[1])), s(held), s(num(c[3])), redis.call('HGETALL', KEYS[i + 1]) }
end
return out
`;
