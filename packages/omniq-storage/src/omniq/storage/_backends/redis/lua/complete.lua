-- ARGV[3] policy, ARGV[4] msgpack array of id, token, status triples (flat), ARGV[5]
-- (optional) the result spec of the dependents a failure cancels ('' or absent = none;
-- see _ended.lua)
local policy = ARGV[3]
local items = cmsgpack.unpack(ARGV[4])
local done, stale, roots, released, cancelled = {}, {}, {}, {}, {}
for j = 1, #items, 3 do
  local id, tok, st = items[j], items[j+1], items[j+2]
  local h = redis.call('HMGET', tk(id), 's', 'tok', 'q', 'k', 'exp')
  if h[1] == 'running' and h[2] == tok then
    finish(id, h[3], 'running', st, h[4], h[5])
    done[#done + 1] = id
    roots[#roots + 1] = {id, st ~= 'success'}
  else
    stale[#stale + 1] = id
  end
end
resolve(roots, policy, released, cancelled)
if #cancelled > 0 and ARGV[5] and ARGV[5] ~= '' then store_ended(ARGV[5], {}, cancelled) end
flush()
publish()
return {done, stale, released, cancelled}
