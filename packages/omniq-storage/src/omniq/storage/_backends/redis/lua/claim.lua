-- ARGV[3] worker, ARGV[4] lease end, ARGV[5] limit, ARGV[6..] queues
local worker, lend, limit = ARGV[3], ARGV[4], tonumber(ARGV[5])
local lendn = tonumber(lend)
local queues = {}
for j = 6, #ARGV do queues[#queues + 1] = ARGV[j] end
reclaim(nil, queues)
for _, q in ipairs(queues) do
  local due = redis.call('ZRANGEBYSCORE', P .. 'd:' .. q, '-inf', NOWS, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    zrem(P .. 'd:' .. q, id)
    zadd(P .. 'r:' .. q, -tonumber(redis.call('HGET', tk(id), 'p')), id)
  end
end
flush()
-- Paused queues lease nothing (their lapsed leases and due tasks above still go back
-- to ready): a pause is one SADD, so every script after it sees it.
local live = {}
for _, q in ipairs(queues) do
  if redis.call('SISMEMBER', P .. 'paused', q) == 0 then live[#live + 1] = q end
end
queues = live
local envs, meta = {}, {}
local taken = 0
-- Tasks held back by their limits go back to ready (same score) after the loop; a
-- claim looks at no more than SCAN of them, and stops at the first it holds back once
-- it has taken some: those start without waiting for the scan of a held backlog (and
-- its starts are stamped when the script ends), and the next claim looks further.
local held, scanned, SCAN = {}, 0, 1000
local full = {}
while taken < limit and scanned < SCAN and not (taken > 0 and #held > 0) do
  local picked = {}
  if #queues == 1 then
    local q = queues[1]
    local r = redis.call('ZPOPMIN', P .. 'r:' .. q, limit - taken)
    for j = 1, #r, 2 do picked[#picked + 1] = {r[j], q} end
  else
    local cands = {}
    for _, q in ipairs(queues) do
      local r = redis.call('ZRANGE', P .. 'r:' .. q, 0, limit - taken - 1, 'WITHSCORES')
      for j = 1, #r, 2 do cands[#cands + 1] = {tonumber(r[j+1]), r[j], q} end
    end
    table.sort(cands, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      return a[2] < b[2]
    end)
    local rem = {}
    for j = 1, math.min(#cands, limit - taken) do
      local c = cands[j]
      picked[#picked + 1] = {c[2], c[3]}
      rem[c[3]] = rem[c[3]] or {}
      table.insert(rem[c[3]], c[2])
    end
    for q, ids in pairs(rem) do redis.call('ZREM', P .. 'r:' .. q, unpack(ids)) end
  end
  if #picked == 0 then break end
  for _, pq in ipairs(picked) do
    local id, q = pq[1], pq[2]
    local t = tk(id)
    local h = redis.call('HMGET', t, 's', 'exp', 'd', 'eta', 'a', 'g', 'lim', 'p', 'sb')
    local lkey, lrate, lper = nil, nil, nil
    local ok = h[1] == 'pending' and not (h[2] and h[2] ~= '' and tonumber(h[2]) <= NOW)
    if ok and h[7] and h[7] ~= '' then
      scanned = scanned + 1
      lkey, lrate, lper = lim_admit(h[7])
      if not lkey then
        ok = false
        full[lim_parse(h[7])] = true
        held[#held + 1] = {q, -tonumber(h[8]), id}
      end
    end
    if ok then
      local a = tonumber(h[5]) + 1
      local g = tonumber(h[6]) + 1
      if lkey then lim_started(lkey, id, g, lrate, lper) end
      local tok = id .. ':' .. g
      redis.call('HSET', t, 's', 'running', 'a', a, 'g', g, 'tok', tok, 'le', lend, 'w', worker)
      if h[9] then redis.call('HDEL', t, 'sb') end  -- a former standby's, given back
      move(id, q, 'pending', 'running')
      zadd(P .. 'l:' .. q, lendn, id)
      envs[#envs + 1] = h[3]
      meta[#meta + 1] = tok
      meta[#meta + 1] = a
      meta[#meta + 1] = h[4]
      meta[#meta + 1] = #h[3]
      taken = taken + 1
    end
  end
end
for _, e in ipairs(held) do zadd(P .. 'r:' .. e[1], e[2], e[3]) end
flush()
local limited = {}
for k, _ in pairs(full) do limited[#limited + 1] = k end
-- The envelopes behind one msgpack array header: the client decodes them in one pass,
-- or, when one does not decode, one by one (meta gives each one's length).
local n = #envs
local hdr
if n < 16 then
  hdr = string.char(0x90 + n)
elseif n < 65536 then
  hdr = string.char(0xdc, math.floor(n / 256), n % 256)
else
  hdr = string.char(0xdd, math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end
return {hdr .. table.concat(envs), meta, limited,
  (LIM_WAIT and not LIM_CAPPED) and tostring(LIM_WAIT) or '',
  lim_stamp()}
