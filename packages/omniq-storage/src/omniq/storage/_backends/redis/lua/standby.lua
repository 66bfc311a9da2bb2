-- A task claimed to run in the slot of a running claim once its run ended (a standby):
-- ARGV[3] worker, ARGV[4] lease end, ARGV[5] id and ARGV[6] token of that claim,
-- ARGV[7..] queues. The claim must be running with a live lease under a cap without a
-- rate, and have no live standby yet; the standby is the first ready task of its key
-- on the queues (among the first SCAN of each queue), leased with 'sb' = the claim's
-- token, so the two take one slot (lim_running). Returns {envelope, token, attempt,
-- eta} or false.
local worker, lend, bid, btok = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local SCAN = 1000
local b = redis.call('HMGET', tk(bid), 's', 'tok', 'le', 'lim', 'sby')
if b[1] ~= 'running' or b[2] ~= btok or not b[3] or tonumber(b[3]) <= NOW
    or not b[4] or b[4] == '' then
  return false
end
local key, cap, rate = lim_parse(b[4])
if not cap or rate then return false end
if b[5] then
  local s = redis.call('HMGET', tk(b[5]), 's', 'sb', 'le')
  if s[1] == 'running' and s[2] == btok and tonumber(s[3] or 0) > NOW then return false end
end
local best = nil
for j = 7, #ARGV do
  local q = ARGV[j]
  if redis.call('SISMEMBER', P .. 'paused', q) == 0 then
    local r = redis.call('ZRANGE', P .. 'r:' .. q, 0, SCAN - 1, 'WITHSCORES')
    for i = 1, #r, 2 do
      local score = tonumber(r[i + 1])
      if best and score > best[1] then break end
      local h = redis.call('HMGET', tk(r[i]), 's', 'exp', 'lim')
      if h[1] == 'pending' and not (h[2] and h[2] ~= '' and tonumber(h[2]) <= NOW)
          and h[3] and h[3] ~= '' and lim_parse(h[3]) == key then
        if not best or score < best[1] or (score == best[1] and r[i] < best[2]) then
          best = {score, r[i], q}
        end
        break
      end
    end
  end
end
if not best then return false end
local id, q = best[2], best[3]
local t = tk(id)
local h = redis.call('HMGET', t, 'd', 'eta', 'a', 'g')
local a = tonumber(h[3]) + 1
local g = tonumber(h[4]) + 1
local tok = id .. ':' .. g
redis.call('ZREM', P .. 'r:' .. q, id)
redis.call('HSET', t, 's', 'running', 'a', a, 'g', g, 'tok', tok, 'le', lend, 'w', worker,
  'sb', btok)
move(id, q, 'pending', 'running')
zadd(P .. 'l:' .. q, tonumber(lend), id)
redis.call('ZADD', P .. 'lim:r:' .. key, NOW, id)
redis.call('HSET', tk(bid), 'sby', id)
flush()
return {h[1], tok, a, h[2] or ''}
