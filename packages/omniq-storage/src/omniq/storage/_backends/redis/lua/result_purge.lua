local ids = redis.call('ZRANGEBYSCORE', P .. 'rexp', '-inf', NOWS)
for _, id in ipairs(ids) do
  redis.call('DEL', P .. 'res:' .. id)
  redis.call('ZREM', P .. 'rexp', id)
end
return #ids
