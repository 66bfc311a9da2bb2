-- ARGV[3] '1' to give the attempt back (release, defer), then id tok eta triples
local giveback = ARGV[3] == '1'
local stale = {}
for j = 4, #ARGV, 3 do
  local id, tok, eta = ARGV[j], ARGV[j+1], ARGV[j+2]
  local t = tk(id)
  local h = redis.call('HMGET', t, 's', 'tok', 'q', 'p')
  if h[1] == 'running' and h[2] == tok then
    zrem(P .. 'l:' .. h[3], id)
    if giveback then
      redis.call('HINCRBY', t, 'a', -1)
      redis.call('HSET', t, 'tok', '', 's', 'pending')
      if eta ~= '' then redis.call('HSET', t, 'eta', eta) end  -- a deferral's eta
    else
      redis.call('HSET', t, 'tok', '', 's', 'pending', 'eta', eta)
    end
    move(id, h[3], 'running', 'pending')
    make_ready(id, h[3], h[4], eta)
  else
    stale[#stale + 1] = id
  end
end
flush()
publish()
return stale
