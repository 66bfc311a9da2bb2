-- One task without dependencies, idempotency key, flow limit or run condition (what a
-- lone ``enqueue`` sends): the same writes as enqueue.lua for such a task, without its
-- batch machinery (no msgpack argument, no buffered sorted-set writes).
-- ARGV[3] id; ARGV[4] queue; ARGV[5] priority; ARGV[6] eta or ''; ARGV[7] expires_at
-- or ''; ARGV[8] envelope. Returns {id, status} for the stored task, or {id, status,
-- attempt, envelope, eta} of the task already stored under that id.
local id, q, p, eta, exp, env = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local t = tk(id)
if redis.call('EXISTS', t) == 1 then
  local h = redis.call('HMGET', t, 's', 'a', 'd', 'eta')
  return {id, h[1], h[2], h[3], h[4]}
end
redis.call('ZADD', P .. 'i:' .. q .. ':all', 0, id)
local worker, lend, chan = take_idle(q, eta)
if worker then
  -- Handed over: stored already leased to the idle worker (see enqueue.lua).
  local tok = id .. ':1'
  redis.call('HSET', t, 'd', env, 'q', q, 'p', p, 'a', 1, 'g', 1, 'eta', eta,
    'exp', exp, 'k', '', 's', 'running', 'nd', 0, 'tok', tok, 'le', lend,
    'w', worker, 'pu', 1)
  if exp ~= '' then redis.call('ZADD', P .. 'exp', tonumber(exp), id) end
  redis.call('ZADD', P .. 'l:' .. q, lend, id)
  redis.call('PUBLISH', chan,
    'P:' .. worker .. '\31' .. tok .. '\31' .. string.format('%.6f', lend) .. '\31' .. env)
  return {id, 'pending'}
end
redis.call('HSET', t, 'd', env, 'q', q, 'p', p, 'a', 0, 'g', 0, 'eta', eta, 'exp', exp,
  'k', '', 's', 'pending', 'nd', 0)
redis.call('ZADD', P .. 'i:' .. q .. ':pending', 0, id)
if exp ~= '' then redis.call('ZADD', P .. 'exp', tonumber(exp), id) end
local before = had_ready(q)  -- before the first write to the ready set
if eta ~= '' and tonumber(eta) > NOW then
  redis.call('ZADD', P .. 'd:' .. q, tonumber(eta), id)
else
  redis.call('ZADD', P .. 'r:' .. q, -tonumber(p), id)
  if not before then redis.call('PUBLISH', P .. 'chan', 'w:' .. q) end
end
-- A queue with ready tasks before this script is in 'queues' already (never removed).
if not before then redis.call('SADD', P .. 'queues', q) end
return {id, 'pending'}
