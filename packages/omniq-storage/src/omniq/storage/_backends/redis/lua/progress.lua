-- ARGV[3] lease end, ARGV[4] record ttl (ms), then id tok progress triples; returns
-- lost ids. Fenced like renew (and renews): progress of a stale lease is not stored.
local lend = ARGV[3]
local ttl = ARGV[4]
local lost = {}
for j = 5, #ARGV, 3 do
  local id, tok = ARGV[j], ARGV[j+1]
  local h = redis.call('HMGET', tk(id), 's', 'tok', 'q')
  if h[1] == 'running' and h[2] == tok then
    redis.call('HSET', tk(id), 'le', lend)
    zadd(P .. 'l:' .. h[3], tonumber(lend), id)
    redis.call('SET', P .. 'pg:' .. id, ARGV[j+2], 'PX', ttl)
  else
    lost[#lost + 1] = id
  end
end
flush()
return lost
