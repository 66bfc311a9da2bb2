-- ARGV[3] policy; ARGV[4] msgpack array of {id, q, p, eta, exp, key, {deps}, envelope
-- length, flow limit, conditional-dependent flag, end of the unique_for window or ''};
-- ARGV[5] the envelopes concatenated (cmsgpack has no bin type); ARGV[6], optional: the
-- spec of the results of the tasks stored already cancelled (a dependency had already
-- failed), written here (``store_ended``, see _ended.lua)
local policy = ARGV[3]
local rows = cmsgpack.unpack(ARGV[4])
local E = ARGV[5]
local pos = 1
local out = {}
local queues = {}
local edges = 0
local born = nil
for _, row in ipairs(rows) do
  local id, q, p, eta, exp, key, deps = row[1], row[2], row[3], row[4], row[5], row[6], row[7]
  local lim = row[9] or ''
  local env = string.sub(E, pos, pos + row[8] - 1)
  pos = pos + row[8]
  local existing = nil
  if redis.call('EXISTS', tk(id)) == 1 then
    existing = id
  elseif key ~= '' then
    local other = redis.call('HGET', P .. 'keys', key)
    if other then
      local h = redis.call('HMGET', tk(other), 's', 'uu')
      if h[1] == 'pending' or h[1] == 'running' then existing = other end
      -- unique_for: the key stays reserved until 'uu' whatever the holder's state
      if h[1] and h[2] and tonumber(h[2]) > NOW then existing = other end
    end
  end
  if existing then
    local h = redis.call('HMGET', tk(existing), 's', 'a', 'd', 'eta')
    table.insert(out, {existing, h[1], h[2], h[3], h[4]})
  else
    local waiting, failed = 0, false
    local open = {}
    local seen = {}
    for _, d in ipairs(deps) do
      if not seen[d] then  -- a dependency listed twice is one edge
        seen[d] = true
        local s = redis.call('HGET', tk(d), 's')
        if s == 'success' then
        elseif s == 'error' or s == 'cancelled' or s == 'expired' then
          failed = true
        else
          waiting = waiting + 1
          open[#open + 1] = d
        end
      end
    end
    local t = tk(id)
    -- A conditional dependent (row[10], Task.run_if) waits for its live dependencies
    -- whatever the others ended in; ``cw`` marks it so resolve never cancels it.
    local cond = row[10] == 1
    local cancel = failed and policy == 'cancel' and not cond
    local ndv = 0
    if not cancel then ndv = waiting end
    idx(q, 'all', id, true)
    if key ~= '' then redis.call('HSET', P .. 'keys', key, id) end
    if key ~= '' and row[11] and row[11] ~= '' then redis.call('HSET', t, 'uu', row[11]) end
    local status = 'pending'
    local worker, lend, chan = nil, nil, nil
    if not cancel and waiting == 0 and lim == '' then worker, lend, chan = take_idle(q, eta) end
    if worker then
      -- Handed over: stored already leased to the idle worker (one write, no pass
      -- through the pending index) and published to it with the envelope.
      local tok = id .. ':1'
      redis.call('HSET', t, 'd', env, 'q', q, 'p', p, 'a', 1, 'g', 1, 'eta', eta,
        'exp', exp, 'k', key, 's', 'running', 'nd', 0, 'tok', tok, 'le', lend,
        'w', worker, 'pu', 1)
      if exp ~= '' then zadd(P .. 'exp', tonumber(exp), id) end
      zadd(P .. 'l:' .. q, lend, id)
      redis.call('PUBLISH', chan,
        'P:' .. worker .. '\31' .. tok .. '\31' .. string.format('%.6f', lend) .. '\31' .. env)
    else
      queues[q] = true
      redis.call('HSET', t, 'd', env, 'q', q, 'p', p, 'a', 0, 'g', 0, 'eta', eta, 'exp', exp,
        'k', key, 's', 'pending', 'nd', ndv)
      if lim ~= '' then  -- flow-limited: the claim checks 'lim' (see _limits.lua)
        redis.call('HSET', t, 'lim', lim)
        redis.call('HSET', P .. 'lim:keys', string.match(lim, '^[^\31]*'), lim)
      end
      move(id, q, nil, 'pending')
      if cancel then
        status = 'cancelled'
        finish(id, q, 'pending', 'cancelled', key, '')
        born = born or {}
        born[#born + 1] = {id, 0}
      else
        if exp ~= '' then zadd(P .. 'exp', tonumber(exp), id) end
        if waiting > 0 then
          if cond then redis.call('HSET', t, 'cw', 1) end
          for _, d in ipairs(open) do
            edges = edges + redis.call('SADD', P .. 'dn:' .. d, id)
          end
        else
          had_ready(q)  -- before the first write to it
          make_ready(id, q, p, eta)
        end
      end
    end
    table.insert(out, {id, status})
  end
end
-- A queue with ready tasks before this script is in 'queues' already (never removed).
for q, _ in pairs(queues) do
  if not ready_before[q] then redis.call('SADD', P .. 'queues', q) end
end
if edges > 0 then redis.call('INCRBY', P .. 'ndep', edges) end
for q, _ in pairs(notify) do
  if ready_before[q] then notify[q] = nil end
end
if born and ARGV[6] and ARGV[6] ~= '' then store_ended(ARGV[6], {}, born) end
flush()
publish()
return out
