"""Lua scripts of the Redis backend: every multi-key state change is one script.

Key layout under the prefix P (all scripts get P as ARGV[1] and now as ARGV[2]):
``t:<id>`` task hash (d envelope, q queue, p priority, s status, a attempt, g lease
generation, tok token, le lease end, w worker, eta, exp, k key, nd open dependencies,
fin finished at); ``r:<q>`` ready zset (score -priority, ties by id); ``d:<q>`` delayed
zset (score eta); ``l:<q>`` lease zset (score lease end; also the index of running
tasks of the queue); ``exp`` zset (score expires_at of
pending tasks); ``fin`` zset (score finished at); ``dn:<id>`` set of dependents waiting
on id; ``ndep`` count of dependency edges still registered in ``dn:*`` sets (0 lets
complete skip dependency resolution); ``keys`` hash idempotency key -> live task id;
``i:<q>:<status|all>`` per-queue index zsets (score 0, so ordered by id; none for
``running``, whose index is ``l:<q>``); ``queues``
set (queues enqueued to or waited on); ``iw:<q>`` zset of workers waiting idle on the
queue (score: registration end; member "worker<US>lease<US>channel<US>queue<US>...",
the same string on each of the worker's queues; handover, see ENQUEUE); ``pu`` marks a
task hash whose lease came from a handover; ``chan`` pub/sub channel carrying
``w:<queue>`` (work) and ``r:<id>`` / ``R:<id><US><id>...`` (results) notifications;
each backend's own channel (``chan:<backend id>``, named in its workers' registrations)
carries ``P:<worker><US><token><US><lease end><US><envelope>`` (a task handed over to
one of its workers; US = 0x1f).

Hot-path cost: sorted-set writes are buffered per key (net effect per member) and
flushed as one multi-member ZADD/ZREM per key at the end of the script (or before the
script reads a sorted set it wrote), so a batch of 100 costs a handful of zset calls
instead of ~10 per task. Batches arrive as one msgpack argument (``cmsgpack``) and
claimed envelopes leave as one msgpack array, decoded by the client in one pass.
"""

from __future__ import annotations

COMMON = r"""
local P = ARGV[1]
local NOW = tonumber(ARGV[2])
local NOWS = ARGV[2]
local notify = {}
local function tk(id) return P .. 't:' .. id end
-- Buffered sorted-set writes: zbuf[key] = {order = {members}, val = {member -> score|false}}.
local zbuf = {}
local function zset(key, id, score)
  local b = zbuf[key]
  if not b then b = {order = {}, val = {}}; zbuf[key] = b end
  if b.val[id] == nil then b.order[#b.order + 1] = id end
  b.val[id] = score
end
local function zadd(key, score, id) zset(key, id, score) end
local function zrem(key, id) zset(key, id, false) end
local CHUNK = 2000
local function flush()
  for key, b in pairs(zbuf) do
    local adds, rems = {}, {}
    for _, id in ipairs(b.order) do
      local s = b.val[id]
      if s then
        adds[#adds + 1] = s
        adds[#adds + 1] = id
      else
        rems[#rems + 1] = id
      end
    end
    for i = 1, #rems, CHUNK do
      redis.call('ZREM', key, unpack(rems, i, math.min(i + CHUNK - 1, #rems)))
    end
    for i = 1, #adds, 2 * CHUNK do
      redis.call('ZADD', key, unpack(adds, i, math.min(i + 2 * CHUNK - 1, #adds)))
    end
  end
  zbuf = {}
end
local function idx(q, s, id, add)
  if s == 'running' then return end
  if add then zadd(P .. 'i:' .. q .. ':' .. s, 0, id) else zrem(P .. 'i:' .. q .. ':' .. s, id) end
end
local function move(id, q, old, new)
  if old then idx(q, old, id, false) end
  idx(q, new, id, true)
end
local function make_ready(id, q, p, eta)
  if eta and eta ~= '' and tonumber(eta) > NOW then
    zadd(P .. 'd:' .. q, tonumber(eta), id)
  else
    zadd(P .. 'r:' .. q, -tonumber(p), id)
    notify[q] = true
  end
end
local function unkey(id, k)
  if k and k ~= '' and redis.call('HGET', P .. 'keys', k) == id then
    redis.call('HDEL', P .. 'keys', k)
  end
end
-- End a task in a terminal status. A running task is in no ready/delayed set (claim
-- took it out), so ``running`` skips those removals.
local function finish(id, q, old, new, k, exp)
  move(id, q, old, new)
  redis.call('HSET', tk(id), 's', new, 'fin', NOWS, 'tok', '')
  zadd(P .. 'fin', NOW, id)
  if old ~= 'running' then
    zrem(P .. 'r:' .. q, id)
    zrem(P .. 'd:' .. q, id)
  end
  if old == 'running' then zrem(P .. 'l:' .. q, id) end
  if exp ~= '' then zrem(P .. 'exp', id) end
  unkey(id, k)
end
local function finish_any(id, q, old, new)
  local h = redis.call('HMGET', tk(id), 'k', 'exp')
  finish(id, q, old, new, h[1] or '', h[2] or '')
end
-- Resolve the dependents of finished tasks. roots: list of {id, failed}.
local function resolve(roots, policy, released, cancelled)
  if tonumber(redis.call('GET', P .. 'ndep') or '0') <= 0 then return end
  local stack = roots
  local gone = 0
  while #stack > 0 do
    local item = table.remove(stack)
    local dkey = P .. 'dn:' .. item[1]
    local deps = redis.call('SMEMBERS', dkey)
    if #deps > 0 then
      redis.call('DEL', dkey)
      gone = gone + #deps
      table.sort(deps)
    end
    for _, dt in ipairs(deps) do
      local h = redis.call('HMGET', tk(dt), 's', 'q', 'p', 'eta', 'a', 'd')
      if h[1] == 'pending' then
        if item[2] and policy == 'cancel' then
          finish_any(dt, h[2], 'pending', 'cancelled')
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
  if gone > 0 then redis.call('DECRBY', P .. 'ndep', gone) end
end
local function publish()
  for q, _ in pairs(notify) do redis.call('PUBLISH', P .. 'chan', 'w:' .. q) end
end
-- Lapsed leases of the queues back to pending.
local function reclaim(out, queues)
  for _, q in ipairs(queues) do
    local lk = P .. 'l:' .. q
    local ids = redis.call('ZRANGEBYSCORE', lk, '-inf', '(' .. NOWS, 'LIMIT', 0, 1000)
    for _, id in ipairs(ids) do
      zrem(lk, id)
      local h = redis.call('HMGET', tk(id), 's', 'p')
      if h[1] == 'running' then
        move(id, q, 'running', 'pending')
        redis.call('HSET', tk(id), 's', 'pending', 'tok', '')
        make_ready(id, q, h[2], nil)
        if out then table.insert(out, id) end
      end
    end
  end
end
"""

ENQUEUE = (
    COMMON
    + r"""
-- ARGV[3] policy; ARGV[4] msgpack array of {id, q, p, eta, exp, key, {deps}, envelope
-- length}; ARGV[5] the envelopes concatenated (cmsgpack has no bin type)
-- Handover: a task ready now, in a queue with nothing else ready, goes straight to a
-- worker waiting idle on it (``iw:<q>`` zset, score = registration end, member = worker,
-- lease, its backend's channel and its queues): leased to it for at most HANDOVER
-- seconds (it renews on receipt) and published on that channel as 'P:' worker, token,
-- lease end, envelope (unit-separated). The worker is unregistered from all its queues:
-- one handover per registration.
local HANDOVER = 5
-- The idle worker a task ready now goes to, unregistered from all its queues: returns
-- worker, lease end, channel; nil when the task is not ready now, the queue has ready
-- tasks (they go first) or nobody waits.
local function take_idle(q, eta)
  if eta and eta ~= '' and tonumber(eta) > NOW then return nil end
  local rb = zbuf[P .. 'r:' .. q]
  if rb and #rb.order > 0 then return nil end
  if redis.call('EXISTS', P .. 'r:' .. q) == 1 then return nil end
  -- The latest registration (the worker that went idle last, warmest): when even it
  -- has lapsed, all have, and nobody waits.
  local w = redis.call('ZPOPMAX', P .. 'iw:' .. q)
  if #w == 0 then return nil end
  local member = w[1]
  local parts = {}
  for part in string.gmatch(member, '[^\31]+') do parts[#parts + 1] = part end
  for i = 4, #parts do
    if parts[i] ~= q then redis.call('ZREM', P .. 'iw:' .. parts[i], member) end
  end
  local lease = tonumber(parts[2])
  if tonumber(w[2]) < NOW then return nil end
  if #parts < 4 or not lease then return nil end  -- not a registration we wrote
  return parts[1], NOW + math.min(HANDOVER, lease), parts[3]
end
local policy = ARGV[3]
local rows = cmsgpack.unpack(ARGV[4])
local E = ARGV[5]
local pos = 1
local out = {}
local queues = {}
local edges = 0
for _, row in ipairs(rows) do
  local id, q, p, eta, exp, key, deps = row[1], row[2], row[3], row[4], row[5], row[6], row[7]
  local env = string.sub(E, pos, pos + row[8] - 1)
  pos = pos + row[8]
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
    local open = {}
    local seen = {}
    for _, d in ipairs(deps) do
      if not seen[d] then  -- a dependency listed twice is one edge
        seen[d] = true
        local s = redis.call('HGET', tk(d), 's')
        if s == 'success' then
        elseif s == 'error' or s == 'cancelled' or s == 'expired' then
          failed = true
        else
          waiting = waiting + 1
          open[#open + 1] = d
        end
      end
    end
    local t = tk(id)
    local cancel = failed and policy == 'cancel'
    local ndv = 0
    if not cancel then ndv = waiting end
    idx(q, 'all', id, true)
    if key ~= '' then redis.call('HSET', P .. 'keys', key, id) end
    local status = 'pending'
    local worker, lend, chan = nil, nil, nil
    if not cancel and waiting == 0 then worker, lend, chan = take_idle(q, eta) end
    if worker then
      -- Handed over: stored already leased to the idle worker (one write, no pass
      -- through the pending index) and published to it with the envelope.
      local tok = id .. ':1'
      redis.call('HSET', t, 'd', env, 'q', q, 'p', p, 'a', 1, 'g', 1, 'eta', eta,
        'exp', exp, 'k', key, 's', 'running', 'nd', 0, 'tok', tok, 'le', lend,
        'w', worker, 'pu', 1)
      if exp ~= '' then zadd(P .. 'exp', tonumber(exp), id) end
      zadd(P .. 'l:' .. q, lend, id)
      redis.call('PUBLISH', chan,
        'P:' .. worker .. '\31' .. tok .. '\31' .. string.format('%.6f', lend) .. '\31' .. env)
    else
      queues[q] = true
      redis.call('HSET', t, 'd', env, 'q', q, 'p', p, 'a', 0, 'g', 0, 'eta', eta, 'exp', exp,
        'k', key, 's', 'pending', 'nd', ndv)
      move(id, q, nil, 'pending')
      if cancel then
        status = 'cancelled'
        finish(id, q, 'pending', 'cancelled', key, '')
      else
        if exp ~= '' then zadd(P .. 'exp', tonumber(exp), id) end
        if waiting > 0 then
          for _, d in ipairs(open) do
            edges = edges + redis.call('SADD', P .. 'dn:' .. d, id)
          end
        else
          make_ready(id, q, p, eta)
        end
      end
    end
    table.insert(out, {id, status})
  end
end
for q, _ in pairs(queues) do redis.call('SADD', P .. 'queues', q) end
if edges > 0 then redis.call('INCRBY', P .. 'ndep', edges) end
flush()
publish()
return out
"""
)

CLAIM = (
    COMMON
    + r"""
-- ARGV[3] worker, ARGV[4] lease end, ARGV[5] limit, ARGV[6..] queues
local worker, lend, limit = ARGV[3], ARGV[4], tonumber(ARGV[5])
local lendn = tonumber(lend)
local queues = {}
for j = 6, #ARGV do queues[#queues + 1] = ARGV[j] end
reclaim(nil, queues)
for _, q in ipairs(queues) do
  local due = redis.call('ZRANGEBYSCORE', P .. 'd:' .. q, '-inf', NOWS, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    zrem(P .. 'd:' .. q, id)
    zadd(P .. 'r:' .. q, -tonumber(redis.call('HGET', tk(id), 'p')), id)
  end
end
flush()
local envs, meta = {}, {}
local taken = 0
while taken < limit do
  local picked = {}
  if #queues == 1 then
    local q = queues[1]
    local r = redis.call('ZPOPMIN', P .. 'r:' .. q, limit - taken)
    for j = 1, #r, 2 do picked[#picked + 1] = {r[j], q} end
  else
    local cands = {}
    for _, q in ipairs(queues) do
      local r = redis.call('ZRANGE', P .. 'r:' .. q, 0, limit - taken - 1, 'WITHSCORES')
      for j = 1, #r, 2 do cands[#cands + 1] = {tonumber(r[j+1]), r[j], q} end
    end
    table.sort(cands, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      return a[2] < b[2]
    end)
    local rem = {}
    for j = 1, math.min(#cands, limit - taken) do
      local c = cands[j]
      picked[#picked + 1] = {c[2], c[3]}
      rem[c[3]] = rem[c[3]] or {}
      table.insert(rem[c[3]], c[2])
    end
    for q, ids in pairs(rem) do redis.call('ZREM', P .. 'r:' .. q, unpack(ids)) end
  end
  if #picked == 0 then break end
  for _, pq in ipairs(picked) do
    local id, q = pq[1], pq[2]
    local t = tk(id)
    local h = redis.call('HMGET', t, 's', 'exp', 'd', 'eta', 'a', 'g')
    if h[1] == 'pending' and not (h[2] and h[2] ~= '' and tonumber(h[2]) <= NOW) then
      local a = tonumber(h[5]) + 1
      local g = tonumber(h[6]) + 1
      local tok = id .. ':' .. g
      redis.call('HSET', t, 's', 'running', 'a', a, 'g', g, 'tok', tok, 'le', lend, 'w', worker)
      move(id, q, 'pending', 'running')
      zadd(P .. 'l:' .. q, lendn, id)
      envs[#envs + 1] = h[3]
      meta[#meta + 1] = tok
      meta[#meta + 1] = a
      meta[#meta + 1] = h[4]
      taken = taken + 1
    end
  end
end
flush()
-- The envelopes behind one msgpack array header: the client decodes them in one pass.
local n = #envs
local hdr
if n < 16 then
  hdr = string.char(0x90 + n)
elseif n < 65536 then
  hdr = string.char(0xdc, math.floor(n / 256), n % 256)
else
  hdr = string.char(0xdd, math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end
return {hdr .. table.concat(envs), meta}
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
  local h = redis.call('HMGET', tk(id), 's', 'tok', 'q')
  if h[1] == 'running' and h[2] == tok then
    redis.call('HSET', tk(id), 'le', lend)
    zadd(P .. 'l:' .. h[3], tonumber(lend), id)
  else
    lost[#lost + 1] = id
  end
end
flush()
return lost
"""
)

COMPLETE = (
    COMMON
    + r"""
-- ARGV[3] policy, ARGV[4] msgpack array of id, token, status triples (flat)
local policy = ARGV[3]
local items = cmsgpack.unpack(ARGV[4])
local done, stale, roots, released, cancelled = {}, {}, {}, {}, {}
for j = 1, #items, 3 do
  local id, tok, st = items[j], items[j+1], items[j+2]
  local h = redis.call('HMGET', tk(id), 's', 'tok', 'q', 'k', 'exp')
  if h[1] == 'running' and h[2] == tok then
    finish(id, h[3], 'running', st, h[4], h[5])
    done[#done + 1] = id
    roots[#roots + 1] = {id, st ~= 'success'}
  else
    stale[#stale + 1] = id
  end
end
resolve(roots, policy, released, cancelled)
flush()
publish()
return {done, stale, released, cancelled}
"""
)

FINISH = (
    COMMON
    + r"""
-- COMPLETE plus the results, fenced by the same lease check: ARGV[3] policy, ARGV[4]
-- msgpack flat array of id, token, status, result length (0 = none), result TTL in ms
-- ('' = none), result expires_at; ARGV[5] the results concatenated. Result waiters get
-- one 'R:' notification listing the ids (unit-separated) instead of one per task.
local policy = ARGV[3]
local items = cmsgpack.unpack(ARGV[4])
local R = ARGV[5]
local pos = 1
local done, stale, roots, released, cancelled, stored = {}, {}, {}, {}, {}, {}
for j = 1, #items, 6 do
  local id, tok, st, n, px = items[j], items[j+1], items[j+2], items[j+3], items[j+4]
  local h = redis.call('HMGET', tk(id), 's', 'tok', 'q', 'k', 'exp')
  if h[1] == 'running' and h[2] == tok then
    if n > 0 then
      local key = P .. 'res:' .. id
      local blob = string.sub(R, pos, pos + n - 1)
      if px ~= '' then
        redis.call('SET', key, blob, 'PX', px)
        zadd(P .. 'rexp', tonumber(items[j+5]), id)
      else
        redis.call('SET', key, blob)
        zrem(P .. 'rexp', id)
      end
      stored[#stored + 1] = id
    end
    finish(id, h[3], 'running', st, h[4], h[5])
    done[#done + 1] = id
    roots[#roots + 1] = {id, st ~= 'success'}
  else
    stale[#stale + 1] = id
  end
  pos = pos + n
end
resolve(roots, policy, released, cancelled)
flush()
publish()
if #stored > 0 then redis.call('PUBLISH', P .. 'chan', 'R:' .. table.concat(stored, '\31')) end
return {done, stale, released, cancelled}
"""
)

RESULTS_PUT = (
    COMMON
    + r"""
-- ARGV[3] msgpack flat array of id, result length, TTL ms ('' = none), expires_at;
-- ARGV[4] the results concatenated. One 'R:' notification for all of them.
local items = cmsgpack.unpack(ARGV[3])
local R = ARGV[4]
local pos = 1
local ids = {}
for j = 1, #items, 4 do
  local id, n, px = items[j], items[j+1], items[j+2]
  local key = P .. 'res:' .. id
  local blob = string.sub(R, pos, pos + n - 1)
  pos = pos + n
  if px ~= '' then
    redis.call('SET', key, blob, 'PX', px)
    zadd(P .. 'rexp', tonumber(items[j+3]), id)
  else
    redis.call('SET', key, blob)
    zrem(P .. 'rexp', id)
  end
  ids[#ids + 1] = id
end
flush()
if #ids > 0 then redis.call('PUBLISH', P .. 'chan', 'R:' .. table.concat(ids, '\31')) end
return #ids
"""
)

CLOSE_INBOX = (
    COMMON
    + r"""
-- ARGV[3] worker, ARGV[4] its registration member, ARGV[5..] its queues: unregister it
-- (no more handovers) and put the tasks handed over to it that it never ran back to
-- pending (attempt given back).
local worker = ARGV[3]
local back = {}
for j = 5, #ARGV do
  local q = ARGV[j]
  redis.call('ZREM', P .. 'iw:' .. q, ARGV[4])
  for _, id in ipairs(redis.call('ZRANGE', P .. 'l:' .. q, 0, -1)) do
    local t = tk(id)
    local h = redis.call('HMGET', t, 's', 'w', 'pu', 'p')
    if h[1] == 'running' and h[2] == worker and h[3] == '1' then
      zrem(P .. 'l:' .. q, id)
      redis.call('HINCRBY', t, 'a', -1)
      redis.call('HSET', t, 'tok', '', 's', 'pending')
      move(id, q, 'running', 'pending')
      make_ready(id, q, h[4], nil)
      back[#back + 1] = id
    end
  end
end
flush()
publish()
return back
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
    zrem(P .. 'l:' .. h[3], id)
    if giveback then
      redis.call('HINCRBY', t, 'a', -1)
      redis.call('HSET', t, 'tok', '', 's', 'pending')
    else
      redis.call('HSET', t, 'tok', '', 's', 'pending', 'eta', eta)
    end
    move(id, h[3], 'running', 'pending')
    make_ready(id, h[3], h[4], eta)
  else
    stale[#stale + 1] = id
  end
end
flush()
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
  local h = redis.call('HMGET', tk(id), 's', 'q', 'k', 'exp')
  if h[1] == 'pending' or h[1] == 'running' then
    finish(id, h[2], h[1], 'cancelled', h[3], h[4])
    done[#done + 1] = id
    roots[#roots + 1] = {id, true}
  end
end
resolve(roots, policy, released, cancelled)
flush()
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
  local h = redis.call('HMGET', tk(id), 's', 'q', 'k')
  if h[1] == 'pending' then
    finish(id, h[2], 'pending', 'expired', h[3], 'x')
    done[#done + 1] = id
    roots[#roots + 1] = {id, true}
  else
    zrem(P .. 'exp', id)
  end
end
resolve(roots, policy, released, cancelled)
flush()
publish()
return {done, {}, released, cancelled}
"""
)

RECLAIM = (
    COMMON
    + r"""
local out = {}
reclaim(out, redis.call('SMEMBERS', P .. 'queues'))
flush()
publish()
return out
"""
)

PURGE = (
    COMMON
    + r"""
-- ARGV[3] finished before, ARGV[4] only this status ('' = any terminal one)
local all = redis.call('ZRANGEBYSCORE', P .. 'fin', '-inf', '(' .. ARGV[3])
local ids = {}
for _, id in ipairs(all) do
  if ARGV[4] == '' or redis.call('HGET', tk(id), 's') == ARGV[4] then ids[#ids + 1] = id end
end
local gone = 0
for _, id in ipairs(ids) do
  local h = redis.call('HMGET', tk(id), 's', 'q')
  if h[1] then
    idx(h[2], h[1], id, false)
    idx(h[2], 'all', id, false)
  end
  local dkey = P .. 'dn:' .. id
  gone = gone + redis.call('SCARD', dkey)
  redis.call('DEL', tk(id), dkey)
  zrem(P .. 'fin', id)
end
if gone > 0 then redis.call('DECRBY', P .. 'ndep', gone) end
flush()
return #ids
"""
)

REQUEUE = (
    COMMON
    + r"""
-- ARGV[3..] ids: dead letters (status error) back to pending, attempt 0, due now. A task
-- whose idempotency key a live task now holds stays put.
local out = {}
for j = 3, #ARGV do
  local id = ARGV[j]
  local t = tk(id)
  local h = redis.call('HMGET', t, 's', 'q', 'p', 'k', 'exp')
  local free = not h[4] or h[4] == '' or not redis.call('HGET', P .. 'keys', h[4])
  if h[1] == 'error' and free then
    redis.call('HSET', t, 's', 'pending', 'a', 0, 'tok', '', 'eta', '')
    redis.call('HDEL', t, 'fin', 'le', 'w')
    if h[5] and h[5] ~= '' then zadd(P .. 'exp', tonumber(h[5]), id) end
    if h[4] and h[4] ~= '' then redis.call('HSET', P .. 'keys', h[4], id) end
    zrem(P .. 'fin', id)
    move(id, h[2], 'error', 'pending')
    make_ready(id, h[2], h[3], '')
    out[#out + 1] = id
  end
end
flush()
publish()
return out
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
