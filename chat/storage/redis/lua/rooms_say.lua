-- ARGV: room, history cap, then (timestamp, user, text) for each message.
-- Appends them to the room's history and announces them as one M event,
-- each stamped later than the room's last (one millisecond after it when
-- its own stamp is not): a room's name and a stamp name one message,
-- across processes.  Returns the stamps.
local prefix = '{prefix}'
local lines, stamps = {}, {}
local history = prefix .. 'history:' .. string.lower(ARGV[1])
local last, ms, seq = last_entry(history)
local id
for i = 3, #ARGV, 3 do
  local stamp = ARGV[i]
  if last and stamp <= last then stamp = next_stamp(last) end
  last = stamp
  id, ms, seq = next_id(stamp, ms, seq)
  redis.call('XADD', history, 'MAXLEN', '~', ARGV[2], id,
    't', stamp, 'u', ARGV[i + 1], 'm', ARGV[i + 2])
  lines[#lines + 1] = stamp .. ' ' .. ARGV[i + 1] .. ' ' .. ARGV[i + 2]
  stamps[#stamps + 1] = stamp
end
redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', {events_cap}, '*',
  'k', 'M', 'r', ARGV[1], 'd', table.concat(lines, '\n'))
return stamps
