-- Unique-job keys kept past their holder's end for its unique_for window ('ukeys',
-- score: the window's end; see unkey): dropped from 'keys' once the window has ended,
-- unless the key now names a live task or one whose own window is still open.
-- Returns how many keys were dropped.
local ks = redis.call('ZRANGEBYSCORE', P .. 'ukeys', '-inf', NOWS, 'LIMIT', 0, 1000)
local gone = 0
for _, k in ipairs(ks) do
  redis.call('ZREM', P .. 'ukeys', k)
  local id = redis.call('HGET', P .. 'keys', k)
  if id then
    local h = redis.call('HMGET', tk(id), 's', 'uu')
    local live = h[1] == 'pending' or h[1] == 'running'
    if not live and not ((tonumber(h[2] or '0') or 0) > NOW) then
      redis.call('HDEL', P .. 'keys', k)
      gone = gone + 1
    end
  end
end
return gone
