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
