-- ARGV[3..] ids: dead letters (status error) back to pending, attempt 0, due now. A task
-- whose idempotency key a live task now holds stays put.
local out = {}
for j = 3, #ARGV do
  local id = ARGV[j]
  local t = tk(id)
  local h = redis.call('HMGET', t, 's', 'q', 'p', 'k', 'exp')
  local holder = h[4] and h[4] ~= '' and redis.call('HGET', P .. 'keys', h[4])
  local free = not holder or holder == id
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
