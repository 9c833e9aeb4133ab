-- Presence bookkeeping shared by the scripts that change it.  change()
-- moves one process's hold on a "Room User" pair by one and announces the
-- user's arrival (J) or departure (P) when the count across processes
-- crosses zero.
local prefix = '{prefix}'
local function change(proc, field, delta, ts)
  local mine = redis.call('HINCRBY', proc, field, delta)
  if mine <= 0 then redis.call('HDEL', proc, field) end
  local before = tonumber(redis.call('HGET', prefix .. 'present', field) or '0')
  local after = before + delta
  if after > 0 then
    redis.call('HSET', prefix .. 'present', field, after)
  else
    redis.call('HDEL', prefix .. 'present', field)
  end
  local kind = nil
  if before <= 0 and after > 0 then kind = 'J' elseif before > 0 and after <= 0 then kind = 'P' end
  if kind then
    local space = string.find(field, ' ', 1, true)
    redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', {events_cap}, '*', 'k', kind,
      'r', string.sub(field, 1, space - 1), 'u', string.sub(field, space + 1), 't', ts)
  end
end
