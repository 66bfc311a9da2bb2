-- ARGV[3] policy, ARGV[4] result spec ('' = no results; see _ended.lua), then ids
local policy = ARGV[3]
local done, roots, released, cancelled = {}, {}, {}, {}
for j = 5, #ARGV do
  local id = ARGV[j]
  local h = redis.call('HMGET', tk(id), 's', 'q', 'k', 'exp')
  if h[1] == 'pending' or h[1] == 'running' then
    finish(id, h[2], h[1], 'cancelled', h[3], h[4])
    done[#done + 1] = id
    roots[#roots + 1] = {id, true}
  end
end
resolve(roots, policy, released, cancelled)
if ARGV[4] ~= '' then store_ended(ARGV[4], done, cancelled) end
flush()
publish()
return {done, {}, released, cancelled}
