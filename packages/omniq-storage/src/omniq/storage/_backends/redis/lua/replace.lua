-- on_conflict="replace": ARGV[3] id, ARGV[4] envelope, ARGV[5] eta ('' for none). Only a
-- task still pending takes the new envelope and eta (re-indexed as ready or delayed when
-- its dependencies are met); returns 1 if replaced, else 0.
local id, env, eta = ARGV[3], ARGV[4], ARGV[5]
local t = tk(id)
local h = redis.call('HMGET', t, 's', 'q', 'p', 'nd')
if h[1] ~= 'pending' then return 0 end
redis.call('HSET', t, 'd', env, 'eta', eta)
if tonumber(h[4] or '0') == 0 then
  local q = h[2]
  if redis.call('ZREM', P .. 'r:' .. q, id) + redis.call('ZREM', P .. 'd:' .. q, id) > 0 then
    make_ready(id, q, h[3], eta)
  end
end
flush()
publish()
return 1
