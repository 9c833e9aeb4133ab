-- ARGV: lower-case user.  Its conversations, the most recent first:
-- partner (lower-case) and the stamp of its copy's last message (whose
-- milliseconds are the partner's score), in turn.
local prefix = '{prefix}'
local reply = {}
local found = redis.call('ZREVRANGE', prefix .. 'dms:' .. ARGV[1], 0, -1, 'WITHSCORES')
for i = 1, #found, 2 do
  reply[i] = found[i]
  reply[i + 1] = ms_stamp(tonumber(found[i + 1]))
end
return reply
