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
