-- COMPLETE plus the results, fenced by the same lease check: ARGV[3] policy, ARGV[4]
-- msgpack flat array of id, token, status, result length (0 = none), result TTL in ms
-- ('' = none), result expires_at; ARGV[5] the results concatenated. Result waiters get
-- one 'R:' notification listing the ids (unit-separated) instead of one per task.
-- ARGV[6] (optional) the result spec of the dependents a failure cancels ('' or absent
-- = none; see _ended.lua).
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
if #cancelled > 0 and ARGV[6] and ARGV[6] ~= '' then store_ended(ARGV[6], {}, cancelled) end
flush()
publish()
if #stored > 0 then redis.call('PUBLISH', P .. 'chan', 'R:' .. table.concat(stored, '\31')) end
return {done, stale, released, cancelled}
