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
