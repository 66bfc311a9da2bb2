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
