-- ARGV[3] id, ARGV[4] expected envelope, ARGV[5] new envelope, ARGV[6] due score ('' = none)
local cur = redis.call('HGET', P .. 'sch', ARGV[3])
if cur ~= ARGV[4] then return 0 end
redis.call('HSET', P .. 'sch', ARGV[3], ARGV[5])
if ARGV[6] == '' then
  redis.call('ZREM', P .. 'sdue', ARGV[3])
else
  redis.call('ZADD', P .. 'sdue', tonumber(ARGV[6]), ARGV[3])
end
return 1
