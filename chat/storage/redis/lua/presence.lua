-- Presence bookkeeping shared by the scripts that change it.  change()
-- moves one process's hold on a "Room User" pair by one and announces the
-- user's arrival (J) or departure (P) when the count across processes
-- crosses zero.  A field "@user" (no room has an @ in its name) is the
-- user being online on the process, for private messages: counted across
-- processes in the hash online, silently.
local prefix = '{prefix}'
local function change(proc, field, delta, ts)
  local mine = redis.call('HINCRBY', proc, field, delta)
  if mine <= 0 then redis.call('HDEL', proc, field) end
  local counts = 'present'
  if string.byte(field, 1) == 64 then counts, field = 'online', string.sub(field, 2) end
  local before = tonumber(redis.call('HGET', prefix .. counts, field) or '0')
  local after = before + delta
  if after > 0 then
    redis.call('HSET', prefix .. counts, field, after)
  else
    redis.call('HDEL', prefix .. counts, field)
  end
  if counts == 'online' then return end
  local kind = nil
  if before <= 0 and after > 0 then kind = 'J' elseif before > 0 and after <= 0 then kind = 'P' end
  if kind then
    local space = string.find(field, ' ', 1, true)
    redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', {events_cap}, '*', 'k', kind,
      'r', string.sub(field, 1, space - 1), 'u', string.sub(field, space + 1), 't', ts)
  end
end
