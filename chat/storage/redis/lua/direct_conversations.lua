-- ARGV: lower-case user.  Its conversations, the most recent first:
-- partner (lower-case) and the stamp of its copy's last message, in turn.
local prefix = '{prefix}'
local reply = {}
for _, partner in ipairs(redis.call('ZREVRANGE', prefix .. 'dms:' .. ARGV[1], 0, -1)) do
  local last = last_entry(prefix .. 'dm:' .. ARGV[1] .. ':' .. partner)
  if last then
    reply[#reply + 1] = partner
    reply[#reply + 1] = last
  end
end
return reply
