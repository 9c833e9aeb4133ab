-- ARGV: room, history cap, then (timestamp, user, text) for each message.
-- Appends them to the room's history and announces them as one M event.
local prefix = '{prefix}'
local lines = {}
local history = prefix .. 'history:' .. string.lower(ARGV[1])
for i = 3, #ARGV, 3 do
  redis.call('XADD', history, 'MAXLEN', '~', ARGV[2], '*',
    't', ARGV[i], 'u', ARGV[i + 1], 'm', ARGV[i + 2])
  lines[#lines + 1] = ARGV[i] .. ' ' .. ARGV[i + 1] .. ' ' .. ARGV[i + 2]
end
redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', {events_cap}, '*',
  'k', 'M', 'r', ARGV[1], 'd', table.concat(lines, '\n'))
return #lines
