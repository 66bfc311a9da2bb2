"""Lua scripts of the Redis backend: every multi-key state change is one script.

Key layout under the prefix P (all scripts get P as ARGV[1] and now as ARGV[2]):
``t:<id>`` task hash (d envelope, q queue, p priority, s status, a attempt, g lease
generation, tok token, le lease end, w worker, eta, exp, k key, nd open dependencies,
fin finished at); ``r:<q>`` ready zset (score -priority, ties by id); ``d:<q>`` delayed
zset (score eta); ``lease`` zset (score lease end); ``exp`` zset (score expires_at of
pending tasks); ``fin`` zset (score finished at); ``dn:<id>`` set of dependents waiting
on id; ``keys`` hash idempotency key -> live task id; ``i:<q|*>:<status|all>`` index
zsets (score 0, so ordered by id); ``queues`` set; ``chan`` pub/sub channel carrying
``w:<queue>`` (work) and ``r:<id>`` (result) notifications.
"""

from __future__ import annotations

COMMON = r"""
local P = ARGV[1]
local NOW = tonumber(ARGV[2])
local NOWS = ARGV[2]
local notify = {}
local function tk(id) return P .. 't:' .. id end
local function idx(q, s, id, add)
  if add then
    redis.call('ZADD', P .. 'i:' .. q .. ':' .. s, 0, id)
    redis.call('ZADD', P .. 'i:*:' .. s, 0, id)
  else
    redis.call('ZREM', P .. 'i:' .. q .. ':' .. s, id)
    redis.call('ZREM', P .. 'i:*:' .. s, id)
  end
end
local function setstatus(id, q, old, new)
  if old then idx(q, old, id, false) end
  idx(q, new, id, true)
  redis.call('HSET', tk(id), 's', new)
end
local function make_ready(id, q, p, eta)
  if eta and eta ~= '' and tonumber(eta) > NOW then
    redis.call('ZADD', P .. 'd:' .. q, tonumber(eta), id)
  else
    redis.call('ZADD', P .. 'r:' .. q, -tonumber(p), id)
    notify[q] = true
  end
end
local function finish(id, q, old, new)
  setstatus(id, q, old, new)
  local t = tk(id)
  redis.call('HSET', t, 'fin', NOWS, 'tok', '')
  redis.call('ZADD', P .. 'fin', NOWS, id)
  redis.call('ZREM', P .. 'r:' .. q, id)
  redis.call('ZREM', P .. 'd:' .. q, id)
  redis.call('ZREM', P .. 'lease', id)
  redis.call('ZREM', P .. 'exp', id)
  local k = redis.call('HGET', t, 'k')
  if k and k ~= '' and redis.call('HGET', P .. 'keys', k) == id then
    redis.call('HDEL', P .. 'keys', k)
  end
end
-- Resolve the dependents of finished tasks. roots: list of {id, failed}.
local function resolve(roots, policy, released, cancelled)
  local stack = roots
  while #stack > 0 do
    local item = table.remove(stack)
    local dkey = P .. 'dn:' .. item[1]
    local deps = redis.call('SMEMBERS', dkey)
    redis.call('DEL', dkey)
    table.sort(deps)
    for _, dt in ipairs(deps) do
      local h = redis.call('HMGET', tk(dt), 's', 'q', 'p', 'eta', 'a', 'd')
      if h[1] == 'pending' then
        if item[2] and policy == 'cancel' then
          finish(dt, h[2], 'pending', 'cancelled')
          table.insert(cancelled, {dt, h[5], h[6]})
          table.insert(stack, {dt, true})
        else
          local nd = redis.call('HINCRBY', tk(dt), 'nd', -1)
          if nd <= 0 then
            make_ready(dt, h[2], h[3], h[4])
            table.insert(released, dt)
          end
        end
      end
    end
  end
end
local function publish()
  for q, _ in pairs(notify) do redis.call('PUBLISH', P .. 'chan', 'w:' .. q) end
end
local function reclaim(out)
  local ids = redis.call('ZRANGEBYSCORE', P .. 'lease', '-inf', '(' .. NOWS, 'LIMIT', 0, 1000)
  for _, id in ipairs(ids) do
    redis.call('ZREM', P .. 'lease', id)
    local h = redis.call('HMGET', tk(id), 's', 'q', 'p')
    if h[1] == 'running' then
      setstatus(id, h[2], 'running', 'pending')
      redis.call('HSET', tk(id), 'tok', '')
      make_ready(id, h[2], h[3], nil)
      if out then table.insert(out, id) end
    end
  end
end
"""

ENQUEUE = (
    COMMON
    + r"""
-- ARGV[3] policy, ARGV[4] n, then per task: id q p eta exp key ndeps deps... envelope
local policy = ARGV[3]
local n = tonumber(ARGV[4])
local i = 5
local out = {}
for _ = 1, n do
  local id, q, p, eta, exp, key = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5]
  local nd = tonumber(ARGV[i+6])
  local deps = {}
  for j = 1, nd do deps[j] = ARGV[i+6+j] end
  local env = ARGV[i+7+nd]
  i = i + 8 + nd
  local existing = nil
  if redis.call('EXISTS', tk(id)) == 1 then
    existing = id
  elseif key ~= '' then
    local other = redis.call('HGET', P .. 'keys', key)
    if other then
      local s = redis.call('HGET', tk(other), 's')
      if s == 'pending' or s == 'running' then existing = other end
    end
  end
  if existing then
    local h = redis.call('HMGET', tk(existing), 's', 'a', 'd', 'eta')
    table.insert(out, {existing, h[1], h[2], h[3], h[4]})
  else
    local waiting, failed = 0, false
    for _, d in ipairs(deps) do
      local s = redis.call('HGET', tk(d), 's')
      if s == 'success' then
      elseif s == 'error' or s == 'cancelled' or s == 'expired' then
        failed = true
      else
        waiting = waiting + 1
      end
    end
    local t = tk(id)
    redis.call('HSET', t, 'd', env, 'q', q, 'p', p, 'a', 0, 'g', 0, 'eta', eta, 'exp', exp,
      'k', key)
    redis.call('SADD', P .. 'queues', q)
    idx(q, 'all', id, true)
    if key ~= '' then redis.call('HSET', P .. 'keys', key, id) end
    local status = 'pending'
    if failed and policy == 'cancel' then
      status = 'cancelled'
      setstatus(id, q, nil, 'pending')
      finish(id, q, 'pending', 'cancelled')
    else
      setstatus(id, q, nil, 'pending')
      if exp ~= '' then redis.call('ZADD', P .. 'exp', tonumber(exp), id) end
      if waiting > 0 then
        redis.call('HSET', t, 'nd', waiting)
        for _, d in ipairs(deps) do
          local s = redis.call('HGET', tk(d), 's')
          if s ~= 'success' and s ~= 'error' and s ~= 'cancelled' and s ~= 'expired' then
            redis.call('SADD', P .. 'dn:' .. d, id)
          end
        end
      else
        redis.call('HSET', t, 'nd', 0)
        make_ready(id, q, p, eta)
      end
    end
    table.insert(out, {id, status})
  end
end
publish()
return out
"""
)

CLAIM = (
    COMMON
    + r"""
-- ARGV[3] worker, ARGV[4] lease end, ARGV[5] limit, ARGV[6..] queues
local worker, lend, limit = ARGV[3], ARGV[4], tonumber(ARGV[5])
local queues = {}
for j = 6, #ARGV do queues[#queues + 1] = ARGV[j] end
reclaim(nil)
for _, q in ipairs(queues) do
  local due = redis.call('ZRANGEBYSCORE', P .. 'd:' .. q, '-inf', NOWS, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    redis.call('ZREM', P .. 'd:' .. q, id)
    redis.call('ZADD', P .. 'r:' .. q, -tonumber(redis.call('HGET', tk(id), 'p')), id)
  end
end
local out = {}
local taken = 0
while taken < limit do
  local cands = {}
  for _, q in ipairs(queues) do
    local r = redis.call('ZRANGE', P .. 'r:' .. q, 0, limit - taken - 1, 'WITHSCORES')
    for j = 1, #r, 2 do cands[#cands + 1] = {tonumber(r[j+1]), r[j], q} end
  end
  if #cands == 0 then break end
  if #queues > 1 then
    table.sort(cands, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      return a[2] < b[2]
    end)
  end
  for j = 1, math.min(#cands, limit - taken) do
    local id, q = cands[j][2], cands[j][3]
    redis.call('ZREM', P .. 'r:' .. q, id)
    local t = tk(id)
    local h = redis.call('HMGET', t, 's', 'exp', 'd', 'eta')
    if h[1] == 'pending' and not (h[2] and h[2] ~= '' and tonumber(h[2]) <= NOW) then
      local a = redis.call('HINCRBY', t, 'a', 1)
      local g = redis.call('HINCRBY', t, 'g', 1)
      local tok = id .. ':' .. g
      redis.call('HSET', t, 'tok', tok, 'le', lend, 'w', worker)
      setstatus(id, q, 'pending', 'running')
      redis.call('ZADD', P .. 'lease', tonumber(lend), id)
      out[#out + 1] = {tok, a, h[3], h[4]}
      taken = taken + 1
    end
  end
end
return out
"""
)

RENEW = (
    COMMON
    + r"""
-- ARGV[3] lease end, then id tok pairs; returns lost ids
local lend = ARGV[3]
local lost = {}
for j = 4, #ARGV, 2 do
  local id, tok = ARGV[j], ARGV[j+1]
  local h = redis.call('HMGET', tk(id), 's', 'tok')
  if h[1] == 'running' and h[2] == tok then
    redis.call('HSET', tk(id), 'le', lend)
    redis.call('ZADD', P .. 'lease', tonumber(lend), id)
  else
    lost[#lost + 1] = id
  end
end
return lost
"""
)

COMPLETE = (
    COMMON
    + r"""
-- ARGV[3] policy, then id tok status triples
local policy = ARGV[3]
local done, stale, roots, released, cancelled = {}, {}, {}, {}, {}
for j = 4, #ARGV, 3 do
  local id, tok, st = ARGV[j], ARGV[j+1], ARGV[j+2]
  local h = redis.call('HMGET', tk(id), 's', 'tok', 'q')
  if h[1] == 'running' and h[2] == tok then
    finish(id, h[3], 'running', st)
    done[#done + 1] = id
    roots[#roots + 1] = {id, st ~= 'success'}
  else
    stale[#stale + 1] = id
  end
end
resolve(roots, policy, released, cancelled)
publish()
return {done, stale, released, cancelled}
"""
)

RETRY = (
    COMMON
    + r"""
-- ARGV[3] '1' to give the attempt back (release), then id tok eta triples
local giveback = ARGV[3] == '1'
local stale = {}
for j = 4, #ARGV, 3 do
  local id, tok, eta = ARGV[j], ARGV[j+1], ARGV[j+2]
  local t = tk(id)
  local h = redis.call('HMGET', t, 's', 'tok', 'q', 'p')
  if h[1] == 'running' and h[2] == tok then
    redis.call('ZREM', P .. 'lease', id)
    redis.call('HSET', t, 'tok', '')
    if giveback then redis.call('HINCRBY', t, 'a', -1) else redis.call('HSET', t, 'eta', eta) end
    setstatus(id, h[3], 'running', 'pending')
    make_ready(id, h[3], h[4], eta)
  else
    stale[#stale + 1] = id
  end
end
publish()
return stale
"""
)

CANCEL = (
    COMMON
    + r"""
-- ARGV[3] policy, then ids
local policy = ARGV[3]
local done, roots, released, cancelled = {}, {}, {}, {}
for j = 4, #ARGV do
  local id = ARGV[j]
  local h = redis.call('HMGET', tk(id), 's', 'q')
  if h[1] == 'pending' or h[1] == 'running' then
    finish(id, h[2], h[1], 'cancelled')
    done[#done + 1] = id
    roots[#roots + 1] = {id, true}
  end
end
resolve(roots, policy, released, cancelled)
publish()
return {done, {}, released, cancelled}
"""
)

EXPIRE = (
    COMMON
    + r"""
local policy = ARGV[3]
local done, roots, released, cancelled = {}, {}, {}, {}
local ids = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', NOWS)
for _, id in ipairs(ids) do
  local h = redis.call('HMGET', tk(id), 's', 'q')
  if h[1] == 'pending' then
    finish(id, h[2], 'pending', 'expired')
    done[#done + 1] = id
    roots[#roots + 1] = {id, true}
  else
    redis.call('ZREM', P .. 'exp', id)
  end
end
resolve(roots, policy, released, cancelled)
publish()
return {done, {}, released, cancelled}
"""
)

RECLAIM = (
    COMMON
    + r"""
local out = {}
reclaim(out)
publish()
return out
"""
)

PURGE = (
    COMMON
    + r"""
-- ARGV[3] finished before
local ids = redis.call('ZRANGEBYSCORE', P .. 'fin', '-inf', '(' .. ARGV[3])
for _, id in ipairs(ids) do
  local h = redis.call('HMGET', tk(id), 's', 'q')
  if h[1] then
    idx(h[2], h[1], id, false)
    idx(h[2], 'all', id, false)
  end
  redis.call('DEL', tk(id), P .. 'dn:' .. id)
  redis.call('ZREM', P .. 'fin', id)
end
return #ids
"""
)

RESULT_PURGE = (
    COMMON
    + r"""
local ids = redis.call('ZRANGEBYSCORE', P .. 'rexp', '-inf', NOWS)
for _, id in ipairs(ids) do
  redis.call('DEL', P .. 'res:' .. id)
  redis.call('ZREM', P .. 'rexp', id)
end
return #ids
"""
)

EVENT_PURGE = (
    COMMON
    + r"""
-- ARGV[3] older than ('' = none), ARGV[4] keep last ('' = none)
local doomed = {}
if ARGV[3] ~= '' then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'ev', '-inf', '(' .. ARGV[3])) do
    doomed[id] = true
  end
end
if ARGV[4] ~= '' then
  local keep = tonumber(ARGV[4])
  local total = redis.call('ZCARD', P .. 'ev')
  if total > keep then
    for _, id in ipairs(redis.call('ZRANGE', P .. 'ev', 0, total - keep - 1)) do
      doomed[id] = true
    end
  end
end
local n = 0
for id, _ in pairs(doomed) do
  local tid = redis.call('HGET', P .. 'evt', id)
  if tid then redis.call('ZREM', P .. 'evk:' .. tid, id) end
  redis.call('HDEL', P .. 'evd', id)
  redis.call('HDEL', P .. 'evt', id)
  redis.call('ZREM', P .. 'ev', id)
  n = n + 1
end
return n
"""
)

SCHED_CAS = (
    COMMON
    + r"""
-- ARGV[3] id, ARGV[4] expected envelope, ARGV[5] new envelope, ARGV[6] due score ('' = none)
local cur = redis.call('HGET', P .. 'sch', ARGV[3])
if cur ~= ARGV[4] then return 0 end
redis.call('HSET', P .. 'sch', ARGV[3], ARGV[5])
if ARGV[6] == '' then
  redis.call('ZREM', P .. 'sdue', ARGV[3])
else
  redis.call('ZADD', P .. 'sdue', tonumber(ARGV[6]), ARGV[3])
end
return 1
"""
)
