-- The prelude every script starts with (prepended by ``_lua.load_scripts``).
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
  -- a task inside its unique_for window ('uu') keeps its key; 'ukeys' (score: the
  -- window's end) lets unique_sweep.lua drop it once the window has ended
  if k and k ~= '' and redis.call('HGET', P .. 'keys', k) == id then
    local uu = tonumber(redis.call('HGET', tk(id), 'uu') or '0') or 0
    if uu > NOW then
      redis.call('ZADD', P .. 'ukeys', uu, k)
    else
      redis.call('HDEL', P .. 'keys', k)
    end
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
      local h = redis.call('HMGET', tk(dt), 's', 'q', 'p', 'eta', 'a', 'd', 'cw')
      if h[1] == 'pending' then
        if item[2] and policy == 'cancel' and h[7] ~= '1' then
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
      local h = redis.call('HMGET', tk(id), 's', 'p', 'sb', 'spd')
      if h[1] == 'running' then
        move(id, q, 'running', 'pending')
        redis.call('HSET', tk(id), 's', 'pending', 'tok', '')
        if h[3] then  -- a standby's lease lapsed: its attempt back, once per task
          if not h[4] then redis.call('HINCRBY', tk(id), 'a', -1) end
          redis.call('HSET', tk(id), 'spd', '1')
          redis.call('HDEL', tk(id), 'sb')
        end
        make_ready(id, q, h[2], nil)
        if out then table.insert(out, id) end
      end
    end
  end
end
