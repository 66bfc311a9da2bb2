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
