-- ARGV: room, history cap, then (timestamp, user, text) for each message.
-- Appends them to the room's history and announces them as one M event,
-- each stamped later than the room's last (one millisecond after it when
-- its own stamp is not), so that a room's name and a stamp name one
-- message whichever process made it.  The entries' IDs are their stamps'
-- milliseconds.  The room's last stamp is kept in the hash stamps,
-- quicker to read than the stream, with the milliseconds at which its
-- second began: a busy room's next stamps are in that second.
local prefix = '{prefix}'
local room = string.lower(ARGV[1])
local history = prefix .. 'history:' .. room
-- A room dropped (by another process) since these were said: they go
-- nowhere, rather than start the dropped room's history again.
if redis.call('HEXISTS', prefix .. 'rooms', room) == 0 then return 0 end
local last = redis.call('HGET', prefix .. 'stamps', room)
if last then
  known_second(last, tonumber(string.sub(last, 26)))
  last = string.sub(last, 1, 24)
end
local lines = {}
local top, seq = -1, 0
for i = 3, #ARGV, 3 do
  local stamp = ARGV[i]
  if last and stamp <= last then stamp = next_stamp(last) end
  local ms = stamp_ms(stamp)
  if ms > top then top, seq = ms, 0 else seq = seq + 1 end
  local added = redis.pcall('XADD', history, 'MAXLEN', '~', ARGV[2],
    string.format('%d-%d', top, seq), 't', stamp, 'u', ARGV[i + 1], 'm', ARGV[i + 2])
  if type(added) == 'table' and added.err then
    -- The stream's last ID is later: history stored before IDs were made
    -- from stamps (from Redis's clock, a little after its stamps).
    -- Follow its last entry; any other error is raised here.
    local before
    before, top, seq = last_entry(history)
    if before and stamp <= before then stamp = next_stamp(before) end
    ms = stamp_ms(stamp)
    if ms > top then top, seq = ms, 0 else seq = seq + 1 end
    redis.call('XADD', history, 'MAXLEN', '~', ARGV[2],
      string.format('%d-%d', top, seq), 't', stamp, 'u', ARGV[i + 1], 'm', ARGV[i + 2])
  end
  last = stamp
  lines[#lines + 1] = stamp .. ' ' .. ARGV[i + 1] .. ' ' .. ARGV[i + 2]
end
if last then
  local second = stamp_ms(last) - tonumber(string.sub(last, 21, 23))
  redis.call('HSET', prefix .. 'stamps', room, last .. ' ' .. string.format('%d', second))
end
redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', {events_cap}, '*',
  'k', 'M', 'r', ARGV[1], 'd', table.concat(lines, '\n'))
return #lines
