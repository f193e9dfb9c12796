/**
 * Helpers every metering script starts with (lua.ts): number formatting, hold expiry, credit,
 * the answer string, the consume plan (the Lua twin of consume.ts) and threshold crossings.
 */
export const COMMON = `
local function s(x)
  if x == math.floor(x) and x > -1e14 and x < 1e14 then return tostring(x) end
  return string.format('%.17g', x)
end
local function num(v) if v then return tonumber(v) end return 0 end
-- One empty table for the many lists that are empty (no grants, no credit drawn): never written.
local NONE = {}
local function expire_holds(counter, holds, held, now)
  if held <= 0 then return 0 end
  local gone = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  if #gone == 0 then return held end
  for _, m in ipairs(gone) do held = held - tonumber(string.match(m, '|([^|]+)$')) end
  redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
  if held < 0 then held = 0 end
  redis.call('HSET', counter, 'h', s(held))
  return held
end
local function load_grants(credit, first)
  local ids, amounts, used = {}, {}, {}
  for i = first, #ARGV, 2 do
    ids[#ids + 1] = ARGV[i]
    amounts[#amounts + 1] = tonumber(ARGV[i + 1])
  end
  if #ids > 0 then
    local got = redis.call('HMGET', credit, unpack(ids))
    for i = 1, #ids do used[i] = num(got[i]) end
  end
  return ids, amounts, used
end
local function available(amounts, used)
  local total = 0
  for i = 1, #amounts do total = total + math.max(0, amounts[i] - used[i]) end
  return total
end
local function held_beyond(used, held, limit)
  if not limit then return 0 end
  return math.max(0, used + held - math.max(limit, used))
end
local fmt, floor = string.format, math.floor
-- An integer that %d prints exactly (string.format is about half the cost of tostring).
local function int(x) return x == floor(x) and x > -9e15 and x < 9e15 end
-- remainingOf in src/domain/quota.ts: unused limit (holds count as used) plus credit no hold claims.
local function remaining(used, held, limit, avail)
  return math.max(0, limit - used - held) + math.max(0, avail - held_beyond(used, held, limit))
end
local function answer(accepted, used, held, limit, avail, resets, ps, over, credit)
  local u = used + held
  if limit then
    local rem = remaining(used, held, limit, avail)
    if over == 0 and credit == 0 and int(u) and int(limit) and int(rem) then
      return fmt('%d|%d|%d|%d|%s|%s|0|0', accepted, u, limit, rem, resets, ps)
    end
    return accepted .. '|' .. s(u) .. '|' .. s(limit) .. '|' .. s(rem) .. '|' .. resets .. '|' .. ps .. '|' .. s(over) .. '|' .. s(credit)
  end
  if over == 0 and credit == 0 and int(u) then return fmt('%d|%d|||%s|%s|0|0', accepted, u, resets, ps) end
  return accepted .. '|' .. s(u) .. '|||' .. resets .. '|' .. ps .. '|' .. s(over) .. '|' .. s(credit)
end
local function plan(used, held, limit, deny, add, ids, amounts, gused, reserved)
  local credit, over, draws = 0, 0, NONE
  if limit and add > 0 then
    local room = math.max(0, limit - used - held)
    local beyond = math.max(0, add - room)
    local free = math.max(0, available(amounts, gused) - held_beyond(used, held, limit))
    if beyond > free and deny and not reserved then return false, 0, 0, draws end
    credit = math.min(beyond, free)
    over = beyond - credit
    local left = credit
    for i = 1, #ids do
      if left <= 0 then break end
      local take = math.min(left, math.max(0, amounts[i] - gused[i]))
      if take > 0 then
        if draws == NONE then draws = {} end
        draws[#draws + 1] = ids[i]
        draws[#draws + 1] = s(take)
        gused[i] = gused[i] + take
      end
      left = left - take
    end
  end
  return true, credit, over, draws
end
local function apply(counter, creditKey, add, over, credit, draws, expireAt)
  redis.call('HINCRBY', counter, 'u', add)
  if over > 0 then redis.call('HINCRBYFLOAT', counter, 'o', s(over)) end
  if credit > 0 then
    redis.call('HINCRBYFLOAT', counter, 'cr', s(credit))
    for i = 1, #draws, 2 do redis.call('HINCRBYFLOAT', creditKey, draws[i], draws[i + 1]) end
  end
  if expireAt ~= '0' and expireAt ~= 0 then redis.call('PEXPIRE', counter, expireAt) end
end
-- Thresholds lists parsed once per script call (the events of a call share a few).
local percents = {}
local function crossed(before, after, limit, csv)
  if not limit or limit <= 0 or csv == '' or after <= before then return '' end
  local list = percents[csv]
  if not list then
    list = {}
    for p in string.gmatch(csv, '[^,]+') do list[#list + 1] = { p, tonumber(p) } end
    percents[csv] = list
  end
  local out = NONE
  for i = 1, #list do
    local at = limit * list[i][2] / 100
    if before < at and after >= at then
      if out == NONE then out = {} end
      out[#out + 1] = list[i][1]
    end
  end
  return table.concat(out, ',')
end
`;

/**
 * What every script starts with: `GUARD` says whether its last key is the epoch key, which must
 * exist (Redis holds the counters) for the script to run at all. When it is gone, Redis lost its
 * data and every counter would restart from zero: the script counts nothing and fails with
 * EPOCHLOST (answered 503 until the counters are rebuilt; see counter-recovery.ts).
 */
export const GUARD_OFF = `local GUARD = 0
`;
export const GUARD_ON = `local GUARD = 1
if redis.call('EXISTS', KEYS[#KEYS]) == 0 then
  return redis.error_reply('EPOCHLOST usage counters are being rebuilt from the ledger')
end
`;
