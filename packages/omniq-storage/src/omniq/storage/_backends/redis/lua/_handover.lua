-- Shared by enqueue.lua and enqueue_one.lua (after the prelude).
-- Handover: a task ready now, in a queue with nothing else ready, goes straight to a
-- worker waiting idle on it (``iw:<q>`` zset, score = registration end, member = worker,
-- lease, its backend's channel and its queues): leased to it for at most HANDOVER
-- seconds (it renews on receipt) and published on that channel as 'P:' worker, token,
-- lease end, envelope (unit-separated). The worker is unregistered from all its queues:
-- one handover per registration. A task of a paused queue is never handed over.
-- Work notifications: a waiter waits only after its probe saw the queue's ready set
-- empty, so 'w:<queue>' goes out only when this script turns that set from empty to
-- non-empty (a queue with a backlog costs no PUBLISH, and no message to every
-- subscriber, per enqueue). ``had_ready`` is the set's state before the script.
local HANDOVER = 5
local ready_before = {}
local function had_ready(q)
  if ready_before[q] == nil then
    ready_before[q] = redis.call('EXISTS', P .. 'r:' .. q) == 1
  end
  return ready_before[q]
end
local paused = {}
local function is_paused(q)
  if paused[q] == nil then paused[q] = redis.call('SISMEMBER', P .. 'paused', q) == 1 end
  return paused[q]
end
-- The idle worker a task ready now goes to, unregistered from all its queues: returns
-- worker, lease end, channel; nil when the task is not ready now, the queue has ready
-- tasks (they go first) or nobody waits.
local function take_idle(q, eta)
  if eta and eta ~= '' and tonumber(eta) > NOW then return nil end
  local rb = zbuf[P .. 'r:' .. q]
  if rb and #rb.order > 0 then return nil end
  if had_ready(q) then return nil end
  if is_paused(q) then return nil end
  -- The latest registration (the worker that went idle last, warmest): when even it
  -- has lapsed, all have, and nobody waits.
  local w = redis.call('ZPOPMAX', P .. 'iw:' .. q)
  if #w == 0 then return nil end
  local member = w[1]
  local parts = {}
  for part in string.gmatch(member, '[^\31]+') do parts[#parts + 1] = part end
  for i = 4, #parts do
    if parts[i] ~= q then redis.call('ZREM', P .. 'iw:' .. parts[i], member) end
  end
  local lease = tonumber(parts[2])
  if tonumber(w[2]) < NOW then return nil end
  if #parts < 4 or not lease then return nil end  -- not a registration we wrote
  return parts[1], NOW + math.min(HANDOVER, lease), parts[3]
end
