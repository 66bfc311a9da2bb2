-- Delete worker registry entries past their expiry: ``wkx`` (zset, score expires_at)
-- and ``wk`` (hash, id -> entry) under P. ARGV[3]: the instant (defaults to NOW).
local at = ARGV[3] or NOWS
local ids = redis.call('ZRANGEBYSCORE', P .. 'wkx', '-inf', at)
for i = 1, #ids, CHUNK do
  local part = {unpack(ids, i, math.min(i + CHUNK - 1, #ids))}
  redis.call('ZREM', P .. 'wkx', unpack(part))
  redis.call('HDEL', P .. 'wk', unpack(part))
end
return #ids
