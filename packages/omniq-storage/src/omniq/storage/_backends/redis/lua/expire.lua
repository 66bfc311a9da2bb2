-- ARGV[3] policy, ARGV[4] result spec ('' = no results; see _ended.lua)
local policy = ARGV[3]
local done, roots, released, cancelled = {}, {}, {}, {}
local ids = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', NOWS)
for _, id in ipairs(ids) do
  local h = redis.call('HMGET', tk(id), 's', 'q', 'k')
  if h[1] == 'pending' then
    finish(id, h[2], 'pending', 'expired', h[3], 'x')
    done[#done + 1] = id
    roots[#roots + 1] = {id, true}
  else
    zrem(P .. 'exp', id)
  end
end
resolve(roots, policy, released, cancelled)
if ARGV[4] ~= '' then store_ended(ARGV[4], done, cancelled) end
flush()
publish()
return {done, {}, released, cancelled}
